//! Policy: signals -> verdict.
//!
//! The score is a noisy-OR of the enforcing signals' scores (independent evidence adds
//! up, but never past 100); the action is the stronger of what the score says and what
//! the operators' hints demand. Shadow signals are reported and never counted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spamflow_schemas::{Action, Alert, Reason, SubmissionEvent, Verdict};

use crate::{ActionHint, Signal, PIPELINE_ID};

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

/// A policy setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy.{key}: {reason}")]
pub struct PolicyConfigError {
    /// Key under `[policy]`.
    pub key: &'static str,
    /// Why it is rejected.
    pub reason: String,
}

impl PolicyConfig {
    /// Every problem at once.
    pub fn validate(&self) -> Vec<PolicyConfigError> {
        let mut errs = Vec::new();
        if self.block_score == 0 || self.block_score > 100 {
            errs.push(PolicyConfigError {
                key: "block_score",
                reason: format!("{} is outside 1..=100", self.block_score),
            });
        }
        if self.label_score > self.block_score {
            errs.push(PolicyConfigError {
                key: "label_score",
                reason: format!(
                    "{} is above block_score {}; labelling must start below blocking",
                    self.label_score, self.block_score
                ),
            });
        }
        for (i, c) in self.combinations.iter().enumerate() {
            if c.when.len() < 2 || c.score > 100 || c.code.is_empty() {
                errs.push(PolicyConfigError { key: "combinations", reason: format!("entry {i} ({:?}) needs two or more categories, a code and a score up to 100", c.code) });
            }
        }
        if self.max_evidence_chars == 0 || self.max_evidence_chars > 200 {
            errs.push(PolicyConfigError {
                key: "max_evidence_chars",
                reason: format!("{} is outside 1..=200", self.max_evidence_chars),
            });
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
    pub fn decide(
        &self,
        ev: &SubmissionEvent,
        signals: &[Signal],
        rules_version: &str,
        decided_at: DateTime<Utc>,
    ) -> Verdict {
        let mut miss = 1.0f64;
        let mut floor = Action::Allow;
        let mut retry_after_ms: Option<u64> = None;
        let mut labels: Vec<String> = Vec::new();
        let mut reasons = Vec::new();
        let mut shadow = Vec::new();
        for s in signals {
            if s.shadow {
                shadow.push(self.reason(s));
                continue;
            }
            miss *= 1.0 - f64::from(s.score.min(100)) / 100.0;
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
                if !labels.iter().any(|l| l == label.as_ref()) {
                    labels.push(label.to_string());
                }
            }
            reasons.push(self.reason(s));
        }
        for c in &self.cfg.combinations {
            if c.when
                .iter()
                .all(|cat| reasons.iter().any(|r: &Reason| &r.category == cat))
            {
                miss *= 1.0 - f64::from(c.score.min(100)) / 100.0;
                reasons.push(Reason {
                    operator: "policy".into(),
                    code: c.code.clone(),
                    category: "combination".into(),
                    score: c.score,
                    evidence: Some(c.when.join(" + ")),
                    span: None,
                });
            }
        }
        let score = ((1.0 - miss) * 100.0).round().clamp(0.0, 100.0) as u8;
        let by_score = if score >= self.cfg.block_score {
            Action::Block
        } else if score >= self.cfg.label_score {
            Action::Label
        } else {
            Action::Allow
        };
        let action = floor.max(by_score);
        if action == Action::Label
            && score >= self.cfg.label_score
            && !labels.contains(&self.cfg.suspicious_label)
        {
            labels.push(self.cfg.suspicious_label.clone());
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
            message_id: ev.message_id.clone(),
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
            sender: ev.sender.clone(),
            recipient: ev.recipient.clone(),
            smsc: ev.origin.smsc.clone(),
            relay_operator: ev.relay_operator().map(str::to_owned),
            rules_version: rules_version.to_owned(),
            pipeline: PIPELINE_ID.to_owned(),
        }
    }

    /// The recipient alert for a delivered but suspicious message, if any.
    pub fn alert(&self, v: &Verdict) -> Option<Alert> {
        let delivered = matches!(v.action, Action::Allow | Action::Label);
        if !delivered || v.score < self.cfg.label_score {
            return None;
        }
        let mut categories: Vec<String> = v.reasons.iter().map(|r| r.category.clone()).collect();
        categories.sort();
        categories.dedup();
        Some(Alert {
            schema_version: 1,
            message_id: v.message_id.clone(),
            recipient: v.recipient.clone(),
            sender: v.sender.clone(),
            submitted_at: v.submitted_at,
            action: v.action,
            score: v.score,
            categories,
            warning: self.cfg.alert_warning.clone(),
        })
    }

    fn reason(&self, s: &Signal) -> Reason {
        Reason {
            operator: s.operator.to_owned(),
            code: s.code.to_string(),
            category: s.category.to_string(),
            score: s.score,
            evidence: s
                .evidence
                .as_deref()
                .map(|e| truncate_chars(e, self.cfg.max_evidence_chars)),
            span: s.span,
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
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

    fn decide(signals: &[Signal]) -> Verdict {
        PolicyConfig::default()
            .build()
            .decide(&event(), signals, "v", DateTime::<Utc>::UNIX_EPOCH)
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
