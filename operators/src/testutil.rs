//! Events and verdicts for the stateful operators' unit tests.

use spamflow_schemas::{Action, Reason, SubmissionEvent, Verdict};

/// A domestic SMS from `sender` to `recipient` at `at_ms`.
pub fn event(id: &str, sender: &str, recipient: &str, text: &str, at_ms: i64) -> SubmissionEvent {
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "message_id": id,
        "submitted_at": chrono::DateTime::from_timestamp_millis(at_ms).unwrap(),
        "sender": sender, "recipient": recipient, "text": text, "kind": "sms",
        "origin": {"route": "domestic", "smsc": "smsc-1"}
    }))
    .unwrap()
}

/// The first sample verdict with `action`, `score` and a pattern reason per category.
pub fn verdict(action: Action, score: u8, categories: &[&str]) -> Verdict<'static> {
    let mut v: Verdict = serde_json::from_str(
        include_str!("../../schemas/samples/verdicts.jsonl")
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    v.action = action;
    v.score = score;
    v.reasons = categories
        .iter()
        .map(|c| Reason {
            operator: "pattern".into(),
            code: format!("{c}.x").into(),
            category: c.to_string().into(),
            score: 90,
            evidence: None,
            span: None,
        })
        .collect();
    v
}
