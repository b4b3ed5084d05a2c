//! Training: labelled examples -> a model file with its fitted policy; and the metrics
//! `spamflow train` and `spamflow eval` print.
//!
//! Deterministic: the same examples, signals and seed give the same model bytes (a
//! seeded shuffle, floating-point work in a fixed order, no threads).
//!
//! 1. The held-out split is by the text's SHA-256 (one in five texts), so a text that
//!    occurs twice is on one side only.
//! 2. The classifier (logistic regression, AdaGrad) is trained on the training side
//!    [`FOLDS`] times, each time without one fold of it, to get out-of-fold log-odds for
//!    every training example: the policy must be fitted on scores the classifier did not
//!    see while training, or it learns to trust it too much.
//! 3. The policy (logistic regression over the classifier's log-odds and each rule
//!    category's strongest score, rules that block whatever the score left out; category
//!    weights kept non-negative) is fitted on those
//!    out-of-fold scores, and its thresholds are the lowest that keep ham blocked (and
//!    labelled) within the stated budgets on them.
//! 4. The final classifier and category head are trained on the whole training side.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::features::{Extractor, Links, SHAPE_FEATURES};
use super::model::{
    evidence_candidates, sigmoid, softmax, value, window_max_logit, CategoryFeatures, Model,
    ModelHeader, SourceInfo, WINDOW_BYTES,
};
use crate::normalize::Normalized;
use crate::policy::{
    has_hangul, weighed_with_category, CategoryPair, FittedPolicy, ScriptPolicy,
    CLASSIFIER_LOG_ODDS_CLAMP,
};
use crate::Signal;

/// One labelled text (other fields on a line are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// The message text.
    pub text: String,
    /// `spam` or `ham`.
    pub label: Label,
    /// Spam category (`gambling`, `loan`, `stock`, `smishing`, `drugs`, `adult`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `ko`, `en`, ...; guessed from the script when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Where it came from (kept in metrics per source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The template or family the text was made from (synthetic data): the held-out split
    /// and the policy's folds keep a group whole, so they measure unseen templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// How much the example counts in training (default 1): hand-written lines, few but
    /// varied, weigh more than one line of the synthesizer's tens of thousands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f32>,
    /// Whether the text was obfuscated on purpose (kept in metrics apart).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub obfuscated: bool,
}

/// The two labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// Unwanted.
    Spam,
    /// Legitimate.
    Ham,
}

impl Example {
    /// Whether it is spam.
    pub fn is_spam(&self) -> bool {
        self.label == Label::Spam
    }

    /// The language, or `ko` for text with Hangul and `en` otherwise.
    pub fn language(&self) -> &str {
        match &self.language {
            Some(l) => l,
            None if has_hangul(&self.text) => "ko",
            None => "en",
        }
    }

    /// SHA-256 of the group, or of the text when there is none.
    fn split_key(&self) -> [u8; 32] {
        Sha256::digest(self.group.as_deref().unwrap_or(&self.text).as_bytes()).into()
    }

    /// Whether the example is on the held-out side of the fixed split: one in five groups
    /// (or texts), by the first byte of [`Example::split_key`].
    pub fn held_out(&self) -> bool {
        self.split_key()[0] < 51
    }
}

/// A training file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A line is not a labelled example.
    #[error("{file}:{line}: {reason}")]
    BadLine {
        /// The file.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Reading failed.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Nothing to learn from.
    #[error("{0}")]
    Empty(String),
    /// Settings that cannot work.
    #[error("training settings: {0}")]
    Settings(String),
}

