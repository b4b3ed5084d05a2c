//! Subscribers' spam reports: `spamflow report` reads and publishes them to
//! `topics.reports`, keyed by the reported sender's normalized form (as submissions are
//! keyed), so that the reports of one sender share a partition.

use std::io::BufRead as _;
use std::path::Path;

use anyhow::Context as _;
use spamflow_operators::origin::parse_sender;
use spamflow_schemas::{decode_report, SpamReport};

use crate::config::Config;

/// Reads reports (JSON lines) from a file: the reports, and one problem (`file:line:
/// error`) per line that is not a valid report. Blank lines are skipped.
pub fn read_file(path: &Path) -> anyhow::Result<(Vec<SpamReport>, Vec<String>)> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reports = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        match decode_report(line.as_bytes()) {
            Ok(r) => reports.push(r),
            Err(e) => problems.push(format!("{}:{}: {e}", path.display(), i + 1)),
        }
    }
    Ok((reports, problems))
}

/// Validates every report (as the readers of the topic will) and publishes them.
pub fn publish(cfg: &Config, brokers: &str, reports: &[SpamReport]) -> anyhow::Result<()> {
    let mut keyed = Vec::with_capacity(reports.len());
    for r in reports {
        let value = serde_json::to_vec(r)?;
        decode_report(&value).with_context(|| format!("report {}", r.report_id))?;
        keyed.push((parse_sender(&r.sender).key, Some(value)));
    }
    crate::kafka::publish(cfg, brokers, &cfg.topics.reports, &keyed)
}
