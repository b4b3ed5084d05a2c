//! The bundled sample traffic replayed by embedded mode.
//!
//! `data/sample-traffic.jsonl` was written by `spamflow-loadtest synth --seed 7 --count 2000`
//! (see `make sample`); malformed records are made here, one of each DLQ error kind.

use spamflow_schemas::{decode_submission, DecodeError, SubmissionEvent};

const SAMPLE: &str = include_str!("../data/sample-traffic.jsonl");
const REGISTRY: &str = include_str!("../data/sample-registry.jsonl");

/// Registration records of the sample's legitimate bulk senders (written by
/// `spamflow-loadtest synth --registry`).
pub fn registry() -> Result<Vec<spamflow_schemas::RegistrationRecord>, serde_json::Error> {
    REGISTRY
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}

/// The bundled events, decoded.
pub fn events() -> Result<Vec<SubmissionEvent>, DecodeError> {
    SAMPLE
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| decode_submission(l.as_bytes()))
        .collect()
}

/// One record of each kind of bad input the DLQ must catch.
pub fn malformed() -> Vec<Vec<u8>> {
    let good = SAMPLE.lines().next().unwrap_or_default();
    vec![
        b"{\"schema_version\":1,\"message_id\":".to_vec(),
        good.replace("\"sender\":", "\"sender_number\":")
            .into_bytes(),
        good.replace("\"kind\":\"sms\"", "\"kind\":42")
            .replace("\"kind\":\"lms\"", "\"kind\":42")
            .into_bytes(),
        {
            let mut b = good.as_bytes().to_vec();
            b.splice(10..10, [0xff, 0xfe]);
            b
        },
        good.replace("\"schema_version\":1", "\"schema_version\":9")
            .into_bytes(),
        Vec::new(),
        vec![b' '; 300 * 1024],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_decodes_and_every_malformed_record_fails() {
        assert!(events().unwrap().len() >= 1000);
        assert!(registry().unwrap().len() >= 10);
        let codes: Vec<&str> = malformed()
            .iter()
            .filter(|b| b.len() < 1024)
            .map(|b| decode_submission(b).unwrap_err().code())
            .collect();
        assert_eq!(
            codes,
            vec![
                "bad_field",
                "bad_field",
                "bad_field",
                "invalid_utf8",
                "unsupported_version",
                "empty"
            ]
        );
    }
}
