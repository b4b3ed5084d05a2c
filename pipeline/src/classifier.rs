//! The classifier at run time and its commands: loading a model (refused with the reason
//! at start-up), hot reload (a bad file keeps the old model serving and is counted),
//! `spamflow train` and `spamflow eval`.
//!
//! Training and evaluation run the real stateless operators (pattern, origin) over each
//! labelled text as a domestic person-to-person SMS, so the policy is fitted on the same
//! signals the pipeline sees, and `eval` reports the whole decision. Velocity and throttle
//! are left out: labelled texts are single messages, not streams.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest, Sha256};
use spamflow_operators::classifier::train::{self, Example, Metrics, Outcome, TrainConfig};
use spamflow_operators::classifier::{
    self as clf, ClassifierWorker, Model, ModelHandle, SourceInfo,
};
use spamflow_operators::{Chain, EventCtx, Signal};
use spamflow_schemas::{Action, MessageKind, Origin, Route, SubmissionEvent};

use crate::config::Config;
use crate::metrics::{Metrics as RuntimeMetrics, ThreadWatch};
use crate::runtime::Stop;

/// Loads the configured model (`classifier.model`, or the built-in one) and the shadow
/// model, if any. Any problem stops start-up with its reason.
pub fn load(cfg: &Config) -> anyhow::Result<(ModelHandle, Option<ModelHandle>)> {
    let c = &cfg.classifier;
    let model = if c.model.is_empty() {
        clf::builtin()?
    } else {
        Model::load(Path::new(&c.model))?
    };
    tracing::info!(version = %model.version, file = %model_name(&c.model), "classifier model loaded");
    let shadow = if c.shadow_model.is_empty() {
        None
    } else {
        let m = Model::load(Path::new(&c.shadow_model))?;
        tracing::info!(version = %m.version, file = %c.shadow_model, "shadow model loaded (decisions in shadow[] only)");
        Some(ModelHandle::new(m))
    };
    Ok((ModelHandle::new(model), shadow))
}

fn model_name(path: &str) -> &str {
    if path.is_empty() {
        "built-in"
    } else {
        path
    }
}

/// What one look at a model file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reload {
    /// Same content as serving (or as last refused).
    Unchanged,
    /// A new model serves.
    Swapped(String),
    /// The file was refused; the old model keeps serving.
    Rejected(String),
}

/// Looks at `path` once; swaps in a changed, valid model. `rejected` remembers the hash
/// of the last refused content so it is not retried until it changes.
pub fn reload_once(
    path: &Path,
    handle: &ModelHandle,
    metrics: &RuntimeMetrics,
    rejected: &mut Option<String>,
) -> Reload {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            let why = format!("cannot read {}: {e}", path.display());
            if rejected.as_deref() != Some(why.as_str()) {
                metrics.model_reload_failures.fetch_add(1, Relaxed);
                tracing::error!("{why}; the current model keeps serving");
                *rejected = Some(why.clone());
            }
            return Reload::Unchanged;
        }
    };
    let hash = hex::encode(Sha256::digest(&bytes));
    if handle.current().version == format!("sha256:{}", &hash[..16])
        || rejected.as_deref() == Some(hash.as_str())
    {
        return Reload::Unchanged;
    }
    match Model::from_bytes(&bytes, &path.display().to_string()) {
        Ok(m) => {
            let v = m.version.clone();
            handle.swap(m);
            metrics.model_reloads.fetch_add(1, Relaxed);
            *rejected = None;
            tracing::info!(version = %v, file = %path.display(), "classifier model reloaded");
            Reload::Swapped(v)
        }
        Err(e) => {
            metrics.model_reload_failures.fetch_add(1, Relaxed);
            tracing::error!("{e}; the current model keeps serving");
            *rejected = Some(hash);
            Reload::Rejected(e.to_string())
        }
    }
}

/// Watches the model files (primary and shadow) until `stop`.
pub fn spawn_watcher(
    files: Vec<(PathBuf, ModelHandle)>,
    interval: Duration,
    metrics: Arc<RuntimeMetrics>,
    stop: Stop,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("spamflow-model".into())
        .spawn(move || {
            let _watch = ThreadWatch::new(metrics.clone(), "model watcher", stop.clone());
            let mut rejected: Vec<Option<String>> = vec![None; files.len()];
            while !stop.wait(interval) {
                for ((path, handle), rej) in files.iter().zip(rejected.iter_mut()) {
                    reload_once(path, handle, &metrics, rej);
                }
            }
        })
}

/// A labelled text as the pipeline would see it: a domestic person-to-person message.
pub fn event_of(i: usize, text: &str) -> SubmissionEvent {
    SubmissionEvent {
        schema_version: 1,
        message_id: format!("eval-{i}"),
        submitted_at: "2026-03-01T09:00:00Z".parse().unwrap_or_default(),
        sender: "+821023456789".into(),
        recipient: "+821098765432".into(),
        text: text.to_owned(),
        kind: if text.len() > 90 {
            MessageKind::Lms
        } else {
            MessageKind::Sms
        },
        origin: Origin {
            route: Route::Domestic,
            gateway: None,
            smsc: "eval".into(),
            country: None,
        },
        relay: None,
    }
}

/// Reads labelled files, naming each bad line; returns the examples and their sources.
pub fn read(files: &[PathBuf]) -> anyhow::Result<(Vec<Example>, Vec<SourceInfo>)> {
    let mut all = Vec::new();
    let mut sources = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let name = f.file_name().map_or_else(
            || f.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let ex = train::read_examples(bytes.as_slice(), &name)?;
        sources.push(SourceInfo {
            file: name,
            sha256: hex::encode(Sha256::digest(&bytes)),
            rows: ex.len(),
        });
        all.extend(ex);
    }
    Ok((all, sources))
}

