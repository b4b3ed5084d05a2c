//! The fault harness: the exactly-once pipeline under random process kills, broker
//! bounces and scaling, in the manner of Apache Kafka's own EOS system tests
//! (`transactions_test.py`, `streams_eos_test.py`).
//!
//! It runs its own single-node broker (`scripts/kafka.sh` on ports of its own, so the
//! broker `make test` shares between tests is never bounced), seeds unique events over
//! the input partitions (valid traffic plus poison records that must reach the DLQ), and
//! while a producer feeds them steadily it runs `spamflow run` processes and:
//! - kills a random instance with SIGKILL and starts it again, some of the time a second
//!   time within seconds of its start (during restore and the rebalance it triggers);
//!   with commits every 100 ms most kills land inside an open transaction;
//! - stops and starts the broker (alternately SIGTERM and SIGKILL);
//! - scales 1 -> 2 -> 3 -> 1 instances (scale-down by SIGTERM, as Kubernetes does).
//!
//! An instance that exits on its own is started again, as Kubernetes would, and counted.
//! Then a read_committed verifier asserts that every valid input has exactly one verdict,
//! every poison record exactly one DLQ record, nothing is duplicated and nothing foreign
//! appears. Last, the same input runs through one uninterrupted instance on topics of its
//! own: every decision (the verdict without `decided_at`) and the final operator state
//! (the changelog, key by key) must be equal.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use spamflow_operators::origin::parse_sender;
use spamflow_schemas::Verdict;

use crate::synth::Synth;

/// What to run.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Valid events to seed.
    pub events: usize,
    /// One poison record (not a SubmissionEvent) after every this many events; 0: none.
    pub poison_every: usize,
    /// One valid event whose text makes the pipeline panic ([`PANIC_MARKER`]) after every
    /// this many events; 0: none. Needs a debug build of `spamflow` (the injector is not
    /// in release builds).
    pub panic_every: usize,
    /// Partitions of every topic.
    pub partitions: i32,
    /// SIGKILLs of pipeline instances.
    pub kills: usize,
    /// Broker restarts.
    pub broker_restarts: usize,
    /// Scale 1 -> 2 -> 3 -> 1 during the run.
    pub scale: bool,
    /// Seed of the events and of the fault schedule.
    pub seed: u64,
    /// The binary, the broker and the work directory.
    pub harness: HarnessConfig,
}

/// What a run with a broker of its own needs.
#[derive(Debug, Clone)]
pub struct HarnessConfig {
    /// The `spamflow` binary.
    pub spamflow: PathBuf,
    /// `scripts/kafka.sh`.
    pub kafka_script: PathBuf,
    /// Broker port (the controller takes the next one).
    pub port: u16,
    /// Logs and broker data; a temporary directory when `None`.
    pub work_dir: Option<PathBuf>,
    /// How long to wait for the last outputs once the input is in.
    pub drain_timeout: Duration,
}

/// What happened and what the verifier found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Valid events produced.
    pub events: usize,
    /// Poison records produced.
    pub poison: usize,
    /// Records produced that make the pipeline panic (they must reach the DLQ).
    pub panics: usize,
    /// Of them, those that got a verdict instead (the binary has no injector).
    pub panics_with_verdict: usize,
    /// SIGKILLs.
    pub kills: usize,
    /// Of them, within 2 s of the instance's start (restore, rebalance).
    pub kills_soon_after_start: usize,
    /// Broker restarts.
    pub broker_restarts: usize,
    /// Instance counts the run went through.
    pub scale_steps: Vec<usize>,
    /// Instances that exited on their own and were started again (with their status).
    pub unplanned_exits: Vec<String>,
    /// Instance starts, first ones included.
    pub instance_starts: usize,
    /// Verdicts read (read_committed).
    pub verdicts: usize,
    /// DLQ records read.
    pub dlq: usize,
    /// Inputs without an output.
    pub missing: usize,
    /// Outputs beyond the first per input.
    pub duplicated: usize,
    /// Outputs for no input.
    pub unexpected: usize,
    /// Decisions that differ from the uninterrupted run.
    pub decisions_differ: usize,
    /// Decisions that differ from `spamflow backtest` over the same input.
    pub backtest_differ: usize,
    /// Verdicts with a relay-quota throttle and with a campaign reason: the stateful
    /// operators were busy, so the comparisons mean something.
    pub throttled: usize,
    /// See [`Report::throttled`].
    pub campaigns: usize,
    /// Operator-state keys in the final changelog.
    pub state_keys: usize,
    /// Keys whose final state differs from the uninterrupted run (either side).
    pub state_differ: usize,
    /// Wall time of the whole run, seconds.
    pub seconds: f64,
}

