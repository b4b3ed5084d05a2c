//! Configuration: `Config` (serde, every field documented) with `validate()` that reports
//! every problem at once, and layered loading.
//!
//! Layers, later wins: compiled-in defaults, then the TOML file (`--config` or
//! `SPAMFLOW_CONFIG`), then `SPAMFLOW_` environment variables (`__` separates levels:
//! `SPAMFLOW_PROCESSING__COMMIT_INTERVAL_MS=50`), then command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use spamflow_operators::classifier::ClassifierConfig;
use spamflow_operators::origin::OriginConfig;
use spamflow_operators::reports::ReportsConfig;
use spamflow_operators::stats::StatsConfig;
use spamflow_operators::throttle::ThrottleConfig;
use spamflow_operators::velocity::VelocityConfig;
use spamflow_operators::PolicyConfig;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka connection, group and client settings.
    pub kafka: KafkaConfig,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Processing guarantee, commit interval, workers, limits.
    pub processing: ProcessingConfig,
    /// Thresholds that turn signals into actions.
    pub policy: PolicyConfig,
    /// Rule pack of the pattern operator, hot reload.
    pub rules: RulesConfig,
    /// Overseas origin, spoofing, invalid senders, sender-number registry.
    pub origin: OriginConfig,
    /// Per-sender event-time windows and campaign detection (stateful).
    pub velocity: VelocityConfig,
    /// Spam ratios and quotas per relay operator (stateful).
    pub throttle: ThrottleConfig,
    /// The AI text classifier and its fitted policy; model file, shadow model, reload.
    pub classifier: ClassifierConfig,
    /// Subscribers' reports: reported content blocked once enough subscribers report it.
    pub reports: ReportsConfig,
    /// Spam statistics per relay operator, reseller and hour (stateful).
    pub stats: StatsConfig,
    /// Sender numbers blocked for spam again and again are suspended (stateful).
    pub numbers: spamflow_operators::numbers::NumbersConfig,
    /// Admin HTTP endpoint (health, readiness, metrics).
    pub admin: AdminConfig,
    /// OpenTelemetry: metrics and spans over OTLP.
    pub telemetry: TelemetryConfig,
    /// The in-process broker and sample replay used when `kafka.brokers` is empty.
    pub embedded: EmbeddedConfig,
    /// Logging.
    pub log: LogConfig,
}

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap servers (`host:port,...`). Empty: embedded mode (in-process mock cluster).
    pub brokers: String,
    /// Consumer group of all spamflow instances.
    pub group_id: String,
    /// Static membership id (`group.instance.id`); set it to the pod name of a
    /// StatefulSet so restarts do not trigger a rebalance.
    pub group_instance_id: Option<String>,
    /// Transactional id. Default: `<group_id>-<group_instance_id or hostname>`. Must be
    /// stable across restarts of the same instance (so a restart fences its predecessor)
    /// and unique between live instances.
    pub transactional_id: Option<String>,
    /// Extra librdkafka settings passed through unchanged (`security.protocol`,
    /// `sasl.mechanisms`, `sasl.username`, `ssl.ca.location`, ...). Settings that spamflow
    /// manages itself are rejected.
    pub client: BTreeMap<String, String>,
    /// Extra librdkafka settings for the consumers only (`fetch.wait.max.ms`,
    /// `session.timeout.ms`, ...), applied after `client`.
    pub consumer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            group_id: "spamflow".into(),
            group_instance_id: None,
            transactional_id: None,
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
        }
    }
}

/// librdkafka settings spamflow sets itself; a pass-through value would break a guarantee.
pub const MANAGED_CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "group.instance.id",
    "transactional.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "enable.idempotence",
    "partition.assignment.strategy",
];

