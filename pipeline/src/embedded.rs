//! Embedded mode: `spamflow run` with no brokers configured.
//!
//! Starts librdkafka's in-process mock cluster, creates the topics, and runs three
//! things concurrently against it: a replayer that sends the bundled sample traffic
//! (with fresh message ids and `submitted_at` = now) at `embedded.rate`, the real
//! pipeline, and an observer that reads `sms.verdicts` and the DLQ read_committed and
//! checks that every event got exactly one verdict or DLQ record.
//!
//! The mock cluster keeps only about the newest 5 MiB / 100k messages per partition and
//! silently drops older ones, which is why the three run concurrently and why the
//! summary counts, per event, whether its verdict arrived.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use spamflow_schemas::{SubmissionEvent, Verdict};

use crate::config::Config;
use crate::kafka::{base_config, base_consumer_config, send_with_backpressure, topic_specs};
use crate::metrics::Metrics;
use crate::registry::Load;
use crate::runtime::{self, Stop};
use crate::sample;
use crate::Operators;
use spamflow_operators::origin::parse_sender;

/// Options of an embedded run.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// How long to replay; `None` runs until SIGINT/SIGTERM.
    pub duration: Option<Duration>,
    /// Write the summary as JSON here.
    pub summary_json: Option<PathBuf>,
    /// Print a live line each second.
    pub live: bool,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

/// Figures of an embedded run (also written as JSON).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Replay time, seconds.
    pub duration_s: f64,
    /// `exactly_once` or `at_least_once`.
    pub guarantee: String,
    /// Active rules.
    pub rules_version: String,
    /// Events sent to the input topic (including malformed ones).
    pub events_in: u64,
    /// Of those, deliberately malformed.
    pub malformed_in: u64,
    /// Verdicts read back (read_committed).
    pub verdicts_out: u64,
    /// Verdicts by action.
    pub by_action: BTreeMap<String, u64>,
    /// Verdicts with action block.
    pub blocked: u64,
    /// DLQ records read back.
    pub dlq: u64,
    /// Events with neither a verdict nor a DLQ record.
    pub missing: u64,
    /// Events with more than one verdict or DLQ record.
    pub duplicates: u64,
    /// The first of them (at most [`DUPLICATES_NAMED`]), each with the places of its first
    /// and its repeated answer and of its submissions: `emb-12: verdicts 2@4410, verdicts
    /// 2@4502; submitted at 0@3301` (topic, partition@offset), so that a duplicate can be
    /// traced in the topics (two submissions: the replay duplicated it; one: the pipeline
    /// judged it twice).
    pub duplicated: Vec<String>,
    /// Verdicts per second over the replay.
    pub events_per_s: f64,
    /// submitted_at -> verdict readable.
    pub latency: Latency,
    /// Pipeline transactions committed.
    pub commits: u64,
    /// Pipeline transactions aborted.
    pub aborts: u64,
    /// Partition assignments and revocations the pipeline handled (2 in a run without a
    /// rebalance: the first assignment and the revocation at shutdown).
    pub rebalances: u64,
}

impl Summary {
    /// The final table.
    pub fn render(&self) -> String {
        let rows: Vec<(&str, String)> = vec![
            ("duration", format!("{:.1} s", self.duration_s)),
            ("guarantee", self.guarantee.clone()),
            ("rules_version", self.rules_version.clone()),
            (
                "events in",
                format!("{} ({} malformed)", self.events_in, self.malformed_in),
            ),
            ("verdicts out", self.verdicts_out.to_string()),
            (
                "  by action",
                self.by_action
                    .iter()
                    .map(|(a, n)| format!("{a} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("blocked", self.blocked.to_string()),
            ("dlq", self.dlq.to_string()),
            ("missing", self.missing.to_string()),
            ("duplicates", self.duplicates.to_string()),
            ("events/s", format!("{:.0}", self.events_per_s)),
            (
                "latency p50/p90/p99/max",
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1} ms",
                    self.latency.p50_ms,
                    self.latency.p90_ms,
                    self.latency.p99_ms,
                    self.latency.max_ms
                ),
            ),
            (
                "commits / aborts",
                format!("{} / {}", self.commits, self.aborts),
            ),
            ("rebalances", self.rebalances.to_string()),
        ];
        let mut s = String::from(
            "+---------------------------+------------------------------------------+\n",
        );
        for (k, v) in rows {
            s.push_str(&format!("| {k:<25} | {v:<40} |\n"));
        }
        s.push_str("+---------------------------+------------------------------------------+\n");
        s
    }
}

/// How many duplicated events a summary names.
pub const DUPLICATES_NAMED: usize = 10;

/// Where an answer was read.
#[derive(Debug, Clone, Copy, Default)]
struct Place {
    dlq: bool,
    partition: i32,
    offset: i64,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let topic = if self.dlq { "dlq" } else { "verdicts" };
        write!(f, "{topic} {}@{}", self.partition, self.offset)
    }
}

