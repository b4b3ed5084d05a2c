//! The AI text classifier: hashed character and word n-grams into a logistic model,
//! with a category head and a policy fitted on the same labelled data.
//!
//! - [`features`]: canonical text -> hashed features with spans.
//! - [`model`]: the versioned model file (weights, categories, fitted policy, provenance).
//! - [`train`]: deterministic training, cross-fitted policy, thresholds for a stated
//!   false-positive budget, and the metrics `spamflow train` / `eval` print.
//!
//! At run time a [`ModelHandle`] holds the serving model (swapped atomically on hot
//! reload) and each worker's chain owns a [`ClassifierWorker`] with its own buffers. The
//! worker emits one signal per message with the exact log-odds (the fitted policy reads
//! them) and, for spam-looking text, the predicted category and the strongest features as
//! evidence, with their span in the original text. Why this model and not another:
//! `docs/classifier.md`.

pub mod features;
pub mod model;
pub mod train;

use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

pub use features::{Extractor, Feature, Links};
pub use model::{sigmoid, CategoryFeatures, Model, ModelError, ModelHeader, SourceInfo};

use crate::normalize::Normalized;
use crate::policy::CLASSIFIER;
use crate::{ConfigProblem, Signal};

/// The model shipped with spamflow (`operators/models/default.sfm`; how it was trained is
/// in `docs/classifier.md`).
pub const BUILTIN_MODEL: &[u8] = include_bytes!("../../models/default.sfm");

/// The built-in model.
pub fn builtin() -> Result<Model, ModelError> {
    Model::from_bytes(BUILTIN_MODEL, "built-in")
}

/// `[classifier]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClassifierConfig {
    /// Run the classifier and decide with its fitted policy; when off, the policy's
    /// hand-set noisy-OR decides.
    pub enabled: bool,
    /// Model file; empty for the built-in model. Watched and hot-reloaded.
    pub model: String,
    /// A candidate model run in shadow: its decision goes to `shadow[]` only. Empty: none.
    pub shadow_model: String,
    /// How often the model files are checked for changes, in ms.
    pub reload_interval_ms: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            enabled: true,
            model: String::new(),
            shadow_model: String::new(),
            reload_interval_ms: 5_000,
        }
    }
}

impl ClassifierConfig {
    /// Every problem at once, as `(key, reason)`.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errs = Vec::new();
        if self.reload_interval_ms < 100 {
            errs.push(ConfigProblem::new(
                "reload_interval_ms",
                format!("{} is below 100", self.reload_interval_ms),
            ));
        }
        if !self.shadow_model.is_empty() && !self.enabled {
            errs.push(ConfigProblem::new(
                "shadow_model",
                "a shadow model needs enabled = true",
            ));
        }
        errs
    }
}

/// The serving model, shared by every worker and swapped atomically on reload.
#[derive(Clone)]
pub struct ModelHandle {
    current: Arc<ArcSwap<Model>>,
}

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHandle")
            .field("version", &self.current.load().version)
            .finish()
    }
}

impl ModelHandle {
    /// Serves `model`.
    pub fn new(model: Model) -> Self {
        ModelHandle {
            current: Arc::new(ArcSwap::from_pointee(model)),
        }
    }

    /// The model serving now.
    pub fn current(&self) -> Arc<Model> {
        self.current.load_full()
    }

    /// A cheap guard on the model serving now (one per event).
    pub fn load(&self) -> arc_swap::Guard<Arc<Model>> {
        self.current.load()
    }

    /// Serves `model` from the next event on.
    pub fn swap(&self, model: Model) {
        self.current.store(Arc::new(model));
    }
}

/// What the classifier says about one text.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Log-odds of spam.
    pub log_odds: f32,
    /// Probability of spam.
    pub probability: f32,
    /// Most likely category and its probability among categories.
    pub category: Option<(String, f32)>,
    /// Strongest spam evidence: byte span in the original text and its contribution.
    pub evidence: Vec<((usize, usize), f32)>,
}

/// One worker's classifier buffers.
#[derive(Debug, Default)]
pub struct ClassifierWorker {
    norm: Normalized,
    x: Extractor,
    scores: Vec<f32>,
    contributions: Vec<f32>,
    candidates: Vec<usize>,
    slots: Vec<u32>,
    spans: Vec<((usize, usize), f32)>,
    blocks: Vec<(f32, usize)>,
}

