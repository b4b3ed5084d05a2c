//! Replayed traffic: `record` captures a topic to a file, `replay` sends a file back at
//! any speed, and `run` replays while reading the verdicts, matching each verdict to its
//! event and measuring the latency from `submitted_at` to the verdict being visible.
//!
//! The file is gzip-compressed: a magic line, then one frame per record (event time,
//! partition, key, value, headers; lengths little-endian, `u32::MAX` for "none").
//! Recording assigns the partitions itself (no consumer group, no commits) and reads
//! read_committed, so it is invisible to the pipeline.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;

const MAGIC: &[u8] = b"SFREC1\n";
const NONE: u32 = u32::MAX;

/// One recorded Kafka record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The record's timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// The partition it was read from.
    pub partition: i32,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

fn put_bytes(w: &mut impl Write, b: Option<&[u8]>) -> io::Result<()> {
    match b {
        None => w.write_all(&NONE.to_le_bytes()),
        Some(b) => {
            let n = u32::try_from(b.len())
                .ok()
                .filter(|n| *n != NONE)
                .ok_or_else(|| io::Error::other("field over 4 GiB"))?;
            w.write_all(&n.to_le_bytes())?;
            w.write_all(b)
        }
    }
}

/// Writes recorded records to a file.
pub struct RecordWriter<W: Write> {
    inner: GzEncoder<W>,
}

impl RecordWriter<BufWriter<std::fs::File>> {
    /// Creates `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Self::new(BufWriter::new(std::fs::File::create(path)?))
    }
}

impl<W: Write> RecordWriter<W> {
    /// Starts a file on `w`.
    pub fn new(w: W) -> io::Result<Self> {
        let mut inner = GzEncoder::new(w, flate2::Compression::default());
        inner.write_all(MAGIC)?;
        Ok(RecordWriter { inner })
    }

    /// Appends one record.
    pub fn write(&mut self, r: &Recorded) -> io::Result<()> {
        let w = &mut self.inner;
        w.write_all(&r.timestamp_ms.to_le_bytes())?;
        w.write_all(&r.partition.to_le_bytes())?;
        put_bytes(w, r.key.as_deref())?;
        put_bytes(w, r.value.as_deref())?;
        put_bytes(w, Some(&(r.headers.len() as u32).to_le_bytes()))?;
        for (k, v) in &r.headers {
            put_bytes(w, Some(k.as_bytes()))?;
            put_bytes(w, Some(v))?;
        }
        Ok(())
    }

    /// Ends the file.
    pub fn finish(self) -> io::Result<W> {
        self.inner.finish()
    }
}

/// Reads a recorded file, record by record.
pub struct RecordReader<R: Read> {
    inner: GzDecoder<R>,
}

impl RecordReader<BufReader<std::fs::File>> {
    /// Opens `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Self::new(BufReader::new(f)).with_context(|| format!("reading {}", path.display()))
    }
}

impl<R: Read> RecordReader<R> {
    /// Checks the magic line.
    pub fn new(r: R) -> anyhow::Result<Self> {
        let mut inner = GzDecoder::new(r);
        let mut magic = [0u8; MAGIC.len()];
        inner
            .read_exact(&mut magic)
            .context("not a spamflow recording (too short, or not gzip)")?;
        anyhow::ensure!(magic == MAGIC, "not a spamflow recording (bad magic)");
        Ok(RecordReader { inner })
    }

    fn array<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        Ok(b)
    }

    fn bytes(&mut self) -> io::Result<Option<Vec<u8>>> {
        let n = u32::from_le_bytes(self.array()?);
        if n == NONE {
            return Ok(None);
        }
        let mut b = Vec::new();
        (&mut self.inner).take(u64::from(n)).read_to_end(&mut b)?;
        if b.len() != n as usize {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Some(b))
    }

    /// The next record; `None` at the end of the file.
    pub fn next_record(&mut self) -> anyhow::Result<Option<Recorded>> {
        let mut first = [0u8; 8];
        // A clean end is an end before a record's first byte.
        let mut got = 0;
        while got < first.len() {
            match self.inner.read(&mut first[got..])? {
                0 if got == 0 => return Ok(None),
                0 => anyhow::bail!("recording ends inside a record"),
                n => got += n,
            }
        }
        let corrupt = |e: io::Error| anyhow::anyhow!("recording ends inside a record ({e})");
        let timestamp_ms = i64::from_le_bytes(first);
        let partition = i32::from_le_bytes(self.array().map_err(corrupt)?);
        let key = self.bytes().map_err(corrupt)?;
        let value = self.bytes().map_err(corrupt)?;
        let n = self
            .bytes()
            .map_err(corrupt)?
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_le_bytes)
            .ok_or_else(|| anyhow::anyhow!("corrupt header count"))?;
        let mut headers = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let k = self.bytes().map_err(corrupt)?.unwrap_or_default();
            let v = self.bytes().map_err(corrupt)?.unwrap_or_default();
            headers.push((String::from_utf8_lossy(&k).into_owned(), v));
        }
        Ok(Some(Recorded {
            timestamp_ms,
            partition,
            key,
            value,
            headers,
        }))
    }

    /// Every record of the file.
    pub fn read_all(mut self) -> anyhow::Result<Vec<Recorded>> {
        let mut out = Vec::new();
        while let Some(r) = self.next_record()? {
            out.push(r);
        }
        Ok(out)
    }
}

