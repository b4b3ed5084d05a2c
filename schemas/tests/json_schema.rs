//! Sample documents round-trip through the Rust types and validate against the JSON
//! Schemas; documents the Rust types emit validate too.

use spamflow_schemas::{
    decode_report, decode_submission, OperatorStats, SpamReport, SubmissionEvent, Verdict,
};

fn schema(name: &str) -> jsonschema::Validator {
    let path = format!("{}/json/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&value)
        .unwrap()
}

fn lines(name: &str) -> Vec<String> {
    let path = format!("{}/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_valid(v: &jsonschema::Validator, doc: &serde_json::Value) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{doc} does not validate: {errors:?}");
}

#[test]
fn submission_samples_round_trip_and_validate() {
    let v = schema("submission-event.v1.schema.json");
    let samples = lines("events.jsonl");
    assert!(samples.len() >= 3);
    for line in samples {
        let raw: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_valid(&v, &raw);
        let ev = decode_submission(line.as_bytes()).unwrap();
        let emitted = serde_json::to_value(&ev).unwrap();
        assert_valid(&v, &emitted);
        let again: SubmissionEvent = serde_json::from_value(emitted).unwrap();
        assert_eq!(again, ev);
    }
}

#[test]
fn verdict_samples_round_trip_and_validate() {
    let v = schema("verdict.v1.schema.json");
    for line in lines("verdicts.jsonl") {
        let raw: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_valid(&v, &raw);
        let verdict: Verdict = serde_json::from_str(&line).unwrap();
        let emitted = serde_json::to_value(&verdict).unwrap();
        assert_valid(&v, &emitted);
        let again: Verdict = serde_json::from_value(emitted).unwrap();
        assert_eq!(again, verdict);
    }
}

#[test]
fn schema_rejects_what_the_decoder_rejects() {
    let v = schema("submission-event.v1.schema.json");
    let good = &lines("events.jsonl")[0];
    for (from, to) in [
        (r#""kind":"sms""#, r#""kind":"fax""#),
        (r#""schema_version":1"#, r#""schema_version":"1""#),
        (r#""sender":"+821012345678","#, ""),
    ] {
        let bad = good.replace(from, to);
        assert_ne!(&bad, good);
        let doc: serde_json::Value = serde_json::from_str(&bad).unwrap();
        assert!(!v.is_valid(&doc), "schema accepted {bad}");
        assert!(
            decode_submission(bad.as_bytes()).is_err(),
            "decoder accepted {bad}"
        );
    }
}

#[test]
fn report_samples_round_trip_and_validate_and_the_schema_refuses_what_the_decoder_does() {
    let v = schema("spam-report.v1.schema.json");
    let samples = lines("reports.jsonl");
    assert!(samples.len() >= 3);
    for line in &samples {
        let raw: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_valid(&v, &raw);
        let r = decode_report(line.as_bytes()).unwrap();
        let emitted = serde_json::to_value(&r).unwrap();
        assert_valid(&v, &emitted);
        let again: SpamReport = serde_json::from_value(emitted).unwrap();
        assert_eq!(again, r);
    }
    // Neither text nor message id: both refuse it.
    let mut doc: serde_json::Value = serde_json::from_str(&samples[0]).unwrap();
    doc.as_object_mut().unwrap().remove("text");
    assert!(!v.is_valid(&doc));
    assert!(decode_report(doc.to_string().as_bytes()).is_err());
}

#[test]
fn operator_stats_samples_round_trip_and_validate() {
    let v = schema("operator-stats.v1.schema.json");
    let samples = lines("operator-stats.jsonl");
    assert!(samples.len() >= 2);
    for line in samples {
        let raw: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_valid(&v, &raw);
        let rec: OperatorStats = serde_json::from_str(&line).unwrap();
        let emitted = serde_json::to_value(&rec).unwrap();
        assert_valid(&v, &emitted);
        let again: OperatorStats = serde_json::from_value(emitted).unwrap();
        assert_eq!(again, rec);
    }
    let bad: serde_json::Value =
        serde_json::from_str(r#"{"schema_version":1,"hour":"2026-12-02T05:00:00Z","partition":0,"rows":[{"relay_operator":"x","messages":-1,"allowed":0,"labelled":0,"throttled":0,"blocked":0}]}"#).unwrap();
    assert!(!v.is_valid(&bad));
}
