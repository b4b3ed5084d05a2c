//! The model file: a versioned, self-describing binary that carries the classifier's
//! weights, its category head and the fitted policy.
//!
//! ```text
//! b"SFMODEL1"                     8 bytes, magic and format version
//! header length                   u32 little-endian
//! header                          JSON (ModelHeader): sizes, categories, biases, the
//!                                 fitted policy, the training command, sources, metrics
//! spam weights                    buckets x f32 little-endian
//! category weights                category_buckets x categories x f32 little-endian
//!                                 (bucket-major: one bucket's categories are adjacent)
//! ```
//!
//! The model's version is `sha256:` and the first 16 hex digits of the SHA-256 of the
//! whole file; it is stamped on every verdict as `model_version`. A file that does not
//! parse, whose sizes disagree with its length, or whose numbers are not finite is
//! refused with the reason.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::features::{Feature, Links};
use crate::policy::FittedPolicy;

const MAGIC: &[u8; 8] = b"SFMODEL1";
/// Largest hash table accepted (2^22 slots, 16 MiB of weights).
const MAX_BUCKETS: u32 = 1 << 22;

/// Where a model's training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    /// The file as given to `spamflow train`.
    pub file: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Rows read from it.
    pub rows: usize,
}

/// Everything about a model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelHeader {
    /// Hash slots of the spam head (a power of two).
    pub buckets: u32,
    /// Hash slots of the category head (a power of two).
    pub category_buckets: u32,
    /// Category names of the category head, in weight order.
    pub categories: Vec<String>,
    /// Spam head bias (of text without Hangul when `hangul_bias` is set).
    pub bias: f32,
    /// Spam head bias of text with Hangul (absent in files written before each script had
    /// its own: `bias` for all text). Each feature weighs `1/sqrt(n)`, the bias does not:
    /// with one bias for both, the shape features would carry the English prior (13 % spam
    /// in the UCI rows, about half in the Korean data), and their weight grows as a text
    /// gets shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangul_bias: Option<f32>,
    /// Category head biases, one per category.
    pub category_bias: Vec<f32>,
    /// Characters of the canonical text read per message.
    pub max_chars: usize,
    /// Longest character n-gram (2..=6).
    pub max_ngram: usize,
    /// Longest character n-gram of text with Hangul (2..=6; `max_ngram` in files written
    /// before it was written down). Syllables carry more than letters: 3-grams find as
    /// much Korean spam as 4-grams, with a quarter fewer features to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangul_max_ngram: Option<usize>,
    /// The policy fitted with this model.
    pub policy: FittedPolicy,
    /// Seed the model was trained with.
    pub seed: u64,
    /// Training sources.
    pub sources: Vec<SourceInfo>,
    /// Held-out metrics printed by `spamflow train` (informational).
    #[serde(default)]
    pub metrics: serde_json::Value,
    /// Which features the category head reads (`all` in files written before it was
    /// written down).
    #[serde(default)]
    pub category_features: CategoryFeatures,
    /// Whether the text's obfuscation marks ([`crate::normalize::evasions`]) are a shape
    /// feature (`false` in files written before it was).
    #[serde(default)]
    pub evasion_feature: bool,
    /// Whether a link is read as its host only (`false` in files written before it was;
    /// [`super::features::Extractor::extract`]).
    #[serde(default)]
    pub link_hosts: bool,
    /// Whether a link's host adds only its words, not its character n-grams
    /// ([`Links::HostWords`]; `false` in files written before it was). Needs `link_hosts`.
    #[serde(default)]
    pub link_host_words: bool,
    /// For text with Hangul, the spam log-odds are the largest of the whole text's and
    /// those of its windows of this many bytes of the canonical text
    /// ([`window_max_logit`]). Absent (files written before it was, and models trained
    /// without `--hangul-window-bytes`), the whole text is scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangul_window_bytes: Option<usize>,
    /// Each of a text's `n` features weighs `1/sqrt(max(n, min_features))` (absent in
    /// files written before it was: `1/sqrt(n)`). A short text has few features and each
    /// would weigh more, so a few words of ordinary chat (`연락해보세요`) could score as
    /// surely as a whole pitch; with the floor, a text shorter than about a dozen
    /// syllables counts for less.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_features: Option<usize>,
}

