//! Pipeline counters, aggregated locally by each worker per batch and published here
//! (never a metric call per message), rendered in the Prometheus text format.
//!
//! Labels are bounded: actions, DLQ codes, operator names. Never a phone number or id.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use spamflow_schemas::Action;

/// DLQ error codes (bounded label set).
pub const DLQ_CODES: &[&str] = &[
    "empty",
    "invalid_utf8",
    "bad_field",
    "invalid_value",
    "unsupported_version",
    "oversized",
    "unproducible",
    "internal_error",
];

/// The index of `code` in [`DLQ_CODES`] (an unknown code counts as the last).
pub fn dlq_index(code: &str) -> usize {
    DLQ_CODES
        .iter()
        .position(|c| *c == code)
        .unwrap_or(DLQ_CODES.len() - 1)
}

/// All counters of one pipeline instance.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records read from the input topic.
    pub consumed: AtomicU64,
    /// Verdicts by action (allow, label, throttle, block).
    pub verdicts: [AtomicU64; 4],
    /// Alerts produced.
    pub alerts: AtomicU64,
    /// DLQ records by code (index into [`DLQ_CODES`]).
    pub dlq: [AtomicU64; DLQ_CODES.len()],
    /// Changelog records produced.
    pub changelog_records: AtomicU64,
    /// Transactions (or at-least-once commits) that completed.
    pub commits: AtomicU64,
    /// Transactions aborted (then rewound to the committed offsets).
    pub aborts: AtomicU64,
    /// Producers recreated after a fatal error.
    pub producer_recreated: AtomicU64,
    /// Output records whose delivery failed.
    pub delivery_failures: AtomicU64,
    /// Rebalances seen (assign or revoke).
    pub rebalances: AtomicU64,
    /// Changelog records applied on restore.
    pub restored_records: AtomicU64,
    /// Partitions currently assigned.
    pub assigned_partitions: AtomicI64,
    /// Assigned partitions whose state is being restored (paused until it is).
    pub restoring_partitions: AtomicI64,
    /// Errors reported by the Kafka clients (broker down, auth, ...).
    pub client_errors: AtomicU64,
    /// Rule packs reloaded and swapped in.
    pub rules_reloads: AtomicU64,
    /// Rule packs that failed to compile or whose examples disagreed (the old pack kept serving).
    pub rules_reload_failures: AtomicU64,
    /// Classifier models reloaded and swapped in.
    pub model_reloads: AtomicU64,
    /// Classifier model files refused on reload (the previous model kept serving).
    pub model_reload_failures: AtomicU64,
    /// Registry records applied.
    pub registry_applied: AtomicU64,
    /// Registry records rejected (malformed; skipped).
    pub registry_rejected: AtomicU64,
    /// Numbers in the registry table.
    pub registry_numbers: AtomicI64,
    /// Spam reports read (each instance reads them all).
    pub reports_applied: AtomicU64,
    /// Reports that are not valid SpamReports (skipped).
    pub reports_rejected: AtomicU64,
    /// Reports naming only a message id, resolved to the message's content (read from
    /// `topics.report_resolutions`; each instance reads them all).
    pub reports_resolved: AtomicU64,
    /// Contents blocked because enough subscribers reported them.
    pub reported_contents_blocked: AtomicI64,
    /// Kafka calls of a rewind (committed offsets, seeks) that failed with an error that
    /// heals and were tried again.
    pub kafka_retries: AtomicU64,
    /// Partition restores that failed and started again from empty state.
    pub restore_retries: AtomicU64,
    /// Numbers this instance suspended because enough subscribers reported them.
    pub numbers_suspended: AtomicU64,
    /// Numbers enough subscribers reported, left to staff (`reports.suspend = "propose"`).
    pub numbers_proposed: AtomicU64,
    /// Suspended numbers in the registry table.
    pub registry_suspended: AtomicI64,
    /// Set once the consumer and producer are up and a first assignment was handled.
    pub ready: AtomicBool,
    /// The pack in `rules.dir` was rejected at start-up and the last good pack serves.
    pub rules_fallback: AtomicBool,
    /// [`mono_ms`] of the engine loop's latest turn (0: not started).
    pub heartbeat_ms: AtomicU64,
    /// Background threads (followers, checkers, watchers) that ended while the instance
    /// was not stopping: a returned error or a panic. `/healthz` answers 503 once one has.
    pub ended_threads: Mutex<Vec<&'static str>>,
    /// [`mono_ms`] since which records have been read and not committed (0: none). A
    /// commit clears it; an abort does not, so repeated aborts show as a growing age.
    pub uncommitted_since_ms: AtomicU64,
    /// Verdicts by decision age (decided_at - submitted_at).
    pub decision_age: Durations,
    /// Commits (a transaction, or a flush and an offset commit) by how long they took,
    /// the barrier included; failed ones too.
    pub commit_time: Durations,
    /// Partition restores by how long they took.
    pub restore_time: Durations,
    /// Worker batches (at most 256 records of one dispatch) by how long they took.
    pub batch_time: Durations,
    /// Rule packs compiled, by how long the compile took.
    pub rules_compile_time: Durations,
    /// Counters of the stateful operators.
    pub operators: crate::OperatorStats,
}

