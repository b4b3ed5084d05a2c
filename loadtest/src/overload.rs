//! The overload run: one `spamflow run` instance fed faster than it can process, for a
//! while, then left to drain; its resident memory must stay under a bound, and every
//! input must get exactly one output.
//!
//! 1. Calibration: a backlog of events goes through one instance on topics of its own,
//!    and its rate is measured between the 10 % and the 90 % of outputs.
//! 2. The overload: a new instance on new topics while a producer feeds generated events
//!    (plus malformed and oversized records, which must reach the DLQ) at `factor` times
//!    that rate for `seconds`. The instance's resident memory is sampled from
//!    `/proc/<pid>/status` every 250 ms, and its peak (`VmHWM`) read at the end.
//! 3. The drain: a read_committed verifier counts one output per input (verdicts by
//!    message id, DLQ records by key) without keeping the records.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use serde::Serialize;
use spamflow_operators::origin::parse_sender;

use crate::chaos::{self, ChaosConfig, Fleet, Harness, HarnessConfig, Topics};
use crate::synth::Synth;

/// What to run.
#[derive(Debug, Clone)]
pub struct OverloadConfig {
    /// Events of the calibration backlog.
    pub calibration_events: usize,
    /// Input rate as a multiple of the calibrated rate.
    pub factor: f64,
    /// How long the overload lasts.
    pub seconds: u64,
    /// A malformed record after every this many events, and an oversized one after every
    /// ten times as many.
    pub poison_every: usize,
    /// An event that makes the pipeline panic ([`chaos::PANIC_MARKER`]) after every this
    /// many events; 0: none. Needs a debug build of spamflow (release builds have no
    /// fault injector).
    pub panic_every: usize,
    /// Peak resident memory allowed to the instance, MiB.
    pub rss_bound_mib: u64,
    /// Partitions of every topic.
    pub partitions: i32,
    /// Seed of the events.
    pub seed: u64,
    /// The binary, the broker and the work directory.
    pub harness: HarnessConfig,
}

/// What happened.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OverloadReport {
    /// The instance's rate on the calibration backlog, events/s.
    pub calibrated_per_sec: f64,
    /// The rate asked of the producer.
    pub target_per_sec: f64,
    /// The rate the producer reached during the overload.
    pub fed_per_sec: f64,
    /// The instance's output rate during the overload.
    pub processed_per_sec_during: f64,
    /// Inputs produced (events and poison records).
    pub inputs: usize,
    /// Of them, malformed, oversized and panicking records.
    pub poison: usize,
    /// Backlog (inputs without output) when the feeding stopped.
    pub backlog_at_end_of_feed: u64,
    /// Seconds from the end of the feeding to the last output.
    pub drain_seconds: f64,
    /// Resident memory of the instance when the overload started, MiB.
    pub rss_start_mib: f64,
    /// Largest sample of resident memory, MiB.
    pub rss_max_sampled_mib: f64,
    /// Peak resident memory (`VmHWM`), MiB.
    pub rss_peak_mib: f64,
    /// The bound it had to stay under.
    pub rss_bound_mib: u64,
    /// Verdicts and DLQ records read.
    pub outputs: usize,
    /// Inputs without an output.
    pub missing: usize,
    /// Outputs beyond the first per input.
    pub duplicated: usize,
    /// Outputs for no input.
    pub unexpected: usize,
    /// Panicking events that got a verdict (each must get a DLQ record only).
    pub panics_with_verdict: usize,
    /// Wall time, seconds.
    pub seconds: f64,
}

impl OverloadReport {
    /// Nothing lost or duplicated, and memory under the bound.
    pub fn passed(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.unexpected == 0
            && self.panics_with_verdict == 0
            && self.rss_peak_mib > 0.0
            && self.rss_peak_mib <= self.rss_bound_mib as f64
    }
}