/// Reads labelled JSON lines (`{"text": ..., "label": "spam"|"ham", "category"?, "language"?}`);
/// blank lines are skipped; any other bad line is an error naming its line number.
pub fn read_examples(input: impl BufRead, file: &str) -> Result<Vec<Example>, TrainError> {
    let mut out = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(|source| TrainError::Io {
            file: file.to_owned(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let mut ex: Example = serde_json::from_str(&line).map_err(|e| TrainError::BadLine {
            file: file.to_owned(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        if ex.source.is_none() {
            ex.source = Some(file.to_owned());
        }
        out.push(ex);
    }
    Ok(out)
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Shuffle seed.
    pub seed: u64,
    /// Passes over the data.
    pub epochs: u32,
    /// Spam heads trained on differently shuffled passes and averaged (bagging). A single
    /// head's held-out figures move by several points with the shuffle; the average of
    /// five moves by about one.
    pub bag: u32,
    /// log2 of the spam head's hash slots.
    pub buckets_log2: u8,
    /// log2 of the category head's hash slots.
    pub category_buckets_log2: u8,
    /// AdaGrad learning rate.
    pub learning_rate: f32,
    /// L2 penalty per update.
    pub l2: f32,
    /// Characters of canonical text read per message.
    pub max_chars: usize,
    /// Longest character n-gram.
    pub max_ngram: usize,
    /// Longest character n-gram of text with Hangul.
    pub hangul_max_ngram: usize,
    /// Largest share of ham the block threshold may block (on out-of-fold scores), for
    /// text without Hangul.
    pub ham_block_budget: f64,
    /// The same for text with Hangul. Its ham is hand-written and rich in hard negatives
    /// (bank codes, delivery notices, family chat about money), so the share of it that
    /// looks like spam is far above real traffic's.
    pub korean_ham_block_budget: f64,
    /// Largest share of ham the label threshold may label or block.
    pub ham_label_budget: f64,
    /// Sources whose examples train the classifier but not the policy. Synthetic text is
    /// written from shared phrase banks, so even out-of-fold the classifier is surer of
    /// it than of text written by other hands; a policy fitted on it distrusts the
    /// moderate scores that novel spam gets.
    pub policy_exclude_sources: Vec<String>,
    /// For text with Hangul, score windows of this many bytes of the canonical text as
    /// well as the whole text ([`ModelHeader::hangul_window_bytes`]); the policy is fitted
    /// on the same maximum.
    pub hangul_window_bytes: Option<usize>,
    /// Each of a text's `n` features weighs `1/sqrt(max(n, min_features))`
    /// ([`ModelHeader::min_features`]).
    pub min_features: usize,
}

impl TrainConfig {
    /// Every problem at once, joined.
    pub fn validate(&self) -> Result<(), TrainError> {
        let mut errs = Vec::new();
        if !(10..=22).contains(&self.buckets_log2) {
            errs.push(format!(
                "buckets_log2 {} is outside 10..=22",
                self.buckets_log2
            ));
        }
        if !(8..=20).contains(&self.category_buckets_log2) {
            errs.push(format!(
                "category_buckets_log2 {} is outside 8..=20",
                self.category_buckets_log2
            ));
        }
        for (key, n) in [
            ("max_ngram", self.max_ngram),
            ("hangul_max_ngram", self.hangul_max_ngram),
        ] {
            if !(2..=6).contains(&n) {
                errs.push(format!("{key} {n} is outside 2..=6"));
            }
        }
        if let Some(w) = self
            .hangul_window_bytes
            .filter(|w| !WINDOW_BYTES.contains(w))
        {
            errs.push(format!(
                "hangul_window_bytes {w} is outside {WINDOW_BYTES:?}"
            ));
        }
        if !(1..=1000).contains(&self.min_features) {
            errs.push(format!(
                "min_features {} is outside 1..=1000",
                self.min_features
            ));
        }
        if self.epochs == 0 || self.max_chars == 0 {
            errs.push("epochs and max_chars must be positive".into());
        }
        if !(1..=32).contains(&self.bag) {
            errs.push(format!("bag {} is outside 1..=32", self.bag));
        }
        if !(self.learning_rate > 0.0 && self.l2 >= 0.0) {
            errs.push("learning_rate must be positive and l2 not negative".into());
        }
        for (k, b) in [
            ("ham_block_budget", self.ham_block_budget),
            ("korean_ham_block_budget", self.korean_ham_block_budget),
            ("ham_label_budget", self.ham_label_budget),
        ] {
            if !(0.0..=0.5).contains(&b) {
                errs.push(format!("{k} {b} is outside 0..=0.5"));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(TrainError::Settings(errs.join("; ")))
        }
    }
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            seed: 1,
            epochs: 8,
            bag: 9,
            buckets_log2: 18,
            category_buckets_log2: 14,
            learning_rate: 0.4,
            l2: 1e-5,
            max_chars: 600,
            max_ngram: 4,
            hangul_max_ngram: 3,
            ham_block_budget: 0.003,
            korean_ham_block_budget: 0.01,
            ham_label_budget: 0.02,
            policy_exclude_sources: Vec::new(),
            hangul_window_bytes: None,
            min_features: 40,
        }
    }
}

/// Folds of the out-of-fold scores the policy is fitted on: more folds train each fold's
/// classifier on more of the data, so its scores are closer to the final model's.
const FOLDS: usize = 5;

/// A pair of rule categories is weighed by the policy when both fire in at least this many
/// of a script's rows; rarer pairs say too little to fit.
const MIN_PAIR_ROWS: usize = 5;

/// splitmix64: a tiny, fully specified generator, so a seed means the same shuffle on
/// every platform and release.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Feature slots of every example, extracted once (the last `shape_features` of each are
/// shape features).
struct Encoded {
    slots: Vec<Vec<u32>>,
    /// Each feature's start byte in the canonical text (0 for shape features).
    starts: Vec<Vec<u32>>,
    /// Whether each text has Hangul.
    hangul: Vec<bool>,
    shape_features: usize,
}

/// Encodes every example as a model with the obfuscation-marks feature and links read as
/// their hosts' words reads it.
fn encode(examples: &[Example], buckets: u32, max_chars: usize, ngrams: (usize, usize)) -> Encoded {
    let mut norm = Normalized::new();
    let mut x = Extractor::new();
    let mut hangul = Vec::with_capacity(examples.len());
    let (slots, starts) = examples
        .iter()
        .map(|e| {
            norm.normalize(&e.text);
            x.extract(
                norm.as_str(),
                Some(norm.input_chars()),
                buckets,
                max_chars,
                ngrams,
                Links::HostWords,
            );
            hangul.push(x.hangul);
            x.features.iter().map(|f| (f.slot, f.span.0)).unzip()
        })
        .unzip();
    Encoded {
        slots,
        starts,
        hangul,
        shape_features: SHAPE_FEATURES + 1,
    }
}

/// AdaGrad state for one weight vector.
struct Ada {
    w: Vec<f32>,
    g2: Vec<f32>,
}

impl Ada {
    fn new(n: usize) -> Self {
        Ada {
            w: vec![0.0; n],
            g2: vec![0.0; n],
        }
    }

    fn step(&mut self, i: usize, grad: f32, lr: f32) {
        self.g2[i] += grad * grad;
        self.w[i] -= lr * grad / (self.g2[i].sqrt() + 1e-6);
    }
}

/// A trained spam head: weights and a bias per script ([`ModelHeader::hangul_bias`]).
struct SpamHead {
    w: Ada,
    /// Without and with Hangul.
    bias: Ada,
    min_features: usize,
}

impl SpamHead {
    fn logit(&self, slots: &[u32], hangul: bool) -> f32 {
        let v = value(slots.len(), self.min_features);
        self.bias.w[usize::from(hangul)]
            + slots.iter().map(|&s| self.w.w[s as usize] * v).sum::<f32>()
    }

    /// The log-odds the served model computes for example `i`: the whole text's, or with
    /// `hangul_window` and Hangul in the text the largest of its windows' too
    /// ([`window_max_logit`]).
    fn served_logit(&self, enc: &Encoded, i: usize, hangul_window: Option<usize>) -> f32 {
        let whole = self.logit(&enc.slots[i], enc.hangul[i]);
        let Some(window) = hangul_window.filter(|_| enc.hangul[i]) else {
            return whole;
        };
        let words = enc.slots[i].len() - enc.shape_features;
        window_max_logit(
            whole,
            |sum, n| self.bias.w[1] + sum * value(n, self.min_features),
            &self.w.w,
            window,
            enc.slots[i][..words]
                .iter()
                .copied()
                .zip(enc.starts[i].iter().copied()),
            enc.slots[i][words..].iter().copied(),
            &mut Vec::new(),
        )
    }
}

/// The average of `cfg.bag` spam heads, each trained on its own shuffle of `rows`. The
/// model is linear, so averaging the weights averages the heads' log-odds.
fn train_spam_head(
    enc: &Encoded,
    labels: &[bool],
    weights: &[f32],
    rows: &[usize],
    cfg: &TrainConfig,
    seed: u64,
) -> SpamHead {
    let mut rng = SplitMix(seed);
    let mut avg = train_one_spam_head(enc, labels, weights, rows, cfg, rng.next());
    for _ in 1..cfg.bag {
        let h = train_one_spam_head(enc, labels, weights, rows, cfg, rng.next());
        for (a, b) in avg.w.w.iter_mut().zip(&h.w.w) {
            *a += b;
        }
        for (a, b) in avg.bias.w.iter_mut().zip(&h.bias.w) {
            *a += b;
        }
    }
    let n = cfg.bag as f32;
    for a in avg.w.w.iter_mut().chain(avg.bias.w.iter_mut()) {
        *a /= n;
    }
    avg
}

fn train_one_spam_head(
    enc: &Encoded,
    labels: &[bool],
    weights: &[f32],
    rows: &[usize],
    cfg: &TrainConfig,
    seed: u64,
) -> SpamHead {
    let mut head = SpamHead {
        w: Ada::new(1 << cfg.buckets_log2),
        bias: Ada::new(2),
        min_features: cfg.min_features,
    };
    let mut order = rows.to_vec();
    let mut rng = SplitMix(seed);
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            let slots = &enc.slots[i];
            let hangul = enc.hangul[i];
            let p = sigmoid(f64::from(head.logit(slots, hangul))) as f32;
            let g = (p - if labels[i] { 1.0 } else { 0.0 }) * weights[i];
            let v = value(slots.len(), cfg.min_features);
            for &s in slots {
                let s = s as usize;
                let grad = g * v + cfg.l2 * head.w.w[s];
                head.w.step(s, grad, cfg.learning_rate);
            }
            head.bias.step(usize::from(hangul), g, cfg.learning_rate);
        }
    }
    head
}

/// The slots the category head reads of each text: its evidence candidates under the
/// final spam head's weights, as [`super::ClassifierWorker`] chooses them when serving.
fn candidate_slots(enc: &Encoded, spam_weights: &[f32], min_features: usize) -> Encoded {
    let mut contributions = Vec::new();
    let mut candidates = Vec::new();
    let slots = enc
        .slots
        .iter()
        .map(|slots| {
            let v = value(slots.len(), min_features);
            contributions.clear();
            contributions.extend(slots.iter().map(|&s| spam_weights[s as usize] * v));
            evidence_candidates(&contributions, enc.shape_features, &mut candidates);
            candidates.iter().map(|&i| slots[i]).collect()
        })
        .collect();
    Encoded {
        slots,
        // The category head reads no windows.
        starts: Vec::new(),
        hangul: Vec::new(),
        shape_features: 0,
    }
}

fn train_category_head(
    enc: &Encoded,
    cats: &[Option<usize>],
    weights: &[f32],
    k: usize,
    cfg: &TrainConfig,
) -> (Vec<f32>, Vec<f32>) {
    let mask = (1u32 << cfg.category_buckets_log2) - 1;
    let mut w = Ada::new((mask as usize + 1) * k);
    let mut b = Ada::new(k);
    let mut order: Vec<usize> = (0..cats.len()).filter(|&i| cats[i].is_some()).collect();
    let mut rng = SplitMix(cfg.seed ^ 0x00ca_7e90);
    let mut scores = vec![0.0f32; k];
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for &i in &order {
            let slots = &enc.slots[i];
            let v = value(slots.len(), cfg.min_features);
            scores.copy_from_slice(&b.w);
            for &s in slots {
                let at = (s & mask) as usize * k;
                for (c, sc) in scores.iter_mut().enumerate() {
                    *sc += w.w[at + c] * v;
                }
            }
            softmax(&mut scores);
            let truth = cats[i].unwrap_or(0);
            for (c, &p) in scores.iter().enumerate() {
                let g = (p - if c == truth { 1.0 } else { 0.0 }) * weights[i];
                for &s in slots {
                    let at = (s & mask) as usize * k + c;
                    let grad = g * v + cfg.l2 * w.w[at];
                    w.step(at, grad, cfg.learning_rate);
                }
                b.step(c, g, cfg.learning_rate);
            }
        }
    }
    (w.w, b.w)
}

/// The policy's view of one example: the classifier's log-odds and the other signals.
struct PolicyRow<'a> {
    log_odds: f32,
    signals: &'a [Signal],
    spam: bool,
    hangul: bool,
    weight: f32,
}

