//! `spamflow-bench-state`: the stateful stage (velocity + throttle operators).
//!
//! Measures, with seeded inputs and side by side in one run:
//! - per-event cost of velocity, throttle and both, at 1 and 2 threads (each thread owns
//!   its partitions, as the runtime's workers do), with 10k and 1M distinct senders, and
//!   the ratio to a baseline that only counts events per sender in a `HashMap`; events
//!   are timed in batches of 1,024 whose strings were just read (as decoded records
//!   are), so the figures are the operators' own cost, not the cost of fetching the
//!   bench's 400,000 events from memory;
//! - bytes per sender (resident set and the operator's own footprint), typical and for a
//!   sender of a million messages;
//! - the per-partition `HashMap` against a `DashMap` for the same sender updates;
//! - campaign fingerprint throughput;
//! - restore time for 1M senders: decode + apply in process, and with `--brokers` also
//!   read from a real changelog topic (one partition) and applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use dashmap::DashMap;
use foldhash::fast::FixedState;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use spamflow_benches::rss_bytes;
use spamflow_operators::origin::{parse_sender, SenderId};
use spamflow_operators::throttle::{ThrottleConfig, ThrottleFactory, ThrottleStats};
use spamflow_operators::velocity::fingerprint::{address_key, fingerprint, fold32};
use spamflow_operators::velocity::sender::{Layout, Sender};
use spamflow_operators::velocity::{VelocityConfig, VelocityFactory, VelocityStats};
use spamflow_operators::{EventCtx, StateUpdate, StatefulOperator};
use spamflow_schemas::{Action, MessageKind, Origin, Relay, Route, SubmissionEvent, Verdict};

#[derive(Parser)]
struct Args {
    /// Events per measured pass.
    #[arg(long, default_value_t = 400_000)]
    events: usize,
    /// Real broker for the changelog restore measurement (skipped when absent).
    #[arg(long)]
    brokers: Option<String>,
    /// Senders in the restore measurement.
    #[arg(long, default_value_t = 1_000_000)]
    restore_senders: usize,
    /// Only the per-event stage table (for profiling).
    #[arg(long)]
    stages_only: bool,
    /// Only these sender counts in the stage table (default 10,000 and 1,000,000).
    #[arg(long, value_delimiter = ',')]
    senders: Vec<u64>,
    /// Only this stage (baseline, velocity, throttle, both), one thread (for profiling).
    #[arg(long, value_enum)]
    stage: Option<Stage>,
    /// Only the restore measurement (run with `--brokers` once the broker is up, so that
    /// the broker's JVM does not share the cores with the per-event measurements).
    #[arg(long)]
    restore_only: bool,
    /// With `--stage`: each run measures the control (the baseline's sender-map update) and
    /// then the stage, on one thread, and reports both; the summary gives the stage over
    /// the runs whose control was within 10 % of its fastest, i.e. with the machine at its
    /// own speed (on a shared VM other tenants slow both by a factor of up to two).
    #[arg(long, requires = "stage")]
    control: bool,
    /// Only the campaign fingerprint throughput (for profiling).
    #[arg(long)]
    fingerprints_only: bool,
    /// Runs per figure (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

const TEXTS: [&str; 6] = [
    "내일 점심 같이 먹을래? 회사 앞 국밥집 어때",
    "[Web발신] 김철수님 정부지원 저금리 대출 한도 조회 010-1234-5678 bit.ly/x",
    "엄마 나 폰 액정 깨져서 이 번호로 문자해",
    "[CJ대한통운] 고객님의 상품이 배송 완료되었습니다 운송장 5512-3341",
    "급등주 무료 리딩방 오픈 선착순 30명 open.kakao.com/o/abc",
    "ㅇㅋ",
];

/// `n` events over `senders` distinct senders, 200 events/s of event time, a third of
/// them bulk through 8 relay operators; `partition` = sender % `partitions`.
fn events(n: usize, senders: u64, seed: u64) -> Vec<(i32, SubmissionEvent)> {
    let mut rng = Rng(seed | 1);
    let t0: chrono::DateTime<chrono::Utc> = "2026-03-01T09:00:00Z".parse().unwrap();
    (0..n)
        .map(|i| {
            let r = rng.next();
            let s = r % senders;
            let ev = SubmissionEvent {
                schema_version: 1,
                message_id: format!("b{i}"),
                submitted_at: t0 + chrono::Duration::microseconds(i as i64 * 5_000),
                sender: format!("+8210{:08}", s),
                recipient: format!("+8210{:08}", (r >> 20) % 5_000_000),
                text: TEXTS[(r >> 40) as usize % TEXTS.len()].into(),
                kind: MessageKind::Sms,
                origin: Origin {
                    route: Route::Domestic,
                    gateway: None,
                    smsc: "s".into(),
                    country: None,
                },
                relay: r.is_multiple_of(3).then(|| Relay {
                    operator: Some(format!("relay-{}", (r >> 8) % 8)),
                    reseller: Some(format!("resell-{}", (r >> 12) % 200)),
                    first_sender_code: Some(format!("FS{:04}", (r >> 16) % 2_000)),
                }),
            };
            ((s % 16) as i32, ev)
        })
        .collect()
}

fn verdict(action: Action) -> Verdict<'static> {
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "message_id": "x", "submitted_at": "2026-03-01T09:00:00Z",
        "decided_at": "2026-03-01T09:00:00Z", "action": action.as_str(), "score": 0,
        "labels": [], "reasons": [], "shadow": [], "sender": "s", "recipient": "r",
        "smsc": "s", "rules_version": "v", "pipeline": "p"
    }))
    .unwrap()
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Stage {
    Baseline,
    Velocity,
    Throttle,
    Both,
}