impl Report {
    /// The harness's verdict: nothing lost, duplicated or different.
    pub fn passed(&self) -> bool {
        self.missing == 0
            && self.duplicated == 0
            && self.unexpected == 0
            && self.decisions_differ == 0
            && self.backtest_differ == 0
            && self.panics_with_verdict == 0
            && self.state_differ == 0
            && self.state_keys > 0
            && self.throttled > 0
            && self.campaigns > 0
    }
}

/// Tight relay quotas, so that the throttle's state matters; no registry is loaded, so its
/// check is off (or every relayed message would be blocked as unregistered). Static
/// members do not leave the group when they stop, so after a scale-down the stopped
/// instances' partitions wait out the session timeout: 10 s here instead of 45.
pub const PIPELINE_CONFIG: &str = r#"
[kafka.consumer]
"session.timeout.ms" = "10000"
[origin]
check_registry = false
[throttle]
min_messages = 20
window_secs = 60
buckets = 6
[[throttle.steps]]
spam_ratio = 0.0
per_second = 8
burst = 8
[[throttle.steps]]
spam_ratio = 0.3
per_second = 2
burst = 2
"#;

/// A run's broker of its own and its work directory (logs, broker data, the pipeline's
/// configuration file).
pub(crate) struct Harness {
    /// Stopped when the harness is dropped, before the directory goes.
    pub(crate) broker: Broker,
    pub(crate) brokers: String,
    pub(crate) work: PathBuf,
    pub(crate) config: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Harness {
    /// Checks that `spamflow` is there, makes the work directory (a temporary one when
    /// `work_dir` is `None`) with [`PIPELINE_CONFIG`] in it, and starts the broker.
    pub(crate) fn start(h: &HarnessConfig, say: &mut impl FnMut(&str)) -> anyhow::Result<Harness> {
        let (spamflow, kafka_script, port) = (&h.spamflow, &h.kafka_script, h.port);
        let work_dir = h.work_dir.as_deref();
        if !spamflow.is_file() {
            bail!(
                "no spamflow binary at {} (build it: cargo build --release -p spamflow-pipeline)",
                spamflow.display()
            );
        }
        let tmp = match work_dir {
            Some(_) => None,
            None => Some(tempfile::tempdir()?),
        };
        let work = match (work_dir, &tmp) {
            (Some(d), _) => d.to_owned(),
            (None, Some(t)) => t.path().to_owned(),
            (None, None) => unreachable!("a temporary directory was made"),
        };
        std::fs::create_dir_all(&work)?;
        let config = work.join("spamflow.toml");
        std::fs::write(&config, PIPELINE_CONFIG)?;
        let broker = Broker {
            script: kafka_script.to_owned(),
            state: work.join("kafka"),
            port,
        };
        let brokers = broker.run(&["start"])?;
        say(&format!(
            "broker up on {brokers}; work dir {}",
            work.display()
        ));
        Ok(Harness {
            broker,
            brokers,
            work,
            config,
            _tmp: tmp,
        })
    }
}

/// The harness's own broker, driven through `scripts/kafka.sh`.
pub(crate) struct Broker {
    pub(crate) script: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) port: u16,
}