/// Per-event accounting: index = replay sequence number.
struct Ledger {
    /// Answers read per event, and where the first was read.
    seen: Mutex<Vec<(u8, Place)>>,
    /// The first duplicated events, each with where both answers were read.
    duplicated: Mutex<Vec<(usize, String)>>,
    produced: AtomicU64,
    malformed: AtomicU64,
    verdicts: AtomicU64,
    blocked: AtomicU64,
    dlq: AtomicU64,
    duplicates: AtomicU64,
    answered: AtomicUsize,
    by_action: Mutex<BTreeMap<String, u64>>,
    latency: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Ledger {
    fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        Ledger {
            seen: Mutex::new(Vec::new()),
            duplicated: Mutex::new(Vec::new()),
            produced: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            verdicts: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            dlq: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            answered: AtomicUsize::new(0),
            by_action: Mutex::new(BTreeMap::new()),
            latency: Mutex::new((h(), h())),
        }
    }

    fn mark(&self, seq: usize, at: Place) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() <= seq {
            seen.resize(seq + 1, (0, Place::default()));
        }
        let (count, first) = &mut seen[seq];
        if *count > 0 {
            self.duplicates.fetch_add(1, Relaxed);
            let mut named = self.duplicated.lock().unwrap_or_else(|e| e.into_inner());
            if named.len() < DUPLICATES_NAMED {
                named.push((seq, format!("emb-{seq}: {first}, {at}")));
            }
        } else {
            self.answered.fetch_add(1, Relaxed);
            *first = at;
        }
        *count = count.saturating_add(1);
    }

    fn missing(&self) -> u64 {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let produced = self.produced.load(Relaxed) as usize;
        (0..produced)
            .filter(|i| seen.get(*i).is_none_or(|(count, _)| *count == 0))
            .count() as u64
    }
}