/// Events per batch: the runtime hands workers batches of decoded records.
const BATCH: usize = 1024;

/// One worker: its operators over its events; returns the time of the measured pass
/// (after a warm-up pass over the same events, so every sender exists; set-up and
/// tear-down are not timed).
fn worker(stage: Stage, evs: &[(i32, SubmissionEvent)]) -> Duration {
    let vf = VelocityFactory::new(
        VelocityConfig::default(),
        Arc::new(VelocityStats::default()),
    );
    let tf = ThrottleFactory::new(
        ThrottleConfig::default(),
        Arc::new(ThrottleStats::default()),
    );
    let mut v = vf.build();
    let mut t = tf.build();
    let mut base: HashMap<u64, u64, FixedState> = HashMap::default();
    let (allow, block) = (verdict(Action::Allow), verdict(Action::Block));
    let mut out = Vec::with_capacity(8);
    // Senders are parsed once per worker in the pipeline (the chain's cache), untimed here.
    let senders: Vec<SenderId> = evs.iter().map(|(_, e)| parse_sender(&e.sender)).collect();
    let mut pass = |evs: &[(i32, SubmissionEvent)], shift_ms: i64| {
        let mut elapsed = Duration::ZERO;
        for (c, chunk) in evs.chunks(BATCH).enumerate() {
            // In the pipeline an event is operated on right after it was decoded, so its
            // strings are in the cache: read this batch's strings first, untimed.
            let bytes = |s: &str| s.bytes().map(usize::from).sum::<usize>();
            let touched: usize = chunk
                .iter()
                .map(|(_, e)| {
                    bytes(&e.sender)
                        + bytes(&e.recipient)
                        + bytes(&e.text)
                        + e.relay.as_ref().map_or(0, |r| {
                            [&r.operator, &r.reseller, &r.first_sender_code]
                                .into_iter()
                                .flatten()
                                .map(|s| bytes(s))
                                .sum()
                        })
                })
                .sum();
            std::hint::black_box(touched);
            let t0 = Instant::now();
            for (j, (p, ev)) in chunk.iter().enumerate() {
                let i = c * BATCH + j;
                let ctx = EventCtx {
                    event: ev,
                    sender: &senders[i],
                    partition: *p,
                    event_time_ms: ev.event_time_ms() + shift_ms,
                    counted: false,
                };
                out.clear();
                match stage {
                    Stage::Baseline => *base.entry(address_key(&ev.sender)).or_default() += 1,
                    Stage::Velocity => v.inspect(&ctx, &mut out),
                    Stage::Throttle => {
                        t.inspect(&ctx, &mut out);
                        t.decided(&ctx, if i.is_multiple_of(4) { &block } else { &allow });
                    }
                    Stage::Both => {
                        v.inspect(&ctx, &mut out);
                        t.inspect(&ctx, &mut out);
                        t.decided(&ctx, if i.is_multiple_of(4) { &block } else { &allow });
                    }
                }
            }
            elapsed += t0.elapsed();
        }
        std::hint::black_box(&out);
        elapsed
    };
    let span = evs.len() as i64 * 5;
    pass(evs, 0);
    measured(|| pass(evs, span))
}