fn classifier_signal(log_odds: f32) -> Signal {
    Signal {
        log_odds: Some(log_odds),
        ..Signal::new(crate::policy::CLASSIFIER, "classifier.spam", "spam", 0)
    }
}

/// The decision log-odds of one row under `fp`, as [`crate::Policy::decide`] computes
/// them: fitted log-odds, then other evidence by noisy-OR.
fn decision_log_odds(fp: &ScriptPolicy, row: &PolicyRow<'_>) -> f64 {
    let mut all = Vec::with_capacity(row.signals.len() + 1);
    all.push(classifier_signal(row.log_odds));
    all.extend(row.signals.iter().cloned());
    let mut other = 1.0f64;
    let z = fp.log_odds(
        &all,
        |s| other *= 1.0 - f64::from(s.score.min(100)) / 100.0,
        |_, _| {},
    );
    let p = (1.0 - (1.0 - sigmoid(z)) * other).clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln()
}

/// The lowest threshold at which at most `budget` of `ham` (decision log-odds) reach it.
fn threshold(ham: &mut [f64], budget: f64) -> f64 {
    if ham.is_empty() {
        return 0.0;
    }
    ham.sort_by(|a, b| b.total_cmp(a));
    let allowed = (budget * ham.len() as f64).floor() as usize;
    match ham.get(allowed) {
        // Just above the first ham that must stay below.
        Some(&z) => z + 1e-6 * z.abs().max(1.0),
        None => ham[ham.len() - 1],
    }
}