/// A synthesized SubmissionEvent as a recorded record: keyed by the normalized sender,
/// as an SMSC produces it, and timestamped with its `submitted_at`.
pub fn synthetic(doc: &serde_json::Value) -> anyhow::Result<Recorded> {
    let sender = doc["sender"]
        .as_str()
        .context("an event without a sender")?;
    let at: DateTime<Utc> = doc["submitted_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .context("an event without submitted_at")?;
    Ok(Recorded {
        timestamp_ms: at.timestamp_millis(),
        partition: 0,
        key: Some(
            spamflow_operators::origin::parse_sender(sender)
                .key
                .into_bytes(),
        ),
        value: Some(serde_json::to_vec(doc)?),
        headers: Vec::new(),
    })
}

/// What `record` captures.
#[derive(Debug, Clone)]
pub struct RecordArgs {
    /// Bootstrap servers.
    pub brokers: String,
    /// Topic to capture.
    pub topic: String,
    /// Output file.
    pub out: PathBuf,
    /// First record time (default: the beginning of the topic).
    pub from: Option<DateTime<Utc>>,
    /// Last record time (default: the end of the topic when recording starts).
    pub to: Option<DateTime<Utc>>,
    /// At most this many records.
    pub count: Option<u64>,
    /// Kafka calls time out after this.
    pub timeout: Duration,
}

/// A reader that assigns partitions itself: no group join, no commits, read_committed.
fn reader(brokers: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set(
            "group.id",
            format!("spamflow-loadtest-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10")
        .create()
        .context("creating a Kafka reader")
}

fn partitions(c: &BaseConsumer, topic: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    let md = c
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("reading the partitions of {topic}"))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(!parts.is_empty(), "topic {topic} does not exist");
    Ok(parts)
}

/// The end offset of each partition now.
fn ends(
    c: &BaseConsumer,
    topic: &str,
    parts: &[i32],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    parts
        .iter()
        .map(|p| {
            let (_, high) = c
                .fetch_watermarks(topic, *p, timeout)
                .with_context(|| format!("reading the end of {topic}[{p}]"))?;
            Ok((*p, high))
        })
        .collect()
}

/// Captures `args.topic` to `args.out`; returns the number of records written.
pub fn record(args: &RecordArgs) -> anyhow::Result<u64> {
    let c = reader(&args.brokers)?;
    let topic = &args.topic;
    let parts = partitions(&c, topic, args.timeout)?;
    let end = ends(&c, topic, &parts, args.timeout)?;
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        let start = args
            .from
            .map_or(Offset::Beginning, |t| Offset::Offset(t.timestamp_millis()));
        tpl.add_partition_offset(topic, *p, start)?;
    }
    if args.from.is_some() {
        tpl = c
            .offsets_for_times(tpl, args.timeout)
            .context("finding the offsets of --from")?;
    }
    c.assign(&tpl)?;
    let mut open: HashSet<i32> = parts
        .iter()
        .copied()
        .filter(|p| end.get(p).copied().unwrap_or(0) > 0)
        .collect();
    let mut w = RecordWriter::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut n = 0u64;
    let to_ms = args.to.map(|t| t.timestamp_millis());
    let mut quiet_since = Instant::now();
    while !open.is_empty() && args.count.is_none_or(|c| n < c) {
        match c.poll(Duration::from_millis(100)) {
            None => {
                anyhow::ensure!(
                    quiet_since.elapsed() < args.timeout,
                    "{topic}: no record for {:?} before the end of {} partition(s)",
                    args.timeout,
                    open.len()
                );
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(e).context("reading the topic"),
            Some(Ok(m)) => {
                quiet_since = Instant::now();
                let p = m.partition();
                if m.offset() + 1 >= end.get(&p).copied().unwrap_or(0) {
                    open.remove(&p);
                }
                if m.offset() >= end.get(&p).copied().unwrap_or(0) {
                    continue;
                }
                let ts = m.timestamp().to_millis().unwrap_or(0);
                if to_ms.is_some_and(|t| ts > t) {
                    open.remove(&p);
                    continue;
                }
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                w.write(&Recorded {
                    timestamp_ms: ts,
                    partition: p,
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers,
                })?;
                n += 1;
            }
        }
    }
    w.finish()?.flush()?;
    Ok(n)
}

/// How fast a replay goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// The recorded inter-arrival times divided by this factor (1 = as recorded).
    Speed(f64),
    /// A fixed number of records per second (a governor limiter).
    Rate(u32),
    /// As fast as the producer takes them.
    Max,
}

impl std::str::FromStr for Pace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "max" {
            return Ok(Pace::Max);
        }
        let f: f64 = s
            .strip_suffix('x')
            .ok_or_else(|| format!("{s:?}: give a speed like 1x, 10x or max"))?
            .parse()
            .map_err(|_| format!("{s:?}: give a speed like 1x, 10x or max"))?;
        if f.is_finite() && f > 0.0 {
            Ok(Pace::Speed(f))
        } else {
            Err(format!("{s:?}: the speed must be positive"))
        }
    }
}

