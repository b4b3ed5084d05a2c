//! Rule packs at run time: loading, `spamflow rules check`, and hot reload.
//!
//! Hot reload polls `rules.dir` every `rules.reload_interval_ms` (a Kubernetes ConfigMap
//! mount changes by an atomic symlink swap, which polling sees and inotify on the files
//! may not). A changed pack is compiled aside on the watcher thread and every rule's
//! examples are run; only a pack that passes is swapped in, atomically. A pack that fails
//! is logged with every problem and counted, and the previous pack keeps serving; the
//! same broken content is not retried until it changes again.
//!
//! A pack from a directory can be pathological: a list of a million literals compiles for
//! minutes in gigabytes. So, once [`bound_compiles`] has been called (`spamflow run` and
//! `backtest` do), such a pack is first compiled by `spamflow rules check` in a child
//! process with a time limit and an address-space limit; the serving process compiles it
//! only if the child finished within both, so its own compile stays within them too (a
//! compile is deterministic).

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spamflow_operators::pattern::PatternOperator;
use spamflow_operators::pattern::{check_examples, CompiledPack, PackSource};

use crate::metrics::{Metrics, ThreadWatch};
use crate::runtime::Stop;

/// Why a pack cannot be used: every problem, one per line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rule pack {source_name} rejected:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct PackRejected {
    /// Directory or "built-in".
    pub source_name: String,
    /// Compile errors and example failures.
    pub problems: Vec<String>,
}

/// Reads the pack source: `dir`, or the built-in pack when `None`.
pub fn source(dir: Option<&Path>) -> Result<PackSource, PackRejected> {
    match dir {
        None => Ok(PackSource::builtin()),
        Some(d) => PackSource::from_dir(d).map_err(|e| PackRejected {
            source_name: d.display().to_string(),
            problems: vec![e.to_string()],
        }),
    }
}

/// Limits on compiling a pack from a directory (`rules.compile_timeout_ms`,
/// `rules.compile_memory_mb`), and the `spamflow` binary that checks it.
#[derive(Debug, Clone)]
pub struct CompileBounds {
    /// The `spamflow` executable.
    pub exe: PathBuf,
    /// Longest compile.
    pub timeout: Duration,
    /// Address space of the checking process, MiB.
    pub memory_mb: u64,
}

static BOUNDS: OnceLock<CompileBounds> = OnceLock::new();

/// From now on, every pack from a directory is checked within `bounds` before it is
/// compiled in this process. Set once per process; later calls are ignored.
pub fn bound_compiles(bounds: CompileBounds) {
    let _ = BOUNDS.set(bounds);
}

/// Runs `spamflow rules check dir` within `b`. `Ok` when it finished in time, whatever it
/// found wrong (its `FAIL` lines are the problems); rejected when it ran out of time or
/// memory.
pub fn check_within(b: &CompileBounds, dir: &Path) -> Result<(), PackRejected> {
    let rejected = |problem: String| PackRejected {
        source_name: dir.display().to_string(),
        problems: vec![problem],
    };
    // The shell sets the address-space limit (ulimit -v, KiB) and becomes the checker.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"ulimit -v "$1" && exec "$0" rules check "$2""#)
        .arg(&b.exe)
        .arg(b.memory_mb.saturating_mul(1024).to_string())
        .arg(dir)
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| {
        rejected(format!(
            "cannot start {} to check the pack: {e}",
            b.exe.display()
        ))
    })?;
    let mut stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_string(&mut out);
        }
        out
    });
    let deadline = Instant::now() + b.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = reader.join();
                return Err(rejected(format!(
                    "compiling the pack took longer than rules.compile_timeout_ms ({} ms)",
                    b.timeout.as_millis()
                )));
            }
        }
    };
    let out = reader.join().unwrap_or_default();
    match status.code() {
        Some(0) => Ok(()),
        Some(1) if out.lines().any(|l| l.starts_with("FAIL ")) => Err(PackRejected {
            source_name: dir.display().to_string(),
            problems: out
                .lines()
                .filter_map(|l| l.strip_prefix("FAIL "))
                .map(str::to_owned)
                .collect(),
        }),
        _ => Err(rejected(format!(
            "compiling the pack in a process limited to {} MiB (rules.compile_memory_mb) failed ({status}): it needs more memory, or the pack cannot be read",
            b.memory_mb
        ))),
    }
}

/// Compiles the pack `src` read from `dir`, checked within the bounds first when they are
/// set.
fn compile_dir(src: &PackSource, dir: &Path) -> Result<Arc<CompiledPack>, PackRejected> {
    if let Some(b) = BOUNDS.get() {
        check_within(b, dir)?;
    }
    compile_checked(src, &dir.display().to_string())
}

