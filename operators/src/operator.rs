//! The operator interfaces.
//!
//! Operators are synchronous and infallible on the hot path: an event in, signals out.
//! They never see Kafka; the runtime and `backtest` drive them through [`crate::Chain`].

use spamflow_schemas::{SubmissionEvent, Verdict};

use crate::origin::SenderId;
use crate::Signal;

/// What an operator sees of one event.
#[derive(Debug, Clone, Copy)]
pub struct EventCtx<'a> {
    /// The decoded submission.
    pub event: &'a SubmissionEvent,
    /// The sender's identity, parsed once per sender ([`crate::Chain::sender`]): every
    /// operator that keys, looks up or counts by sender uses it.
    pub sender: &'a SenderId,
    /// Input partition (per-partition state lives under it). `backtest` uses the same
    /// partitioner as the producer guide recommends, so state keys agree.
    pub partition: i32,
    /// `submitted_at` in ms since the epoch: the only clock operators may use.
    pub event_time_ms: i64,
    /// The restored state already counts this event: it is an at-least-once replay of a
    /// record processed before a crash or a failed offset commit, after its state changes
    /// were written to the changelog. Stateful operators judge it against their state but
    /// must not count it again (no new counts, no quota taken, no feedback).
    pub counted: bool,
}

/// A stateless operator (pattern, origin): compiled once per rule-pack version and
/// shared by all workers through `Arc`.
pub trait StatelessOperator: Send + Sync + std::fmt::Debug {
    /// Bounded operator name, used in reasons and metrics.
    fn name(&self) -> &'static str;
    /// Content hash of what this operator was built from (rule pack, tables, config);
    /// it becomes part of `rules_version`.
    fn content_hash(&self) -> String;
    /// A per-worker instance that owns its scratch space (never shared between threads).
    fn worker(&self) -> Box<dyn OperatorWorker>;
    /// Bumped whenever the operator's rules change at run time (hot reload), so that
    /// chains refresh `rules_version`. Operators that never change keep 0.
    fn generation(&self) -> u64 {
        0
    }
}

/// One worker thread's instance of a stateless operator.
pub trait OperatorWorker: Send {
    /// Appends this operator's findings on `ctx` to `out`.
    fn inspect(&mut self, ctx: &EventCtx<'_>, out: &mut Vec<Signal>);

    /// The same, given the canonical form of the event's text (the first
    /// [`crate::chain::CANONICAL_MAX_BYTES`] of it), which the chain makes once per event
    /// for every operator that reads it. Operators that do not read it keep the default.
    fn inspect_canonical(
        &mut self,
        ctx: &EventCtx<'_>,
        _canonical: &crate::normalize::Normalized,
        out: &mut Vec<Signal>,
    ) {
        self.inspect(ctx, out);
    }
}

/// One changed key of a stateful operator since the last snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateUpdate {
    /// Operator-local key (e.g. the normalized sender).
    pub key: Vec<u8>,
    /// New value, or `None` when the key was evicted (a changelog tombstone).
    pub value: Option<Vec<u8>>,
}

/// Turns the keys marked changed since the last snapshot into changelog records, once
/// per key however often it changed (the list is sorted and deduplicated): `state` gives
/// `Some(Some(value))` for a key still changed (and marks it clean), `Some(None)` for a
/// removed key (a tombstone), `None` for a key already written since.
pub(crate) fn drain_dirty<K: Ord>(
    dirty: &mut Vec<K>,
    out: &mut Vec<StateUpdate>,
    key: impl Fn(&K) -> Vec<u8>,
    mut state: impl FnMut(&K) -> Option<Option<Vec<u8>>>,
) {
    dirty.sort_unstable();
    dirty.dedup();
    for k in dirty.drain(..) {
        if let Some(value) = state(&k) {
            out.push(StateUpdate {
                key: key(&k),
                value,
            });
        }
    }
}

