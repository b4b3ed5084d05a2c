//! Policy: signals -> verdict.
//!
//! Without a model, the score is a noisy-OR of the enforcing signals' scores (independent
//! evidence adds up, but never past 100) and `block_score` / `label_score` pick the action.
//!
//! With a model ([`crate::classifier`]), the model file's [`FittedPolicy`] decides: a
//! logistic combination of the classifier's log-odds and each rule category's strongest
//! score, with weights and thresholds that `spamflow train` fitted on labelled data for a
//! stated false-positive budget. Evidence the labelled data cannot carry (origin,
//! velocity, throttle, combinations, rule categories the model has not seen) joins that
//! probability by noisy-OR, so it can only raise it.
//!
//! Either way the action is the stronger of what the score says and what the operators'
//! hints demand: hard rules (spoofed callers, suspended or invalid numbers) block
//! whatever the score. Shadow signals are reported and never counted.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spamflow_schemas::{Action, Alert, Reason, SubmissionEvent, Verdict};

use crate::classifier::Model;
use crate::{ActionHint, ConfigProblem, Signal, PIPELINE_ID};

/// The classifier's log-odds are clamped to this magnitude before the fitted policy
/// weighs them (beyond it the probability is 1 - 3e-7 and more only adds noise).
pub const CLASSIFIER_LOG_ODDS_CLAMP: f64 = 15.0;

/// The operator name of the classifier's signals.
pub const CLASSIFIER: &str = "classifier";

/// A policy fitted on labelled data; part of the model file. Text with Hangul and other
/// text each have their own fit: Korean and English traffic differ in base rates, in how
/// sure the classifier is, and in which rules fire, and each keeps its own ham within the
/// false-positive budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedPolicy {
    /// For text with Hangul.
    pub korean: ScriptPolicy,
    /// For other text.
    pub other: ScriptPolicy,
    /// Largest share of ham the block threshold of text without Hangul was chosen to
    /// block, on the data it was fitted on.
    pub ham_block_budget: f64,
    /// The same for text with Hangul.
    #[serde(default)]
    pub korean_ham_block_budget: f64,
    /// Largest share of ham the label thresholds were chosen to label or block.
    pub ham_label_budget: f64,
}

/// The fitted combination and thresholds for one script, in log-odds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptPolicy {
    /// Intercept.
    pub bias: f64,
    /// Weight of the classifier's log-odds.
    pub classifier: f64,
    /// Weight of each pattern category's strongest rule score (0..=1); never negative.
    pub categories: BTreeMap<String, f64>,
    /// Pairs of pattern categories that are stronger evidence together than apart (an
    /// impersonated institution *and* a suspicious link): each adds its weight times the
    /// weaker of the two categories' strongest scores. Fitted like the categories, never
    /// negative; absent in older files (no pairs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<CategoryPair>,
    /// At or above: block.
    pub block_at: f64,
    /// At or above: label a delivered message and alert its recipient.
    pub label_at: f64,
}

/// A fitted pair of pattern categories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryPair {
    /// The two categories, in name order.
    pub when: [String; 2],
    /// Log-odds added per unit of the weaker category's score (0..=1).
    pub weight: f64,
}

/// Whether the fitted policy weighs `s` with its rule category (training and run time
/// alike): a pattern rule's finding, not in shadow, from a rule that leaves the decision to
/// the score. A rule that blocks whatever the score decides its messages itself; weighed,
/// its hits (all on spam) would raise its category's weight for the other rules.
pub fn weighed_with_category(s: &Signal) -> bool {
    s.operator == "pattern" && !s.shadow && s.hint != ActionHint::Block
}

/// Whether `text` has Hangul (syllables or jamo): the fitted policy's script split.
pub fn has_hangul(text: &str) -> bool {
    text.chars()
        .any(|c| matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3131}'..='\u{318E}'))
}

impl FittedPolicy {
    /// The policy for a text with or without Hangul.
    pub fn script(&self, hangul: bool) -> &ScriptPolicy {
        if hangul {
            &self.korean
        } else {
            &self.other
        }
    }

