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
//! With `--brokers` it uses that broker (e.g. the one `make kafka-start` starts); without,
//! the in-process mock cluster, whose retention (~100k messages / 5 MiB per partition)
//! bounds N.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
    let passthrough_topic = format!("{tag}-passthrough");
    let mut specs = topic_specs(&cfg, args.partitions);
    specs.push(spamflow_pipeline::kafka::TopicSpec {
        name: passthrough_topic.clone(),
        partitions: args.partitions,
        compacted: false,
    });
    match &mock {
        Some(m) => {
            for s in &specs {
                m.create_topic(&s.name, s.partitions, 1)?;
            }
        }
        None => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(create_topics(&brokers, &cfg, &specs))?,
    }

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
        match &mock {
            Some(m) => m.create_topic(&spec.name, spec.partitions, 1)?,
            None => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(create_topics(&brokers, &c, &[spec]))?,
        }
        let rate = pipeline(&c, events.len())?;
        let answered = count_verdicts(&brokers, &c.topics.verdicts, args.partitions, events.len())?;
        anyhow::ensure!(
            answered == events.len(),
            "{g:?}: {answered} of {} events got a verdict",
            events.len()
        );
        println!("pipeline {:<13}: {:>9.0} events/s  = {:.2}x passthrough  (verdict for each of {} events)", format!("{g:?}"), rate, rate / pass, answered);
        results.push(rate / pass);
    }
    Ok(())
}

fn load(brokers: &str, topic: &str, events: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    for (k, v) in events {
        let mut rec = BaseRecord::to(topic)
            .key(k.as_bytes())
            .payload(v.as_slice());
        while let Err((_, back)) = p.send(rec) {
            rec = back;
            p.poll(Duration::from_millis(5));
        }
    }
    p.flush(Duration::from_secs(60)).context("loading input")?;
    Ok(())
}

/// Bare consume -> produce of the same bytes with commit after flush; events/s.
fn passthrough(brokers: &str, from: &str, to: &str, n: usize, group: &str) -> anyhow::Result<f64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "2")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    c.subscribe(&[from])?;
    let mut t0 = None;
    let mut seen = 0;
    let mut last_commit = Instant::now();
    while seen < n {
        let Some(r) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = r?;
        t0.get_or_insert_with(Instant::now);
        let mut rec = BaseRecord::to(to).payload(m.payload().unwrap_or_default());
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        while let Err((_, back)) = p.send(rec) {
            rec = back;
            p.poll(Duration::from_millis(5));
        }
        seen += 1;
        if last_commit.elapsed() >= Duration::from_millis(100) {
            p.flush(Duration::from_secs(30))?;
            c.commit_consumer_state(CommitMode::Async)?;
            last_commit = Instant::now();
        }
    }
    p.flush(Duration::from_secs(30))?;
    c.commit_consumer_state(CommitMode::Sync)?;
    Ok(n as f64 / t0.map_or(1e-9, |t| t.elapsed().as_secs_f64()))
}

/// The pipeline from its first record until every event is answered; events/s.
fn pipeline(cfg: &Config, n: usize) -> anyhow::Result<f64> {
    let metrics = Arc::new(Metrics::default());
    let stop = Stop::new();
    let chain = spamflow_pipeline::chain(cfg)?;
    let handle = {
        let (c, m, s) = (cfg.clone(), metrics.clone(), stop.clone());
        std::thread::spawn(move || runtime::run(&c, &c.kafka.brokers, chain, m, s))
    };
    let wait = Stop::new();
    while metrics.consumed.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        anyhow::ensure!(!handle.is_finished(), "pipeline exited before consuming");
        wait.wait(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    while (metrics.verdicts_total() + metrics.dlq_total()) < n as u64
        || metrics.commits.load(std::sync::atomic::Ordering::Relaxed) == 0
    {
        anyhow::ensure!(!handle.is_finished(), "pipeline exited early");
        wait.wait(Duration::from_millis(1));
    }
    // Include the commit that makes the last verdicts visible.
    let commits = metrics.commits.load(std::sync::atomic::Ordering::Relaxed);
    while metrics.commits.load(std::sync::atomic::Ordering::Relaxed) == commits {
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