impl Broker {
    pub(crate) fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .env("SPAMFLOW_KAFKA_STATE", &self.state)
            .env("SPAMFLOW_KAFKA_PORT", self.port.to_string())
            .env(
                "SPAMFLOW_KAFKA_CONTROLLER_PORT",
                (self.port + 1).to_string(),
            )
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", self.script.display()))?;
        if !out.status.success() {
            bail!("kafka.sh {} failed: {}", args.join(" "), out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.run(&["stop"]);
    }
}

/// One set of topic names.
#[derive(Debug, Clone)]
pub(crate) struct Topics {
    pub(crate) prefix: String,
}

impl Topics {
    pub(crate) fn name(&self, t: &str) -> String {
        format!("{}-{t}", self.prefix)
    }

    /// `SPAMFLOW_TOPICS__*` settings for a `spamflow` process.
    fn env(&self) -> Vec<(String, String)> {
        [
            "submissions",
            "verdicts",
            "block",
            "alerts",
            "dlq",
            "registry",
            "changelog",
            "reports",
        ]
        .iter()
        .map(|t| {
            (
                format!("SPAMFLOW_TOPICS__{}", t.to_uppercase()),
                self.name(t),
            )
        })
        .chain([("SPAMFLOW_KAFKA__GROUP_ID".into(), self.name("group"))])
        .collect()
    }
}

/// The `spamflow run` processes of one topic set, by slot.
pub(crate) struct Fleet<'a> {
    pub(crate) cfg: &'a ChaosConfig,
    pub(crate) brokers: String,
    pub(crate) topics: Topics,
    pub(crate) config: PathBuf,
    pub(crate) logs: PathBuf,
    pub(crate) slots: Vec<Option<(Child, Instant)>>,
    pub(crate) starts: usize,
}

impl Fleet<'_> {
    pub(crate) fn spawn(&mut self, slot: usize) -> anyhow::Result<()> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}-{slot}.log", self.topics.prefix)))?;
        let child = Command::new(&self.cfg.harness.spamflow)
            .args([
                "run",
                "--brokers",
                &self.brokers,
                "--instance-id",
                &format!("{}-{slot}", self.topics.prefix),
                "--commit-interval-ms",
                "100",
            ])
            .env("SPAMFLOW_CONFIG", &self.config)
            .envs(self.topics.env())
            .env("SPAMFLOW_ADMIN__LISTEN", "")
            .env("RUST_LOG", "info")
            .env(
                "SPAMFLOW_TEST_PANIC_MARKER",
                if self.cfg.panic_every > 0 {
                    PANIC_MARKER
                } else {
                    ""
                },
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.cfg.harness.spamflow.display()))?;
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, || None);
        }
        self.slots[slot] = Some((child, Instant::now()));
        self.starts += 1;
        Ok(())
    }

    fn live(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].is_some())
            .collect()
    }

    /// SIGKILL; whether the instance had started within the last 2 s.
    fn kill(&mut self, slot: usize) -> anyhow::Result<bool> {
        let (mut child, started) = self.slots[slot].take().context("no such instance")?;
        child.kill()?;
        child.wait()?;
        Ok(started.elapsed() < Duration::from_secs(2))
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(&mut self, slot: usize) -> anyhow::Result<()> {
        let (mut child, _) = self.slots[slot].take().context("no such instance")?;
        terminate(&mut child, Duration::from_secs(60))
    }

    /// Starts again every instance that exited on its own; returns their statuses.
    fn supervise(&mut self) -> anyhow::Result<Vec<String>> {
        let mut exits = Vec::new();
        for slot in 0..self.slots.len() {
            let exited = match &mut self.slots[slot] {
                Some((child, _)) => child.try_wait()?,
                None => None,
            };
            if let Some(status) = exited {
                exits.push(format!("instance {slot}: {status}"));
                self.spawn(slot)?;
            }
        }
        Ok(exits)
    }

    fn scale_to(&mut self, n: usize) -> anyhow::Result<()> {
        for slot in 0..n {
            if self.slots.get(slot).is_none_or(Option::is_none) {
                self.spawn(slot)?;
            }
        }
        for slot in n..self.slots.len() {
            if self.slots[slot].is_some() {
                self.stop(slot)?;
            }
        }
        Ok(())
    }

    pub(crate) fn stop_all(&mut self) -> anyhow::Result<()> {
        for slot in self.live() {
            self.stop(slot)?;
        }
        Ok(())
    }
}