/// The measured pass, out of line so that a profiler can count it alone: `valgrind
/// --tool=callgrind --toggle-collect=spamflow_bench_state::measured` (it includes the
/// untimed reading of each batch's strings; subtract a `--stage baseline` run for the
/// operators alone).
#[inline(never)]
fn measured<T>(f: impl FnOnce() -> T) -> T {
    f()
}

/// ns per event of `stage` on `threads` threads (events split by partition parity).
fn per_event(stage: Stage, threads: usize, evs: &[(i32, SubmissionEvent)]) -> f64 {
    let shares: Vec<Vec<(i32, SubmissionEvent)>> = (0..threads)
        .map(|w| {
            evs.iter()
                .filter(|(p, _)| *p as usize % threads == w)
                .cloned()
                .collect()
        })
        .collect();
    // The threads run their measured passes side by side; the slowest sets the pace.
    let slowest = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| s.spawn(move || worker(stage, share)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap_or_default()
    });
    slowest.as_nanos() as f64 / evs.len() as f64
}

/// `runs` pairs of measurements, `a` then `b` in each: both see the machine of the same
/// seconds.
fn alternately(
    runs: usize,
    mut a: impl FnMut() -> f64,
    mut b: impl FnMut() -> f64,
) -> Vec<(f64, f64)> {
    (0..runs).map(|_| (a(), b())).collect()
}

/// The least disturbed run: on a shared VM other tenants only ever add time.
fn min(xs: &[f64]) -> f64 {
    xs.iter().copied().fold(f64::MAX, f64::min)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let args = Args::parse();
    if args.restore_only {
        restore(&args);
        return;
    }
    if args.fingerprints_only {
        for _ in 0..args.runs {
            fingerprints();
        }
        return;
    }
    if !args.stages_only {
        memory();
    }
    println!(
        "\nstateful stage: {} events per pass, median of {} runs",
        args.events, args.runs
    );
    let senders = if args.senders.is_empty() {
        vec![10_000u64, 1_000_000]
    } else {
        args.senders.clone()
    };
    for senders in senders {
        let evs = events(args.events, senders, 7);
        println!("\n{senders} distinct senders:");
        if args.control {
            println!("  stage      1 thread ns/event, then the control's in the same second");
        } else {
            println!(
                "  stage      1 thread ns/event (min)  2 threads ns/event (min)  scaling  x baseline (1 thread)"
            );
        }
        let mut base = 0.0;
        for &stage in Stage::value_variants() {
            if args.stage.is_some_and(|only| only != stage) {
                continue;
            }
            // The stage's name as `--stage` spells it.
            let possible = stage.to_possible_value().expect("no stage is skipped");
            let name = possible.get_name();
            // Median and minimum of the runs: on a shared VM other tenants only ever
            // add time, so the minimum is the least disturbed figure.
            let runs = |threads| {
                let xs: Vec<f64> = (0..args.runs)
                    .map(|_| per_event(stage, threads, &evs))
                    .collect();
                (median(xs.clone()), min(&xs))
            };
            if args.control {
                with_control(name, stage, args.runs, &evs);
                continue;
            }
            let (one, one_min) = runs(1);
            if args.stage.is_some() {
                println!("  {name:<10} {one:>12.0} ({one_min:.0})");
                continue;
            }
            let (two, two_min) = runs(2);
            if stage == Stage::Baseline {
                base = one;
            }
            println!(
                "  {name:<10} {one:>12.0} ({one_min:>5.0}) {two:>17.0} ({two_min:>5.0}) {:>8.2}x {:>10.2}x",
                one / two,
                one / base
            );
        }
    }

    if args.stages_only {
        return;
    }
    maps(args.events);
    fingerprints();
    restore(&args);
}

