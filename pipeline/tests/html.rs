//! The statistics page as a browser shows it: headless Chromium (Debian's `chromium`,
//! which `scripts/deps.sh` installs) opens the page `spamflow stats --html` writes and
//! the DOM it builds is checked.

use std::process::Command;

use chrono::{TimeZone as _, Utc};
use spamflow_pipeline::stats::{aggregate, render_html, Period, Query};
use spamflow_schemas::{Action, OperatorStats, StatsCounts, StatsRow};

fn row(op: &str, action: Action, n: u64) -> StatsRow {
    let mut counts = StatsCounts::default();
    for _ in 0..n {
        counts.count(action, Some("gambling"));
    }
    StatsRow {
        relay_operator: op.into(),
        reseller: String::new(),
        counts,
    }
}

#[test]
fn headless_chromium_shows_every_operator_and_the_totals_the_page_computes() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have Chromium (scripts/deps.sh installs it)"
        );
        eprintln!("SKIPPED: no Chromium on this machine (scripts/deps.sh installs it)");
        return;
    };
    let hour = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
    let records: Vec<OperatorStats> = (9..12)
        .map(|h| OperatorStats {
            schema_version: 1,
            hour: hour(h),
            partition: 0,
            rows: vec![
                row("relay-a", Action::Block, 10),
                row("relay-a", Action::Allow, 90),
                row("relay-b & co", Action::Label, 5),
            ],
        })
        .collect();
    let rows = aggregate(
        &records,
        &[],
        &Query {
            period: Period::Hour,
            offset: chrono::FixedOffset::east_opt(0).unwrap(),
            from: None,
            to: None,
            by_reseller: false,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("stats.html");
    std::fs::write(&page, render_html(&rows, "spamflow statistics")).unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            &format!("--user-data-dir={}", dir.path().join("profile").display()),
            "--dump-dom",
            &format!("file://{}", page.display()),
        ])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Filled in by the page's script in the browser: 3 hours of 100 + 5 messages.
    assert!(
        dom.contains("<p id=\"summary\">2 relay operators, 315 messages, 30 blocked</p>"),
        "{dom}"
    );
    assert_eq!(dom.matches("<section class=\"operator\"").count(), 2);
    assert!(dom.contains("<h2>relay-b &amp; co</h2>"));
    assert_eq!(dom.matches("<rect class=\"blocked\"").count(), 3);
}
