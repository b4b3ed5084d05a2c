//! `Verdict` v1 (`sms.verdicts`, `sms.block`) and `Alert` v1 (`sms.alerts`).

use std::borrow::Cow;

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

/// One piece of evidence behind a verdict. The pipeline's reasons borrow their strings
/// from the signals of the event they explain; a decoded one (`Reason<'static>`) owns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason<'a> {
    /// Operator that produced it (`pattern`, `velocity`, `origin`, ...).
    pub operator: Cow<'a, str>,
    /// Stable code, e.g. `gambling.casino`.
    pub code: Cow<'a, str>,
    /// Category for statistics, e.g. `gambling`.
    pub category: Cow<'a, str>,
    /// Contribution 0..=100.
    pub score: u8,
    /// Short excerpt of the matched text (never the whole body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Cow<'a, str>>,
    /// Byte span `[start, end)` in the original text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<[usize; 2]>,
}

/// One decision per message. The chain's verdict borrows its strings from the event, the
/// signals and the chain that decided it, so that deciding copies no text; a decoded one
/// (`Verdict<'static>`, see [`Verdict::into_owned`]) owns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict<'a> {
    /// Always 1 for this version.
    pub schema_version: u32,
    /// The submission's `message_id`.
    pub message_id: Cow<'a, str>,
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
    pub labels: Vec<Cow<'a, str>>,
    /// For `throttle`: when the SMSC may retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Evidence from enforcing rules.
    #[serde(default)]
    pub reasons: Vec<Reason<'a>>,
    /// Evidence from shadow rules: reported, never acted on.
    #[serde(default)]
    pub shadow: Vec<Reason<'a>>,
    /// The submission's sender as presented.
    pub sender: Cow<'a, str>,
    /// The submission's recipient.
    pub recipient: Cow<'a, str>,
    /// Submitting SMSC.
    pub smsc: Cow<'a, str>,
    /// Relay operator for bulk traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_operator: Option<Cow<'a, str>>,
    /// Content hash of the active rule pack, tables and policy.
    pub rules_version: Cow<'a, str>,
    /// Content hash of the active classifier model and its fitted policy (absent when no
    /// model is configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<Cow<'a, str>>,
    /// `spamflow/<version>`.
    pub pipeline: Cow<'a, str>,
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

impl Reason<'_> {
    /// The same reason owning its strings.
    pub fn into_owned(self) -> Reason<'static> {
        Reason {
            operator: owned(self.operator),
            code: owned(self.code),
            category: owned(self.category),
            score: self.score,
            evidence: self.evidence.map(owned),
            span: self.span,
        }
    }
}

impl Verdict<'_> {
    /// The same verdict owning its strings, to keep beyond the event and the chain.
    pub fn into_owned(self) -> Verdict<'static> {
        Verdict {
            schema_version: self.schema_version,
            message_id: owned(self.message_id),
            submitted_at: self.submitted_at,
            decided_at: self.decided_at,
            action: self.action,
            score: self.score,
            labels: self.labels.into_iter().map(owned).collect(),
            retry_after_ms: self.retry_after_ms,
            reasons: self.reasons.into_iter().map(Reason::into_owned).collect(),
            shadow: self.shadow.into_iter().map(Reason::into_owned).collect(),
            sender: owned(self.sender),
            recipient: owned(self.recipient),
            smsc: owned(self.smsc),
            relay_operator: self.relay_operator.map(owned),
            rules_version: owned(self.rules_version),
            model_version: self.model_version.map(owned),
            pipeline: owned(self.pipeline),
        }
    }

    /// The verdict with `decided_at` cleared, owning its strings: two runs over the same
    /// input and rules must give equal decisions (this is what backtest-vs-pipeline tests
    /// compare).
    pub fn decision(&self) -> Verdict<'static> {
        let mut v = self.clone().into_owned();
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