impl Drop for Fleet<'_> {
    fn drop(&mut self) {
        for (child, _) in self.slots.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGTERM, then wait up to `grace` for a successful exit.
fn terminate(child: &mut Child, grace: Duration) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(());
            }
            bail!("instance exited with {status} on SIGTERM");
        }
        if Instant::now() > deadline {
            child.kill()?;
            bail!("instance did not stop within {grace:?} of SIGTERM");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The text that makes a debug build of the pipeline panic (`SPAMFLOW_TEST_PANIC_MARKER`).
pub const PANIC_MARKER: &str = "CHAOS-PANIC-INJECT";

/// The input: (key, payload, id). Poison records have ids `poison-<n>` and records that
/// panic ids `panic-<n>`, as their key (their DLQ records are found by it).
fn input(cfg: &ChaosConfig) -> Vec<(String, Vec<u8>, String)> {
    let mut synth = Synth::new(cfg.seed, "2026-03-01T09:00:00Z".parse().unwrap(), 200.0);
    let mut out = Vec::with_capacity(cfg.events + cfg.events / cfg.poison_every.max(1));
    let every = |n: usize, i: usize| n > 0 && (i + 1).is_multiple_of(n);
    for i in 0..cfg.events {
        let (mut doc, _) = synth.next_event();
        let id = doc["message_id"].as_str().unwrap_or_default().to_owned();
        // Keyed as the design says an SMSC keys its submissions: by the normalized sender.
        let key = parse_sender(doc["sender"].as_str().unwrap_or_default()).key;
        out.push((key, serde_json::to_vec(&doc).unwrap_or_default(), id));
        if every(cfg.poison_every, i) {
            let id = format!("poison-{}", i / cfg.poison_every);
            let body = format!("{{\"message_id\": \"{id}\", \"text\": 42, truncated");
            out.push((id.clone(), body.into_bytes(), id));
        }
        if every(cfg.panic_every, i) {
            let id = format!("panic-{}", i / cfg.panic_every);
            doc["message_id"] = id.clone().into();
            doc["text"] = format!("{PANIC_MARKER} 이 문자는 처리 중에 실패합니다").into();
            out.push((id.clone(), serde_json::to_vec(&doc).unwrap_or_default(), id));
        }
    }
    out
}

/// Feeds `records` at `per_sec` on a thread; the producer rides out broker restarts
/// (idempotent, long delivery timeout).
fn feed(
    brokers: &str,
    topic: &str,
    records: Vec<(String, Vec<u8>, String)>,
    per_sec: f64,
) -> anyhow::Result<thread::JoinHandle<anyhow::Result<()>>> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "900000")
        .create()?;
    let topic = topic.to_owned();
    Ok(thread::spawn(move || {
        let started = Instant::now();
        for (i, (k, v, _)) in records.iter().enumerate() {
            // Pace: record i goes out at i / per_sec seconds.
            let due = Duration::from_secs_f64(i as f64 / per_sec);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                thread::sleep(wait);
            }
            crate::kafka::send(
                &p,
                BaseRecord::to(&topic)
                    .key(k.as_bytes())
                    .payload(v.as_slice()),
            );
        }
        p.flush(Duration::from_secs(900))?;
        Ok(())
    }))
}

/// One record read: topic, key, payload.
type Read = (String, Option<Vec<u8>>, Option<Vec<u8>>);