/// Fits one script's policy on its rows: logistic regression over the classifier's
/// out-of-fold log-odds, each rule category's strongest score, and for each pair of
/// categories that meet in [`MIN_PAIR_ROWS`] rows the weaker of their two scores (category
/// and pair weights kept non-negative), then the thresholds that keep its ham within the
/// budgets.
fn fit_script(
    rows: &[&PolicyRow<'_>],
    categories: &[String],
    block_budget: f64,
    cfg: &TrainConfig,
) -> ScriptPolicy {
    let k = categories.len();
    // Each row's strongest score per category (0..=1), of the findings the policy weighs.
    let cat_scores: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| {
            let mut x = vec![0.0; k];
            for s in r.signals.iter().filter(|s| weighed_with_category(s)) {
                if let Some(c) = categories.iter().position(|c| c == s.category.as_ref()) {
                    x[c] = f64::max(x[c], f64::from(s.score.min(100)) / 100.0);
                }
            }
            x
        })
        .collect();
    // The pairs of categories that meet in enough rows to be weighed.
    let pairs: Vec<(usize, usize)> = (0..k)
        .flat_map(|a| (a + 1..k).map(move |b| (a, b)))
        .filter(|&(a, b)| {
            cat_scores
                .iter()
                .filter(|x| x[a] > 0.0 && x[b] > 0.0)
                .count()
                >= MIN_PAIR_ROWS
        })
        .collect();
    let xs: Vec<Vec<f64>> = rows
        .iter()
        .zip(&cat_scores)
        .map(|(r, cs)| {
            let mut x = Vec::with_capacity(1 + k + pairs.len());
            x.push(
                f64::from(r.log_odds).clamp(-CLASSIFIER_LOG_ODDS_CLAMP, CLASSIFIER_LOG_ODDS_CLAMP),
            );
            x.extend_from_slice(cs);
            x.extend(pairs.iter().map(|&(a, b)| cs[a].min(cs[b])));
            x
        })
        .collect();
    let k = k + pairs.len();
    let mut w = vec![0.0f64; k + 1];
    w[0] = 1.0;
    let mut b = 0.0f64;
    let (mut gw2, mut gb2) = (vec![0.0f64; k + 1], 0.0f64);
    let n = rows
        .iter()
        .map(|r| f64::from(r.weight))
        .sum::<f64>()
        .max(1.0);
    for _ in 0..400 {
        let mut gw = vec![0.0f64; k + 1];
        let mut gb = 0.0;
        for (x, r) in xs.iter().zip(rows) {
            let z = b + x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
            let g = (sigmoid(z) - if r.spam { 1.0 } else { 0.0 }) * f64::from(r.weight);
            for (gi, xi) in gw.iter_mut().zip(x) {
                *gi += g * xi;
            }
            gb += g;
        }
        for j in 0..=k {
            let grad = gw[j] / n + 1e-4 * w[j];
            gw2[j] += grad * grad;
            w[j] -= 0.5 * grad / (gw2[j].sqrt() + 1e-9);
            if j > 0 {
                w[j] = w[j].max(0.0);
            }
        }
        let grad = gb / n;
        gb2 += grad * grad;
        b -= 0.5 * grad / (gb2.sqrt() + 1e-9);
    }
    let mut p = ScriptPolicy {
        bias: b,
        classifier: w[0],
        categories: categories
            .iter()
            .cloned()
            .zip(w[1..].iter().copied())
            .collect(),
        pairs: pairs
            .iter()
            .zip(&w[1 + categories.len()..])
            .map(|(&(a, b), &weight)| CategoryPair {
                when: [categories[a].clone(), categories[b].clone()],
                weight,
            })
            .filter(|q| q.weight > 0.0)
            .collect(),
        block_at: 0.0,
        label_at: 0.0,
    };
    // A weighted ham counts as that many copies of itself.
    let mut ham: Vec<f64> = rows
        .iter()
        .filter(|r| !r.spam)
        .flat_map(|r| {
            let z = decision_log_odds(&p, r);
            std::iter::repeat_n(z, r.weight.round().max(1.0) as usize)
        })
        .collect();
    p.block_at = threshold(&mut ham, block_budget);
    p.label_at = threshold(&mut ham, cfg.ham_label_budget).min(p.block_at);
    p
}

