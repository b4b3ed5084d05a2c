//! Kafka client configuration and topic administration.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::IntoOpaque;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::{Config, Guarantee};
use crate::metrics::Metrics;

/// Base client config: brokers plus the pass-through `kafka.client` settings.
pub fn base_config(cfg: &Config, brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    c.set(
        "client.id",
        format!("spamflow-{}", env!("CARGO_PKG_VERSION")),
    );
    for (k, v) in &cfg.kafka.client {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Base config plus the consumer-only pass-through settings (`kafka.consumer`).
pub fn base_consumer_config(cfg: &Config, brokers: &str) -> ClientConfig {
    let mut c = base_config(cfg, brokers);
    for (k, v) in &cfg.kafka.consumer {
        c.set(k, v);
    }
    c
}

/// A DLQ record's headers ([`spamflow_schemas::DlqRecord::headers`]) as Kafka headers.
pub fn dlq_headers(rec: &spamflow_schemas::DlqRecord) -> rdkafka::message::OwnedHeaders {
    let mut headers = rdkafka::message::OwnedHeaders::new();
    for (k, v) in rec.headers(spamflow_operators::PIPELINE_ID) {
        headers = headers.insert(rdkafka::message::Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    headers
}

/// Config of the input consumer (one consumer group, cooperative-sticky, manual commits).
pub fn consumer_config(cfg: &Config, brokers: &str) -> ClientConfig {
    let mut c = base_consumer_config(cfg, brokers);
    c.set("group.id", &cfg.kafka.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", cfg.auto_offset_reset())
        // Offsets of our own transactions: read only committed input and committed offsets.
        .set("isolation.level", "read_committed");
    if let Some(id) = &cfg.kafka.group_instance_id {
        c.set("group.instance.id", id);
    }
    c
}

/// Config of the output producer; transactional under exactly-once.
pub fn producer_config(cfg: &Config, brokers: &str) -> ClientConfig {
    let mut c = base_config(cfg, brokers);
    c.set("enable.idempotence", "true")
        .set(
            "linger.ms",
            cfg.kafka
                .client
                .get("linger.ms")
                .map_or("2", String::as_str),
        )
        .set(
            "queue.buffering.max.messages",
            cfg.kafka
                .client
                .get("queue.buffering.max.messages")
                .map_or("1000000", String::as_str),
        )
        .set(
            "message.timeout.ms",
            cfg.kafka
                .client
                .get("message.timeout.ms")
                .map_or("30000", String::as_str),
        )
        // A transaction begun right after the previous commit is answered
        // CONCURRENT_TRANSACTIONS until that commit's markers are written; librdkafka
        // retries after `retry.backoff.ms`, and its default of 100 ms would add up to
        // 100 ms to such a commit (the Java client uses 20 ms there). Backoff still grows
        // exponentially up to `retry.backoff.max.ms` for errors that last.
        .set(
            "retry.backoff.ms",
            cfg.kafka
                .client
                .get("retry.backoff.ms")
                .map_or("5", String::as_str),
        );
    if cfg.processing.guarantee == Guarantee::ExactlyOnce {
        c.set("transactional.id", cfg.transactional_id()).set(
            "transaction.timeout.ms",
            cfg.processing.transaction_timeout_ms.to_string(),
        );
    }
    c
}

/// Producer context: counts failed deliveries (an at-least-once commit is refused while
/// any output since the last commit failed), charges each to the input record it was
/// made for, counts every report per epoch ([`Deliveries`]), and logs client errors.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// Shared counters.
    pub metrics: Arc<Metrics>,
    /// Where failures of a record's own are charged.
    pub failed: Arc<FailedOutputs>,
    /// Delivery reports per epoch.
    pub deliveries: Arc<Deliveries>,
}

impl ClientContext for SinkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.client_errors.fetch_add(1, Relaxed);
        tracing::warn!(%error, reason, "producer error");
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        use RDKafkaErrorCode as C;
        match result {
            Ok(_) => {}
            // Outputs of an aborted transaction, purged by the abort: not a failure of
            // theirs, and counting it would fail the next commit too.
            Err((e, _))
                if matches!(
                    e.rdkafka_error_code(),
                    Some(C::PurgeQueue | C::PurgeInflight)
                ) => {}
            Err((e, _)) => {
                self.metrics.delivery_failures.fetch_add(1, SeqCst);
                tracing::warn!(error = %e, "delivery failed");
                self.failed.charge(tag, e);
            }
        }
        // After the failure count: whoever sees this report counted sees its failure too.
        self.deliveries.reported(tag);
    }
}

/// Epochs told apart by the delivery tag. An epoch is the outputs queued between two
/// barriers of the workers (at-least-once checkpoints, `runtime::engine`); at most
/// `EPOCH_SLOTS - 1` of them wait for their reports at once, so that two epochs with
/// the same slot never do.
pub const EPOCH_SLOTS: usize = 8;

/// Delivery reports (delivered, failed or purged) per epoch slot, counted from the start:
/// an epoch's outputs have all been reported once its slot's count reaches the number of
/// outputs queued in that slot up to and including it.
#[derive(Debug, Default)]
pub struct Deliveries([AtomicU64; EPOCH_SLOTS]);

impl Deliveries {
    fn reported(&self, tag: usize) {
        self.0[tag_epoch_slot(tag)].fetch_add(1, SeqCst);
    }

    /// Reports so far in `slot`.
    pub fn reports(&self, slot: usize) -> u64 {
        self.0[slot].load(SeqCst)
    }
}

// The delivery tag packs an epoch slot, a partition and an offset into 64 bits.
const _: () = assert!(usize::BITS == 64);
const _: () = assert!(EPOCH_SLOTS == 8);
const TAG_EPOCH_SHIFT: u32 = 61;
const TAG_HAS_RECORD: usize = 1 << 60;
const TAG_PARTITION_SHIFT: u32 = 47;
const TAG_PARTITION_MASK: usize = 0x1fff;
const TAG_OFFSET_MASK: usize = (1 << 47) - 1;

/// The slot of epoch `epoch`.
pub fn epoch_slot(epoch: u64) -> usize {
    (epoch % EPOCH_SLOTS as u64) as usize
}

/// The delivery tag of an output queued in epoch `epoch`, made for input record
/// `(partition, offset)` (so that a failed delivery can be charged to that record) or
/// for no one record (`None`: the changelog, side records). A record charged by tag has
/// a partition below 8,192 and an offset below 2^47.
pub fn output_tag(epoch: u64, record: Option<(i32, i64)>) -> usize {
    let slot = epoch_slot(epoch) << TAG_EPOCH_SHIFT;
    match record {
        Some((partition, offset)) => {
            slot | TAG_HAS_RECORD
                | (partition as usize & TAG_PARTITION_MASK) << TAG_PARTITION_SHIFT
                | (offset as usize & TAG_OFFSET_MASK)
        }
        None => slot,
    }
}

/// The input record of a delivery tag.
pub fn tag_record(tag: usize) -> Option<(i32, i64)> {
    (tag & TAG_HAS_RECORD != 0).then_some((
        (tag >> TAG_PARTITION_SHIFT & TAG_PARTITION_MASK) as i32,
        (tag & TAG_OFFSET_MASK) as i64,
    ))
}

/// The epoch slot of a delivery tag.
pub fn tag_epoch_slot(tag: usize) -> usize {
    tag >> TAG_EPOCH_SHIFT
}

/// Whether `e` is a fault of the record itself (too large, invalid), which trying again
/// cannot mend, rather than of the broker, the network or the transaction.
pub fn is_record_error(e: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::MessageSizeTooLarge
                | C::MessageBatchTooLarge
                | C::InvalidMessage
                | C::InvalidMessageSize
                | C::InvalidRecord
        )
    )
}

