//! Worker threads: decode, run the operator chain, produce outputs.
//!
//! Each input partition is owned by exactly one worker (`partition % workers`), so the
//! per-partition state needs no lock and events of one partition stay in offset order.
//! CPU work runs here, never on the consumer thread or a tokio I/O thread.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use chrono::Utc;
use crossbeam_channel::{Receiver, Sender};
use rdkafka::message::Header;
use rdkafka::producer::BaseRecord;
use sha2::{Digest, Sha256};
use spamflow_operators::{Chain, ChainBuilder, EventCtx, SideRecord, StateUpdate};
use spamflow_schemas::{decode_submission, DlqError, DlqErrorKind, DlqRecord, SubmissionEvent};

use crate::config::TopicsConfig;
use crate::kafka::{output_tag, send_with_backpressure, FailedOutputs, OutProducer};
use crate::metrics::{LocalTally, Metrics};
use crate::runtime::changelog::{self, ChangelogRecord};
use crate::telemetry::{self, TraceParent, TRACEPARENT};

/// One input record, detached from the consumer.
#[derive(Debug, Clone)]
pub struct InMsg {
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Original key.
    pub key: Option<Vec<u8>>,
    /// Original value.
    pub payload: Option<Vec<u8>>,
    /// The W3C trace context in its `traceparent` header, if it has a valid one.
    pub trace: Option<TraceParent>,
}

/// What the engine asks of a worker.
pub enum Work {
    /// Process these records of one partition, in order.
    Batch(Vec<InMsg>),
    /// The partition is now owned: start with empty state.
    Assign { partition: i32 },
    /// Apply these changelog records of an owned partition (a chunk of its restore).
    Restore {
        partition: i32,
        records: Vec<ChangelogRecord>,
    },
    /// The partition is no longer owned: drop its state.
    Revoke { partition: i32 },
    /// The outputs of this input record could not be produced however often it was tried:
    /// from now on it goes to the DLQ as `unproducible`, with `error`.
    Poison {
        partition: i32,
        offset: i64,
        error: String,
    },
    /// Finish everything queued before this, write the changelog of changed state for
    /// the owned partitions, and reply. Under at-least-once, `marks` holds the input
    /// offsets `(partition, first, next)` processed since the partition was assigned, for
    /// the partitions with records since the last commit (see
    /// [`changelog::INPUT_MARK`]); under exactly-once it is empty.
    Barrier {
        /// Where to answer.
        reply: Sender<BarrierAck>,
        /// The input offsets each partition's state will count.
        marks: Vec<(i32, i64, i64)>,
    },
}

/// A worker's answer to a barrier.
#[derive(Debug, Default, Clone, Copy)]
pub struct BarrierAck {
    /// Output records that could not be queued (the commit must not proceed).
    pub send_errors: u64,
    /// Output records queued in the epoch this barrier ends.
    pub queued: u64,
}

/// What a worker queued in the current epoch (the outputs since its last barrier).
#[derive(Debug, Default)]
struct Epoch {
    /// Barriers passed so far: the number of this epoch.
    number: u64,
    queued: u64,
    send_errors: u64,
}

/// The shared output producer, swappable when a fatal error forces a new one. Workers
/// take the current one per batch; the engine swaps only while all workers are idle at
/// a barrier, so no batch straddles two producers.
#[derive(Clone)]
pub struct SharedProducer(Arc<RwLock<Arc<OutProducer>>>);

impl SharedProducer {
    /// Wraps a producer.
    pub fn new(p: OutProducer) -> Self {
        SharedProducer(Arc::new(RwLock::new(Arc::new(p))))
    }
    /// The current producer.
    pub fn get(&self) -> Arc<OutProducer> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Replaces the producer.
    pub fn set(&self, p: OutProducer) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
    }
}