/// Reads `topics` from the beginning, read_committed, until `done` says so and nothing new
/// came for `settle`, or `timeout` passes. Returns (topic, key, payload) per record.
pub(crate) fn read_all(
    brokers: &str,
    topics: &[String],
    partitions: i32,
    settle: Duration,
    timeout: Duration,
    done: impl FnMut(usize) -> bool,
) -> anyhow::Result<Vec<Read>> {
    let mut out = Vec::new();
    scan(
        brokers,
        topics,
        partitions,
        settle,
        timeout,
        |m| {
            out.push((
                m.topic().to_owned(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
            ))
        },
        done,
    )?;
    Ok(out)
}

/// Hands every record of `topics`, from the beginning, read_committed, to `each`, until
/// `done(records so far)` says so and nothing new came for `settle`, or `timeout` passes.
pub(crate) fn scan(
    brokers: &str,
    topics: &[String],
    partitions: i32,
    settle: Duration,
    timeout: Duration,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
    mut done: impl FnMut(usize) -> bool,
) -> anyhow::Result<()> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "spamflow-chaos-verifier")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "50")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..partitions {
            tpl.add_partition_offset(t, p, Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut n = 0;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && !(done(n) && quiet_since.elapsed() >= settle) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            each(&m);
            n += 1;
            quiet_since = Instant::now();
        }
    }
    Ok(())
}

/// Outputs of one topic set: decisions by message id, DLQ keys, and the count of each id.
struct Outputs {
    decisions: HashMap<String, Verdict<'static>>,
    counts: HashMap<String, usize>,
    verdicts: usize,
    dlq: usize,
}

fn outputs(
    brokers: &str,
    topics: &Topics,
    partitions: i32,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<Outputs> {
    let (verdicts, dlq) = (topics.name("verdicts"), topics.name("dlq"));
    let records = read_all(
        brokers,
        &[verdicts.clone(), dlq.clone()],
        partitions,
        Duration::from_secs(5),
        timeout,
        |n| n >= expected,
    )?;
    let mut out = Outputs {
        decisions: HashMap::new(),
        counts: HashMap::new(),
        verdicts: 0,
        dlq: 0,
    };
    for (topic, key, payload) in records {
        let id = if topic == verdicts {
            out.verdicts += 1;
            let v: Verdict = serde_json::from_slice(payload.as_deref().unwrap_or_default())
                .context("a verdict that does not decode")?;
            let id = v.message_id.to_string();
            out.decisions.insert(id.clone(), v.decision());
            id
        } else {
            out.dlq += 1;
            String::from_utf8_lossy(key.as_deref().unwrap_or_default()).into_owned()
        };
        *out.counts.entry(id).or_default() += 1;
    }
    Ok(out)
}

/// Whether a changelog key holds state that depends on timing, not on the input alone, so
/// that runs are not compared on it: the late alerts' memory of deliveries, since what a
/// partition still remembers depends on when it read the campaigns other partitions found.
pub fn timing_dependent(key: &[u8]) -> bool {
    key.windows(13).any(|w| w == b"/late_alerts/")
}

/// The latest value per key of a compacted topic (tombstones remove the key).
fn final_state(
    brokers: &str,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut state = BTreeMap::new();
    let records = read_all(
        brokers,
        &[topic.to_owned()],
        partitions,
        Duration::from_secs(3),
        Duration::from_secs(120),
        |_| true,
    )?;
    for (_, key, value) in records {
        let key = key.unwrap_or_default();
        match value {
            Some(v) => state.insert(key, v),
            None => state.remove(&key),
        };
    }
    Ok(state)
}

/// One fault of the schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    Kill,
    BrokerRestart { hard: bool },
    Scale(usize),
}