/// Input records whose outputs failed with an error of their own ([`is_record_error`]),
/// charged when the output is queued (by a worker) or delivered (by [`SinkContext`]), and
/// taken by the engine when the commit that they make fail is recovered.
#[derive(Debug, Default)]
pub struct FailedOutputs(Mutex<BTreeMap<(i32, i64), String>>);

impl FailedOutputs {
    /// Charges a failure to the record of `tag`, if it has one and `e` is its own.
    pub fn charge(&self, tag: usize, e: &KafkaError) {
        if let Some(rec) = tag_record(tag).filter(|_| is_record_error(e)) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(rec, e.to_string());
        }
    }

    /// The records charged since the last call, with their last error.
    pub fn take(&self) -> BTreeMap<(i32, i64), String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Context of the consumers that read a topic to its end (`enable.partition.eof`: the
/// changelog restore and the registry follower): reaching the end of a partition is what
/// they wait for, not an error to log.
#[derive(Debug, Default)]
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if error != KafkaError::Global(RDKafkaErrorCode::PartitionEOF) {
            tracing::warn!(%error, reason, "kafka reader error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

/// A consumer that reads a topic to its end.
pub type Reader = rdkafka::consumer::BaseConsumer<ReaderContext>;

/// The output producer type.
pub type OutProducer = ThreadedProducer<SinkContext>;

/// Waits until every queued output is delivered (or failed), at most `timeout`.
pub fn flush<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    flush_unless(producer, timeout, || false)
}

/// How long [`flush_unless`] and [`send_with_backpressure`] sleep between two looks at
/// the producer's queue.
const FLUSH_CHECK: Duration = Duration::from_micros(250);

/// [`flush`], which stops waiting (and returns `Ok`) as soon as `give_up()` holds.
///
/// rdkafka's own `flush` cannot wait well for a threaded producer: it polls the event
/// queue that the producer's own thread serves, in steps of up to 100 ms, so it waits
/// about 100 ms whenever anything is in flight; and it rounds a wait under a millisecond
/// down to none, so asked for a millisecond at a time it spins on the queue, a core's
/// worth of CPU for as long as the flush lasts. Here each look asks librdkafka to send
/// what it holds at once and does not wait (`flush` of zero), and the thread sleeps
/// [`FLUSH_CHECK`] between looks.
pub fn flush_unless<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
    give_up: impl Fn() -> bool,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        match producer.flush(Duration::ZERO) {
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {}
            other => return other,
        }
        if give_up() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        std::thread::sleep(left.min(FLUSH_CHECK));
    }
}

