//! State restores off the poll thread.
//!
//! When a partition is assigned, the engine pauses it and starts a restore thread here.
//! The thread streams the partition's changelog to the partition's worker in chunks, so
//! memory stays bounded whatever the changelog's size, and the poll loop keeps polling
//! (group membership, other partitions' records, commits) however long it takes. The
//! engine collects finished restores with [`Restores::finished`] and resumes the
//! partition.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::config::Config;
use crate::runtime::changelog::{self, RestoreError};
use crate::runtime::worker::Work;
use crate::runtime::Stop;

/// Tries of one restore before the engine gives up (and the process restarts).
const ATTEMPTS: u32 = 4;

/// A restore that ended: `Ok(records read)` or why not.
pub struct Finished {
    /// Input partition.
    pub partition: i32,
    /// The result.
    pub result: Result<usize, RestoreError>,
    /// How long it took.
    pub took: Duration,
}

struct Running {
    id: u64,
    cancel: Stop,
    join: JoinHandle<()>,
}

/// The restores in flight.
pub struct Restores {
    cfg: Arc<Config>,
    brokers: String,
    metrics: Arc<crate::metrics::Metrics>,
    running: BTreeMap<i32, Running>,
    next_id: u64,
    done_tx: Sender<(u64, Finished)>,
    done_rx: Receiver<(u64, Finished)>,
}

impl Restores {
    /// No restores yet.
    pub fn new(cfg: Arc<Config>, brokers: &str, metrics: Arc<crate::metrics::Metrics>) -> Self {
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        Restores {
            cfg,
            brokers: brokers.to_owned(),
            metrics,
            running: BTreeMap::new(),
            next_id: 0,
            done_tx,
            done_rx,
        }
    }

    /// Starts restoring `partition` into the worker behind `worker`, which has been sent
    /// `Work::Assign` for it.
    pub fn start(&mut self, partition: i32, worker: Sender<Work>) -> std::io::Result<()> {
        self.cancel(partition);
        self.next_id += 1;
        let id = self.next_id;
        let cancel = Stop::new();
        let (cfg, brokers, done) = (self.cfg.clone(), self.brokers.clone(), self.done_tx.clone());
        let metrics = self.metrics.clone();
        let c = cancel.clone();
        let join = std::thread::Builder::new()
            .name(format!("spamflow-restore-{partition}"))
            .spawn(move || {
                let t0 = Instant::now();
                let result = restore(&cfg, &brokers, partition, &c, &worker, &metrics);
                let took = t0.elapsed();
                let _ = done.send((
                    id,
                    Finished {
                        partition,
                        result,
                        took,
                    },
                ));
            })?;
        self.running.insert(partition, Running { id, cancel, join });
        Ok(())
    }

    /// Whether `partition`'s state is being restored.
    pub fn is_restoring(&self, partition: i32) -> bool {
        self.running.contains_key(&partition)
    }

    /// Partitions being restored.
    pub fn count(&self) -> usize {
        self.running.len()
    }

    /// Calls off `partition`'s restore and waits for its thread (within one poll, 100
    /// ms), so that nothing of it reaches the worker afterwards.
    pub fn cancel(&mut self, partition: i32) {
        if let Some(r) = self.running.remove(&partition) {
            r.cancel.trigger();
            let _ = r.join.join();
        }
    }

    /// Calls off every restore (all at once, then waits for each).
    pub fn cancel_all(&mut self) {
        let running = std::mem::take(&mut self.running);
        for r in running.values() {
            r.cancel.trigger();
        }
        for r in running.into_values() {
            let _ = r.join.join();
        }
    }

    /// The restores that ended since the last call (cancelled ones are left out).
    pub fn finished(&mut self) -> Vec<Finished> {
        let mut out = Vec::new();
        while let Ok((id, f)) = self.done_rx.try_recv() {
            if self.running.get(&f.partition).is_some_and(|r| r.id == id) {
                if let Some(r) = self.running.remove(&f.partition) {
                    // Sending the result was the thread's last act.
                    let _ = r.join.join();
                }
                out.push(f);
            }
        }
        out
    }
}

/// Reads `partition`'s changelog into `worker`, starting again from empty state after a
/// failure, with back-off.
///
/// No progress for the stall timeout is a failure. It is the Kafka timeout plus the
/// transaction timeout: a previous owner killed in a transaction leaves it undecided
/// until the broker aborts it, which the restore must wait for.
fn restore(
    cfg: &Config,
    brokers: &str,
    partition: i32,
    cancel: &Stop,
    worker: &Sender<Work>,
    metrics: &crate::metrics::Metrics,
) -> Result<usize, RestoreError> {
    let stall = Duration::from_millis(
        cfg.processing.kafka_timeout_ms + cfg.processing.transaction_timeout_ms,
    );
    let mut attempt = 1;
    loop {
        let sink = |records| {
            let _ = worker.send(Work::Restore { partition, records });
        };
        match changelog::read_partition(cfg, brokers, partition, stall, cancel, sink) {
            Ok(n) => return Ok(n),
            Err(e @ RestoreError::Cancelled { .. }) => return Err(e),
            Err(e) if attempt < ATTEMPTS => {
                let wait = Duration::from_millis(500 << attempt);
                tracing::warn!(partition, error = %e, attempt, retry_in = ?wait, "restore failed; retrying");
                metrics
                    .restore_retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                attempt += 1;
                // What was applied is applied again, in order, from empty state.
                let _ = worker.send(Work::Revoke { partition });
                let _ = worker.send(Work::Assign { partition });
                if cancel.wait(wait) {
                    return Err(RestoreError::Cancelled {
                        topic: cfg.topics.changelog.clone(),
                        partition,
                    });
                }
            }
            Err(e) => return Err(e),
        }
    }
}
