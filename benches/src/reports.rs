//! `spamflow-bench-reports`: time from the report that crosses the line to the first
//! following message with that content blocked, end to end on a real broker under load.
//!
//! The pipeline (exactly-once, commits every 100 ms) and its report follower run in this
//! process while a feeder sends synthetic traffic at `--rate`. Each round takes a new
//! content, publishes `min_reporters - 1` reports of it, starts sending copies of it (other
//! names and links, other senders) every 10 ms, publishes the last report, and measures
//! from the moment that report is handed to the producer to the moment the first verdict
//! with `reports.content` for a copy is readable read_committed.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use spamflow_pipeline::config::Config;
use spamflow_pipeline::kafka::{create_topics, topic_specs};
use spamflow_pipeline::metrics::Metrics;
use spamflow_pipeline::runtime::{self, Stop};
use spamflow_schemas::{ReportChannel, SpamReport, Verdict};

#[derive(Parser)]
#[command(about = "spamflow: time from the last needed report to the first blocked copy")]
struct Args {
    /// The broker (e.g. the one `make kafka-start` starts).
    #[arg(long)]
    brokers: String,
    /// Contents reported, one after the other.
    #[arg(long, default_value_t = 20)]
    rounds: usize,
    /// Background traffic, events/s.
    #[arg(long, default_value_t = 2_000.0)]
    rate: f64,
    /// Partitions of every topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
}

fn producer(brokers: &str) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "0")
        .set("enable.idempotence", "true")
        .create()?)
}

/// The text of round `k`: its own words (two syllables from `k`), so that each round is
/// a content of its own; `variant` changes the name and the link, not the content.
fn content(k: usize, variant: usize) -> String {
    let syl = |n: usize| char::from_u32(0xAC00 + (n as u32 % 11_172)).unwrap_or('가');
    let names = ["김민수", "이영희", "박지훈", "최수진"];
    format!(
        "[Web발신] {} 고객님 {}{} 환급금 대상 확인 바랍니다 rf{variant}-{k}.top/q",
        names[variant % names.len()],
        syl(k * 7 + 101),
        syl(k * 13 + 503)
    )
}

