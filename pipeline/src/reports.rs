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
//!
//! A content this instance blocks is also published to the compacted
//! `topics.reported_content` ([`ReportedContentRecord`], keyed by fingerprint): every
//! instance derives the same block from the same reports and publishes the same record,
//! and compaction keeps one. Staff lift a block there (`spamflow reported lift`); every
//! instance follows that topic, and reads it to its end before the first report, so a
//! lift stays lifted when the reports are read again after a restart.
//!
//! A report that names only a message id is resolved by the instance that delivered the
//! message (its workers remember delivered messages' contents by id,
//! [`ReportedContent::resolve`]): its follower writes a [`ReportResolution`] to the
//! compacted `topics.report_resolutions`, keyed by report id, which every follower reads
//! from the same lookback as the reports and counts like a report with text.
//!
//! Contents a partition blocked as a campaign's come on `topics.campaign_contents`
//! ([`CampaignContent`]); the follower notes them for late alerts, so that the recipients
//! of copies delivered in any partition are warned.
//!
//! The follower also counts distinct reporters per reported number ([`ReportedNumbers`]).
//! With `reports.suspend = "auto"` the report that reaches `reports.suspend_min_reporters`
//! makes the instance publish a suspension record to the sender registry. Every instance
//! reads the same reports in the same order, so each publishes the same record (same key,
//! same bytes: its time is the report's), and compaction keeps one. A number already
//! suspended is left alone, and reports up to the number's last status change (a release
//! by staff) do not count, so a restarted instance, which reads the reports again, does
//! not undo a release.

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
use spamflow_operators::origin::{mask_number, parse_sender, Registry};
use spamflow_operators::reports::{content_key, Added, ReportedContent, ReportedNumbers, Suspend};
use spamflow_schemas::{
    decode_report, CampaignContent, RegistrationRecord, RegistrationStatus, ReportResolution,
    ReportedContentRecord, SpamReport,
};

use crate::config::Config;
use crate::kafka::{base_consumer_config, Reader, ReaderContext};
use crate::metrics::{Metrics, ThreadWatch};
use crate::runtime::Stop;

/// Who an automatic suspension names as its author.
pub const AUTO_SUSPENDED_BY: &str = "spamflow:reports";

