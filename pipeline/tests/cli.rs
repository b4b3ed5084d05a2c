//! The `spamflow` binary: rules check, config errors, backtest golden output.

use std::process::Command;

fn spamflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spamflow"));
    c.env_remove("SPAMFLOW_CONFIG").env("RUST_LOG", "warn");
    c
}

/// Runs `cmd`, asserts it succeeded, returns its standard output.
fn succeeded(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs `spamflow config` with `env`, asserts it refused to start (exit 2), returns its
/// standard error.
fn config_refused(env: &[(&str, &std::ffi::OsStr)]) -> String {
    let mut cmd = spamflow();
    cmd.arg("config");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

fn default_pack() -> String {
    format!("{}/../operators/rules/default", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn config_prints_the_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spamflow.toml");
    std::fs::write(
        &file,
        "[kafka.client]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.username\" = \"svc-spamflow\"\n\"sasl.password\" = \"hunter2-secret\"\n\"ssl.key.password\" = \"pem-pass\"\n",
    )
    .unwrap();
    let out = succeeded(spamflow().arg("--config").arg(&file).arg("config"));
    assert!(
        !out.contains("hunter2-secret") && !out.contains("pem-pass"),
        "{out}"
    );
    assert!(
        out.contains("<redacted>") && out.contains("svc-spamflow") && out.contains("SASL_SSL"),
        "{out}"
    );
}

#[test]
fn rules_check_passes_on_the_default_pack() {
    let stdout = succeeded(spamflow().args(["rules", "check", &default_pack()]));
    assert!(
        stdout.contains("compiled in")
            && stdout.contains("database")
            && stdout.trim_end().ends_with("OK"),
        "{stdout}"
    );
}

#[test]
fn rules_check_names_failing_rules_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[rule]]\nid = \"x.misses\"\ncategory = \"x\"\nscore = 50\npatterns = ['foo']\nexamples = [\"bar\"]\n\n[[rule]]\nid = \"x.broken\"\ncategory = \"x\"\nscore = 50\npatterns = ['(foo']\nexamples = [\"foo\"]\n",
    )
    .unwrap();
    let out = spamflow()
        .args(["rules", "check", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL bad.toml:12: rule x.broken: pattern \"(foo\" does not compile"),
        "{stdout}"
    );
    std::fs::write(dir.path().join("bad.toml"), "[[rule]]\nid = \"x.misses\"\ncategory = \"x\"\nscore = 50\npatterns = ['foo']\nexamples = [\"bar\"]\n").unwrap();
    let out = spamflow()
        .args(["rules", "check", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL x.misses (bad.toml:2): does not fire on example \"bar\""),
        "{stdout}"
    );
}

#[test]
fn bad_config_stops_start_up_naming_every_key() {
    let stderr = config_refused(&[
        ("SPAMFLOW_PROCESSING__COMMIT_INTERVAL_MS", "1".as_ref()),
        ("SPAMFLOW_POLICY__LABEL_SCORE", "99".as_ref()),
    ]);
    assert!(
        stderr.contains("processing.commit_interval_ms") && stderr.contains("policy.label_score"),
        "{stderr}"
    );
}

#[test]
fn bad_velocity_and_throttle_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spamflow.toml");
    std::fs::write(
        &file,
        r#"
[[velocity.rules]]
code = "velocity.x"
window = "2m"
metric = "distinct_recipients"
above = 500
score = 10
action = "score"
applies_to = "person"

[[throttle.steps]]
spam_ratio = 0.5
per_second = 0
burst = 1
"#,
    )
    .unwrap();
    let stderr = config_refused(&[("SPAMFLOW_CONFIG", file.as_os_str())]);
    for key in [
        "velocity.rules[0].window",
        "velocity.rules[0].above",
        "throttle.steps[0]",
        "throttle.steps",
    ] {
        assert!(stderr.contains(key), "{key} not named in:\n{stderr}");
    }
    // A typo in a key is named too.
    std::fs::write(&file, "[velocity]\nmax_recipient = 3\n").unwrap();
    let stderr = config_refused(&[("SPAMFLOW_CONFIG", file.as_os_str())]);
    assert!(stderr.contains("max_recipient"), "{stderr}");
}