/// `runs` pairs of the control (the baseline) and `stage`, one thread, each pair in the
/// same second; prints each pair and the stage over the pairs whose control ran at the
/// machine's own speed (within 10 % of the fastest control).
fn with_control(name: &str, stage: Stage, runs: usize, evs: &[(i32, SubmissionEvent)]) {
    let pairs = alternately(
        runs,
        || per_event(Stage::Baseline, 1, evs),
        || per_event(stage, 1, evs),
    );
    for (control, x) in &pairs {
        println!(
            "  {name:<10} {x:>12.0} control {control:>5.0} ({:.1}x)",
            x / control
        );
    }
    let fastest = min(&pairs.iter().map(|p| p.0).collect::<Vec<_>>());
    let calm: Vec<f64> = pairs
        .iter()
        .filter(|p| p.0 <= fastest * 1.1)
        .map(|p| p.1)
        .collect();
    println!(
        "  {name:<10} median {:.0} over {} runs; {:.0} (min {:.0}) over the {} runs whose control was within 10 % of its fastest ({fastest:.0}); {:.1}x control",
        median(pairs.iter().map(|p| p.1).collect()),
        pairs.len(),
        median(calm.clone()),
        min(&calm),
        calm.len(),
        median(pairs.iter().map(|p| p.1 / p.0).collect()),
    );
}

/// `n` senders that each sent `per_sender` messages, one partition per 16th of them.
fn fill(n: u64, per_sender: u64) -> spamflow_operators::velocity::VelocityOperator {
    let f = VelocityFactory::new(
        VelocityConfig::default(),
        Arc::new(VelocityStats::default()),
    );
    let mut op = f.build();
    let t0: chrono::DateTime<chrono::Utc> = "2026-03-01T09:00:00Z".parse().unwrap();
    let mut ev = events(1, 1, 1).pop().unwrap().1;
    ev.relay = None;
    ev.text = TEXTS[0].into();
    let mut out = Vec::new();
    for round in 0..per_sender {
        for s in 0..n {
            ev.sender = format!("+8210{s:08}");
            ev.recipient = format!("+8210{:08}", (s * 7 + round) % 5_000_000);
            // A message per sender every 10 minutes of event time.
            ev.submitted_at =
                t0 + chrono::Duration::milliseconds((round * 600_000 + s * 600_000 / n) as i64);
            let ctx = EventCtx {
                event: &ev,
                sender: &parse_sender(&ev.sender),
                partition: (s % 16) as i32,
                event_time_ms: ev.event_time_ms(),
                counted: false,
            };
            out.clear();
            op.inspect(&ctx, &mut out);
        }
    }
    op
}

/// Bytes per sender: the resident set for 1M senders (measured first, on a fresh heap),
/// the operator's own footprint across table sizes (a hash table's load factor moves
/// between 44 % and 87.5 % as it grows), and one sender of a million messages.
fn memory() {
    let before = rss_bytes();
    let op = fill(1_000_000, 2);
    let rss = rss_bytes().saturating_sub(before);
    let fp = op.footprint();
    println!(
        "memory: {} senders with 2 messages each: resident set +{:.1} MiB = {:.0} bytes/sender; operator footprint {:.0} bytes/sender; map entry {} bytes",
        fp.senders,
        rss as f64 / 1048576.0,
        rss as f64 / fp.senders as f64,
        fp.bytes as f64 / fp.senders as f64,
        std::mem::size_of::<(u64, Sender)>(),
    );
    drop(op);
    for per_sender in [1u64, 2, 5, 20] {
        let sizes = [
            300_000u64, 500_000, 700_000, 1_000_000, 1_500_000, 2_000_000,
        ];
        let per: Vec<f64> = sizes
            .iter()
            .map(|&n| {
                let fp = fill(n / per_sender.min(4), per_sender).footprint();
                fp.bytes as f64 / fp.senders as f64
            })
            .collect();
        let mean = per.iter().sum::<f64>() / per.len() as f64;
        let (lo, hi) = per
            .iter()
            .fold((f64::MAX, 0f64), |(a, b), x| (a.min(*x), b.max(*x)));
        println!(
            "memory: senders with {per_sender} message(s) in the horizon: {mean:.0} bytes/sender on average over {} table sizes (min {lo:.0}, max {hi:.0})",
            sizes.len()
        );
    }
    let layout = Layout::new(&[(10, 6), (300, 12), (3600, 24)], 32, 300);
    let mut heavy = Sender::new(0);
    for i in 0..1_000_000u32 {
        heavy.record(&layout, i / 10, i, i % 97);
    }
    println!(
        "memory: one sender of 1,000,000 messages: {} bytes (entry {} + heap {})",
        std::mem::size_of::<(u64, Sender)>() + heavy.heap_bytes(),
        std::mem::size_of::<(u64, Sender)>(),
        heavy.heap_bytes()
    );
}

