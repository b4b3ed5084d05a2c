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
    let cfg = spamflow_pipeline::config::Config::default();
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
                        let ctx = EventCtx {
                            event: &ev,
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

criterion_group!(benches, chain);
criterion_main!(benches);