/// The message id a replay gives an event: never one of the original's, nor one of an
/// earlier loop's.
pub fn replay_id(original: &str, tag: &str, round: u64) -> String {
    format!("{original}~{tag}.{round}")
}

/// Rewrites a SubmissionEvent value for a replay: a new message id and `submitted_at`
/// set to `now`. A value that is not a JSON object with a message id (malformed input in
/// the recording) is sent as it was; `None` then.
pub fn rewrite(
    value: &[u8],
    tag: &str,
    round: u64,
    now: DateTime<Utc>,
) -> Option<(Vec<u8>, String)> {
    let mut doc: serde_json::Value = serde_json::from_slice(value).ok()?;
    let obj = doc.as_object_mut()?;
    let id = replay_id(obj.get("message_id")?.as_str()?, tag, round);
    obj.insert("message_id".into(), id.clone().into());
    obj.insert(
        "submitted_at".into(),
        now.to_rfc3339_opts(SecondsFormat::Millis, true).into(),
    );
    Some((serde_json::to_vec(&doc).ok()?, id))
}

fn producer(brokers: &str) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "2")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .context("creating the replay producer")
}

/// What `replay` and `run` send.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    /// Bootstrap servers.
    pub brokers: String,
    /// The recording.
    pub input: PathBuf,
    /// Topic to send to.
    pub topic: String,
    /// How fast.
    pub pace: Pace,
    /// Start again at the end of the recording until stopped (or for `run`, until its
    /// duration or its steps end).
    pub looped: bool,
    /// Tag in every rewritten message id (unique per replay).
    pub tag: String,
}

/// Sends the recording; `on_sent(id)` is called just before each record is sent, with its
/// rewritten id (none for records sent unchanged) and `rate` is read before each record when it is set (the
/// step mode changes it). Returns the number of records sent.
fn send_all(
    args: &ReplayArgs,
    records: &[Recorded],
    stop: &AtomicBool,
    rate: Option<&AtomicU64>,
    mut on_sent: impl FnMut(Option<String>),
) -> anyhow::Result<u64> {
    use governor::{Quota, RateLimiter};
    anyhow::ensure!(!records.is_empty(), "the recording is empty");
    let p = producer(&args.brokers)?;
    let mut sent = 0u64;
    let mut round = 0u64;
    let first_ts = records[0].timestamp_ms;
    let mut limiter_rate = 0u64;
    let mut limiter = None;
    'rounds: loop {
        // Each round keeps the recorded spacing from its own start.
        let round_start = Instant::now();
        for r in records {
            if stop.load(Relaxed) {
                break 'rounds;
            }
            let pace = match (rate, args.pace) {
                (Some(r), _) => Pace::Rate(r.load(Relaxed).clamp(1, u64::from(u32::MAX)) as u32),
                (None, p) => p,
            };
            match pace {
                Pace::Max => {}
                Pace::Speed(f) => {
                    let offset = (r.timestamp_ms - first_ts).max(0) as f64 / f;
                    let due = round_start + Duration::from_secs_f64(offset / 1000.0);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                Pace::Rate(n) => {
                    if limiter.is_none() || limiter_rate != u64::from(n) {
                        let n = std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
                        // Bursts of at most 10 ms worth: the rate holds from the first second.
                        let burst = std::num::NonZeroU32::new(n.get() / 100)
                            .unwrap_or(std::num::NonZeroU32::MIN);
                        limiter =
                            Some(RateLimiter::direct(Quota::per_second(n).allow_burst(burst)));
                        limiter_rate = u64::from(n.get());
                    }
                    let l = limiter.as_ref().expect("set above");
                    while l.check().is_err() {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
            let rewritten = r
                .value
                .as_deref()
                .and_then(|v| rewrite(v, &args.tag, round, Utc::now()));
            let (value, id) = match rewritten {
                Some((v, id)) => (Some(v), Some(id)),
                None => (r.value.clone(), None),
            };
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_slice()),
                });
            }
            let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&args.topic).headers(headers);
            if let Some(k) = r.key.as_deref() {
                rec = rec.key(k);
            }
            if let Some(v) = value.as_deref() {
                rec = rec.payload(v);
            }
            // Registered before it is sent, so that its verdict always finds it.
            on_sent(id);
            crate::kafka::send(&p, rec);
            sent += 1;
        }
        round += 1;
        if !args.looped {
            break;
        }
    }
    p.flush(Duration::from_secs(60))
        .context("flushing the replay producer")?;
    Ok(sent)
}

/// Sends the recording at `args.pace` (in a loop with `args.looped`, until `stop`);
/// returns the number of records sent.
pub fn replay(args: &ReplayArgs, stop: &AtomicBool) -> anyhow::Result<u64> {
    let records = RecordReader::open(&args.input)?.read_all()?;
    send_all(args, &records, stop, None, |_| {})
}

/// The step mode of `run`: the rate starts at `from` and grows by `by` every `every`.
#[derive(Debug, Clone)]
pub struct Step {
    /// First rate, records per second.
    pub from: u64,
    /// Added at each step.
    pub by: u64,
    /// How long each step lasts.
    pub every: Duration,
    /// The p99 a step must stay under, in ms.
    pub target_p99_ms: f64,
    /// Stop after this many steps.
    pub max_steps: u32,
}