/// Publishes `records` (key, value; `None` is a tombstone) to `topic` with an idempotent
/// producer and waits until every one is delivered. The topic must exist.
pub fn publish(
    cfg: &Config,
    brokers: &str,
    topic: &str,
    records: &[(String, Option<Vec<u8>>)],
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let producer: ThreadedProducer<rdkafka::producer::DefaultProducerContext> =
        base_config(cfg, brokers)
            .set("enable.idempotence", "true")
            .create()
            .context("creating a producer")?;
    let md = producer
        .client()
        .fetch_metadata(
            Some(topic),
            Duration::from_millis(cfg.processing.kafka_timeout_ms),
        )
        .with_context(|| format!("reading metadata of {topic} from {brokers}"))?;
    if let Some(err) = md.topics().first().and_then(|t| t.error()) {
        anyhow::bail!(
            "topic {topic} is not available ({err:?}); create it with `spamflow create-topics`"
        );
    }
    for (key, value) in records {
        let mut r: BaseRecord<'_, str, [u8]> = BaseRecord::to(topic).key(key.as_str());
        if let Some(v) = value {
            r = r.payload(v.as_slice());
        }
        send_with_backpressure(&producer, r).with_context(|| format!("publishing to {topic}"))?;
    }
    flush(&producer, Duration::from_secs(30))
        .with_context(|| format!("flushing records to {topic}"))?;
    Ok(())
}

/// A read-only reader of `topic` for a tool (`spamflow tap`, `spamflow stats`), and the
/// topic's partitions. It assigns partitions itself: librdkafka wants a group id even to
/// assign, and this one never joins a group (no subscribe) and never commits. It reads
/// read_committed and reports the end of each partition.
pub fn tool_reader(
    cfg: &Config,
    tool: &str,
    topic: &str,
) -> anyhow::Result<(rdkafka::consumer::BaseConsumer<ReaderContext>, Vec<i32>)> {
    use anyhow::Context as _;
    use rdkafka::consumer::Consumer as _;
    let consumer: rdkafka::consumer::BaseConsumer<ReaderContext> =
        base_consumer_config(cfg, &cfg.kafka.brokers)
            .set(
                "group.id",
                format!("spamflow-{tool}-{}", std::process::id()),
            )
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .create_with_context(ReaderContext)
            .with_context(|| format!("creating the {tool} reader"))?;
    let timeout = Duration::from_millis(cfg.processing.kafka_timeout_ms);
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("reading the partitions of {topic}"))?;
    let parts: Vec<i32> = md
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(
        !parts.is_empty(),
        "topic {topic} does not exist (or has no partitions)"
    );
    Ok((consumer, parts))
}