/// A record a stateful operator makes for a topic other than the changelog.
#[derive(Debug, Clone, PartialEq)]
pub enum SideRecord {
    /// A sender-registry record (a suspension), for `topics.registry`.
    Registry(spamflow_schemas::RegistrationRecord),
    /// A suspension proposed to staff (the record that would suspend the number), for
    /// `topics.number_proposals`.
    Proposal(spamflow_schemas::RegistrationRecord),
    /// An alert for a recipient, for `topics.alerts`.
    Alert(spamflow_schemas::Alert),
    /// A content a partition blocked as a campaign's, for `topics.campaign_contents`.
    Campaign(spamflow_schemas::CampaignContent),
}

/// A stateful operator's content hash of its configuration: the first 8 bytes of the
/// SHA-256 of its JSON, in hex (part of `rules_version`).
pub(crate) fn config_hash(cfg: &impl serde::Serialize) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(cfg).unwrap_or_default();
    hex::encode(&Sha256::digest(json)[..8])
}

/// One setting of an operator's configuration that cannot work: its key under the
/// operator's section (`steps[1].spam_ratio` under `[throttle]`) and why. Every operator
/// configuration's `validate` lists all of its problems at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigProblem {
    /// Key under the operator's section.
    pub key: String,
    /// What is wrong and what to do.
    pub reason: String,
}

impl ConfigProblem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// A changelog record that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operator `{operator}`: cannot restore key {key:?}: {detail}")]
pub struct StateError {
    /// Operator name.
    pub operator: &'static str,
    /// Printable key.
    pub key: String,
    /// What is wrong with the value.
    pub detail: String,
}

impl StateError {
    /// `operator` cannot restore `key` (printed lossily): `detail`.
    pub fn new(operator: &'static str, key: &[u8], detail: impl Into<String>) -> Self {
        StateError {
            operator,
            key: String::from_utf8_lossy(key).into_owned(),
            detail: detail.into(),
        }
    }
}

/// A stateful operator (velocity, throttle) with per-partition keyed state.
///
/// Input is keyed by sender, so per-sender state of one sender lives in one partition
/// and one worker owns it: no locking on the hot path.
pub trait StatefulOperator: Send {
    /// Bounded operator name; also the changelog key prefix.
    fn name(&self) -> &'static str;
    /// Content hash of the operator's configuration (part of `rules_version`). The default,
    /// empty, is for an operator that never changes a verdict (it only watches decisions).
    fn content_hash(&self) -> String {
        String::new()
    }
    /// Appends findings on `ctx` to `out`, updating the state of `ctx.partition` unless
    /// `ctx.counted`. The default finds nothing (an operator that only watches decisions).
    fn inspect(&mut self, _ctx: &EventCtx<'_>, _out: &mut Vec<Signal>) {}
    /// The policy's verdict on the event just inspected (feedback, e.g. spam ratios per
    /// relay operator). Called once after every [`StatefulOperator::inspect`], also for a
    /// `ctx.counted` event, which must not be counted again.
    fn decided(&mut self, _ctx: &EventCtx<'_>, _verdict: &Verdict) {}
    /// `partition` is now owned by this worker; its state starts empty and is then
    /// filled by [`StatefulOperator::restore`] calls from the changelog.
    fn assigned(&mut self, partition: i32);
    /// Applies one changelog record of `partition` (latest value per key wins).
    fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError>;
    /// `partition` is no longer owned: drop its state.
    fn revoked(&mut self, partition: i32);
    /// Appends the keys of `partition` changed since the last snapshot and marks them clean.
    fn snapshot(&mut self, partition: i32, out: &mut Vec<StateUpdate>);
    /// Whether the changelog record of `key` (with a value) is also published, in the same
    /// transaction, to `topics.operator_stats`. Only the statistics operator's hours are.
    fn published(&self, _key: &[u8]) -> bool {
        false
    }
    /// Appends the records for other topics (suspensions, late alerts) made for
    /// `partition` since the last call; the runtime writes them in the same transaction as
    /// the changelog.
    fn side_records(&mut self, _partition: i32, _out: &mut Vec<SideRecord>) {}
}