/// Settings for running against librdkafka's mock cluster instead of a real broker
/// (kept where the user has not set them):
/// - it answers a fetch only when `fetch.wait.max.ms` expires, not when data arrives as a
///   real broker does: a short wait keeps verdict latency realistic;
/// - it neither lets a member leave nor a static member rejoin at once, but waits out
///   the session: no static membership, and a short session.
pub fn adapt_to_mock(cfg: &mut Config) {
    cfg.kafka.group_instance_id = None;
    for (k, v) in [
        ("fetch.wait.max.ms", "5"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ] {
        cfg.kafka
            .consumer
            .entry(k.into())
            .or_insert_with(|| v.into());
    }
}

/// Runs the embedded pipeline. Returns the summary; an error if any event got no
/// verdict, or got two.
pub fn run(
    cfg: &Config,
    ops: Operators,
    opts: &EmbeddedOptions,
    stop: Stop,
) -> anyhow::Result<Summary> {
    let mut cfg = cfg.clone();
    adapt_to_mock(&mut cfg);
    let cfg = &cfg;
    let mock = MockCluster::new(1).context("starting the in-process Kafka mock cluster")?;
    let brokers = mock.bootstrap_servers();
    for t in topic_specs(cfg, cfg.embedded.partitions) {
        mock.create_topic(&t.name, t.partitions, 1)
            .with_context(|| format!("creating topic {} on the mock cluster", t.name))?;
    }
    println!("embedded broker at {brokers}; topics created ({} partitions); replaying sample traffic at {}/s", cfg.embedded.partitions, cfg.embedded.rate);

    let metrics = Arc::new(Metrics::for_operators(&ops));
    let ledger = Arc::new(Ledger::new());
    let chain = ops.chain;
    let rules_version = chain.rules_version();

    // The sample's legitimate bulk senders are registered to their relay operators;
    // spam sent through relays from unregistered numbers is what the registry catches.
    let registrations = sample::registry().context("decoding the bundled sample registry")?;
    let records: Vec<_> = registrations
        .into_iter()
        .map(|r| (r.number.clone(), Some(r)))
        .collect();
    crate::registry::publish(cfg, &brokers, &records)?;
    let follower_stop = Stop::new();
    let follower = crate::registry::follow(
        cfg,
        &brokers,
        ops.registry.clone(),
        metrics.clone(),
        follower_stop.clone(),
    )?;
    // A stop while loading (SIGTERM during start-up) ends the run like one later on.
    match follower.wait_loaded(&stop, Duration::from_secs(60)) {
        Load::Loaded | Load::Stopped => {}
        Load::TimedOut | Load::Failed => {
            anyhow::bail!("the sender registry did not load from the embedded broker")
        }
    }
    let report_follower = crate::reports::follow(
        cfg,
        &brokers,
        ops.reported.clone(),
        ops.registry.clone(),
        metrics.clone(),
        follower_stop.clone(),
    )?;

    let pipeline_stop = Stop::new();
    let pipeline = {
        let (cfg, brokers, metrics, stop) = (
            cfg.clone(),
            brokers.clone(),
            metrics.clone(),
            pipeline_stop.clone(),
        );
        std::thread::Builder::new()
            .name("spamflow-engine".into())
            .spawn(move || runtime::run(&cfg, &brokers, chain, metrics, stop))?
    };
    // Replay starts once the pipeline owns its partitions, so that the latency figures
    // measure the pipeline and not the consumer group's first join.
    let ready_by = Instant::now() + Duration::from_secs(60);
    // Each round waits in `stop.wait` (a condition variable with a timeout).
    while !metrics.ready.load(Relaxed) && !pipeline.is_finished() && Instant::now() < ready_by {
        if stop.wait(Duration::from_millis(20)) {
            break;
        }
    }
    let observer_stop = Stop::new();
    let observer = {
        let (cfg, brokers, ledger, stop) = (
            cfg.clone(),
            brokers.clone(),
            ledger.clone(),
            observer_stop.clone(),
        );
        std::thread::Builder::new()
            .name("spamflow-observer".into())
            .spawn(move || observe(&cfg, &brokers, &ledger, &stop))?
    };
    let replay_stop = Stop::new();
    let replayer = {
        let (cfg, brokers, ledger, stop) = (
            cfg.clone(),
            brokers.clone(),
            ledger.clone(),
            replay_stop.clone(),
        );
        std::thread::Builder::new()
            .name("spamflow-replayer".into())
            .spawn(move || replay(&cfg, &brokers, &ledger, &stop))?
    };

    let t0 = Instant::now();
    let mut last_line = (Instant::now(), 0u64);
    let end = opts.duration.map(|d| t0 + d);
    while !stop.is_set() && end.is_none_or(|e| Instant::now() < e) && !replayer.is_finished() {
        stop.wait(Duration::from_millis(100));
        if opts.live && last_line.0.elapsed() >= Duration::from_secs(1) {
            let v = ledger.verdicts.load(Relaxed);
            let rate = (v - last_line.1) as f64 / last_line.0.elapsed().as_secs_f64();
            let (p50, p99) = {
                let mut l = ledger.latency.lock().unwrap_or_else(|e| e.into_inner());
                let r = (
                    l.1.value_at_quantile(0.5) as f64 / 1000.0,
                    l.1.value_at_quantile(0.99) as f64 / 1000.0,
                );
                l.1.reset();
                r
            };
            println!(
                "[{:>5.1}s] in {:>8}  processed {:>8}  verdicts {:>8}  blocked {:>7}  dlq {:>5}  {:>7.0} ev/s  p50 {:>6.1} ms  p99 {:>6.1} ms",
                t0.elapsed().as_secs_f64(),
                ledger.produced.load(Relaxed),
                metrics.consumed.load(Relaxed),
                v,
                ledger.blocked.load(Relaxed),
                ledger.dlq.load(Relaxed),
                rate,
                p50,
                p99
            );
            last_line = (Instant::now(), v);
        }
    }
    replay_stop.trigger();
    let replay_result = replayer
        .join()
        .map_err(|_| anyhow::anyhow!("replayer thread panicked"))?;
    let duration = t0.elapsed();
    // Drain: wait until every produced event is answered or the drain timeout passes.
    let drain_until = Instant::now() + Duration::from_millis(cfg.embedded.drain_timeout_ms);
    while (ledger.answered.load(Relaxed) as u64) < ledger.produced.load(Relaxed)
        && Instant::now() < drain_until
    {
        observer_stop.wait(Duration::from_millis(20));
    }
    pipeline_stop.trigger();
    let pipeline_result = pipeline
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline thread panicked"))?;
    observer_stop.trigger();
    let observer_result = observer
        .join()
        .map_err(|_| anyhow::anyhow!("observer thread panicked"))?;
    follower_stop.trigger();
    let _ = follower.handle.join();
    if let Some(h) = report_follower {
        let _ = h.join();
    }
    // A duplicate is named with where its submission was read too: two submissions of
    // one event (the replayer's fault) or one submission judged twice (the pipeline's).
    let duplicated: Vec<String> = {
        let named = ledger
            .duplicated
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let inputs = if named.is_empty() {
            BTreeMap::new()
        } else {
            submissions_of(cfg, &brokers, named.iter().map(|(seq, _)| *seq)).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the submissions of duplicated events");
                BTreeMap::new()
            })
        };
        named
            .into_iter()
            .map(|(seq, text)| match inputs.get(&seq) {
                Some(at) => format!("{text}; submitted at {}", at.join(", ")),
                None => text,
            })
            .collect()
    };
    drop(mock);
    replay_result.context("replaying sample traffic")?;
    pipeline_result.context("pipeline")?;
    observer_result.context("reading verdicts")?;

    let latency = {
        let l = ledger.latency.lock().unwrap_or_else(|e| e.into_inner());
        let q = |x: f64| l.0.value_at_quantile(x) as f64 / 1000.0;
        Latency {
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            max_ms: l.0.max() as f64 / 1000.0,
        }
    };
    let verdicts_out = ledger.verdicts.load(Relaxed);
    let summary = Summary {
        duration_s: duration.as_secs_f64(),
        guarantee: serde_json::to_value(cfg.processing.guarantee)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        rules_version,
        events_in: ledger.produced.load(Relaxed),
        malformed_in: ledger.malformed.load(Relaxed),
        verdicts_out,
        by_action: ledger
            .by_action
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        blocked: ledger.blocked.load(Relaxed),
        dlq: ledger.dlq.load(Relaxed),
        missing: ledger.missing(),
        duplicates: ledger.duplicates.load(Relaxed),
        duplicated,
        events_per_s: verdicts_out as f64 / duration.as_secs_f64().max(1e-9),
        latency,
        commits: metrics.commits.load(Relaxed),
        aborts: metrics.aborts.load(Relaxed),
        rebalances: metrics.rebalances.load(Relaxed),
    };
    print!("{}", summary.render());
    if let Some(path) = &opts.summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if summary.missing > 0 || summary.duplicates > 0 {
        anyhow::bail!(
            "{} events got no verdict and {} got more than one{}",
            summary.missing,
            summary.duplicates,
            if summary.duplicated.is_empty() {
                String::new()
            } else {
                format!(" ({})", summary.duplicated.join("; "))
            }
        );
    }
    Ok(summary)
}

