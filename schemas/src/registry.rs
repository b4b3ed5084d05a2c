//! Sender-number registration records (`spamflow.sender-registry`, compacted; key =
//! normalized number in E.164, value = this record as JSON; a tombstone removes it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a registered number may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationStatus {
    /// May send through its relay operator.
    Active,
    /// Suspended (e.g. after abuse): bulk traffic from it is refused.
    Suspended,
}

/// One pre-registered sender number (발신번호 사전등록).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}