/// The seeded schedule: kills and broker restarts in random order, with the scaling steps
/// at a quarter, half and three quarters of the way.
fn schedule(cfg: &ChaosConfig, rng: &mut SmallRng) -> Vec<Fault> {
    let mut faults: Vec<Fault> = (0..cfg.kills).map(|_| Fault::Kill).collect();
    for i in 0..cfg.broker_restarts {
        let at = rng.random_range(0..=faults.len());
        faults.insert(at, Fault::BrokerRestart { hard: i % 2 == 1 });
    }
    if cfg.scale {
        let n = faults.len();
        for (k, to) in [(3, 1), (2, 3), (1, 2)] {
            faults.insert(n * k / 4, Fault::Scale(to));
        }
    }
    faults
}

/// Runs the harness; `say` gets progress lines.
pub fn run(cfg: &ChaosConfig, mut say: impl FnMut(&str)) -> anyhow::Result<Report> {
    let started = Instant::now();
    let harness = Harness::start(&cfg.harness, &mut say)?;
    let broker = &harness.broker;
    let (brokers, work, config) = (
        harness.brokers.clone(),
        harness.work.clone(),
        harness.config.clone(),
    );

    let mut rng = SmallRng::seed_from_u64(cfg.seed);
    let faults = schedule(cfg, &mut rng);
    let records = input(cfg);
    let mut report = Report {
        events: cfg.events,
        poison: records
            .iter()
            .filter(|r| r.2.starts_with("poison-"))
            .count(),
        panics: records.iter().filter(|r| r.2.starts_with("panic-")).count(),
        ..Report::default()
    };
    // About 3.5 s per fault; the input is fed over that span, so faults hit live traffic.
    let span = (faults.len() as f64 * 3.5).max(10.0);
    let per_sec = records.len() as f64 / span;

    let topics = Topics {
        prefix: "chaos".into(),
    };
    let mut fleet = Fleet {
        cfg,
        brokers: brokers.clone(),
        topics: topics.clone(),
        config: config.clone(),
        logs: work.clone(),
        slots: Vec::new(),
        starts: 0,
    };
    create_topics(cfg, &brokers, &topics)?;
    fleet.spawn(0)?;
    report.scale_steps.push(1);
    let producer = feed(
        &brokers,
        &topics.name("submissions"),
        records.clone(),
        per_sec,
    )?;
    say(&format!(
        "feeding {} records at {per_sec:.0}/s through {} faults",
        records.len(),
        faults.len()
    ));

    for (i, fault) in faults.iter().enumerate() {
        pause(&mut fleet, &mut report, rng.random_range(1_500..4_000))?;
        match *fault {
            Fault::Kill => {
                let live = fleet.live();
                let slot = live[rng.random_range(0..live.len())];
                report.kills += 1;
                report.kills_soon_after_start += usize::from(fleet.kill(slot)?);
                pause(&mut fleet, &mut report, rng.random_range(100..1_500))?;
                fleet.spawn(slot)?;
                // Now and then a second kill while the new life restores and rebalances.
                if report.kills < cfg.kills && rng.random_bool(0.35) {
                    pause(&mut fleet, &mut report, rng.random_range(300..1_800))?;
                    if fleet.slots[slot].is_some() {
                        report.kills += 1;
                        report.kills_soon_after_start += usize::from(fleet.kill(slot)?);
                        fleet.spawn(slot)?;
                    }
                }
            }
            Fault::BrokerRestart { hard } => {
                broker.run(if hard {
                    &["restart", "hard"]
                } else {
                    &["restart"]
                })?;
                report.broker_restarts += 1;
            }
            Fault::Scale(n) => {
                fleet.scale_to(n)?;
                report.scale_steps.push(n);
            }
        }
        say(&format!(
            "fault {}/{}: {fault:?} (kills {}, broker restarts {}, instances {})",
            i + 1,
            faults.len(),
            report.kills,
            report.broker_restarts,
            fleet.live().len()
        ));
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    say("input fed; draining");
    let got = outputs(
        &brokers,
        &topics,
        cfg.partitions,
        records.len(),
        cfg.harness.drain_timeout,
    )?;
    report.unplanned_exits.extend(fleet.supervise()?);
    fleet.stop_all()?;
    report.instance_starts = fleet.starts;
    report.verdicts = got.verdicts;
    let fired = |code: &str| {
        got.decisions
            .values()
            .filter(|v| v.reasons.iter().any(|r| r.code == code))
            .count()
    };
    report.throttled = fired("throttle.relay_quota");
    report.campaigns = fired("campaign.same_text_many_senders");
    report.dlq = got.dlq;
    report.panics_with_verdict = got
        .decisions
        .keys()
        .filter(|id| id.starts_with("panic-"))
        .count();
    let expected: HashMap<&str, ()> = records.iter().map(|r| (r.2.as_str(), ())).collect();
    report.missing = expected
        .keys()
        .filter(|id| !got.counts.contains_key(**id))
        .count();
    report.duplicated = got.counts.values().map(|n| n.saturating_sub(1)).sum();
    report.unexpected = got
        .counts
        .keys()
        .filter(|id| !expected.contains_key(id.as_str()))
        .count();
    say(&format!(
        "verifier: {} verdicts, {} DLQ records; missing {}, duplicated {}, unexpected {}",
        report.verdicts, report.dlq, report.missing, report.duplicated, report.unexpected
    ));

    // The same input through one instance that is never interrupted.
    let reference = Topics {
        prefix: "reference".into(),
    };
    create_topics(cfg, &brokers, &reference)?;
    let mut calm = Fleet {
        cfg,
        brokers: brokers.clone(),
        topics: reference.clone(),
        config,
        logs: work.clone(),
        slots: Vec::new(),
        starts: 0,
    };
    calm.spawn(0)?;
    feed(
        &brokers,
        &reference.name("submissions"),
        records.clone(),
        f64::INFINITY,
    )?
    .join()
    .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    let want = outputs(
        &brokers,
        &reference,
        cfg.partitions,
        records.len(),
        cfg.harness.drain_timeout,
    )?;
    calm.stop_all()?;
    report.decisions_differ = want
        .decisions
        .iter()
        .filter(|(id, v)| got.decisions.get(*id) != Some(v))
        .count()
        + got
            .decisions
            .keys()
            .filter(|id| !want.decisions.contains_key(*id))
            .count();
    report.backtest_differ = backtest_differ(cfg, &work, &records, &got.decisions)?;
    let compared = |state: BTreeMap<Vec<u8>, Vec<u8>>| -> BTreeMap<Vec<u8>, Vec<u8>> {
        state
            .into_iter()
            .filter(|(k, _)| !timing_dependent(k))
            .collect()
    };
    let a = compared(final_state(
        &brokers,
        &topics.name("changelog"),
        cfg.partitions,
    )?);
    let b = compared(final_state(
        &brokers,
        &reference.name("changelog"),
        cfg.partitions,
    )?);
    report.state_keys = a.len();
    report.state_differ = a.iter().filter(|(k, v)| b.get(*k) != Some(v)).count()
        + b.keys().filter(|k| !a.contains_key(*k)).count();
    report.seconds = started.elapsed().as_secs_f64();
    say(&format!(
        "against the uninterrupted run: {} decisions differ, {} of {} state keys differ; against backtest: {} decisions differ",
        report.decisions_differ, report.state_differ, report.state_keys, report.backtest_differ
    ));
    Ok(report)
}

/// Decisions of `spamflow backtest` over the same input (as many partitions, the same
/// configuration) that differ from `got`, or that either side lacks.
fn backtest_differ(
    cfg: &ChaosConfig,
    work: &Path,
    records: &[(String, Vec<u8>, String)],
    got: &HashMap<String, Verdict>,
) -> anyhow::Result<usize> {
    let (input, out, dlq) = (
        work.join("input.jsonl"),
        work.join("backtest.jsonl"),
        work.join("backtest-dlq.jsonl"),
    );
    let mut lines = Vec::new();
    // Records that panic never reach the state in the pipeline (the injector is first in
    // the chain); backtest runs without the injector, so they are left out.
    for (_, payload, _) in records.iter().filter(|r| !r.2.starts_with("panic-")) {
        lines.extend_from_slice(payload);
        lines.push(b'\n');
    }
    std::fs::write(&input, lines)?;
    let status = Command::new(&cfg.harness.spamflow)
        .arg("backtest")
        .arg("--events")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--dlq")
        .arg(&dlq)
        .args(["--partitions", &cfg.partitions.to_string()])
        .env("SPAMFLOW_CONFIG", work.join("spamflow.toml"))
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("spamflow backtest failed: {status}");
    }
    let mut differ = 0;
    let mut seen = 0;
    for line in std::fs::read_to_string(&out)?.lines() {
        let v: Verdict = serde_json::from_str(line).context("a backtest verdict")?;
        seen += 1;
        differ += usize::from(got.get(&*v.message_id) != Some(&v.decision()));
    }
    Ok(differ + got.len().saturating_sub(seen))
}