/// A stateless chain (pattern, origin; the classifier when `model` is given) for `cfg`.
fn eval_chain(cfg: &Config, model: Option<Model>) -> anyhow::Result<Chain> {
    let mut cfg = cfg.clone();
    cfg.velocity.enabled = false;
    cfg.throttle.enabled = false;
    cfg.classifier.enabled = false;
    let ops = crate::operators(&cfg, None)?;
    let builder = match model {
        Some(m) => ops.chain.classifier(ModelHandle::new(m), None),
        None => ops.chain,
    };
    Ok(builder.build())
}

/// Prints progress on long runs (every 10,000 examples).
fn progress(done: usize, total: usize, started: Instant) {
    if done.is_multiple_of(10_000) && done > 0 {
        eprintln!(
            "  {done}/{total} examples ({:.0}/s)",
            done as f64 / started.elapsed().as_secs_f64().max(1e-9)
        );
    }
}

/// Runs the whole decision (rules + classifier + fitted policy) over `examples`; with
/// `errors`, every misjudged example (spam not blocked, ham blocked or labelled) is written
/// there as a JSON line with its verdict's action, score and reasons.
pub fn evaluate(
    cfg: &Config,
    model: &Model,
    examples: &[Example],
    mut errors: Option<&mut dyn std::io::Write>,
) -> anyhow::Result<Metrics> {
    let mut chain = eval_chain(cfg, Some(model.clone()))?;
    let mut worker = ClassifierWorker::new();
    let mut m = Metrics::default();
    let started = Instant::now();
    for (i, e) in examples.iter().enumerate() {
        let ev = event_of(i, &e.text);
        let sender = chain.sender(&ev.sender);
        let ctx = EventCtx {
            event: &ev,
            sender: &sender,
            partition: 0,
            event_time_ms: ev.submitted_at.timestamp_millis(),
            counted: false,
        };
        let v = chain.process(&ctx, ev.submitted_at);
        let outcome = match v.action {
            Action::Block | Action::Throttle => Outcome::Blocked,
            Action::Label => Outcome::Labelled,
            Action::Allow => Outcome::Allowed,
        };
        let scored = worker.score(model, &e.text);
        let p = scored.probability;
        m.add(
            e,
            outcome,
            p,
            scored.category.as_ref().map(|c| c.0.as_str()),
        );
        let wrong = if e.is_spam() {
            outcome != Outcome::Blocked
        } else {
            outcome != Outcome::Allowed
        };
        if let (true, Some(w)) = (wrong, errors.as_mut()) {
            let line = serde_json::json!({
                "text": e.text, "label": e.label, "category": e.category, "source": e.source,
                "action": v.action, "score": v.score, "classifier_p": p,
                "reasons": v.reasons.iter().map(|r| &r.code).collect::<Vec<_>>(),
            });
            writeln!(w, "{line}")?;
        }
        progress(i + 1, examples.len(), started);
    }
    Ok(m)
}

/// `spamflow train`: fits the model and policy on the training side of `files`, prints
/// held-out metrics, writes the model. Returns the model and the held-out metrics.
pub fn train_cmd(
    cfg: &Config,
    files: &[PathBuf],
    out: &Path,
    tc: &TrainConfig,
) -> anyhow::Result<(Model, Metrics)> {
    let (examples, sources) = read(files)?;
    if examples.is_empty() {
        anyhow::bail!("the training files hold no examples");
    }
    let (held, trainset): (Vec<Example>, Vec<Example>) =
        examples.into_iter().partition(Example::held_out);
    eprintln!(
        "training on {} examples, {} held out (one in five groups, or texts where there is no group, by hash)",
        trainset.len(),
        held.len()
    );
    let mut chain = eval_chain(cfg, None)?;
    let signals: Vec<Vec<Signal>> = trainset
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let ev = event_of(i, &e.text);
            let sender = chain.sender(&ev.sender);
            let ctx = EventCtx {
                event: &ev,
                sender: &sender,
                partition: 0,
                event_time_ms: 0,
                counted: false,
            };
            chain.stateless_signals(&ctx).to_vec()
        })
        .collect();
    eprintln!("  rule and origin signals computed");
    let started = Instant::now();
    let model = train::train(&trainset, &signals, sources, tc, |stage| {
        eprintln!("  {stage} ({:.1}s)", started.elapsed().as_secs_f64());
    })?;
    let metrics = evaluate(cfg, &model, &held, None)?;
    let mut header = model.header.clone();
    header.metrics = serde_json::to_value(&metrics)?;
    let model = Model::new(
        header,
        model.weights().to_vec(),
        model.category_weights().to_vec(),
    );
    model
        .save(out)
        .with_context(|| format!("writing the model to {}", out.display()))?;
    Ok((model, metrics))
}

/// The rule pack's examples as labelled lines: each example is spam of its rule's category
/// (URL and impersonation rules count as smishing), each counter-example ham unless it is
/// some rule's example too.
pub fn rule_examples(pack: &spamflow_operators::pattern::CompiledPack) -> Vec<serde_json::Value> {
    let spam: std::collections::BTreeSet<&str> = pack
        .rules
        .iter()
        .flat_map(|r| r.examples.iter().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for r in &pack.rules {
        let category = match r.category.as_str() {
            "url" | "impersonation" => "smishing",
            c => c,
        };
        for e in &r.examples {
            out.push(serde_json::json!({"text": e, "label": "spam", "category": category, "source": "rules", "group": format!("rules/{}", r.id)}));
        }
        for e in r
            .counter_examples
            .iter()
            .filter(|e| !spam.contains(e.as_str()))
        {
            out.push(serde_json::json!({"text": e, "label": "ham", "source": "rules", "group": format!("rules/{}", r.id)}));
        }
    }
    out
}