/// Upper bounds of the duration histograms' buckets, in microseconds (100 us to 10 s).
pub const AGE_BUCKETS_US: [u64; 15] = [
    100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000,
    2_000_000, 5_000_000, 10_000_000,
];

/// A histogram of durations with the buckets of [`AGE_BUCKETS_US`], rendered in
/// seconds in the Prometheus form.
#[derive(Debug, Default)]
pub struct Durations {
    /// One count per bucket, then the longer ones (not cumulative; rendered cumulative).
    buckets: [AtomicU64; AGE_BUCKETS_US.len() + 1],
    sum_us: AtomicU64,
    /// The OpenTelemetry histogram that gets every duration too, once telemetry is on.
    otel: std::sync::OnceLock<(
        opentelemetry::metrics::Histogram<f64>,
        Vec<opentelemetry::KeyValue>,
    )>,
}

/// The bucket of a duration in microseconds.
fn bucket_of(us: u64) -> usize {
    AGE_BUCKETS_US.partition_point(|&b| b < us)
}

impl Durations {
    /// Counts one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        self.buckets[bucket_of(us)].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        if let Some((h, attrs)) = self.otel.get() {
            h.record(d.as_secs_f64(), attrs);
        }
    }

    /// Sends every later duration to `h` as well, with `attrs` (OTLP export).
    pub fn export_to(
        &self,
        h: opentelemetry::metrics::Histogram<f64>,
        attrs: Vec<opentelemetry::KeyValue>,
    ) {
        let _ = self.otel.set((h, attrs));
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Relaxed)).sum()
    }

    fn add(&self, buckets: &[u64], sum_us: u64, each_us: &[u64]) {
        for (b, n) in self.buckets.iter().zip(buckets) {
            b.fetch_add(*n, Relaxed);
        }
        self.sum_us.fetch_add(sum_us, Relaxed);
        if let Some((h, attrs)) = self.otel.get() {
            for us in each_us {
                h.record(*us as f64 / 1e6, attrs);
            }
        }
    }

    fn render(&self, s: &mut String, name: &str, help: &str) {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            cumulative += n.load(Relaxed);
            let le = AGE_BUCKETS_US
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |us| (*us as f64 / 1e6).to_string());
            let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let _ = writeln!(
            s,
            "{name}_sum {}\n{name}_count {cumulative}",
            self.sum_us.load(Relaxed) as f64 / 1e6
        );
    }
}

/// A Prometheus label value: backslash, double quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Milliseconds since this process's first call: a monotonic clock for progress ages.
pub fn mono_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

impl Metrics {
    /// Whether the instance makes progress at `now_ms` ([`mono_ms`]): no background thread
    /// ended while it runs ([`ThreadWatch`]), the engine's loop turned within `limit_ms`, and
    /// no read record has waited longer than `limit_ms` for a commit. Healthy before the
    /// engine starts (brokers or registry still loading).
    pub fn progress(&self, now_ms: u64, limit_ms: u64) -> Result<(), String> {
        let ended = self.ended_threads();
        if !ended.is_empty() {
            return Err(format!(
                "the {} thread ended while the instance runs (its error is in the log)",
                ended.join(", ")
            ));
        }
        drop(ended);
        let beat = self.heartbeat_ms.load(Relaxed);
        if beat != 0 && now_ms.saturating_sub(beat) > limit_ms {
            return Err(format!(
                "the engine loop has not turned for {} ms",
                now_ms - beat
            ));
        }
        let since = self.uncommitted_since_ms.load(Relaxed);
        if since != 0 && now_ms.saturating_sub(since) > limit_ms {
            return Err(format!(
                "records read {} ms ago are still not committed ({} aborts so far)",
                now_ms - since,
                self.aborts.load(Relaxed)
            ));
        }
        Ok(())
    }