/// Compiles `src` and runs every rule's examples.
pub fn compile_checked(src: &PackSource, name: &str) -> Result<Arc<CompiledPack>, PackRejected> {
    let pack = CompiledPack::compile(src).map_err(|errs| PackRejected {
        source_name: name.to_owned(),
        problems: errs.iter().map(ToString::to_string).collect(),
    })?;
    let pack = Arc::new(pack);
    let failures = check_examples(&pack);
    if failures.is_empty() {
        Ok(pack)
    } else {
        Err(PackRejected {
            source_name: name.to_owned(),
            problems: failures.iter().map(ToString::to_string).collect(),
        })
    }
}

/// Keeps `src` as the last good pack in `dir` (when configured); a failure is logged, not
/// fatal: serving goes on with the pack in memory.
pub fn keep_last_good(dir: Option<&Path>, src: &PackSource) {
    if let Some(dir) = dir {
        if let Err(e) = src.write_dir(dir) {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot keep the last good rule pack (rules.last_good_dir)");
        }
    }
}

/// Compiles the configured pack; if it is bad and a last good pack is kept, compiles that
/// one instead and says so. Returns the pack and, when it is the fallback, why.
pub fn compile_or_last_good(
    dir: Option<&Path>,
    last_good: Option<&Path>,
) -> Result<(Arc<CompiledPack>, Option<String>), PackRejected> {
    let configured = source(dir).and_then(|src| {
        let pack = match dir {
            Some(d) => compile_dir(&src, d),
            None => compile_checked(&src, "built-in"),
        };
        pack.map(|p| (p, src))
    });
    match configured {
        Ok((pack, src)) => {
            keep_last_good(last_good, &src);
            Ok((pack, None))
        }
        Err(bad) => {
            let Some(kept) = last_good.filter(|d| d.is_dir()) else {
                return Err(bad);
            };
            let pack = compile_dir(&source(Some(kept))?, kept).map_err(|_| bad.clone())?;
            let why = format!("{bad}; serving the last good pack from {}", kept.display());
            tracing::error!("{why}");
            Ok((pack, Some(why)))
        }
    }
}

/// The configured directory, if any.
pub fn dir_of(dir: &str) -> Option<PathBuf> {
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// What one look at the rule directory did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// The content is what is serving (or was already rejected): nothing to do.
    Unchanged,
    /// A new pack compiled, passed its examples, and now serves.
    Swapped {
        /// Its content hash.
        version: String,
    },
    /// A new pack was rejected; the previous one keeps serving.
    Rejected {
        /// Its content hash (not retried until the content changes again).
        version: String,
        /// Every problem.
        problems: Vec<String>,
    },
    /// The directory could not be read; the previous pack keeps serving.
    Unreadable(String),
}

/// Looks at `dir` once: compiles aside and swaps in a changed pack that passes, keeps
/// the current one otherwise. `rejected` remembers the last rejected content.
pub fn reload_once(
    dir: &Path,
    op: &PatternOperator,
    metrics: &Metrics,
    rejected: &mut Option<String>,
    last_good: Option<&Path>,
) -> Reload {
    let src = match PackSource::from_dir(dir) {
        Ok(s) => s,
        Err(e) => return Reload::Unreadable(e.to_string()),
    };
    let hash = src.hash();
    if hash == op.current().hash || rejected.as_deref() == Some(hash.as_str()) {
        return Reload::Unchanged;
    }
    match compile_dir(&src, dir) {
        Ok(pack) => {
            let (rules, took) = (pack.rules.len(), pack.compile_time);
            metrics.rules_compile_time.observe(took);
            op.swap(pack);
            metrics.rules_fallback.store(false, Relaxed);
            keep_last_good(last_good, &src);
            metrics.rules_reloads.fetch_add(1, Relaxed);
            *rejected = None;
            tracing::info!(rules, compile = ?took, version = &hash[..16], "rule pack reloaded");
            Reload::Swapped { version: hash }
        }
        Err(e) => {
            metrics.rules_reload_failures.fetch_add(1, Relaxed);
            tracing::error!(
                version = &hash[..16],
                "{e}; the previous pack keeps serving"
            );
            *rejected = Some(hash.clone());
            Reload::Rejected {
                version: hash,
                problems: e.problems,
            }
        }
    }
}