/// What `run` does.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// What to send and how fast (`pace` is ignored in step mode).
    pub replay: ReplayArgs,
    /// The verdict topic to read.
    pub verdicts: String,
    /// The pipeline's consumer group, whose lag on the input topic is read every second.
    pub group: Option<String>,
    /// Step mode.
    pub step: Option<Step>,
    /// Stop sending after this long (a looped replay needs it or a step mode).
    pub duration: Option<Duration>,
    /// After the last record is sent, wait this long at most for the missing verdicts.
    pub drain: Duration,
    /// Events sent in this first part of the run are matched and shown per second but
    /// left out of the run's percentiles (connections, assignment, caches warming up).
    pub warmup: Duration,
    /// Print a line per second on stderr.
    pub live: bool,
}

/// One second of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    /// Seconds since the start.
    pub second: u64,
    /// Records sent in this second.
    pub offered: u64,
    /// Verdicts that became visible in this second.
    pub verdicts: u64,
    /// Sent and not yet verdicted at the end of this second.
    pub in_flight: u64,
    /// The pipeline group's lag on the input topic at the end of this second: records
    /// after its committed offsets (`--group`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<u64>,
    /// Latency of the events submitted in this second, ms.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// The step rate in force (step mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
}

/// One step of a step-mode run.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// Offered rate, records per second.
    pub rate: u64,
    /// Verdicts per second achieved over the step.
    pub achieved_per_sec: f64,
    /// p99 of the events submitted during the step, ms.
    pub p99_ms: f64,
    /// Whether p99 stayed under the target and every event got its verdict.
    pub within_target: bool,
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Records sent (including records sent unchanged, which get no verdict to match).
    pub sent: u64,
    /// Events sent with a rewritten id, whose verdicts are expected.
    pub expected: u64,
    /// Distinct expected events that got a verdict.
    pub verdicts: u64,
    /// Expected events that got no verdict within the drain time.
    pub missing: u64,
    /// The largest lag of the pipeline's group seen (`--group`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<u64>,
    /// Verdicts seen more than once.
    pub duplicates: u64,
    /// Length of the sending, s.
    pub seconds: f64,
    /// Records sent per second.
    pub offered_per_sec: f64,
    /// Verdicts per second over the same time.
    pub achieved_per_sec: f64,
    /// Latency from `submitted_at` to the verdict being visible read_committed, ms, of
    /// the events sent after the warm-up.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// Second by second.
    pub per_second: Vec<Second>,
    /// Step mode: each step.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepResult>,
    /// Step mode: the highest rate whose step stayed within the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highest_rate_within_target: Option<u64>,
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 us to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_quantile(q) as f64 / 1000.0
    }
}

#[derive(Default)]
struct Bucket {
    offered: u64,
    verdicts: u64,
    latency: Option<Histogram<u64>>,
    rate: Option<u64>,
    lag: Option<u64>,
}

/// Reads a consumer group's lag on a topic: the records after its committed offsets (all
/// of a partition's records while it has none). It does not join the group.
struct LagReader {
    consumer: BaseConsumer,
    topic: String,
    parts: Vec<i32>,
}

impl LagReader {
    fn new(brokers: &str, group: &str, topic: &str) -> anyhow::Result<LagReader> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .context("creating the lag reader")?;
        let parts = partitions(&consumer, topic, Duration::from_secs(30))?;
        Ok(LagReader {
            consumer,
            topic: topic.to_owned(),
            parts,
        })
    }

    /// The lag now; `None` when the broker does not answer within a second.
    fn lag(&self) -> Option<u64> {
        let timeout = Duration::from_secs(1);
        let mut tpl = TopicPartitionList::new();
        for p in &self.parts {
            tpl.add_partition(&self.topic, *p);
        }
        let committed = self.consumer.committed_offsets(tpl, timeout).ok()?;
        let mut lag = 0u64;
        for e in committed.elements() {
            let (low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, e.partition(), timeout)
                .ok()?;
            let from = match e.offset() {
                Offset::Offset(o) => o.max(low),
                _ => low,
            };
            lag += (high - from).max(0) as u64;
        }
        Some(lag)
    }
}

struct Shared {
    start: Instant,
    start_ms: i64,
    sent: u64,
    /// Events sent with a rewritten id.
    expected: u64,
    /// Of those, the ones whose verdict was read.
    matched: u64,
    /// Sent and not yet verdicted (memory stays bounded by what is in flight).
    pending: HashSet<String>,
    duplicates: u64,
    total: Histogram<u64>,
    seconds: BTreeMap<u64, Bucket>,
}

impl Shared {
    fn bucket(&mut self, second: u64) -> &mut Bucket {
        self.seconds.entry(second).or_default()
    }
}

#[derive(serde::Deserialize)]
struct VerdictId {
    message_id: String,
    submitted_at: DateTime<Utc>,
}