/// Probability at or above which the classifier works out a category and evidence, and
/// its reason is listed in the verdict (below it the signal still counts in the policy);
/// lower where the model's fitted policy labels on the classifier alone
/// ([`crate::policy::ScriptPolicy::classifier_finding_log_odds`]).
pub const REASON_MIN_PROBABILITY: f32 = 0.5;
/// How many evidence spans a reason carries.
const EVIDENCE_SPANS: usize = 3;
/// A category is named when the category head gives it at least this probability.
const CATEGORY_MIN_PROBABILITY: f32 = 0.4;

impl ClassifierWorker {
    /// Buffers for one worker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Scores `text` with `model`, normalizing it here (training and evaluation).
    pub fn score(&mut self, model: &Model, text: &str) -> Scored {
        let mut norm = std::mem::take(&mut self.norm);
        norm.normalize(text);
        let scored = self.score_canonical(model, &norm, text);
        self.norm = norm;
        scored
    }

    /// Scores `text`, given `canonical`, the canonical form of `text` or of its first bytes
    /// (the chain's, made once per event; the obfuscation marks are counted in the
    /// characters it was made from).
    pub fn score_canonical(&mut self, model: &Model, canonical: &Normalized, text: &str) -> Scored {
        let h = &model.header;
        self.x.extract(
            canonical.as_str(),
            h.evasion_feature.then(|| canonical.input_chars()),
            h.buckets,
            h.max_chars,
            h.ngrams(),
            h.links(),
        );
        let feats = &self.x.features;
        let whole = model.logit_with(feats, self.x.hangul, &mut self.contributions);
        let log_odds = match h.hangul_window_bytes {
            Some(window) if self.x.hangul => {
                let (words, shape) = feats.split_at(feats.len() - self.x.shape_features);
                model::window_max_logit(
                    whole,
                    |sum, n| h.bias(true) + sum * h.feature_value(n),
                    model.weights(),
                    window,
                    words.iter().map(|f| (f.slot, f.span.0)),
                    shape.iter().map(|f| f.slot),
                    &mut self.blocks,
                )
            }
            _ => whole,
        };
        let probability = sigmoid(f64::from(log_odds)) as f32;
        let mut scored = Scored {
            log_odds,
            probability,
            category: None,
            evidence: Vec::new(),
        };
        let finding = h.policy.script(self.x.hangul).classifier_finding_log_odds();
        if f64::from(log_odds) < finding {
            return scored;
        }
        // The strongest features: the evidence, and (with such a model) what the
        // category head reads.
        model::evidence_candidates(
            &self.contributions,
            self.x.shape_features,
            &mut self.candidates,
        );
        self.slots.clear();
        match h.category_features {
            CategoryFeatures::Evidence => self
                .slots
                .extend(self.candidates.iter().map(|&i| feats[i].slot)),
            CategoryFeatures::All => self.slots.extend(feats.iter().map(|f| f.slot)),
        }
        let (best, p) = model.category(&self.slots, &mut self.scores);
        if p >= CATEGORY_MIN_PROBABILITY {
            scored.category = Some((h.categories[best].clone(), p));
        }
        // Evidence: overlapping candidate spans merged (the n-grams of one word make one
        // excerpt), the strongest first, mapped to the original text.
        let mut merged: Vec<((usize, usize), f32)> = Vec::with_capacity(self.candidates.len());
        self.spans.clear();
        self.spans.extend(self.candidates.iter().map(|&i| {
            let f = feats[i];
            (
                (f.span.0 as usize, f.span.1 as usize),
                self.contributions[i],
            )
        }));
        self.spans.sort_unstable_by_key(|s| s.0);
        for &(s, c) in &self.spans {
            match merged.last_mut() {
                Some((m, mc)) if s.0 < m.1 => {
                    m.1 = m.1.max(s.1);
                    *mc += c;
                }
                _ => merged.push((s, c)),
            }
        }
        merged.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // An analyst reads words, not n-grams: each span grows to the word around it in
        // the original text; a word found twice is shown once.
        let mut evidence: Vec<((usize, usize), f32)> = Vec::with_capacity(EVIDENCE_SPANS);
        for (span, c) in merged {
            let (a, b) = canonical.original_span(span.0, span.1);
            let word = word_around(text, a, b);
            if word.1 > word.0 && !evidence.iter().any(|(w, _)| *w == word) {
                evidence.push((word, c));
            }
            if evidence.len() == EVIDENCE_SPANS {
                break;
            }
        }
        scored.evidence = evidence;
        scored
    }