/// Reads `topic` with a [`tool_reader`] from `from` (the first record at or after that
/// time; the beginning with `None`) to the end of every partition as it was when reached,
/// handing each record to `each`. Fails when the end is not reached within
/// `processing.kafka_timeout_ms` of the last record.
pub fn read_to_end(
    cfg: &Config,
    tool: &str,
    topic: &str,
    from: Option<chrono::DateTime<chrono::Utc>>,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    use rdkafka::consumer::Consumer as _;
    use rdkafka::message::Message as _;
    let timeout = Duration::from_millis(cfg.processing.kafka_timeout_ms);
    let (consumer, parts) = tool_reader(cfg, tool, topic)?;
    let tpl = match from {
        Some(t) => offsets_at(&consumer, topic, &parts, t, timeout)?,
        None => {
            let mut tpl = TopicPartitionList::new();
            for p in &parts {
                tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
            }
            tpl
        }
    };
    consumer.assign(&tpl)?;
    let mut at_end = std::collections::BTreeSet::new();
    let mut deadline = Instant::now() + timeout;
    while at_end.len() < parts.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{topic}: the end of {} partition(s) was not reached within {timeout:?}",
            parts.len() - at_end.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => tracing::warn!(error = %e, "{tool} reader error"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                deadline = Instant::now() + timeout;
                each(&m);
            }
        }
    }
    Ok(())
}

/// The number of partitions of `topic`, asked every second until the topic is there;
/// `None` when `stop` is triggered first.
pub fn partition_count<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
    stop: &crate::runtime::Stop,
) -> Option<i32> {
    use rdkafka::consumer::Consumer as _;
    loop {
        match consumer.fetch_metadata(Some(topic), timeout) {
            Ok(md) => match md
                .topics()
                .first()
                .map(|t| (t.error(), t.partitions().len()))
            {
                Some((None, n)) if n > 0 => return Some(n as i32),
                other => tracing::warn!(topic, ?other, "topic not available yet; retrying"),
            },
            Err(e) => tracing::warn!(topic, error = %e, "cannot read topic metadata; retrying"),
        }
        if stop.wait(Duration::from_secs(1)) {
            return None;
        }
    }
}

/// The offsets of `topic`'s `partitions` at `time`: per partition, the first record at or
/// after it, or, where there is none, the partition's end as an offset number (not
/// `Offset::End`, which would be resolved later and skip what arrives meanwhile).
pub fn offsets_at<C: rdkafka::consumer::ConsumerContext>(
    consumer: &rdkafka::consumer::BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
    time: chrono::DateTime<chrono::Utc>,
    timeout: Duration,
) -> KafkaResult<TopicPartitionList> {
    use rdkafka::consumer::Consumer as _;
    // Each partition's end before the lookup: the lookup answers End when no record was
    // new enough when it ran, and a record written after that is then still read from here
    // (the end read after the lookup would skip it).
    let mut ends = std::collections::HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        ends.insert(*p, consumer.fetch_watermarks(topic, *p, timeout)?.1);
        tpl.add_partition_offset(topic, *p, Offset::Offset(time.timestamp_millis()))?;
    }
    let found = consumer.offsets_for_times(tpl, timeout)?;
    let mut out = TopicPartitionList::new();
    for e in found.elements() {
        e.error()?;
        let o = match e.offset() {
            Offset::Offset(o) => o,
            _ => ends.get(&e.partition()).copied().unwrap_or(0),
        };
        out.add_partition_offset(topic, e.partition(), Offset::Offset(o))?;
    }
    Ok(out)
}

/// Topic spec for creation: name, partitions, compacted.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// `cleanup.policy=compact`.
    pub compacted: bool,
}

/// Settings of the compacted topics. Compaction only cleans closed segments, and by
/// default a segment stays open for 7 days or 1 GiB: a changelog would then be restored
/// from a week of uncompacted writes. Short segments and a low dirty ratio keep it near
/// one record per key; the lag keeps the latest minute of writes whole for readers.
pub const COMPACTED_TOPIC_CONFIG: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("segment.ms", "600000"),
    ("segment.bytes", "67108864"),
    ("min.cleanable.dirty.ratio", "0.1"),
    ("min.compaction.lag.ms", "60000"),
];