/// Replays `args.replay` while reading `args.verdicts`: every verdict matched to its event
/// by id, latency from `submitted_at` to visible. Fails when an event got no verdict.
pub fn run(args: &RunArgs, stop: &AtomicBool) -> anyhow::Result<RunReport> {
    let records = RecordReader::open(&args.replay.input)?.read_all()?;
    anyhow::ensure!(!records.is_empty(), "the recording is empty");
    anyhow::ensure!(
        !args.replay.looped || args.duration.is_some() || args.step.is_some(),
        "a looped run needs --duration"
    );
    let timeout = Duration::from_secs(30);
    let c = reader(&args.replay.brokers)?;
    let parts = partitions(&c, &args.verdicts, timeout)?;
    let end = ends(&c, &args.verdicts, &parts, timeout)?;
    let mut tpl = TopicPartitionList::new();
    for (p, o) in &end {
        tpl.add_partition_offset(&args.verdicts, *p, Offset::Offset(*o))?;
    }
    c.assign(&tpl)?;

    let start = Instant::now();
    let shared = Arc::new(Mutex::new(Shared {
        start,
        start_ms: Utc::now().timestamp_millis(),
        sent: 0,
        expected: 0,
        matched: 0,
        pending: HashSet::new(),
        duplicates: 0,
        total: histogram(),
        seconds: BTreeMap::new(),
    }));
    let reading = Arc::new(AtomicBool::new(true));
    let marker = format!("~{}.", args.replay.tag);
    let warmup_ms = args.warmup.as_millis() as i64;
    let reader_thread = {
        let (shared, reading) = (shared.clone(), reading.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            while reading.load(Relaxed) {
                let m = match c.poll(Duration::from_millis(50)) {
                    None | Some(Err(KafkaError::PartitionEOF(_))) => continue,
                    Some(Err(e)) => return Err(e).context("reading the verdicts"),
                    Some(Ok(m)) => m,
                };
                let now = Utc::now();
                let Some(v) = m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<VerdictId>(p).ok())
                    .filter(|v| v.message_id.contains(&marker))
                else {
                    continue;
                };
                let latency_us = (now - v.submitted_at)
                    .num_microseconds()
                    .unwrap_or(0)
                    .max(1) as u64;
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                let arrived = s.start.elapsed().as_secs();
                if !s.pending.remove(&v.message_id) {
                    s.duplicates += 1;
                    continue;
                }
                s.matched += 1;
                let since_start = (v.submitted_at.timestamp_millis() - s.start_ms).max(0);
                let submitted = (since_start / 1000) as u64;
                if since_start >= warmup_ms {
                    let _ = s.total.record(latency_us);
                }
                s.bucket(arrived).verdicts += 1;
                let _ = s
                    .bucket(submitted)
                    .latency
                    .get_or_insert_with(histogram)
                    .record(latency_us);
            }
            Ok(())
        })
    };

    let lag_reader = args
        .group
        .as_deref()
        .map(|g| LagReader::new(&args.replay.brokers, g, &args.replay.topic))
        .transpose()?;
    let rate = Arc::new(AtomicU64::new(args.step.as_ref().map_or(0, |s| s.from)));
    let stop_sending = Arc::new(AtomicBool::new(false));
    let sender_thread = {
        let (shared, rate, stop_sending) = (shared.clone(), rate.clone(), stop_sending.clone());
        let mut replay = args.replay.clone();
        replay.looped |= args.step.is_some();
        let stepped = args.step.is_some();
        let records = records.clone();
        std::thread::spawn(move || -> anyhow::Result<u64> {
            send_all(
                &replay,
                &records,
                &stop_sending,
                stepped.then_some(&*rate),
                |id| {
                    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                    let second = s.start.elapsed().as_secs();
                    s.sent += 1;
                    s.bucket(second).offered += 1;
                    if let Some(id) = id {
                        s.expected += 1;
                        s.pending.insert(id);
                    }
                },
            )
        })
    };

    // Once a second: the live line, the step and the end of the sending.
    let finite = (!args.replay.looped && args.step.is_none()).then_some(records.len() as u64);
    let mut step_no = 0u64;
    let mut next_tick = start + Duration::from_secs(1);
    let mut send_end: Option<Instant> = None;
    loop {
        if let Some(wait) = next_tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next_tick += Duration::from_secs(1);
        let elapsed = start.elapsed();
        if let Some(step) = &args.step {
            let n = (elapsed.as_secs_f64() / step.every.as_secs_f64()) as u64;
            if n != step_no && n < u64::from(step.max_steps) {
                step_no = n;
                rate.store(step.from + step.by * n, Relaxed);
            }
            let in_flight = {
                let s = shared.lock().unwrap_or_else(|e| e.into_inner());
                s.pending.len() as u64
            };
            // Saturated: ten seconds of the current rate waiting. Further steps only pile up.
            let saturated = in_flight > 10 * rate.load(Relaxed).max(1);
            if n >= u64::from(step.max_steps) || saturated {
                stop_sending.store(true, Relaxed);
            }
        }
        let sent_done = sender_thread.is_finished();
        if args.duration.is_some_and(|d| elapsed >= d) || stop.load(Relaxed) {
            stop_sending.store(true, Relaxed);
        }
        // Read before taking the lock: the reader thread must not wait on the broker.
        let lag = lag_reader.as_ref().and_then(LagReader::lag);
        {
            let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
            let second = elapsed.as_secs().saturating_sub(1);
            let r = args.step.as_ref().map(|_| rate.load(Relaxed));
            s.bucket(second).rate = s.bucket(second).rate.or(r);
            s.bucket(second).lag = lag;
            if args.live {
                eprintln!("{}", live_line(&s, second, finite));
            }
        }
        if sent_done && send_end.is_none() {
            send_end = Some(Instant::now());
        }
        if let Some(t) = send_end {
            let all = {
                let s = shared.lock().unwrap_or_else(|e| e.into_inner());
                s.pending.is_empty()
            };
            if all || t.elapsed() >= args.drain || stop.load(Relaxed) {
                break;
            }
        }
    }
    let sent = sender_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the sender panicked"))??;
    reading.store(false, Relaxed);
    reader_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the verdict reader panicked"))??;
    let seconds = send_end
        .map_or(start.elapsed(), |t| t - start)
        .as_secs_f64()
        .max(1e-3);
    let s = shared.lock().unwrap_or_else(|e| e.into_inner());
    Ok(report(&s, sent, seconds, args.step.as_ref(), args.warmup))
}

