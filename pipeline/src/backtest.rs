//! `spamflow backtest`: the operator chain and policy over SubmissionEvent JSON lines,
//! without Kafka.
//!
//! Events are processed in event-time order (a stable sort on `submitted_at`, so equal
//! times keep file order) through the same [`Chain`](spamflow_operators::Chain) the
//! pipeline runs. `decided_at` is set to `submitted_at`: a backtest has no wall clock, and
//! its output is byte-for-byte reproducible.
//!
//! Stateful operators keep state per input partition (campaign counts and relay quotas
//! are partition-local). With `partitions = 1` everything is one partition; with `P`,
//! each event goes to the partition a librdkafka producer with the default partitioner
//! (`consistent_random`: CRC-32 of the key) would give it, the key being the normalized
//! sender, so the verdicts equal those of a pipeline on a `P`-partition topic whose
//! records were produced in event-time order.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use serde::Serialize;
use spamflow_operators::{ChainBuilder, EventCtx};
use spamflow_schemas::{decode_submission, SubmissionEvent};

/// A line that is not a usable event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    /// Stable error code (as in the DLQ header).
    pub code: &'static str,
    /// What is wrong (names the field; never the message body).
    pub error: String,
}

/// What a backtest did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Events decoded and decided.
    pub events: u64,
    /// Lines that were not events.
    pub bad_lines: Vec<BadLine>,
    /// Verdicts by action.
    pub by_action: BTreeMap<String, u64>,
    /// Reasons by category (a verdict with two categories counts in both).
    pub by_category: BTreeMap<String, u64>,
    /// `rules_version` of the chain.
    pub rules_version: String,
    /// Processing time (decode excluded).
    #[serde(with = "humantime_serde_compat")]
    pub elapsed: Duration,
}

mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

impl Summary {
    /// Events per second of the operator chain.
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A human-readable report.
    pub fn render(&self) -> String {
        let mut s = format!(
            "backtest: {} events, {} bad lines, rules_version {}, {:.0} events/s\n",
            self.events,
            self.bad_lines.len(),
            self.rules_version,
            self.events_per_sec()
        );
        s.push_str("  action      count\n");
        for (a, n) in &self.by_action {
            s.push_str(&format!("  {a:<10} {n:>6}\n"));
        }
        if !self.by_category.is_empty() {
            s.push_str("  category    reasons\n");
            for (c, n) in &self.by_category {
                s.push_str(&format!("  {c:<10} {n:>6}\n"));
            }
        }
        for b in self.bad_lines.iter().take(20) {
            s.push_str(&format!("  line {}: {} ({})\n", b.line, b.error, b.code));
        }
        if self.bad_lines.len() > 20 {
            s.push_str(&format!(
                "  ... and {} more bad lines\n",
                self.bad_lines.len() - 20
            ));
        }
        s
    }
}

/// Decodes every line; bad lines are reported, never dropped silently.
pub fn read_events(input: impl BufRead) -> std::io::Result<(Vec<SubmissionEvent>, Vec<BadLine>)> {
    let mut events = Vec::new();
    let mut bad = Vec::new();
    for (i, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_submission(line) {
            Ok(ev) => events.push(ev),
            Err(e) => bad.push(BadLine {
                line: i + 1,
                code: e.code(),
                error: e.to_string(),
            }),
        }
    }
    Ok((events, bad))
}

/// CRC-32 (IEEE), as librdkafka's `rd_crc32`.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The partition librdkafka's default partitioner gives `key` among `partitions`.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (crc32(key) % partitions.max(1) as u32) as i32
}

/// Runs `events` through a chain from `builder` in event-time order, as `partitions`
/// input partitions, and writes one verdict per line to `out`.
pub fn run(
    builder: &ChainBuilder,
    mut events: Vec<SubmissionEvent>,
    partitions: i32,
    out: &mut impl Write,
) -> std::io::Result<Summary> {
    events.sort_by_key(|e| e.submitted_at);
    let partitions = partitions.max(1);
    let mut chain = builder.build();
    for p in 0..partitions {
        chain.assigned(p);
    }
    let mut summary = Summary {
        rules_version: chain.rules_version().to_owned(),
        ..Summary::default()
    };
    let t0 = Instant::now();
    for ev in &events {
        let sender = chain.sender(&ev.sender);
        let ctx = EventCtx {
            event: ev,
            sender: &sender,
            partition: if partitions == 1 {
                0
            } else {
                partition_of(sender.key.as_bytes(), partitions)
            },
            event_time_ms: ev.event_time_ms(),
            counted: false,
        };
        let v = chain.process(&ctx, ev.submitted_at);
        summary.events += 1;
        *summary
            .by_action
            .entry(v.action.as_str().to_owned())
            .or_default() += 1;
        let mut cats: Vec<&str> = v.reasons.iter().map(|r| &*r.category).collect();
        cats.sort_unstable();
        cats.dedup();
        for c in cats {
            *summary.by_category.entry(c.to_owned()).or_default() += 1;
        }
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
    }
    summary.elapsed = t0.elapsed();
    out.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_like_librdkafka() {
        // rd_crc32 is CRC-32/ISO-HDLC: the check value of "123456789" is 0xCBF43926.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(partition_of(b"123456789", 7), (0xCBF4_3926u32 % 7) as i32);
    }
    use spamflow_operators::PolicyConfig;
    use spamflow_schemas::Verdict;

    #[test]
    fn reports_bad_lines_and_orders_by_event_time() {
        let input = concat!(
            r#"{"schema_version":1,"message_id":"b","submitted_at":"2026-03-01T09:00:05Z","sender":"s","recipient":"r","text":"t","kind":"sms","origin":{"route":"domestic","smsc":"x"}}"#,
            "\n\nnot json\n",
            r#"{"schema_version":1,"message_id":"a","submitted_at":"2026-03-01T09:00:01Z","sender":"s","recipient":"r","text":"t","kind":"sms","origin":{"route":"domestic","smsc":"x"}}"#,
            "\n",
            r#"{"schema_version":1,"message_id":"c","submitted_at":"2026-03-01T09:00:01Z","recipient":"r","text":"t","kind":"sms","origin":{"route":"domestic","smsc":"x"}}"#,
            "\n"
        );
        let (events, bad) = read_events(input.as_bytes()).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(
            bad.iter().map(|b| (b.line, b.code)).collect::<Vec<_>>(),
            vec![(3, "bad_field"), (5, "bad_field")]
        );
        assert!(bad[1].error.contains("`sender`"));
        let builder = ChainBuilder::new(PolicyConfig::default().build());
        let mut out = Vec::new();
        let summary = run(&builder, events, 1, &mut out).unwrap();
        let ids: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Verdict>(l)
                    .unwrap()
                    .message_id
                    .into_owned()
            })
            .collect();
        assert_eq!(ids, vec!["a", "b"]);
        assert_eq!(summary.by_action.get("allow"), Some(&2));
    }
}
