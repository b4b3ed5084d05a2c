//! `spamflow-bench-e2e`: whole-pipeline throughput against a bare consume->produce
//! passthrough on the same broker, partitions and input, in the same run.
//!
//! The input topic is loaded once with N synthetic events; then (1) the passthrough
//! copies them to another topic (consume, produce the same bytes, flush, commit), (2) the
//! pipeline at-least-once and (3) exactly-once each process all N from the beginning in
//! their own consumer group. Each run ends when every event has an answer; the verdict
//! topic is then read back (read_committed) and every message id counted, so a verdict
//! that went missing fails the bench instead of inflating it.
//!
//! With `--latency-secs`, each guarantee is then fed live events at half the rate it
//! reached, each stamped `submitted_at` = now, and the latency to the verdict being
//! readable read_committed is printed (p50, p99, p99.9, max). Before each, the bare
//! passthrough is fed the same way at the same rate: the latency of the broker, the
//! clients and the machine before any pipeline work.
//!
//! With `--brokers` it uses that broker (e.g. the one `make kafka-start` starts); without,
//! the in-process mock cluster, whose retention (~100k messages / 5 MiB per partition)
//! bounds N.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spamflow_pipeline::config::{Config, Guarantee};
use spamflow_pipeline::kafka::{create_topics, topic_specs};
use spamflow_pipeline::metrics::Metrics;
use spamflow_pipeline::runtime::{self, Stop};

#[derive(Parser)]
#[command(about = "spamflow end-to-end throughput vs a bare passthrough")]
struct Args {
    /// Broker to use; default: the in-process mock cluster.
    #[arg(long)]
    brokers: Option<String>,
    /// Events.
    #[arg(long, default_value_t = 40_000)]
    events: usize,
    /// Partitions of input and outputs.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Then, per guarantee, feed live events (submitted_at = now) for this many seconds at
    /// half the rate just measured, to the bare passthrough and then to the pipeline, and
    /// print the latency from submitted_at to the answer being readable read_committed:
    /// p50, p99, p99.9. 0: no latency run.
    #[arg(long, default_value_t = 0)]
    latency_secs: u64,
    /// The latency run's rate in events/s instead of half the measured rate.
    #[arg(long)]
    latency_rate: Option<f64>,
    /// A librdkafka setting for the pipeline's clients, as `kafka.client` takes it (e.g.
    /// `--client compression.type=lz4`); repeatable. The passthrough keeps librdkafka's
    /// defaults.
    #[arg(long, value_parser = key_value)]
    client: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The pipeline's logs, when RUST_LOG asks for them (e.g. RUST_LOG=spamflow_pipeline=debug
    // shows each commit's duration).
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let mock = if args.brokers.is_none() {
        Some(MockCluster::new(1)?)
    } else {
        None
    };
    let brokers = args.brokers.clone().unwrap_or_else(|| {
        mock.as_ref()
            .map(|m| m.bootstrap_servers())
            .unwrap_or_default()
    });
    let tag = format!("bench-{}", std::process::id());
    let mut cfg = Config::default();
    cfg.kafka.brokers = brokers.clone();
    cfg.admin.listen = String::new();
    cfg.topics.submissions = format!("{tag}-in");
    cfg.topics.verdicts = format!("{tag}-verdicts");
    cfg.topics.block = format!("{tag}-block");
    cfg.topics.alerts = format!("{tag}-alerts");
    cfg.topics.dlq = format!("{tag}-dlq");
    cfg.topics.registry = format!("{tag}-registry");
    cfg.topics.changelog = format!("{tag}-changelog");
    cfg.kafka
        .consumer
        .insert("fetch.wait.max.ms".into(), "5".into());
    cfg.kafka.client.extend(args.client.iter().cloned());
    let passthrough_topic = format!("{tag}-passthrough");
    let mut specs = topic_specs(&cfg, args.partitions);
    specs.push(spamflow_pipeline::kafka::TopicSpec {
        name: passthrough_topic.clone(),
        partitions: args.partitions,
        compacted: false,
    });
    make_topics(mock.as_ref(), &brokers, &cfg, &specs)?;