fn live_line(s: &Shared, second: u64, finite: Option<u64>) -> String {
    let b = s.seconds.get(&second);
    let in_flight = s.pending.len();
    let progress = finite.map_or_else(String::new, |total| {
        let done = (s.sent * 20 / total.max(1)).min(20) as usize;
        format!(
            " [{}{}] {:>3}%",
            "#".repeat(done),
            ".".repeat(20 - done),
            s.sent * 100 / total.max(1)
        )
    });
    let (p50, p99) = b
        .and_then(|b| b.latency.as_ref())
        .map_or((0.0, 0.0), |h| (ms(h, 0.5), ms(h, 0.99)));
    let lag = b
        .and_then(|b| b.lag)
        .map_or_else(String::new, |l| format!(" lag {l:>7}"));
    format!(
        "t={:>4}s offered {:>6}/s verdicts {:>6}/s in flight {:>7}{lag} p50 {:>7.1} ms p99 {:>7.1} ms{}{progress}",
        second + 1,
        b.map_or(0, |b| b.offered),
        b.map_or(0, |b| b.verdicts),
        in_flight,
        p50,
        p99,
        b.and_then(|b| b.rate).map_or_else(String::new, |r| format!(" step {r}/s")),
    )
}

fn report(s: &Shared, sent: u64, seconds: f64, step: Option<&Step>, warmup: Duration) -> RunReport {
    let mut per_second = Vec::new();
    let mut offered = 0u64;
    let mut verdicts = 0u64;
    for (&second, b) in &s.seconds {
        offered += b.offered;
        verdicts += b.verdicts;
        let h = b.latency.as_ref();
        let q = |x| h.map_or(0.0, |h| ms(h, x));
        per_second.push(Second {
            second,
            offered: b.offered,
            verdicts: b.verdicts,
            in_flight: offered.saturating_sub(verdicts),
            lag: b.lag,
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: h.map_or(0.0, |h| h.max() as f64 / 1000.0),
            rate: b.rate,
        });
    }
    let missing = s.pending.len() as u64;
    let mut steps = Vec::new();
    if let Some(step) = step {
        let every = step.every.as_secs().max(1);
        let mut by_step: BTreeMap<u64, (Histogram<u64>, u64, u64)> = BTreeMap::new();
        // Steps are whole: the seconds sent at each rate, after the warm-up.
        let last = s
            .seconds
            .keys()
            .filter(|&&k| s.seconds[&k].offered > 0)
            .max()
            .copied();
        for (&second, b) in s
            .seconds
            .iter()
            .filter(|(&k, _)| k >= warmup.as_secs() && Some(k) <= last)
            .filter(|(&k, _)| k / every < u64::from(step.max_steps))
        {
            let e = by_step
                .entry(second / every)
                .or_insert_with(|| (histogram(), 0, 0));
            if let Some(h) = &b.latency {
                let _ = e.0.add(h);
            }
            e.1 += b.verdicts;
            e.2 += 1;
        }
        for (n, (h, v, counted)) in by_step {
            if h.is_empty() {
                continue;
            }
            let p99 = ms(&h, 0.99);
            steps.push(StepResult {
                rate: step.from + step.by * n,
                achieved_per_sec: v as f64 / counted.max(1) as f64,
                p99_ms: p99,
                within_target: p99 <= step.target_p99_ms && missing == 0,
            });
        }
    }
    let highest_rate_within_target = steps
        .iter()
        .take_while(|s| s.within_target)
        .map(|s| s.rate)
        .last();
    RunReport {
        sent,
        expected: s.expected,
        verdicts: s.matched,
        missing,
        max_lag: s.seconds.values().filter_map(|b| b.lag).max(),
        duplicates: s.duplicates,
        seconds,
        offered_per_sec: sent as f64 / seconds,
        achieved_per_sec: s.matched as f64 / seconds,
        p50_ms: ms(&s.total, 0.5),
        p90_ms: ms(&s.total, 0.9),
        p99_ms: ms(&s.total, 0.99),
        p999_ms: ms(&s.total, 0.999),
        max_ms: s.total.max() as f64 / 1000.0,
        per_second,
        steps,
        highest_rate_within_target,
    }
}

