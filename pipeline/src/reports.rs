//! Subscribers' spam reports: `spamflow report` reads and publishes them to
//! `topics.reports`, keyed by the reported sender's normalized form (as submissions are
//! keyed), so that the reports of one sender share a partition; and every instance
//! follows the topic into its [`ReportedContent`], which blocks content that enough
//! distinct subscribers reported.
//!
//! The follower reads every partition (no consumer group: each instance needs every
//! report), starting at the reports that can still matter: those of the last
//! `reports.window_secs + reports.block_secs`. So a restarted instance rebuilds what is
//! blocked. A record that is not a valid report is logged by partition and offset,
//! counted, and skipped.

use std::hash::{Hash as _, Hasher as _};
use std::io::BufRead as _;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spamflow_operators::origin::parse_sender;
use spamflow_operators::reports::{Added, ReportedContent};
use spamflow_schemas::{decode_report, SpamReport};

use crate::config::Config;
use crate::kafka::{base_consumer_config, Reader, ReaderContext};
use crate::metrics::Metrics;
use crate::runtime::Stop;

/// Starts following `topics.reports` into `content`; the thread ends on `stop`. `None`
/// with `reports.enabled = false`.
pub fn follow(
    cfg: &Config,
    brokers: &str,
    content: Arc<ReportedContent>,
    metrics: Arc<Metrics>,
    stop: Stop,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if !cfg.reports.enabled {
        return Ok(None);
    }
    let topic = cfg.topics.reports.clone();
    let consumer: Reader = base_consumer_config(cfg, brokers)
        // Needed to assign; never joined (no subscribe) and never committed.
        .set("group.id", format!("{}-reports", cfg.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(ReaderContext)
        .context("creating the report follower")?;
    let timeout = Duration::from_millis(cfg.processing.kafka_timeout_ms);
    let lookback = Duration::from_secs(cfg.reports.window_secs + cfg.reports.block_secs);
    let handle = std::thread::Builder::new().name("spamflow-reports".into()).spawn(move || {
        let Some(partitions) = crate::kafka::partition_count(&consumer, &topic, timeout, &stop) else {
            return;
        };
        let from = chrono::Utc::now() - chrono::Duration::from_std(lookback).unwrap_or_default();
        let all: Vec<i32> = (0..partitions).collect();
        let start = match crate::kafka::offsets_at(&consumer, &topic, &all, from, timeout) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot find where the reports of the last window start; reading all");
                let mut t = TopicPartitionList::new();
                for p in 0..partitions {
                    let _ = t.add_partition_offset(&topic, p, Offset::Beginning);
                }
                t
            }
        };
        if let Err(e) = consumer.assign(&start) {
            tracing::error!(error = %e, "cannot assign the reports topic");
            return;
        }
        while !stop.is_set() {
            match consumer.poll(Duration::from_millis(100)) {
                None | Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    metrics.client_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "report follower error");
                }
                Some(Ok(m)) => match decode_report(m.payload().unwrap_or_default()) {
                    Ok(r) => {
                        metrics.reports_applied.fetch_add(1, Relaxed);
                        if let Added::Blocked(b) = apply(&content, &r) {
                            metrics
                                .reported_contents_blocked
                                .store(content.blocked_count() as i64, Relaxed);
                            tracing::info!(reporters = b.reporters, report = %r.report_id, "reported content blocked");
                        }
                    }
                    Err(e) => {
                        metrics.reports_rejected.fetch_add(1, Relaxed);
                        tracing::warn!(partition = m.partition(), offset = m.offset(), error = %e, "skipping a record that is not a spam report");
                    }
                },
            }
        }
    })?;
    Ok(Some(handle))
}

/// Counts one report. Reports that carry only a message id do not count towards content
/// (the text of a message by id is not kept).
pub fn apply(content: &ReportedContent, r: &SpamReport) -> Added {
    let Some(text) = r.text.as_deref() else {
        return Added::Ignored;
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parse_sender(&r.reporter).key.hash(&mut h);
    content.add(text, h.finish(), r.reported_at.timestamp_millis())
}

/// Reads reports (JSON lines) from a file: the reports, and one problem (`file:line:
/// error`) per line that is not a valid report. Blank lines are skipped.
pub fn read_file(path: &Path) -> anyhow::Result<(Vec<SpamReport>, Vec<String>)> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reports = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match decode_report(line.as_bytes()) {
            Ok(r) => reports.push(r),
            Err(e) => problems.push(format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    Ok((reports, problems))
}

/// Validates every report (as the readers of the topic will) and publishes them.
pub fn publish(cfg: &Config, brokers: &str, reports: &[SpamReport]) -> anyhow::Result<()> {
    let mut keyed = Vec::with_capacity(reports.len());
    for r in reports {
        let value = serde_json::to_vec(r)?;
        decode_report(&value).with_context(|| format!("report {}", r.report_id))?;
        keyed.push((parse_sender(&r.sender).key, Some(value)));
    }
    crate::kafka::publish(cfg, brokers, &cfg.topics.reports, &keyed)
}