impl ModelHeader {
    /// How the model reads links.
    pub fn links(&self) -> Links {
        match (self.link_hosts, self.link_host_words) {
            (false, _) => Links::Whole,
            (true, false) => Links::Host,
            (true, true) => Links::HostWords,
        }
    }

    /// The spam head's bias of text with or without Hangul.
    pub fn bias(&self, hangul: bool) -> f32 {
        match self.hangul_bias {
            Some(b) if hangul => b,
            _ => self.bias,
        }
    }

    /// The weight of each of a text's `n` features ([`ModelHeader::min_features`]).
    pub fn feature_value(&self, n: usize) -> f32 {
        value(n, self.min_features.unwrap_or(1))
    }

    /// The longest character n-grams of text without and with Hangul.
    pub fn ngrams(&self) -> (usize, usize) {
        (
            self.max_ngram,
            self.hangul_max_ngram.unwrap_or(self.max_ngram),
        )
    }
}

/// The features the category head reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CategoryFeatures {
    /// Every feature of the text.
    #[default]
    All,
    /// Only the evidence candidates: the features that push hardest towards spam
    /// ([`evidence_candidates`]), at most a dozen. They name what the message sells, and
    /// reading a dozen weights rows instead of hundreds is most of the category's cost.
    Evidence,
}

/// How many of the strongest features are evidence candidates.
pub const EVIDENCE_CANDIDATES: usize = 12;
/// A feature is an evidence candidate when it pushes towards spam at least this share of
/// the strongest feature's push.
const EVIDENCE_FLOOR: f32 = 0.25;

/// The indices of the evidence candidates among a text's features, given each feature's
/// contribution to the spam log-odds: the features (the last `shape_features`, the shape
/// features, excluded) that push towards spam at least a quarter as hard as the strongest
/// one, the strongest dozen of them (ties by position, so training and serving choose
/// alike), in text order.
pub fn evidence_candidates(contributions: &[f32], shape_features: usize, out: &mut Vec<usize>) {
    out.clear();
    let n = contributions.len().saturating_sub(shape_features);
    let scored = &contributions[..n];
    let strongest = scored.iter().fold(0.0f32, |m, &c| m.max(c));
    let floor = strongest * EVIDENCE_FLOOR;
    // Without a branch per feature: whether a feature passes is a coin toss to the branch
    // predictor, and a branch here cost more than the rest of this function together.
    out.resize(n, 0);
    let mut kept = 0;
    for (i, &c) in scored.iter().enumerate() {
        out[kept] = i;
        kept += usize::from((c > 0.0) & (c >= floor));
    }
    out.truncate(kept);
    if out.len() > EVIDENCE_CANDIDATES {
        out.select_nth_unstable_by(EVIDENCE_CANDIDATES - 1, |&a, &b| {
            scored[b].total_cmp(&scored[a]).then(a.cmp(&b))
        });
        out.truncate(EVIDENCE_CANDIDATES);
        out.sort_unstable();
    }
}

/// A model that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("cannot read model file {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid model.
    #[error("model {path} is not a valid spamflow model: {reason}")]
    Invalid {
        /// The path (or `bytes`).
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A loaded model.
#[derive(Clone)]
pub struct Model {
    /// Sizes, categories, fitted policy, provenance.
    pub header: ModelHeader,
    /// Spam head weights.
    pub(crate) weights: Vec<f32>,
    /// Category head weights (bucket-major).
    pub(crate) category_weights: Vec<f32>,
    /// `sha256:<16 hex>` of the file.
    pub version: String,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("version", &self.version)
            .field("buckets", &self.header.buckets)
            .field("categories", &self.header.categories)
            .finish_non_exhaustive()
    }
}

