//! `SubmissionEvent` v1: one message submission as an SMSC publishes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Schema versions of `SubmissionEvent` this build reads.
pub const SUPPORTED_EVENT_VERSIONS: &[u32] = &[1];

/// Upper bound on `text` in bytes that the decoder accepts. An MMS body of text can be
/// long, but nothing a carrier sends is near this; larger payloads are almost surely
/// corrupt or hostile and go to the DLQ as `oversized`.
pub const MAX_TEXT_BYTES: usize = 100 * 1024;

/// A message submission (`sms.submissions`, key = normalized sender).
///
/// Unknown fields are ignored so that SMSCs can add fields without breaking us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmissionEvent {
    /// Always 1 for this version.
    pub schema_version: u32,
    /// Unique per submission; the key of every verdict.
    pub message_id: String,
    /// Event time (RFC 3339, UTC). Every window uses this, never the wall clock.
    #[serde(deserialize_with = "crate::rfc3339::deserialize")]
    pub submitted_at: DateTime<Utc>,
    /// Originating address as presented: E.164, national, short code or alphanumeric.
    pub sender: String,
    /// One recipient (multi-recipient submissions are split upstream).
    pub recipient: String,
    /// Message body, UTF-8. Private communication: never logged.
    pub text: String,
    /// SMS, LMS or MMS.
    pub kind: MessageKind,
    /// Where the message entered the carrier's network.
    pub origin: Origin,
    /// Bulk (A2P) relay path; absent for person-to-person traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<Relay>,
}

/// Message type as submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// Short message (up to 90 bytes in Korea).
    Sms,
    /// Long message.
    Lms,
    /// Multimedia message.
    Mms,
}

/// Interconnect the message arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// A domestic interconnect or a local SMSC.
    Domestic,
    /// An international gateway.
    International,
}

/// `origin.*` of a submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Domestic or international interconnect.
    pub route: Route,
    /// Interconnect or international gateway id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Submitting SMSC id.
    pub smsc: String,
    /// ISO 3166 alpha-2 of the originating network, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// `relay.*` of a bulk submission.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Relay {
    /// Relay operator (중계사).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// Reseller (재판매사) account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseller: Option<String>,
    /// First-sender identification code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sender_code: Option<String>,
}

impl SubmissionEvent {
    /// Event time in milliseconds since the Unix epoch.
    pub fn event_time_ms(&self) -> i64 {
        self.submitted_at.timestamp_millis()
    }

    /// The relay operator, if this is bulk traffic.
    pub fn relay_operator(&self) -> Option<&str> {
        self.relay.as_ref().and_then(|r| r.operator.as_deref())
    }
}

/// Why a payload is not a usable `SubmissionEvent`. Each variant names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not UTF-8.
    #[error("payload is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The payload is not JSON, or a field is missing or of the wrong type.
    #[error("field `{field}`: {detail}")]
    Field {
        /// Dotted path of the offending field (`origin.route`), or `.` for the document.
        field: String,
        /// serde's description, e.g. "missing field" or "invalid type: integer, expected a string".
        detail: String,
    },
    /// The document decodes but a value is unusable.
    #[error("field `{field}`: {detail}")]
    Invalid {
        /// Dotted path of the offending field.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A schema version this build cannot read.
    #[error("unsupported schema_version {0} (this build reads {SUPPORTED_EVENT_VERSIONS:?})")]
    UnsupportedVersion(u32),
    /// The payload is empty (a tombstone or an empty record).
    #[error("empty payload")]
    Empty,
}

impl DecodeError {
    /// A short, stable code for the DLQ header and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
            DecodeError::Field { .. } => "bad_field",
            DecodeError::Invalid { .. } => "invalid_value",
            DecodeError::UnsupportedVersion(_) => "unsupported_version",
            DecodeError::Empty => "empty",
        }
    }
}

/// Decodes and validates one `SubmissionEvent` payload.
///
/// The fast path is plain `serde_json`; only a failing document is decoded a second time
/// with path tracking, so that the error names the field without costing the good path.
pub fn decode_submission(payload: &[u8]) -> Result<SubmissionEvent, DecodeError> {
    let json = check_payload(payload)?;
    let event: SubmissionEvent = match serde_json::from_str(json) {
        Ok(ev) => ev,
        Err(_) => return Err(field_error::<SubmissionEvent>(payload)),
    };
    validate(&event)?;
    Ok(event)
}

/// A payload a document can be read from: not empty, UTF-8. The text is parsed from the
/// `&str` returned, so that serde_json does not check each string's UTF-8 a second time.
pub(crate) fn check_payload(payload: &[u8]) -> Result<&str, DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8 {
        offset: e.valid_up_to(),
    })
}

/// The error of a document of type `T` that failed to decode, naming the field.
pub(crate) fn field_error<T: serde::de::DeserializeOwned>(payload: &[u8]) -> DecodeError {
    let de = &mut serde_json::Deserializer::from_slice(payload);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(_) => DecodeError::Field {
            field: ".".into(),
            detail: "trailing data".into(),
        },
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            // serde reports a missing field on its parent; put its name into the path.
            let msg = inner.to_string();
            let detail = redact_values(&strip_position(&msg));
            let field = match missing_field_name(&detail) {
                Some(name) if path == "." => name.to_string(),
                Some(name) => format!("{path}.{name}"),
                None => path,
            };
            DecodeError::Field { field, detail }
        }
    }
}

