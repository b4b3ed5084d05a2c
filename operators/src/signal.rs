//! Signals: what an operator says about one event.

use std::borrow::Cow;

/// What an operator would have the policy do. The policy decides; a hint only sets a floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActionHint {
    /// Contributes to the score only.
    Score,
    /// Deliver with a label at least (e.g. overseas origin).
    Label,
    /// Over a rate quota: throttle with `retry_after_ms` unless something blocks.
    Throttle,
    /// Block regardless of score (e.g. spoofed caller number).
    Block,
}

/// One finding of one operator on one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    /// Operator name (`pattern`, `velocity`, `origin`, ...), bounded set.
    pub operator: &'static str,
    /// Stable code, e.g. `gambling.casino`.
    pub code: Cow<'static, str>,
    /// Category for statistics, e.g. `gambling`.
    pub category: Cow<'static, str>,
    /// Contribution 0..=100.
    pub score: u8,
    /// What the operator would have the policy do.
    pub hint: ActionHint,
    /// Label the SMSC must prepend when the message is delivered.
    pub label: Option<Cow<'static, str>>,
    /// For `ActionHint::Throttle`.
    pub retry_after_ms: Option<u64>,
    /// Short excerpt of the evidence (never the whole body).
    pub evidence: Option<String>,
    /// Byte span in the original text.
    pub span: Option<[usize; 2]>,
    /// From a shadow rule: reported in `shadow[]`, never changes the action.
    pub shadow: bool,
    /// The operator's exact log-odds of spam where it has them (the classifier); a fitted
    /// policy reads this rather than the rounded `score`.
    pub log_odds: Option<f32>,
}

impl Signal {
    /// A scoring signal with no evidence; set the other fields with struct update syntax.
    pub fn new(
        operator: &'static str,
        code: impl Into<Cow<'static, str>>,
        category: impl Into<Cow<'static, str>>,
        score: u8,
    ) -> Self {
        Signal {
            operator,
            code: code.into(),
            category: category.into(),
            score: score.min(100),
            hint: ActionHint::Score,
            label: None,
            retry_after_ms: None,
            evidence: None,
            span: None,
            shadow: false,
            log_odds: None,
        }
    }
}