/// Starts following `topics.reports` into `content` (and, for suspensions, against
/// `registry`, which must be loaded first); the thread ends on `stop`. `None` with
/// `reports.enabled = false`.
pub fn follow(
    cfg: &Config,
    brokers: &str,
    content: Arc<ReportedContent>,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    stop: Stop,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    if !cfg.reports.enabled {
        return Ok(None);
    }
    let (cfg_owned, brokers_owned) = (cfg.clone(), brokers.to_owned());
    let mut numbers = ReportedNumbers::new(&cfg.reports);
    let topic = cfg.topics.reports.clone();
    let content_topic = cfg.topics.reported_content.clone();
    let resolutions_topic = cfg.topics.report_resolutions.clone();
    let campaigns_topic = cfg.topics.campaign_contents.clone();
    let consumer: Reader = base_consumer_config(cfg, brokers)
        // Needed to assign; never joined (no subscribe) and never committed.
        .set("group.id", format!("{}-reports", cfg.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(ReaderContext)
        .context("creating the report follower")?;
    let timeout = Duration::from_millis(cfg.processing.kafka_timeout_ms);
    let lookback = Duration::from_secs(cfg.reports.window_secs + cfg.reports.block_secs);
    let handle = std::thread::Builder::new().name("spamflow-reports".into()).spawn(move || {
        let _watch = ThreadWatch::new(metrics.clone(), "reports follower", stop.clone());
        // Blocks and lifts first, to their end, then the reports beside them.
        let Some(content_parts) = crate::kafka::partition_count(&consumer, &content_topic, timeout, &stop) else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..content_parts {
            let _ = tpl.add_partition_offset(&content_topic, p, Offset::Beginning);
        }
        if let Err(e) = consumer.assign(&tpl) {
            tracing::error!(error = %e, "cannot assign the reported-content topic");
            return;
        }
        let mut at_end = vec![false; content_parts as usize];
        while !stop.is_set() && !at_end.iter().all(|x| *x) {
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                    if let Some(e) = at_end.get_mut(p as usize) {
                        *e = true;
                    }
                }
                Some(Err(e)) => {
                    metrics.client_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "reported-content follower error");
                }
                Some(Ok(m)) => apply_content_record(&content, &metrics, &m),
            }
        }
        // The reports, the resolutions of reports that named only a message id, and the
        // contents found to be campaigns, from the start of the lookback.
        let from = chrono::Utc::now() - chrono::Duration::from_std(lookback).unwrap_or_default();
        let mut start = TopicPartitionList::new();
        for t in [&topic, &resolutions_topic, &campaigns_topic] {
            let Some(partitions) = crate::kafka::partition_count(&consumer, t, timeout, &stop) else {
                return;
            };
            let all: Vec<i32> = (0..partitions).collect();
            match crate::kafka::offsets_at(&consumer, t, &all, from, timeout) {
                Ok(found) => {
                    for e in found.elements() {
                        let _ = start.add_partition_offset(t, e.partition(), e.offset());
                    }
                }
                Err(e) => {
                    tracing::warn!(topic = %t, error = %e, "cannot find where the last window starts; reading all");
                    for p in all {
                        let _ = start.add_partition_offset(t, p, Offset::Beginning);
                    }
                }
            }
        }
        if let Err(e) = consumer.incremental_assign(&start) {
            tracing::error!(error = %e, "cannot assign the reports topics");
            return;
        }
        while !stop.is_set() {
            match consumer.poll(Duration::from_millis(100)) {
                None | Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    metrics.client_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "report follower error");
                }
                Some(Ok(m)) if m.topic() == content_topic => apply_content_record(&content, &metrics, &m),
                Some(Ok(m)) if m.topic() == campaigns_topic => apply_campaign(&content, &metrics, &m),
                Some(Ok(m)) if m.topic() == resolutions_topic => {
                    if let Some(b) = apply_resolution(&content, &metrics, &m) {
                        publish_block(&cfg_owned, &brokers_owned, &metrics, &content, b);
                    }
                }
                Some(Ok(m)) => match decode_report(m.payload().unwrap_or_default()) {
                    Ok(r) => {
                        // Both decisions first, against the state as this report found
                        // it; then the (slower) publishing.
                        let blocked = apply(&content, &r);
                        let suspension = count_number(&cfg_owned, &mut numbers, &registry, &r);
                        resolve(&cfg_owned, &brokers_owned, &metrics, &content, &r);
                        if let Added::Blocked(b) = blocked {
                            let text = r.text.as_deref().unwrap_or_default();
                            if let Some(fp) = content_key(text) {
                                let rec = ReportedContent::record(fp, Some(text), b, AUTO_SUSPENDED_BY);
                                publish_block(&cfg_owned, &brokers_owned, &metrics, &content, rec);
                            }
                        }
                        if let Some(rec) = suspension {
                            suspend(&cfg_owned, &brokers_owned, &metrics, rec);
                        }
                        // Counted once everything this report did is done.
                        metrics.reports_applied.fetch_add(1, Relaxed);
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

/// Sends the records of `topics.reports` that are not valid reports to the DLQ, each
/// once: the instances share this as a consumer group (`<kafka.group_id>-report-checker`),
/// so each partition is checked by one of them, and offsets are committed after the DLQ
/// records are flushed: right after a bad report, else every 10 s (at least once: a crash
/// between the two may repeat a DLQ record).
/// A new group starts at the oldest report kept. `None` with `reports.enabled = false`.
pub fn check(
    cfg: &Config,
    brokers: &str,
    metrics: Arc<Metrics>,
    stop: Stop,
) -> anyhow::Result<Option<JoinHandle<()>>> {
    use rdkafka::consumer::CommitMode;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
    if !cfg.reports.enabled {
        return Ok(None);
    }
    let topic = cfg.topics.reports.clone();
    let dlq = cfg.topics.dlq.clone();
    let consumer: Reader = base_consumer_config(cfg, brokers)
        .set("group.id", format!("{}-report-checker", cfg.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(ReaderContext)
        .context("creating the report checker")?;
    consumer
        .subscribe(&[&topic])
        .context("subscribing the report checker")?;
    let producer: ThreadedProducer<DefaultProducerContext> =
        crate::kafka::base_config(cfg, brokers)
            .set("enable.idempotence", "true")
            .create()
            .context("creating the report checker's producer")?;
    let timeout = Duration::from_millis(cfg.processing.kafka_timeout_ms);
    let handle = std::thread::Builder::new().name("spamflow-report-check".into()).spawn(move || {
        let _watch = ThreadWatch::new(metrics.clone(), "report checker", stop.clone());
        let (mut uncommitted, mut dead_lettered) = (false, false);
        let mut last_commit = std::time::Instant::now();
        while !stop.is_set() {
            match consumer.poll(Duration::from_millis(100)) {
                None | Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    metrics.client_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "report checker error");
                }
                Some(Ok(m)) => {
                    uncommitted = true;
                    if let Err(e) = decode_report(m.payload().unwrap_or_default()) {
                        let mut rec = spamflow_schemas::DlqRecord {
                            key: m.key().map(<[u8]>::to_vec),
                            payload: m.payload().map(<[u8]>::to_vec),
                            error: spamflow_schemas::DlqError {
                                kind: spamflow_schemas::DlqErrorKind::Decode,
                                code: e.code(),
                                message: e.to_string(),
                            },
                            source_topic: topic.clone(),
                            source_partition: m.partition(),
                            source_offset: m.offset(),
                            failed_at: chrono::Utc::now(),
                            truncation: None,
                        };
                        rec.truncate_payload(|p| {
                            use sha2::Digest as _;
                            hex::encode(sha2::Sha256::digest(p))
                        });
                        let mut out: BaseRecord<'_, [u8], [u8]> =
                            BaseRecord::to(&dlq).headers(crate::kafka::dlq_headers(&rec));
                        if let Some(k) = &rec.key {
                            out = out.key(k.as_slice());
                        }
                        if let Some(p) = &rec.payload {
                            out = out.payload(p.as_slice());
                        }
                        loop {
                            match producer.send(out) {
                                Ok(()) => {
                                    metrics.count_dlq(rec.error.code);
                                    dead_lettered = true;
                                    break;
                                }
                                Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) if !stop.is_set() => {
                                    out = back;
                                    std::thread::sleep(Duration::from_millis(10));
                                }
                                Err((e, _)) => {
                                    // Its offset is not committed: the next owner of the
                                    // partition (or a restart) checks it again.
                                    metrics.client_errors.fetch_add(1, Relaxed);
                                    tracing::error!(error = %e, partition = m.partition(), offset = m.offset(), "cannot send a bad report to the DLQ; report checking stops here until a restart");
                                    return;
                                }
                            }
                        }
                    }
                }
            }
            if dead_lettered || (uncommitted && last_commit.elapsed() >= Duration::from_secs(10)) {
                match crate::kafka::flush(&producer, timeout) {
                    Ok(()) => {
                        if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                            tracing::warn!(error = %e, "report checker: offset commit failed; its records may be checked again");
                        }
                        (uncommitted, dead_lettered) = (false, false);
                        last_commit = std::time::Instant::now();
                    }
                    Err(e) => tracing::warn!(error = %e, "report checker: DLQ flush failed; trying again"),
                }
            }
        }
        if uncommitted && crate::kafka::flush(&producer, timeout).is_ok() {
            let _ = consumer.commit_consumer_state(CommitMode::Sync);
        }
    })?;
    Ok(Some(handle))
}

/// A block this instance made from reports: counted, logged and published.
fn publish_block(
    cfg: &Config,
    brokers: &str,
    metrics: &Metrics,
    content: &ReportedContent,
    rec: ReportedContentRecord,
) {
    metrics
        .reported_contents_blocked
        .store(content.blocked_count() as i64, Relaxed);
    tracing::info!(reporters = rec.reporters, fingerprint = %rec.fingerprint, "reported content blocked");
    publish_content(cfg, brokers, metrics, &rec);
}

/// Counts one record of the report-resolutions topic (a report that named only a message
/// id, resolved to the message's content by the instance that delivered it) like a report
/// with text. Returns the block's record when it crossed the line; a malformed record is
/// logged by offset, counted and skipped.
fn apply_resolution(
    content: &ReportedContent,
    metrics: &Metrics,
    m: &rdkafka::message::BorrowedMessage<'_>,
) -> Option<ReportedContentRecord> {
    let payload = m.payload()?;
    let r = match ReportResolution::decode(payload) {
        Ok(r) => r,
        Err(e) => {
            metrics.reports_rejected.fetch_add(1, Relaxed);
            tracing::warn!(offset = m.offset(), error = %e, "skipping a report-resolution record that does not decode");
            return None;
        }
    };
    let fp = u64::from_str_radix(&r.fingerprint, 16).ok()?;
    metrics.reports_resolved.fetch_add(1, Relaxed);
    match content.add_content(
        fp,
        reporter_id(&r.reporter),
        r.reported_at.timestamp_millis(),
    ) {
        Added::Blocked(b) => Some(ReportedContent::record(fp, None, b, AUTO_SUSPENDED_BY)),
        _ => None,
    }
}

/// Notes one record of the campaign-contents topic (a content some partition blocked as a
/// campaign's) for late alerts; a malformed one is logged by offset, counted and skipped.
fn apply_campaign(
    content: &ReportedContent,
    metrics: &Metrics,
    m: &rdkafka::message::BorrowedMessage<'_>,
) {
    let Some(payload) = m.payload() else {
        return;
    };
    match CampaignContent::decode(payload) {
        Ok(c) => {
            if let Ok(fp) = u64::from_str_radix(&c.fingerprint, 16) {
                content.campaign(fp, c.detected_at.timestamp_millis());
            }
        }
        Err(e) => {
            metrics.reports_rejected.fetch_add(1, Relaxed);
            tracing::warn!(offset = m.offset(), error = %e, "skipping a campaign-content record that does not decode");
        }
    }
}

/// Applies one record of the reported-content topic; a malformed one is logged by offset,
/// counted and skipped.
fn apply_content_record(
    content: &ReportedContent,
    metrics: &Metrics,
    m: &rdkafka::message::BorrowedMessage<'_>,
) {
    let Some(payload) = m.payload() else {
        return; // A tombstone: the topic's own clean-up; the block expires by itself.
    };
    match ReportedContentRecord::decode(payload).and_then(|r| content.apply_record(&r)) {
        Ok(_) => metrics
            .reported_contents_blocked
            .store(content.blocked_count() as i64, Relaxed),
        Err(e) => {
            metrics.reports_rejected.fetch_add(1, Relaxed);
            tracing::warn!(offset = m.offset(), error = %e, "skipping a reported-content record that does not decode");
        }
    }
}

/// Resolves a report that names only a message id, when this instance delivered the
/// message: publishes its content to `topics.report_resolutions` for every instance to
/// count. Another instance that delivered it too (before a rebalance) publishes the same
/// record under the same key.
fn resolve(
    cfg: &Config,
    brokers: &str,
    metrics: &Metrics,
    content: &ReportedContent,
    r: &SpamReport,
) {
    if r.text.is_some() {
        return;
    }
    let Some(fp) = r.message_id.as_deref().and_then(|id| content.resolve(id)) else {
        return;
    };
    let rec = ReportResolution {
        schema_version: 1,
        report_id: r.report_id.clone(),
        reported_at: r.reported_at,
        reporter: r.reporter.clone(),
        message_id: r.message_id.clone().unwrap_or_default(),
        fingerprint: format!("{fp:016x}"),
    };
    let value = serde_json::to_vec(&rec).unwrap_or_default();
    let keyed = [(rec.report_id.clone(), Some(value))];
    if let Err(e) = crate::kafka::publish(cfg, brokers, &cfg.topics.report_resolutions, &keyed) {
        metrics.client_errors.fetch_add(1, Relaxed);
        tracing::error!(report = %rec.report_id, error = %e, "cannot publish a report's resolution; it counts towards its sender only");
    }
}

/// Publishes a block or a lift to `topics.reported_content`.
pub fn publish_content(
    cfg: &Config,
    brokers: &str,
    metrics: &Metrics,
    rec: &ReportedContentRecord,
) {
    let value = serde_json::to_vec(rec).unwrap_or_default();
    let keyed = [(rec.fingerprint.clone(), Some(value))];
    if let Err(e) = crate::kafka::publish(cfg, brokers, &cfg.topics.reported_content, &keyed) {
        metrics.client_errors.fetch_add(1, Relaxed);
        tracing::error!(fingerprint = %rec.fingerprint, error = %e, "cannot publish a reported content; it is blocked here, and another instance or a restart publishes it");
    }
}

/// Counts the report against its sender number. Returns the suspension to publish when
/// this report reaches `reports.suspend_min_reporters` (with `suspend = "propose"`, the
/// record staff would publish; with `"off"`, nothing).
pub fn count_number(
    cfg: &Config,
    numbers: &mut ReportedNumbers,
    registry: &Registry,
    r: &SpamReport,
) -> Option<RegistrationRecord> {
    if cfg.reports.suspend == Suspend::Off {
        return None;
    }
    let sender = parse_sender(&r.sender);
    if !sender.kind.is_number() || registry.is_suspended(&sender.key) {
        return None;
    }
    let at = r.reported_at;
    let reporters = numbers.add(
        &sender.key,
        reporter_id(&r.reporter),
        at.timestamp_millis(),
        registry.changed_at_ms(&sender.key),
    )?;
    let mut rec = registry
        .registration(&sender.key)
        .unwrap_or_else(|| RegistrationRecord {
            number: sender.key.clone(),
            ..RegistrationRecord::default()
        });
    rec.status = RegistrationStatus::Suspended;
    rec.changed_by = Some(AUTO_SUSPENDED_BY.into());
    rec.changed_at = Some(at);
    rec.reason = Some(format!(
        "reported by {reporters} distinct subscribers within {} s",
        cfg.reports.suspend_window_secs
    ));
    rec.reporters = Some(reporters);
    Some(rec)
}

/// Publishes an automatic suspension (`suspend = "auto"`), or logs the proposal.
fn suspend(cfg: &Config, brokers: &str, metrics: &Metrics, rec: RegistrationRecord) {
    let masked = mask_number(&rec.number);
    if cfg.reports.suspend == Suspend::Propose {
        metrics.numbers_proposed.fetch_add(1, Relaxed);
        tracing::warn!(number = %masked, reporters = rec.reporters, "number proposed for suspension (reports.suspend = propose): see `spamflow numbers proposals`");
        return;
    }
    let number = rec.number.clone();
    match crate::registry::publish(cfg, brokers, &[(number, Some(rec))]) {
        Ok(()) => {
            metrics.numbers_suspended.fetch_add(1, Relaxed);
            tracing::warn!(number = %masked, "number suspended: enough subscribers reported it");
        }
        Err(e) => {
            metrics.client_errors.fetch_add(1, Relaxed);
            tracing::error!(number = %masked, error = %e, "cannot publish a suspension to the registry; another instance or a restart publishes it");
        }
    }
}

/// A stable id of a reporting subscriber (a hash of the normalized number).
fn reporter_id(reporter: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parse_sender(reporter).key.hash(&mut h);
    h.finish()
}

/// Counts one report. A report that names only a message id counts when its resolution
/// is read ([`resolve`]).
pub fn apply(content: &ReportedContent, r: &SpamReport) -> Added {
    let Some(text) = r.text.as_deref() else {
        return Added::Ignored;
    };
    content.add(
        text,
        reporter_id(&r.reporter),
        r.reported_at.timestamp_millis(),
    )
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
