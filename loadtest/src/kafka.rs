//! What the load tools share for producing.

use std::time::Duration;

use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};

/// Queues `rec` on `p`, waiting while the producer's queue is full.
pub fn send<K, P>(p: &ThreadedProducer<DefaultProducerContext>, mut rec: BaseRecord<'_, K, P>)
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    while let Err((_, back)) = p.send(rec) {
        rec = back;
        p.poll(Duration::from_millis(1));
    }
}
