//! Origin operator per event (sender parse cache, overseas/spoofing checks, registry
//! look-up for bulk traffic) on the seeded corpus, against a bare pass over the same
//! events in the same run; and the uncached sender parse (libphonenumber) alone.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spamflow_operators::origin::{
    parse_sender, OriginConfig, OriginOperator, Registry, SenderCache,
};
use spamflow_operators::{EventCtx, StatelessOperator};
use spamflow_schemas::{decode_submission, RegistrationRecord, SubmissionEvent};

fn corpus() -> (Vec<SubmissionEvent>, Arc<Registry>) {
    let mut synth =
        spamflow_loadtest::synth::Synth::new(5, "2026-03-01T09:00:00Z".parse().unwrap(), 1000.0);
    let events = (0..4096)
        .map(|_| decode_submission(&serde_json::to_vec(&synth.next_event().0).unwrap()).unwrap())
        .collect();
    let registry = Arc::new(Registry::new());
    for r in synth.registry() {
        let rec: RegistrationRecord = serde_json::from_value(r).unwrap();
        registry.put(&rec).unwrap();
    }
    (events, registry)
}

fn origin(c: &mut Criterion) {
    let (events, registry) = corpus();
    let op = OriginOperator::new(OriginConfig::default(), registry);
    let mut g = c.benchmark_group("origin");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("baseline_touch_each_event", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|e| e.sender.len() + e.origin.smsc.len())
                .sum::<usize>()
        })
    });
    let mut w = op.worker();
    let mut out = Vec::with_capacity(8);
    let mut senders = SenderCache::new(100_000);
    g.bench_function("operator", |b| {
        b.iter(|| {
            let mut n = 0;
            for e in &events {
                out.clear();
                // The chain's per-worker cache of parsed senders, as in the pipeline.
                let sender = senders.get(&e.sender);
                w.inspect(
                    &EventCtx {
                        event: e,
                        sender: &sender,
                        partition: 0,
                        event_time_ms: e.event_time_ms(),
                        counted: false,
                    },
                    &mut out,
                );
                n += out.len();
            }
            n
        })
    });
    g.bench_function("parse_sender_uncached", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|e| parse_sender(&e.sender).key.len())
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, origin);
criterion_main!(benches);
