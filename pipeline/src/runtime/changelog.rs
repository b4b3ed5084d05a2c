//! The state changelog: encoding of keys and restore of one partition.
//!
//! Input partition `p`'s state lives in changelog partition `p` (the changelog has as
//! many partitions as the input topic), under keys `<p>/<operator>/<operator key>`. The
//! topic is compacted, so the latest value per key survives; a record without a value
//! (tombstone) means the key was evicted. Changelog records are written in the same
//! transaction as the verdicts and offsets, once per key per commit interval.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::kafka::{base_consumer_config, Reader, ReaderContext};
use crate::runtime::Stop;

/// The operator segment of a partition's input mark: `<p>/input/` holds the input offsets
/// `[first, next)` whose records the partition's state (written before it, in the same
/// changelog partition) already counts. Written under at-least-once only, where state and
/// offsets are not committed together: after a crash or a failed offset commit past the
/// flush, the records replayed from the committed offset up to `next` are judged without
/// being counted again (`EventCtx::counted`).
pub const INPUT_MARK: &str = "input";

/// The value of an input mark: `first` and `next`, 8 bytes each, big-endian.
pub fn encode_input_mark(first: i64, next: i64) -> Vec<u8> {
    let mut v = first.to_be_bytes().to_vec();
    v.extend_from_slice(&next.to_be_bytes());
    v
}

/// `(first, next)` of an input mark's value; `None` for any other value.
pub fn decode_input_mark(value: &[u8]) -> Option<(i64, i64)> {
    let (first, next) = value.split_at_checked(8)?;
    let first = i64::from_be_bytes(first.try_into().ok()?);
    let next = i64::from_be_bytes(next.try_into().ok()?);
    (first <= next).then_some((first, next))
}

/// One restored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangelogRecord {
    /// Operator name.
    pub operator: String,
    /// Operator-local key.
    pub key: Vec<u8>,
    /// Value, or `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// `<partition>/<operator>/<key>`.
pub fn encode_key(partition: i32, operator: &str, key: &[u8]) -> Vec<u8> {
    let mut k = format!("{partition}/{operator}/").into_bytes();
    k.extend_from_slice(key);
    k
}

/// Splits a changelog key; `None` for a key of another format.
pub fn decode_key(raw: &[u8]) -> Option<(i32, &str, &[u8])> {
    let first = raw.iter().position(|b| *b == b'/')?;
    let partition: i32 = std::str::from_utf8(&raw[..first]).ok()?.parse().ok()?;
    let rest = &raw[first + 1..];
    let second = rest.iter().position(|b| *b == b'/')?;
    let operator = std::str::from_utf8(&rest[..second]).ok()?;
    Some((partition, operator, &rest[second + 1..]))
}

/// Restore could not read the changelog.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// A Kafka call failed.
    #[error("reading changelog {topic}[{partition}]: {source}")]
    Kafka {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Cause.
        source: KafkaError,
    },
    /// Reading made no progress for the stall timeout.
    #[error(
        "reading changelog {topic}[{partition}]: no progress for {timeout:?} ({read} records read)"
    )]
    Timeout {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Deadline.
        timeout: Duration,
        /// Records read so far.
        read: usize,
    },
    /// The restore was called off (the partition was revoked, or the engine stops).
    #[error("reading changelog {topic}[{partition}]: cancelled")]
    Cancelled {
        /// Changelog topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
}

/// Records handed to the sink at a time. The engine's sink queues them to a worker whose
/// queue holds 256 messages, so a restore holds at most a few megabytes in flight.
pub const RESTORE_CHUNK: usize = 1_000;

