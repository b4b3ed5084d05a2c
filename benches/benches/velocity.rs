//! Velocity and throttle operators per event on the seeded synthetic corpus, against a
//! baseline that only counts events per sender in a `HashMap` (same run), and the masked
//! content fingerprint alone. Scaling to 2 threads, 1M senders, memory and restore time
//! are in `spamflow-bench-state` (`make bench-state`).

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spamflow_operators::origin::{parse_sender, SenderId};
use spamflow_operators::throttle::{ThrottleConfig, ThrottleFactory, ThrottleStats};
use spamflow_operators::velocity::fingerprint::{address_key, fingerprint};
use spamflow_operators::velocity::{VelocityConfig, VelocityFactory, VelocityStats};
use spamflow_operators::{EventCtx, StatefulOperator};
use spamflow_schemas::{decode_submission, SubmissionEvent, Verdict};

/// The events with their senders parsed (the chain parses each sender once per worker).
fn corpus() -> Vec<(SubmissionEvent, SenderId)> {
    let mut synth =
        spamflow_loadtest::synth::Synth::new(5, "2026-03-01T09:00:00Z".parse().unwrap(), 1000.0);
    (0..4096)
        .map(|_| {
            let e = decode_submission(&serde_json::to_vec(&synth.next_event().0).unwrap()).unwrap();
            let sender = parse_sender(&e.sender);
            (e, sender)
        })
        .collect()
}

fn allow() -> Verdict<'static> {
    serde_json::from_str(
        r#"{"schema_version":1,"message_id":"x","submitted_at":"2026-03-01T09:00:00Z","decided_at":"2026-03-01T09:00:00Z","action":"allow","score":0,"labels":[],"reasons":[],"shadow":[],"sender":"s","recipient":"r","smsc":"s","rules_version":"v","pipeline":"p"}"#,
    )
    .unwrap()
}

/// Runs `f` over the corpus with event time moving on by the corpus' span each pass.
fn pass(events: &[(SubmissionEvent, SenderId)], round: &mut i64, mut f: impl FnMut(&EventCtx<'_>)) {
    let span = events.last().unwrap().0.event_time_ms() - events[0].0.event_time_ms() + 1;
    *round += 1;
    for (e, sender) in events {
        f(&EventCtx {
            event: e,
            sender,
            partition: 0,
            event_time_ms: e.event_time_ms() + *round * span,
            counted: false,
        });
    }
}

fn velocity(c: &mut Criterion) {
    let events = corpus();
    let mut g = c.benchmark_group("velocity");
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut counts: HashMap<u64, u64> = HashMap::new();
    g.bench_function("baseline_count_per_sender", |b| {
        b.iter(|| {
            for (e, _) in &events {
                *counts.entry(address_key(&e.sender)).or_default() += 1;
            }
        })
    });
    let vf = VelocityFactory::new(
        VelocityConfig::default(),
        Arc::new(VelocityStats::default()),
    );
    let mut v = vf.build();
    let mut out = Vec::with_capacity(8);
    let mut round = 0;
    g.bench_function("velocity_operator", |b| {
        b.iter(|| {
            pass(&events, &mut round, |ctx| {
                out.clear();
                v.inspect(ctx, &mut out);
            })
        })
    });
    let tf = ThrottleFactory::new(
        ThrottleConfig::default(),
        Arc::new(ThrottleStats::default()),
    );
    let mut t = tf.build();
    let verdict = allow();
    let mut round = 0;
    g.bench_function("throttle_operator", |b| {
        b.iter(|| {
            pass(&events, &mut round, |ctx| {
                out.clear();
                t.inspect(ctx, &mut out);
                t.decided(ctx, &verdict);
            })
        })
    });
    g.bench_function("fingerprint", |b| {
        b.iter(|| {
            events
                .iter()
                .map(|(e, _)| fingerprint(&e.text).hash)
                .fold(0, |a, h| a ^ h)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = velocity
}
criterion_main!(benches);
