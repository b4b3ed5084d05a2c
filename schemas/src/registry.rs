//! Sender-number registration records (`spamflow.sender-registry`, compacted; key =
//! normalized number in E.164, value = this record as JSON; a tombstone removes it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a registered number may send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationStatus {
    /// May send through its relay operator.
    #[default]
    Active,
    /// Suspended (abuse, reports, a regulator's request): every message from it is
    /// blocked, bulk or not.
    Suspended,
}

/// One pre-registered sender number (발신번호 사전등록), or a number that is not
/// registered but was suspended (then `owner` and `relay_operator` are empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    /// The number as registered (any format; the key is its normalized E.164 form).
    pub number: String,
    /// Who owns the number (company or person).
    pub owner: String,
    /// Relay operator (중계사) through which it may send bulk traffic.
    pub relay_operator: String,
    /// Reseller account, when registration is per reseller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseller: Option<String>,
    /// Active or suspended.
    pub status: RegistrationStatus,
    /// Registration starts (inclusive); absent = always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<DateTime<Utc>>,
    /// Registration ends (exclusive); absent = open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
    /// Who made the last status change: a member of staff, or `spamflow:reports` for a
    /// suspension the pipeline made from subscribers' reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    /// When the status last changed (for an automatic suspension, the report time of the
    /// report that crossed the line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at: Option<DateTime<Utc>>,
    /// Why the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For a suspension from reports: the distinct subscribers whose reports counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporters: Option<u32>,
    /// For a suspension after repeated blocks: the spam blocks that counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<u32>,
}