    /// Whether its numbers can work.
    pub fn validate(&self) -> Result<(), String> {
        for p in [&self.korean, &self.other] {
            let all = [p.bias, p.classifier, p.block_at, p.label_at]
                .into_iter()
                .chain(p.categories.values().copied())
                .chain(p.pairs.iter().map(|q| q.weight));
            if !all.into_iter().all(f64::is_finite) {
                return Err("a weight or threshold is not finite".into());
            }
            if p.categories
                .values()
                .chain(p.pairs.iter().map(|q| &q.weight))
                .any(|w| *w < 0.0)
            {
                return Err("a category or pair weight is negative".into());
            }
            if let Some(q) = p.pairs.iter().find(|q| q.when[0] >= q.when[1]) {
                return Err(format!(
                    "pair {:?} must name two categories in name order",
                    q.when
                ));
            }
            if p.label_at > p.block_at {
                return Err(format!(
                    "label_at {} is above block_at {}",
                    p.label_at, p.block_at
                ));
            }
        }
        Ok(())
    }
}

impl ScriptPolicy {
    /// The classifier's log-odds from which its signal is a finding: where this policy
    /// labels on the classifier alone (no rule, origin or other evidence), or probability
    /// [`crate::classifier::REASON_MIN_PROBABILITY`] (log-odds 0) if that is lower. A
    /// finding carries evidence and is a reason in the verdict, so that no message is
    /// labelled or blocked on the classifier without one; below it the classifier's signal
    /// still counts, as a ham score.
    pub fn classifier_finding_log_odds(&self) -> f64 {
        let alone = if self.classifier > 0.0 {
            (self.label_at - self.bias) / self.classifier
        } else {
            f64::INFINITY
        };
        alone.min(0.0)
    }

    /// The fitted log-odds of spam from the classifier, the rule categories and the pairs
    /// it was fitted with; `rest` gets every other enforcing signal (to join by noisy-OR),
    /// `paired` each fitted pair that met and the log-odds it added. Only findings
    /// [`weighed_with_category`] count towards their category.
    pub fn log_odds<'s, 'p>(
        &'p self,
        signals: &'s [Signal],
        mut rest: impl FnMut(&'s Signal),
        mut paired: impl FnMut(&'p CategoryPair, f64),
    ) -> f64 {
        let mut z = self.bias;
        let mut strongest: Vec<(&str, u8)> = Vec::new();
        for s in signals.iter().filter(|s| !s.shadow) {
            if s.operator == CLASSIFIER {
                let lo = f64::from(s.log_odds.unwrap_or(0.0));
                z += self.classifier
                    * lo.clamp(-CLASSIFIER_LOG_ODDS_CLAMP, CLASSIFIER_LOG_ODDS_CLAMP);
            } else if weighed_with_category(s) && self.categories.contains_key(s.category.as_ref())
            {
                match strongest
                    .iter_mut()
                    .find(|(c, _)| *c == s.category.as_ref())
                {
                    Some((_, best)) => *best = (*best).max(s.score),
                    None => strongest.push((s.category.as_ref(), s.score)),
                }
            } else {
                rest(s);
            }
        }
        for &(c, score) in &strongest {
            z += self.categories[c] * f64::from(score.min(100)) / 100.0;
        }
        if strongest.len() >= 2 {
            for q in &self.pairs {
                let added = q.weight * pair_value(&q.when, &strongest);
                if added > 0.0 {
                    z += added;
                    paired(q, added);
                }
            }
        }
        z
    }
}

/// The weaker of the two categories' strongest scores (0..=1), 0 unless both are there.
fn pair_value(when: &[String; 2], strongest: &[(&str, u8)]) -> f64 {
    let score = |name: &str| {
        strongest
            .iter()
            .find(|(c, _)| *c == name)
            .map_or(0, |&(_, s)| s.min(100))
    };
    f64::from(score(&when[0]).min(score(&when[1]))) / 100.0
}

/// `[policy]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Score (0..=100) at or above which a message is blocked.
    pub block_score: u8,
    /// Score at or above which a delivered message is labelled and its recipient alerted.
    pub label_score: u8,
    /// Label prepended to messages delivered with action `label` for their score.
    pub suspicious_label: String,
    /// Text of the recipient alert on `sms.alerts`.
    pub alert_warning: String,
    /// Longest evidence excerpt in characters.
    pub max_evidence_chars: usize,
    /// Extra evidence when categories occur together (e.g. an overseas message that
    /// impersonates a Korean institution scores higher than the same text sent
    /// domestically).
    pub combinations: Vec<Combination>,
}

/// A combination of categories that is stronger evidence than its parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Combination {
    /// Categories that must all be present among the enforcing reasons.
    pub when: Vec<String>,
    /// Reason code added when they are.
    pub code: String,
    /// Its score.
    pub score: u8,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            block_score: 80,
            label_score: 50,
            suspicious_label: "[스팸의심]".into(),
            alert_warning:
                "스팸으로 의심되는 문자입니다. 링크를 누르거나 개인정보·금융정보를 보내지 마세요."
                    .into(),
            max_evidence_chars: 48,
            combinations: vec![
                Combination {
                    when: vec!["overseas".into(), "impersonation".into()],
                    code: "policy.overseas_impersonation".into(),
                    score: 60,
                },
                Combination {
                    when: vec!["overseas".into(), "smishing".into()],
                    code: "policy.overseas_smishing".into(),
                    score: 40,
                },
            ],
        }
    }
}

