//! The consumer thread: poll, dispatch, commit, rebalance, recover.
//!
//! One `BaseConsumer` polled from one dedicated thread (librdkafka runs rebalance
//! callbacks inside `poll`, so commit-before-revoke happens on this thread, in order).
//! The engine state ([`Core`]) lives in the consumer context behind a mutex that is
//! never held across `poll`, so the loop and the callbacks take turns.
//!
//! Per commit interval under exactly-once:
//! `begin_transaction` (lazily, on the first record) -> records dispatched to workers,
//! whose outputs join the transaction (and, with the first batch, the partitions the
//! barrier will write state to) -> barrier (workers drain and write changed state
//! to the changelog) -> `send_offsets_to_transaction` -> `commit_transaction`.
//! Under at-least-once the barrier cuts a checkpoint and fetching goes on at once: the
//! checkpoint's offsets are committed when the delivery reports say that every output
//! queued before its barrier is acknowledged ([`crate::kafka::Deliveries`]), so the poll
//! thread never waits for the broker's acknowledgements. Before a rebalance and at
//! shutdown it does: barrier, flush, synchronous offset commit.
//! Either way, offsets move only after the outputs of every record before them are durable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers as _, Message};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};
use spamflow_operators::ChainBuilder;

use crate::config::{Config, Guarantee};
use crate::kafka::{
    consumer_config, epoch_slot, producer_config, Deliveries, FailedOutputs, OutProducer,
    SinkContext, EPOCH_SLOTS,
};
use crate::metrics::Metrics;
use crate::runtime::restore::Restores;
use crate::runtime::worker::{self, InMsg, SharedProducer, Work, WorkerEnv, WorkerHandle};
use crate::runtime::{retry, Stop};

/// The most records one dispatch carries to a worker (records also go as soon as the
/// fetched ones run out): large enough to amortise the channel under load.
const DISPATCH_BATCH: usize = 256;