/// Starts the hot-reload watcher; it ends when `stop` is triggered.
pub fn spawn_watcher(
    dir: PathBuf,
    interval: Duration,
    op: PatternOperator,
    metrics: Arc<Metrics>,
    stop: Stop,
    last_good: Option<PathBuf>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("spamflow-rules".into()).spawn(move || {
        let _watch = ThreadWatch::new(metrics.clone(), "rule pack watcher", stop.clone());
        let mut rejected = None;
        while !stop.wait(interval) {
            if let Reload::Unreadable(e) =
                reload_once(&dir, &op, &metrics, &mut rejected, last_good.as_deref())
            {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot read the rule directory; keeping the current pack");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use spamflow_operators::pattern::PatternConfig;
    use spamflow_operators::{ChainBuilder, EventCtx, PolicyConfig};
    use spamflow_schemas::decode_submission;

    const RULE: &str = r#"
[[rule]]
id = "test.word"
category = "test"
score = 90
patterns = ['WORD']
examples = ["a WORD here"]
"#;

    fn event(text: &str) -> spamflow_schemas::SubmissionEvent {
        let doc = serde_json::json!({"schema_version":1,"message_id":"m","submitted_at":"2026-03-01T09:00:00Z",
            "sender":"+821012345678","recipient":"+821011112222","text":text,"kind":"sms","origin":{"route":"domestic","smsc":"s"}});
        decode_submission(&serde_json::to_vec(&doc).unwrap()).unwrap()
    }

    #[test]
    fn a_good_change_swaps_a_bad_one_keeps_serving_the_old_pack() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), RULE.replace("WORD", "alpha")).unwrap();
        let pack = compile_checked(&source(Some(dir.path())).unwrap(), "t").unwrap();
        let op = PatternOperator::new(pack, PatternConfig::default());
        let chain =
            ChainBuilder::new(PolicyConfig::default().build()).stateless(Arc::new(op.clone()));
        let mut c = chain.build();
        let metrics = Metrics::default();
        let mut rejected = None;
        let ev = event("alpha beta");
        let sender = spamflow_operators::origin::parse_sender(&ev.sender);
        let ctx = |e| EventCtx {
            event: e,
            sender: &sender,
            partition: 0,
            event_time_ms: 0,
            counted: false,
        };
        let v1 = c.process(&ctx(&ev), ev.submitted_at).into_owned();
        assert_eq!(v1.reasons[0].code, "test.word");
        assert_eq!(
            reload_once(dir.path(), &op, &metrics, &mut rejected, None),
            Reload::Unchanged
        );

        // A pack whose example disagrees is rejected: the old rules keep serving.
        std::fs::write(
            dir.path().join("a.toml"),
            RULE.replace("'WORD'", "'beta'").replace("WORD", "alpha"),
        )
        .unwrap();
        match reload_once(dir.path(), &op, &metrics, &mut rejected, None) {
            Reload::Rejected { problems, .. } => {
                assert!(problems[0].contains("test.word"), "{problems:?}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            reload_once(dir.path(), &op, &metrics, &mut rejected, None),
            Reload::Unchanged,
            "same bad content is not retried"
        );
        assert_eq!(
            c.process(&ctx(&ev), ev.submitted_at).rules_version,
            v1.rules_version
        );

        // A pack that does not compile is rejected by rule id and line.
        std::fs::write(dir.path().join("a.toml"), RULE.replace("WORD", "(unclosed")).unwrap();
        match reload_once(dir.path(), &op, &metrics, &mut rejected, None) {
            Reload::Rejected { problems, .. } => assert!(
                problems[0].contains("a.toml:6: rule test.word"),
                "{problems:?}"
            ),
            other => panic!("{other:?}"),
        }

        // A good pack swaps in; the same chain (a running worker) picks it up.
        std::fs::write(dir.path().join("a.toml"), RULE.replace("WORD", "beta")).unwrap();
        assert!(matches!(
            reload_once(dir.path(), &op, &metrics, &mut rejected, None),
            Reload::Swapped { .. }
        ));
        let v2 = c.process(&ctx(&ev), ev.submitted_at);
        assert_eq!(v2.reasons[0].evidence.as_deref(), Some("beta"));
        assert_ne!(v2.rules_version, v1.rules_version);
        assert_eq!(metrics.rules_reloads.load(Relaxed), 1);
        assert_eq!(metrics.rules_reload_failures.load(Relaxed), 2);
    }

    #[test]
    fn a_bad_pack_at_start_up_falls_back_to_the_last_good_one_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        let kept = dir.path().join("last-good");
        std::fs::create_dir(&rules).unwrap();
        std::fs::write(rules.join("a.toml"), RULE.replace("WORD", "alpha")).unwrap();
        std::fs::write(rules.join("words.txt"), "x\n").unwrap();
        let (pack, why) = compile_or_last_good(Some(&rules), Some(&kept)).unwrap();
        assert!(why.is_none());
        assert!(kept.join("a.toml").is_file() && kept.join("words.txt").is_file());
        let good = pack.hash.clone();

        // The ConfigMap now holds a pack that does not compile.
        std::fs::write(rules.join("a.toml"), RULE.replace("WORD", "(unclosed")).unwrap();
        let (pack, why) = compile_or_last_good(Some(&rules), Some(&kept)).unwrap();
        assert_eq!(pack.hash, good, "the last good pack serves");
        let why = why.unwrap();
        assert!(
            why.contains("a.toml:6: rule test.word") && why.contains("last good"),
            "{why}"
        );
        // Without a kept pack it still refuses to start, naming the problem.
        let err = compile_or_last_good(Some(&rules), None).unwrap_err();
        assert!(err.problems[0].contains("test.word"), "{err}");
    }
}