impl PolicyConfig {
    /// Every problem at once.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errs = Vec::new();
        if self.block_score == 0 || self.block_score > 100 {
            errs.push(ConfigProblem::new(
                "block_score",
                format!("{} is outside 1..=100", self.block_score),
            ));
        }
        if self.label_score > self.block_score {
            errs.push(ConfigProblem::new(
                "label_score",
                format!(
                    "{} is above block_score {}; labelling must start below blocking",
                    self.label_score, self.block_score
                ),
            ));
        }
        for (i, c) in self.combinations.iter().enumerate() {
            if c.when.len() < 2 || c.score > 100 || c.code.is_empty() {
                errs.push(ConfigProblem::new("combinations", format!("entry {i} ({:?}) needs two or more categories, a code and a score up to 100", c.code)));
            }
        }
        if self.max_evidence_chars == 0 || self.max_evidence_chars > 200 {
            errs.push(ConfigProblem::new(
                "max_evidence_chars",
                format!("{} is outside 1..=200", self.max_evidence_chars),
            ));
        }
        errs
    }

    /// The runtime policy; call [`PolicyConfig::validate`] first.
    pub fn build(&self) -> Policy {
        Policy { cfg: self.clone() }
    }
}

/// The runtime policy.
#[derive(Debug, Clone)]
pub struct Policy {
    cfg: PolicyConfig,
}

impl Policy {
    /// The configuration it was built from.
    pub fn config(&self) -> &PolicyConfig {
        &self.cfg
    }