fn invalid(path: &str, reason: impl Into<String>) -> ModelError {
    ModelError::Invalid {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

fn version_of(bytes: &[u8]) -> String {
    format!("sha256:{}", &hex::encode(Sha256::digest(bytes))[..16])
}

impl Model {
    /// A model from its parts (training); the version is that of its file bytes.
    pub fn new(header: ModelHeader, weights: Vec<f32>, category_weights: Vec<f32>) -> Self {
        let mut m = Model {
            header,
            weights,
            category_weights,
            version: String::new(),
        };
        m.version = version_of(&m.to_bytes());
        m
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    /// Validates and decodes model bytes; `name` is used in errors.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Model, ModelError> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(invalid(name, "it does not start with the SFMODEL1 magic"));
        }
        let hlen = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
        let body = &bytes[12..];
        if hlen > body.len() {
            return Err(invalid(
                name,
                format!("header length {hlen} exceeds the file"),
            ));
        }
        let header: ModelHeader = serde_json::from_slice(&body[..hlen])
            .map_err(|e| invalid(name, format!("header: {e}")))?;
        let h = &header;
        for (what, n) in [
            ("buckets", h.buckets),
            ("category_buckets", h.category_buckets),
        ] {
            if !n.is_power_of_two() || n > MAX_BUCKETS {
                return Err(invalid(
                    name,
                    format!("{what} {n} is not a power of two up to 2^22"),
                ));
            }
        }
        if h.categories.is_empty()
            || h.categories.len() > 64
            || h.category_bias.len() != h.categories.len()
        {
            return Err(invalid(
                name,
                "categories must be 1..=64 names with one bias each",
            ));
        }
        if h.max_chars == 0 {
            return Err(invalid(name, "max_chars is 0"));
        }
        if let Some(w) = h.hangul_window_bytes.filter(|w| !WINDOW_BYTES.contains(w)) {
            return Err(invalid(
                name,
                format!("hangul_window_bytes {w} is outside {WINDOW_BYTES:?}"),
            ));
        }
        if let Some(m) = h.min_features.filter(|m| !(1..=1000).contains(m)) {
            return Err(invalid(
                name,
                format!("min_features {m} is outside 1..=1000"),
            ));
        }
        if h.link_host_words && !h.link_hosts {
            return Err(invalid(name, "link_host_words needs link_hosts"));
        }
        for (key, n) in [
            ("max_ngram", h.max_ngram),
            ("hangul_max_ngram", h.ngrams().1),
        ] {
            if !(2..=6).contains(&n) {
                return Err(invalid(name, format!("{key} {n} is outside 2..=6")));
            }
        }
        h.policy
            .validate()
            .map_err(|e| invalid(name, format!("policy: {e}")))?;
        let k = h.categories.len();
        let want = (h.buckets as usize + h.category_buckets as usize * k) * 4;
        let floats = &body[hlen..];
        if floats.len() != want {
            return Err(invalid(
                name,
                format!(
                    "{} bytes of weights where the header calls for {want}",
                    floats.len()
                ),
            ));
        }
        let all: Vec<f32> = floats
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if !all
            .iter()
            .chain(std::iter::once(&h.bias))
            .chain(&h.hangul_bias)
            .chain(&h.category_bias)
            .all(|w| w.is_finite())
        {
            return Err(invalid(name, "a weight is not a finite number"));
        }
        let (w, cw) = all.split_at(h.buckets as usize);
        Ok(Model {
            weights: w.to_vec(),
            category_weights: cw.to_vec(),
            version: version_of(bytes),
            header,
        })
    }

    /// The file bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).unwrap_or_default();
        let mut out = Vec::with_capacity(
            12 + header.len() + 4 * (self.weights.len() + self.category_weights.len()),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for w in self.weights.iter().chain(&self.category_weights) {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// Writes the file (to a temporary name first, then renamed, so a watcher never reads
    /// half a model).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.to_bytes())?;
        std::fs::rename(tmp, path)
    }

    /// The spam head's weights.
    pub fn weights(&self) -> &[f32] {
        &self.weights
    }

    /// The category head's weights (bucket-major).
    pub fn category_weights(&self) -> &[f32] {
        &self.category_weights
    }

    /// The spam head's log-odds for the features of a text with or without Hangul, keeping
    /// each feature's contribution in `contributions`.
    pub fn logit_with(
        &self,
        features: &[Feature],
        hangul: bool,
        contributions: &mut Vec<f32>,
    ) -> f32 {
        let v = self.header.feature_value(features.len());
        contributions.clear();
        contributions.extend(features.iter().map(|f| self.weights[f.slot as usize] * v));
        self.header.bias(hangul) + contributions.iter().sum::<f32>()
    }

    /// The most likely category of a spam text and its probability among categories,
    /// from the slots the category head reads (all of the text's, or its evidence
    /// candidates': [`ModelHeader::category_features`]).
    pub fn category(&self, slots: &[u32], scores: &mut Vec<f32>) -> (usize, f32) {
        let k = self.header.categories.len();
        let mask = self.header.category_buckets - 1;
        let v = self.header.feature_value(slots.len());
        scores.clear();
        scores.extend_from_slice(&self.header.category_bias);
        for s in slots {
            let at = (s & mask) as usize * k;
            for (s, w) in scores.iter_mut().zip(&self.category_weights[at..at + k]) {
                *s += w * v;
            }
        }
        softmax(scores);
        let (best, p) =
            scores
                .iter()
                .enumerate()
                .fold((0, f32::MIN), |b, (i, &p)| if p > b.1 { (i, p) } else { b });
        (best, p)
    }
}

/// The window lengths a model may have, in bytes of the canonical text.
pub const WINDOW_BYTES: std::ops::RangeInclusive<usize> = 16..=600;

/// The spam log-odds of a text scored by windows: the largest of `whole` (the whole
/// text's) and those of its windows of `window` bytes of the canonical text, taken every
/// half window. A window's log-odds are `log_odds` of the summed weights and the number
/// of the features that start in it (`words`: slot and start byte) and of the whole
/// text's shape features (`shape`'s slots); the last window may be as short as half a
/// window. Padding spam with ordinary chat adds the chat's ham evidence to the sum
/// and dilutes the pitch's; a window that holds the pitch alone reads it undiluted.
/// `blocks` is scratch space.
pub(crate) fn window_max_logit(
    whole: f32,
    log_odds: impl Fn(f32, usize) -> f32,
    weights: &[f32],
    window: usize,
    words: impl Iterator<Item = (u32, u32)>,
    shape: impl ExactSizeIterator<Item = u32>,
    blocks: &mut Vec<(f32, usize)>,
) -> f32 {
    let half = (window / 2).max(1);
    blocks.clear();
    for (slot, start) in words {
        let b = start as usize / half;
        if b >= blocks.len() {
            blocks.resize(b + 1, (0.0, 0));
        }
        blocks[b].0 += weights[slot as usize];
        blocks[b].1 += 1;
    }
    if blocks.len() <= 2 {
        return whole;
    }
    let shapes = shape.len();
    let shape_sum: f32 = shape.map(|s| weights[s as usize]).sum();
    blocks.windows(2).fold(whole, |best, pair| {
        let n = pair[0].1 + pair[1].1 + shapes;
        best.max(log_odds(pair[0].0 + pair[1].0 + shape_sum, n))
    })
}

/// The weight of each of a text's `n` features: `1/sqrt(max(n, min_features))`.
pub(crate) fn value(n: usize, min_features: usize) -> f32 {
    1.0 / (n.max(min_features).max(1) as f32).sqrt()
}

/// In-place softmax.
pub(crate) fn softmax(s: &mut [f32]) {
    let max = s.iter().copied().fold(f32::MIN, f32::max);
    let mut sum = 0.0;
    for x in s.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in s.iter_mut() {
        *x /= sum;
    }
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}
