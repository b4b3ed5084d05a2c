//! Dead-letter records (`sms.submissions.dlq`).
//!
//! A DLQ record is the original key and the original bytes, unchanged, plus headers
//! that say what failed and where the record came from, so that an operator can fix
//! and re-publish it. Nothing is parsed out of the payload: it may not be parseable.

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
}

/// Broad class of a DLQ error, for metrics with bounded labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DlqErrorKind {
    /// The payload could not be decoded as a `SubmissionEvent`.
    Decode,
    /// The payload is larger than `processing.max_message_bytes`.
    Oversized,
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
}

impl DlqRecord {
    /// The headers to attach, in a fixed order.
    pub fn headers(&self, pipeline: &str) -> Vec<(&'static str, String)> {
        vec![
            (headers::ERROR_CODE, self.error.code.to_string()),
            (headers::ERROR_MESSAGE, self.error.message.clone()),
            (headers::SOURCE_TOPIC, self.source_topic.clone()),
            (headers::SOURCE_PARTITION, self.source_partition.to_string()),
            (headers::SOURCE_OFFSET, self.source_offset.to_string()),
            (headers::FAILED_AT, self.failed_at.to_rfc3339()),
            (headers::PIPELINE, pipeline.to_string()),
        ]
    }
}