    /// [`Metrics::ended_threads`], locked (its holders only push, so a poisoned lock's
    /// list is whole).
    pub fn ended_threads(&self) -> std::sync::MutexGuard<'_, Vec<&'static str>> {
        self.ended_threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Metrics that show the counters of `ops`' stateful operators.
    pub fn for_operators(ops: &crate::Operators) -> Self {
        Metrics {
            operators: ops.stats.clone(),
            ..Metrics::default()
        }
    }
}

/// Held by a background thread for its whole life: if the thread returns or unwinds while
/// `stop` is not set, the drop records `name` in [`Metrics::ended_threads`] and logs it, so
/// that a follower that died does not leave a healthy-looking instance behind.
#[must_use = "the watch records the end when it is dropped"]
pub struct ThreadWatch {
    metrics: Arc<Metrics>,
    name: &'static str,
    stop: crate::runtime::Stop,
}

impl ThreadWatch {
    /// Watches the calling thread, named `name` in `/healthz` and the log.
    pub fn new(metrics: Arc<Metrics>, name: &'static str, stop: crate::runtime::Stop) -> Self {
        ThreadWatch {
            metrics,
            name,
            stop,
        }
    }
}

impl Drop for ThreadWatch {
    fn drop(&mut self) {
        if self.stop.is_set() {
            return;
        }
        tracing::error!(
            thread = self.name,
            panicked = std::thread::panicking(),
            "a background thread ended while the instance runs; /healthz answers 503"
        );
        self.metrics.ended_threads().push(self.name);
    }
}

/// A worker's local tally, published with [`LocalTally::flush`].
#[derive(Debug, Default)]
pub struct LocalTally {
    consumed: u64,
    verdicts: [u64; 4],
    alerts: u64,
    dlq: [u64; DLQ_CODES.len()],
    changelog_records: u64,
    age_us_sum: u64,
    age_buckets: [u64; AGE_BUCKETS_US.len() + 1],
    /// Every age of the batch, for the OpenTelemetry histogram (it takes single values);
    /// kept only while that histogram exists.
    ages_us: Vec<u64>,
    keep_ages: bool,
}

impl LocalTally {
    /// A tally for `m` (keeping single decision ages when `m` exports them over OTLP).
    pub fn new(m: &Metrics) -> Self {
        LocalTally {
            keep_ages: m.decision_age.otel.get().is_some(),
            ..LocalTally::default()
        }
    }
    /// One input record read.
    pub fn consumed(&mut self) {
        self.consumed += 1;
    }
    /// One verdict written.
    pub fn verdict(&mut self, a: Action, age_us: u64) {
        self.verdicts[a.index()] += 1;
        self.age_us_sum += age_us;
        self.age_buckets[bucket_of(age_us)] += 1;
        if self.keep_ages {
            self.ages_us.push(age_us);
        }
    }
    /// One alert written.
    pub fn alert(&mut self) {
        self.alerts += 1;
    }
    /// One DLQ record written.
    pub fn dlq(&mut self, code: &str) {
        self.dlq[dlq_index(code)] += 1;
    }
    /// Changelog records written.
    pub fn changelog(&mut self, n: u64) {
        self.changelog_records += n;
    }
    /// Adds the tally to `m` and resets it.
    pub fn flush(&mut self, m: &Metrics) {
        m.consumed.fetch_add(self.consumed, Relaxed);
        for (i, n) in self.verdicts.iter().enumerate() {
            m.verdicts[i].fetch_add(*n, Relaxed);
        }
        m.alerts.fetch_add(self.alerts, Relaxed);
        for (i, n) in self.dlq.iter().enumerate() {
            m.dlq[i].fetch_add(*n, Relaxed);
        }
        m.changelog_records
            .fetch_add(self.changelog_records, Relaxed);
        m.decision_age
            .add(&self.age_buckets, self.age_us_sum, &self.ages_us);
        let mut ages = std::mem::take(&mut self.ages_us);
        ages.clear();
        *self = LocalTally {
            ages_us: ages,
            keep_ages: self.keep_ages,
            ..LocalTally::default()
        };
    }
}

impl Metrics {
    /// Verdicts of one action so far.
    pub fn verdicts_of(&self, a: Action) -> u64 {
        self.verdicts[a.index()].load(Relaxed)
    }
    /// All verdicts so far.
    pub fn verdicts_total(&self) -> u64 {
        self.verdicts.iter().map(|v| v.load(Relaxed)).sum()
    }
    /// One DLQ record written outside the workers (e.g. a bad report).
    pub fn count_dlq(&self, code: &str) {
        self.dlq[dlq_index(code)].fetch_add(1, Relaxed);
    }
    /// DLQ records of the code at `i` in [`DLQ_CODES`] so far.
    pub fn dlq_of(&self, i: usize) -> u64 {
        self.dlq[i].load(Relaxed)
    }
    /// All DLQ records so far.
    pub fn dlq_total(&self) -> u64 {
        self.dlq.iter().map(|v| v.load(Relaxed)).sum()
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        for m in SERIES {
            let (name, help) = (m.name, m.help);
            let _ = match m.value {
                Value::Counter(f) => writeln!(
                    s,
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                    f(self)
                ),
                Value::Gauge(f) => writeln!(
                    s,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                    f(self)
                ),
            };
        }
        for h in HISTOGRAMS {
            (h.of)(self).render(&mut s, h.name, h.help);
        }
        let _ = writeln!(s, "# HELP spamflow_verdicts_total {VERDICTS_HELP}\n# TYPE spamflow_verdicts_total counter");
        for a in Action::ALL {
            let _ = writeln!(
                s,
                "spamflow_verdicts_total{{action=\"{}\"}} {}",
                a.as_str(),
                self.verdicts_of(a)
            );
        }
        render_by_action(
            &mut s,
            "spamflow_relay_verdicts_total",
            RELAY_VERDICTS_HELP,
            "relay_operator",
            self.operators.relay.snapshot(),
        );
        render_by_action(
            &mut s,
            "spamflow_category_verdicts_total",
            CATEGORY_VERDICTS_HELP,
            "category",
            self.operators.relay.categories(),
        );
        let _ = writeln!(
            s,
            "# HELP spamflow_dlq_total {DLQ_HELP}\n# TYPE spamflow_dlq_total counter"
        );
        for (i, code) in DLQ_CODES.iter().enumerate() {
            let _ = writeln!(
                s,
                "spamflow_dlq_total{{code=\"{code}\"}} {}",
                self.dlq_of(i)
            );
        }
        s
    }
}

/// Counts by a label's value and the action (allow, label, throttle, block).
pub type ByAction = Vec<(String, [u64; 4])>;

/// A counter by one label and the action.
fn render_by_action(s: &mut String, name: &str, help: &str, label: &str, rows: ByAction) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, counts) in rows {
        let value = label_value(&value);
        for a in Action::ALL {
            let _ = writeln!(
                s,
                "{name}{{{label}=\"{value}\",action=\"{}\"}} {}",
                a.as_str(),
                counts[a.index()]
            );
        }
    }
}

