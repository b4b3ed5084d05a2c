//! Helpers shared by the mock-cluster and real-broker tests.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spamflow_operators::{
    ChainBuilder, EventCtx, Signal, StateError, StateUpdate, StatefulOperator,
};
use spamflow_pipeline::config::Config;
use spamflow_pipeline::metrics::Metrics;
use spamflow_pipeline::runtime::{self, Stop};
use spamflow_schemas::Verdict;

/// Bootstrap address of the real broker `make test` starts. Outside CI a missing broker
/// skips the test with a message; in CI (`CI` set) it fails, so real-broker tests never
/// silently skip there.
pub fn real_brokers() -> Option<String> {
    match std::env::var("SPAMFLOW_TEST_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ if std::env::var_os("CI").is_some() => panic!("SPAMFLOW_TEST_BROKERS is not set in CI: the real-broker tests must run (use `make test`)"),
        _ => {
            eprintln!("SKIPPED: SPAMFLOW_TEST_BROKERS is not set; `make test` starts a broker and sets it");
            None
        }
    }
}

/// A name unique to this test run.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{tag}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A config whose topics and group are unique to `tag`.
pub fn config(brokers: &str, tag: &str) -> Config {
    let id = unique(tag);
    let mut cfg = Config::default();
    cfg.kafka.brokers = brokers.to_owned();
    cfg.kafka.group_id = format!("g-{id}");
    cfg.kafka.group_instance_id = Some("it-1".into());
    let t = &mut cfg.topics;
    for (slot, name) in [
        (&mut t.submissions, "in"),
        (&mut t.verdicts, "verdicts"),
        (&mut t.block, "block"),
        (&mut t.alerts, "alerts"),
        (&mut t.dlq, "dlq"),
        (&mut t.registry, "registry"),
        (&mut t.changelog, "changelog"),
        (&mut t.reports, "reports"),
        (&mut t.reported_content, "reported"),
        (&mut t.report_resolutions, "resolutions"),
        (&mut t.campaign_contents, "campaigns"),
        (&mut t.number_proposals, "proposals"),
        (&mut t.operator_stats, "stats"),
    ] {
        *slot = format!("{name}-{id}");
    }
    cfg.processing.commit_interval_ms = 50;
    cfg.processing.workers = 2;
    cfg.processing.kafka_timeout_ms = 20_000;
    cfg.admin.listen = String::new();
    cfg
}

/// A spam report made now, from the 118 centre, without a category.
pub fn spam_report(
    id: &str,
    reporter: &str,
    sender: &str,
    text: &str,
) -> spamflow_schemas::SpamReport {
    spamflow_schemas::SpamReport {
        schema_version: 1,
        report_id: id.to_owned(),
        reported_at: chrono::Utc::now(),
        reporter: reporter.to_owned(),
        sender: sender.to_owned(),
        text: Some(text.to_owned()),
        message_id: None,
        channel: spamflow_schemas::ReportChannel::Kisa118,
        category: None,
    }
}

/// Seeded synthetic events: (key, payload, message_id).
pub fn events(n: usize, seed: u64) -> Vec<(String, Vec<u8>, String)> {
    events_from(n, seed, "2026-03-01T09:00:00Z", 200.0)
}

/// Seeded synthetic events from `start`, `per_sec` of them per second of event time.
pub fn events_from(
    n: usize,
    seed: u64,
    start: &str,
    per_sec: f64,
) -> Vec<(String, Vec<u8>, String)> {
    let mut synth = spamflow_loadtest::synth::Synth::new(seed, start.parse().unwrap(), per_sec);
    (0..n)
        .map(|_| {
            let (doc, _) = synth.next_event();
            let id = doc["message_id"].as_str().unwrap().to_owned();
            (
                spamflow_operators::origin::parse_sender(doc["sender"].as_str().unwrap()).key,
                serde_json::to_vec(&doc).unwrap(),
                id,
            )
        })
        .collect()
}

/// The (key, payload) pairs of `events`.
pub fn kv(evs: &[(String, Vec<u8>, String)]) -> Vec<(String, Vec<u8>)> {
    evs.iter().map(|(k, v, _)| (k.clone(), v.clone())).collect()
}

pub fn produce(brokers: &str, topic: &str, records: &[(String, Vec<u8>)]) {
    produce_with(brokers, topic, records, &[]);
}

/// [`produce`] with extra producer settings (e.g. a larger `message.max.bytes`).
pub fn produce_with(
    brokers: &str,
    topic: &str,
    records: &[(String, Vec<u8>)],
    settings: &[(&str, &str)],
) {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    for (k, v) in settings {
        cfg.set(*k, *v);
    }
    let p: ThreadedProducer<DefaultProducerContext> = cfg.create().unwrap();
    for (k, v) in records {
        spamflow_loadtest::kafka::send(
            &p,
            BaseRecord::to(topic)
                .key(k.as_bytes())
                .payload(v.as_slice()),
        );
    }
    p.flush(Duration::from_secs(30)).unwrap();
}

/// One consumed record.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: BTreeMap<String, String>,
}

