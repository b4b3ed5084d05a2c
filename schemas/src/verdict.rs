//! `Verdict` v1 (`sms.verdicts`, `sms.block`) and `Alert` v1 (`sms.alerts`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What the SMSC does with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deliver as is.
    Allow,
    /// Deliver with the labels prepended (e.g. `[국제발신]`) and alert the recipient.
    Label,
    /// Hold and retry after `retry_after_ms` (relay-operator slow-down).
    Throttle,
    /// Do not deliver.
    Block,
}

impl Action {
    /// Every action, in the order of [`Action::index`].
    pub const ALL: [Action; 4] = [
        Action::Allow,
        Action::Label,
        Action::Throttle,
        Action::Block,
    ];

    /// Position in [`Action::ALL`] (for per-action counters).
    pub fn index(self) -> usize {
        match self {
            Action::Allow => 0,
            Action::Label => 1,
            Action::Throttle => 2,
            Action::Block => 3,
        }
    }

    /// Stable lower-case name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Label => "label",
            Action::Throttle => "throttle",
            Action::Block => "block",
        }
    }

    /// Whether the SMSC must act on it (the `sms.block` topic carries exactly these).
    pub fn is_enforced(self) -> bool {
        matches!(self, Action::Block | Action::Throttle)
    }
}

/// One piece of evidence behind a verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Operator that produced it (`pattern`, `velocity`, `origin`, ...).
    pub operator: String,
    /// Stable code, e.g. `gambling.casino`.
    pub code: String,
    /// Category for statistics, e.g. `gambling`.
    pub category: String,
    /// Contribution 0..=100.
    pub score: u8,
    /// Short excerpt of the matched text (never the whole body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Byte span `[start, end)` in the original text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<[usize; 2]>,
}

/// One decision per message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// Always 1 for this version.
    pub schema_version: u32,
    /// The submission's `message_id`.
    pub message_id: String,
    /// The submission's event time.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub submitted_at: DateTime<Utc>,
    /// Wall-clock time the verdict was made (the only field that differs between runs).
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    pub decided_at: DateTime<Utc>,
    /// What the SMSC does.
    pub action: Action,
    /// Combined score 0..=100.
    pub score: u8,
    /// Labels the SMSC must prepend, e.g. `[국제발신]`.
    #[serde(default)]
    pub labels: Vec<String>,
    /// For `throttle`: when the SMSC may retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Evidence from enforcing rules.
    #[serde(default)]
    pub reasons: Vec<Reason>,
    /// Evidence from shadow rules: reported, never acted on.
    #[serde(default)]
    pub shadow: Vec<Reason>,
    /// The submission's sender as presented.
    pub sender: String,
    /// The submission's recipient.
    pub recipient: String,
    /// Submitting SMSC.
    pub smsc: String,
    /// Relay operator for bulk traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_operator: Option<String>,
    /// Content hash of the active rule pack, tables and policy.
    pub rules_version: String,
    /// Content hash of the active classifier model and its fitted policy (absent when no
    /// model is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// `spamflow/<version>`.
    pub pipeline: String,
}

impl Verdict {
    /// The verdict with `decided_at` cleared: two runs over the same input and rules
    /// must give equal decisions (this is what backtest-vs-pipeline tests compare).
    pub fn decision(&self) -> Verdict {
        let mut v = self.clone();
        v.decided_at = DateTime::<Utc>::UNIX_EPOCH;
        v
    }
}

/// A warning for the recipient of a delivered but suspicious message (`sms.alerts`,
/// key = recipient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Always 1 for this version.
    pub schema_version: u32,
    /// The submission's `message_id`.
    pub message_id: String,
    /// Who to warn.
    pub recipient: String,
    /// Sender as presented.
    pub sender: String,
    /// The submission's event time.
    pub submitted_at: DateTime<Utc>,
    /// The verdict's action (`label`, or `allow` above the alert score).
    pub action: Action,
    /// The verdict's score.
    pub score: u8,
    /// Distinct categories of the reasons.
    pub categories: Vec<String>,
    /// Text the alerting service shows the recipient.
    pub warning: String,
    /// Why the alert comes, for the alerting service: absent for a message judged
    /// suspicious when it was delivered; `reported_after_delivery` when subscribers
    /// reported its content after it was delivered; `campaign_after_delivery` when later
    /// copies were blocked as a campaign.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    /// The start of the message's text with digits masked, so the recipient can tell
    /// which message is meant (late alerts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
}