/// `[topics]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// Input: SubmissionEvent JSON keyed by normalized sender.
    pub submissions: String,
    /// Every verdict, keyed by message_id.
    pub verdicts: String,
    /// Verdicts with action block or throttle, for the SMSCs.
    pub block: String,
    /// Recipient warnings, keyed by recipient.
    pub alerts: String,
    /// Malformed input: original key and bytes plus error headers.
    pub dlq: String,
    /// Sender-number registry (compacted).
    pub registry: String,
    /// Operator state changelog (compacted; as many partitions as `submissions`).
    pub changelog: String,
    /// Subscribers' spam reports: SpamReport JSON keyed by the reported sender.
    pub reports: String,
    /// Contents blocked because subscribers reported them, and staff's lifts
    /// (ReportedContentRecord JSON keyed by fingerprint; compacted).
    pub reported_content: String,
    /// Reports that named only a message id, resolved to that message's content by the
    /// instance that delivered it (ReportResolution JSON keyed by report id; compacted).
    pub report_resolutions: String,
    /// Contents a partition blocked as a campaign's, for every instance's late alerts
    /// (CampaignContent JSON keyed by fingerprint; compacted).
    pub campaign_contents: String,
    /// Suspensions proposed to staff by the numbers operator (`numbers.suspend =
    /// "propose"`): RegistrationRecord JSON keyed by number; compacted.
    pub number_proposals: String,
    /// Spam statistics per relay operator and hour (compacted; as many partitions as
    /// `submissions`).
    pub operator_stats: String,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            submissions: "sms.submissions".into(),
            verdicts: "sms.verdicts".into(),
            block: "sms.block".into(),
            alerts: "sms.alerts".into(),
            dlq: "sms.submissions.dlq".into(),
            registry: "spamflow.sender-registry".into(),
            changelog: "spamflow.state.changelog".into(),
            reports: "sms.reports".into(),
            reported_content: "spamflow.reported-content".into(),
            report_resolutions: "spamflow.report-resolutions".into(),
            campaign_contents: "spamflow.campaign-contents".into(),
            number_proposals: "spamflow.number-proposals".into(),
            operator_stats: "spamflow.operator-stats".into(),
        }
    }
}

impl TopicsConfig {
    fn named(&self) -> [(&'static str, &str); 13] {
        [
            ("submissions", &self.submissions),
            ("verdicts", &self.verdicts),
            ("block", &self.block),
            ("alerts", &self.alerts),
            ("dlq", &self.dlq),
            ("registry", &self.registry),
            ("changelog", &self.changelog),
            ("reports", &self.reports),
            ("reported_content", &self.reported_content),
            ("report_resolutions", &self.report_resolutions),
            ("campaign_contents", &self.campaign_contents),
            ("number_proposals", &self.number_proposals),
            ("operator_stats", &self.operator_stats),
        ]
    }
}

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Verdicts, DLQ records, changelog and offsets commit in one Kafka transaction.
    ExactlyOnce,
    /// Outputs are flushed, then offsets committed: lowest latency, duplicates after a crash.
    AtLeastOnce,
}

/// `[processing]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessingConfig {
    /// `exactly_once` (default) or `at_least_once`.
    pub guarantee: Guarantee,
    /// How often outputs and offsets commit, in ms. With exactly-once this bounds how
    /// long a read_committed consumer waits for a verdict.
    pub commit_interval_ms: u64,
    /// Worker threads running the operator chain; 0 = one per core.
    pub workers: usize,
    /// Input records larger than this (bytes) go to the DLQ as `oversized`.
    pub max_message_bytes: usize,
    /// Deadline for a graceful shutdown (finish or abort the open transaction, commit, close).
    pub shutdown_timeout_ms: u64,
    /// Kafka transaction timeout (`transaction.timeout.ms`).
    pub transaction_timeout_ms: u64,
    /// Timeout for one Kafka control call (commit, offsets, restore read), ms.
    pub kafka_timeout_ms: u64,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            guarantee: Guarantee::ExactlyOnce,
            commit_interval_ms: 100,
            workers: 0,
            max_message_bytes: 256 * 1024,
            shutdown_timeout_ms: 10_000,
            transaction_timeout_ms: 60_000,
            kafka_timeout_ms: 30_000,
        }
    }
}

/// `[rules]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Rule-pack directory (e.g. a ConfigMap mount). Empty: the default pack built into
    /// the binary (`operators/rules/default`).
    pub dir: String,
    /// How often the directory is checked for changes, ms; 0 disables hot reload.
    pub reload_interval_ms: u64,
    /// Longest prefix of a message text the pattern operator scans, bytes.
    pub max_scan_bytes: usize,
    /// A writable directory where every pack that compiled and passed its examples is
    /// kept. When `dir` holds a bad pack at start-up, spamflow starts with this one
    /// (loudly) instead of refusing to start. Empty: no fallback.
    pub last_good_dir: String,
    /// A pack from a directory is first compiled by `spamflow rules check` in a child
    /// process; if that takes longer than this, ms, the pack is rejected (and the serving
    /// process never compiles it). 0: no child check.
    pub compile_timeout_ms: u64,
    /// Address space allowed to that child process, MiB: a pack whose compile needs more
    /// is rejected.
    pub compile_memory_mb: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            dir: String::new(),
            reload_interval_ms: 2_000,
            max_scan_bytes: 8 * 1024,
            last_good_dir: String::new(),
            compile_timeout_ms: 60_000,
            compile_memory_mb: 1_024,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address of `/healthz`, `/readyz` and `/metrics`; empty disables it.
    pub listen: String,
    /// `/healthz` answers 503 when the engine loop has not turned, or read records have
    /// not been committed, for this long (ms).
    pub stall_timeout_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9464".into(),
            stall_timeout_ms: 120_000,
        }
    }
}