/// Handle to one worker thread.
pub struct WorkerHandle {
    /// Work queue.
    pub tx: Sender<Work>,
    join: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// Closes the queue and waits for the thread.
    pub fn stop(mut self) {
        drop(self.tx);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Everything a worker needs.
pub struct WorkerEnv {
    /// Operator chain builder (each worker builds its own chain).
    pub chain: ChainBuilder,
    /// Output producer.
    pub producer: SharedProducer,
    /// Topic names.
    pub topics: Arc<TopicsConfig>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Input records above this size go to the DLQ.
    pub max_message_bytes: usize,
    /// Where failures of an output's own are charged to its input record.
    pub failed: Arc<FailedOutputs>,
    /// Outputs go in one transaction per commit interval.
    pub exactly_once: bool,
}

/// Starts `n` workers.
pub fn spawn(n: usize, env: Arc<WorkerEnv>) -> std::io::Result<Vec<WorkerHandle>> {
    (0..n)
        .map(|i| {
            // Bounded so a slow worker pushes back on the consumer instead of buffering
            // without limit.
            let (tx, rx) = crossbeam_channel::bounded(256);
            let env = env.clone();
            let join = std::thread::Builder::new()
                .name(format!("spamflow-worker-{i}"))
                .spawn(move || Worker::new(env).run(rx))?;
            Ok(WorkerHandle {
                tx,
                join: Some(join),
            })
        })
        .collect()
}

struct Worker {
    env: Arc<WorkerEnv>,
    chain: Chain,
    owned: Vec<i32>,
    tally: LocalTally,
    buf: Vec<u8>,
    state_buf: Vec<StateUpdate>,
    epoch: Epoch,
    /// Input records (partition, offset) whose outputs cannot be produced, and why.
    poison: HashMap<(i32, i64), String>,
    /// Per partition, the offsets `[first, next)` its restored state already counts,
    /// until a record outside them comes.
    counted: HashMap<i32, (i64, i64)>,
    /// Per partition, the last statistics record it published under exactly-once (key,
    /// value). Read only in a later transaction, once that one committed: a failed commit
    /// revokes and assigns every partition again, which forgets it.
    published: HashMap<i32, (Vec<u8>, Vec<u8>)>,
    /// Whether this epoch's transaction has been joined ([`Worker::join_transaction`]).
    joined: bool,
}

impl Worker {
    fn new(env: Arc<WorkerEnv>) -> Self {
        let chain = env.chain.build();
        let tally = LocalTally::new(&env.metrics);
        Worker {
            env,
            chain,
            owned: Vec::new(),
            tally,
            buf: Vec::with_capacity(1024),
            state_buf: Vec::new(),
            epoch: Epoch::default(),
            poison: HashMap::new(),
            counted: HashMap::new(),
            published: HashMap::new(),
            joined: false,
        }
    }

    fn run(mut self, rx: Receiver<Work>) {
        for work in rx {
            match work {
                Work::Batch(msgs) => {
                    let started = std::time::Instant::now();
                    let span = telemetry::spans()
                        .zip(msgs.first())
                        .map(|(s, m)| s.batch(m.partition, msgs.len()));
                    let producer = self.env.producer.get();
                    if !self.joined {
                        self.join_transaction(&producer);
                        self.joined = true;
                    }
                    for m in msgs.iter() {
                        let event = self.decode(m);
                        self.process(&producer, m, event);
                    }
                    self.tally.flush(&self.env.metrics);
                    self.env.metrics.batch_time.observe(started.elapsed());
                    if let Some(mut span) = span {
                        opentelemetry::trace::Span::end(&mut span);
                    }
                }
                Work::Assign { partition } => {
                    self.counted.remove(&partition);
                    self.published.remove(&partition);
                    self.chain.assigned(partition);
                    if !self.owned.contains(&partition) {
                        self.owned.push(partition);
                    }
                }
                Work::Restore { partition, records } => {
                    let mut applied = 0u64;
                    for r in &records {
                        if r.operator == changelog::INPUT_MARK {
                            self.restore_input_mark(partition, r.value.as_deref());
                            continue;
                        }
                        match self
                            .chain
                            .restore(partition, &r.operator, &r.key, r.value.as_deref())
                        {
                            Ok(true) => applied += 1,
                            Ok(false) => {}
                            Err(e) => {
                                tracing::warn!(partition, error = %e, "skipping changelog record that does not restore")
                            }
                        }
                    }
                    self.env
                        .metrics
                        .restored_records
                        .fetch_add(applied, std::sync::atomic::Ordering::Relaxed);
                }
                Work::Revoke { partition } => {
                    self.counted.remove(&partition);
                    self.published.remove(&partition);
                    self.chain.revoked(partition);
                    self.owned.retain(|p| *p != partition);
                }
                // Kept when the partition goes: an offset names the same record for ever.
                Work::Poison {
                    partition,
                    offset,
                    error,
                } => {
                    self.poison.insert((partition, offset), error);
                }
                Work::Barrier { reply, marks } => {
                    let producer = self.env.producer.get();
                    self.write_changelog(&producer, &marks);
                    self.tally.flush(&self.env.metrics);
                    let _ = reply.send(BarrierAck {
                        send_errors: std::mem::take(&mut self.epoch.send_errors),
                        queued: std::mem::take(&mut self.epoch.queued),
                    });
                    self.epoch.number += 1;
                    self.joined = false;
                }
            }
        }
    }

    /// Under exactly-once, with the epoch's first batch (the first in a new transaction):
    /// makes the partitions the barrier will write state to join the transaction now, so
    /// that the barrier's records go straight to the broker instead of waiting inside the
    /// commit for librdkafka to add their partitions (AddPartitionsToTxn, a round trip to
    /// the transaction coordinator). For each owned partition: a tombstone of its input
    /// mark in its changelog partition (it restores as "no mark", which is what
    /// exactly-once has anyway), and the statistics record it last published, again (the
    /// value already on that compacted topic for that key, so a reader sees nothing new).
    fn join_transaction(&mut self, producer: &OutProducer) {
        if !self.env.exactly_once || !self.chain.has_state() {
            return;
        }
        let topics = &*self.env.topics;
        let mut out = Sink::unattributed(producer, &self.env.failed, &mut self.epoch);
        for &p in &self.owned {
            let key = changelog::encode_key(p, changelog::INPUT_MARK, &[]);
            out.send(
                BaseRecord::with_opaque_to(&topics.changelog, 0)
                    .partition(p)
                    .key(key.as_slice()),
            );
            if let Some((key, value)) = self.published.get(&p) {
                out.send(
                    BaseRecord::with_opaque_to(&topics.operator_stats, 0)
                        .partition(p)
                        .key(key.as_slice())
                        .payload(value.as_slice()),
                );
            }
        }
    }

    fn restore_input_mark(&mut self, partition: i32, value: Option<&[u8]>) {
        match value.map(changelog::decode_input_mark) {
            Some(Some(window)) => {
                self.counted.insert(partition, window);
            }
            None => {
                self.counted.remove(&partition);
            }
            Some(None) => {
                tracing::warn!(partition, "skipping an input mark that does not decode")
            }
        }
    }

    /// Whether the restored state already counts record `m` (a replay after a crash or a
    /// failed offset commit under at-least-once). The first record outside the counted
    /// offsets ends them; one below them means the offsets started again (a recreated
    /// topic) and the mark no longer applies.
    fn replayed(&mut self, m: &InMsg) -> bool {
        if self.counted.is_empty() {
            return false;
        }
        match self.counted.get(&m.partition) {
            Some(&(first, next)) if (first..next).contains(&m.offset) => true,
            Some(_) => {
                self.counted.remove(&m.partition);
                false
            }
            None => false,
        }
    }

    /// The record's event, or why it goes to the DLQ.
    fn decode(&self, m: &InMsg) -> Result<SubmissionEvent, DlqError> {
        let payload = m.payload.as_deref().unwrap_or_default();
        if let Some(error) = self.poison.get(&(m.partition, m.offset)) {
            Err(DlqError {
                kind: DlqErrorKind::Unproducible,
                code: "unproducible",
                message: format!(
                    "its outputs could not be produced in {} tries: {error}",
                    crate::runtime::engine::UNPRODUCIBLE_TRIES
                ),
            })
        } else if payload.len() > self.env.max_message_bytes {
            Err(DlqError {
                kind: DlqErrorKind::Oversized,
                code: "oversized",
                message: format!(
                    "record is {} bytes, processing.max_message_bytes is {}",
                    payload.len(),
                    self.env.max_message_bytes
                ),
            })
        } else {
            decode_submission(payload).map_err(|e| DlqError {
                kind: DlqErrorKind::Decode,
                code: e.code(),
                message: e.to_string(),
            })
        }
    }

    fn process(
        &mut self,
        producer: &OutProducer,
        m: &InMsg,
        event: Result<SubmissionEvent, DlqError>,
    ) {
        self.tally.consumed();
        let counted = self.replayed(m);
        let span =
            telemetry::spans().and_then(|s| s.message(m.trace.as_ref(), m.partition, m.offset));
        // The outputs continue the input's trace: under this message's span if it has one.
        let trace = span
            .as_ref()
            .map(telemetry::MessageSpan::traceparent)
            .or(m.trace);
        let event = match event {
            Ok(ev) => ev,
            Err(error) => {
                if let Some(span) = span {
                    span.end(None, Err(error.code));
                }
                return self.dead_letter(producer, m, error, trace);
            }
        };
        // A panic in an operator is a bug; it must cost one record, not the worker and
        // with it the offsets of records that got no verdict. The panic hook logs where
        // it happened, never the message (`main.rs`).
        let judged = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.judge(producer, m, &event, counted, trace)
        }));
        match judged {
            Ok(decision) => {
                if let Some(span) = span {
                    span.end(Some(&event.message_id), Ok(decision));
                }
            }
            Err(_) => {
                let error = DlqError {
                    kind: DlqErrorKind::Internal,
                    code: "internal_error",
                    message:
                        "processing this record panicked (a bug in spamflow; the log has where)"
                            .into(),
                };
                if let Some(span) = span {
                    span.end(Some(&event.message_id), Err(error.code));
                }
                self.dead_letter(producer, m, error, trace);
            }
        }
    }

    /// Runs the chain on `event` and sends its verdict, block record and alert (with
    /// `trace` as their `traceparent`); returns the action and score.
    fn judge(
        &mut self,
        producer: &OutProducer,
        m: &InMsg,
        event: &SubmissionEvent,
        counted: bool,
        trace: Option<TraceParent>,
    ) -> (spamflow_schemas::Action, u8) {
        let sender = self.chain.sender(&event.sender);
        let ctx = EventCtx {
            event,
            sender: &sender,
            partition: m.partition,
            event_time_ms: event.event_time_ms(),
            counted,
        };
        let now = Utc::now();
        let verdict = self.chain.process(&ctx, now);
        let age_us = (now - event.submitted_at)
            .num_microseconds()
            .unwrap_or(0)
            .max(0) as u64;
        self.tally.verdict(verdict.action, age_us);
        self.buf.clear();
        // Serializing our own types cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &verdict);
        let topics = &*self.env.topics;
        let key = verdict.message_id.as_bytes();
        let mut out = Sink {
            producer,
            failed: &self.env.failed,
            epoch: &mut self.epoch,
            record: Some((m.partition, m.offset)),
            trace: trace.map(|t| t.header()),
        };
        out.send(
            BaseRecord::with_opaque_to(&topics.verdicts, 0)
                .key(key)
                .payload(&self.buf),
        );
        if verdict.action.is_enforced() {
            out.send(
                BaseRecord::with_opaque_to(&topics.block, 0)
                    .key(key)
                    .payload(&self.buf),
            );
        }
        // The chain's policy is the builder's (one `Arc`); the verdict borrows the chain.
        if let Some(alert) = self.env.chain.policy().alert(&verdict) {
            self.tally.alert();
            let body = serde_json::to_vec(&alert).unwrap_or_default();
            out.send(
                BaseRecord::with_opaque_to(&topics.alerts, 0)
                    .key(alert.recipient.as_bytes())
                    .payload(&body),
            );
        }
        (verdict.action, verdict.score)
    }

    fn dead_letter(
        &mut self,
        producer: &OutProducer,
        m: &InMsg,
        error: DlqError,
        trace: Option<TraceParent>,
    ) {
        self.tally.dlq(error.code);
        // Offsets and error codes only: the payload may be a private message.
        tracing::debug!(
            partition = m.partition,
            offset = m.offset,
            code = error.code,
            trace_id = trace.map(|t| t.trace_id_hex()),
            "record to DLQ"
        );
        let mut rec = DlqRecord {
            key: m.key.clone(),
            payload: m.payload.clone(),
            error,
            source_topic: self.env.topics.submissions.clone(),
            source_partition: m.partition,
            source_offset: m.offset,
            failed_at: Utc::now(),
            truncation: None,
        };
        // A payload the producer would refuse would fail every commit from here on.
        rec.truncate_payload(|p| hex::encode(Sha256::digest(p)));
        let topics = &*self.env.topics;
        let mut r: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&topics.dlq, 0).headers(crate::kafka::dlq_headers(&rec));
        if let Some(k) = &rec.key {
            r = r.key(k.as_slice());
        }
        if let Some(p) = &rec.payload {
            r = r.payload(p.as_slice());
        }
        Sink {
            producer,
            failed: &self.env.failed,
            epoch: &mut self.epoch,
            record: Some((m.partition, m.offset)),
            trace: trace.map(|t| t.header()),
        }
        .send(r);
    }

    fn write_changelog(&mut self, producer: &OutProducer, marks: &[(i32, i64, i64)]) {
        if !self.chain.has_state() {
            return;
        }
        let env = self.env.clone();
        let topics = &*env.topics;
        let owned = self.owned.clone();
        let mut buf = std::mem::take(&mut self.state_buf);
        // (partition, changelog key, update, whether it is also published as statistics)
        let mut pending: Vec<(i32, Vec<u8>, StateUpdate, bool)> = Vec::new();
        let mut side = Vec::new();
        for p in owned {
            // Side records first: making them may change state (a late alert forgets the
            // delivery it warns about), and that change goes in the same transaction.
            self.chain.side_records(p, &mut side);
            self.chain.snapshot(p, &mut buf, |op, u, publish| {
                pending.push((p, changelog::encode_key(p, op, &u.key), u, publish))
            });
            // After the partition's state, in its changelog partition: a mark that arrived
            // means the state before it did too.
            if let Some(&(_, first, next)) = marks.iter().find(|m| m.0 == p) {
                let mark = self.input_mark(p, first, next);
                let update = StateUpdate {
                    key: Vec::new(),
                    value: Some(mark),
                };
                let key = changelog::encode_key(p, changelog::INPUT_MARK, &[]);
                pending.push((p, key, update, false));
            }
        }
        self.state_buf = buf;
        self.tally.changelog(pending.len() as u64);
        let mut out = Sink::unattributed(producer, &self.env.failed, &mut self.epoch);
        for (p, key, StateUpdate { value, .. }, publish) in &pending {
            let mut r: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&topics.changelog, 0)
                    .partition(*p)
                    .key(key.as_slice());
            if let Some(v) = value {
                r = r.payload(v.as_slice());
                // Statistics are published as well, in the same transaction; an hour
                // dropped from memory (a tombstone) stays on the stats topic.
                if *publish {
                    out.send(
                        BaseRecord::with_opaque_to(&topics.operator_stats, 0)
                            .partition(*p)
                            .key(key.as_slice())
                            .payload(v.as_slice()),
                    );
                    if self.env.exactly_once {
                        self.published.insert(*p, (key.clone(), v.clone()));
                    }
                }
            }
            out.send(r);
        }
        // Suspensions (keyed by the normalized number, like every registry record), late
        // alerts (keyed by recipient, like every alert) and campaign contents (by
        // fingerprint).
        for rec in &side {
            let (topic, key, value) = match rec {
                SideRecord::Registry(r) => (&topics.registry, &r.number, serde_json::to_vec(r)),
                SideRecord::Proposal(r) => {
                    (&topics.number_proposals, &r.number, serde_json::to_vec(r))
                }
                SideRecord::Alert(a) => {
                    self.tally.alert();
                    (&topics.alerts, &a.recipient, serde_json::to_vec(a))
                }
                SideRecord::Campaign(c) => (
                    &topics.campaign_contents,
                    &c.fingerprint,
                    serde_json::to_vec(c),
                ),
            };
            out.send(
                BaseRecord::with_opaque_to(topic, 0)
                    .key(key.as_bytes())
                    .payload(value.unwrap_or_default().as_slice()),
            );
        }
    }

    /// The input mark of partition `p`: the offsets `[first, next)` processed since it
    /// was assigned, and those its restored state counted if replaying them has not
    /// ended yet.
    fn input_mark(&self, p: i32, mut first: i64, mut next: i64) -> Vec<u8> {
        if let Some(&(f, n)) = self.counted.get(&p) {
            first = first.min(f);
            next = next.max(n);
        }
        changelog::encode_input_mark(first, next)
    }
}