fn fit_policy(rows: &[PolicyRow<'_>], categories: &[String], cfg: &TrainConfig) -> FittedPolicy {
    let of = |hangul: bool| {
        rows.iter()
            .filter(|r| r.hangul == hangul)
            .collect::<Vec<_>>()
    };
    FittedPolicy {
        korean: fit_script(&of(true), categories, cfg.korean_ham_block_budget, cfg),
        other: fit_script(&of(false), categories, cfg.ham_block_budget, cfg),
        ham_block_budget: cfg.ham_block_budget,
        korean_ham_block_budget: cfg.korean_ham_block_budget,
        ham_label_budget: cfg.ham_label_budget,
    }
}

/// Trains a model on `examples` (the caller passes only the training side), where
/// `signals[i]` are the rule and origin signals of example `i` (the policy is fitted on
/// them). `progress` is told each finished stage.
pub fn train(
    examples: &[Example],
    signals: &[Vec<Signal>],
    sources: Vec<SourceInfo>,
    cfg: &TrainConfig,
    mut progress: impl FnMut(&str),
) -> Result<Model, TrainError> {
    cfg.validate()?;
    let spam = examples.iter().filter(|e| e.is_spam()).count();
    if spam == 0 || spam == examples.len() {
        return Err(TrainError::Empty(format!(
            "the training side has {} examples, {spam} of them spam: both spam and ham are needed",
            examples.len()
        )));
    }
    let buckets = 1u32 << cfg.buckets_log2;
    let enc = encode(
        examples,
        buckets,
        cfg.max_chars,
        (cfg.max_ngram, cfg.hangul_max_ngram),
    );
    progress("features extracted");
    let labels: Vec<bool> = examples.iter().map(Example::is_spam).collect();
    let weights: Vec<f32> = examples
        .iter()
        .map(|e| e.weight.unwrap_or(1.0).clamp(0.0, 1_000.0))
        .collect();
    let mut categories: Vec<String> = examples
        .iter()
        .filter(|e| e.is_spam())
        .filter_map(|e| e.category.clone())
        .collect();
    categories.sort();
    categories.dedup();
    if categories.is_empty() {
        categories.push("spam".into());
    }

    // Out-of-fold log-odds for the policy: folds by group (or text), so that the
    // policy sees scores of templates and texts the classifier never saw.
    let fold_of: Vec<usize> = examples
        .iter()
        .map(|e| usize::from(e.split_key()[1]) % FOLDS)
        .collect();
    let mut oof = vec![0.0f32; examples.len()];
    for fold in 0..FOLDS {
        let rest: Vec<usize> = (0..examples.len())
            .filter(|&i| fold_of[i] != fold)
            .collect();
        let head = train_spam_head(
            &enc,
            &labels,
            &weights,
            &rest,
            cfg,
            cfg.seed.wrapping_add(fold as u64 + 1),
        );
        for i in (0..examples.len()).filter(|&i| fold_of[i] == fold) {
            oof[i] = head.served_logit(&enc, i, cfg.hangul_window_bytes);
        }
        progress(&format!("fold {} of {FOLDS} trained", fold + 1));
    }
    let mut rule_categories: Vec<String> = signals
        .iter()
        .flatten()
        .filter(|s| s.operator == "pattern")
        .map(|s| s.category.to_string())
        .collect();
    rule_categories.sort();
    rule_categories.dedup();
    let excluded = |e: &Example| {
        e.source
            .as_ref()
            .is_some_and(|s| cfg.policy_exclude_sources.contains(s))
    };
    let rows: Vec<PolicyRow<'_>> = (0..examples.len())
        .filter(|&i| !excluded(&examples[i]))
        .map(|i| PolicyRow {
            log_odds: oof[i],
            signals: &signals[i],
            spam: labels[i],
            hangul: has_hangul(&examples[i].text),
            weight: weights[i],
        })
        .collect();
    let policy = fit_policy(&rows, &rule_categories, cfg);
    progress("policy fitted");

    let all: Vec<usize> = (0..examples.len()).collect();
    let head = train_spam_head(&enc, &labels, &weights, &all, cfg, cfg.seed);
    let cats: Vec<Option<usize>> = examples
        .iter()
        .map(|e| {
            e.category
                .as_ref()
                .filter(|_| e.is_spam())
                .and_then(|c| categories.iter().position(|x| x == c))
        })
        .collect();
    let (cw, cb) = train_category_head(
        &candidate_slots(&enc, &head.w.w, cfg.min_features),
        &cats,
        &weights,
        categories.len(),
        cfg,
    );
    progress("final model trained");
    let header = ModelHeader {
        buckets,
        category_buckets: 1 << cfg.category_buckets_log2,
        category_bias: cb,
        categories,
        bias: head.bias.w[0],
        hangul_bias: Some(head.bias.w[1]),
        max_chars: cfg.max_chars,
        max_ngram: cfg.max_ngram,
        hangul_max_ngram: Some(cfg.hangul_max_ngram),
        policy,
        seed: cfg.seed,
        sources,
        metrics: serde_json::Value::Null,
        category_features: CategoryFeatures::Evidence,
        evasion_feature: true,
        link_hosts: true,
        link_host_words: true,
        hangul_window_bytes: cfg.hangul_window_bytes,
        min_features: Some(cfg.min_features),
    };
    Ok(Model::new(header, head.w.w, cw))
}

/// Counts of one group (a language, a category, a source, or all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Spam blocked.
    pub spam_blocked: u64,
    /// Spam labelled but delivered.
    pub spam_labelled: u64,
    /// Spam allowed.
    pub spam_allowed: u64,
    /// Ham blocked (false positives).
    pub ham_blocked: u64,
    /// Ham labelled.
    pub ham_labelled: u64,
    /// Ham allowed.
    pub ham_allowed: u64,
}

