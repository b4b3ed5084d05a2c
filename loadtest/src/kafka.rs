//! What the load tools share for producing, and the bare passthrough baseline.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

/// How long [`send`] and [`flush`] sleep between two looks at the producer's queue.
const CHECK: Duration = Duration::from_micros(250);

/// Queues `rec` on `p`, waiting while the producer's queue is full.
pub fn send<K, P, C>(p: &ThreadedProducer<C>, mut rec: BaseRecord<'_, K, P, C::DeliveryOpaque>)
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
    C: rdkafka::producer::ProducerContext + 'static,
{
    while let Err((_, back)) = p.send(rec) {
        rec = back;
        std::thread::sleep(CHECK);
    }
}

/// Waits until every record queued on `p` is delivered, at most `timeout`, as the
/// pipeline's `kafka::flush` does: rdkafka's own `flush` polls the event queue that a
/// threaded producer's thread serves, so it waits about 100 ms whenever anything is in
/// flight, or spins when asked for under 2 ms. Each look here asks librdkafka to send at
/// once without waiting, and the thread sleeps between looks.
pub fn flush<C>(p: &ThreadedProducer<C>, timeout: Duration) -> KafkaResult<()>
where
    C: rdkafka::producer::ProducerContext + 'static,
{
    let deadline = Instant::now() + timeout;
    loop {
        match p.flush(Duration::ZERO) {
            Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut))
                if Instant::now() < deadline =>
            {
                std::thread::sleep(CHECK)
            }
            other => return other,
        }
    }
}

/// A bare consume -> produce of the same bytes (keys kept) in consumer group `group`,
/// committing after a flush every 100 ms (at-least-once), the flush done as the pipeline
/// does it ([`flush`]): the baseline the pipeline is measured against. Runs until
/// `done(forwarded so far)`; returns the records forwarded and the time from the first one.
pub fn passthrough(
    brokers: &str,
    from: &str,
    to: &str,
    group: &str,
    mut done: impl FnMut(u64) -> bool,
) -> anyhow::Result<(u64, Duration)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "5")
        .create()
        .context("creating the passthrough consumer")?;
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "2")
        .set("enable.idempotence", "true")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .context("creating the passthrough producer")?;
    c.subscribe(&[from])?;
    let mut first = None;
    let mut seen = 0u64;
    let mut last_commit = Instant::now();
    while !done(seen) {
        let Some(r) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = r?;
        first.get_or_insert_with(Instant::now);
        let mut rec = BaseRecord::to(to).payload(m.payload().unwrap_or_default());
        if let Some(k) = m.key() {
            rec = rec.key(k);
        }
        send(&p, rec);
        seen += 1;
        if last_commit.elapsed() >= Duration::from_millis(100) {
            flush(&p, Duration::from_secs(30))?;
            commit(&c, CommitMode::Async)?;
            last_commit = Instant::now();
        }
    }
    flush(&p, Duration::from_secs(30))?;
    commit(&c, CommitMode::Sync)?;
    Ok((seen, first.map_or(Duration::ZERO, |t| t.elapsed())))
}

/// Commits what `c` has read; nothing read since the last commit is not an error.
fn commit(c: &BaseConsumer, mode: CommitMode) -> KafkaResult<()> {
    match c.commit_consumer_state(mode) {
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use rdkafka::mocking::MockCluster;
    use rdkafka::{Offset, TopicPartitionList};

    use super::*;

    #[test]
    fn the_passthrough_forwards_every_record_with_its_key_and_commits_what_it_read() {
        let mock = MockCluster::new(1).unwrap();
        let brokers = mock.bootstrap_servers();
        mock.create_topic("in", 2, 1).unwrap();
        mock.create_topic("out", 2, 1).unwrap();
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        let sent: BTreeSet<(String, String)> = (0..500)
            .map(|i| (format!("key-{}", i % 37), format!("event {i}")))
            .collect();
        for (k, v) in &sent {
            send(&p, BaseRecord::to("in").key(k).payload(v));
        }
        flush(&p, Duration::from_secs(30)).unwrap();

        let (forwarded, _) = passthrough(&brokers, "in", "out", "pass", |seen| {
            seen >= sent.len() as u64
        })
        .unwrap();
        assert_eq!(forwarded, sent.len() as u64);
        // Stopped before reading anything new, it has nothing to commit: not an error.
        let (again, _) = passthrough(&brokers, "in", "out", "pass", |_| true).unwrap();
        assert_eq!(again, 0);

        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "pass")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for part in 0..2 {
            tpl.add_partition_offset("out", part, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).unwrap();
        let mut got = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.len() < sent.len() && Instant::now() < deadline {
            if let Some(m) = c.poll(Duration::from_millis(100)) {
                let m = m.unwrap();
                got.insert((
                    String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                    String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
                ));
            }
        }
        assert_eq!(got, sent, "every record forwarded, key and bytes kept");
        let out: i64 = (0..2)
            .map(|part| {
                c.fetch_watermarks("out", part, Duration::from_secs(10))
                    .unwrap()
                    .1
            })
            .sum();
        assert_eq!(out, sent.len() as i64, "and once");

        // The group's committed offsets are the input's ends: what it read, it answered.
        let mut input = TopicPartitionList::new();
        input.add_partition("in", 0);
        input.add_partition("in", 1);
        let committed = c.committed_offsets(input, Duration::from_secs(10)).unwrap();
        let mut total = 0;
        for e in committed.elements() {
            let (_, high) = c
                .fetch_watermarks("in", e.partition(), Duration::from_secs(10))
                .unwrap();
            assert_eq!(
                e.offset(),
                Offset::Offset(high),
                "partition {}",
                e.partition()
            );
            total += high;
        }
        assert_eq!(total, sent.len() as i64);
    }
}