/// Waits `ms`, starting again any instance that exited on its own meanwhile.
fn pause(fleet: &mut Fleet<'_>, report: &mut Report, ms: u64) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        report.unplanned_exits.extend(fleet.supervise()?);
        thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    Ok(())
}

pub(crate) fn create_topics(
    cfg: &ChaosConfig,
    brokers: &str,
    topics: &Topics,
) -> anyhow::Result<()> {
    let status = Command::new(&cfg.harness.spamflow)
        .args([
            "create-topics",
            "--brokers",
            brokers,
            "--partitions",
            &cfg.partitions.to_string(),
        ])
        .envs(topics.env())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("spamflow create-topics failed: {status}");
    }
    Ok(())
}

/// `spamflow` next to this executable (`target/<profile>/`), or next to its parent (a
/// test binary in `target/<profile>/deps/`).
pub fn default_spamflow() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().unwrap_or(Path::new("."));
    [dir.join("spamflow"), dir.join("../spamflow")]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join("spamflow"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kills: usize, restarts: usize) -> ChaosConfig {
        ChaosConfig {
            events: 1_000,
            poison_every: 100,
            panic_every: 0,
            partitions: 4,
            kills,
            broker_restarts: restarts,
            scale: true,
            seed: 3,
            harness: HarnessConfig {
                spamflow: PathBuf::new(),
                kafka_script: PathBuf::new(),
                port: 0,
                work_dir: None,
                drain_timeout: Duration::ZERO,
            },
        }
    }

    #[test]
    fn the_schedule_has_every_fault_asked_for_and_scales_in_order() {
        let c = cfg(20, 3);
        let f = schedule(&c, &mut SmallRng::seed_from_u64(c.seed));
        assert_eq!(f.iter().filter(|x| **x == Fault::Kill).count(), 20);
        assert_eq!(
            f.iter()
                .filter(|x| matches!(x, Fault::BrokerRestart { .. }))
                .count(),
            3
        );
        let scales: Vec<usize> = f
            .iter()
            .filter_map(|x| match x {
                Fault::Scale(n) => Some(*n),
                _ => None,
            })
            .collect();
        assert_eq!(scales, [2, 3, 1]);
    }

    #[test]
    fn poison_records_are_keyed_by_their_id_and_ids_are_unique() {
        let c = cfg(0, 0);
        let recs = input(&c);
        assert_eq!(recs.len(), 1_010);
        let poison: Vec<_> = recs.iter().filter(|r| r.2.starts_with("poison-")).collect();
        assert_eq!(poison.len(), 10);
        assert!(poison.iter().all(|r| r.0 == r.2));
        let ids: std::collections::HashSet<&str> = recs.iter().map(|r| r.2.as_str()).collect();
        assert_eq!(ids.len(), recs.len());
    }
}