/// How a series without labels reads its value.
#[derive(Clone, Copy)]
pub enum Value {
    /// A count that only grows.
    Counter(fn(&Metrics) -> u64),
    /// A level.
    Gauge(fn(&Metrics) -> i64),
}

/// A series without labels: the same instrument for `/metrics` and for OTLP.
pub struct Series {
    /// Prometheus name (the OTLP name is derived from it: [`crate::telemetry`]).
    pub name: &'static str,
    /// What it counts.
    pub help: &'static str,
    /// Its kind and value.
    pub value: Value,
}

/// A duration histogram of [`Metrics`].
pub struct HistogramSeries {
    /// Prometheus name, ending in `_seconds`.
    pub name: &'static str,
    /// What it measures.
    pub help: &'static str,
    /// The histogram.
    pub of: fn(&Metrics) -> &Durations,
}

/// Help of `spamflow_verdicts_total{action}`.
pub const VERDICTS_HELP: &str = "Verdicts by action.";
/// Help of `spamflow_relay_verdicts_total{relay_operator,action}`.
pub const RELAY_VERDICTS_HELP: &str = "Verdicts by relay operator (those the sender registry names; others as other, none without one) and action.";
/// Help of `spamflow_category_verdicts_total{category,action}`.
pub const CATEGORY_VERDICTS_HELP: &str = "Verdicts with a reason by the category of their strongest reason (at most 64 categories, then other) and action.";
/// Help of `spamflow_dlq_total{code}`.
pub const DLQ_HELP: &str = "Records sent to the DLQ by error code.";