/// Runs the pipeline against `brokers` until `stop` is triggered, then shuts down
/// gracefully within `processing.shutdown_timeout_ms`. Returns an error only for what a
/// restart should handle (state that cannot be restored, a consumer that cannot be made).
pub fn run(
    cfg: &Config,
    brokers: &str,
    chain: ChainBuilder,
    metrics: Arc<Metrics>,
    stop: Stop,
) -> anyhow::Result<()> {
    let cfg = Arc::new(cfg.clone());
    let eos = cfg.processing.guarantee == Guarantee::ExactlyOnce;
    tracing::info!(
        brokers,
        guarantee = ?cfg.processing.guarantee,
        commit_interval_ms = cfg.processing.commit_interval_ms,
        workers = cfg.worker_count(),
        operators = ?chain.operator_names(),
        rules_version = %chain.rules_version(),
        "starting pipeline"
    );
    let sink = SinkContext {
        metrics: metrics.clone(),
        failed: Arc::new(FailedOutputs::default()),
        deliveries: Arc::new(Deliveries::default()),
    };
    let Some(producer) = make_producer(&cfg, brokers, &sink, &stop)? else {
        return Ok(());
    };
    warn_missing_outputs(&cfg, &producer, &chain);
    let producer = SharedProducer::new(producer);
    let has_state = chain.has_state();
    let env = Arc::new(WorkerEnv {
        chain,
        producer: producer.clone(),
        topics: Arc::new(cfg.topics.clone()),
        metrics: metrics.clone(),
        max_message_bytes: cfg.processing.max_message_bytes,
        failed: sink.failed.clone(),
        exactly_once: eos,
    });
    let workers = worker::spawn(cfg.worker_count(), env).context("starting worker threads")?;
    let n_workers = workers.len();
    let ctx = Arc::new(EngineContext {
        core: Mutex::new(Core {
            cfg: cfg.clone(),
            brokers: brokers.to_owned(),
            eos,
            has_state,
            producer,
            workers,
            batches: vec![Vec::new(); n_workers],
            pending: BTreeMap::new(),
            first_read: BTreeMap::new(),
            owned: BTreeSet::new(),
            restores: Restores::new(cfg.clone(), brokers, metrics.clone()),
            sink,
            epoch: 0,
            queued: [0; EPOCH_SLOTS],
            checkpoints: VecDeque::new(),
            dirty_since_ms: 0,
            output_tries: BTreeMap::new(),
            resume_at: BTreeMap::new(),
            txn_open: false,
            dirty: false,
            last_commit: Instant::now(),
            delivery_failures_seen: metrics.delivery_failures.load(Relaxed),
            #[cfg(debug_assertions)]
            abort_in_commit: crate::fault::CommitAbort::from_env()?,
            metrics: metrics.clone(),
            stop: stop.clone(),
            fatal: None,
            shutdown_deadline: None,
        }),
        metrics: metrics.clone(),
    });
    let consumer: BaseConsumer<ArcContext> = consumer_config(&cfg, brokers)
        .create_with_context(ArcContext(ctx.clone()))
        .context("creating the input consumer")?;
    consumer
        .subscribe(&[&cfg.topics.submissions])
        .with_context(|| format!("subscribing to {}", cfg.topics.submissions))?;

    let commit_every = Duration::from_millis(cfg.processing.commit_interval_ms);
    let mut result = Ok(());
    'run: while !stop.is_set() {
        // Fetch phase: accept records until the next commit is due.
        let due = next_commit_due(lock(&ctx.core).last_commit, Instant::now(), commit_every);
        // Records accepted since the last dispatch. While there are some, polling does not
        // wait: the moment the fetched records run out they go to the workers, so a
        // record waits for the rest of its fetch, never for a batch to fill.
        let mut undispatched = false;
        loop {
            let wait = if undispatched {
                Duration::ZERO
            } else {
                // librdkafka waits in whole milliseconds and rdkafka rounds down, so a
                // wait under one would not wait at all: round up.
                let left = due.saturating_duration_since(Instant::now());
                Duration::from_millis(left.as_micros().div_ceil(1000).min(10) as u64)
            };
            let polled = consumer.poll(wait);
            metrics
                .heartbeat_ms
                .store(crate::metrics::mono_ms(), Relaxed);
            let mut core = lock(&ctx.core);
            match polled {
                Some(Ok(m)) => {
                    core.accept(&consumer, &m);
                    undispatched = true;
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    metrics.client_errors.fetch_add(1, Relaxed);
                    // Fatal consumer errors do not heal; the usual one is a fenced static
                    // member: another live instance has our group.instance.id.
                    let reason = consumer
                        .client()
                        .fatal_error()
                        .map_or_else(|| code.to_string(), |(_, r)| r);
                    result = Err(anyhow::anyhow!(
                        "the consumer hit a fatal error ({code}: {reason}); with FENCED_INSTANCE_ID another \
                         live instance uses group.instance.id {:?}, which must be unique per live instance; exiting",
                        cfg.kafka.group_instance_id
                    ));
                    break 'run;
                }
                Some(Err(e)) => {
                    metrics.client_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "consumer error");
                    core.dispatch();
                    undispatched = false;
                }
                None => {
                    core.dispatch();
                    undispatched = false;
                }
            }
            // After the polled record is accepted: one of a partition whose restore has
            // just ended was fetched before the partition's resume and seek, so it is one
            // read while restoring (read again after the seek), not one to process now.
            if core.restores.count() > 0 {
                core.resume_restored(&consumer);
            }
            // Checkpoints advance whenever the fetched records have run out (and at
            // each cut), not per record.
            if !eos && !undispatched {
                core.advance(&consumer);
            }
            if let Some(f) = core.fatal.take() {
                result = Err(anyhow::anyhow!(f));
                break 'run;
            }
            if stop.is_set() || Instant::now() >= due {
                break;
            }
        }
        if stop.is_set() {
            // The shutdown below commits, within its deadline.
            break;
        }
        let mut core = lock(&ctx.core);
        if eos {
            core.commit(&consumer);
        } else {
            core.checkpoint(&consumer);
        }
    }

    // Graceful shutdown: no more fetching; commit what was processed (or abort it),
    // leave the group, stop the workers, flush.
    let deadline = Instant::now() + Duration::from_millis(cfg.processing.shutdown_timeout_ms);
    tracing::info!("shutting down: committing processed records");
    {
        let mut core = lock(&ctx.core);
        core.shutdown_deadline = Some(deadline);
        core.commit(&consumer);
    }
    consumer.unsubscribe();
    drop(consumer);
    let mut core = lock(&ctx.core);
    core.restores.cancel_all();
    for w in std::mem::take(&mut core.workers) {
        w.stop();
    }
    let p = core.producer.get();
    let left = deadline.saturating_duration_since(Instant::now());
    if let Err(e) = crate::kafka::flush(&p, left) {
        tracing::warn!(error = %e, "outputs not flushed before the shutdown deadline");
    }
    metrics.ready.store(false, Relaxed);
    tracing::info!(
        consumed = metrics.consumed.load(Relaxed),
        verdicts = metrics.verdicts_total(),
        dlq = metrics.dlq_total(),
        commits = metrics.commits.load(Relaxed),
        aborts = metrics.aborts.load(Relaxed),
        "pipeline stopped"
    );
    result
}