/// Reads changelog partition `partition` from the beginning to the high watermark taken
/// when it starts, read_committed, handing the records to `sink` in chunks of at most
/// [`RESTORE_CHUNK`] as they arrive. Records of aborted transactions are skipped, and a
/// transaction not yet decided (the previous owner's last commit, its markers still
/// being written) is waited for. librdkafka reports the partition's end at the last
/// stable offset, which is before such a transaction; stopping there would restore state
/// one commit behind.
///
/// There is no deadline for the whole read, which takes as long as the changelog is big:
/// it fails when `stall_timeout` passes without a record or an advance of the position.
/// Triggering `cancel` ends it within one poll (100 ms). Returns the records read.
pub fn read_partition(
    cfg: &Config,
    brokers: &str,
    partition: i32,
    stall_timeout: Duration,
    cancel: &Stop,
    mut sink: impl FnMut(Vec<ChangelogRecord>),
) -> Result<usize, RestoreError> {
    let topic = cfg.topics.changelog.clone();
    let kafka = |source| RestoreError::Kafka {
        topic: topic.clone(),
        partition,
        source,
    };
    let mut cc = base_consumer_config(cfg, brokers);
    cc.set("group.id", format!("{}-restore", cfg.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    // The high watermark as a read_uncommitted client sees it: a read_committed one is
    // told the last stable offset, which is the point not to stop at.
    let (low, high) = base_consumer_config(cfg, brokers)
        .set("isolation.level", "read_uncommitted")
        .create::<BaseConsumer>()
        .and_then(|c| c.fetch_watermarks(&topic, partition, stall_timeout))
        .map_err(kafka)?;
    let consumer: Reader = cc.create_with_context(ReaderContext).map_err(kafka)?;
    if high <= low {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, partition, Offset::Beginning)
        .map_err(kafka)?;
    consumer.assign(&tpl).map_err(kafka)?;
    let mut progress_at = Instant::now();
    let mut last_position = None;
    let mut read = 0;
    let mut chunk = Vec::new();
    loop {
        if cancel.is_set() {
            return Err(RestoreError::Cancelled { topic, partition });
        }
        if progress_at.elapsed() > stall_timeout {
            return Err(RestoreError::Timeout {
                topic,
                partition,
                timeout: stall_timeout,
                read,
            });
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => {
                let at = position(&consumer, &topic, partition);
                if at.is_some_and(|p| p >= high) {
                    break;
                }
                // Control records (transaction markers) advance the position too.
                if at != last_position {
                    last_position = at;
                    progress_at = Instant::now();
                }
                // Waiting for an undecided transaction: apply what came before it.
                if !chunk.is_empty() {
                    sink(std::mem::take(&mut chunk));
                }
            }
            Some(Err(e)) => return Err(kafka(e)),
            Some(Ok(m)) => {
                progress_at = Instant::now();
                let Some((p, op, key)) = m.key().and_then(decode_key) else {
                    tracing::warn!(
                        partition,
                        offset = m.offset(),
                        "changelog record with a foreign key format; skipped"
                    );
                    continue;
                };
                if p != partition {
                    tracing::warn!(
                        partition,
                        offset = m.offset(),
                        key_partition = p,
                        "changelog record of another partition; skipped"
                    );
                    continue;
                }
                read += 1;
                chunk.push(ChangelogRecord {
                    operator: op.to_owned(),
                    key: key.to_vec(),
                    value: m.payload().map(<[u8]>::to_vec),
                });
                if chunk.len() >= RESTORE_CHUNK {
                    sink(std::mem::take(&mut chunk));
                }
            }
        }
    }
    if !chunk.is_empty() {
        sink(chunk);
    }
    Ok(read)
}

/// The consumer's next offset in `topic[partition]`, if it has one.
fn position(consumer: &Reader, topic: &str, partition: i32) -> Option<i64> {
    let tpl = consumer.position().ok()?;
    match tpl.find_partition(topic, partition)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_even_with_slashes_in_the_operator_key() {
        let k = encode_key(7, "velocity", b"+8210/odd");
        assert_eq!(decode_key(&k), Some((7, "velocity", &b"+8210/odd"[..])));
        assert_eq!(decode_key(b"nonsense"), None);
        assert_eq!(decode_key(b"x/velocity/k"), None);
    }

    #[test]
    fn input_marks_round_trip_and_refuse_other_values() {
        assert_eq!(
            decode_input_mark(&encode_input_mark(7, 420)),
            Some((7, 420))
        );
        assert_eq!(decode_input_mark(&encode_input_mark(9, 3)), None);
        assert_eq!(decode_input_mark(b"short"), None);
        assert_eq!(decode_input_mark(&[0; 17]), None);
    }
}