/// The error with every value taken out of the record replaced by its length: serde's
/// messages quote string values (`invalid type: string "..."`, ``unknown variant `...` ``),
/// and a garbled record can put message text in any field. DLQ headers and logs carry
/// this message.
fn redact_values(detail: &str) -> String {
    let mut out = String::with_capacity(detail.len());
    let mut quoted: Option<usize> = None;
    let mut escaped = false;
    for c in detail.chars() {
        match quoted {
            Some(n) if escaped => {
                escaped = false;
                quoted = Some(n + 1);
            }
            Some(_) if c == '\\' => escaped = true,
            Some(n) if c == '"' => {
                out.push_str(&format!("<{n} characters>\""));
                quoted = None;
            }
            Some(n) => quoted = Some(n + 1),
            None => {
                out.push(c);
                if c == '"' {
                    quoted = Some(0);
                }
            }
        }
    }
    const VARIANT: &str = "unknown variant `";
    if let Some(i) = out.find(VARIANT) {
        let start = i + VARIANT.len();
        if let Some(len) = out[start..].find('`') {
            let n = out[start..start + len].chars().count();
            out.replace_range(start..start + len, &format!("<{n} characters>"));
        }
    }
    out
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn missing_field_name(detail: &str) -> Option<&str> {
    let rest = detail.strip_prefix("missing field `")?;
    rest.split('`').next()
}

/// Longest sender or recipient accepted (an E.164 number is at most 16 bytes, an
/// alphanumeric sender id 11 characters; anything near this is garbage).
pub const MAX_ADDRESS_BYTES: usize = 64;

/// Longest SMSC, gateway, country, relay operator, reseller or first-sender code accepted.
pub const MAX_NAME_BYTES: usize = 64;

fn validate(ev: &SubmissionEvent) -> Result<(), DecodeError> {
    if !SUPPORTED_EVENT_VERSIONS.contains(&ev.schema_version) {
        return Err(DecodeError::UnsupportedVersion(ev.schema_version));
    }
    let non_empty = |field: &'static str, v: &str| {
        if v.trim().is_empty() {
            Err(DecodeError::Invalid {
                field,
                detail: "must not be empty".into(),
            })
        } else {
            Ok(())
        }
    };
    non_empty("message_id", &ev.message_id)?;
    non_empty("sender", &ev.sender)?;
    non_empty("recipient", &ev.recipient)?;
    non_empty("origin.smsc", &ev.origin.smsc)?;
    for (field, v) in [("sender", &ev.sender), ("recipient", &ev.recipient)] {
        if v.len() > MAX_ADDRESS_BYTES {
            return Err(DecodeError::Invalid {
                field,
                detail: format!("{} bytes, limit {MAX_ADDRESS_BYTES}", v.len()),
            });
        }
    }
    // Operator, reseller, code and origin fields become state and changelog keys and
    // metric-bounded names: a bound keeps one event from making a huge key.
    let origin = &ev.origin;
    let bounded = [
        ("origin.smsc", Some(origin.smsc.as_str())),
        ("origin.gateway", origin.gateway.as_deref()),
        ("origin.country", origin.country.as_deref()),
        (
            "relay.operator",
            ev.relay.as_ref().and_then(|r| r.operator.as_deref()),
        ),
        (
            "relay.reseller",
            ev.relay.as_ref().and_then(|r| r.reseller.as_deref()),
        ),
        (
            "relay.first_sender_code",
            ev.relay
                .as_ref()
                .and_then(|r| r.first_sender_code.as_deref()),
        ),
    ];
    for (field, v) in bounded {
        if let Some(v) = v.filter(|v| v.len() > MAX_NAME_BYTES) {
            return Err(DecodeError::Invalid {
                field,
                detail: format!("{} bytes, limit {MAX_NAME_BYTES}", v.len()),
            });
        }
    }
    if ev.message_id.len() > 256 {
        return Err(DecodeError::Invalid {
            field: "message_id",
            detail: format!("{} bytes, limit 256", ev.message_id.len()),
        });
    }
    if ev.text.len() > MAX_TEXT_BYTES {
        return Err(DecodeError::Invalid {
            field: "text",
            detail: format!("{} bytes, limit {MAX_TEXT_BYTES}", ev.text.len()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"schema_version":1,"message_id":"m-1","submitted_at":"2026-03-01T09:00:00Z",
        "sender":"+821012345678","recipient":"+821098765432","text":"안녕하세요","kind":"sms",
        "origin":{"route":"domestic","smsc":"smsc-seoul-1"},"future_field":{"x":1}}"#;

    #[test]
    fn decodes_and_ignores_unknown_fields() {
        let ev = decode_submission(GOOD.as_bytes()).unwrap();
        assert_eq!(ev.message_id, "m-1");
        assert_eq!(ev.origin.route, Route::Domestic);
        assert!(ev.relay.is_none());
        assert_eq!(ev.event_time_ms(), 1_772_355_600_000);
    }

    #[test]
    fn missing_field_is_named() {
        let doc = GOOD.replace(r#""sender":"+821012345678","#, "");
        let err = decode_submission(doc.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            DecodeError::Field {
                field: "sender".into(),
                detail: "missing field `sender`".into()
            }
        );
    }

    #[test]
    fn missing_nested_field_is_named_with_its_path() {
        let doc = GOOD.replace(r#","smsc":"smsc-seoul-1""#, "");
        match decode_submission(doc.as_bytes()).unwrap_err() {
            DecodeError::Field { field, .. } => assert_eq!(field, "origin.smsc"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wrong_type_is_named() {
        let doc = GOOD.replace(r#""route":"domestic""#, r#""route":7"#);
        match decode_submission(doc.as_bytes()).unwrap_err() {
            DecodeError::Field { field, detail } => {
                assert_eq!(field, "origin.route");
                assert!(!detail.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn bad_timestamp_is_named() {
        let doc = GOOD.replace("2026-03-01T09:00:00Z", "yesterday");
        match decode_submission(doc.as_bytes()).unwrap_err() {
            DecodeError::Field { field, .. } => assert_eq!(field, "submitted_at"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_utf8_empty_and_versions() {
        assert_eq!(decode_submission(b""), Err(DecodeError::Empty));
        assert_eq!(
            decode_submission(b"{\"a\":\"\xff\"}"),
            Err(DecodeError::InvalidUtf8 { offset: 6 })
        );
        let v2 = GOOD.replace(r#""schema_version":1"#, r#""schema_version":2"#);
        assert_eq!(
            decode_submission(v2.as_bytes()),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let long = "1".repeat(65);
        let long_sender = GOOD.replace("+821012345678", &long);
        assert_eq!(
            decode_submission(long_sender.as_bytes()),
            Err(DecodeError::Invalid {
                field: "sender",
                detail: "65 bytes, limit 64".into()
            })
        );
        let empty_sender = GOOD.replace("+821012345678", " ");
        assert_eq!(
            decode_submission(empty_sender.as_bytes())
                .unwrap_err()
                .code(),
            "invalid_value"
        );
    }

    #[test]
    fn rejects_oversized_text() {
        let big = "가".repeat(MAX_TEXT_BYTES / 3 + 1);
        let doc = GOOD.replace("안녕하세요", &big);
        match decode_submission(doc.as_bytes()).unwrap_err() {
            DecodeError::Invalid { field, .. } => assert_eq!(field, "text"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn not_json_is_an_error_not_a_panic() {
        let err = decode_submission(b"not json at all").unwrap_err();
        assert_eq!(err.code(), "bad_field");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = decode_submission(&bytes);
        }
    }

    #[test]
    fn unbounded_relay_and_origin_fields_are_refused_naming_the_field() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        for (field, patch) in [
            (
                "relay.operator",
                serde_json::json!({"relay": {"operator": long}}),
            ),
            (
                "relay.reseller",
                serde_json::json!({"relay": {"reseller": long}}),
            ),
            (
                "relay.first_sender_code",
                serde_json::json!({"relay": {"first_sender_code": long}}),
            ),
            (
                "origin.gateway",
                serde_json::json!({"origin": {"route": "international", "smsc": "s", "gateway": long}}),
            ),
            (
                "origin.country",
                serde_json::json!({"origin": {"route": "domestic", "smsc": "s", "country": long}}),
            ),
            (
                "origin.smsc",
                serde_json::json!({"origin": {"route": "domestic", "smsc": long}}),
            ),
        ] {
            let mut doc: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            for (k, v) in patch.as_object().unwrap() {
                doc[k] = v.clone();
            }
            let err = decode_submission(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
            assert_eq!(err.code(), "invalid_value", "{field}: {err}");
            assert!(err.to_string().contains(field), "{err}");
        }
        let mut doc: serde_json::Value = serde_json::from_str(GOOD).unwrap();
        doc["relay"] = serde_json::json!({"operator": "x".repeat(MAX_NAME_BYTES)});
        assert!(decode_submission(&serde_json::to_vec(&doc).unwrap()).is_ok());
    }

    #[test]
    fn errors_never_quote_values_from_the_record() {
        for patch in [
            serde_json::json!({"kind": "비밀 메시지 secret"}),
            serde_json::json!({"schema_version": "비밀 메시지 secret"}),
            serde_json::json!({"origin": {"route": "비밀 \"메시지\" secret", "smsc": "s"}}),
        ] {
            let mut doc: serde_json::Value = serde_json::from_str(GOOD).unwrap();
            for (k, v) in patch.as_object().unwrap() {
                doc[k] = v.clone();
            }
            let err = decode_submission(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
            let msg = err.to_string();
            assert!(!msg.contains("secret") && !msg.contains("메시지"), "{msg}");
            assert!(msg.contains("characters>"), "{msg}");
        }
    }
}