/// All topics spamflow uses, with `partitions` for the input and changelog.
pub fn topic_specs(cfg: &Config, partitions: i32) -> Vec<TopicSpec> {
    let t = &cfg.topics;
    let spec = |name: &str, partitions: i32, compacted: bool| TopicSpec {
        name: name.to_owned(),
        partitions,
        compacted,
    };
    vec![
        spec(&t.submissions, partitions, false),
        spec(&t.verdicts, partitions, false),
        spec(&t.block, partitions, false),
        spec(&t.alerts, partitions, false),
        spec(&t.dlq, 1, false),
        spec(&t.registry, 1, true),
        // One changelog partition per input partition: state of input partition p lives
        // in changelog partition p, so restore reads exactly one partition.
        spec(&t.changelog, partitions, true),
        spec(&t.reports, partitions, false),
        spec(&t.reported_content, 1, true),
        spec(&t.report_resolutions, 1, true),
        spec(&t.campaign_contents, 1, true),
        spec(&t.number_proposals, 1, true),
        // Partition p holds input partition p's statistics (written with its changelog).
        spec(&t.operator_stats, partitions, true),
    ]
}

/// Creates the topics on a real broker; an existing topic is not an error.
pub async fn create_topics(brokers: &str, cfg: &Config, specs: &[TopicSpec]) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = base_config(cfg, brokers).create()?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(1));
            if s.compacted {
                for (k, v) in COMPACTED_TOPIC_CONFIG {
                    t = t.set(k, v);
                }
            }
            t
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.create_topics(new.iter(), &opts).await? {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("cannot create topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Queues one record, waiting while the producer's queue is full (its own thread serves
/// the delivery reports that make room). Any other error is returned with nothing queued.
pub fn send_with_backpressure<C, K, P>(
    producer: &ThreadedProducer<C>,
    mut rec: BaseRecord<'_, K, P, C::DeliveryOpaque>,
) -> Result<(), KafkaError>
where
    C: ProducerContext + 'static,
    C::DeliveryOpaque: IntoOpaque,
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                std::thread::sleep(FLUSH_CHECK);
            }
            Err((e, _)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;

    #[test]
    fn a_flush_waits_for_every_delivery_and_gives_up_or_times_out_without_one() {
        let cfg = Config::default();
        let mock = MockCluster::new(1).unwrap();
        mock.create_topic("out", 2, 1).unwrap();
        let producer: ThreadedProducer<DefaultProducerContext> =
            base_config(&cfg, &mock.bootstrap_servers())
                .create()
                .unwrap();
        let send = |n: usize| {
            for i in 0..n {
                let body = format!("record {i}");
                send_with_backpressure(&producer, BaseRecord::<(), _>::to("out").payload(&body))
                    .unwrap();
            }
        };
        send(500);
        flush(&producer, Duration::from_secs(30)).unwrap();
        assert_eq!(producer.in_flight_count(), 0);

        // With the broker down nothing is delivered: the flush waits its whole timeout,
        // or stops as soon as it is told to give up, the record still in flight.
        mock.broker_down(1).unwrap();
        send(1);
        assert!(matches!(
            flush(&producer, Duration::from_millis(20)),
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut))
        ));
        assert!(flush_unless(&producer, Duration::from_secs(30), || true).is_ok());
        assert_eq!(producer.in_flight_count(), 1);

        mock.broker_up(1).unwrap();
        flush(&producer, Duration::from_secs(30)).unwrap();
        assert_eq!(producer.in_flight_count(), 0);
    }

    #[test]
    fn failures_are_charged_to_their_input_record_only_when_they_are_its_own() {
        for (p, o) in [(0, 0), (7, 123_456), (8191, (1 << 47) - 1)] {
            for epoch in [0, 1, 7, 8, 1_000_003] {
                let tag = output_tag(epoch, Some((p, o)));
                assert_eq!(tag_record(tag), Some((p, o)));
                assert_eq!(tag_epoch_slot(tag), epoch_slot(epoch));
            }
        }
        assert_eq!(tag_record(output_tag(13, None)), None);
        assert_eq!(tag_epoch_slot(output_tag(13, None)), 5);
        let failed = FailedOutputs::default();
        let too_large = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        failed.charge(output_tag(0, Some((3, 40))), &too_large);
        failed.charge(output_tag(1, Some((3, 41))), &timed_out);
        failed.charge(0, &too_large);
        let taken = failed.take();
        assert_eq!(taken.keys().collect::<Vec<_>>(), vec![&(3, 40)]);
        assert!(failed.take().is_empty());
    }
}
