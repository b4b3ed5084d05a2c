//! `spamflow reported`: the contents blocked because subscribers reported them, for the
//! carrier's staff, and lifting a block by hand.
//!
//! Blocks are records of the compacted `topics.reported_content`, keyed by the content's
//! fingerprint, published by the instances that derived them from `topics.reports`. A
//! lift is a new record of the same key with status `lifted` and who, when and why; every
//! instance follows the topic, unblocks the content within a poll, and from then on
//! counts only reports made after the lift. Reads are read-only (no consumer group, no
//! commits, read_committed).

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use rdkafka::message::Message;
use spamflow_schemas::{ContentStatus, ReportedContentRecord};

use crate::config::Config;
use crate::numbers::NumbersFormat;

/// The latest record of every fingerprint in the topic.
pub fn read_current(cfg: &Config) -> anyhow::Result<BTreeMap<String, ReportedContentRecord>> {
    let mut current = BTreeMap::new();
    let mut unreadable = 0u64;
    crate::kafka::read_to_end(cfg, "reported", &cfg.topics.reported_content, None, |m| {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        match m.payload().map(ReportedContentRecord::decode) {
            None => {
                current.remove(&key);
            }
            Some(Ok(r)) => {
                current.insert(key, r);
            }
            Some(Err(_)) => unreadable += 1,
        }
    })?;
    if unreadable > 0 {
        eprintln!("{unreadable} reported-content record(s) could not be read and were skipped");
    }
    Ok(current)
}

/// Whether `r` blocks messages at `now`.
pub fn in_force(r: &ReportedContentRecord, now: DateTime<Utc>) -> bool {
    r.status == ContentStatus::Blocked && now < r.until
}

/// The record that lifts `r`: status lifted, by `by` at `at`, because `reason`.
pub fn lift(
    r: &ReportedContentRecord,
    by: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<ReportedContentRecord> {
    anyhow::ensure!(
        !by.trim().is_empty() && !reason.trim().is_empty(),
        "--by and --reason must not be empty: they are the audit trail"
    );
    anyhow::ensure!(
        r.status == ContentStatus::Blocked,
        "content {} is not blocked (it was lifted by {} at {})",
        r.fingerprint,
        r.changed_by,
        r.changed_at.format("%Y-%m-%dT%H:%M:%SZ")
    );
    Ok(ReportedContentRecord {
        status: ContentStatus::Lifted,
        changed_by: by.to_owned(),
        changed_at: at,
        reason: Some(reason.to_owned()),
        ..r.clone()
    })
}

/// Prints records as a table or JSON lines.
pub fn render<'a>(
    records: impl IntoIterator<Item = &'a ReportedContentRecord>,
    format: NumbersFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let time = |t: &DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut rows = Vec::new();
    for r in records {
        if format == NumbersFormat::Json {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
            continue;
        }
        rows.push([
            r.fingerprint.clone(),
            match r.status {
                ContentStatus::Blocked => "blocked".into(),
                ContentStatus::Lifted => "lifted".into(),
            },
            r.reporters.to_string(),
            time(&r.since),
            time(&r.until),
            r.changed_by.clone(),
            r.excerpt.clone().unwrap_or_default(),
        ]);
    }
    if format == NumbersFormat::Table {
        let head = [
            "fingerprint",
            "status",
            "reporters",
            "since",
            "until",
            "by",
            "excerpt",
        ];
        crate::numbers::table(out, &head, &rows)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked() -> ReportedContentRecord {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        ReportedContentRecord {
            schema_version: 1,
            fingerprint: "00ff00ff00ff00ff".into(),
            status: ContentStatus::Blocked,
            since: t("2026-12-02T09:00:00Z"),
            until: t("2026-12-03T09:00:00Z"),
            reporters: 3,
            excerpt: Some("[Web발신] 무료 ***".into()),
            changed_by: "spamflow:reports".into(),
            changed_at: t("2026-12-02T09:00:00Z"),
            reason: None,
        }
    }

    #[test]
    fn a_lift_keeps_the_block_and_says_who_when_and_why_and_is_refused_twice() {
        let at = "2026-12-02T10:00:00Z".parse().unwrap();
        let l = lift(&blocked(), "kim", "a charity's appeal, not spam", at).unwrap();
        assert_eq!(l.status, ContentStatus::Lifted);
        assert_eq!((l.changed_by.as_str(), l.changed_at), ("kim", at));
        assert_eq!(l.since, blocked().since);
        assert!(!in_force(&l, at));
        assert!(in_force(&blocked(), at));
        let again = lift(&l, "lee", "again", at).unwrap_err().to_string();
        assert!(
            again.contains("not blocked") && again.contains("kim"),
            "{again}"
        );
        assert!(lift(&blocked(), " ", "why", at).is_err());
        let mut out = Vec::new();
        render([&blocked(), &l], NumbersFormat::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("fingerprint"), "{text}");
        assert!(
            text.contains("lifted") && text.contains("무료 ***"),
            "{text}"
        );
    }
}