/// When the commit after one that started at `started` is due, at `now` (its end): one
/// interval after the start, so that a record waits at most one interval before its commit
/// starts whatever the commit took; after a commit slower than that, a quarter of the
/// interval still goes to fetching, so slow commits cannot starve it.
fn next_commit_due(started: Instant, now: Instant, every: Duration) -> Instant {
    (started + every).max(now + every / 4)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes the output producer; under exactly-once initialises transactions (fencing a
/// previous incarnation with the same transactional id), retrying with back-off while
/// the brokers are unreachable. `None` if stopped while waiting.
/// Logs an error for every output topic this chain writes that the brokers do not have
/// (typically a topic added by an upgrade before `spamflow create-topics` ran): its
/// records would fail, so commits would stop. Only a hint: the run goes on, and heals
/// once the topic exists.
fn warn_missing_outputs(cfg: &Config, producer: &OutProducer, chain: &ChainBuilder) {
    let t = &cfg.topics;
    let mut outputs = vec![
        ("topics.verdicts", &t.verdicts),
        ("topics.block", &t.block),
        ("topics.alerts", &t.alerts),
        ("topics.dlq", &t.dlq),
    ];
    let names = chain.operator_names();
    if chain.has_state() {
        outputs.push(("topics.changelog", &t.changelog));
    }
    if names.contains(&spamflow_operators::stats::NAME) {
        outputs.push(("topics.operator_stats", &t.operator_stats));
    }
    if names.contains(&spamflow_operators::late_alerts::NAME) {
        outputs.push(("topics.campaign_contents", &t.campaign_contents));
    }
    if names.contains(&spamflow_operators::numbers::NAME) {
        outputs.push(match cfg.numbers.suspend {
            spamflow_operators::reports::Suspend::Propose => {
                ("topics.number_proposals", &t.number_proposals)
            }
            _ => ("topics.registry", &t.registry),
        });
    }
    let timeout = Duration::from_millis(cfg.processing.kafka_timeout_ms.min(10_000));
    for (key, topic) in outputs {
        match producer.client().fetch_metadata(Some(topic), timeout) {
            Ok(md) => {
                let missing = md
                    .topics()
                    .iter()
                    .any(|mt| mt.error().is_some() || mt.partitions().is_empty());
                if missing {
                    tracing::error!(topic = %topic, key, "output topic does not exist; create it with `spamflow create-topics` (commits fail until it exists)");
                }
            }
            Err(e) => {
                tracing::warn!(topic = %topic, error = %e, "cannot check that the output topic exists")
            }
        }
    }
}

fn make_producer(
    cfg: &Config,
    brokers: &str,
    sink: &SinkContext,
    stop: &Stop,
) -> anyhow::Result<Option<OutProducer>> {
    let metrics = &sink.metrics;
    let mut backoff = Duration::from_millis(250);
    loop {
        let p: OutProducer = producer_config(cfg, brokers)
            .create_with_context(sink.clone())
            .context("creating the output producer (check kafka.client settings)")?;
        if cfg.processing.guarantee == Guarantee::AtLeastOnce {
            return Ok(Some(p));
        }
        match p.init_transactions(Duration::from_millis(cfg.processing.kafka_timeout_ms)) {
            Ok(()) => return Ok(Some(p)),
            Err(e) => {
                metrics.client_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, retry_in = ?backoff, transactional_id = %cfg.transactional_id(), "cannot initialise transactions; retrying");
                if stop.wait(backoff) {
                    return Ok(None);
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Consumer context: rebalance callbacks drive the engine core.
pub struct EngineContext {
    core: Mutex<Core>,
    metrics: Arc<Metrics>,
}

/// The context type handed to rdkafka (a cheap handle to [`EngineContext`]).
#[derive(Clone)]
pub struct ArcContext(Arc<EngineContext>);

impl ClientContext for ArcContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", fac, "{log_message}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", fac, "{log_message}"),
            _ => tracing::debug!(target: "librdkafka", fac, "{log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.metrics.client_errors.fetch_add(1, Relaxed);
        tracing::warn!(%error, reason, "consumer client error (retrying)");
    }
}

impl ConsumerContext for ArcContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts = partitions(tpl);
            let lost = consumer.assignment_lost();
            tracing::info!(partitions = ?parts, lost, "partitions revoked");
            let mut core = lock(&self.0.core);
            core.metrics.rebalances.fetch_add(1, Relaxed);
            if lost {
                // Another member may own them already: our offsets would be rejected.
                core.abort_and_rewind(consumer, "assignment lost");
            } else {
                core.commit(consumer);
            }
            core.revoke(&parts);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts = partitions(tpl);
                tracing::info!(partitions = ?parts, "partitions assigned");
                let mut core = lock(&self.0.core);
                core.metrics.rebalances.fetch_add(1, Relaxed);
                core.assign(consumer, &parts);
                core.metrics.ready.store(true, Relaxed);
            }
            Rebalance::Error(e) => {
                self.0.metrics.client_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "rebalance error");
            }
            Rebalance::Revoke(_) => {}
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<i32> {
    tpl.elements().iter().map(|e| e.partition()).collect()
}

/// Points inside a commit under exactly-once where debug builds can abort the process
/// for the fault tests ([`crate::fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitPoint {
    /// Outputs and changelog flushed; offsets not yet in the transaction.
    Flushed,
    /// `commit_transaction` returned; the engine has not yet taken note.
    Committed,
}

/// Engine state, shared by the poll loop and the rebalance callbacks.
struct Core {
    /// Debug builds: an abort inside a commit, for the fault tests ([`crate::fault`]).
    #[cfg(debug_assertions)]
    abort_in_commit: Option<crate::fault::CommitAbort>,
    cfg: Arc<Config>,
    brokers: String,
    eos: bool,
    has_state: bool,
    producer: SharedProducer,
    workers: Vec<WorkerHandle>,
    /// Records not yet handed to each worker.
    batches: Vec<Vec<InMsg>>,
    /// Next offset to commit per partition (last dispatched + 1).
    pending: BTreeMap<i32, i64>,
    /// The first offset read from each owned partition since it was assigned: where a
    /// rewind goes when the group has no committed offset for it (the position
    /// `auto.offset.reset` chose), instead of the beginning of the topic.
    first_read: BTreeMap<i32, i64>,
    owned: BTreeSet<i32>,
    /// Restores in flight; their partitions are paused until they end.
    restores: Restores,
    /// The output producer's context (a recreated producer gets the same): the input
    /// records whose outputs failed with an error of their own, charged by the producer
    /// and the workers, and the delivery reports per epoch slot.
    sink: SinkContext,
    /// Barriers so far: the epoch whose outputs the workers queue now.
    epoch: u64,
    /// Outputs queued per epoch slot, from the start.
    queued: [u64; EPOCH_SLOTS],
    /// At-least-once checkpoints cut and not yet committed, oldest first.
    checkpoints: VecDeque<Checkpoint>,
    /// When the first record since the last barrier was read (`metrics::mono_ms`).
    dirty_since_ms: u64,
    /// Failed commits so far per such input record (partition, offset).
    output_tries: BTreeMap<(i32, i64), u32>,
    /// The first offset of a restoring partition's record that reached the poll loop
    /// anyway (fetched before the pause took hold). It is not processed; the partition is
    /// sought back to it when its restore ends.
    resume_at: BTreeMap<i32, i64>,
    txn_open: bool,
    /// Anything dispatched since the last commit.
    dirty: bool,
    /// When the last commit (or checkpoint) started.
    last_commit: Instant,
    delivery_failures_seen: u64,
    metrics: Arc<Metrics>,
    stop: Stop,
    /// Set when the engine cannot go on (state cannot be restored); the loop exits with it.
    fatal: Option<String>,
    /// Set when shutting down: every Kafka call is cut to what is left of it, and a failed
    /// commit is aborted without rewinding (the next owner starts from the last commit).
    shutdown_deadline: Option<Instant>,
}

impl Core {
    fn timeout(&self) -> Duration {
        let t = Duration::from_millis(self.cfg.processing.kafka_timeout_ms);
        match self.shutdown_deadline {
            Some(d) => t
                .min(d.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1)),
            None => t,
        }
    }

    fn worker_of(&self, partition: i32) -> usize {
        partition.unsigned_abs() as usize % self.workers.len()
    }

    fn accept<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, m: &BorrowedMessage<'_>) {
        if self.restores.is_restoring(m.partition()) {
            self.resume_at.entry(m.partition()).or_insert_with(|| {
                tracing::debug!(
                    partition = m.partition(),
                    offset = m.offset(),
                    "a record of a partition being restored; it is read again after the restore"
                );
                m.offset()
            });
            return;
        }
        if self.eos && !self.txn_open {
            if let Err(e) = self.producer.get().begin_transaction() {
                // The record at hand is not processed: the rewind seeks back before it.
                tracing::warn!(error = %e, "cannot begin a transaction; recovering");
                self.recover(consumer, &e);
                return;
            }
            self.txn_open = true;
        }
        let msg = InMsg {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            trace: m.headers().and_then(|h| {
                h.iter()
                    .find(|h| h.key == crate::telemetry::TRACEPARENT)
                    .and_then(|h| h.value)
                    .and_then(crate::telemetry::TraceParent::parse)
            }),
        };
        self.pending.insert(msg.partition, msg.offset + 1);
        self.first_read.entry(msg.partition).or_insert(msg.offset);
        if !self.dirty {
            self.dirty_since_ms = crate::metrics::mono_ms();
            // Unless an older record waits for its commit.
            let _ = self.metrics.uncommitted_since_ms.compare_exchange(
                0,
                self.dirty_since_ms,
                Relaxed,
                Relaxed,
            );
        }
        self.dirty = true;
        let w = self.worker_of(msg.partition);
        self.batches[w].push(msg);
        if self.batches[w].len() >= DISPATCH_BATCH {
            let batch = std::mem::take(&mut self.batches[w]);
            self.send_work(w, Work::Batch(batch));
        }
    }

    fn dispatch(&mut self) {
        for w in 0..self.batches.len() {
            if !self.batches[w].is_empty() {
                let batch = std::mem::take(&mut self.batches[w]);
                self.send_work(w, Work::Batch(batch));
            }
        }
    }

    fn send_work(&mut self, w: usize, work: Work) {
        if self.workers[w].tx.send(work).is_err() {
            self.fatal = Some(format!("worker {w} stopped unexpectedly"));
        }
    }

    /// Waits until every worker has drained its queue and written its changelog; ends the
    /// epoch.
    fn barrier(&mut self) -> Cut {
        self.dispatch();
        let (tx, rx) = crossbeam_channel::bounded(self.workers.len());
        for w in 0..self.workers.len() {
            // Under at-least-once, the offsets each partition's state will count: from
            // the first read since assignment to the next to commit.
            let marks = if self.eos {
                Vec::new()
            } else {
                self.pending
                    .iter()
                    .filter(|(p, _)| self.worker_of(**p) == w)
                    .filter_map(|(p, next)| Some((*p, *self.first_read.get(p)?, *next)))
                    .collect()
            };
            self.send_work(
                w,
                Work::Barrier {
                    reply: tx.clone(),
                    marks,
                },
            );
        }
        drop(tx);
        let slot = epoch_slot(self.epoch);
        let mut ack = Cut {
            send_errors: 0,
            slot,
            reports: 0,
        };
        let mut answered = 0;
        for a in rx.iter() {
            answered += 1;
            ack.send_errors += a.send_errors;
            self.queued[slot] += a.queued;
        }
        ack.reports = self.queued[slot];
        self.epoch += 1;
        // A worker that did not answer has died with records of its partitions unjudged:
        // their offsets must not commit. Abort, and end the engine (a restart restores).
        if answered < self.workers.len() {
            ack.send_errors += 1;
            self.fatal.get_or_insert_with(|| {
                format!(
                    "{} of {} worker threads stopped; not committing",
                    self.workers.len() - answered,
                    self.workers.len()
                )
            });
        }
        ack
    }

    fn offsets(&self, next: &BTreeMap<i32, i64>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (p, o) in next {
            // Adding a partition to a fresh list cannot fail.
            let _ = tpl.add_partition_offset(&self.cfg.topics.submissions, *p, Offset::Offset(*o));
        }
        tpl
    }

    /// At-least-once, every commit interval: cuts a checkpoint at a barrier of the
    /// workers and returns to fetching; [`Core::advance`] commits it once its outputs are
    /// acknowledged. With `EPOCH_SLOTS - 1` checkpoints waiting already (the broker slow
    /// to acknowledge), commits in full instead, waiting for every output.
    fn checkpoint<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        self.last_commit = Instant::now();
        self.advance(consumer);
        if !self.dirty {
            return;
        }
        if self.checkpoints.len() >= EPOCH_SLOTS - 1 {
            return self.commit(consumer);
        }
        let cut_at = Instant::now();
        let cut = self.barrier();
        if cut.send_errors > 0 {
            self.metrics.commit_time.observe(cut_at.elapsed());
            tracing::warn!(
                send_errors = cut.send_errors,
                "outputs could not be queued; rewinding to the last committed offsets"
            );
            return self.recover(consumer, &KafkaError::Canceled);
        }
        self.checkpoints.push_back(Checkpoint {
            slot: cut.slot,
            reports: cut.reports,
            next: std::mem::take(&mut self.pending),
            since_ms: self.dirty_since_ms,
            cut_at,
            barrier: cut_at.elapsed(),
        });
        self.dirty = false;
    }

    /// At-least-once: commits the offsets of the oldest checkpoints whose outputs have
    /// all been reported. If an output failed since the last commit, or the oldest
    /// checkpoint's outputs are not all reported within `processing.kafka_timeout_ms`,
    /// rewinds instead.
    fn advance<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let Some(oldest) = self.checkpoints.front() else {
            return;
        };
        let oldest_cut = oldest.cut_at;
        let reported = self
            .checkpoints
            .iter()
            .take_while(|c| self.sink.deliveries.reports(c.slot) >= c.reports)
            .count();
        // Read after the reports: a failure among them is counted before it is reported.
        let failures = self.metrics.delivery_failures.load(SeqCst);
        let failed = failures != self.delivery_failures_seen;
        if failed || (reported == 0 && oldest_cut.elapsed() > self.timeout()) {
            self.delivery_failures_seen = failures;
            self.metrics.commit_time.observe(oldest_cut.elapsed());
            tracing::warn!(
                failed,
                "outputs failed or not acknowledged within processing.kafka_timeout_ms; rewinding to the last committed offsets"
            );
            let error = if failed {
                KafkaError::Canceled
            } else {
                KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)
            };
            return self.recover(consumer, &error);
        }
        if reported == 0 {
            return;
        }
        let t0 = Instant::now();
        let mut span = crate::telemetry::spans().map(|s| s.commit(false));
        let done: Vec<Checkpoint> = self.checkpoints.drain(..reported).collect();
        let next = next_offsets(&done);
        let tpl = self.offsets(&next);
        let result = if tpl.count() == 0 {
            Ok(())
        } else {
            consumer.commit(&tpl, CommitMode::Sync)
        };
        self.metrics.commit_time.observe(done[0].cut_at.elapsed());
        end_span(&mut span, &tpl, &result);
        match result {
            Ok(()) => {
                tracing::debug!(barrier = ?done[0].barrier, acknowledged = ?t0 - done[0].cut_at, commit = ?t0.elapsed(), checkpoints = done.len(), partitions = tpl.count(), "committed");
                self.committed(&next);
                let since = match self.checkpoints.front() {
                    Some(c) => c.since_ms,
                    None if self.dirty => self.dirty_since_ms,
                    None => 0,
                };
                self.metrics.uncommitted_since_ms.store(since, Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "offset commit failed; rewinding to the last committed offsets");
                self.recover(consumer, &e);
            }
        }
    }

    /// Bookkeeping after offsets `next` were committed.
    fn committed(&mut self, next: &BTreeMap<i32, i64>) {
        if !self.output_tries.is_empty() {
            self.output_tries
                .retain(|(p, o), _| next.get(p).is_none_or(|n| o >= n));
        }
        self.metrics.commits.fetch_add(1, Relaxed);
    }

    /// Commits everything processed so far: one transaction under exactly-once; under
    /// at-least-once a flush of every output then a synchronous commit of the offsets of
    /// every checkpoint and the records since. On failure, rewinds instead.
    fn commit<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        self.last_commit = Instant::now();
        if !self.dirty && !self.txn_open && self.checkpoints.is_empty() {
            return;
        }
        let t0 = Instant::now();
        let mut span = crate::telemetry::spans().map(|s| s.commit(self.eos));
        let ack = self.barrier();
        let barrier_took = t0.elapsed();
        let producer = self.producer.get();
        let mut next = next_offsets(&self.checkpoints);
        next.extend(&self.pending);
        let tpl = self.offsets(&next);
        // An output that failed loses the commit (under exactly-once librdkafka refuses
        // to commit the transaction; under at-least-once the offsets must not pass it),
        // so the flush stops waiting as soon as one does.
        let seen = self.delivery_failures_seen;
        let failures = &self.metrics.delivery_failures;
        let failed = || failures.load(SeqCst) != seen;
        let flushed = if ack.send_errors > 0 {
            Err(KafkaError::Canceled)
        } else {
            match crate::kafka::flush_unless(&producer, self.timeout(), failed) {
                Ok(()) if failed() => Err(KafkaError::Canceled),
                other => other,
            }
        };
        self.delivery_failures_seen = failures.load(SeqCst);
        let flush_took = t0.elapsed() - barrier_took;
        let result: Result<(), KafkaError> = if self.eos {
            match (flushed, consumer.group_metadata()) {
                (Err(e), _) => Err(e),
                (Ok(()), None) => Err(KafkaError::Canceled),
                (Ok(()), Some(gm)) => {
                    self.fault_point(CommitPoint::Flushed);
                    let r = producer
                        .send_offsets_to_transaction(&tpl, &gm, self.timeout())
                        .and_then(|()| commit_with_retry(&producer, || self.timeout()));
                    if r.is_ok() {
                        self.fault_point(CommitPoint::Committed);
                    }
                    r
                }
            }
        } else {
            match flushed {
                Err(e) => Err(e),
                Ok(()) if tpl.count() == 0 => Ok(()),
                // A synchronous commit has no timeout of its own: when shutting down it
                // is sent and not waited for (at worst the next owner redoes the records).
                Ok(()) if self.shutdown_deadline.is_some() => {
                    consumer.commit(&tpl, CommitMode::Async)
                }
                Ok(()) => consumer.commit(&tpl, CommitMode::Sync),
            }
        };
        self.metrics.commit_time.observe(t0.elapsed());
        end_span(&mut span, &tpl, &result);
        match result {
            Ok(()) => {
                tracing::debug!(barrier = ?barrier_took, flush = ?flush_took, total = ?t0.elapsed(), partitions = tpl.count(), "committed");
                self.committed(&next);
                self.metrics.uncommitted_since_ms.store(0, Relaxed);
                self.checkpoints.clear();
                self.pending.clear();
                self.dirty = false;
                self.txn_open = false;
            }
            Err(e) => {
                tracing::warn!(error = %e, send_errors = ack.send_errors, "commit failed; rewinding to the last committed offsets");
                self.recover(consumer, &e);
            }
        }
    }

    /// Debug builds: aborts the process here when the fault tests ask for it.
    fn fault_point(&self, _point: CommitPoint) {
        #[cfg(debug_assertions)]
        if let Some(a) = &self.abort_in_commit {
            a.at(_point, self.metrics.commits.load(Relaxed));
        }
    }

    /// Aborts the open transaction (recreating a fatally failed producer) and rewinds. A
    /// producer fenced by another live instance with the same transactional id ends the
    /// engine instead: recreating it would fence the other one in turn, for ever.
    fn recover<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, error: &KafkaError) {
        self.metrics.aborts.fetch_add(1, Relaxed);
        self.charge_failed_outputs();
        if self.eos {
            let code = match error {
                KafkaError::Transaction(e) => Some(e.code()),
                _ => None,
            };
            let producer = self.producer.get();
            let fenced = |p: &OutProducer| {
                let fatal_code = p.client().fatal_error().map(|(c, _)| c);
                code.into_iter().chain(fatal_code).any(is_fenced)
            };
            let fatal = matches!(error, KafkaError::Transaction(e) if e.is_fatal());
            // The fence can show only after the failed call (an EndTxn that failed with
            // an unknown error, then the fatal fencing): asked again after the abort, and
            // before a new producer would fence the other instance in turn.
            let aborted =
                !fenced(&producer) && !fatal && producer.abort_transaction(self.timeout()).is_ok();
            if fenced(&producer) {
                self.fatal = Some(format!(
                    "this instance's producer was fenced: another live instance uses transactional id {:?} \
                     (derived from kafka.transactional_id or kafka.group_instance_id, which must be unique \
                     per live instance); exiting so that only one of them writes",
                    self.cfg.transactional_id()
                ));
                self.txn_open = false;
                self.dirty = false;
                self.pending.clear();
                return;
            }
            if !aborted && self.shutdown_deadline.is_none() {
                self.recreate_producer();
            }
        }
        self.txn_open = false;
        self.dirty = false;
        self.pending.clear();
        self.checkpoints.clear();
        if self.shutdown_deadline.is_none() {
            self.rewind(consumer);
        }
    }

    /// Counts a try against each input record whose outputs failed with an error of
    /// their own in the commit being recovered. A record at [`UNPRODUCIBLE_TRIES`] goes
    /// to the DLQ when it comes round again. When more than [`MOST_CHARGED`] records
    /// failed at once, the fault is the topic's or the broker's (a size limit below the
    /// producer's batches, say), not theirs: nothing is counted, and the stall shows in
    /// `/healthz`.
    fn charge_failed_outputs(&mut self) {
        let failed = self.sink.failed.take();
        if failed.len() > MOST_CHARGED {
            tracing::warn!(
                records = failed.len(),
                "outputs of many records were refused at once: not charged to the records"
            );
            return;
        }
        for ((p, o), error) in failed {
            let tries = self.output_tries.entry((p, o)).or_insert(0);
            *tries += 1;
            tracing::warn!(partition = p, offset = o, tries = *tries, %error, "outputs of a record refused");
            if *tries >= UNPRODUCIBLE_TRIES {
                self.output_tries.remove(&(p, o));
                let w = self.worker_of(p);
                self.send_work(
                    w,
                    Work::Poison {
                        partition: p,
                        offset: o,
                        error,
                    },
                );
            }
        }
    }

    fn abort_and_rewind<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, why: &str) {
        if !self.dirty && !self.txn_open && self.checkpoints.is_empty() {
            return;
        }
        tracing::warn!(why, "aborting the open transaction");
        let _ = self.barrier();
        self.recover(consumer, &KafkaError::Canceled);
    }

    fn recreate_producer(&mut self) {
        // Workers are idle here (after a barrier or before any dispatch).
        match make_producer(&self.cfg, &self.brokers, &self.sink, &self.stop) {
            Ok(Some(p)) => {
                self.producer.set(p);
                self.metrics.producer_recreated.fetch_add(1, Relaxed);
                tracing::warn!("producer recreated after a fatal error");
            }
            Ok(None) => {}
            Err(e) => self.fatal = Some(format!("cannot recreate the producer: {e:#}")),
        }
    }

    /// Seeks every owned partition back to its committed offset and rebuilds the state
    /// of every owned partition from the changelog, undoing what the aborted
    /// transaction processed.
    fn rewind<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        for b in &mut self.batches {
            b.clear();
        }
        let owned: Vec<i32> = self.owned.iter().copied().collect();
        if owned.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for p in &owned {
            let _ = tpl.add_partition(&self.cfg.topics.submissions, *p);
        }
        let (t, stop) = (self.timeout(), self.stop.clone());
        let retried = &self.metrics.kafka_retries;
        let committed = match retry(
            "reading committed offsets",
            RETRIES,
            RETRY_FIRST_WAIT,
            &stop,
            retried,
            || consumer.committed_offsets(tpl.clone(), t),
        ) {
            Ok(c) => c,
            Err(e) => {
                self.fatal = Some(format!("cannot read committed offsets to rewind: {e}"));
                return;
            }
        };
        for e in committed.elements() {
            let to = match (e.offset(), self.first_read.get(&e.partition())) {
                (Offset::Offset(o), _) => Offset::Offset(o),
                // Nothing committed yet: back to where reading started after assignment.
                (_, Some(&first)) => Offset::Offset(first),
                // Nothing read either: where the reset policy says.
                _ if self.cfg.auto_offset_reset() == "latest" => Offset::End,
                _ => Offset::Beginning,
            };
            let seek = || consumer.seek(e.topic(), e.partition(), to, t);
            if let Err(err) = retry(
                "seeking back",
                RETRIES,
                RETRY_FIRST_WAIT,
                &stop,
                retried,
                seek,
            ) {
                self.fatal = Some(format!(
                    "cannot seek {}[{}] back to {to:?}: {err}",
                    e.topic(),
                    e.partition()
                ));
                return;
            }
        }
        for p in &owned {
            self.restores.cancel(*p);
            self.resume_at.remove(p);
            let w = self.worker_of(*p);
            self.send_work(w, Work::Revoke { partition: *p });
        }
        self.assign(consumer, &owned);
    }

    /// Takes `parts` on: empty state, and with stateful operators the partition paused
    /// while a restore thread streams its changelog to the worker.
    fn assign<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>, parts: &[i32]) {
        for &p in parts {
            self.owned.insert(p);
            let w = self.worker_of(p);
            self.send_work(w, Work::Assign { partition: p });
            if !self.has_state {
                continue;
            }
            if let Err(e) = consumer.pause(&self.one(p)) {
                self.fatal = Some(format!("cannot pause partition {p} for its restore: {e}"));
                return;
            }
            if let Err(e) = self.restores.start(p, self.workers[w].tx.clone()) {
                self.fatal = Some(format!("cannot start the restore of partition {p}: {e}"));
                return;
            }
        }
        self.update_gauges();
    }

    /// Resumes the partitions whose restore ended; a restore that failed for good ends
    /// the engine (a restart tries again).
    fn resume_restored<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        for f in self.restores.finished() {
            let p = f.partition;
            match f.result {
                Ok(records) => {
                    tracing::info!(partition = p, records, took = ?f.took, "state restored");
                    self.metrics.restore_time.observe(f.took);
                    // A seek before the partition's fetcher has started (its committed
                    // offset still being read) fails with a state error that heals.
                    let resumed = consumer.resume(&self.one(p)).and_then(|()| {
                        match self.resume_at.remove(&p) {
                            Some(o) => retry(
                                "seeking a restored partition",
                                RETRIES,
                                RETRY_FIRST_WAIT,
                                &self.stop,
                                &self.metrics.kafka_retries,
                                || {
                                    consumer.seek(
                                        &self.cfg.topics.submissions,
                                        p,
                                        Offset::Offset(o),
                                        self.timeout(),
                                    )
                                },
                            ),
                            None => Ok(()),
                        }
                    });
                    if let Err(e) = resumed {
                        self.fatal = Some(format!(
                            "cannot resume partition {p} after its restore: {e}"
                        ));
                    }
                }
                Err(e) => {
                    self.fatal = Some(format!("cannot restore state of partition {p}: {e}"));
                }
            }
        }
        self.update_gauges();
    }

    /// A list of one input partition.
    fn one(&self, p: i32) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        // Adding a partition to a fresh list cannot fail.
        let _ = tpl.add_partition(&self.cfg.topics.submissions, p);
        tpl
    }

    fn update_gauges(&self) {
        self.metrics
            .assigned_partitions
            .store(self.owned.len() as i64, Relaxed);
        self.metrics
            .restoring_partitions
            .store(self.restores.count() as i64, Relaxed);
    }

    fn revoke(&mut self, parts: &[i32]) {
        for &p in parts {
            self.pending.remove(&p);
            self.first_read.remove(&p);
            self.resume_at.remove(&p);
            self.restores.cancel(p);
            if self.owned.remove(&p) {
                let w = self.worker_of(p);
                self.send_work(w, Work::Revoke { partition: p });
            }
        }
        self.update_gauges();
    }
}