fn send_json(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    doc: &serde_json::Value,
) {
    let body = serde_json::to_vec(doc).unwrap_or_default();
    spamflow_loadtest::kafka::send(
        p,
        BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(body.as_slice()),
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tag = format!("bench-reports-{}", std::process::id());
    let mut cfg = Config::default();
    cfg.kafka.brokers = args.brokers.clone();
    cfg.kafka.group_id = format!("{tag}-group");
    cfg.admin.listen = String::new();
    for (slot, name) in [
        (&mut cfg.topics.submissions, "in"),
        (&mut cfg.topics.verdicts, "verdicts"),
        (&mut cfg.topics.block, "block"),
        (&mut cfg.topics.alerts, "alerts"),
        (&mut cfg.topics.dlq, "dlq"),
        (&mut cfg.topics.registry, "registry"),
        (&mut cfg.topics.changelog, "changelog"),
        (&mut cfg.topics.reports, "reports"),
    ] {
        *slot = format!("{tag}-{name}");
    }
    // No registry is loaded: without this every relayed message would be blocked.
    cfg.origin.check_registry = false;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(create_topics(
            &args.brokers,
            &cfg,
            &topic_specs(&cfg, args.partitions),
        ))?;

    let ops = spamflow_pipeline::operators(&cfg, None)?;
    let metrics = Arc::new(Metrics::default());
    let stop = Stop::new();
    let follower = spamflow_pipeline::reports::follow(
        &cfg,
        &args.brokers,
        ops.reported.clone(),
        ops.registry.clone(),
        metrics.clone(),
        stop.clone(),
    )?;
    let engine = {
        let (c, m, s, chain) = (cfg.clone(), metrics.clone(), stop.clone(), ops.chain);
        std::thread::spawn(move || runtime::run(&c, &c.kafka.brokers, chain, m, s))
    };

    // Background traffic, and the copies of the current round's content.
    let round = Arc::new(AtomicUsize::new(usize::MAX));
    let done = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (p, topic, rate, round, done) = (
            producer(&args.brokers)?,
            cfg.topics.submissions.clone(),
            args.rate,
            round.clone(),
            done.clone(),
        );
        std::thread::spawn(move || {
            let mut synth = spamflow_loadtest::synth::Synth::new(5, chrono::Utc::now(), rate);
            let t0 = Instant::now();
            let mut i = 0u64;
            let mut next_copy = Instant::now();
            while !done.load(Relaxed) {
                let due = Duration::from_secs_f64(i as f64 / rate);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait.min(Duration::from_millis(2)));
                }
                let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
                let k = round.load(Relaxed);
                if k != usize::MAX && Instant::now() >= next_copy {
                    next_copy += Duration::from_millis(10);
                    let sender = format!("+8210{:08}", 40_000_000 + i % 1_000_000);
                    let doc = serde_json::json!({
                        "schema_version": 1, "message_id": format!("copy-{k}-{i}"), "submitted_at": now,
                        "sender": sender, "recipient": "+821055550000", "text": content(k, i as usize), "kind": "sms",
                        "origin": {"route": "domestic", "smsc": "smsc-bench-1"},
                    });
                    send_json(&p, &topic, &sender, &doc);
                }
                if t0.elapsed() >= due {
                    let (mut doc, _) = synth.next_event();
                    doc["submitted_at"] = now.into();
                    let key = spamflow_operators::origin::parse_sender(
                        doc["sender"].as_str().unwrap_or_default(),
                    )
                    .key;
                    send_json(&p, &topic, &key, &doc);
                    i += 1;
                }
            }
        })
    };

    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("{tag}-reader"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for part in 0..args.partitions {
        tpl.add_partition_offset(&cfg.topics.verdicts, part, Offset::End)?;
    }
    reader.assign(&tpl)?;
    let reports = producer(&args.brokers)?;
    let needed = cfg.reports.min_reporters as usize;
    let mut times = Vec::new();
    for k in 0..args.rounds {
        let report = |n: usize| SpamReport {
            schema_version: 1,
            report_id: format!("{tag}-{k}-{n}"),
            reported_at: chrono::Utc::now(),
            reporter: format!("+8210{:08}", 70_000_000 + k * 100 + n),
            sender: "+821012340000".into(),
            text: Some(content(k, n)),
            message_id: None,
            channel: ReportChannel::Kisa118,
            category: None,
        };
        let publish = |r: &SpamReport| -> anyhow::Result<()> {
            send_json(
                &reports,
                &cfg.topics.reports,
                "+821012340000",
                &serde_json::to_value(r)?,
            );
            reports.flush(Duration::from_secs(30))?;
            Ok(())
        };
        for n in 1..needed {
            publish(&report(n))?;
        }
        round.store(k, Relaxed);
        std::thread::sleep(Duration::from_millis(200));
        // From the moment the last report is handed to the producer: the flush that
        // follows waits in steps of up to 100 ms and would hide most of the time.
        let t0 = Instant::now();
        publish(&report(needed))?;
        let prefix = format!("copy-{k}-");
        loop {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(60),
                "round {k}: no copy blocked within 60 s"
            );
            let Some(Ok(m)) = reader.poll(Duration::from_millis(5)) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Verdict>(m.payload().unwrap_or_default()) else {
                continue;
            };
            if v.message_id.starts_with(&prefix)
                && v.reasons.iter().any(|r| r.code == "reports.content")
            {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
                break;
            }
        }
        round.store(usize::MAX, Relaxed);
    }
    done.store(true, Relaxed);
    let _ = feeder.join();
    stop.trigger();
    if let Some(f) = follower {
        let _ = f.join();
    }
    engine
        .join()
        .map_err(|_| anyhow::anyhow!("pipeline panicked"))??;
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "reports -> block: {} rounds at {:.0} events/s background, {needed} reporters each: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        times.len(),
        args.rate,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