macro_rules! counter {
    ($name:literal, $help:literal, |$m:ident| $e:expr) => {
        Series {
            name: $name,
            help: $help,
            value: Value::Counter(|$m| $e.load(Relaxed)),
        }
    };
}
macro_rules! gauge {
    ($name:literal, $help:literal, |$m:ident| $e:expr) => {
        Series {
            name: $name,
            help: $help,
            value: Value::Gauge(|$m| $e as i64),
        }
    };
}

/// Every series without labels.
pub const SERIES: &[Series] = &[
    counter!("spamflow_events_consumed_total", "Records read from the input topic.", |m| m.consumed),
    counter!("spamflow_alerts_total", "Recipient alerts produced.", |m| m.alerts),
    counter!("spamflow_changelog_records_total", "State changelog records produced.", |m| m.changelog_records),
    counter!("spamflow_commits_total", "Transactions or at-least-once commits completed.", |m| m.commits),
    counter!("spamflow_aborts_total", "Transactions aborted and rewound to committed offsets.", |m| m.aborts),
    counter!("spamflow_producer_recreated_total", "Producers recreated after a fatal error.", |m| m.producer_recreated),
    counter!("spamflow_delivery_failures_total", "Output records whose delivery failed.", |m| m.delivery_failures),
    counter!("spamflow_rebalances_total", "Partition assignments and revocations handled.", |m| m.rebalances),
    counter!("spamflow_state_restored_records_total", "Changelog records applied on restore.", |m| m.restored_records),
    counter!("spamflow_rules_reloads_total", "Rule packs reloaded and swapped in.", |m| m.rules_reloads),
    counter!("spamflow_rules_reload_failures_total", "Rule packs rejected on reload (the previous pack kept serving).", |m| m.rules_reload_failures),
    counter!("spamflow_model_reloads_total", "Classifier models reloaded and swapped in.", |m| m.model_reloads),
    counter!("spamflow_model_reload_failures_total", "Classifier model files refused on reload (the previous model kept serving).", |m| m.model_reload_failures),
    counter!("spamflow_registry_records_applied_total", "Sender-registry records applied.", |m| m.registry_applied),
    counter!("spamflow_registry_records_rejected_total", "Malformed sender-registry records skipped.", |m| m.registry_rejected),
    counter!("spamflow_reports_total", "Spam reports read from topics.reports.", |m| m.reports_applied),
    counter!("spamflow_reports_resolved_total", "Reports naming only a message id, resolved to that message's content and counted.", |m| m.reports_resolved),
    counter!("spamflow_reports_rejected_total", "Records of topics.reports that are not valid reports (skipped).", |m| m.reports_rejected),
    counter!("spamflow_kafka_retries_total", "Kafka calls of a rewind (committed offsets, seeks) that failed with an error that heals and were tried again.", |m| m.kafka_retries),
    counter!("spamflow_restore_retries_total", "Partition state restores that failed and started again from empty state.", |m| m.restore_retries),
    counter!("spamflow_numbers_suspended_total", "Numbers this instance suspended in the registry because enough subscribers reported them.", |m| m.numbers_suspended),
    counter!("spamflow_numbers_proposed_total", "Numbers enough subscribers reported, proposed for suspension to staff.", |m| m.numbers_proposed),
    counter!("spamflow_client_errors_total", "Errors reported by the Kafka clients.", |m| m.client_errors),
    counter!("spamflow_velocity_late_events_total", "Events later than the allowed lateness, counted at their sender's latest time.", |m| m.operators.velocity.late),
    counter!("spamflow_velocity_future_events_total", "Events too far ahead of the partition clock, taken at the clock's limit.", |m| m.operators.velocity.future),
    counter!("spamflow_velocity_stale_events_total", "Events older than the velocity horizon, not applied to sender state.", |m| m.operators.velocity.stale),
    counter!("spamflow_velocity_evicted_senders_total", "Idle senders evicted from velocity state.", |m| m.operators.velocity.evicted),
    counter!("spamflow_campaign_table_full_total", "Messages not tracked for campaigns because the fingerprint table was full.", |m| m.operators.velocity.campaign_table_full),
    counter!("spamflow_throttle_throttled_total", "Messages over their relay operator's quota.", |m| m.operators.throttle.throttled),
    counter!("spamflow_throttle_step_changes_total", "Relay quota steps tightened or relaxed.", |m| m.operators.throttle.step_changes),
    counter!("spamflow_throttle_stale_events_total", "Events older than the spam-ratio window, not counted.", |m| m.operators.throttle.stale),
    counter!("spamflow_throttle_table_full_total", "Relay, reseller or first-sender-code keys not tracked because the table was full.", |m| m.operators.throttle.table_full),
    gauge!("spamflow_velocity_senders", "Senders kept in velocity state (as of each partition's last sweep).", |m| m.operators.velocity.senders.load(Relaxed)),
    gauge!("spamflow_assigned_partitions", "Input partitions owned by this instance.", |m| m.assigned_partitions.load(Relaxed)),
    gauge!("spamflow_restoring_partitions", "Assigned partitions paused while their state is restored.", |m| m.restoring_partitions.load(Relaxed)),
    gauge!("spamflow_registry_numbers", "Numbers in the sender registry.", |m| m.registry_numbers.load(Relaxed)),
    gauge!("spamflow_registry_suspended", "Suspended numbers in the sender registry.", |m| m.registry_suspended.load(Relaxed)),
    gauge!("spamflow_reported_contents_blocked", "Contents blocked because enough subscribers reported them.", |m| m.reported_contents_blocked.load(Relaxed)),
    gauge!("spamflow_ready", "Whether the instance is consuming.", |m| m.ready.load(Relaxed)),
    gauge!("spamflow_rules_fallback", "Whether the last good rule pack serves because the pack in rules.dir was rejected at start-up.", |m| m.rules_fallback.load(Relaxed)),
    gauge!("spamflow_background_threads_ended", "Background threads (followers, checkers, watchers) that ended while the instance runs; /healthz answers 503 while it is above 0.", |m| m.ended_threads().len()),
];

