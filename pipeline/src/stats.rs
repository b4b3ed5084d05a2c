//! `spamflow stats`: the regulator's table of spam statistics per relay operator, read
//! from the compacted `topics.operator_stats` topic.
//!
//! Every record there is one input partition's counts for one hour
//! ([`spamflow_schemas::OperatorStats`]), written by the statistics operator in the same
//! transaction as the verdicts. The reader takes every partition from its beginning to
//! its end (read_committed, no consumer group, no commits), keeps the latest record per
//! key (what compaction would keep), and sums hours and partitions into periods: hours,
//! days or months in a fixed UTC offset (Korea's by default).
//!
//! Reports received come from `topics.reports` (by report time), each attributed to the
//! relay operator (and reseller) the reported number is registered to in the sender
//! registry; reports of numbers that are not registered count under `none`, like traffic
//! without a relay operator.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use chrono::{DateTime, Datelike as _, FixedOffset, NaiveDate, Timelike as _, Utc};
use rdkafka::message::Message;
use serde::Serialize;
use spamflow_schemas::{OperatorStats, StatsCounts};

use crate::config::Config;

/// How hours are summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Period {
    /// One row per hour.
    Hour,
    /// One row per day.
    Day,
    /// One row per month.
    Month,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatsFormat {
    /// Aligned columns.
    Table,
    /// Comma-separated, with a header line.
    Csv,
    /// One JSON object per line.
    Json,
}

/// One row of the table: a period and a relay operator (and reseller, when asked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodRow {
    /// `2026-12-02T09`, `2026-12-02` or `2026-12` in the chosen offset.
    pub period: String,
    /// Relay operator (`none` for traffic without one).
    pub relay_operator: String,
    /// Reseller, when rows are split by reseller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reseller: Option<String>,
    /// The summed counts.
    #[serde(flatten)]
    pub counts: StatsCounts,
    /// Subscribers' reports of numbers registered to this relay operator (and reseller),
    /// by report time.
    pub reports: u64,
}

impl PeriodRow {
    /// Reports per 10,000 messages (0 without messages).
    pub fn reports_per_10k(&self) -> f64 {
        if self.counts.messages == 0 {
            0.0
        } else {
            self.reports as f64 * 10_000.0 / self.counts.messages as f64
        }
    }
}

/// One subscriber's report: when, and the relay operator and reseller of the reported
/// number (`none` and empty when it is not registered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Report time.
    pub at: DateTime<Utc>,
    /// Relay operator the reported number is registered to, or `none`.
    pub relay_operator: String,
    /// Its reseller, or empty.
    pub reseller: String,
}

/// Reads the reports since `from` (all with `None`) and attributes each with the sender
/// registry as it is now.
pub fn read_reports(cfg: &Config, from: Option<DateTime<Utc>>) -> anyhow::Result<Vec<Report>> {
    let history = crate::numbers::read_history(cfg)?;
    let registered = crate::numbers::current(&history);
    let mut out = Vec::new();
    crate::kafka::read_to_end(cfg, "stats", &cfg.topics.reports, from, |m| {
        let Ok(r) = spamflow_schemas::decode_report(m.payload().unwrap_or_default()) else {
            return;
        };
        let key = spamflow_operators::origin::parse_sender(&r.sender).key;
        let (relay_operator, reseller) = match registered.get(key.as_str()) {
            Some(rec) if !rec.relay_operator.is_empty() => (
                rec.relay_operator.clone(),
                rec.reseller.clone().unwrap_or_default(),
            ),
            _ => (
                spamflow_operators::stats::NO_OPERATOR.to_owned(),
                String::new(),
            ),
        };
        out.push(Report {
            at: r.reported_at,
            relay_operator,
            reseller,
        });
    })?;
    Ok(out)
}

/// What to sum.
#[derive(Debug, Clone)]
pub struct Query {
    /// Row period.
    pub period: Period,
    /// Periods and dates are in this offset.
    pub offset: FixedOffset,
    /// First local date counted.
    pub from: Option<NaiveDate>,
    /// Last local date counted.
    pub to: Option<NaiveDate>,
    /// One row per reseller too.
    pub by_reseller: bool,
}

/// Reads every current record of `topics.operator_stats` (the latest per key).
pub fn read(cfg: &Config) -> anyhow::Result<Vec<OperatorStats>> {
    let mut latest: HashMap<Vec<u8>, Option<OperatorStats>> = HashMap::new();
    let mut unreadable = 0u64;
    crate::kafka::read_to_end(cfg, "stats", &cfg.topics.operator_stats, None, |m| {
        let key = m.key().unwrap_or_default().to_vec();
        match m.payload().map(serde_json::from_slice::<OperatorStats>) {
            None => {
                latest.insert(key, None);
            }
            Some(Ok(r)) => {
                latest.insert(key, Some(r));
            }
            Some(Err(e)) => {
                unreadable += 1;
                tracing::warn!(partition = m.partition(), offset = m.offset(), error = %e, "skipping a stats record that does not decode");
            }
        }
    })?;
    if unreadable > 0 {
        eprintln!("{unreadable} stats record(s) could not be read and were skipped");
    }
    Ok(latest.into_values().flatten().collect())
}