    /// Appends the classifier's signal on `text`, whose canonical form (or that of its
    /// first bytes) is `canonical` (always one signal: the fitted policy reads its log-odds
    /// even when they say ham).
    pub fn inspect(
        &mut self,
        model: &Model,
        canonical: &Normalized,
        text: &str,
        out: &mut Vec<Signal>,
    ) {
        let s = self.score_canonical(model, canonical, text);
        out.push(signal(&s, text));
    }
}

/// The word of `text` around the byte range `a..b` (on character boundaries): spaces at
/// its ends trimmed, then grown over letters and digits, at most 16 characters each way.
fn word_around(text: &str, a: usize, b: usize) -> (usize, usize) {
    let (mut s, mut e) = (a.min(text.len()), b.min(text.len()));
    while let Some(c) = text[s..e].chars().next().filter(|c| c.is_whitespace()) {
        s += c.len_utf8();
    }
    while let Some(c) = text[s..e].chars().next_back().filter(|c| c.is_whitespace()) {
        e -= c.len_utf8();
    }
    if s == e {
        return (s, e);
    }
    for _ in 0..16 {
        match text[..s].chars().next_back() {
            Some(c) if features::is_word_char(c) => s -= c.len_utf8(),
            _ => break,
        }
    }
    for _ in 0..16 {
        match text[e..].chars().next() {
            Some(c) if features::is_word_char(c) => e += c.len_utf8(),
            _ => break,
        }
    }
    (s, e)
}