#[test]
fn backtest_matches_the_golden_verdicts() {
    let golden = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("verdicts.jsonl");
    let dlq_path = dir.path().join("bad.jsonl");
    let stdout = succeeded(spamflow().args([
        "backtest",
        "--events",
        &format!("{golden}/events.jsonl"),
        "--out",
        out_path.to_str().unwrap(),
        "--dlq",
        dlq_path.to_str().unwrap(),
        "--registry",
        &format!("{golden}/registry.jsonl"),
    ]));
    assert!(
        stdout.contains("1 bad lines") && stdout.contains("line 304"),
        "{stdout}"
    );
    let got = std::fs::read_to_string(&out_path).unwrap();
    let expected_path = format!("{golden}/verdicts.jsonl");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path)
        .expect("golden verdicts (run with UPDATE_GOLDEN=1 to create)");
    for (i, (g, e)) in got.lines().zip(expected.lines()).enumerate() {
        assert_eq!(g, e, "verdict {} differs from tests/golden/verdicts.jsonl (rules changed? review, then UPDATE_GOLDEN=1)", i + 1);
    }
    assert_eq!(got.lines().count(), expected.lines().count());
    let verdicts: Vec<spamflow_schemas::Verdict> = got
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_id = |id: &str| verdicts.iter().find(|v| v.message_id == id).unwrap();
    assert_eq!(by_id("g-obf-1").action, spamflow_schemas::Action::Block);
    assert_eq!(by_id("g-obf-2").action, spamflow_schemas::Action::Block);
    assert_eq!(by_id("g-legit-1").action, spamflow_schemas::Action::Allow);
    assert!(std::fs::read_to_string(&dlq_path)
        .unwrap()
        .contains("\"line\":304"));
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes_and_json_logs_are_json_lines() {
    let run = |extra: &[&str]| {
        let out = spamflow()
            .env("RUST_LOG", "info")
            .args(extra)
            .args(["eval", "--data"])
            .arg(format!(
                "{}/../operators/models/corpus/ko-test-3.jsonl",
                env!("CARGO_MANIFEST_DIR")
            ))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let text = run(&[]);
    assert!(text.contains("classifier model loaded"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in piped logs: {text:?}"
    );
    let json = run(&["--log-format", "json"]);
    // Log lines, not the command's own progress lines.
    let lines: Vec<&str> = json.lines().filter(|l| l.starts_with('{')).collect();
    assert!(lines.len() >= 2, "no JSON log lines: {json}");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}

/// A pack whose one list holds `n` literals: at 300,000 it compiles for about a minute in
/// 1.5 GB, the kind of pack a carrier could push by mistake.
fn list_pack(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut list = String::new();
    let mut x: u64 = 1;
    for _ in 0..n {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        list.push_str(&format!("{:016x}.example\n", x));
    }
    std::fs::write(dir.path().join("big.txt"), list).unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "[[list]]\nid = \"url.listed\"\ncategory = \"url\"\nfile = \"big.txt\"\nscore = 30\nexamples = [\"see 0000000000000001.example\"]\n",
    )
    .unwrap();
    dir
}

#[test]
fn a_pack_that_compiles_too_long_or_too_big_is_rejected_by_a_bounded_child() {
    use spamflow_pipeline::rules::{check_within, CompileBounds};
    use std::time::{Duration, Instant};
    let bounds = |timeout_ms, memory_mb| CompileBounds {
        exe: env!("CARGO_BIN_EXE_spamflow").into(),
        timeout: Duration::from_millis(timeout_ms),
        memory_mb,
    };
    // Within bounds: fine, and a pack with mistakes gets the checker's own problems.
    check_within(&bounds(60_000, 1_024), default_pack().as_ref()).unwrap();
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("bad.toml"),
        "[[rule]]\nid = \"x.misses\"\ncategory = \"x\"\nscore = 50\npatterns = ['foo']\nexamples = [\"bar\"]\n",
    )
    .unwrap();
    let err = check_within(&bounds(60_000, 1_024), bad.path()).unwrap_err();
    assert_eq!(
        err.problems,
        vec!["x.misses (bad.toml:2): does not fire on example \"bar\"".to_string()]
    );

    let big = list_pack(60_000);
    let t0 = Instant::now();
    let err = check_within(&bounds(300, 1_024), big.path()).unwrap_err();
    assert!(
        err.problems[0].contains("rules.compile_timeout_ms (300 ms)"),
        "{err}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the child was not stopped"
    );
    // Out of address space, Hyperscan either fails to allocate (the checker then reports
    // the database as too large) or the process dies.
    let err = check_within(&bounds(600_000, 96), big.path()).unwrap_err();
    assert!(
        err.problems[0].contains("rules.compile_memory_mb")
            || err.problems[0].contains("database too large"),
        "{err}"
    );

    // End to end: backtest (like run) checks a --rules pack first and refuses it.
    let events = format!("{}/tests/golden/events.jsonl", env!("CARGO_MANIFEST_DIR"));
    let out_dir = tempfile::tempdir().unwrap();
    let out = spamflow()
        .args(["backtest", "--events", &events, "--out"])
        .arg(out_dir.path().join("v.jsonl"))
        .arg("--rules")
        .arg(big.path())
        .env("SPAMFLOW_RULES__COMPILE_TIMEOUT_MS", "300")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("rules.compile_timeout_ms (300 ms)"),
        "{stderr}"
    );
}

/// SIGTERM while `spamflow run` is still starting (compiling the pack, loading the model,
/// the registry) stops it cleanly, as a scale-down or a pod's deletion right after a
/// restart does: exit 0, not death by the signal.
#[test]
fn a_sigterm_during_start_up_is_a_clean_stop() {
    use std::io::{BufRead, BufReader};
    let mut child = spamflow()
        .env("RUST_LOG", "info")
        .env("SPAMFLOW_ADMIN__LISTEN", "")
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    // "starting" is logged once the handlers are registered, before the pack compiles.
    while !line.contains("spamflow: starting") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no start: {seen}");
        seen.push_str(&line);
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {seen}{rest}");
    assert!(rest.contains("signal received: stopping"), "{rest}");
}
