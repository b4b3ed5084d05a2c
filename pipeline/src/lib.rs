//! spamflow runtime.
//!
//! - [`config`]: `Config` with `validate()`, layered loading (defaults, TOML, env, flags).
//! - [`kafka`]: client configuration, producer context, topic creation.
//! - [`runtime`]: the consumer thread ([`runtime::engine`]), worker threads, state
//!   changelog and restore; exactly-once transactions or at-least-once commits.
//! - [`embedded`]: `spamflow run` with no brokers: mock cluster, sample replay, observer.
//! - [`backtest`]: the same chain over JSON lines, without Kafka.
//! - [`metrics`], [`admin`]: counters and the `/healthz` `/readyz` `/metrics` endpoint.
//! - [`sample`]: the bundled sample traffic.
//!
//! Threads: one consumer thread (poll, dispatch, commit; rebalance callbacks run on it),
//! N worker threads (CPU work), librdkafka's own threads, and a small tokio runtime for
//! signals and the admin endpoint only.

pub mod admin;
pub mod backtest;
pub mod config;
pub mod embedded;
pub mod kafka;
pub mod metrics;
pub mod runtime;
pub mod sample;

use spamflow_operators::ChainBuilder;

/// The operator chain for `cfg`: every operator that exists, then the policy.
///
/// Detection operators (pattern, velocity/throttle, origin) are added here as they land;
/// until then the chain has none and every verdict is `allow` with score 0.
pub fn chain(cfg: &config::Config) -> anyhow::Result<ChainBuilder> {
    Ok(ChainBuilder::new(cfg.policy.build()))
}
