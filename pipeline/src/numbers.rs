//! `spamflow numbers`: suspended sender numbers, for the carrier's staff.
//!
//! A suspension is a record in the compacted sender registry (`topics.registry`) with
//! status `suspended` and who made it, when and why (`changed_by`, `changed_at`,
//! `reason`, and `reporters` for one made from subscribers' reports). Every instance
//! follows the registry, so a suspended number is blocked everywhere within a poll.
//! Staff suspend and release with this tool; each change is a new record, so the topic
//! holds the trail of changes (until compaction keeps only the latest record of a
//! number). Reads are read-only (no consumer group, no commits, read_committed).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rdkafka::message::Message;
use spamflow_operators::origin::{parse_sender, Registry};
use spamflow_operators::reports::{ReportedNumbers, Suspend};
use spamflow_schemas::{decode_report, RegistrationRecord, RegistrationStatus};

use crate::config::Config;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NumbersFormat {
    /// Aligned columns.
    Table,
    /// One JSON record per line.
    Json,
}

/// Every record of each number still in the registry topic, oldest first (`None`: a
/// tombstone), keyed by the normalized number.
pub type History = BTreeMap<String, Vec<Option<RegistrationRecord>>>;

/// Reads the registry topic to its end.
pub fn read_history(cfg: &Config) -> anyhow::Result<History> {
    let mut history = History::new();
    let mut unreadable = 0u64;
    crate::kafka::read_to_end(cfg, "numbers", &cfg.topics.registry, None, |m| {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        match m
            .payload()
            .map(serde_json::from_slice::<RegistrationRecord>)
        {
            None => history.entry(key).or_default().push(None),
            Some(Ok(r)) => history.entry(key).or_default().push(Some(r)),
            Some(Err(_)) => unreadable += 1,
        }
    })?;
    if unreadable > 0 {
        eprintln!("{unreadable} registry record(s) could not be read and were skipped");
    }
    Ok(history)
}

/// The current record of every number (tombstoned numbers left out).
pub fn current(history: &History) -> BTreeMap<&str, &RegistrationRecord> {
    history
        .iter()
        .filter_map(|(k, h)| Some((k.as_str(), h.last()?.as_ref()?)))
        .collect()
}

/// A status change by a member of staff: the number's current record (or, for a number
/// that was never registered, a record of its own) with the new status, `by`, `reason`
/// and `at`. Suspending a suspended number or releasing one that is not suspended is an
/// error, so that a change always means something in the trail.
pub fn change(
    history: &History,
    number: &str,
    status: RegistrationStatus,
    by: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> anyhow::Result<RegistrationRecord> {
    let id = parse_sender(number);
    anyhow::ensure!(
        id.kind.is_number(),
        "{number:?} is not a valid phone number ({})",
        id.kind.as_str()
    );
    anyhow::ensure!(!by.trim().is_empty(), "--by must name who makes the change");
    anyhow::ensure!(!reason.trim().is_empty(), "--reason must say why");
    let now = history
        .get(&id.key)
        .and_then(|h| h.last().cloned().flatten());
    let was = now
        .as_ref()
        .map_or(RegistrationStatus::Active, |r| r.status);
    anyhow::ensure!(
        was != status,
        "{} is {} already",
        id.key,
        status_name(status)
    );
    let mut rec = now.unwrap_or_else(|| RegistrationRecord {
        number: id.key.clone(),
        ..RegistrationRecord::default()
    });
    rec.status = status;
    rec.changed_by = Some(by.trim().to_owned());
    rec.changed_at = Some(at);
    rec.reason = Some(reason.trim().to_owned());
    rec.reporters = None;
    Ok(rec)
}

/// Numbers proposed for suspension since `since` and not suspended, as the suspension
/// record each would get: those enough distinct subscribers reported (what
/// `reports.suspend = "propose"` leaves to staff; reports up to a number's last status
/// change do not count), and those the numbers operator proposed for their spam blocks
/// (`numbers.suspend = "propose"`, `topics.number_proposals`) after their last change.
pub fn proposals(
    cfg: &Config,
    history: &History,
    since: DateTime<Utc>,
) -> anyhow::Result<Vec<RegistrationRecord>> {
    let registry = Registry::new();
    for (number, rec) in current(history) {
        // Records the pipeline could not apply are skipped by it too.
        let _ = registry.put(&RegistrationRecord {
            number: number.to_owned(),
            ..rec.clone()
        });
    }
    let mut cfg = cfg.clone();
    if cfg.reports.suspend == Suspend::Off {
        cfg.reports.suspend = Suspend::Propose;
    }
    let mut numbers = ReportedNumbers::new(&cfg.reports);
    let mut found: BTreeMap<String, RegistrationRecord> = BTreeMap::new();
    crate::kafka::read_to_end(&cfg, "numbers", &cfg.topics.reports, Some(since), |m| {
        let Ok(r) = decode_report(m.payload().unwrap_or_default()) else {
            return;
        };
        if let Some(rec) = crate::reports::count_number(&cfg, &mut numbers, &registry, &r) {
            found.insert(rec.number.clone(), rec);
        }
    })?;
    let mut proposed: BTreeMap<String, RegistrationRecord> = BTreeMap::new();
    crate::kafka::read_to_end(&cfg, "numbers", &cfg.topics.number_proposals, None, |m| {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        match m
            .payload()
            .map(serde_json::from_slice::<RegistrationRecord>)
        {
            Some(Ok(r)) => {
                proposed.insert(key, r);
            }
            None => {
                proposed.remove(&key);
            }
            Some(Err(_)) => {}
        }
    })?;
    for (number, rec) in proposed {
        let at = rec.changed_at.map(|t| t.timestamp_millis()).unwrap_or(0);
        let settled = registry.is_suspended(&number)
            || registry.changed_at_ms(&number).is_some_and(|c| c >= at);
        if !settled && at >= since.timestamp_millis() {
            found.entry(number).or_insert(rec);
        }
    }
    Ok(found.into_values().collect())
}

fn status_name(s: RegistrationStatus) -> &'static str {
    match s {
        RegistrationStatus::Active => "active",
        RegistrationStatus::Suspended => "suspended",
    }
}

