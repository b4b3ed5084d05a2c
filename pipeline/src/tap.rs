//! `spamflow tap`: the analysts' view of the output topics.
//!
//! Read-only and invisible to the pipeline: the tap assigns partitions itself (no
//! consumer group, so nothing is committed and no rebalance happens) and reads
//! read_committed, so it shows only what the SMSCs and analysts downstream see.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use spamflow_operators::origin::registry::mask_number;
use spamflow_schemas::{Alert, Verdict};

use crate::config::Config;

/// Which output topic to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TapTopic {
    /// Every verdict (`topics.verdicts`).
    Verdicts,
    /// Block and throttle verdicts (`topics.block`).
    Block,
    /// Recipient alerts (`topics.alerts`).
    Alerts,
    /// Dead-lettered input (`topics.dlq`).
    Dlq,
    /// Subscribers' spam reports (`topics.reports`); the reported text cut to an excerpt.
    Reports,
}

/// How much of a reported text the tap shows: reports quote private messages.
const REPORT_EXCERPT_CHARS: usize = 40;

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TapFormat {
    /// One line per record, fitted to a terminal.
    Table,
    /// One JSON object per line (numbers masked unless `--show-numbers`).
    Json,
    /// Comma-separated, with a header line.
    Csv,
}

/// What to select. Every filter that is set must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Action (`allow`, `label`, `block`, `throttle`).
    pub action: Option<String>,
    /// A reason's category (or an alert's).
    pub category: Option<String>,
    /// Relay operator.
    pub relay_operator: Option<String>,
    /// Sender starting with this.
    pub sender_prefix: Option<String>,
    /// A reason's code, or a code prefix ending in `.`, or a DLQ error code.
    pub rule: Option<String>,
}

/// One record as the tap shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// When it was decided (a verdict), submitted (an alert) or failed (a DLQ record).
    pub time: Option<DateTime<Utc>>,
    /// Message id (a DLQ record: its key).
    pub id: String,
    /// Action, or `dlq`.
    pub action: String,
    /// Score (0 for a DLQ record).
    pub score: u8,
    /// Sender as sent.
    pub sender: String,
    /// Relay operator.
    pub relay: String,
    /// Reason categories.
    pub categories: Vec<String>,
    /// Reason codes (a DLQ record: its error code).
    pub rules: Vec<String>,
    /// The strongest reason's evidence excerpt (an alert: its warning).
    pub excerpt: String,
    /// The record as JSON (a DLQ record: its headers; never the payload).
    pub json: Value,
}

impl Row {
    /// The row of one record of `topic`, or why it cannot be read.
    pub fn parse(
        topic: TapTopic,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &BTreeMap<String, String>,
    ) -> Result<Row, String> {
        match topic {
            TapTopic::Verdicts | TapTopic::Block => {
                let v: Verdict = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
                let json = serde_json::to_value(&v).map_err(|e| e.to_string())?;
                let strongest = v.reasons.iter().max_by_key(|r| r.score);
                Ok(Row {
                    time: Some(v.decided_at),
                    id: v.message_id.into_owned(),
                    action: action_name(&json),
                    score: v.score,
                    sender: v.sender.into_owned(),
                    relay: v.relay_operator.unwrap_or_default().into_owned(),
                    categories: v.reasons.iter().map(|r| r.category.to_string()).collect(),
                    rules: v.reasons.iter().map(|r| r.code.to_string()).collect(),
                    excerpt: strongest
                        .and_then(|r| r.evidence.as_deref())
                        .unwrap_or_default()
                        .to_owned(),
                    json,
                })
            }
            TapTopic::Alerts => {
                let a: Alert = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
                let json = serde_json::to_value(&a).map_err(|e| e.to_string())?;
                Ok(Row {
                    time: Some(a.submitted_at),
                    id: a.message_id,
                    action: action_name(&json),
                    score: a.score,
                    sender: a.sender,
                    relay: String::new(),
                    categories: a.categories,
                    rules: Vec::new(),
                    excerpt: a.warning,
                    json,
                })
            }
            TapTopic::Reports => {
                let r = spamflow_schemas::decode_report(payload).map_err(|e| e.to_string())?;
                let excerpt = r
                    .text
                    .as_deref()
                    .map(|t| cut(t, REPORT_EXCERPT_CHARS))
                    .unwrap_or_default();
                let mut json = serde_json::to_value(&r).map_err(|e| e.to_string())?;
                if r.text.is_some() {
                    json["text"] = Value::from(excerpt.clone());
                }
                let channel = json["channel"].as_str().unwrap_or_default().to_owned();
                Ok(Row {
                    time: Some(r.reported_at),
                    id: r.report_id,
                    action: "report".into(),
                    score: 0,
                    sender: r.sender,
                    relay: String::new(),
                    categories: r.category.into_iter().collect(),
                    rules: vec![channel],
                    excerpt,
                    json,
                })
            }
            TapTopic::Dlq => Ok(Row {
                time: headers
                    .get(spamflow_schemas::dlq::headers::FAILED_AT)
                    .and_then(|t| t.parse().ok()),
                id: String::from_utf8_lossy(key.unwrap_or_default()).into_owned(),
                action: "dlq".into(),
                score: 0,
                sender: String::new(),
                relay: String::new(),
                categories: Vec::new(),
                rules: headers
                    .get(spamflow_schemas::dlq::headers::ERROR_CODE)
                    .cloned()
                    .into_iter()
                    .collect(),
                excerpt: headers
                    .get(spamflow_schemas::dlq::headers::ERROR_MESSAGE)
                    .cloned()
                    .unwrap_or_default(),
                json: serde_json::to_value(headers).unwrap_or_default(),
            }),
        }
    }

