//! spamflow runtime.
//!
//! - [`config`]: `Config` with `validate()`, layered loading (defaults, TOML, env, flags).
//! - [`kafka`]: client configuration, producer context, topic creation.
//! - [`runtime`]: the consumer thread ([`runtime::engine`]), worker threads, state
//!   changelog and restore; exactly-once transactions or at-least-once commits.
//! - [`embedded`]: `spamflow run` with no brokers: mock cluster, sample replay, observer.
//! - [`backtest`]: the same chain over JSON lines, without Kafka.
//! - [`registry`]: sender-number registry follower, file loading, publishing.
//! - [`rules`]: rule-pack loading, `rules check`, hot reload.
//! - [`classifier`]: model loading and hot reload, `spamflow train` and `eval`.
//! - [`metrics`], [`admin`]: counters and the `/healthz` `/readyz` `/metrics` endpoint.
//! - [`sample`]: the bundled sample traffic.
//! - [`stats`]: `spamflow stats`, spam statistics per relay operator from their topic.
//!
//! Threads: one consumer thread (poll, dispatch, commit; rebalance callbacks run on it),
//! N worker threads (CPU work), librdkafka's own threads, and a small tokio runtime for
//! signals and the admin endpoint only.

pub mod admin;
pub mod backtest;
pub mod classifier;
pub mod config;
pub mod embedded;
#[cfg(debug_assertions)]
pub mod fault;
pub mod kafka;
pub mod metrics;
pub mod numbers;
pub mod registry;
pub mod reported;
pub mod reports;
pub mod rules;
pub mod runtime;
pub mod sample;
pub mod stats;
pub mod tap;
pub mod telemetry;

use std::path::Path;
use std::sync::Arc;

use spamflow_operators::classifier::ModelHandle;
use spamflow_operators::numbers::NumbersFactory;
use spamflow_operators::origin::{OriginOperator, Registry};
use spamflow_operators::pattern::{PatternConfig, PatternOperator};
use spamflow_operators::reports::{ReportedContent, ReportsOperator};
use spamflow_operators::stats::{StatsFactory, StatsMetrics};
use spamflow_operators::throttle::{ThrottleFactory, ThrottleStats};
use spamflow_operators::velocity::{VelocityFactory, VelocityStats};
use spamflow_operators::ChainBuilder;

/// Counters the stateful operators keep (shown in `/metrics`).
#[derive(Debug, Clone, Default)]
pub struct OperatorStats {
    /// Velocity operator: late, future and stale events, evictions, campaign table.
    pub velocity: Arc<VelocityStats>,
    /// Throttle operator: throttled messages, quota step changes.
    pub throttle: Arc<ThrottleStats>,
    /// Statistics operator: verdicts by relay operator.
    pub relay: Arc<StatsMetrics>,
}

/// The operators of one pipeline: the chain builder, and handles for hot reload.
#[derive(Debug, Clone)]
pub struct Operators {
    /// Builds one chain per worker.
    pub chain: ChainBuilder,
    /// The pattern operator (its pack can be swapped at run time).
    pub pattern: PatternOperator,
    /// The sender-number registry the origin operator checks (fed by the follower).
    pub registry: Arc<Registry>,
    /// The reported contents the reports operator checks (fed by the report follower).
    pub reported: Arc<ReportedContent>,
    /// The serving classifier model and the shadow model (swapped on reload), when the
    /// classifier runs.
    pub models: Option<(ModelHandle, Option<ModelHandle>)>,
    /// Set when the pack in `rules.dir` was rejected and the last good pack serves: why.
    pub rules_fallback: Option<String>,
    /// Counters of the stateful operators.
    pub stats: OperatorStats,
}

/// The operators for `cfg`, with the rule pack from `rules_dir` (overriding
/// `rules.dir`), or the built-in pack. The pack must compile and every rule's examples
/// must agree, or this fails naming each problem.
pub fn operators(cfg: &config::Config, rules_dir: Option<&Path>) -> anyhow::Result<Operators> {
    let dir = rules_dir
        .map(Path::to_path_buf)
        .or_else(|| rules::dir_of(&cfg.rules.dir));
    let name = dir
        .as_ref()
        .map_or_else(|| "built-in".to_owned(), |d| d.display().to_string());
    // Only a pack from rules.dir falls back: a --rules directory (backtest, a try-out)
    // must be the pack that runs.
    let last_good = rules::dir_of(&cfg.rules.last_good_dir).filter(|_| rules_dir.is_none());
    let (pack, rules_fallback) = rules::compile_or_last_good(dir.as_deref(), last_good.as_deref())?;
    tracing::info!(rules = pack.rules.len(), patterns = pack.patterns, compile = ?pack.compile_time, pack = %name, "rule pack compiled");
    let pattern = PatternOperator::new(
        pack,
        PatternConfig {
            max_scan_bytes: cfg.rules.max_scan_bytes,
        },
    );
    let registry = Arc::new(Registry::new());
    let origin = OriginOperator::new(cfg.origin.clone(), registry.clone());
    let stats = OperatorStats::default();
    let mut chain = ChainBuilder::new(cfg.policy.build()).sender_cache(cfg.origin.cache_size);
    #[cfg(debug_assertions)]
    if let Some(injector) = fault::PanicOnMarker::from_env() {
        chain = chain.stateless(Arc::new(injector));
    }
    chain = chain
        .stateless(Arc::new(pattern.clone()))
        .stateless(Arc::new(origin));
    let models = if cfg.classifier.enabled {
        let (model, shadow) = classifier::load(cfg)?;
        chain = chain.classifier(model.clone(), shadow.clone());
        Some((model, shadow))
    } else {
        None
    };
    // Velocity before throttle: a throttle verdict's ratio feedback sees the whole chain.
    if cfg.velocity.enabled {
        let f = VelocityFactory::new(cfg.velocity.clone(), stats.velocity.clone());
        chain = chain.stateful("velocity", move || Box::new(f.build()));
    }
    if cfg.throttle.enabled {
        let f = ThrottleFactory::new(cfg.throttle.clone(), stats.throttle.clone());
        chain = chain.stateful("throttle", move || Box::new(f.build()));
    }
    if cfg.stats.enabled {
        let f = StatsFactory::new(cfg.stats.clone(), registry.clone(), stats.relay.clone());
        chain = chain.stateful(spamflow_operators::stats::NAME, move || Box::new(f.build()));
    }
    if cfg.numbers.suspend_after_blocks > 0
        && cfg.numbers.suspend != spamflow_operators::reports::Suspend::Off
    {
        let f = NumbersFactory::new(cfg.numbers.clone(), registry.clone());
        chain = chain.stateful(spamflow_operators::numbers::NAME, move || {
            Box::new(f.build())
        });
    }
    let reported = Arc::new(ReportedContent::new(cfg.reports.clone()));
    if cfg.reports.enabled {
        chain = chain.stateless(Arc::new(ReportsOperator::new(reported.clone())));
        if cfg.reports.alert_recipients || cfg.reports.resolve_max_messages > 0 {
            let r = reported.clone();
            chain = chain.stateful(spamflow_operators::late_alerts::NAME, move || {
                Box::new(spamflow_operators::late_alerts::LateAlerts::new(r.clone()))
            });
        }
    }
    Ok(Operators {
        chain,
        pattern,
        registry,
        reported,
        models,
        rules_fallback,
        stats,
    })
}

/// The operator chain for `cfg` (see [`operators`]).
pub fn chain(cfg: &config::Config) -> anyhow::Result<ChainBuilder> {
    Ok(operators(cfg, None)?.chain)
}