/// Prints records, one per line.
pub fn render<'a>(
    records: impl IntoIterator<Item = &'a RegistrationRecord>,
    format: NumbersFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let records: Vec<&RegistrationRecord> = records.into_iter().collect();
    if format == NumbersFormat::Json {
        for r in records {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        return Ok(());
    }
    let dash = |s: Option<&str>| s.filter(|s| !s.is_empty()).unwrap_or("-").to_owned();
    let rows: Vec<[String; 7]> = records
        .iter()
        .map(|r| {
            [
                r.number.clone(),
                status_name(r.status).to_owned(),
                dash(Some(&r.relay_operator)),
                dash(Some(&r.owner)),
                r.changed_at.map_or_else(
                    || "-".into(),
                    |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                ),
                dash(r.changed_by.as_deref()),
                dash(r.reason.as_deref()),
            ]
        })
        .collect();
    let head = [
        "number",
        "status",
        "relay operator",
        "owner",
        "changed at",
        "by",
        "reason",
    ];
    table(out, &head, &rows)
}

/// Writes `rows` under `head` in aligned columns (the last one as it is).
pub fn table<const N: usize>(
    out: &mut impl Write,
    head: &[&str; N],
    rows: &[[String; N]],
) -> anyhow::Result<()> {
    let mut width = head.map(str::len);
    for row in rows {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s
    };
    writeln!(out, "{}", line(head))?;
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
}

/// Publishes one record of a number.
pub fn publish(cfg: &Config, rec: RegistrationRecord) -> anyhow::Result<()> {
    let number = rec.number.clone();
    crate::registry::publish(cfg, &cfg.kafka.brokers, &[(number.clone(), Some(rec))])
        .with_context(|| format!("publishing the record of {number}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn staff_changes_keep_the_registration_and_say_who_when_and_why() {
        let mut history = History::new();
        let registered = RegistrationRecord {
            number: "+8215881234".into(),
            owner: "Acme".into(),
            relay_operator: "relay-a".into(),
            ..RegistrationRecord::default()
        };
        history.insert("+8215881234".into(), vec![Some(registered)]);
        let t = at("2026-12-02T10:00:00Z");
        let s = change(
            &history,
            "1588-1234",
            RegistrationStatus::Suspended,
            "kim",
            "KISA request 2026-118",
            t,
        )
        .unwrap();
        assert_eq!(
            (s.owner.as_str(), s.relay_operator.as_str(), s.status),
            ("Acme", "relay-a", RegistrationStatus::Suspended)
        );
        assert_eq!(
            (s.changed_by.as_deref(), s.changed_at, s.reason.as_deref()),
            (Some("kim"), Some(t), Some("KISA request 2026-118"))
        );
        history.get_mut("+8215881234").unwrap().push(Some(s));
        let err = change(
            &history,
            "+8215881234",
            RegistrationStatus::Suspended,
            "kim",
            "again",
            t,
        )
        .unwrap_err();
        assert!(err.to_string().contains("suspended already"), "{err}");
        // A number never registered can be suspended; releasing one that is not
        // suspended says so; who and why are required.
        let p2p = change(
            &history,
            "010-9876-5432",
            RegistrationStatus::Suspended,
            "lee",
            "smishing",
            t,
        )
        .unwrap();
        assert_eq!(
            (p2p.number.as_str(), p2p.owner.as_str()),
            ("+821098765432", "")
        );
        assert!(change(
            &history,
            "01098765432",
            RegistrationStatus::Active,
            "lee",
            "ok",
            t
        )
        .is_err());
        assert!(change(
            &history,
            "+8215881234",
            RegistrationStatus::Active,
            " ",
            "ok",
            t
        )
        .is_err());
        assert!(change(
            &history,
            "+8215881234",
            RegistrationStatus::Active,
            "lee",
            "",
            t
        )
        .is_err());
        assert!(change(
            &history,
            "not a number",
            RegistrationStatus::Suspended,
            "lee",
            "x",
            t
        )
        .is_err());
    }

    #[test]
    fn tables_show_every_record_and_json_round_trips() {
        let rec = RegistrationRecord {
            number: "+821098765432".into(),
            status: RegistrationStatus::Suspended,
            changed_by: Some("spamflow:reports".into()),
            changed_at: Some(at("2026-12-02T09:00:05Z")),
            reason: Some("reported by 5 distinct subscribers within 3600 s".into()),
            reporters: Some(5),
            ..RegistrationRecord::default()
        };
        let mut out = Vec::new();
        render([&rec], NumbersFormat::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().next().unwrap().starts_with("number"));
        assert!(text.contains("+821098765432  suspended  -"), "{text}");
        assert!(text.contains("2026-12-02T09:00:05Z  spamflow:reports  reported by 5"));
        let mut out = Vec::new();
        render([&rec], NumbersFormat::Json, &mut out).unwrap();
        let back: RegistrationRecord = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, rec);
    }
}