/// `[telemetry]`. Export is on when `otlp_endpoint` or one of the standard
/// `OTEL_EXPORTER_OTLP_*ENDPOINT` variables is set, and `OTEL_SDK_DISABLED` is not `true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Base URL of an OTLP/HTTP receiver (`http://collector:4318`); `/v1/metrics` and
    /// `/v1/traces` are appended. Empty: the `OTEL_EXPORTER_OTLP_*` variables decide.
    pub otlp_endpoint: String,
    /// How often metrics are exported, ms.
    pub export_interval_ms: u64,
    /// Share of messages that get a span of their own (0 to 1), besides those whose input
    /// record carries a sampled W3C `traceparent`.
    pub message_sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: String::new(),
            export_interval_ms: 10_000,
            message_sample_ratio: 0.0,
        }
    }
}

/// `[embedded]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddedConfig {
    /// Partitions of the input topic on the in-process broker.
    pub partitions: i32,
    /// Replay rate of the bundled sample, events per second.
    pub rate: u32,
    /// After the replay stops, how long to wait for the last verdicts, ms.
    pub drain_timeout_ms: u64,
    /// Send one malformed record every this many events (0 = none), to show the DLQ.
    pub malformed_every: u32,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            partitions: 4,
            rate: 5_000,
            drain_timeout_ms: 30_000,
            malformed_every: 997,
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter, e.g. `info` or `spamflow_pipeline=debug,rdkafka=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// One bad setting: the key and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    /// Dotted key, e.g. `processing.commit_interval_ms`.
    pub key: String,
    /// What is wrong and what to do.
    pub reason: String,
}

/// Config could not be loaded or is invalid; lists every problem.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file or a variable could not be parsed into `Config`.
    #[error("configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// Values parsed but do not work together.
    #[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<ConfigError>),
}

/// Parts of librdkafka setting names whose values are secrets.
const SECRET_KEY_PARTS: &[&str] = &[
    "password",
    "secret",
    "token",
    "jaas",
    "key.pem",
    "credentials",
];

impl Config {
    /// The configuration as JSON for people (`spamflow config`): the value of every
    /// client setting whose name looks like a secret (`sasl.password`,
    /// `ssl.key.password`, `sasl.oauthbearer.client.secret`, ...) is `<redacted>`.
    pub fn redacted_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        for section in ["client", "consumer"] {
            if let Some(map) = v["kafka"][section].as_object_mut() {
                for (k, val) in map.iter_mut() {
                    let k = k.to_ascii_lowercase();
                    if SECRET_KEY_PARTS.iter().any(|p| k.contains(p)) {
                        *val = "<redacted>".into();
                    }
                }
            }
        }
        v
    }

    /// The input consumer's `auto.offset.reset`: `kafka.consumer`, else `kafka.client`, else
    /// `earliest`.
    pub fn auto_offset_reset(&self) -> &str {
        self.kafka
            .consumer
            .get("auto.offset.reset")
            .or_else(|| self.kafka.client.get("auto.offset.reset"))
            .map_or("earliest", String::as_str)
    }

    /// Loads the layers: defaults, `file` (if any), `SPAMFLOW_*` variables, then `overrides`
    /// (a partial document of command-line flags), and validates the result.
    pub fn load(file: Option<&Path>, overrides: serde_json::Value) -> Result<Config, LoadError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(LoadError::Invalid(vec![ConfigError {
                    key: "--config".into(),
                    reason: format!("file {} does not exist", path.display()),
                }]));
            }
            fig = fig.merge(Toml::file(path));
        }
        // Every section of the file can be set from the environment; other SPAMFLOW_
        // variables (SPAMFLOW_CONFIG, test settings) are not keys.
        let sections: Vec<String> = serde_json::to_value(Config::default())
            .ok()
            .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect()))
            .unwrap_or_default();
        let env = Env::prefixed("SPAMFLOW_").split("__").filter(move |k| {
            // figment may hand the filter the key before or after `split`.
            let k = k.as_str().to_ascii_lowercase();
            sections.iter().any(|s| {
                k.strip_prefix(s.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("__"))
            })
        });
        fig = fig.merge(env).merge(Serialized::defaults(overrides));
        let cfg: Config = fig.extract().map_err(Box::new)?;
        let errs = cfg.validate();
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(LoadError::Invalid(errs))
        }
    }

    /// Every problem at once.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let mut bad = |key: &str, reason: String| {
            errs.push(ConfigError {
                key: key.to_owned(),
                reason,
            })
        };
        if self.kafka.group_id.trim().is_empty() {
            bad("kafka.group_id", "must not be empty".into());
        }
        for key in self.kafka.client.keys() {
            if MANAGED_CLIENT_KEYS.contains(&key.as_str()) {
                bad(
                    &format!("kafka.client.\"{key}\""),
                    "is managed by spamflow; use the matching spamflow setting".into(),
                );
            }
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, topic) in self.topics.named() {
            if topic.is_empty()
                || topic.len() > 249
                || !topic
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                bad(
                    &format!("topics.{name}"),
                    format!("{topic:?} is not a valid Kafka topic name"),
                );
            } else if let Some(other) = seen.insert(topic, name) {
                bad(
                    &format!("topics.{name}"),
                    format!("{topic:?} is also topics.{other}; every topic must be distinct"),
                );
            }
        }
        let p = &self.processing;
        if !(5..=60_000).contains(&p.commit_interval_ms) {
            bad(
                "processing.commit_interval_ms",
                format!("{} is outside 5..=60000", p.commit_interval_ms),
            );
        }
        if p.workers > 256 {
            bad(
                "processing.workers",
                format!("{} is more than 256", p.workers),
            );
        }
        if !(1024..=64 * 1024 * 1024).contains(&p.max_message_bytes) {
            bad(
                "processing.max_message_bytes",
                format!("{} is outside 1 KiB..=64 MiB", p.max_message_bytes),
            );
        }
        if p.transaction_timeout_ms <= p.commit_interval_ms * 2 {
            bad(
                "processing.transaction_timeout_ms",
                format!(
                    "{} must be well above commit_interval_ms ({})",
                    p.transaction_timeout_ms, p.commit_interval_ms
                ),
            );
        }
        if p.kafka_timeout_ms == 0 {
            bad("processing.kafka_timeout_ms", "must be positive".into());
        }
        if self.rules.compile_memory_mb < 64 {
            bad(
                "rules.compile_memory_mb",
                format!(
                    "{} is below 64: the check process itself needs more",
                    self.rules.compile_memory_mb
                ),
            );
        }
        if self.admin.stall_timeout_ms < 1_000
            || self.admin.stall_timeout_ms <= 2 * self.processing.commit_interval_ms
        {
            bad(
                "admin.stall_timeout_ms",
                format!(
                    "{} must be at least 1000 and well above processing.commit_interval_ms",
                    self.admin.stall_timeout_ms
                ),
            );
        }
        let operators = [
            ("origin", self.origin.validate()),
            ("velocity", self.velocity.validate()),
            ("throttle", self.throttle.validate()),
            ("classifier", self.classifier.validate()),
            ("stats", self.stats.validate()),
            ("numbers", self.numbers.validate()),
            ("policy", self.policy.validate()),
        ];
        for (section, problems) in operators {
            for p in problems {
                bad(&format!("{section}.{}", p.key), p.reason);
            }
        }
        for (key, path) in [
            ("model", &self.classifier.model),
            ("shadow_model", &self.classifier.shadow_model),
        ] {
            if !path.is_empty() && !Path::new(path).is_file() {
                bad(
                    &format!("classifier.{key}"),
                    format!("file {path} does not exist"),
                );
            }
        }
        if !self.rules.dir.is_empty() && !Path::new(&self.rules.dir).is_dir() {
            bad(
                "rules.dir",
                format!(
                    "{:?} is not a directory (empty uses the built-in pack)",
                    self.rules.dir
                ),
            );
        }
        if !(256..=1024 * 1024).contains(&self.rules.max_scan_bytes) {
            bad(
                "rules.max_scan_bytes",
                format!("{} is outside 256..=1048576", self.rules.max_scan_bytes),
            );
        }
        if self.rules.reload_interval_ms != 0 && self.rules.reload_interval_ms < 100 {
            bad(
                "rules.reload_interval_ms",
                format!(
                    "{} is below 100 (0 disables hot reload)",
                    self.rules.reload_interval_ms
                ),
            );
        }
        let t = &self.telemetry;
        let url = &t.otlp_endpoint;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            bad(
                "telemetry.otlp_endpoint",
                format!("{:?} is not an http:// or https:// URL", t.otlp_endpoint),
            );
        }
        if t.export_interval_ms < 100 {
            bad(
                "telemetry.export_interval_ms",
                "must be at least 100".into(),
            );
        }
        if !(0.0..=1.0).contains(&t.message_sample_ratio) {
            bad(
                "telemetry.message_sample_ratio",
                "must be between 0 and 1".into(),
            );
        }
        if !self.admin.listen.is_empty()
            && self.admin.listen.parse::<std::net::SocketAddr>().is_err()
        {
            bad(
                "admin.listen",
                format!(
                    "{:?} is not an ip:port address (empty disables the endpoint)",
                    self.admin.listen
                ),
            );
        }
        if !(1..=64).contains(&self.embedded.partitions) {
            bad(
                "embedded.partitions",
                format!("{} is outside 1..=64", self.embedded.partitions),
            );
        }
        if self.embedded.rate == 0 {
            bad("embedded.rate", "must be positive".into());
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bad(
                "log.format",
                format!("{:?} is neither \"text\" nor \"json\"", self.log.format),
            );
        }
        errs
    }

    /// Whether no brokers are configured (embedded mode).
    pub fn is_embedded(&self) -> bool {
        self.kafka.brokers.trim().is_empty()
    }

    /// Number of worker threads to run.
    pub fn worker_count(&self) -> usize {
        match self.processing.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            n => n,
        }
    }

    /// The transactional id of this instance.
    pub fn transactional_id(&self) -> String {
        if let Some(id) = &self.kafka.transactional_id {
            return id.clone();
        }
        let instance = self
            .kafka
            .group_instance_id
            .clone()
            .unwrap_or_else(hostname);
        format!("{}-{instance}", self.kafka.group_id)
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "spamflow".into())
}

/// `--config` or `SPAMFLOW_CONFIG`.
pub fn config_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("SPAMFLOW_CONFIG").map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn defaults_are_valid() {
        assert!(Config::default().validate().is_empty());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own error type
    fn layers_apply_in_order_file_env_flags() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[processing]\ncommit_interval_ms = 250\nworkers = 3\n[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SPAMFLOW_PROCESSING__WORKERS", "5");
            jail.set_env("SPAMFLOW_RULES__MAX_SCAN_BYTES", "1000");
            jail.set_env("SPAMFLOW_THROTTLE__MIN_MESSAGES", "7");
            jail.set_env("SPAMFLOW_CONFIG", "ignored-not-a-key");
            let cfg = Config::load(
                Some(f.path()),
                serde_json::json!({"kafka": {"brokers": "b:9092"}}),
            )
            .unwrap();
            assert_eq!(cfg.processing.commit_interval_ms, 250);
            assert_eq!(cfg.processing.workers, 5);
            // Every section, not only some (rules, origin, velocity and throttle were not).
            assert_eq!(cfg.rules.max_scan_bytes, 1000);
            assert_eq!(cfg.throttle.min_messages, 7);
            assert_eq!(cfg.kafka.brokers, "b:9092");
            assert_eq!(
                cfg.kafka
                    .client
                    .get("security.protocol")
                    .map(String::as_str),
                Some("SASL_SSL")
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_and_mistyped_keys_are_named() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[processing]\ncommit_intervall_ms = 5").unwrap();
        let err = Config::load(Some(f.path()), serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("commit_intervall_ms"), "{err}");
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "[processing]\ncommit_interval_ms = \"fast\"").unwrap();
        let err = Config::load(Some(f.path()), serde_json::json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("commit_interval_ms"), "{err}");
    }

    #[test]
    fn validate_reports_every_problem_with_its_key() {
        let mut cfg = Config::default();
        cfg.processing.commit_interval_ms = 1;
        cfg.topics.block = cfg.topics.verdicts.clone();
        cfg.kafka
            .client
            .insert("enable.auto.commit".into(), "true".into());
        cfg.policy.label_score = 99;
        cfg.admin.listen = "nowhere".into();
        cfg.telemetry.otlp_endpoint = "collector:4318".into();
        cfg.telemetry.message_sample_ratio = 2.0;
        let keys: Vec<String> = cfg.validate().into_iter().map(|e| e.key).collect();
        for k in [
            "processing.commit_interval_ms",
            "topics.block",
            "kafka.client.\"enable.auto.commit\"",
            "policy.label_score",
            "admin.listen",
            "telemetry.otlp_endpoint",
            "telemetry.message_sample_ratio",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
    }

    #[test]
    fn missing_file_is_reported() {
        let err = Config::load(
            Some(Path::new("/nonexistent/spamflow.toml")),
            serde_json::json!({}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
}