/// The end of an epoch: the workers' barrier.
struct Cut {
    /// Outputs that could not be queued (nothing up to here may commit).
    send_errors: u64,
    /// The epoch's slot, and the reports in it that mean all its outputs were reported.
    slot: usize,
    reports: u64,
}

/// An at-least-once checkpoint: the offsets processed up to a barrier, to commit once
/// every output queued before it has been reported.
struct Checkpoint {
    slot: usize,
    reports: u64,
    /// Next offset to commit per partition with records in it.
    next: BTreeMap<i32, i64>,
    /// When its oldest record was read (`metrics::mono_ms`).
    since_ms: u64,
    cut_at: Instant,
    barrier: Duration,
}

/// The next offset to commit per partition after `checkpoints` (oldest first).
fn next_offsets<'a>(checkpoints: impl IntoIterator<Item = &'a Checkpoint>) -> BTreeMap<i32, i64> {
    checkpoints
        .into_iter()
        .flat_map(|c| &c.next)
        .map(|(p, o)| (*p, *o))
        .collect()
}

/// Ends a commit's span, if tracing is on.
fn end_span(
    span: &mut Option<opentelemetry_sdk::trace::Span>,
    tpl: &TopicPartitionList,
    result: &Result<(), KafkaError>,
) {
    use opentelemetry::trace::Span as _;
    if let Some(span) = span {
        span.set_attribute(opentelemetry::KeyValue::new(
            "spamflow.partitions",
            tpl.count() as i64,
        ));
        if let Err(e) = result {
            span.set_status(opentelemetry::trace::Status::error(e.to_string()));
        }
        span.end();
    }
}