/// Sends the bundled sample in a loop at `embedded.rate`, with fresh ids and event times.
fn replay(cfg: &Config, brokers: &str, ledger: &Ledger, stop: &Stop) -> anyhow::Result<()> {
    let samples = sample::events().context("decoding the bundled sample traffic")?;
    let malformed = sample::malformed();
    let producer: ThreadedProducer<DefaultProducerContext> = base_config(cfg, brokers)
        .set("linger.ms", "2")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("creating the replay producer")?;
    let rate = f64::from(cfg.embedded.rate);
    let t0 = Instant::now();
    let mut seq: u64 = 0;
    let mut body = Vec::with_capacity(1024);
    while !stop.is_set() {
        let due = (t0.elapsed().as_secs_f64() * rate) as u64;
        if seq >= due {
            stop.wait(Duration::from_millis(1));
            continue;
        }
        while seq < due {
            let every = u64::from(cfg.embedded.malformed_every);
            let (key, payload): (String, Vec<u8>) = if every > 0 && seq % every == every - 1 {
                ledger.malformed.fetch_add(1, Relaxed);
                (
                    format!("bad-{seq}"),
                    malformed[(seq / every) as usize % malformed.len()].clone(),
                )
            } else {
                let mut ev: SubmissionEvent = samples[seq as usize % samples.len()].clone();
                ev.message_id = format!("emb-{seq}");
                ev.submitted_at = Utc::now();
                body.clear();
                serde_json::to_writer(&mut body, &ev)?;
                // Keyed by the normalized sender, as producers should: one sender, one partition.
                (parse_sender(&ev.sender).key, body.clone())
            };
            let rec = BaseRecord::to(&cfg.topics.submissions)
                .key(&key)
                .payload(&payload);
            send_with_backpressure(&producer, rec).context("replay produce failed")?;
            seq += 1;
            ledger.produced.store(seq, Relaxed);
        }
    }
    producer
        .flush(Duration::from_secs(30))
        .context("flushing replayed events")?;
    Ok(())
}