    let mut synth =
        spamflow_loadtest::synth::Synth::new(1, "2026-03-01T09:00:00Z".parse()?, 1000.0);
    let events: Vec<(String, Vec<u8>)> = (0..args.events)
        .map(|_| {
            let (doc, _) = synth.next_event();
            (
                spamflow_operators::origin::parse_sender(
                    doc["sender"].as_str().unwrap_or_default(),
                )
                .key,
                serde_json::to_vec(&doc).unwrap_or_default(),
            )
        })
        .collect();
    load(&brokers, &cfg.topics.submissions, &events)?;
    let bytes: usize = events.iter().map(|e| e.1.len()).sum();
    println!(
        "broker {}; {} events ({:.1} MiB) in {} partitions",
        if mock.is_some() {
            "mock cluster"
        } else {
            &brokers
        },
        events.len(),
        bytes as f64 / 1048576.0,
        args.partitions
    );

    let pass = passthrough(
        &brokers,
        &cfg.topics.submissions,
        &passthrough_topic,
        events.len(),
        &format!("{tag}-pass"),
    )?;
    println!(
        "passthrough (consume -> produce, at-least-once): {:>9.0} events/s",
        pass
    );
    let mut results = vec![];
    for g in [Guarantee::AtLeastOnce, Guarantee::ExactlyOnce] {
        let mut c = cfg.clone();
        c.processing.guarantee = g;
        c.kafka.group_id = format!("{tag}-{g:?}");
        c.topics.verdicts = format!("{tag}-verdicts-{g:?}").to_lowercase();
        let spec = spamflow_pipeline::kafka::TopicSpec {
            name: c.topics.verdicts.clone(),
            partitions: args.partitions,
            compacted: false,
        };
        make_topics(mock.as_ref(), &brokers, &c, &[spec])?;
        let rate = pipeline(&c, events.len())?;
        let answered = count_verdicts(&brokers, &c.topics.verdicts, args.partitions, events.len())?;
        anyhow::ensure!(
            answered == events.len(),
            "{g:?}: {answered} of {} events got a verdict",
            events.len()
        );
        println!("pipeline {:<13}: {:>9.0} events/s  = {:.2}x passthrough  (verdict for each of {} events)", format!("{g:?}"), rate, rate / pass, answered);
        results.push(rate / pass);
        if args.latency_secs > 0 {
            let at = args.latency_rate.unwrap_or(rate / 2.0);
            // The bare passthrough at the same rate first: the latency the broker, the
            // clients and this machine give before any pipeline work.
            for under in [Under::Passthrough, Under::Pipeline] {
                let name = match under {
                    Under::Passthrough => "passthrough".to_owned(),
                    Under::Pipeline => format!("{g:?}"),
                };
                let mut l = c.clone();
                let run = format!("{tag}-{name}-{g:?}-latency").to_lowercase();
                l.kafka.group_id = run.clone();
                l.topics.submissions = format!("{run}-in");
                l.topics.verdicts = format!("{run}-out");
                // State of its own: the throughput run's is not restored into this one.
                l.topics.changelog = format!("{run}-changelog");
                let specs: Vec<_> = [
                    (&l.topics.submissions, false),
                    (&l.topics.verdicts, false),
                    (&l.topics.changelog, true),
                ]
                .into_iter()
                .map(|(name, compacted)| spamflow_pipeline::kafka::TopicSpec {
                    name: name.clone(),
                    partitions: args.partitions,
                    compacted,
                })
                .collect();
                make_topics(mock.as_ref(), &brokers, &l, &specs)?;
                let lat = latency(
                    &l,
                    under,
                    args.partitions,
                    at,
                    Duration::from_secs(args.latency_secs),
                )?;
                println!(
                    "latency {:<14}: at {:>7.0} events/s, {} events, every one answered: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
                    name,
                    at,
                    lat.len(),
                    pct(&lat, 0.50),
                    pct(&lat, 0.99),
                    pct(&lat, 0.999),
                    pct(&lat, 1.0)
                );
            }
        }
    }
    Ok(())
}

/// Creates `specs` on the mock cluster or on `brokers`.
fn make_topics(
    mock: Option<&MockCluster<'_, rdkafka::producer::DefaultProducerContext>>,
    brokers: &str,
    cfg: &Config,
    specs: &[spamflow_pipeline::kafka::TopicSpec],
) -> anyhow::Result<()> {
    match mock {
        Some(m) => {
            for s in specs {
                m.create_topic(&s.name, s.partitions, 1)?;
            }
        }
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(create_topics(brokers, cfg, specs))?,
    }
    Ok(())
}

