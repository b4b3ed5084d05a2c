//! Operator chain per message, in-process: decode, every operator, policy, verdict
//! serialization; with decode + serialize alone as the baseline in the same run.
//! Inputs come from the seeded synthesizer.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use spamflow_operators::EventCtx;
use spamflow_schemas::decode_submission;

fn corpus(n: usize) -> Vec<Vec<u8>> {
    let mut synth =
        spamflow_loadtest::synth::Synth::new(3, "2026-03-01T09:00:00Z".parse().unwrap(), 1000.0);
    (0..n)
        .map(|_| serde_json::to_vec(&synth.next_event().0).unwrap())
        .collect()
}

fn chain(c: &mut Criterion) {
    let corpus = corpus(4096);
    let mut cfg = spamflow_pipeline::config::Config::default();
    // SPAMFLOW_BENCH_MODEL: another model file (a candidate); the built-in model otherwise.
    if let Ok(model) = std::env::var("SPAMFLOW_BENCH_MODEL") {
        cfg.classifier.model = model;
    }
    let builder = spamflow_pipeline::chain(&cfg).unwrap();
    let mut without = cfg.clone();
    without.classifier.enabled = false;
    let without = spamflow_pipeline::chain(&without).unwrap();
    let mut g = c.benchmark_group("chain");
    g.throughput(Throughput::Elements(corpus.len() as u64));
    g.bench_function("baseline_decode_serialize", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            for raw in &corpus {
                let ev = decode_submission(raw).unwrap();
                out.clear();
                serde_json::to_writer(&mut out, &ev.message_id).unwrap();
            }
        })
    });
    for (name, builder) in [
        ("decode_chain_serialize", &builder),
        ("decode_chain_serialize_no_classifier", &without),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    let mut ch = builder.build();
                    ch.assigned(0);
                    (ch, Vec::with_capacity(1024))
                },
                |(ch, out)| {
                    for raw in &corpus {
                        let ev = decode_submission(raw).unwrap();
                        let sender = ch.sender(&ev.sender);
                        let ctx = EventCtx {
                            event: &ev,
                            sender: &sender,
                            partition: 0,
                            event_time_ms: ev.event_time_ms(),
                            counted: false,
                        };
                        let v = ch.process(&ctx, ev.submitted_at);
                        out.clear();
                        serde_json::to_writer(&mut *out, &v).unwrap();
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// A worker's own bookkeeping per message, OpenTelemetry export off and on: the verdict
/// tally, a flush per batch of 256 (each decision age then goes to the OTLP histogram),
/// and with export on the batch span. With export on, a real OTLP exporter is configured
/// (to a port nothing listens on, exporting once an hour), so only the recording is timed.
fn telemetry(c: &mut Criterion) {
    use spamflow_pipeline::metrics::{LocalTally, Metrics};
    use std::sync::Arc;
    let off = Arc::new(Metrics::default());
    let on = Arc::new(Metrics::default());
    let mut cfg = spamflow_pipeline::config::Config::default();
    cfg.telemetry.otlp_endpoint = "http://127.0.0.1:9".into();
    cfg.telemetry.export_interval_ms = 3_600_000;
    let _telemetry = spamflow_pipeline::telemetry::Telemetry::start(&cfg, &on).unwrap();
    let spans = spamflow_pipeline::telemetry::spans();
    let mut g = c.benchmark_group("telemetry");
    g.throughput(Throughput::Elements(4096));
    for (name, m, spans) in [("export_off", &off, None), ("export_on", &on, spans)] {
        g.bench_function(name, |b| {
            let mut tally = LocalTally::new(m);
            b.iter(|| {
                for batch in 0..16u64 {
                    let span = spans.map(|s| s.batch(0, 256));
                    for i in 0..256u64 {
                        tally.verdict(spamflow_schemas::Action::Allow, 3_000 + batch * 256 + i);
                    }
                    tally.flush(m);
                    if let Some(mut span) = span {
                        opentelemetry::trace::Span::end(&mut span);
                    }
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, chain, telemetry);
criterion_main!(benches);