/// Reads verdicts and DLQ records (read_committed) and marks each event answered.
fn observe(cfg: &Config, brokers: &str, ledger: &Ledger, stop: &Stop) -> anyhow::Result<()> {
    let consumer: BaseConsumer = reader_config(cfg, brokers)
        .set("isolation.level", "read_committed")
        .create()
        .context("creating the verdict observer")?;
    let mut tpl = from_start(&cfg.topics.verdicts, cfg.embedded.partitions)?;
    tpl.add_partition_offset(&cfg.topics.dlq, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    while !stop.is_set() {
        let Some(r) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let m = match r {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "observer poll error");
                continue;
            }
        };
        if m.topic() == cfg.topics.dlq {
            let seq = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.strip_prefix("bad-"))
                .and_then(|s| s.parse().ok());
            if let Some(seq) = seq {
                ledger.dlq.fetch_add(1, Relaxed);
                ledger.mark(seq, place(&m, true));
            }
            continue;
        }
        let Some(v) = m
            .payload()
            .and_then(|p| serde_json::from_slice::<Verdict>(p).ok())
        else {
            tracing::warn!(offset = m.offset(), "unreadable verdict");
            continue;
        };
        let Some(seq) = v
            .message_id
            .strip_prefix("emb-")
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        let age_us = (Utc::now() - v.submitted_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(1) as u64;
        {
            let mut l = ledger.latency.lock().unwrap_or_else(|e| e.into_inner());
            let _ = l.0.record(age_us);
            let _ = l.1.record(age_us);
        }
        ledger.verdicts.fetch_add(1, Relaxed);
        if v.action == spamflow_schemas::Action::Block {
            ledger.blocked.fetch_add(1, Relaxed);
        }
        *ledger
            .by_action
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(v.action.as_str().to_owned())
            .or_default() += 1;
        ledger.mark(seq, place(&m, false));
    }
    Ok(())
}