/// The signal for a scored text: code `classifier.<category>` (or `classifier.spam`),
/// score = probability in percent, evidence = the strongest excerpts.
pub fn signal(s: &Scored, text: &str) -> Signal {
    let category = s
        .category
        .as_ref()
        .map_or("spam", |(c, _)| c.as_str())
        .to_owned();
    let excerpts: Vec<&str> = s
        .evidence
        .iter()
        .filter_map(|((a, b), _)| text.get(*a..*b))
        .collect();
    Signal {
        log_odds: Some(s.log_odds),
        evidence: (!excerpts.is_empty()).then(|| excerpts.join(" | ")),
        span: s.evidence.first().map(|((a, b), _)| [*a, *b]),
        ..Signal::new(
            CLASSIFIER,
            format!("classifier.{category}"),
            category,
            (s.probability * 100.0).round() as u8,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_candidates_are_the_strongest_dozen_over_the_floor_without_shape_features() {
        let mut out = Vec::new();
        // Weak pushes below a quarter of the strongest, and the shape features (the last
        // three, here the strongest of all), are not candidates.
        let mut c = vec![4.0, 0.5, -3.0, 1.0, 2.0];
        c.extend([9.0, 9.0, 9.0]);
        model::evidence_candidates(&c, 3, &mut out);
        assert_eq!(out, vec![0, 3, 4]);
        // Twenty equal pushes: the first dozen by position, in text order.
        let mut c = vec![1.0; 20];
        c.extend([0.0; 3]);
        model::evidence_candidates(&c, 3, &mut out);
        assert_eq!(out, (0..12).collect::<Vec<_>>());
        model::evidence_candidates(&[0.0, 0.0, 0.0], 3, &mut out);
        assert!(out.is_empty());
    }

    proptest::proptest! {
        /// The evidence candidates are what they are defined to be: of the features pushing
        /// towards spam at least a quarter as hard as the strongest, the strongest dozen
        /// (ties by position), in text order.
        #[test]
        fn evidence_candidates_follow_their_definition(
            c in proptest::collection::vec(-4i8..=4, 0..60),
            shape in 0usize..4,
        ) {
            let c: Vec<f32> = c.into_iter().map(|x| f32::from(x) / 2.0).collect();
            let n = c.len().saturating_sub(shape);
            let strongest = c[..n].iter().fold(0.0f32, |m, &x| m.max(x));
            let mut want: Vec<usize> =
                (0..n).filter(|&i| c[i] > 0.0 && c[i] >= strongest * 0.25).collect();
            want.sort_by(|&a, &b| c[b].total_cmp(&c[a]).then(a.cmp(&b)));
            want.truncate(model::EVIDENCE_CANDIDATES);
            want.sort_unstable();
            let mut out = Vec::new();
            model::evidence_candidates(&c, shape, &mut out);
            proptest::prop_assert_eq!(out, want);
        }
    }

    #[test]
    fn links_count_by_their_hosts_in_models_that_say_so() {
        let model = builtin().unwrap();
        assert!(model.header.link_hosts);
        let long = "택배 조회 https://www.cjlogistics.com/ko/tool/parcel/tracking?no=1234";
        let host = "택배 조회 https://www.cjlogistics.com";
        let mut w = ClassifierWorker::new();
        assert_eq!(
            w.score(&model, long).log_odds,
            w.score(&model, host).log_odds
        );
        // A model that reads links whole (files written before the field) scores the path.
        let mut whole = model.clone();
        whole.header.link_hosts = false;
        whole.header.link_host_words = false;
        assert_ne!(
            w.score(&whole, long).log_odds,
            w.score(&whole, host).log_odds
        );
        // The shipped model reads the host's words only; one that reads its n-grams too
        // scores it otherwise.
        assert_eq!(model.header.links(), Links::HostWords);
        let mut ngrams = model.clone();
        ngrams.header.link_host_words = false;
        assert_ne!(
            w.score(&ngrams, host).log_odds,
            w.score(&model, host).log_odds
        );
        // Host words without hosts is no model.
        let mut bad = model.clone();
        bad.header.link_hosts = false;
        let e = Model::from_bytes(&bad.to_bytes(), "bad").unwrap_err();
        assert!(
            e.to_string().contains("link_host_words needs link_hosts"),
            "{e}"
        );
    }

    #[test]
    fn obfuscation_marks_count_only_in_models_that_read_them() {
        let model = builtin().unwrap();
        assert!(model.header.evasion_feature);
        let mut w = ClassifierWorker::new();
        let marked = w.score(&model, "급❤만❤남 매❤칭 오늘 밤");
        let plain = w.score(&model, "급만남 매칭 오늘 밤");
        assert!(marked.log_odds > plain.log_odds, "{marked:?} {plain:?}");
        // A file written before the feature has no `evasion_feature` in its header: it
        // loads, and the same canonical text scores the same however it was written.
        let mut old = model.clone();
        old.header.evasion_feature = false;
        let bytes = old.to_bytes();
        let hlen = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[12..12 + hlen]).unwrap();
        let without = header.replace(",\"evasion_feature\":false", "");
        assert_ne!(without, header);
        let mut file = b"SFMODEL1".to_vec();
        file.extend_from_slice(&(without.len() as u32).to_le_bytes());
        file.extend_from_slice(without.as_bytes());
        file.extend_from_slice(&bytes[12 + hlen..]);
        let old = Model::from_bytes(&file, "old").unwrap();
        assert!(!old.header.evasion_feature);
        let marked = w.score(&old, "급❤만❤남 매❤칭 오늘 밤");
        let plain = w.score(&old, "급만남 매칭 오늘 밤");
        assert_eq!(marked.log_odds, plain.log_odds);
    }

    #[test]
    fn evidence_is_worked_out_from_where_the_policy_labels_on_the_classifier_alone() {
        let model = builtin().unwrap();
        let mut w = ClassifierWorker::new();
        let text = "Call me later about the money";
        let s = w.score(&model, text);
        let finding = model.header.policy.other.classifier_finding_log_odds();
        assert!(finding < 0.0, "the English policy labels below even odds");
        assert_eq!(f64::from(s.log_odds) >= finding, !s.evidence.is_empty());
        // A policy that labels only at even odds or above: no evidence below them.
        let mut strict = model.clone();
        strict.header.policy.other.label_at = strict.header.policy.other.bias;
        let s = w.score(&strict, text);
        assert!(s.probability < REASON_MIN_PROBABILITY && s.evidence.is_empty());
        // One that labels from far below: evidence for the same text.
        let p = &mut strict.header.policy.other;
        p.label_at = p.bias - 100.0 * p.classifier;
        let s = w.score(&strict, text);
        assert!(!s.evidence.is_empty());
    }

    #[test]
    fn each_script_has_its_own_bias_in_models_that_say_so() {
        let model = builtin().unwrap();
        let korean = model.header.hangul_bias.unwrap();
        assert_ne!(korean, model.header.bias);
        let mut w = ClassifierWorker::new();
        let mut shifted = model.clone();
        shifted.header.hangul_bias = Some(korean + 1.0);
        let ko = "오늘만 특가 이벤트";
        let en = "see you at the station";
        // The bias is added in f32 with the features' sum, so the shift is one up to rounding.
        let shift = w.score(&shifted, ko).log_odds - w.score(&model, ko).log_odds;
        assert!((shift - 1.0).abs() < 1e-5, "shifted by {shift}");
        assert_eq!(w.score(&shifted, en).log_odds, w.score(&model, en).log_odds);
        // A header written before the field has one bias for all text.
        let json = serde_json::to_value(&model.header).unwrap();
        let mut json = json.as_object().unwrap().clone();
        assert!(json.remove("hangul_bias").is_some());
        let old: model::ModelHeader = serde_json::from_value(json.into()).unwrap();
        assert_eq!(old.bias(true), old.bias);
        assert_eq!(old.bias(false), old.bias);
    }

    #[test]
    fn hangul_text_reads_shorter_ngrams_in_models_that_say_so() {
        let model = builtin().unwrap();
        assert_eq!(model.header.ngrams(), (4, 3));
        let mut x = features::Extractor::new();
        let count = |x: &mut features::Extractor, text: &str, ngrams| {
            x.extract(text, None, 1 << 18, 600, ngrams, Links::Whole);
            x.features.len()
        };
        // Five syllables: 4 bigrams and 3 trigrams, no 4-grams; one word; shape.
        assert_eq!(count(&mut x, "오늘만특가", (4, 3)), 4 + 3 + 1 + 3);
        assert_eq!(count(&mut x, "today", (4, 3)), 4 + 3 + 2 + 1 + 3);
        // A header written before the field reads `max_ngram` for every text.
        let json = serde_json::to_value(&model.header).unwrap();
        let mut json = json.as_object().unwrap().clone();
        assert!(json.remove("hangul_max_ngram").is_some());
        let old: model::ModelHeader = serde_json::from_value(json.into()).unwrap();
        assert_eq!(old.ngrams(), (4, 4));
        // Out of range is refused when the file loads.
        let mut bad = model.clone();
        bad.header.hangul_max_ngram = Some(9);
        let e = Model::from_bytes(&bad.to_bytes(), "bad").unwrap_err();
        assert!(e.to_string().contains("hangul_max_ngram 9"), "{e}");
    }

    #[test]
    fn short_text_counts_for_less_in_models_that_say_so() {
        let model = builtin().unwrap();
        let floor = model
            .header
            .min_features
            .expect("the shipped model has a floor");
        let mut without = model.clone();
        without.header.min_features = None;
        let mut w = ClassifierWorker::new();
        let bias = model.header.bias(true);
        for text in [
            "연락해보세요",
            "오늘 저녁에 시간 되면 같이 밥 먹자 역 앞 국밥집 어때? 일곱 시쯤 나갈게",
        ] {
            let with = w.score(&model, text).log_odds - bias;
            let n = w.x.features.len();
            let plain = w.score(&without, text).log_odds - bias;
            // Fewer features than the floor: each weighs 1/sqrt(floor) instead of 1/sqrt(n).
            let want = if n < floor {
                plain * (n as f32 / floor as f32).sqrt()
            } else {
                plain
            };
            assert!(
                (with - want).abs() < 1e-4,
                "{n} features: {with} against {want}"
            );
        }
        // A header written before the field weighs each feature 1/sqrt(n).
        let json = serde_json::to_value(&model.header).unwrap();
        let mut json = json.as_object().unwrap().clone();
        assert!(json.remove("min_features").is_some());
        let old: model::ModelHeader = serde_json::from_value(json.into()).unwrap();
        assert_eq!(old.feature_value(4), 0.5);
        // Out of range is refused when the file loads.
        let mut bad = model.clone();
        bad.header.min_features = Some(0);
        let e = Model::from_bytes(&bad.to_bytes(), "bad").unwrap_err();
        assert!(e.to_string().contains("min_features 0"), "{e}");
    }

    #[test]
    fn a_window_reads_a_padded_pitch_undiluted() {
        // Slot 0 pushes towards spam, slot 1 towards ham; slot 2 is a shape feature.
        let weights = [2.0f32, -1.0, 0.5];
        let bias = -1.0;
        let mut blocks = Vec::new();
        // A pitch of four features in the first 30 bytes, then twelve of chat.
        let pitch = (0..4).map(|i| (0u32, i * 7));
        let chat = (0..12).map(|i| (1u32, 30 + i * 7));
        let words: Vec<(u32, u32)> = pitch.chain(chat).collect();
        let whole = bias + (4.0 * 2.0 - 12.0 + 0.5) * model::value(17, 1);
        let mut score = |window| {
            model::window_max_logit(
                whole,
                |sum, n| bias + sum * model::value(n, 1),
                &weights,
                window,
                words.iter().copied(),
                [2u32].into_iter(),
                &mut blocks,
            )
        };
        let got = score(60);
        // Half windows of 30 bytes hold 4, 5, 4 and 3 features; the first window holds the
        // pitch and five of the chat's.
        assert_eq!(
            got,
            bias + (4.0 * 2.0 - 5.0 + 0.5) * model::value(4 + 5 + 1, 1)
        );
        assert!(got > whole);
        // A text within one window is the whole text.
        assert_eq!(score(300), whole);
    }

    #[test]
    fn hangul_text_is_scored_by_its_strongest_window_in_models_that_say_so() {
        // The shipped model scores the whole text; the same weights with windows.
        let whole = builtin().unwrap();
        assert_eq!(whole.header.hangul_window_bytes, None);
        let mut model = whole.clone();
        model.header.hangul_window_bytes = Some(110);
        let mut w = ClassifierWorker::new();
        let pitch = "신규가입 첫충 30% 매충 10% 스포츠 토토 카지노 바로가기 bet-king.xyz";
        let padded = format!(
            "주말에 부모님 댁에 다녀왔어요 점심은 김치찌개 먹었어 이번 겨울은 유난히 춥네요 {pitch}"
        );
        assert!(w.score(&model, &padded).log_odds > w.score(&whole, &padded).log_odds);
        // Text within one window, and text without Hangul, score as the whole text.
        for text in [
            "오늘 저녁 뭐 먹을까",
            "Sorry, I'll call later. Can you pick up the kids from school today? Dinner is at seven, don't be late, and bring the charger please",
        ] {
            assert_eq!(
                w.score(&model, text).log_odds,
                w.score(&whole, text).log_odds
            );
        }
        // The field is written only when set; out of range is refused.
        let json = serde_json::to_value(&model.header).unwrap();
        assert_eq!(json["hangul_window_bytes"], 110);
        let json = serde_json::to_value(&whole.header).unwrap();
        assert!(json.get("hangul_window_bytes").is_none());
        let mut bad = model.clone();
        bad.header.hangul_window_bytes = Some(4);
        let e = Model::from_bytes(&bad.to_bytes(), "bad").unwrap_err();
        assert!(e.to_string().contains("hangul_window_bytes 4"), "{e}");
    }

    #[test]
    fn evidence_shows_whole_words() {
        let t = "Claim your $1000 prize 카지노에서 첫충";
        let at = |w: &str| t.find(w).unwrap();
        // "aim " inside "Claim" grows to "Claim"; "00" to "1000"; a Korean piece to its word.
        let (a, b) = word_around(t, at("aim"), at("aim") + 4);
        assert_eq!(&t[a..b], "Claim");
        let (a, b) = word_around(t, at("00"), at("00") + 2);
        assert_eq!(&t[a..b], "1000");
        let (a, b) = word_around(t, at("지노"), at("지노") + "지노".len());
        assert_eq!(&t[a..b], "카지노에서");
        assert_eq!(word_around(t, 5, 6), (6, 6), "a lone space is no word");
    }
}
