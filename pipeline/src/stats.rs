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

/// The figures of a row, as every format shows them: messages, allowed, labelled,
/// throttled, blocked, blocked %, reports, reports per 10,000 messages.
fn figures(r: &PeriodRow) -> [String; 8] {
    let c = &r.counts;
    [
        c.messages.to_string(),
        c.allowed.to_string(),
        c.labelled.to_string(),
        c.throttled.to_string(),
        c.blocked.to_string(),
        percent(c.blocked, c.messages),
        r.reports.to_string(),
        format!("{:.2}", r.reports_per_10k()),
    ]
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
                    "{},{},{reseller}{},{},{}",
                    r.period,
                    csv_field(&r.relay_operator),
                    figures(r).join(","),
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
                let mut line = format!("{:<13} {:<w$}", r.period, name(r));
                for (f, width) in figures(r).iter().zip([10, 10, 9, 9, 9, 8, 8, 8]) {
                    line.push_str(&format!(" {f:>width$}"));
                }
                writeln!(out, "{line}  {}", top(&r.counts))?;
            }
        }
    }
    Ok(())
}

/// Text for HTML: `&`, `<`, `>`, `"` and `'` escaped (names come from the input).
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A self-contained page (no network at view time): per relay operator (and reseller),
/// most messages first, a bar chart of its periods drawn here as SVG (blocked, labelled,
/// throttled and allowed stacked) and the table of its rows. A few lines of script fill
/// in the totals line from the rows' data attributes.
pub fn render_html(rows: &[PeriodRow], title: &str) -> String {
    let mut groups: Vec<(String, Vec<&PeriodRow>)> = Vec::new();
    for r in rows {
        let name = match &r.reseller {
            Some(s) if !s.is_empty() => format!("{}/{s}", r.relay_operator),
            _ => r.relay_operator.clone(),
        };
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, g)) => g.push(r),
            None => groups.push((name, vec![r])),
        }
    }
    let total = |g: &[&PeriodRow]| g.iter().map(|r| r.counts.messages).sum::<u64>();
    groups.sort_by(|a, b| total(&b.1).cmp(&total(&a.1)).then(a.0.cmp(&b.0)));
    let mut h = String::new();
    let title = html_escape(title);
    h.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"ko\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:.5em 0 2em}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
         .blocked{{fill:#c0392b}}.labelled{{fill:#e67e22}}.throttled{{fill:#f1c40f}}.allowed{{fill:#95a5a6}}</style>\n\
         </head><body>\n<h1>{title}</h1>\n<p id=\"summary\"></p>\n\
         <p>Bars: <span style=\"color:#c0392b\">blocked</span>, <span style=\"color:#e67e22\">labelled</span>, \
         <span style=\"color:#b7950b\">throttled</span>, <span style=\"color:#7f8c8d\">allowed</span>.</p>\n"
    ));
    for (name, g) in &groups {
        let name = html_escape(name);
        h.push_str(&format!(
            "<section class=\"operator\" data-operator=\"{name}\">\n<h2>{name}</h2>\n"
        ));
        let (bar_w, height) = (28u64, 160u64);
        let most = g
            .iter()
            .map(|r| r.counts.messages)
            .max()
            .unwrap_or(0)
            .max(1);
        h.push_str(&format!(
            "<svg width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"{name}\">",
            bar_w * g.len() as u64 + 10,
            height + 20
        ));
        for (i, r) in g.iter().enumerate() {
            let c = &r.counts;
            let x = 5 + bar_w * i as u64;
            let mut y = height;
            for (class, n) in [
                ("blocked", c.blocked),
                ("labelled", c.labelled),
                ("throttled", c.throttled),
                ("allowed", c.allowed),
            ] {
                let bar = n * height / most;
                if bar == 0 {
                    continue;
                }
                y -= bar;
                h.push_str(&format!(
                    "<rect class=\"{class}\" x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{bar}\"><title>{} {class} {n}</title></rect>",
                    bar_w - 4,
                    html_escape(&r.period)
                ));
            }
        }
        h.push_str("</svg>\n<table><tr><th>period</th><th>messages</th><th>allowed</th><th>labelled</th><th>throttled</th><th>blocked</th><th>blocked %</th><th>reports</th><th>reports / 10k</th><th>top categories</th></tr>\n");
        for r in g {
            let c = &r.counts;
            h.push_str(&format!(
                "<tr class=\"row\" data-messages=\"{}\" data-blocked=\"{}\"><td>{}</td>",
                c.messages,
                c.blocked,
                html_escape(&r.period)
            ));
            for f in figures(r) {
                h.push_str(&format!("<td>{f}</td>"));
            }
            h.push_str(&format!("<td>{}</td></tr>\n", html_escape(&top(c))));
        }
        h.push_str("</table>\n</section>\n");
    }
    h.push_str(
        "<script>\n(function () {\n  var rows = document.querySelectorAll('tr.row');\n  var m = 0, b = 0;\n  rows.forEach(function (r) { m += +r.dataset.messages; b += +r.dataset.blocked; });\n  var ops = document.querySelectorAll('section.operator').length;\n  document.getElementById('summary').textContent =\n    ops + ' relay operators, ' + m + ' messages, ' + b + ' blocked';\n})();\n</script>\n</body></html>\n",
    );
    h
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
    fn the_html_page_has_a_chart_and_a_table_per_operator_most_messages_first_and_escapes_names() {
        let h1 = Utc.with_ymd_and_hms(2026, 12, 1, 14, 0, 0).unwrap();
        let records = vec![
            rec(
                0,
                h1,
                &[("<kt>", "", Action::Block, 2), ("lg", "", Action::Allow, 5)],
            ),
            rec(1, h1, &[("<kt>", "", Action::Allow, 1)]),
        ];
        let rows = aggregate(
            &records,
            &[],
            &Query {
                period: Period::Hour,
                offset: FixedOffset::east_opt(0).unwrap(),
                from: None,
                to: None,
                by_reseller: false,
            },
        );
        let page = render_html(&rows, "stats & more");
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<title>stats &amp; more</title>"));
        assert!(!page.contains("<kt>"), "names are escaped");
        let lg = page.find("data-operator=\"lg\"").unwrap();
        let kt = page.find("data-operator=\"&lt;kt&gt;\"").unwrap();
        assert!(lg < kt, "most messages first");
        assert_eq!(page.matches("<svg").count(), 2);
        assert_eq!(page.matches("class=\"blocked\"").count(), 1);
        assert_eq!(page.matches("<tr class=\"row\"").count(), 2);
        assert!(page.contains("data-messages=\"3\" data-blocked=\"2\""));
        assert!(!page.contains("http"), "nothing is fetched at view time");
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
