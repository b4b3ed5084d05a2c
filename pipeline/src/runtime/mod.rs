//! The Kafka runtime.
//!
//! - [`engine`]: the consumer thread: poll, dispatch to workers, commit per interval
//!   (one Kafka transaction under exactly-once), rebalance handling (commit before
//!   revoke, restore on assign), recovery from aborted transactions and fatal producer
//!   errors by rewinding to the committed offsets and the committed state.
//! - [`worker`]: worker threads running the operator chain and producing outputs.
//! - [`changelog`]: state changelog keys and per-partition restore.

pub mod changelog;
pub mod engine;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub use engine::run;

/// A stop request shared by signal handlers, the engine and its waits. Waiting on it
/// (instead of sleeping) lets a retry back-off end at once on SIGTERM.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<StopInner>);

#[derive(Debug, Default)]
struct StopInner {
    flag: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Stop {
    /// A stop that has not been requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests the stop and wakes every waiter.
    pub fn trigger(&self) {
        let _g = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.cv.notify_all();
    }

    /// Whether a stop was requested.
    pub fn is_set(&self) -> bool {
        self.0.flag.load(Ordering::Relaxed)
    }

    /// Waits up to `d` or until the stop is requested; returns whether it was.
    pub fn wait(&self, d: Duration) -> bool {
        let g = self.0.lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_set() {
            return true;
        }
        let _ = self.0.cv.wait_timeout_while(g, d, |_| !self.is_set());
        self.is_set()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_wakes_a_waiter() {
        let stop = Stop::new();
        let s2 = stop.clone();
        let waiter = std::thread::spawn(move || s2.wait(Duration::from_secs(3600)));
        stop.trigger();
        assert!(waiter.join().unwrap());
        assert!(stop.wait(Duration::from_secs(3600)));
    }
}
