//! spamflow detection logic, free of Kafka and tokio.
//!
//! - [`signal`]: what an operator says about one event ([`Signal`]).
//! - [`operator`]: the two operator interfaces. A [`StatelessOperator`] (pattern, origin)
//!   is compiled once and shared through `Arc`; each worker thread asks it for its own
//!   [`OperatorWorker`] that owns per-thread scratch. A [`StatefulOperator`] (velocity,
//!   throttle) keeps per-partition keyed state and has hooks for partition assigned
//!   (restore), revoked (drop) and snapshot (changelog).
//! - [`policy`]: signals -> [`Verdict`](spamflow_schemas::Verdict): action, score,
//!   reasons, labels, shadow reasons.
//! - [`normalize`]: Korean-aware canonical form of text with an offset map.
//! - [`pattern`]: Hyperscan rule packs (stateless), hot-swappable.
//! - [`origin`]: overseas origin, spoofing, invalid senders, sender-number registry.
//! - [`eventtime`]: the event-time clock of a partition (the only clock of stateful
//!   operators).
//! - [`classifier`]: the AI text classifier (hashed n-grams, logistic), its model file,
//!   training and metrics; the model carries the fitted policy.
//! - [`velocity`]: per-sender event-time windows and campaigns (stateful).
//! - [`throttle`]: spam ratios and GCRA quotas per relay operator (stateful).
//! - [`stats`]: spam statistics per relay operator, reseller and hour (stateful).
//! - [`chain`]: one worker's operator chain: event in, verdict out; synchronous and
//!   infallible on the hot path.
//!
//! The runtime (`spamflow-pipeline`) and `spamflow backtest` both run events through
//! [`Chain`], which is why they give the same verdicts for the same input.

pub mod chain;
pub mod classifier;
pub mod eventtime;
pub mod late_alerts;
pub mod normalize;
pub mod numbers;
pub mod operator;
pub mod origin;
pub mod pattern;
pub mod policy;
pub mod reports;
pub mod signal;
pub mod stats;
#[cfg(test)]
mod testutil;
pub mod throttle;
pub mod velocity;

pub use chain::{Chain, ChainBuilder};
pub use operator::{
    ConfigProblem, EventCtx, OperatorWorker, SideRecord, StateError, StateUpdate, StatefulOperator,
    StatelessOperator,
};
pub use policy::{Combination, FittedPolicy, Policy, PolicyConfig};
pub use signal::{ActionHint, Signal};

/// `spamflow/<version>`, stamped on every verdict.
pub const PIPELINE_ID: &str = concat!("spamflow/", env!("CARGO_PKG_VERSION"));
