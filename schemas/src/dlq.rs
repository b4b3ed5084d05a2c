//! Dead-letter records (`sms.submissions.dlq`).
//!
//! A DLQ record is the original key and the original bytes, unchanged, plus headers
//! that say what failed and where the record came from, so that an operator can fix
//! and re-publish it. Nothing is parsed out of the payload: it may not be parseable.
//!
//! A payload longer than [`MAX_PAYLOAD_BYTES`] would be refused by the producer (its
//! `message.max.bytes`), and a DLQ record that cannot be written would stop the commits
//! for good. So such a payload is cut to its first [`TRUNCATED_PAYLOAD_BYTES`], and the
//! headers carry the original size and SHA-256.

use chrono::{DateTime, Utc};

/// Header names on a DLQ record.
pub mod headers {
    /// Stable error code (`bad_field`, `invalid_utf8`, `oversized`, ...).
    pub const ERROR_CODE: &str = "spamflow.error.code";
    /// Human-readable error, naming the field where there is one.
    pub const ERROR_MESSAGE: &str = "spamflow.error.message";
    /// Source topic.
    pub const SOURCE_TOPIC: &str = "spamflow.source.topic";
    /// Source partition (decimal).
    pub const SOURCE_PARTITION: &str = "spamflow.source.partition";
    /// Source offset (decimal).
    pub const SOURCE_OFFSET: &str = "spamflow.source.offset";
    /// When the record failed (RFC 3339).
    pub const FAILED_AT: &str = "spamflow.failed_at";
    /// `spamflow/<version>`.
    pub const PIPELINE: &str = "spamflow.pipeline";
    /// On a truncated payload: the original payload's size in bytes (decimal).
    pub const PAYLOAD_BYTES: &str = "spamflow.payload.bytes";
    /// On a truncated payload: the original payload's SHA-256 (hex).
    pub const PAYLOAD_SHA256: &str = "spamflow.payload.sha256";
    /// On a truncated payload: `true`.
    pub const PAYLOAD_TRUNCATED: &str = "spamflow.payload.truncated";
}

/// Longest payload a DLQ record carries whole (below librdkafka's default
/// `message.max.bytes` of 1,000,000, with room for key and headers).
pub const MAX_PAYLOAD_BYTES: usize = 512 * 1024;

/// What is kept of a longer payload.
pub const TRUNCATED_PAYLOAD_BYTES: usize = 64 * 1024;

/// The original size and SHA-256 of a payload that was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// Original size in bytes.
    pub bytes: usize,
    /// SHA-256 of the original payload, hex.
    pub sha256: String,
}

/// Broad class of a DLQ error, for metrics with bounded labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DlqErrorKind {
    /// The payload could not be decoded as a `SubmissionEvent`.
    Decode,
    /// The payload is larger than `processing.max_message_bytes`.
    Oversized,
    /// Processing the record failed inside spamflow (a contained panic).
    Internal,
    /// The record's outputs were refused (too large, invalid) however often it was tried.
    Unproducible,
}

/// What went wrong with one input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqError {
    /// Broad class.
    pub kind: DlqErrorKind,
    /// Stable code for the header.
    pub code: &'static str,
    /// Human-readable message (never contains the message body).
    pub message: String,
}

/// One dead-lettered input record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqRecord {
    /// Original key, unchanged.
    pub key: Option<Vec<u8>>,
    /// Original value, unchanged.
    pub payload: Option<Vec<u8>>,
    /// What failed.
    pub error: DlqError,
    /// Where it came from.
    pub source_topic: String,
    /// Source partition.
    pub source_partition: i32,
    /// Source offset.
    pub source_offset: i64,
    /// When it failed.
    pub failed_at: DateTime<Utc>,
    /// Set when the payload was cut to [`TRUNCATED_PAYLOAD_BYTES`].
    pub truncation: Option<Truncation>,
}

impl DlqRecord {
    /// Cuts a payload longer than [`MAX_PAYLOAD_BYTES`] to its first
    /// [`TRUNCATED_PAYLOAD_BYTES`], keeping its size and `sha256` (computed by the caller)
    /// for the headers.
    pub fn truncate_payload(&mut self, sha256: impl FnOnce(&[u8]) -> String) {
        if let Some(p) = &mut self.payload {
            if p.len() > MAX_PAYLOAD_BYTES {
                self.truncation = Some(Truncation {
                    bytes: p.len(),
                    sha256: sha256(p),
                });
                p.truncate(TRUNCATED_PAYLOAD_BYTES);
            }
        }
    }

    /// The headers to attach, in a fixed order.
    pub fn headers(&self, pipeline: &str) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (headers::ERROR_CODE, self.error.code.to_string()),
            (headers::ERROR_MESSAGE, self.error.message.clone()),
            (headers::SOURCE_TOPIC, self.source_topic.clone()),
            (headers::SOURCE_PARTITION, self.source_partition.to_string()),
            (headers::SOURCE_OFFSET, self.source_offset.to_string()),
            (headers::FAILED_AT, self.failed_at.to_rfc3339()),
            (headers::PIPELINE, pipeline.to_string()),
        ];
        if let Some(t) = &self.truncation {
            h.push((headers::PAYLOAD_BYTES, t.bytes.to_string()));
            h.push((headers::PAYLOAD_SHA256, t.sha256.clone()));
            h.push((headers::PAYLOAD_TRUNCATED, "true".into()));
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: usize) -> DlqRecord {
        DlqRecord {
            key: None,
            payload: Some(vec![b'x'; len]),
            error: DlqError {
                kind: DlqErrorKind::Oversized,
                code: "oversized",
                message: "big".into(),
            },
            source_topic: "t".into(),
            source_partition: 0,
            source_offset: 1,
            failed_at: DateTime::<Utc>::UNIX_EPOCH,
            truncation: None,
        }
    }

    #[test]
    fn a_payload_over_the_limit_is_cut_and_its_size_and_hash_travel_in_headers() {
        let mut small = record(MAX_PAYLOAD_BYTES);
        small.truncate_payload(|_| unreachable!());
        assert_eq!(small.payload.as_ref().unwrap().len(), MAX_PAYLOAD_BYTES);
        assert!(small
            .headers("p")
            .iter()
            .all(|(k, _)| !k.starts_with("spamflow.payload")));

        let mut big = record(2 * 1024 * 1024);
        big.truncate_payload(|p| format!("hash-of-{}", p.len()));
        assert_eq!(big.payload.as_ref().unwrap().len(), TRUNCATED_PAYLOAD_BYTES);
        let h = big.headers("p");
        assert!(h.contains(&(headers::PAYLOAD_BYTES, "2097152".into())));
        assert!(h.contains(&(headers::PAYLOAD_SHA256, "hash-of-2097152".into())));
        assert!(h.contains(&(headers::PAYLOAD_TRUNCATED, "true".into())));
    }
}
