//! `spamflow stats`: the regulator's table of spam statistics per relay operator, read
//! from the compacted `topics.operator_stats` topic.
//!
//! Every record there is one input partition's counts for one hour
//! ([`spamflow_schemas::OperatorStats`]), written by the statistics operator in the same
//! transaction as the verdicts. The reader takes every partition from its beginning to
//! its end (read_committed, no consumer group, no commits), keeps the latest record per
//! key (what compaction would keep), and sums hours and partitions into periods: hours,
//! days or months in a fixed UTC offset (Korea's by default).

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

/// Sums `records` into rows by period and relay operator (and reseller), sorted by
/// period, then by messages (most first), then by name.
pub fn aggregate(records: &[OperatorStats], q: &Query) -> Vec<PeriodRow> {
    let mut sums: BTreeMap<(String, String, Option<String>), StatsCounts> = BTreeMap::new();
    for r in records {
        let (period, date) = period_of(r.hour, q);
        if q.from.is_some_and(|f| date < f) || q.to.is_some_and(|t| date > t) {
            continue;
        }
        for row in &r.rows {
            let reseller = q.by_reseller.then(|| row.reseller.clone());
            sums.entry((period.clone(), row.relay_operator.clone(), reseller))
                .or_default()
                .add(&row.counts);
        }
    }
    let mut rows: Vec<PeriodRow> = sums
        .into_iter()
        .map(|((period, relay_operator, reseller), counts)| PeriodRow {
            period,
            relay_operator,
            reseller,
            counts,
        })
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
                writeln!(out, "{v}")?;
            }
        }
        StatsFormat::Csv => {
            let reseller = if by_reseller { "reseller," } else { "" };
            writeln!(out, "period,relay_operator,{reseller}messages,allowed,labelled,throttled,blocked,blocked_percent,misdated,top_categories")?;
            for r in rows {
                let c = &r.counts;
                let reseller = r
                    .reseller
                    .as_ref()
                    .map_or_else(String::new, |s| format!("{},", csv_field(s)));
                writeln!(
                    out,
                    "{},{},{reseller}{},{},{},{},{},{},{},{}",
                    r.period,
                    csv_field(&r.relay_operator),
                    c.messages,
                    c.allowed,
                    c.labelled,
                    c.throttled,
                    c.blocked,
                    percent(c.blocked, c.messages),
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
                "{:<13} {:<w$} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8}  top categories",
                "period",
                "relay operator",
                "messages",
                "allowed",
                "labelled",
                "throttled",
                "blocked",
                "blocked%"
            )?;
            for r in rows {
                let c = &r.counts;
                writeln!(
                    out,
                    "{:<13} {:<w$} {:>10} {:>10} {:>9} {:>9} {:>9} {:>8}  {}",
                    r.period,
                    name(r),
                    c.messages,
                    c.allowed,
                    c.labelled,
                    c.throttled,
                    c.blocked,
                    percent(c.blocked, c.messages),
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
        let days = aggregate(&records, &q(Period::Day, false));
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
        let months = aggregate(&records, &q(Period::Month, false));
        assert_eq!(months.len(), 2);
        assert_eq!(
            (months[0].period.as_str(), months[0].counts.messages),
            ("2026-12", 6)
        );
        let by_reseller = aggregate(&records, &q(Period::Hour, true));
        assert_eq!(by_reseller.len(), 4);
        assert_eq!(by_reseller[0].period, "2026-12-01T23");
        let only_second = aggregate(
            &records,
            &Query {
                from: NaiveDate::from_ymd_opt(2026, 12, 2),
                ..q(Period::Day, false)
            },
        );
        assert_eq!(only_second.len(), 1);

        let mut csv = Vec::new();
        render(&days, StatsFormat::Csv, &mut csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(
            csv.lines().nth(1).unwrap(),
            "2026-12-01,kt,5,3,0,0,2,40.00,0,gambling 2"
        );
        let mut json = Vec::new();
        render(&days, StatsFormat::Json, &mut json).unwrap();
        let first: serde_json::Value =
            serde_json::from_str(String::from_utf8(json).unwrap().lines().next().unwrap()).unwrap();
        assert_eq!(first["blocked"], 2);
        assert_eq!(first["blocked_percent"], 40.0);
        let mut table = Vec::new();
        render(&days, StatsFormat::Table, &mut table).unwrap();
        assert!(String::from_utf8(table)
            .unwrap()
            .lines()
            .nth(1)
            .unwrap()
            .contains("40.00  gambling 2"));
    }
}
