//! spamflow wire types.
//!
//! Everything that crosses a Kafka topic is defined here and nowhere else:
//!
//! - [`event`]: `SubmissionEvent` v1, read from `sms.submissions`, and its decoder
//!   ([`decode_submission`]) that names the offending field on failure.
//! - [`verdict`]: `Verdict` v1 (written to `sms.verdicts` and `sms.block`) and the
//!   recipient `Alert` v1 (written to `sms.alerts`).
//! - [`registry`]: sender-number registration records (`spamflow.sender-registry`).
//! - [`report`]: subscribers' spam reports, `SpamReport` v1 (`sms.reports`), and their
//!   decoder ([`decode_report`]).
//! - [`stats`]: spam statistics per relay operator and hour, `OperatorStats` v1
//!   (`spamflow.operator-stats`).
//! - [`dlq`]: the dead-letter record: original key and bytes plus error headers.
//!
//! JSON Schema files for the event, the verdict, the report and the statistics live in `schemas/json/`; the tests
//! check that sample documents round-trip through these types and validate against them.
//!
//! Versioning: every document carries `schema_version`. Readers accept the versions in
//! [`SUPPORTED_EVENT_VERSIONS`] and ignore unknown fields, so producers may add fields
//! without a version bump; removing or retyping a field is a new version.

pub mod dlq;
pub mod event;
pub mod registry;
pub mod report;
pub mod rfc3339;
pub mod stats;
pub mod verdict;

pub use dlq::{DlqError, DlqErrorKind, DlqRecord};
pub use event::{
    decode_submission, DecodeError, MessageKind, Origin, Relay, Route, SubmissionEvent,
    MAX_TEXT_BYTES, SUPPORTED_EVENT_VERSIONS,
};
pub use registry::{RegistrationRecord, RegistrationStatus};
pub use report::{
    decode_report, CampaignContent, ContentStatus, ReportChannel, ReportResolution,
    ReportedContentRecord, SpamReport,
};
pub use stats::{OperatorStats, StatsCounts, StatsRow};
pub use verdict::{Action, Alert, Reason, Verdict};