    /// Whether the row passes every filter that is set.
    pub fn matches(&self, f: &Filter) -> bool {
        f.action
            .as_ref()
            .is_none_or(|a| a.eq_ignore_ascii_case(&self.action))
            && f.category
                .as_ref()
                .is_none_or(|c| self.categories.iter().any(|x| x == c))
            && f.relay_operator.as_ref().is_none_or(|r| *r == self.relay)
            && f.sender_prefix
                .as_ref()
                .is_none_or(|p| self.sender.starts_with(p.as_str()))
            && f.rule.as_ref().is_none_or(|r| {
                self.rules
                    .iter()
                    .any(|c| c == r || (r.ends_with('.') && c.starts_with(r.as_str())))
            })
    }

    /// The row with its sender and recipient masked wherever they appear (a reason's
    /// evidence can quote the sender).
    pub fn masked(mut self) -> Row {
        let numbers: Vec<String> = ["sender", "recipient", "reporter"]
            .iter()
            .filter_map(|k| self.json.get(*k).and_then(Value::as_str))
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        let mut text = self.json.to_string();
        for n in &numbers {
            let m = mask_number(n);
            text = text.replace(n.as_str(), &m);
            self.excerpt = self.excerpt.replace(n.as_str(), &m);
        }
        self.json = serde_json::from_str(&text).unwrap_or(self.json);
        self.sender = mask_number(&self.sender);
        self
    }
}

