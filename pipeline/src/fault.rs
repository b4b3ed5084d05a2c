//! Fault injection for the fault harness and tests; compiled into debug builds only.
//!
//! With `SPAMFLOW_TEST_PANIC_MARKER` set, [`crate::operators`] puts [`PanicOnMarker`]
//! first in the chain: every event whose text contains the marker panics in it, a
//! stand-in for an operator bug. The worker contains the panic, the record goes to the
//! DLQ as `internal_error`, and the harness checks that exactly those records did.
//!
//! With `SPAMFLOW_TEST_ABORT_IN_COMMIT=<point>:<n>` the process aborts (as a SIGKILL
//! would end it) inside its n-th commit under exactly-once: at `flushed`, after the
//! outputs and the changelog are flushed and before the offsets join the transaction,
//! or at `committed`, after `commit_transaction` returned and before the engine took note.

use std::sync::Arc;

use anyhow::{bail, Context};

use crate::runtime::engine::CommitPoint;

use spamflow_operators::{EventCtx, OperatorWorker, Signal, StatelessOperator};

/// The environment variable that turns the injector on, with the marker as its value.
pub const PANIC_MARKER_ENV: &str = "SPAMFLOW_TEST_PANIC_MARKER";

/// A stateless operator that panics on texts containing its marker. Its content hash is
/// empty, so `rules_version` is that of the same chain without it.
#[derive(Debug, Clone)]
pub struct PanicOnMarker(Arc<str>);

impl PanicOnMarker {
    /// Panics on texts containing `marker` (which must not be empty).
    pub fn new(marker: &str) -> Self {
        assert!(
            !marker.is_empty(),
            "an empty panic marker matches every text"
        );
        PanicOnMarker(marker.into())
    }

    /// The injector asked for by [`PANIC_MARKER_ENV`], if any.
    pub fn from_env() -> Option<Self> {
        let marker = std::env::var(PANIC_MARKER_ENV).ok()?;
        if marker.is_empty() {
            return None;
        }
        tracing::warn!(
            env = PANIC_MARKER_ENV,
            "fault injection: records whose text has the marker will panic (test builds only)"
        );
        Some(Self::new(&marker))
    }
}

impl StatelessOperator for PanicOnMarker {
    fn name(&self) -> &'static str {
        "panic_injector"
    }
    fn content_hash(&self) -> String {
        String::new()
    }
    fn worker(&self) -> Box<dyn OperatorWorker> {
        Box::new(self.clone())
    }
}

impl OperatorWorker for PanicOnMarker {
    fn inspect(&mut self, ctx: &EventCtx<'_>, _out: &mut Vec<Signal>) {
        assert!(!ctx.event.text.contains(&*self.0), "injected panic");
    }
}

/// The environment variable that makes a commit abort the process: `<point>:<n>`.
pub const ABORT_IN_COMMIT_ENV: &str = "SPAMFLOW_TEST_ABORT_IN_COMMIT";

/// An abort inside the n-th commit (counting from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitAbort {
    point: CommitPoint,
    nth: u64,
}

impl CommitAbort {
    /// The abort asked for by [`ABORT_IN_COMMIT_ENV`], if any.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let Ok(v) = std::env::var(ABORT_IN_COMMIT_ENV) else {
            return Ok(None);
        };
        let (point, nth) = v
            .split_once(':')
            .with_context(|| format!("{ABORT_IN_COMMIT_ENV}={v:?} is not <point>:<n>"))?;
        let point = match point {
            "flushed" => CommitPoint::Flushed,
            "committed" => CommitPoint::Committed,
            other => bail!("{ABORT_IN_COMMIT_ENV}: {other:?} is not flushed or committed"),
        };
        let nth: u64 =
            nth.parse().ok().filter(|n| *n > 0).with_context(|| {
                format!("{ABORT_IN_COMMIT_ENV}: {nth:?} is not a commit number")
            })?;
        tracing::warn!(
            env = ABORT_IN_COMMIT_ENV,
            "fault injection: the process aborts inside commit {nth} (test builds only)"
        );
        Ok(Some(CommitAbort { point, nth }))
    }

    /// Aborts the process when this is the point of the commit that follows `commits`
    /// good ones.
    pub fn at(&self, point: CommitPoint, commits: u64) {
        if point == self.point && commits + 1 == self.nth {
            eprintln!(
                "fault injection: aborting inside commit {} at {point:?}",
                self.nth
            );
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_aborts_are_parsed_or_refused() {
        let parse = |v: &str| {
            std::env::set_var(ABORT_IN_COMMIT_ENV, v);
            let r = CommitAbort::from_env().map_err(|e| e.to_string());
            std::env::remove_var(ABORT_IN_COMMIT_ENV);
            r
        };
        assert_eq!(
            parse("flushed:3").unwrap(),
            Some(CommitAbort {
                point: CommitPoint::Flushed,
                nth: 3
            })
        );
        assert!(parse("committed:1").unwrap().is_some());
        assert!(parse("during:1")
            .unwrap_err()
            .contains("not flushed or committed"));
        assert!(parse("flushed:0")
            .unwrap_err()
            .contains("not a commit number"));
        assert!(parse("flushed").unwrap_err().contains("not <point>:<n>"));
    }
}
