//! The Kafka runtime.
//!
//! - [`engine`]: the consumer thread: poll, dispatch to workers, commit per interval
//!   (one Kafka transaction under exactly-once), rebalance handling (commit before
//!   revoke, pause and restore on assign), recovery from aborted transactions and fatal producer
//!   errors by rewinding to the committed offsets and the committed state.
//! - [`worker`]: worker threads running the operator chain and producing outputs.
//! - [`changelog`]: state changelog keys and reading one partition's changelog.
//! - [`restore`]: restores on threads of their own while their partitions are paused.

pub mod changelog;
pub mod engine;
pub mod restore;
pub mod worker;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};

pub use engine::run;

/// Whether a Kafka client error can heal by itself: a timeout, a lost connection, a
/// broker or coordinator moving, a partition whose fetcher has not started yet. Anything
/// else (authorization, an unknown topic, a fenced producer) will not.
pub fn heals(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    const HEALING: [RDKafkaErrorCode; 13] = [
        C::OperationTimedOut,
        C::RequestTimedOut,
        C::BrokerTransportFailure,
        C::AllBrokersDown,
        C::NetworkException,
        C::BrokerNotAvailable,
        C::LeaderNotAvailable,
        C::NotLeaderForPartition,
        C::NotCoordinator,
        C::CoordinatorNotAvailable,
        C::CoordinatorLoadInProgress,
        C::State,
        C::TimedOutQueue,
    ];
    match e {
        // rdkafka reports a failed seek as librdkafka's description of the code only
        // (`Local: Erroneous state`), which the code's own display ends with.
        KafkaError::Seek(text) => HEALING
            .iter()
            .any(|c| c.to_string().ends_with(&format!("({text})"))),
        _ => e.rdkafka_error_code().is_some_and(|c| HEALING.contains(&c)),
    }
}

/// Runs `op` until it succeeds, fails with an error that does not [`heals`], or has been
/// tried `attempts` times, waiting `first` and then twice as long before each new try.
/// A stop request ends the waiting at once (the last error is returned). `retried`
/// counts the failed tries that are tried again.
pub fn retry<T>(
    what: &str,
    attempts: u32,
    first: Duration,
    stop: &Stop,
    retried: &std::sync::atomic::AtomicU64,
    mut op: impl FnMut() -> KafkaResult<T>,
) -> KafkaResult<T> {
    let mut wait = first;
    let mut tried = 1;
    loop {
        match op() {
            Ok(v) => return Ok(v),
            Err(e) if tried < attempts && heals(&e) => {
                tracing::warn!(error = %e, attempt = tried, "{what} failed; retrying in {wait:?}");
                retried.fetch_add(1, Ordering::Relaxed);
                if stop.wait(wait) {
                    return Err(e);
                }
                wait *= 2;
                tried += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

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
    fn a_seek_error_heals_by_its_description() {
        assert!(heals(&KafkaError::Seek("Local: Erroneous state".into())));
        assert!(heals(&KafkaError::Seek("Local: Timed out".into())));
        assert!(!heals(&KafkaError::Seek("Local: Unknown partition".into())));
        assert!(!heals(&KafkaError::Seek("Erroneous state".into())));
    }

    #[test]
    fn retry_retries_what_heals_and_gives_up_on_what_does_not() {
        let stop = Stop::new();
        let n = std::sync::atomic::AtomicU64::new(0);
        let timeout = || KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut);
        let mut calls = 0;
        let r = retry("fetch", 5, Duration::ZERO, &stop, &n, || {
            calls += 1;
            if calls < 3 {
                Err(timeout())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(r.unwrap(), 3);
        assert_eq!(
            n.load(Ordering::Relaxed),
            2,
            "two failed tries were tried again"
        );
        let mut calls = 0;
        let r: KafkaResult<()> = retry("fetch", 5, Duration::ZERO, &stop, &n, || {
            calls += 1;
            Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::TopicAuthorizationFailed,
            ))
        });
        assert!(
            r.is_err() && calls == 1,
            "an error that cannot heal is not retried"
        );
        let mut calls = 0;
        let r: KafkaResult<()> = retry("fetch", 4, Duration::ZERO, &stop, &n, || {
            calls += 1;
            Err(timeout())
        });
        assert!(r.is_err() && calls == 4, "tries are bounded");
        stop.trigger();
        let mut calls = 0;
        let r: KafkaResult<()> = retry("fetch", 4, Duration::from_secs(3600), &stop, &n, || {
            calls += 1;
            Err(timeout())
        });
        assert!(r.is_err() && calls == 1, "a stop ends the back-off");
    }

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