/// Commits a record's outputs may fail, with an error of their own, before the record
/// goes to the DLQ as `unproducible`.
pub const UNPRODUCIBLE_TRIES: u32 = 3;

/// The most records whose outputs may fail in one commit for the failures to be charged
/// to them.
const MOST_CHARGED: usize = 4;

/// Tries of a Kafka call that fails with an error that can heal, and the first wait
/// between them (doubling: 0.2 + 0.4 + 0.8 + 1.6 s).
const RETRIES: u32 = 5;
const RETRY_FIRST_WAIT: Duration = Duration::from_millis(200);

/// Whether `code` says another producer with our transactional id took over.
fn is_fenced(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced
    )
}

/// `commit_transaction`, retried while librdkafka says the error is retriable. The
/// outputs are flushed before (rdkafka's commit_transaction flushes first with its own
/// flush, which waits in steps of up to 100 ms, see `kafka::flush`; after ours it finds
/// nothing to wait for).
fn commit_with_retry(
    producer: &OutProducer,
    timeout: impl Fn() -> Duration,
) -> Result<(), KafkaError> {
    let mut attempts = 0;
    loop {
        match producer.commit_transaction(timeout()) {
            Err(KafkaError::Transaction(e)) if e.is_retriable() && attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_start_one_interval_apart_and_a_slow_one_leaves_a_quarter_for_fetching() {
        let every = Duration::from_millis(100);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        // A 12 ms commit: the next is due 100 ms after this one started.
        assert_eq!(next_commit_due(t0, ms(12), every), ms(100));
        // One that took the whole interval or more: fetching still gets 25 ms.
        assert_eq!(next_commit_due(t0, ms(90), every), ms(115));
        assert_eq!(next_commit_due(t0, ms(400), every), ms(425));
    }
}