    /// Turns the signals on one event into its verdict. Deterministic: the same event and
    /// signals give the same verdict but for `decided_at`.
    pub fn decide<'a>(
        &'a self,
        ev: &'a SubmissionEvent,
        signals: &'a [Signal],
        rules_version: &'a str,
        model: Option<&'a Model>,
        decided_at: DateTime<Utc>,
    ) -> Verdict<'a> {
        let fitted = model.map(|m| m.header.policy.script(has_hangul(&ev.text)));
        // The fitted pairs that met, as reasons.
        let mut pairs = Vec::new();
        // The probability that nothing fitted, nor any other evidence, says spam.
        let mut miss = match fitted {
            Some(fp) => {
                let mut other = 1.0f64;
                let z = fp.log_odds(
                    signals,
                    |s| other *= 1.0 - f64::from(s.score.min(100)) / 100.0,
                    |q, added| {
                        // The log-odds the pair added, on the 0..=100 scale of a reason; a
                        // pair that added next to nothing is no reason.
                        let score = (100.0 * (added / 2.0).tanh()).round() as u8;
                        if score > 0 {
                            pairs.push(Reason {
                                operator: "policy".into(),
                                code: format!("policy.{}_{}", q.when[0], q.when[1]).into(),
                                category: "combination".into(),
                                score,
                                evidence: Some(q.when.join(" + ").into()),
                                span: None,
                            });
                        }
                    },
                );
                (1.0 - crate::classifier::sigmoid(z)) * other
            }
            None => 1.0f64,
        };
        let mut floor = Action::Allow;
        let mut retry_after_ms: Option<u64> = None;
        let mut labels: Vec<Cow<'a, str>> = Vec::new();
        let mut reasons = Vec::new();
        let mut shadow = Vec::new();
        for s in signals {
            if s.shadow {
                shadow.push(self.reason(s));
                continue;
            }
            if fitted.is_none() {
                miss *= 1.0 - f64::from(s.score.min(100)) / 100.0;
            }
            let hinted = match s.hint {
                ActionHint::Score => Action::Allow,
                ActionHint::Label => Action::Label,
                ActionHint::Throttle => {
                    retry_after_ms = Some(
                        retry_after_ms
                            .unwrap_or(0)
                            .max(s.retry_after_ms.unwrap_or(0)),
                    );
                    Action::Throttle
                }
                ActionHint::Block => Action::Block,
            };
            floor = floor.max(hinted);
            if let Some(label) = &s.label {
                if !labels.iter().any(|l| l == label) {
                    labels.push(Cow::Borrowed(label));
                }
            }
            // The classifier speaks on every message; only its spam findings are evidence.
            let ham_finding = s.operator == CLASSIFIER
                && match fitted {
                    Some(fp) => {
                        f64::from(s.log_odds.unwrap_or(0.0)) < fp.classifier_finding_log_odds()
                    }
                    None => f32::from(s.score) < 100.0 * crate::classifier::REASON_MIN_PROBABILITY,
                };
            if !ham_finding {
                reasons.push(self.reason(s));
            }
        }
        reasons.append(&mut pairs);
        for c in &self.cfg.combinations {
            if c.when
                .iter()
                .all(|cat| reasons.iter().any(|r: &Reason| r.category == cat.as_str()))
            {
                miss *= 1.0 - f64::from(c.score.min(100)) / 100.0;
                reasons.push(Reason {
                    operator: "policy".into(),
                    code: Cow::Borrowed(&c.code),
                    category: "combination".into(),
                    score: c.score,
                    evidence: Some(c.when.join(" + ").into()),
                    span: None,
                });
            }
        }
        let score = ((1.0 - miss) * 100.0).round().clamp(0.0, 100.0) as u8;
        let (block, label) = match fitted {
            Some(fp) => {
                let p = (1.0 - miss).clamp(1e-12, 1.0 - 1e-12);
                let z = (p / (1.0 - p)).ln();
                (z >= fp.block_at, z >= fp.label_at)
            }
            None => (score >= self.cfg.block_score, score >= self.cfg.label_score),
        };
        let by_score = if block {
            Action::Block
        } else if label {
            Action::Label
        } else {
            Action::Allow
        };
        let action = floor.max(by_score);
        if action == Action::Label
            && label
            && !labels.iter().any(|l| *l == self.cfg.suspicious_label)
        {
            labels.push(Cow::Borrowed(&self.cfg.suspicious_label));
        }
        let by_weight = |a: &Reason, b: &Reason| {
            b.score
                .cmp(&a.score)
                .then_with(|| a.code.cmp(&b.code))
                .then_with(|| a.span.cmp(&b.span))
        };
        reasons.sort_by(by_weight);
        shadow.sort_by(by_weight);
        Verdict {
            schema_version: 1,
            message_id: Cow::Borrowed(&ev.message_id),
            submitted_at: ev.submitted_at,
            decided_at,
            action,
            score,
            labels,
            retry_after_ms: if action == Action::Throttle {
                retry_after_ms
            } else {
                None
            },
            reasons,
            shadow,
            sender: Cow::Borrowed(&ev.sender),
            recipient: Cow::Borrowed(&ev.recipient),
            smsc: Cow::Borrowed(&ev.origin.smsc),
            relay_operator: ev.relay_operator().map(Cow::Borrowed),
            rules_version: Cow::Borrowed(rules_version),
            model_version: model.map(|m| Cow::Borrowed(m.version.as_str())),
            pipeline: Cow::Borrowed(PIPELINE_ID),
        }
    }

    /// The recipient alert for a delivered but suspicious message, if any.
    pub fn alert(&self, v: &Verdict<'_>) -> Option<Alert> {
        let delivered = matches!(v.action, Action::Allow | Action::Label);
        let suspicious = v.score >= self.cfg.label_score
            || v.labels.iter().any(|l| *l == self.cfg.suspicious_label);
        if !delivered || !suspicious {
            return None;
        }
        let mut categories: Vec<String> =
            v.reasons.iter().map(|r| r.category.to_string()).collect();
        categories.sort();
        categories.dedup();
        Some(Alert {
            schema_version: 1,
            message_id: v.message_id.to_string(),
            recipient: v.recipient.to_string(),
            sender: v.sender.to_string(),
            submitted_at: v.submitted_at,
            action: v.action,
            score: v.score,
            categories,
            warning: self.cfg.alert_warning.clone(),
            advice: None,
            excerpt: None,
        })
    }

    fn reason<'a>(&self, s: &'a Signal) -> Reason<'a> {
        Reason {
            operator: Cow::Borrowed(s.operator),
            code: Cow::Borrowed(&s.code),
            category: Cow::Borrowed(&s.category),
            score: s.score,
            evidence: s
                .evidence
                .as_deref()
                .map(|e| truncate_chars(e, self.cfg.max_evidence_chars)),
            span: s.span,
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spamflow_schemas::{MessageKind, Origin, Route};

    fn event() -> SubmissionEvent {
        SubmissionEvent {
            schema_version: 1,
            message_id: "m-1".into(),
            submitted_at: "2026-03-01T09:00:00Z".parse().unwrap(),
            sender: "+821012345678".into(),
            recipient: "+821098765432".into(),
            text: "hello".into(),
            kind: MessageKind::Sms,
            origin: Origin {
                route: Route::Domestic,
                gateway: None,
                smsc: "smsc-1".into(),
                country: None,
            },
            relay: None,
        }
    }

    fn decide(signals: &[Signal]) -> Verdict<'static> {
        PolicyConfig::default()
            .build()
            .decide(&event(), signals, "v", None, DateTime::<Utc>::UNIX_EPOCH)
            .into_owned()
    }

    #[test]
    fn no_signals_allow_with_zero_score() {
        let v = decide(&[]);
        assert_eq!((v.action, v.score), (Action::Allow, 0));
        assert!(v.reasons.is_empty() && v.labels.is_empty());
        assert_eq!(v.pipeline, PIPELINE_ID);
    }

    #[test]
    fn scores_combine_as_noisy_or_and_thresholds_pick_the_action() {
        let a = Signal::new("pattern", "loan.illegal", "loan", 60);
        let b = Signal::new("pattern", "url.shortener", "url", 50);
        let v = decide(std::slice::from_ref(&a));
        assert_eq!((v.action, v.score), (Action::Label, 60));
        assert_eq!(v.labels, vec!["[스팸의심]".to_string()]);
        let v = decide(&[a, b]);
        assert_eq!((v.action, v.score), (Action::Block, 80));
        assert_eq!(v.reasons[0].code, "loan.illegal");
    }

    #[test]
    fn hints_set_a_floor_and_shadow_never_counts() {
        let throttle = Signal {
            hint: ActionHint::Throttle,
            retry_after_ms: Some(1500),
            ..Signal::new("throttle", "relay.quota", "relay", 10)
        };
        let shadowed = Signal {
            shadow: true,
            ..Signal::new("pattern", "gambling.new", "gambling", 100)
        };
        let v = decide(&[throttle.clone(), shadowed]);
        assert_eq!(
            (v.action, v.score, v.retry_after_ms),
            (Action::Throttle, 10, Some(1500))
        );
        assert_eq!(v.shadow.len(), 1);
        let spoof = Signal {
            hint: ActionHint::Block,
            ..Signal::new("origin", "origin.spoofed_domestic", "spoofing", 40)
        };
        let v = decide(&[throttle, spoof]);
        assert_eq!((v.action, v.retry_after_ms), (Action::Block, None));
    }

    #[test]
    fn labels_dedupe_and_evidence_is_truncated() {
        let intl = Signal {
            hint: ActionHint::Label,
            label: Some("[국제발신]".into()),
            ..Signal::new("origin", "origin.international", "overseas", 5)
        };
        let long = Signal {
            evidence: Some("가".repeat(100)),
            ..Signal::new("pattern", "x", "y", 1)
        };
        let v = decide(&[intl.clone(), intl, long]);
        assert_eq!(v.labels, vec!["[국제발신]".to_string()]);
        assert_eq!(v.action, Action::Label);
        let ev = v
            .reasons
            .iter()
            .find(|r| r.code == "x")
            .unwrap()
            .evidence
            .clone()
            .unwrap();
        assert_eq!(ev.chars().count(), 49);
    }

    #[test]
    fn alerts_only_for_delivered_suspicious_messages() {
        let p = PolicyConfig::default().build();
        let v = decide(&[Signal::new("pattern", "loan.illegal", "loan", 60)]);
        let alert = p.alert(&v).unwrap();
        assert_eq!(alert.categories, vec!["loan".to_string()]);
        assert!(p.alert(&decide(&[])).is_none());
        assert!(p
            .alert(&decide(&[Signal::new("pattern", "a", "b", 95)]))
            .is_none());
    }

    #[test]
    fn combinations_add_evidence_when_categories_meet() {
        let overseas = Signal {
            hint: ActionHint::Label,
            ..Signal::new("origin", "origin.international", "overseas", 10)
        };
        let imp = Signal::new("pattern", "impersonation.institution", "impersonation", 10);
        let domestic = decide(std::slice::from_ref(&imp));
        let abroad = decide(&[overseas, imp]);
        assert!(
            abroad.score > domestic.score + 40,
            "{} vs {}",
            abroad.score,
            domestic.score
        );
        assert!(abroad
            .reasons
            .iter()
            .any(|r| r.code == "policy.overseas_impersonation"));
        assert!(domestic.reasons.iter().all(|r| r.operator != "policy"));
    }

    /// A model whose fitted policy trusts the classifier alone: block at p >= 0.9, label
    /// at p >= 0.5 (for both scripts).
    fn fitted_model() -> crate::classifier::Model {
        let script = ScriptPolicy {
            bias: 0.0,
            classifier: 1.0,
            categories: BTreeMap::from([("loan".to_string(), 2.0)]),
            pairs: vec![],
            block_at: 9f64.ln(),
            label_at: 0.0,
        };
        let header = crate::classifier::ModelHeader {
            buckets: 1024,
            category_buckets: 256,
            categories: vec!["spam".into()],
            bias: 0.0,
            category_bias: vec![0.0],
            max_chars: 100,
            max_ngram: 3,
            hangul_max_ngram: None,
            hangul_bias: None,
            policy: FittedPolicy {
                korean: script.clone(),
                other: script,
                ham_block_budget: 0.004,
                korean_ham_block_budget: 0.008,
                ham_label_budget: 0.02,
            },
            seed: 1,
            sources: vec![],
            metrics: serde_json::Value::Null,
            category_features: crate::classifier::CategoryFeatures::All,
            evasion_feature: false,
            link_hosts: false,
            link_host_words: false,
            hangul_window_bytes: None,
            min_features: None,
        };
        crate::classifier::Model::new(header, vec![0.0; 1024], vec![0.0; 256])
    }

    /// The default policy's verdict on `signals` of the test event, with model `m`.
    fn decide_with(m: &crate::classifier::Model, signals: &[Signal]) -> Verdict<'static> {
        PolicyConfig::default()
            .build()
            .decide(&event(), signals, "v", Some(m), DateTime::<Utc>::UNIX_EPOCH)
            .into_owned()
    }

    fn classifier(log_odds: f32) -> Signal {
        Signal {
            log_odds: Some(log_odds),
            ..Signal::new(CLASSIFIER, "classifier.spam", "spam", 0)
        }
    }

    #[test]
    fn a_fitted_policy_decides_by_its_thresholds_and_hard_rules_stay_hard() {
        let m = fitted_model();
        let decide = |signals: &[Signal]| decide_with(&m, signals);
        assert_eq!(decide(&[classifier(3.0)]).action, Action::Block);
        let labelled = decide(&[classifier(1.0)]);
        assert_eq!(labelled.action, Action::Label);
        assert!(labelled.labels.iter().any(|l| l == "[스팸의심]"));
        assert!(PolicyConfig::default().build().alert(&labelled).is_some());
        let ham = decide(&[classifier(-6.0)]);
        assert_eq!(
            (ham.action, ham.reasons.len()),
            (Action::Allow, 0),
            "a ham finding is not evidence"
        );
        assert_eq!(ham.model_version.as_deref(), Some(m.version.as_str()));
        // A fitted rule category adds its weight: log-odds 1 + 2 x 0.8 > ln 9.
        assert_eq!(
            decide(&[
                classifier(1.0),
                Signal::new("pattern", "loan.illegal", "loan", 80)
            ])
            .action,
            Action::Block
        );
        // Other evidence joins by noisy-OR and can only raise the probability.
        let other = Signal::new("velocity", "velocity.burst", "velocity", 80);
        assert_eq!(decide(&[classifier(-6.0), other]).action, Action::Label);
        // Hard rules: a spoofed caller blocks, a quota throttles, whatever the classifier says.
        let spoof = Signal {
            hint: ActionHint::Block,
            ..Signal::new("origin", "origin.spoofed_domestic", "spoofing", 40)
        };
        assert_eq!(decide(&[classifier(-9.0), spoof]).action, Action::Block);
        let quota = Signal {
            hint: ActionHint::Throttle,
            retry_after_ms: Some(500),
            ..Signal::new("throttle", "relay.quota", "relay", 10)
        };
        let v = decide(&[classifier(-9.0), quota]);
        assert_eq!((v.action, v.retry_after_ms), (Action::Throttle, Some(500)));
    }

    #[test]
    fn a_rule_that_blocks_whatever_the_score_is_not_weighed_with_its_category() {
        let m = fitted_model();
        let script = &m.header.policy.korean;
        let z = |signals: &[Signal]| {
            let mut rest = Vec::new();
            let z = script.log_odds(signals, |s| rest.push(s.code.to_string()), |_, _| {});
            (z, rest)
        };
        let soft = Signal::new("pattern", "loan.illegal", "loan", 80);
        let hard = Signal {
            hint: ActionHint::Block,
            ..Signal::new("pattern", "loan.hard", "loan", 80)
        };
        assert_eq!(
            z(&[classifier(1.0), soft.clone()]),
            (1.0 + 2.0 * 0.8, vec![])
        );
        // The hard rule joins by noisy-OR instead, and blocks by its hint.
        assert_eq!(
            z(&[classifier(1.0), hard.clone()]),
            (1.0, vec!["loan.hard".to_string()])
        );
        assert_eq!(
            decide_with(&m, &[classifier(-9.0), hard]).action,
            Action::Block
        );
    }

    #[test]
    fn a_policy_that_labels_below_even_odds_lists_the_classifier_as_its_reason() {
        // English-like: label from classifier log-odds -3 (p 0.05), block from -1 (p 0.27).
        let mut m = fitted_model();
        m.header.policy.other.label_at = -3.0;
        m.header.policy.other.block_at = -1.0;
        assert_eq!(m.header.policy.other.classifier_finding_log_odds(), -3.0);
        // Hangul text keeps even odds (its label threshold is above them).
        assert_eq!(m.header.policy.korean.classifier_finding_log_odds(), 0.0);
        let mut ev = event();
        ev.text = "Did u get the prize?".into();
        let decide = |s: &[Signal]| {
            PolicyConfig::default()
                .build()
                .decide(&ev, s, "v", Some(&m), DateTime::<Utc>::UNIX_EPOCH)
                .into_owned()
        };
        for (log_odds, action) in [(-0.5, Action::Block), (-2.0, Action::Label)] {
            let v = decide(&[classifier(log_odds)]);
            assert_eq!(v.action, action);
            assert_eq!(
                v.reasons.len(),
                1,
                "{log_odds}: the classifier is the reason"
            );
            assert_eq!(v.reasons[0].operator, CLASSIFIER);
        }
        let ham = decide(&[classifier(-3.5)]);
        assert_eq!((ham.action, ham.reasons.len()), (Action::Allow, 0));
    }

    #[test]
    fn a_fitted_pair_adds_its_weight_only_when_both_categories_fire() {
        let mut m = fitted_model();
        // The event's text has no Hangul: the other script's policy decides.
        m.header.policy.other.categories.insert("url".into(), 0.0);
        m.header
            .policy
            .other
            .categories
            .insert("impersonation".into(), 0.0);
        m.header.policy.other.pairs = vec![
            CategoryPair {
                when: ["impersonation".into(), "loan".into()],
                weight: 0.001,
            },
            CategoryPair {
                when: ["loan".into(), "url".into()],
                weight: 4.0,
            },
        ];
        let decide = |signals: &[Signal]| decide_with(&m, signals);
        let loan = Signal::new("pattern", "loan.illegal", "loan", 20);
        let url = Signal::new("pattern", "url.suspicious_tld", "url", 50);
        // Log-odds -1 + 2 x 0.2 alone; with the link also 4 x min(0.2, 0.5) = 0.8 more.
        let alone = decide(&[classifier(-1.0), loan.clone()]);
        assert_eq!(alone.action, Action::Allow);
        assert!(alone.reasons.iter().all(|r| r.operator != "policy"));
        let imp = Signal::new("pattern", "impersonation.institution", "impersonation", 10);
        let v = decide(&[classifier(-1.0), loan, url, imp]);
        assert_eq!(v.action, Action::Label, "{v:?}");
        assert!(
            v.reasons
                .iter()
                .all(|r| r.code != "policy.impersonation_loan"),
            "a pair that added next to nothing is no reason: {v:?}"
        );
        let pair = v
            .reasons
            .iter()
            .find(|r| r.code == "policy.loan_url")
            .expect("the pair is a reason");
        assert_eq!(pair.evidence.as_deref(), Some("loan + url"));
        assert_eq!(pair.score, (100.0 * 0.4f64.tanh()).round() as u8);
        // Negative weights and unordered names are refused.
        let mut bad = m.header.policy.clone();
        bad.other.pairs[1].weight = -1.0;
        assert!(bad.validate().unwrap_err().contains("negative"));
        let mut bad = m.header.policy.clone();
        bad.other.pairs[1].when = ["url".into(), "loan".into()];
        assert!(bad.validate().unwrap_err().contains("name order"));
    }

    #[test]
    fn validate_reports_every_problem() {
        let cfg = PolicyConfig {
            block_score: 0,
            label_score: 10,
            max_evidence_chars: 0,
            ..PolicyConfig::default()
        };
        let keys: Vec<_> = cfg.validate().into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            vec!["block_score", "label_score", "max_evidence_chars"]
        );
        assert!(PolicyConfig::default().validate().is_empty());
    }
}