/// Where a worker's outputs go. The delivery tag (`kafka::output_tag`) is set here.
struct Sink<'a> {
    producer: &'a OutProducer,
    failed: &'a FailedOutputs,
    epoch: &'a mut Epoch,
    /// The input record the outputs are made for, if one.
    record: Option<(i32, i64)>,
    /// The `traceparent` every record gets, if any.
    trace: Option<String>,
}

impl<'a> Sink<'a> {
    /// A sink for records that belong to no one input record (the changelog, side records).
    fn unattributed(
        producer: &'a OutProducer,
        failed: &'a FailedOutputs,
        epoch: &'a mut Epoch,
    ) -> Self {
        Sink {
            producer,
            failed,
            epoch,
            record: None,
            trace: None,
        }
    }

    /// Queues one record; waits for room when the producer queue is full. Any other
    /// error is counted so that the engine refuses to commit and rewinds instead, and
    /// charged to the record's input record when it is the record's own.
    fn send(&mut self, mut rec: BaseRecord<'_, [u8], [u8], usize>) {
        if let Some(t) = &self.trace {
            let h = Header {
                key: TRACEPARENT,
                value: Some(t.as_bytes()),
            };
            rec.headers = Some(rec.headers.take().unwrap_or_default().insert(h));
        }
        let tag = output_tag(self.epoch.number, self.record);
        rec.delivery_opaque = tag;
        if let Err(e) = send_with_backpressure(self.producer, rec) {
            self.epoch.send_errors += 1;
            self.failed.charge(tag, &e);
            // Once per commit: a producer in an error state refuses every record.
            if self.epoch.send_errors == 1 {
                tracing::warn!(error = %e, "cannot queue output record; the commit will be refused and input rewound");
            }
        } else {
            self.epoch.queued += 1;
        }
    }
}