/// The period label of an hour.
fn period_of(hour: DateTime<Utc>, q: &Query) -> (String, NaiveDate) {
    let local = hour.with_timezone(&q.offset);
    let date = local.date_naive();
    let label = match q.period {
        Period::Hour => format!("{}T{:02}", date, local.hour()),
        Period::Day => date.to_string(),
        Period::Month => format!("{:04}-{:02}", date.year(), date.month()),
    };
    (label, date)
}

/// Sums `records` and `reports` into rows by period and relay operator (and reseller),
/// sorted by period, then by messages (most first), then by name.
pub fn aggregate(records: &[OperatorStats], reports: &[Report], q: &Query) -> Vec<PeriodRow> {
    type Key = (String, String, Option<String>);
    let mut sums: BTreeMap<Key, (StatsCounts, u64)> = BTreeMap::new();
    let in_range =
        |date: NaiveDate| !(q.from.is_some_and(|f| date < f) || q.to.is_some_and(|t| date > t));
    for r in records {
        let (period, date) = period_of(r.hour, q);
        if !in_range(date) {
            continue;
        }
        for row in &r.rows {
            let reseller = q.by_reseller.then(|| row.reseller.clone());
            sums.entry((period.clone(), row.relay_operator.clone(), reseller))
                .or_default()
                .0
                .add(&row.counts);
        }
    }
    for r in reports {
        let (period, date) = period_of(r.at, q);
        if in_range(date) {
            let reseller = q.by_reseller.then(|| r.reseller.clone());
            sums.entry((period, r.relay_operator.clone(), reseller))
                .or_default()
                .1 += 1;
        }
    }
    let mut rows: Vec<PeriodRow> = sums
        .into_iter()
        .map(
            |((period, relay_operator, reseller), (counts, reports))| PeriodRow {
                period,
                relay_operator,
                reseller,
                counts,
                reports,
            },
        )
        .collect();
    rows.sort_by(|a, b| {
        a.period
            .cmp(&b.period)
            .then(b.counts.messages.cmp(&a.counts.messages))
            .then(a.relay_operator.cmp(&b.relay_operator))
            .then(a.reseller.cmp(&b.reseller))
    });
    rows
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.00".into()
    } else {
        format!("{:.2}", part as f64 * 100.0 / whole as f64)
    }
}

