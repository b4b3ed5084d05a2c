//! The dashboard and the alerts stay in step with the code: every `spamflow_*` metric
//! they query is one the pods export, the dashboard is valid JSON with a query in every
//! panel, and every alert has a runbook section; the configuration the Kubernetes
//! manifests mount loads and validates.

use std::collections::BTreeSet;

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// `spamflow_*` names in `text`, with Prometheus's `_sum`, `_count` and `_bucket`
/// suffixes of a histogram left on (the exporter writes them out too).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("spamflow_") {
        let start = i + at;
        let mut end = start;
        while end < b.len()
            && (b[end].is_ascii_lowercase() || b[end] == b'_' || b[end].is_ascii_digit())
        {
            end += 1;
        }
        out.insert(text[start..end].to_owned());
        i = end;
    }
    out
}

#[test]
fn the_dashboard_and_alerts_query_only_exported_metrics_and_every_alert_has_a_runbook() {
    let ops =
        spamflow_pipeline::operators(&spamflow_pipeline::config::Config::default(), None).unwrap();
    let exported = metric_names(&spamflow_pipeline::metrics::Metrics::for_operators(&ops).render());
    let dashboard = read("k8s/monitoring/grafana-dashboard.json");
    let rules = read("k8s/monitoring/prometheusrule.yaml");
    let used: BTreeSet<String> = metric_names(&dashboard)
        .union(&metric_names(&rules))
        .cloned()
        .collect();
    assert!(used.len() > 15, "{used:?}");
    let missing: Vec<&String> = used.iter().filter(|m| !exported.contains(*m)).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");

    let d: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let panels = d["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(
            !targets.is_empty()
                && targets
                    .iter()
                    .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())),
            "{p}"
        );
    }

    let runbook = read("docs/runbook.md");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 6, "{alerts:?}");
    for a in alerts {
        assert!(
            runbook.contains(&format!("\n## {a}\n")),
            "no runbook section for {a}"
        );
        assert!(
            rules.contains(&format!("docs/runbook.md#{}", a.to_lowercase())),
            "{a} has no runbook link"
        );
    }
}

#[test]
fn the_kubernetes_configuration_loads_and_validates() {
    let path = format!("{}/../k8s/base/spamflow.toml", env!("CARGO_MANIFEST_DIR"));
    let cfg = spamflow_pipeline::config::Config::load(
        Some(std::path::Path::new(&path)),
        serde_json::json!({}),
    )
    .unwrap();
    let problems: Vec<String> = cfg.validate().into_iter().map(|e| e.key).collect();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(cfg.processing.commit_interval_ms, 100);
    assert_eq!(cfg.numbers.suspend_after_blocks, 0);
}
