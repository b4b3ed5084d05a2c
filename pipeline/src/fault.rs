//! Fault injection for the fault harness and tests; compiled into debug builds only.
//!
//! With `SPAMFLOW_TEST_PANIC_MARKER` set, [`crate::operators`] puts [`PanicOnMarker`]
//! first in the chain: every event whose text contains the marker panics in it, a
//! stand-in for an operator bug. The worker contains the panic, the record goes to the
//! DLQ as `internal_error`, and the harness checks that exactly those records did.

use std::sync::Arc;

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
