//! `SpamReport` v1: one subscriber's report of a spam message (`sms.reports`), from the
//! 118 reporting centre, a carrier's app, or a text forwarded to a short code.
//!
//! A report names the reported sender and either the text (what the subscriber saw) or
//! the message id (when the reporting app knows it). Decoding validates like
//! [`crate::decode_submission`] and fails with the same [`DecodeError`]s, naming the field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{check_payload, field_error, MAX_ADDRESS_BYTES, MAX_NAME_BYTES};
use crate::{DecodeError, MAX_TEXT_BYTES};

/// Report schema versions this build reads.
pub const SUPPORTED_REPORT_VERSIONS: &[u32] = &[1];

/// Longest report id accepted.
pub const MAX_REPORT_ID_BYTES: usize = 128;

/// Where a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportChannel {
    /// KISA's 118 reporting centre.
    #[serde(rename = "kisa_118")]
    Kisa118,
    /// A carrier's app (which may know the message id).
    CarrierApp,
    /// A text forwarded to a reporting short code.
    ShortCode,
    /// Anything else (a web form, a call centre).
    Other,
}

/// One subscriber's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpamReport {
    /// Always 1 for this version.
    pub schema_version: u32,
    /// Unique id of the report (the reporting system's).
    pub report_id: String,
    /// When the subscriber reported (RFC 3339 UTC).
    pub reported_at: DateTime<Utc>,
    /// The reporting subscriber (the recipient of the reported message).
    pub reporter: String,
    /// The reported sender, as the subscriber saw it.
    pub sender: String,
    /// The reported text, when the report carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The reported message's id, when the reporting system knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Where the report came from.
    pub channel: ReportChannel,
    /// The category the subscriber chose, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
}

/// Decodes and validates one `SpamReport` payload.
pub fn decode_report(payload: &[u8]) -> Result<SpamReport, DecodeError> {
    let json = check_payload(payload)?;
    let report: SpamReport = match serde_json::from_str(json) {
        Ok(r) => r,
        Err(_) => return Err(field_error::<SpamReport>(payload)),
    };
    validate(&report)?;
    Ok(report)
}