/// Input `i` of the generated stream: (key, payload, id). Poison records are keyed by
/// their id, so that their DLQ records (which keep the key) can be matched.
struct Inputs {
    synth: Synth,
    poison_every: usize,
    panic_every: usize,
    n: usize,
    pending: Vec<(String, Vec<u8>, String)>,
}

impl Inputs {
    fn new(seed: u64, poison_every: usize, panic_every: usize) -> Self {
        Inputs {
            synth: Synth::new(seed, "2026-03-01T09:00:00Z".parse().unwrap(), 2_000.0),
            poison_every,
            panic_every,
            n: 0,
            pending: Vec::new(),
        }
    }

    fn next(&mut self) -> (String, Vec<u8>, String) {
        if let Some(r) = self.pending.pop() {
            return r;
        }
        self.n += 1;
        let (mut doc, _) = self.synth.next_event();
        let id = doc["message_id"].as_str().unwrap_or_default().to_owned();
        let key = parse_sender(doc["sender"].as_str().unwrap_or_default()).key;
        let event = serde_json::to_vec(&doc).unwrap_or_default();
        if self.panic_every > 0 && self.n.is_multiple_of(self.panic_every) {
            let id = format!("panic-{}", self.n / self.panic_every);
            doc["message_id"] = id.clone().into();
            doc["text"] = format!("{} 이 문자는 처리 중에 실패합니다", chaos::PANIC_MARKER).into();
            self.pending
                .push((id.clone(), serde_json::to_vec(&doc).unwrap_or_default(), id));
        }
        if self.poison_every > 0 && self.n.is_multiple_of(self.poison_every) {
            let k = self.n / self.poison_every;
            let id = format!("malformed-{k}");
            let body = format!("{{\"message_id\": \"{id}\", \"text\": 42, truncated");
            self.pending.push((id.clone(), body.into_bytes(), id));
            if k.is_multiple_of(10) {
                // Over processing.max_message_bytes (256 KiB), under the broker's 1 MB.
                let id = format!("oversized-{k}");
                let body = format!(
                    "{{\"message_id\": \"{id}\", \"text\": \"{}\"}}",
                    "가".repeat(100_000)
                );
                self.pending.push((id.clone(), body.into_bytes(), id));
            }
        }
        (key, event, id)
    }
}

/// Produces inputs at `per_sec` (as fast as it can when infinite) until `count` inputs or
/// `stop`; returns the ids produced.
#[allow(clippy::too_many_arguments)]
fn feed(
    brokers: &str,
    topic: &str,
    seed: u64,
    poison_every: usize,
    panic_every: usize,
    per_sec: f64,
    count: Option<usize>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<thread::JoinHandle<anyhow::Result<Vec<String>>>> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "900000")
        .create()?;
    let topic = topic.to_owned();
    Ok(thread::spawn(move || {
        let mut inputs = Inputs::new(seed, poison_every, panic_every);
        let mut ids = Vec::new();
        let started = Instant::now();
        while !stop.load(Relaxed) && count.is_none_or(|c| ids.len() < c) {
            let due = Duration::from_secs_f64(ids.len() as f64 / per_sec);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                thread::sleep(wait);
            }
            let (k, v, id) = inputs.next();
            crate::kafka::send(&p, BaseRecord::to(&topic).key(k.as_bytes()).payload(&v));
            ids.push(id);
        }
        p.flush(Duration::from_secs(900))?;
        Ok(ids)
    }))
}