/// Reads `topic` from the beginning, read_committed, until `want` records arrived and
/// the topic stays quiet for `settle` (to catch duplicates), or `timeout` passes.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    want: usize,
    settle: Duration,
    timeout: Duration,
) -> Vec<Record> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "20")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        if out.len() >= want && quiet_since.elapsed() >= settle {
            break;
        }
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            {
                let mut headers = BTreeMap::new();
                if let Some(h) = m.headers() {
                    for hdr in h.iter() {
                        headers.insert(
                            hdr.key.to_owned(),
                            String::from_utf8_lossy(hdr.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push(Record {
                    partition: m.partition(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().map(<[u8]>::to_vec),
                    headers,
                });
                quiet_since = Instant::now();
            }
        }
    }
    out
}

pub fn verdicts(records: &[Record]) -> Vec<Verdict<'static>> {
    records
        .iter()
        .map(|r| serde_json::from_slice(r.payload.as_deref().unwrap()).unwrap())
        .collect()
}

/// Asserts one verdict per expected id: none missing, none duplicated.
pub fn assert_exactly_once(verdicts: &[Verdict], expected: &[String]) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for v in verdicts {
        *count.entry(&v.message_id).or_default() += 1;
    }
    let expected_set: HashSet<&str> = expected.iter().map(String::as_str).collect();
    let missing: Vec<&&str> = expected_set
        .iter()
        .filter(|id| !count.contains_key(**id))
        .take(5)
        .collect();
    let dups: Vec<(&&str, &usize)> = count.iter().filter(|(_, n)| **n > 1).take(5).collect();
    let foreign: Vec<&&str> = count
        .keys()
        .filter(|id| !expected_set.contains(**id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty() && dups.is_empty() && foreign.is_empty(),
        "{} verdicts for {} events; missing e.g. {missing:?}, duplicated e.g. {dups:?}, unexpected e.g. {foreign:?}",
        verdicts.len(),
        expected.len()
    );
}

/// The pipeline running in-process on a thread.
pub struct Running {
    pub stop: Stop,
    pub metrics: Arc<Metrics>,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn start(cfg: &Config, chain: ChainBuilder) -> Running {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let stop = Stop::new();
        let metrics = Arc::new(Metrics::default());
        let (c, s, m) = (cfg.clone(), stop.clone(), metrics.clone());
        let handle = std::thread::spawn(move || runtime::run(&c, &c.kafka.brokers, chain, m, s));
        Running {
            stop,
            metrics,
            handle,
        }
    }

    /// Waits until `cond(metrics)` holds (or panics after `timeout`).
    pub fn wait_for(&self, timeout: Duration, what: &str, cond: impl Fn(&Metrics) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(&self.metrics) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {}",
                self.metrics.render()
            );
            assert!(
                !self.handle.is_finished(),
                "pipeline exited while waiting for {what}"
            );
            Stop::new().wait(Duration::from_millis(20));
        }
    }

    /// Waits for the pipeline to end by itself (or panics after `timeout`), returning how
    /// it ended.
    pub fn exited(self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.handle.is_finished() {
            assert!(Instant::now() < deadline, "the pipeline did not exit");
            Stop::new().wait(Duration::from_millis(20));
        }
        self.handle.join().unwrap()
    }

    pub fn stop(self) -> Arc<Metrics> {
        self.stop.trigger();
        self.handle.join().unwrap().unwrap();
        self.metrics
    }
}

/// Test fixture, not a detector: a stateful operator that counts messages per sender
/// and reports the running count as evidence (score 0), so that a verdict shows whether
/// state survived a restart.
#[derive(Debug, Default)]
pub struct CountingOperator {
    parts: HashMap<i32, (HashMap<String, u64>, HashSet<String>)>,
}

impl StatefulOperator for CountingOperator {
    fn name(&self) -> &'static str {
        "fixture"
    }
    fn content_hash(&self) -> String {
        "fixture-v1".into()
    }
    fn inspect(&mut self, ctx: &EventCtx<'_>, out: &mut Vec<Signal>) {
        let (counts, dirty) = self.parts.entry(ctx.partition).or_default();
        let n = counts.entry(ctx.event.sender.clone()).or_default();
        if !ctx.counted {
            *n += 1;
            dirty.insert(ctx.event.sender.clone());
        }
        out.push(Signal {
            evidence: Some(format!("count={n}")),
            ..Signal::new("fixture", "fixture.count", "fixture", 0)
        });
    }
    fn assigned(&mut self, partition: i32) {
        self.parts.insert(partition, Default::default());
    }
    fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let key = String::from_utf8_lossy(key).into_owned();
        let (counts, _) = self.parts.entry(partition).or_default();
        match value {
            None => {
                counts.remove(&key);
            }
            Some(v) => {
                let n = std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| StateError {
                        operator: "fixture",
                        key: key.clone(),
                        detail: "not a number".into(),
                    })?;
                counts.insert(key, n);
            }
        }
        Ok(())
    }
    fn revoked(&mut self, partition: i32) {
        self.parts.remove(&partition);
    }
    fn snapshot(&mut self, partition: i32, out: &mut Vec<StateUpdate>) {
        if let Some((counts, dirty)) = self.parts.get_mut(&partition) {
            for k in dirty.drain() {
                out.push(StateUpdate {
                    key: k.clone().into_bytes(),
                    value: counts.get(&k).map(|n| n.to_string().into_bytes()),
                });
            }
        }
    }
}

/// The production chain (default rule pack) plus the counting fixture.
pub fn counting_chain() -> ChainBuilder {
    plain_chain().stateful("fixture", || Box::new(CountingOperator::default()))
}

/// The production chain with the default rule pack.
pub fn plain_chain() -> ChainBuilder {
    spamflow_pipeline::chain(&Config::default()).unwrap()
}

/// The counting fixture's reason in a verdict.
pub fn fixture_count<'v>(v: &'v Verdict<'_>) -> &'v spamflow_schemas::Reason<'v> {
    v.reasons
        .iter()
        .find(|r| r.code == "fixture.count")
        .expect("fixture reason")
}