fn action_name(json: &Value) -> String {
    json.get("action")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Column headings of the table and CSV formats.
const COLUMNS: [&str; 8] = [
    "time", "id", "action", "score", "sender", "relay", "rules", "excerpt",
];

/// `s` cut to `n` characters, with `…` when cut.
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// One line of output in `format` (the table's line fits `width` columns).
pub fn render(row: &Row, format: TapFormat, width: usize) -> String {
    let time = row
        .time
        .map(|t| t.format("%m-%d %H:%M:%S").to_string())
        .unwrap_or_default();
    match format {
        TapFormat::Json => row.json.to_string(),
        TapFormat::Csv => {
            let fields = [
                row.time.map(|t| t.to_rfc3339()).unwrap_or_default(),
                row.id.clone(),
                row.action.clone(),
                row.score.to_string(),
                row.sender.clone(),
                row.relay.clone(),
                row.rules.join(" "),
                row.excerpt.clone(),
            ];
            fields
                .iter()
                .map(|f| csv_field(f))
                .collect::<Vec<_>>()
                .join(",")
        }
        TapFormat::Table => {
            let mut line = format!(
                "{time:<14} {:<8} {:>3} {:<15} {:<10} {:<28} ",
                cut(&row.action, 8),
                row.score,
                cut(&row.sender, 15),
                cut(&row.relay, 10),
                cut(&row.rules.join(","), 28),
            );
            let room = width.saturating_sub(line.chars().count()).max(10);
            line.push_str(&cut(&row.excerpt.replace(['\n', '\r', '\t'], " "), room));
            line
        }
    }
}

/// The header line of `format`, if it has one.
pub fn header(format: TapFormat) -> Option<String> {
    match format {
        TapFormat::Json => None,
        TapFormat::Csv => Some(COLUMNS.join(",")),
        TapFormat::Table => Some(format!(
            "{:<14} {:<8} {:>3} {:<15} {:<10} {:<28} excerpt",
            "time", "action", "sc", "sender", "relay", "rules"
        )),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Counts by action, category, rule and relay operator, for `--summary`.
#[derive(Debug, Default)]
pub struct Summary {
    records: u64,
    by: BTreeMap<&'static str, BTreeMap<String, u64>>,
}

impl Summary {
    /// Counts one row.
    pub fn add(&mut self, row: &Row) {
        self.records += 1;
        let mut count = |what: &'static str, k: &str| {
            *self
                .by
                .entry(what)
                .or_default()
                .entry(k.to_owned())
                .or_default() += 1;
        };
        count("action", &row.action);
        for c in &row.categories {
            count("category", c);
        }
        for r in &row.rules {
            count("rule", r);
        }
        if !row.relay.is_empty() {
            count("relay", &row.relay);
        }
    }

    /// The counts as text, most frequent first, then cleared.
    pub fn take(&mut self, label: &str) -> String {
        let mut out = format!("{label}: {} records\n", self.records);
        for (what, counts) in &self.by {
            let mut v: Vec<(&String, &u64)> = counts.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let items: Vec<String> = v.iter().take(12).map(|(k, n)| format!("{k} {n}")).collect();
            let _ = writeln!(out, "  {what:<8} {}", items.join(", "));
        }
        *self = Summary::default();
        out
    }
}

/// The tap's settings.
#[derive(Debug, Clone)]
pub struct TapArgs {
    /// Topic to read.
    pub topic: TapTopic,
    /// Selection.
    pub filter: Filter,
    /// Start at this time; `None`: from the beginning (or, with `follow`, the end).
    pub from: Option<DateTime<Utc>>,
    /// Keep reading new records.
    pub follow: bool,
    /// Output format.
    pub format: TapFormat,
    /// Print counts every interval instead of records.
    pub summary: Option<Duration>,
    /// Show numbers unmasked.
    pub show_numbers: bool,
    /// Table width.
    pub width: usize,
    /// Stop after this many matching records.
    pub limit: Option<u64>,
}

/// Reads `topic` as `args` say and writes to `out` until the end (or, with `follow`,
/// until `stop` says so). Returns the records printed or counted.
pub fn tap(
    cfg: &Config,
    args: &TapArgs,
    out: &mut impl Write,
    stop: impl Fn() -> bool,
) -> anyhow::Result<u64> {
    let topic = match args.topic {
        TapTopic::Verdicts => &cfg.topics.verdicts,
        TapTopic::Block => &cfg.topics.block,
        TapTopic::Alerts => &cfg.topics.alerts,
        TapTopic::Dlq => &cfg.topics.dlq,
        TapTopic::Reports => &cfg.topics.reports,
    };
    let timeout = Duration::from_millis(cfg.processing.kafka_timeout_ms);
    let (consumer, parts) = crate::kafka::tool_reader(cfg, "tap", topic)?;
    let tpl = match (args.from, args.follow) {
        (Some(t), _) => crate::kafka::offsets_at(&consumer, topic, &parts, t, timeout)
            .context("finding the offsets of --since/--from")?,
        (None, follow) => {
            let mut tpl = TopicPartitionList::new();
            for p in &parts {
                let start = if follow {
                    Offset::End
                } else {
                    Offset::Beginning
                };
                tpl.add_partition_offset(topic, *p, start)?;
            }
            tpl
        }
    };
    consumer.assign(&tpl)?;

    if let Some(h) = header(args.format).filter(|_| args.summary.is_none()) {
        writeln!(out, "{h}")?;
    }
    let mut at_end = std::collections::BTreeSet::new();
    let mut shown = 0u64;
    let mut unreadable = 0u64;
    let mut summary = Summary::default();
    let mut summary_at = Instant::now();
    loop {
        if stop() || args.limit.is_some_and(|l| shown >= l) {
            break;
        }
        if let Some(every) = args.summary.filter(|_| args.follow) {
            if summary_at.elapsed() >= every {
                write!(
                    out,
                    "{}",
                    summary.take(&Utc::now().format("%H:%M:%S").to_string())
                )?;
                out.flush()?;
                summary_at = Instant::now();
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
                if !args.follow && at_end.len() >= parts.len() {
                    break;
                }
            }
            Some(Err(e)) => tracing::warn!(error = %e, "tap consumer error"),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                let row = match Row::parse(
                    args.topic,
                    m.key(),
                    m.payload().unwrap_or_default(),
                    &headers_of(&m),
                ) {
                    Ok(r) => r,
                    Err(_) => {
                        unreadable += 1;
                        continue;
                    }
                };
                if !row.matches(&args.filter) {
                    continue;
                }
                let row = if args.show_numbers { row } else { row.masked() };
                shown += 1;
                if args.summary.is_some() {
                    summary.add(&row);
                } else {
                    writeln!(out, "{}", render(&row, args.format, args.width))?;
                }
            }
        }
    }
    if args.summary.is_some() {
        write!(out, "{}", summary.take("total"))?;
    }
    out.flush()?;
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            "records that are not of the topic's type were skipped"
        );
    }
    Ok(shown)
}