/// Resident memory of `pid` in MiB: `VmRSS` (now) or `VmHWM` (peak).
fn rss_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Counts outputs per input id while reading the verdict and DLQ topics, and the
/// panicking events that got a verdict; `seen` is kept up to date for the sampler.
fn count_outputs(
    brokers: &str,
    topics: &Topics,
    partitions: i32,
    expected: impl Fn() -> Option<usize>,
    timeout: Duration,
    seen: &AtomicU64,
    mut at: impl FnMut(usize),
) -> anyhow::Result<(HashMap<String, u32>, usize)> {
    let verdicts = topics.name("verdicts");
    let mut counts: HashMap<String, u32> = HashMap::new();
    let mut panics_with_verdict = 0;
    chaos::scan(
        brokers,
        &[verdicts.clone(), topics.name("dlq")],
        partitions,
        Duration::from_secs(5),
        timeout,
        |m| {
            // A verdict is keyed by message id; a DLQ record keeps the input's key.
            let id = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            if m.topic() == verdicts && id.starts_with("panic-") {
                panics_with_verdict += 1;
            }
            *counts.entry(id).or_default() += 1;
            let n = seen.fetch_add(1, Relaxed) as usize + 1;
            at(n);
        },
        |n| expected().is_some_and(|e| n >= e),
    )?;
    Ok((counts, panics_with_verdict))
}

