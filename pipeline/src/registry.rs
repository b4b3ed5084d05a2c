//! The sender-number registry at run time: follow the compacted topic into the shared
//! table, load it from a file for `backtest`, publish records from the command line.
//!
//! The follower reads every partition of `topics.registry` from the beginning (no
//! consumer group: every instance needs the whole table), applies each record as it
//! comes (tombstones remove), and keeps following. The pipeline starts consuming
//! submissions only once the follower has reached the end of every partition, so no
//! bulk message is judged against a half-loaded table. A malformed record is logged by
//! key and offset, counted, and skipped; the table carries on.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use spamflow_operators::origin::{parse_sender, Registry};
use spamflow_schemas::RegistrationRecord;

use crate::config::Config;
use crate::kafka::{base_consumer_config, Reader, ReaderContext};
use crate::metrics::{Metrics, ThreadWatch};
use crate::runtime::Stop;

/// A running follower.
#[derive(Debug)]
pub struct Follower {
    /// Set once every partition was read to its end at least once.
    pub loaded: Arc<AtomicBool>,
    /// The thread (ends on stop).
    pub handle: JoinHandle<()>,
}

/// How waiting for the initial load ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Every partition was read to its end.
    Loaded,
    /// The instance is stopping.
    Stopped,
    /// Still loading when the wait's time ran out.
    TimedOut,
    /// The follower's thread ended without loading (its error is in the log).
    Failed,
}

impl Follower {
    /// Waits until the initial load is complete, the instance stops, the follower's thread
    /// ends or `timeout` passes.
    pub fn wait_loaded(&self, stop: &Stop, timeout: Duration) -> Load {
        let until = Instant::now() + timeout;
        loop {
            if self.loaded.load(Relaxed) {
                return Load::Loaded;
            }
            if stop.is_set() {
                return Load::Stopped;
            }
            if self.handle.is_finished() {
                // It may have loaded just before it ended.
                return if self.loaded.load(Relaxed) {
                    Load::Loaded
                } else {
                    Load::Failed
                };
            }
            if Instant::now() >= until {
                return Load::TimedOut;
            }
            stop.wait(Duration::from_millis(20));
        }
    }
}

/// Starts following `topics.registry` into `registry`.
pub fn follow(
    cfg: &Config,
    brokers: &str,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    stop: Stop,
) -> anyhow::Result<Follower> {
    let topic = cfg.topics.registry.clone();
    let consumer: Reader = base_consumer_config(cfg, brokers)
        .set("group.id", format!("{}-registry", cfg.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create_with_context(ReaderContext)
        .context("creating the registry follower")?;
    let timeout = Duration::from_millis(cfg.processing.kafka_timeout_ms);
    let loaded = Arc::new(AtomicBool::new(false));
    let flag = loaded.clone();
    let handle = std::thread::Builder::new().name("spamflow-registry".into()).spawn(move || {
        let _watch = ThreadWatch::new(metrics.clone(), "registry follower", stop.clone());
        let Some(partitions) = crate::kafka::partition_count(&consumer, &topic, timeout, &stop) else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let _ = tpl.add_partition_offset(&topic, p, Offset::Beginning);
        }
        if let Err(e) = consumer.assign(&tpl) {
            tracing::error!(error = %e, "cannot assign the registry topic");
            return;
        }
        let mut at_end = vec![false; partitions as usize];
        while !stop.is_set() {
            match consumer.poll(Duration::from_millis(100)) {
                None => {}
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if let Some(e) = at_end.get_mut(p as usize) {
                        *e = true;
                    }
                    if !flag.load(Relaxed) && at_end.iter().all(|x| *x) {
                        flag.store(true, Relaxed);
                        let (applied, rejected) = registry.counts();
                        tracing::info!(numbers = registry.len(), applied, rejected, "sender registry loaded; following");
                    }
                }
                Some(Err(e)) => {
                    metrics.client_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "registry follower error");
                }
                Some(Ok(m)) => {
                    let key = m.key().map(String::from_utf8_lossy).unwrap_or_default();
                    match registry.apply(&key, m.payload()) {
                        Ok(()) => metrics.registry_applied.fetch_add(1, Relaxed),
                        Err(e) => {
                            tracing::warn!(partition = m.partition(), offset = m.offset(), error = %e, "skipping malformed registry record");
                            metrics.registry_rejected.fetch_add(1, Relaxed)
                        }
                    };
                    metrics.registry_numbers.store(registry.len() as i64, Relaxed);
                    metrics
                        .registry_suspended
                        .store(registry.suspended_count() as i64, Relaxed);
                }
            }
        }
    })?;
    Ok(Follower { loaded, handle })
}

/// Reads registration records (JSON lines) from a file: the records, and one problem
/// (`file:line: error`) per line that is not a record.
pub fn read_file(path: &Path) -> anyhow::Result<(Vec<RegistrationRecord>, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading registry file {}", path.display()))?;
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<RegistrationRecord>(line) {
            Ok(r) => records.push(r),
            Err(e) => problems.push(format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    Ok((records, problems))
}

/// Loads a registry file into `registry`; bad lines and bad numbers are reported, not fatal.
pub fn load_file(path: &Path, registry: &Registry) -> anyhow::Result<Vec<String>> {
    let (records, mut problems) = read_file(path)?;
    for r in &records {
        if let Err(e) = registry.put(r) {
            problems.push(format!("{}: {e}", path.display()));
        }
    }
    Ok(problems)
}

/// Publishes registration records (or a tombstone, with `None`) to the registry topic,
/// keyed by the normalized number.
pub fn publish(
    cfg: &Config,
    brokers: &str,
    records: &[(String, Option<RegistrationRecord>)],
) -> anyhow::Result<()> {
    let mut keyed = Vec::with_capacity(records.len());
    for (number, rec) in records {
        let id = parse_sender(number);
        anyhow::ensure!(
            id.kind.is_number(),
            "{number:?} is not a valid phone number ({})",
            id.kind.as_str()
        );
        keyed.push((id.key, rec.as_ref().map(serde_json::to_vec).transpose()?));
    }
    crate::kafka::publish(cfg, brokers, &cfg.topics.registry, &keyed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A follower whose thread runs until `release` is dropped, loaded or not.
    fn follower(loaded: bool) -> (Follower, std::sync::mpsc::Sender<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let _ = wait.recv();
        });
        (
            Follower {
                loaded: Arc::new(AtomicBool::new(loaded)),
                handle,
            },
            release,
        )
    }

    #[test]
    fn waiting_for_the_load_tells_how_it_ended() {
        let long = Duration::from_secs(600);
        let (f, _release) = follower(true);
        assert_eq!(f.wait_loaded(&Stop::new(), long), Load::Loaded);

        let (f, _release) = follower(false);
        assert_eq!(f.wait_loaded(&Stop::new(), Duration::ZERO), Load::TimedOut);
        let stop = Stop::new();
        stop.trigger();
        assert_eq!(f.wait_loaded(&stop, long), Load::Stopped);

        // A thread that ended without loading (it logged why) is a failure, not a stop:
        // the instance must not go on, nor exit as if asked to.
        let (f, release) = follower(false);
        drop(release);
        assert_eq!(f.wait_loaded(&Stop::new(), long), Load::Failed);
    }
}