/// What the pipeline did with one example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Blocked or throttled.
    Blocked,
    /// Delivered with a label.
    Labelled,
    /// Delivered.
    Allowed,
}

impl Counts {
    /// Adds one example's outcome.
    pub fn add(&mut self, spam: bool, o: Outcome) {
        let c = match (spam, o) {
            (true, Outcome::Blocked) => &mut self.spam_blocked,
            (true, Outcome::Labelled) => &mut self.spam_labelled,
            (true, Outcome::Allowed) => &mut self.spam_allowed,
            (false, Outcome::Blocked) => &mut self.ham_blocked,
            (false, Outcome::Labelled) => &mut self.ham_labelled,
            (false, Outcome::Allowed) => &mut self.ham_allowed,
        };
        *c += 1;
    }

    fn spam(&self) -> u64 {
        self.spam_blocked + self.spam_labelled + self.spam_allowed
    }

    fn ham(&self) -> u64 {
        self.ham_blocked + self.ham_labelled + self.ham_allowed
    }

    /// Share of spam blocked (recall of `block`).
    pub fn recall(&self) -> f64 {
        ratio(self.spam_blocked, self.spam())
    }

    /// Share of blocked messages that are spam.
    pub fn precision(&self) -> f64 {
        ratio(self.spam_blocked, self.spam_blocked + self.ham_blocked)
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    /// Share of ham blocked.
    pub fn ham_blocked_rate(&self) -> f64 {
        ratio(self.ham_blocked, self.ham())
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Metrics of a labelled set: overall, per language, per category (spam only), per
/// source; for the whole decision and for the classifier alone (probability >= 0.5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Examples evaluated.
    pub examples: u64,
    /// The whole decision (rules + classifier + fitted policy).
    pub decision: Counts,
    /// Per language.
    pub by_language: BTreeMap<String, Counts>,
    /// Per spam category (ham counted under its language only).
    pub by_category: BTreeMap<String, Counts>,
    /// Per source file.
    pub by_source: BTreeMap<String, Counts>,
    /// Spam marked obfuscated.
    pub obfuscated: Counts,
    /// The classifier alone at probability 0.5.
    pub classifier: Counts,
    /// Spam with a category label that the classifier finds (p >= 0.5): how many, and
    /// of those how many it names the labelled category.
    #[serde(default)]
    pub category_found: u64,
    /// Of [`Metrics::category_found`], named right.
    #[serde(default)]
    pub category_right: u64,
}

impl Metrics {
    /// Adds one example: what the pipeline did, the classifier's probability and the
    /// category it names.
    pub fn add(
        &mut self,
        e: &Example,
        decision: Outcome,
        probability: f32,
        category: Option<&str>,
    ) {
        let spam = e.is_spam();
        self.examples += 1;
        self.decision.add(spam, decision);
        self.by_language
            .entry(e.language().to_owned())
            .or_default()
            .add(spam, decision);
        if spam {
            let c = e.category.clone().unwrap_or_else(|| "uncategorised".into());
            self.by_category.entry(c).or_default().add(spam, decision);
        }
        if e.obfuscated {
            self.obfuscated.add(spam, decision);
        }
        if let Some(s) = &e.source {
            self.by_source
                .entry(s.clone())
                .or_default()
                .add(spam, decision);
        }
        let alone = if probability >= 0.5 {
            Outcome::Blocked
        } else {
            Outcome::Allowed
        };
        self.classifier.add(spam, alone);
        if let (true, Some(truth)) = (spam && probability >= 0.5, &e.category) {
            self.category_found += 1;
            self.category_right += u64::from(category == Some(truth.as_str()));
        }
    }

    /// A table for people.
    pub fn render(&self) -> String {
        let mut out = format!("examples: {}\n\n", self.examples);
        out.push_str("| group | spam | blocked | labelled | recall | precision | F1 | ham | ham blocked | ham labelled | ham blocked % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let row = |out: &mut String, name: &str, c: &Counts| {
            out.push_str(&format!(
                "| {name} | {} | {} | {} | {:.1}% | {:.1}% | {:.3} | {} | {} | {} | {:.2}% |\n",
                c.spam(),
                c.spam_blocked,
                c.spam_labelled,
                100.0 * c.recall(),
                100.0 * c.precision(),
                c.f1(),
                c.ham(),
                c.ham_blocked,
                c.ham_labelled,
                100.0 * c.ham_blocked_rate()
            ));
        };
        row(&mut out, "all (decision)", &self.decision);
        row(&mut out, "classifier alone, p >= 0.5", &self.classifier);
        for (k, c) in &self.by_language {
            row(&mut out, &format!("language {k}"), c);
        }
        for (k, c) in &self.by_category {
            row(&mut out, &format!("category {k}"), c);
        }
        row(&mut out, "obfuscated spam", &self.obfuscated);
        for (k, c) in &self.by_source {
            row(&mut out, &format!("source {k}"), c);
        }
        out.push_str(&format!(
            "\ncategory named right (labelled spam the classifier finds): {} of {} ({:.1}%)\n",
            self.category_right,
            self.category_found,
            100.0 * ratio(self.category_right, self.category_found)
        ));
        let d = &self.decision;
        out.push_str(&format!(
            "\nconfusion matrix (rows: truth, columns: action)\n\n|      | block | label | allow |\n|---|---:|---:|---:|\n| spam | {} | {} | {} |\n| ham  | {} | {} | {} |\n",
            d.spam_blocked, d.spam_labelled, d.spam_allowed, d.ham_blocked, d.ham_labelled, d.ham_allowed
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, spam: bool, cat: Option<&str>) -> Example {
        Example {
            text: text.into(),
            label: if spam { Label::Spam } else { Label::Ham },
            category: cat.map(Into::into),
            language: None,
            source: None,
            group: None,
            weight: None,
            obfuscated: false,
        }
    }

    fn corpus() -> Vec<Example> {
        let mut v = Vec::new();
        for i in 0..60 {
            v.push(ex(
                &format!("카지노 첫충 {i}% 보너스 가입 코드 vip{i}"),
                true,
                Some("gambling"),
            ));
            v.push(ex(
                &format!("무직자 당일 대출 {i}만원 카톡 문의"),
                true,
                Some("loan"),
            ));
            v.push(ex(&format!("엄마 오늘 {i}시에 저녁 먹자"), false, None));
            v.push(ex(
                &format!("see you at {i} tonight, bring the book"),
                false,
                None,
            ));
        }
        v
    }

    fn small() -> TrainConfig {
        TrainConfig {
            buckets_log2: 12,
            category_buckets_log2: 10,
            epochs: 3,
            ..TrainConfig::default()
        }
    }

    #[test]
    fn same_data_and_seed_give_the_same_bytes_and_another_seed_does_not() {
        let data = corpus();
        let sig = vec![Vec::new(); data.len()];
        let a = train(&data, &sig, vec![], &small(), |_| {}).unwrap();
        let b = train(&data, &sig, vec![], &small(), |_| {}).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        assert_eq!(a.version, b.version);
        let c = train(
            &data,
            &sig,
            vec![],
            &TrainConfig { seed: 2, ..small() },
            |_| {},
        )
        .unwrap();
        assert_ne!(a.version, c.version);
        let back = Model::from_bytes(&a.to_bytes(), "t").unwrap();
        assert_eq!(back.version, a.version);
        assert_eq!(
            back.header.categories,
            vec!["gambling".to_string(), "loan".into()]
        );
    }

    #[test]
    fn a_bagged_head_is_the_average_of_its_members() {
        let data = corpus();
        let enc = encode(&data, 1 << 12, 600, (4, 3));
        let labels: Vec<bool> = data.iter().map(Example::is_spam).collect();
        let weights = vec![1.0; data.len()];
        let rows: Vec<usize> = (0..data.len()).collect();
        let cfg = TrainConfig { bag: 3, ..small() };
        let bagged = train_spam_head(&enc, &labels, &weights, &rows, &cfg, 9);
        let mut rng = SplitMix(9);
        let members: Vec<SpamHead> = (0..3)
            .map(|_| train_one_spam_head(&enc, &labels, &weights, &rows, &cfg, rng.next()))
            .collect();
        for (slots, &hangul) in enc.slots.iter().zip(&enc.hangul) {
            let mean = members.iter().map(|h| h.logit(slots, hangul)).sum::<f32>() / 3.0;
            assert!((bagged.logit(slots, hangul) - mean).abs() < 1e-4);
        }
        assert_ne!(
            members[0].logit(&enc.slots[0], enc.hangul[0]),
            members[1].logit(&enc.slots[0], enc.hangul[0])
        );
        let bad = TrainConfig { bag: 0, ..small() };
        assert!(matches!(bad.validate(), Err(TrainError::Settings(e)) if e.contains("bag 0")));
    }

    #[test]
    fn hangul_windows_change_the_korean_policy_and_nothing_else() {
        let data = corpus();
        let sig = vec![Vec::new(); data.len()];
        let cfg = TrainConfig {
            hangul_window_bytes: None,
            ..small()
        };
        let plain = train(&data, &sig, vec![], &cfg, |_| {}).unwrap();
        let cfg = TrainConfig {
            hangul_window_bytes: Some(16),
            ..small()
        };
        let windows = train(&data, &sig, vec![], &cfg, |_| {}).unwrap();
        assert_eq!(windows.header.hangul_window_bytes, Some(16));
        assert_eq!(plain.weights(), windows.weights());
        assert_eq!(plain.header.policy.other, windows.header.policy.other);
        assert_ne!(plain.header.policy.korean, windows.header.policy.korean);
        let bad = TrainConfig {
            hangul_window_bytes: Some(8),
            ..small()
        };
        assert!(
            matches!(bad.validate(), Err(TrainError::Settings(e)) if e.contains("hangul_window_bytes 8"))
        );
    }

    #[test]
    fn an_all_ham_or_empty_set_is_refused() {
        let data: Vec<Example> = corpus().into_iter().filter(|e| !e.is_spam()).collect();
        let sig = vec![Vec::new(); data.len()];
        assert!(matches!(
            train(&data, &sig, vec![], &small(), |_| {}),
            Err(TrainError::Empty(_))
        ));
        assert!(matches!(
            train(&[], &[], vec![], &small(), |_| {}),
            Err(TrainError::Empty(_))
        ));
    }

    #[test]
    fn bad_lines_are_named_with_their_number() {
        let input = "{\"text\":\"a\",\"label\":\"spam\"}\n\n{\"text\":\"b\",\"label\":\"maybe\"}\n";
        match read_examples(input.as_bytes(), "f.jsonl") {
            Err(TrainError::BadLine { line, file, .. }) => {
                assert_eq!((line, file.as_str()), (3, "f.jsonl"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn thresholds_keep_ham_within_the_budget() {
        let mut ham: Vec<f64> = (0..1000).map(f64::from).collect();
        let t = threshold(&mut ham, 0.005);
        assert_eq!(ham.iter().filter(|z| **z >= t).count(), 5);
    }

    #[test]
    fn each_script_keeps_its_own_ham_budget() {
        // 1,000 ham of each script, with out-of-fold log-odds spread over -5..5: each
        // script's block threshold lets exactly its budget's share of its ham through.
        let sig: Vec<Signal> = Vec::new();
        let rows: Vec<PolicyRow<'_>> = (0..2000)
            .map(|i| PolicyRow {
                log_odds: (i % 1000) as f32 / 100.0 - 5.0,
                signals: &sig,
                spam: false,
                hangul: i < 1000,
                weight: 1.0,
            })
            .chain((0..200).map(|i| PolicyRow {
                log_odds: 5.0,
                signals: &sig,
                spam: true,
                hangul: i < 100,
                weight: 1.0,
            }))
            .collect();
        let cfg = TrainConfig {
            ham_block_budget: 0.004,
            korean_ham_block_budget: 0.01,
            ..TrainConfig::default()
        };
        let p = fit_policy(&rows, &[], &cfg);
        let blocked = |sp: &ScriptPolicy, hangul: bool| {
            rows.iter()
                .filter(|r| !r.spam && r.hangul == hangul)
                .filter(|r| decision_log_odds(sp, r) >= sp.block_at)
                .count()
        };
        assert_eq!(blocked(&p.korean, true), 10);
        assert_eq!(blocked(&p.other, false), 4);
        assert_eq!(
            (p.ham_block_budget, p.korean_ham_block_budget),
            (0.004, 0.01)
        );
    }

    #[test]
    fn two_categories_that_mean_spam_only_together_get_a_pair_weight() {
        // The classifier is unsure of everything. An impersonated institution alone is
        // ham (the institution's own notices), so is a suspicious link alone; both
        // together are spam. Only a pair weight can block the pair and not its parts.
        let sig = |cats: &[&str]| -> Vec<Signal> {
            cats.iter()
                .map(|c| Signal::new("pattern", format!("{c}.rule"), c.to_string(), 60))
                .collect()
        };
        let (imp, url, both, none) = (
            sig(&["impersonation"]),
            sig(&["url"]),
            sig(&["impersonation", "url"]),
            sig(&[]),
        );
        let row = |signals, spam| PolicyRow {
            log_odds: 0.0,
            signals,
            spam,
            hangul: true,
            weight: 1.0,
        };
        let rows: Vec<PolicyRow<'_>> = (0..300)
            .map(|i| match i % 3 {
                0 => row(&imp, false),
                1 => row(&url, false),
                _ => row(&none, false),
            })
            .chain((0..100).map(|_| row(&both, true)))
            .collect();
        let categories = ["impersonation".to_string(), "url".to_string()];
        let p = fit_policy(&rows, &categories, &TrainConfig::default()).korean;
        assert_eq!(p.pairs.len(), 1, "{p:?}");
        assert_eq!(p.pairs[0].when, categories);
        assert!(p.pairs[0].weight > 1.0, "{p:?}");
        let blocked = |r: &PolicyRow<'_>| decision_log_odds(&p, r) >= p.block_at;
        assert!(blocked(&row(&both, true)));
        for alone in [&imp, &url, &none] {
            assert!(!blocked(&row(alone, false)), "{alone:?}");
        }
        // A pair seen in fewer than MIN_PAIR_ROWS rows is not weighed.
        let few: Vec<PolicyRow<'_>> = rows[..300]
            .iter()
            .map(|r| row(r.signals, false))
            .chain((0..MIN_PAIR_ROWS - 1).map(|_| row(&both, true)))
            .collect();
        assert!(fit_policy(&few, &categories, &TrainConfig::default())
            .korean
            .pairs
            .is_empty());
    }

    #[test]
    fn category_accuracy_counts_found_spam_with_a_category_label() {
        let mut m = Metrics::default();
        let gambling = ex("카지노", true, Some("gambling"));
        m.add(&gambling, Outcome::Blocked, 0.9, Some("gambling"));
        m.add(&gambling, Outcome::Blocked, 0.9, Some("loan"));
        m.add(&gambling, Outcome::Allowed, 0.2, None);
        m.add(
            &ex("안녕", false, None),
            Outcome::Allowed,
            0.9,
            Some("loan"),
        );
        m.add(&ex("spam", true, None), Outcome::Blocked, 0.9, Some("loan"));
        assert_eq!((m.category_right, m.category_found), (1, 2));
        assert!(m.render().contains("1 of 2 (50.0%)"));
    }
}