/// The summary table of a run.
pub fn summary(r: &RunReport) -> String {
    let mut out = format!(
        "sent {} ({} events to match) in {:.1} s: offered {:.0}/s, verdicts {:.0}/s\n\
         verdicts {} | missing {} | duplicates {}\n\
         latency submitted_at -> verdict visible (ms): p50 {:.1} | p90 {:.1} | p99 {:.1} | p99.9 {:.1} | max {:.1}\n",
        r.sent,
        r.expected,
        r.seconds,
        r.offered_per_sec,
        r.achieved_per_sec,
        r.verdicts,
        r.missing,
        r.duplicates,
        r.p50_ms,
        r.p90_ms,
        r.p99_ms,
        r.p999_ms,
        r.max_ms
    );
    for s in &r.steps {
        out.push_str(&format!(
            "step {:>7}/s: achieved {:>9.0}/s, p99 {:>8.1} ms {}\n",
            s.rate,
            s.achieved_per_sec,
            s.p99_ms,
            if s.within_target {
                "within target"
            } else {
                "over target"
            }
        ));
    }
    if let Some(rate) = r.highest_rate_within_target {
        out.push_str(&format!("highest rate within the p99 target: {rate}/s\n"));
    }
    out
}

/// An SVG page with two charts over the run's seconds: records offered and verdicts per
/// second, and the latency percentiles (p50, p99, p99.9) of the events submitted in each.
pub fn plot_svg(r: &RunReport) -> String {
    const W: f64 = 900.0;
    const H: f64 = 260.0;
    const PAD: f64 = 60.0;
    let n = r.per_second.len().max(2) as f64;
    let x = |i: usize| PAD + (W - 2.0 * PAD) * i as f64 / (n - 1.0);
    let chart = |top: f64, title: &str, unit: &str, series: &[(&str, &str, Vec<f64>)]| {
        let max = series
            .iter()
            .flat_map(|(_, _, v)| v.iter().copied())
            .fold(0.0f64, f64::max)
            .max(1e-9);
        let y = |v: f64| top + H - 30.0 - (H - 60.0) * v / max;
        let mut g = format!(
            "<text x=\"{PAD}\" y=\"{}\" font-size=\"14\" font-weight=\"bold\">{title}</text>\n\
             <line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\n\
             <line x1=\"{PAD}\" y1=\"{}\" x2=\"{PAD}\" y2=\"{}\" stroke=\"#888\"/>\n\
             <text x=\"5\" y=\"{}\" font-size=\"11\">{max:.1} {unit}</text>\n\
             <text x=\"5\" y=\"{}\" font-size=\"11\">0</text>\n\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{} s</text>\n",
            top + 18.0,
            y(0.0),
            W - PAD,
            y(0.0),
            y(max),
            y(0.0),
            y(max) + 4.0,
            y(0.0),
            W - PAD - 20.0,
            y(0.0) + 16.0,
            r.per_second.len()
        );
        for (k, (name, colour, values)) in series.iter().enumerate() {
            let points: Vec<String> = values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v)))
                .collect();
            g.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\n\
                 <text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{colour}\">{name}</text>\n",
                points.join(" "),
                W - PAD - 240.0 + 80.0 * k as f64,
                top + 18.0
            ));
        }
        g
    };
    let col = |f: fn(&Second) -> f64| r.per_second.iter().map(f).collect::<Vec<f64>>();
    let throughput = chart(
        0.0,
        "Throughput",
        "/s",
        &[
            ("offered", "#1f77b4", col(|s| s.offered as f64)),
            ("verdicts", "#2ca02c", col(|s| s.verdicts as f64)),
        ],
    );
    let latency = chart(
        H,
        "Latency, submitted_at to verdict visible",
        "ms",
        &[
            ("p50", "#2ca02c", col(|s| s.p50_ms)),
            ("p99", "#ff7f0e", col(|s| s.p99_ms)),
            ("p99.9", "#d62728", col(|s| s.p999_ms)),
        ],
    );
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{}\" font-family=\"sans-serif\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{throughput}{latency}</svg>\n",
        2.0 * H
    )
}

/// Whether a plot can be written to `path`: its name ends in `.svg`, or in `.png` and
/// this machine has a font for the labels.
pub fn check_plot_path(path: &std::path::Path) -> anyhow::Result<()> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("svg") => Ok(()),
        Some("png") => png_options().map(|_| ()),
        _ => anyhow::bail!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ),
    }
}

/// SVG rendering options with this machine's fonts, `sans-serif` being DejaVu Sans where
/// installed, else the first family in name order.
fn png_options() -> anyhow::Result<resvg::usvg::Options<'static>> {
    use anyhow::Context as _;
    let mut opt = resvg::usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    let family = db
        .faces()
        .flat_map(|f| f.families.iter().map(|(name, _)| name.clone()))
        .min_by_key(|name| (name != "DejaVu Sans", name.clone()))
        .context("no fonts on this machine for the plot's labels: install fonts-dejavu-core, or write an .svg plot")?;
    db.set_sans_serif_family(family);
    Ok(opt)
}