fn top(c: &StatsCounts) -> String {
    c.top_categories(3)
        .iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes `rows` in `format`.
pub fn render(
    rows: &[PeriodRow],
    format: StatsFormat,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let by_reseller = rows.iter().any(|r| r.reseller.is_some());
    match format {
        StatsFormat::Json => {
            for r in rows {
                let mut v = serde_json::to_value(r).map_err(std::io::Error::other)?;
                v["blocked_percent"] = serde_json::json!(
                    r.counts.blocked as f64 * 100.0 / r.counts.messages.max(1) as f64
                );
                v["reports_per_10k"] = serde_json::json!(r.reports_per_10k());
                writeln!(out, "{v}")?;
            }
        }
        StatsFormat::Csv => {
            let reseller = if by_reseller { "reseller," } else { "" };
            writeln!(out, "period,relay_operator,{reseller}messages,allowed,labelled,throttled,blocked,blocked_percent,reports,reports_per_10k,misdated,top_categories")?;
            for r in rows {
                let c = &r.counts;
                let reseller = r
                    .reseller
                    .as_ref()
                    .map_or_else(String::new, |s| format!("{},", csv_field(s)));
                writeln!(
                    out,
                    "{},{},{reseller}{},{},{},{},{},{},{},{:.2},{},{}",
                    r.period,
                    csv_field(&r.relay_operator),
                    c.messages,
                    c.allowed,
                    c.labelled,
                    c.throttled,
                    c.blocked,
                    percent(c.blocked, c.messages),
                    r.reports,
                    r.reports_per_10k(),
                    c.misdated,
                    csv_field(&top(c))
                )?;
            }
        }
        StatsFormat::Table => {
            let name = |r: &PeriodRow| match &r.reseller {
                Some(s) if !s.is_empty() => format!("{}/{s}", r.relay_operator),
                _ => r.relay_operator.clone(),
            };
            let w = rows
                .iter()
                .map(|r| name(r).chars().count())
                .max()
                .unwrap_or(0)
                .max(14);
            writeln!(
                out,
                "{:<13} {:<w$} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8}  top categories",
                "period",
                "relay operator",
                "messages",
                "allowed",
                "labelled",
                "throttled",
                "blocked",
                "blocked%",
                "reports",
                "rep/10k"
            )?;
            for r in rows {
                let c = &r.counts;
                writeln!(
                    out,
                    "{:<13} {:<w$} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8.2}  {}",
                    r.period,
                    name(r),
                    c.messages,
                    c.allowed,
                    c.labelled,
                    c.throttled,
                    c.blocked,
                    percent(c.blocked, c.messages),
                    r.reports,
                    r.reports_per_10k(),
                    top(c)
                )?;
            }
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use spamflow_schemas::{Action, StatsRow};

    fn rec(
        partition: i32,
        hour: DateTime<Utc>,
        rows: &[(&str, &str, Action, u64)],
    ) -> OperatorStats {
        let mut out: Vec<StatsRow> = Vec::new();
        for &(op, reseller, action, n) in rows {
            let mut counts = StatsCounts::default();
            for _ in 0..n {
                counts.count(action, Some("gambling"));
            }
            out.push(StatsRow {
                relay_operator: op.into(),
                reseller: reseller.into(),
                counts,
            });
        }
        OperatorStats {
            schema_version: 1,
            hour,
            partition,
            rows: out,
        }
    }

    #[test]
    fn hours_and_partitions_sum_into_local_days_and_months() {
        let kst = FixedOffset::east_opt(9 * 3600).unwrap();
        // 14:00 UTC on the 1st is 23:00 KST on the 1st; 15:00 UTC is midnight on the 2nd.
        let h1 = Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).unwrap();
        let h2 = Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap();
        let records = vec![
            rec(
                0,
                h1,
                &[("kt", "r1", Action::Block, 2), ("lg", "", Action::Allow, 5)],
            ),
            rec(1, h1, &[("kt", "r2", Action::Allow, 3)]),
            rec(0, h2, &[("kt", "r1", Action::Label, 1)]),
        ];
        let q = |period, by_reseller| Query {
            period,
            offset: kst,
            from: None,
            to: None,
            by_reseller,
        };
        let days = aggregate(&records, &[], &q(Period::Day, false));
        let got: Vec<_> = days
            .iter()
            .map(|r| {
                (
                    r.period.as_str(),
                    r.relay_operator.as_str(),
                    r.counts.messages,
                    r.counts.blocked,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("2026-12-01", "kt", 5, 2),
                ("2026-12-01", "lg", 5, 0),
                ("2026-12-02", "kt", 1, 0)
            ]
        );
        let months = aggregate(&records, &[], &q(Period::Month, false));
        assert_eq!(months.len(), 2);
        assert_eq!(
            (months[0].period.as_str(), months[0].counts.messages),
            ("2026-12", 6)
        );
        let by_reseller = aggregate(&records, &[], &q(Period::Hour, true));
        assert_eq!(by_reseller.len(), 4);
        assert_eq!(by_reseller[0].period, "2026-12-01T23");
        let only_second = aggregate(
            &records,
            &[],
            &Query {
                from: NaiveDate::from_ymd_opt(2026, 12, 2),
                ..q(Period::Day, false)
            },
        );
        assert_eq!(only_second.len(), 1);

        // Reports by report time, under the relay operator of the reported number; one
        // of a number that is not registered counts under `none`.
        let report = |at: DateTime<Utc>, op: &str| Report {
            at,
            relay_operator: op.into(),
            reseller: String::new(),
        };
        let reports = [
            report(h1, "kt"),
            report(h1 + chrono::Duration::minutes(5), "kt"),
            report(h2, "none"),
        ];
        let days = aggregate(&records, &reports, &q(Period::Day, false));
        let got: Vec<_> = days
            .iter()
            .map(|r| (r.period.as_str(), r.relay_operator.as_str(), r.reports))
            .collect();
        assert_eq!(
            got,
            vec![
                ("2026-12-01", "kt", 2),
                ("2026-12-01", "lg", 0),
                ("2026-12-02", "kt", 0),
                ("2026-12-02", "none", 1)
            ]
        );
        assert_eq!(days[0].reports_per_10k(), 4_000.0);
        assert_eq!(days[3].reports_per_10k(), 0.0, "no messages");

        let mut csv = Vec::new();
        render(&days, StatsFormat::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "2026-12-01,kt,5,3,0,0,2,40.00,2,4000.00,0,gambling 2"
        );
        let mut json = Vec::new();
        render(&days, StatsFormat::Json, &mut json).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(json).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["blocked"], 2);
        assert_eq!(first["blocked_percent"], 40.0);
        assert_eq!(
            (first["reports"].as_u64(), first["reports_per_10k"].as_f64()),
            (Some(2), Some(4_000.0))
        );
        let mut table = Vec::new();
        render(&days, StatsFormat::Table, &mut table).unwrap();
        assert!(String::from_utf8(table)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .contains("40.00        2  4000.00  gambling 2"));
    }
}