/// Where the submissions of events `seqs` are in the submissions topic (`partition@offset`,
/// one per copy), read from the beginning to the end.
fn submissions_of(
    cfg: &Config,
    brokers: &str,
    seqs: impl Iterator<Item = usize>,
) -> anyhow::Result<BTreeMap<usize, Vec<String>>> {
    let wanted: std::collections::BTreeSet<usize> = seqs.collect();
    let consumer: BaseConsumer = reader_config(cfg, brokers)
        .set("enable.partition.eof", "true")
        .create()
        .context("creating the submissions reader")?;
    consumer.assign(&from_start(
        &cfg.topics.submissions,
        cfg.embedded.partitions,
    )?)?;
    let mut found: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while at_end.len() < cfg.embedded.partitions as usize {
        anyhow::ensure!(Instant::now() < deadline, "reading submissions timed out");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let seq = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<SubmissionEvent>(p).ok())
                    .and_then(|e| e.message_id.strip_prefix("emb-")?.parse::<usize>().ok());
                if let Some(seq) = seq.filter(|s| wanted.contains(s)) {
                    found
                        .entry(seq)
                        .or_default()
                        .push(format!("{}@{}", m.partition(), m.offset()));
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => tracing::debug!(error = %e, "submissions reader poll error"),
            None => {}
        }
    }
    for places in found.values_mut() {
        places.sort();
    }
    Ok(found)
}

/// The settings of the embedded run's own readers: they assign partitions and never commit.
fn reader_config(cfg: &Config, brokers: &str) -> rdkafka::ClientConfig {
    let mut c = base_consumer_config(cfg, brokers);
    c.set("group.id", "spamflow-embedded-observer")
        .set("enable.auto.commit", "false");
    c
}

/// Partitions `0..partitions` of `topic`, each from its beginning.
fn from_start(topic: &str, partitions: i32) -> anyhow::Result<TopicPartitionList> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    Ok(tpl)
}

fn place(m: &impl Message, dlq: bool) -> Place {
    Place {
        dlq,
        partition: m.partition(),
        offset: m.offset(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_names_a_duplicate_with_both_places_and_counts_the_missing() {
        let ledger = Ledger::new();
        ledger.produced.store(4, Relaxed);
        let at = |dlq, partition, offset| Place {
            dlq,
            partition,
            offset,
        };
        ledger.mark(0, at(false, 1, 10));
        ledger.mark(2, at(true, 0, 3));
        ledger.mark(0, at(false, 2, 11));
        assert_eq!(ledger.duplicates.load(Relaxed), 1);
        assert_eq!(ledger.answered.load(Relaxed), 2);
        assert_eq!(
            *ledger.duplicated.lock().unwrap(),
            [(0, "emb-0: verdicts 1@10, verdicts 2@11".to_owned())]
        );
        // Events 1 and 3 got nothing.
        assert_eq!(ledger.missing(), 2);
    }

    #[test]
    fn a_duplicated_event_is_found_in_the_submissions_once_per_copy() {
        let mut cfg = Config::default();
        cfg.embedded.partitions = 2;
        let mock = MockCluster::new(1).unwrap();
        let brokers = mock.bootstrap_servers();
        mock.create_topic(&cfg.topics.submissions, 2, 1).unwrap();
        let producer: ThreadedProducer<DefaultProducerContext> =
            base_config(&cfg, &brokers).create().unwrap();
        let mut ev = sample::events().unwrap()[0].clone();
        for (partition, id) in [(0, "emb-0"), (1, "emb-1"), (0, "emb-1"), (1, "emb-2")] {
            ev.message_id = id.into();
            let body = serde_json::to_vec(&ev).unwrap();
            producer
                .send(
                    BaseRecord::<(), _>::to(&cfg.topics.submissions)
                        .partition(partition)
                        .payload(&body),
                )
                .unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
        let found = submissions_of(&cfg, &brokers, [1, 2, 7].into_iter()).unwrap();
        assert_eq!(
            found,
            BTreeMap::from([
                (1, vec!["0@1".to_owned(), "1@0".to_owned()]),
                (2, vec!["1@1".to_owned()]),
            ])
        );
    }
}