fn validate(r: &SpamReport) -> Result<(), DecodeError> {
    if !SUPPORTED_REPORT_VERSIONS.contains(&r.schema_version) {
        return Err(DecodeError::UnsupportedVersion(r.schema_version));
    }
    let invalid = |field: &'static str, detail: String| DecodeError::Invalid { field, detail };
    let bounded = |field: &'static str, v: &str, max: usize, required: bool| {
        if required && v.trim().is_empty() {
            Err(invalid(field, "must not be empty".into()))
        } else if v.len() > max {
            Err(invalid(field, format!("{} bytes, limit {max}", v.len())))
        } else {
            Ok(())
        }
    };
    bounded("report_id", &r.report_id, MAX_REPORT_ID_BYTES, true)?;
    bounded("reporter", &r.reporter, MAX_ADDRESS_BYTES, true)?;
    bounded("sender", &r.sender, MAX_ADDRESS_BYTES, true)?;
    if let Some(t) = &r.text {
        bounded("text", t, MAX_TEXT_BYTES, false)?;
    }
    if let Some(m) = &r.message_id {
        bounded("message_id", m, 256, true)?;
    }
    if let Some(c) = &r.category {
        bounded("category", c, MAX_NAME_BYTES, true)?;
    }
    let has_text = r.text.as_deref().is_some_and(|t| !t.trim().is_empty());
    if !has_text && r.message_id.is_none() {
        return Err(invalid(
            "text",
            "a report needs the reported text or the message_id".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"schema_version":1,"report_id":"r-1","reported_at":"2026-12-02T09:00:00Z","reporter":"+821012345678","sender":"+821098765432","text":"[Web발신] 택배 주소 확인 bit.ly/x","channel":"kisa_118"}"#;

    #[test]
    fn a_good_report_decodes_and_bad_ones_name_the_field() {
        let r = decode_report(GOOD.as_bytes()).unwrap();
        assert_eq!(r.channel, ReportChannel::Kisa118);
        assert_eq!(r.sender, "+821098765432");
        let bad =
            |from: &str, to: &str| decode_report(GOOD.replace(from, to).as_bytes()).unwrap_err();
        assert_eq!(
            bad(r#""reporter":"+821012345678""#, r#""reporter":"""#).to_string(),
            "field `reporter`: must not be empty"
        );
        assert!(bad(r#""channel":"kisa_118""#, r#""channel":"fax""#)
            .to_string()
            .starts_with("field `channel`"));
        assert!(bad(r#""reported_at":"2026-12-02T09:00:00Z","#, "")
            .to_string()
            .contains("reported_at"));
        assert_eq!(
            bad(r#","text":"[Web발신] 택배 주소 확인 bit.ly/x""#, "").to_string(),
            "field `text`: a report needs the reported text or the message_id"
        );
        let by_id = GOOD.replace(
            r#""text":"[Web발신] 택배 주소 확인 bit.ly/x""#,
            r#""message_id":"m-77""#,
        );
        assert_eq!(
            decode_report(by_id.as_bytes())
                .unwrap()
                .message_id
                .as_deref(),
            Some("m-77")
        );
        assert!(matches!(
            bad(r#""schema_version":1"#, r#""schema_version":2"#),
            DecodeError::UnsupportedVersion(2)
        ));
        assert_eq!(decode_report(b"").unwrap_err(), DecodeError::Empty);
    }
}

/// Whether a reported content is blocked or was lifted by staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentStatus {
    /// Every message with this content is blocked until `until`.
    Blocked,
    /// Staff lifted the block; reports up to `changed_at` no longer count.
    Lifted,
}

/// A record of the compacted `spamflow.reported-content` topic, keyed by `fingerprint`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedContentRecord {
    /// 1.
    pub schema_version: u32,
    /// The masked-text fingerprint of the content, 16 lower-case hex digits.
    pub fingerprint: String,
    /// Blocked or lifted.
    pub status: ContentStatus,
    /// Report time of the report that crossed the line.
    pub since: DateTime<Utc>,
    /// Blocked until then (message time).
    pub until: DateTime<Utc>,
    /// Distinct reporters when it was blocked.
    pub reporters: u32,
    /// The first characters of a reported text, digits masked, for staff to recognise it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excerpt: Option<String>,
    /// Who set this status (`spamflow:reports`, or a person).
    pub changed_by: String,
    /// When.
    pub changed_at: DateTime<Utc>,
    /// Why, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ReportedContentRecord {
    /// Parses and checks a record: schema version 1, a 16-hex-digit fingerprint.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode_fingerprinted(bytes, |r: &Self| (r.schema_version, r.fingerprint.as_str()))
    }
}

/// A record of the compacted `spamflow.report-resolutions` topic, keyed by `report_id`: a
/// report that named only a message id, resolved to the content of that message by the
/// instance that delivered it, so that every instance counts it like a report with text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportResolution {
    /// 1.
    pub schema_version: u32,
    /// The report's id.
    pub report_id: String,
    /// The report's time.
    pub reported_at: DateTime<Utc>,
    /// The reporting subscriber, as in the report.
    pub reporter: String,
    /// The reported message's id.
    pub message_id: String,
    /// The masked-text fingerprint of the message's text, 16 lower-case hex digits.
    pub fingerprint: String,
}

impl ReportResolution {
    /// Parses and checks a record: schema version 1, a 16-hex-digit fingerprint.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode_fingerprinted(bytes, |r: &Self| (r.schema_version, r.fingerprint.as_str()))
    }
}

/// A record of the compacted `spamflow.campaign-contents` topic, keyed by `fingerprint`: a
/// content that a partition blocked as a campaign (one masked text from many senders), so
/// that every partition on every instance warns the recipients it delivered it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignContent {
    /// 1.
    pub schema_version: u32,
    /// The masked-text fingerprint of the content, 16 lower-case hex digits.
    pub fingerprint: String,
    /// Submission time of the copy that was blocked as a campaign's.
    pub detected_at: DateTime<Utc>,
}

impl CampaignContent {
    /// Parses and checks a record: schema version 1, a 16-hex-digit fingerprint.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        decode_fingerprinted(bytes, |r: &Self| (r.schema_version, r.fingerprint.as_str()))
    }
}

/// Parses a record that names a content by its fingerprint and checks it: schema version
/// 1, a fingerprint of 16 lower-case hex digits.
fn decode_fingerprinted<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    fields: impl Fn(&T) -> (u32, &str),
) -> Result<T, String> {
    let r: T = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let (version, fp) = fields(&r);
    if version != 1 {
        return Err(format!("unsupported schema_version {version}"));
    }
    let hex = fp.len() == 16
        && fp
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(format!("fingerprint {fp:?} is not 16 hex digits"));
    }
    Ok(r)
}