/// The pipeline on `cfg`, running on a thread of its own.
fn start(
    cfg: &Config,
) -> anyhow::Result<(
    Arc<Metrics>,
    Stop,
    std::thread::JoinHandle<anyhow::Result<()>>,
)> {
    let metrics = Arc::new(Metrics::default());
    let stop = Stop::new();
    let chain = spamflow_pipeline::chain(cfg)?;
    let handle = {
        let (c, m, s) = (cfg.clone(), metrics.clone(), stop.clone());
        std::thread::spawn(move || runtime::run(&c, &c.kafka.brokers, chain, m, s))
    };
    Ok((metrics, stop, handle))
}

/// The `q` quantile of sorted `v`, in ms.
fn pct(v: &[f64], q: f64) -> f64 {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Counts the events the broker never took (a delivery error after the producer's retries).
#[derive(Default)]
struct Undelivered(std::sync::atomic::AtomicU64);

impl rdkafka::ClientContext for Undelivered {}

impl rdkafka::producer::ProducerContext for Undelivered {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::message::DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// What a latency run feeds.
#[derive(Clone, Copy)]
enum Under {
    /// The pipeline on the run's config, answering with verdicts.
    Pipeline,
    /// The bare passthrough, answering with the event itself.
    Passthrough,
}

/// The `message_id` and `submitted_at` of a verdict, or of an event passed through as it is.
#[derive(serde::Deserialize)]
struct Stamped {
    message_id: String,
    submitted_at: chrono::DateTime<chrono::Utc>,
}

/// Runs `under` from `cfg.topics.submissions` to `cfg.topics.verdicts` and feeds it live
/// events at `rate` for `secs`, each with `submitted_at` = now; returns the sorted
/// latencies (ms) from `submitted_at` to the answer being readable read_committed, one per
/// event (every event must get one).
fn latency(
    cfg: &Config,
    under: Under,
    partitions: i32,
    rate: f64,
    secs: Duration,
) -> anyhow::Result<Vec<f64>> {
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    // Whether the clock may start (the warm-up event aside): the pipeline has joined,
    // restored every partition and committed; the passthrough just runs.
    let (ready, stop, handle): (Box<dyn Fn() -> bool>, Stop, _) = match under {
        Under::Pipeline => {
            let (metrics, stop, handle) = start(cfg)?;
            let ready = move || {
                metrics.verdicts_total() > 0
                    && metrics.commits.load(relaxed) > 0
                    && metrics.assigned_partitions.load(relaxed) >= i64::from(partitions)
                    && metrics.restoring_partitions.load(relaxed) == 0
            };
            (Box::new(ready), stop, handle)
        }
        Under::Passthrough => {
            let stop = Stop::new();
            let (c, s) = (cfg.clone(), stop.clone());
            let handle = std::thread::spawn(move || {
                spamflow_loadtest::kafka::passthrough(
                    &c.kafka.brokers,
                    &c.topics.submissions,
                    &c.topics.verdicts,
                    &c.kafka.group_id,
                    |_| s.is_set(),
                )
                .map(|_| ())
            });
            (Box::new(|| true), stop, handle)
        }
    };
    let brokers = &cfg.kafka.brokers;
    let p: Arc<ThreadedProducer<Undelivered>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "0")
            .set("enable.idempotence", "true")
            // Within the 30 s the reader waits for news: an event the broker does not take
            // by then is counted as such, not blamed on the pipeline.
            .set("message.timeout.ms", "20000")
            .create_with_context(Undelivered::default())?,
    );
    let feeder_producer = p.clone();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{}-reader", cfg.kafka.group_id))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for part in 0..partitions {
        tpl.add_partition_offset(&cfg.topics.verdicts, part, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut synth = spamflow_loadtest::synth::Synth::new(2, chrono::Utc::now(), rate);
    let topic = cfg.topics.submissions.clone();
    let mut send = move |warm_up: bool| -> anyhow::Result<()> {
        let (mut doc, _) = synth.next_event();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        doc["submitted_at"] = now.into();
        if warm_up {
            doc["message_id"] = "warm-up".into();
        }
        let key =
            spamflow_operators::origin::parse_sender(doc["sender"].as_str().unwrap_or_default())
                .key;
        let body = serde_json::to_vec(&doc)?;
        spamflow_loadtest::kafka::send(
            &feeder_producer,
            BaseRecord::to(&topic)
                .key(key.as_bytes())
                .payload(body.as_slice()),
        );
        if warm_up {
            feeder_producer.flush(Duration::from_secs(30))?;
        }
        Ok(())
    };
    let mut got = Vec::new();
    // Reads one answer, if one comes within `wait`; true for the warm-up event's.
    let read = |got: &mut Vec<f64>, wait: Duration| -> bool {
        if let Some(Ok(m)) = c.poll(wait) {
            let Ok(v) = serde_json::from_slice::<Stamped>(m.payload().unwrap_or_default()) else {
                return false;
            };
            let ms = (chrono::Utc::now() - v.submitted_at)
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1e3;
            if v.message_id == "warm-up" {
                return true;
            }
            got.push(ms);
        }
        false
    };
    // The warm-up event is answered before the clock starts.
    send(true)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut warmed_up = false;
    while !(warmed_up && ready()) {
        anyhow::ensure!(
            Instant::now() < deadline && !handle.is_finished(),
            "what is measured did not start"
        );
        warmed_up |= read(&mut got, Duration::from_millis(1));
    }
    // A feeder thread paces the events; this one reads the verdicts as they come.
    let n = (rate * secs.as_secs_f64()) as usize;
    let feeder = std::thread::spawn(move || -> anyhow::Result<()> {
        let t0 = Instant::now();
        for i in 0..n {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
            send(false)?;
        }
        Ok(())
    });
    // Until every event is answered, or nothing new came for 30 s.
    let mut last = (0, Instant::now());
    while got.len() < n && last.1.elapsed() < Duration::from_secs(30) {
        read(&mut got, Duration::from_millis(10));
        if got.len() > last.0 {
            last = (got.len(), Instant::now());
        }
    }
    feeder
        .join()
        .map_err(|_| anyhow::anyhow!("feeder panicked"))??;
    stop.trigger();
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("what was measured panicked"))??;
    let _ = p.flush(Duration::from_secs(30));
    let undelivered = p.context().0.load(relaxed);
    anyhow::ensure!(
        got.len() == n,
        "{} of {n} events got a verdict; {undelivered} of them the broker never took from this \
         bench's producer (delivery failed after its retries)",
        got.len()
    );
    got.sort_by(f64::total_cmp);
    Ok(got)
}

fn load(brokers: &str, topic: &str, events: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    for (k, v) in events {
        spamflow_loadtest::kafka::send(
            &p,
            BaseRecord::to(topic)
                .key(k.as_bytes())
                .payload(v.as_slice()),
        );
    }
    p.flush(Duration::from_secs(60)).context("loading input")?;
    Ok(())
}

/// The bare passthrough until it has forwarded `n` records; events/s.
fn passthrough(brokers: &str, from: &str, to: &str, n: usize, group: &str) -> anyhow::Result<f64> {
    let (seen, took) =
        spamflow_loadtest::kafka::passthrough(brokers, from, to, group, |seen| seen >= n as u64)?;
    Ok(seen as f64 / took.as_secs_f64().max(1e-9))
}

/// The pipeline from its first record until every event is answered; events/s.
fn pipeline(cfg: &Config, n: usize) -> anyhow::Result<f64> {
    let (metrics, stop, handle) = start(cfg)?;
    let wait = Stop::new();
    while metrics.consumed.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        anyhow::ensure!(!handle.is_finished(), "pipeline exited before consuming");
        wait.wait(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    // Until every event is answered and a commit has covered everything read (the one that
    // makes the last verdicts visible).
    while (metrics.verdicts_total() + metrics.dlq_total()) < n as u64
        || metrics
            .uncommitted_since_ms
            .load(std::sync::atomic::Ordering::Relaxed)
            != 0
    {
        anyhow::ensure!(!handle.is_finished(), "pipeline exited early");
        wait.wait(Duration::from_millis(1));
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    stop.trigger();
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline panicked"))??;
    Ok(rate)
}

fn count_verdicts(brokers: &str, topic: &str, partitions: i32, n: usize) -> anyhow::Result<usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-count"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut ids = HashSet::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ids.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            if let Some(k) = m.key() {
                ids.insert(k.to_vec());
            }
        }
    }
    Ok(ids.len())
}