/// Every duration histogram.
pub const HISTOGRAMS: &[HistogramSeries] = &[
    HistogramSeries {
        name: "spamflow_decision_age_seconds",
        help: "Time from submitted_at to the decision (decided_at), by verdict.",
        of: |m| &m.decision_age,
    },
    HistogramSeries {
        name: "spamflow_commit_duration_seconds",
        help: "Commits by duration, the workers' barrier included; failed ones too. At-least-once: from the checkpoint's barrier to its offsets committed, the outputs' acknowledgements included.",
        of: |m| &m.commit_time,
    },
    HistogramSeries {
        name: "spamflow_restore_duration_seconds",
        help: "Partition state restores by duration.",
        of: |m| &m.restore_time,
    },
    HistogramSeries {
        name: "spamflow_batch_duration_seconds",
        help: "Worker batches (one dispatch of at most 256 records) by processing time.",
        of: |m| &m.batch_time,
    },
    HistogramSeries {
        name: "spamflow_rules_compile_duration_seconds",
        help: "Rule packs compiled and swapped in (at start-up and on reload) by compile time.",
        of: |m| &m.rules_compile_time,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_flush_into_bounded_series() {
        let m = Metrics::default();
        let mut t = LocalTally::default();
        t.consumed();
        t.verdict(Action::Block, 3_000);
        t.dlq("bad_field");
        t.dlq("something-unknown");
        t.flush(&m);
        assert_eq!(m.verdicts_of(Action::Block), 1);
        assert_eq!(m.dlq_total(), 2);
        let text = m.render();
        assert!(text.contains("spamflow_verdicts_total{action=\"block\"} 1"));
        assert!(
            text.contains("spamflow_decision_age_seconds_bucket{le=\"0.001\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("spamflow_decision_age_seconds_bucket{le=\"0.01\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("spamflow_decision_age_seconds_bucket{le=\"+Inf\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("spamflow_decision_age_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("spamflow_dlq_total{code=\"bad_field\"} 1"));
        assert!(text.contains("spamflow_dlq_total{code=\"internal_error\"} 1"));
        for name in [
            "spamflow_rules_reloads_total",
            "spamflow_rules_reload_failures_total",
            "spamflow_model_reloads_total",
            "spamflow_model_reload_failures_total",
            "spamflow_registry_records_applied_total",
            "spamflow_registry_numbers",
            "spamflow_reports_total",
            "spamflow_reports_resolved_total",
            "spamflow_reported_contents_blocked",
            "spamflow_numbers_suspended_total",
            "spamflow_rules_compile_duration_seconds_count",
            "spamflow_registry_suspended",
            "spamflow_commit_duration_seconds_count",
            "spamflow_restore_duration_seconds_count",
            "spamflow_batch_duration_seconds_count",
            "spamflow_velocity_late_events_total",
            "spamflow_velocity_senders",
            "spamflow_throttle_throttled_total",
        ] {
            assert!(text.contains(&format!("\n{name} ")), "{name} missing");
        }
    }
}