fn headers_of(m: &BorrowedMessage<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(h) = m.headers() {
        for hdr in h.iter() {
            out.insert(
                hdr.key.to_owned(),
                String::from_utf8_lossy(hdr.value.unwrap_or_default()).into_owned(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_row() -> Row {
        let line = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/verdicts.jsonl"
        ))
        .unwrap()
        .lines()
        .find(|l| l.contains("\"syn-00000004\""))
        .unwrap()
        .to_owned();
        Row::parse(TapTopic::Verdicts, None, line.as_bytes(), &BTreeMap::new()).unwrap()
    }

    #[test]
    fn filters_select_by_action_category_relay_sender_and_rule() {
        let row = verdict_row();
        let f = |f: Filter| row.matches(&f);
        assert!(f(Filter::default()));
        assert!(f(Filter {
            action: Some("block".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            action: Some("allow".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            category: Some("smishing".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            category: Some("loan".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            relay_operator: Some("relay-b".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            sender_prefix: Some("+8210734".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            sender_prefix: Some("+8211".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            rule: Some("smishing.invitation".into()),
            ..Filter::default()
        }));
        assert!(f(Filter {
            rule: Some("smishing.".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            rule: Some("smishing".into()),
            ..Filter::default()
        }));
    }

    #[test]
    fn numbers_are_masked_everywhere_and_lines_fit_the_terminal() {
        let row = verdict_row().masked();
        assert_eq!(row.sender, "+821*******02");
        let json = render(&row, TapFormat::Json, 80);
        assert!(
            !json.contains("+821073450202") && json.contains("+821*******02"),
            "{json}"
        );
        let line = render(&row, TapFormat::Table, 100);
        assert!(line.chars().count() <= 100, "{line}");
        assert!(
            line.contains("block") && line.contains("+821*******02"),
            "{line}"
        );
        let csv = render(&row, TapFormat::Csv, 0);
        assert_eq!(csv.split(',').count(), COLUMNS.len(), "{csv}");
        let mut s = Summary::default();
        s.add(&row);
        s.add(&row);
        let text = s.take("t");
        assert!(
            text.contains("t: 2 records") && text.contains("block 2"),
            "{text}"
        );
    }

    #[test]
    fn reports_show_an_excerpt_and_masked_numbers_and_filter_by_category_and_channel() {
        let long = format!(
            r#"{{"schema_version":1,"report_id":"r-1","reported_at":"2026-12-02T09:01:12Z","reporter":"+821031234567","sender":"+821098761234","text":"{}","channel":"kisa_118","category":"smishing"}}"#,
            "택배 주소지 불명 ".repeat(10)
        );
        let row = Row::parse(TapTopic::Reports, None, long.as_bytes(), &BTreeMap::new())
            .unwrap()
            .masked();
        assert_eq!(row.excerpt.chars().count(), REPORT_EXCERPT_CHARS);
        let json = render(&row, TapFormat::Json, 0);
        assert!(
            !json.contains("+821031234567") && !json.contains("+821098761234"),
            "{json}"
        );
        assert!(
            !json.contains(&"택배 주소지 불명 ".repeat(10)),
            "the whole text: {json}"
        );
        let f = |f: Filter| row.matches(&f);
        assert!(f(Filter {
            category: Some("smishing".into()),
            rule: Some("kisa_118".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            rule: Some("carrier_app".into()),
            ..Filter::default()
        }));
        assert!(Row::parse(TapTopic::Reports, None, b"{}", &BTreeMap::new()).is_err());
    }
}