/// Writes the plot of `r` to `path`, as SVG or PNG by its extension.
pub fn write_plot(r: &RunReport, path: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    check_plot_path(path)?;
    let bytes = if path.extension().is_some_and(|e| e == "png") {
        plot_png(r)?
    } else {
        plot_svg(r).into_bytes()
    };
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The plot of [`plot_svg`] rasterised to PNG (resvg), its labels in a font of this
/// machine ([`png_options`]).
pub fn plot_png(r: &RunReport) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    use resvg::{tiny_skia, usvg};
    let opt = png_options()?;
    let tree = usvg::Tree::from_str(&plot_svg(r), &opt).context("reading the plot's SVG")?;
    let size = tree.size().to_int_size();
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width(), size.height()).context("the plot has no area")?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().context("encoding the plot as PNG")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: i64, value: &[u8]) -> Recorded {
        Recorded {
            timestamp_ms: 1_700_000_000_000 + i,
            partition: (i % 3) as i32,
            key: (i % 2 == 0).then(|| format!("k{i}").into_bytes()),
            value: Some(value.to_vec()),
            headers: vec![("h".into(), vec![0, 1, 2, 255])],
        }
    }

    #[test]
    fn recordings_round_trip_and_a_cut_file_is_an_error_not_a_panic() {
        let records = vec![
            rec(
                0,
                br#"{"message_id":"a","submitted_at":"2026-03-01T09:00:00Z"}"#,
            ),
            rec(1, b"\xff not json"),
            Recorded {
                key: None,
                value: None,
                headers: vec![],
                ..rec(2, b"")
            },
        ];
        let mut w = RecordWriter::new(Vec::new()).unwrap();
        for r in &records {
            w.write(r).unwrap();
        }
        let bytes = w.finish().unwrap();
        let back = RecordReader::new(bytes.as_slice())
            .unwrap()
            .read_all()
            .unwrap();
        assert_eq!(back, records);
        // A file cut short, or not a recording at all.
        let mut raw = Vec::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut raw)
            .unwrap();
        raw.truncate(raw.len() - 3);
        let mut cut = GzEncoder::new(Vec::new(), flate2::Compression::default());
        cut.write_all(&raw).unwrap();
        let cut = cut.finish().unwrap();
        assert!(RecordReader::new(cut.as_slice())
            .unwrap()
            .read_all()
            .is_err());
        assert!(RecordReader::new(&b"plain text"[..]).is_err());
    }

    #[test]
    fn a_replay_gets_new_ids_and_times_and_keeps_the_rest() {
        let now: DateTime<Utc> = "2026-12-02T10:00:00.123Z".parse().unwrap();
        let v = br#"{"message_id":"m-1","submitted_at":"2026-03-01T09:00:00Z","text":"hi"}"#;
        let (out, id) = rewrite(v, "run7", 2, now).unwrap();
        assert_eq!(id, "m-1~run7.2");
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(doc["message_id"], "m-1~run7.2");
        assert_eq!(doc["submitted_at"], "2026-12-02T10:00:00.123Z");
        assert_eq!(doc["text"], "hi");
        assert_ne!(replay_id("m-1", "run7", 0), replay_id("m-1", "run7", 1));
        assert!(rewrite(b"not json", "t", 0, now).is_none());
        assert!(rewrite(br#"{"no_id":1}"#, "t", 0, now).is_none());
        assert_eq!("10x".parse::<Pace>(), Ok(Pace::Speed(10.0)));
        assert_eq!("max".parse::<Pace>(), Ok(Pace::Max));
        assert!("0x".parse::<Pace>().is_err() && "fast".parse::<Pace>().is_err());
    }

    #[test]
    fn the_report_counts_missing_events_and_the_plot_draws_every_series() {
        let mut s = Shared {
            start: Instant::now(),
            start_ms: 0,
            sent: 3,
            expected: 3,
            matched: 2,
            pending: ["c"].map(String::from).into_iter().collect(),
            duplicates: 1,
            total: histogram(),
            seconds: BTreeMap::new(),
        };
        for (second, lat_us) in [(0u64, 2_000u64), (1, 30_000)] {
            s.total.record(lat_us).unwrap();
            let b = s.bucket(second);
            b.offered += 1;
            b.verdicts += 1;
            b.latency
                .get_or_insert_with(histogram)
                .record(lat_us)
                .unwrap();
        }
        let r = report(&s, 3, 2.0, None, Duration::ZERO);
        assert_eq!(
            (r.expected, r.verdicts, r.missing, r.duplicates),
            (3, 2, 1, 1)
        );
        assert_eq!(r.per_second.len(), 2);
        assert!((r.per_second[1].p99_ms - 30.0).abs() < 0.1);
        assert!(summary(&r).contains("missing 1"));
        let svg = plot_svg(&r);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 5);
        // The PNG: the page's size, lines drawn, and the title's text in its corner.
        let png = resvg::tiny_skia::Pixmap::decode_png(&plot_png(&r).unwrap()).unwrap();
        assert_eq!((png.width(), png.height()), (900, 520));
        let inked = |x0: u32, y0: u32, x1: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .filter(|&(x, y)| png.pixel(x, y).is_some_and(|p| p.red() < 200))
                .count()
        };
        assert!(inked(60, 0, 160, 25) > 30, "the title is drawn");
        assert!(inked(60, 30, 840, 230) > 100, "the series are drawn");
        assert!(check_plot_path(std::path::Path::new("run.jpg")).is_err());
    }
}