/// A timed run of sender updates.
type Run<'a> = dyn Fn(&[(u64, u32)]) -> Duration + Sync + 'a;

/// Per-partition `HashMap`s (the operator's) and a shared `DashMap`, for the same updates.
fn maps(n: usize) {
    let layout = Layout::new(&[(10, 6), (300, 12), (3600, 24)], 32, 300);
    let mut rng = Rng(99);
    let keys: Vec<(u64, u32)> = (0..n)
        // Address keys are never 0.
        .map(|i| (rng.next() % 100_000 + 1, (i / 200) as u32))
        .collect();
    let update = |s: &mut Sender, t: u32, k: u64| {
        s.record(&layout, t, fold32(k), 1);
        std::hint::black_box(s.counts(&layout, 0));
    };
    let run_hash = |keys: &[(u64, u32)]| {
        let mut m: HashMap<u64, Sender, FixedState> = HashMap::default();
        let t0 = Instant::now();
        for &(k, t) in keys {
            update(m.entry(k).or_insert_with(|| Sender::new(t)), t, k);
        }
        t0.elapsed()
    };
    let run_dash = |m: &DashMap<u64, Sender, FixedState>, keys: &[(u64, u32)]| {
        let t0 = Instant::now();
        for &(k, t) in keys {
            update(&mut m.entry(k).or_insert_with(|| Sender::new(t)), t, k);
        }
        t0.elapsed()
    };
    let per = |d: Duration, n: usize| d.as_nanos() as f64 / n as f64;
    let hash1 = median((0..3).map(|_| per(run_hash(&keys), n)).collect());
    let dash1 = median(
        (0..3)
            .map(|_| {
                per(
                    run_dash(&DashMap::with_hasher(FixedState::default()), &keys),
                    n,
                )
            })
            .collect(),
    );
    // Two threads: own maps (split by key parity, as partitions are) vs one shared DashMap.
    let halves: Vec<Vec<(u64, u32)>> = (0..2)
        .map(|w| keys.iter().filter(|(k, _)| k % 2 == w).copied().collect())
        .collect();
    let own = |run: &Run| {
        median(
            (0..3)
                .map(|_| {
                    let t0 = Instant::now();
                    std::thread::scope(|s| {
                        for h in &halves {
                            s.spawn(|| run(h));
                        }
                    });
                    per(t0.elapsed(), n)
                })
                .collect(),
        )
    };
    let hash2 = own(&run_hash);
    let dash2 = median(
        (0..3)
            .map(|_| {
                let m = DashMap::with_hasher(FixedState::default());
                let t0 = Instant::now();
                std::thread::scope(|s| {
                    for h in &halves {
                        let m = &m;
                        s.spawn(move || run_dash(m, h));
                    }
                });
                per(t0.elapsed(), n)
            })
            .collect(),
    );
    println!(
        "\nsender map, 100k senders, record + 1-min counts: HashMap (the operator's) {hash1:.0} ns/update, DashMap {dash1:.0} ns ({:.2}x the HashMap); 2 threads: own HashMaps {hash2:.0} ns, shared DashMap {dash2:.0} ns ({:.2}x)",
        dash1 / hash1,
        dash2 / hash2
    );
}