/// Runs the overload; `say` gets progress lines.
pub fn run(cfg: &OverloadConfig, mut say: impl FnMut(&str)) -> anyhow::Result<OverloadReport> {
    let started = Instant::now();
    let harness = Harness::start(&cfg.harness, &mut say)?;
    let (brokers, work, config) = (
        harness.brokers.clone(),
        harness.work.clone(),
        harness.config.clone(),
    );
    let fleet_cfg = ChaosConfig {
        events: 0,
        poison_every: cfg.poison_every,
        panic_every: cfg.panic_every,
        partitions: cfg.partitions,
        kills: 0,
        broker_restarts: 0,
        scale: false,
        seed: cfg.seed,
        harness: HarnessConfig {
            work_dir: Some(work.clone()),
            ..cfg.harness.clone()
        },
    };
    let fleet = |prefix: &str| Fleet {
        cfg: &fleet_cfg,
        brokers: brokers.clone(),
        topics: Topics {
            prefix: prefix.into(),
        },
        config: config.clone(),
        logs: work.clone(),
        slots: Vec::new(),
        starts: 0,
    };
    let mut report = OverloadReport {
        rss_bound_mib: cfg.rss_bound_mib,
        ..OverloadReport::default()
    };

    // 1. Calibration on a backlog.
    let mut calib = fleet("calibrate");
    chaos::create_topics(&fleet_cfg, &brokers, &calib.topics)?;
    let n = cfg.calibration_events;
    let never = Arc::new(AtomicBool::new(false));
    let backlog = feed(
        &brokers,
        &calib.topics.name("submissions"),
        cfg.seed ^ 0xca11,
        0,
        0,
        f64::INFINITY,
        Some(n),
        never.clone(),
    )?
    .join()
    .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    calib.spawn(0)?;
    let (mut t10, mut t90) = (None, None);
    let seen = AtomicU64::new(0);
    count_outputs(
        &brokers,
        &calib.topics,
        cfg.partitions,
        || Some(backlog.len()),
        cfg.harness.drain_timeout,
        &seen,
        |k| {
            if k == n / 10 {
                t10 = Some(Instant::now());
            }
            if k == n * 9 / 10 {
                t90 = Some(Instant::now());
            }
        },
    )?;
    calib.stop_all()?;
    let (Some(a), Some(b)) = (t10, t90) else {
        bail!("the calibration instance did not process its backlog");
    };
    report.calibrated_per_sec = (n * 8 / 10) as f64 / (b - a).as_secs_f64();
    report.target_per_sec = report.calibrated_per_sec * cfg.factor;
    say(&format!(
        "calibrated: {:.0} events/s; feeding {:.0}/s for {} s",
        report.calibrated_per_sec, report.target_per_sec, cfg.seconds
    ));

    // 2. The overload, with memory sampled.
    let mut over = fleet("overload");
    chaos::create_topics(&fleet_cfg, &brokers, &over.topics)?;
    over.spawn(0)?;
    let pid = over.slots[0].as_ref().context("no instance")?.0.id();
    // Let it start (and join the group) before the input arrives.
    thread::sleep(Duration::from_secs(3));
    report.rss_start_mib = rss_mib(pid, "VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let producer = feed(
        &brokers,
        &over.topics.name("submissions"),
        cfg.seed,
        cfg.poison_every,
        cfg.panic_every,
        report.target_per_sec,
        None,
        stop.clone(),
    )?;
    let seen = Arc::new(AtomicU64::new(0));
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let verifier = {
        let (brokers, topics, seen, expected) = (
            brokers.clone(),
            over.topics.clone(),
            seen.clone(),
            expected.clone(),
        );
        let (partitions, timeout) = (
            cfg.partitions,
            cfg.harness.drain_timeout + Duration::from_secs(cfg.seconds),
        );
        thread::spawn(move || {
            let mut last = Instant::now();
            let counts = count_outputs(
                &brokers,
                &topics,
                partitions,
                || match expected.load(Relaxed) {
                    u64::MAX => None,
                    e => Some(e as usize),
                },
                timeout,
                &seen,
                |_| last = Instant::now(),
            );
            counts.map(|c| (c, last))
        })
    };
    let feed_start = Instant::now();
    let seen_at_start = seen.load(Relaxed);
    while feed_start.elapsed() < Duration::from_secs(cfg.seconds) {
        report.rss_max_sampled_mib = report.rss_max_sampled_mib.max(rss_mib(pid, "VmRSS:"));
        thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Relaxed);
    let ids = producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    let fed_for = feed_start.elapsed().as_secs_f64();
    let feed_end = Instant::now();
    let out_during = seen.load(Relaxed) - seen_at_start;
    report.inputs = ids.len();
    report.poison = ids.iter().filter(|id| !id.starts_with("syn-")).count();
    report.fed_per_sec = ids.len() as f64 / fed_for;
    report.processed_per_sec_during = out_during as f64 / fed_for;
    report.backlog_at_end_of_feed = (ids.len() as u64).saturating_sub(seen.load(Relaxed));
    say(&format!(
        "fed {} inputs at {:.0}/s; processed {:.0}/s meanwhile; backlog {}; draining",
        ids.len(),
        report.fed_per_sec,
        report.processed_per_sec_during,
        report.backlog_at_end_of_feed
    ));
    expected.store(ids.len() as u64, Relaxed);
    while !verifier.is_finished() {
        report.rss_max_sampled_mib = report.rss_max_sampled_mib.max(rss_mib(pid, "VmRSS:"));
        thread::sleep(Duration::from_millis(250));
    }
    let ((counts, panics_with_verdict), last) = verifier
        .join()
        .map_err(|_| anyhow::anyhow!("the verifier thread panicked"))??;
    report.panics_with_verdict = panics_with_verdict;
    report.drain_seconds = last.saturating_duration_since(feed_end).as_secs_f64();
    report.rss_peak_mib = rss_mib(pid, "VmHWM:");
    over.stop_all()?;

    // 3. One output per input.
    report.outputs = counts.values().map(|n| *n as usize).sum();
    let mut expected_ids: HashMap<&str, ()> = HashMap::with_capacity(ids.len());
    for id in &ids {
        expected_ids.insert(id.as_str(), ());
    }
    report.missing = expected_ids
        .keys()
        .filter(|id| !counts.contains_key(**id))
        .count();
    report.duplicated = counts.values().map(|n| n.saturating_sub(1) as usize).sum();
    report.unexpected = counts
        .keys()
        .filter(|id| !expected_ids.contains_key(id.as_str()))
        .count();
    report.seconds = started.elapsed().as_secs_f64();
    say(&format!(
        "outputs {}: missing {}, duplicated {}, unexpected {}, panics with a verdict {}; resident memory peak {:.0} MiB (bound {} MiB)",
        report.outputs, report.missing, report.duplicated, report.unexpected, report.panics_with_verdict, report.rss_peak_mib, cfg.rss_bound_mib
    ));
    Ok(report)
}