fn fingerprints() {
    let texts: Vec<String> = (0..100_000)
        .map(|i| format!("{} {i}", TEXTS[i % TEXTS.len()]))
        .collect();
    let bytes: usize = texts.iter().map(String::len).sum();
    let t0 = Instant::now();
    let mut acc = 0u64;
    for _ in 0..5 {
        for t in &texts {
            acc ^= fingerprint(t).hash;
        }
    }
    std::hint::black_box(acc);
    let d = t0.elapsed().as_secs_f64() / 5.0;
    println!(
        "\ncampaign fingerprint: {:.0} ns/message, {:.0} MB/s ({} bytes average)",
        d * 1e9 / texts.len() as f64,
        bytes as f64 / d / 1e6,
        bytes / texts.len()
    );
}

/// Restore of `n` senders: the changelog records of an operator that saw them, applied
/// to a fresh one; with a broker, also produced to a one-partition topic and read back
/// the way the runtime restores a partition.
fn restore(args: &Args) {
    let n = args.restore_senders;
    let f = VelocityFactory::new(
        VelocityConfig::default(),
        Arc::new(VelocityStats::default()),
    );
    // All in one partition: the restore of one partition is what a rebalance waits for.
    let mut op = fill(n as u64, 2);
    let mut updates: Vec<StateUpdate> = Vec::new();
    for p in 0..16 {
        let mut part = Vec::new();
        op.snapshot(p, &mut part);
        updates.extend(part);
    }
    let senders = op.footprint().senders;
    let bytes: usize = updates
        .iter()
        .map(|u| u.key.len() + u.value.as_ref().map_or(0, Vec::len))
        .sum();
    let apply = |records: &mut dyn Iterator<Item = (&[u8], Option<&[u8]>)>| {
        let mut fresh = f.build();
        fresh.assigned(0);
        let t0 = Instant::now();
        let mut applied = 0usize;
        for (k, v) in records {
            fresh.restore(0, k, v).expect("restores");
            applied += 1;
        }
        assert_eq!(fresh.footprint().senders, senders);
        (t0.elapsed(), applied)
    };
    let (d, applied) = apply(
        &mut updates
            .iter()
            .map(|u| (u.key.as_slice(), u.value.as_deref())),
    );
    println!(
        "\nrestore in process: {applied} changelog records ({senders} senders, {:.1} MiB) applied in {:.2} s ({:.0} ns/record)",
        bytes as f64 / 1048576.0,
        d.as_secs_f64(),
        d.as_nanos() as f64 / applied as f64
    );
    let Some(brokers) = &args.brokers else {
        println!("restore from Kafka: skipped (no --brokers)");
        return;
    };
    let mut cfg = spamflow_pipeline::config::Config::default();
    cfg.kafka.brokers = brokers.clone();
    cfg.topics.changelog = format!("bench-changelog-{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let spec = spamflow_pipeline::kafka::TopicSpec {
        name: cfg.topics.changelog.clone(),
        partitions: 1,
        compacted: true,
    };
    rt.block_on(spamflow_pipeline::kafka::create_topics(
        brokers,
        &cfg,
        &[spec],
    ))
    .expect("creating the changelog topic");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .create()
        .unwrap();
    for u in &updates {
        let key = spamflow_pipeline::runtime::changelog::encode_key(0, "velocity", &u.key);
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&cfg.topics.changelog)
            .partition(0)
            .key(key.as_slice());
        if let Some(v) = &u.value {
            rec = rec.payload(v.as_slice());
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    producer.poll(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    let t0 = Instant::now();
    let mut records = Vec::new();
    spamflow_pipeline::runtime::changelog::read_partition(
        &cfg,
        brokers,
        0,
        Duration::from_secs(300),
        &Default::default(),
        |chunk| records.extend(chunk),
    )
    .expect("reading the changelog");
    let read = t0.elapsed();
    let (d, applied) = apply(
        &mut records
            .iter()
            .map(|r| (r.key.as_slice(), r.value.as_deref())),
    );
    println!(
        "restore from Kafka ({brokers}): {applied} records read in {:.2} s + applied in {:.2} s = {:.2} s for {senders} senders",
        read.as_secs_f64(),
        d.as_secs_f64(),
        (read + d).as_secs_f64()
    );
}
