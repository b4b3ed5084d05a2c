//! `[throttle]` configuration: quota steps by spam ratio and the ratio signals.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::Quota;
use serde::{Deserialize, Serialize};

use crate::ConfigProblem;

/// One quota step: from `spam_ratio` on, `per_second` messages per second with bursts
/// of `burst`, per input partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaStep {
    /// Spam ratio (0..1) from which this step applies.
    pub spam_ratio: f64,
    /// Sustained rate per partition.
    pub per_second: u32,
    /// Burst size.
    pub burst: u32,
}

/// A score signal for a reseller or first-sender code with a high spam ratio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RatioSignal {
    /// Fires when the spam ratio is above this.
    pub above: f64,
    /// Only with at least this many decided messages in the window.
    pub min_messages: u32,
    /// Score 0..=100 (0 disables).
    pub score: u8,
}

/// `[throttle]` configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Run the throttle operator.
    pub enabled: bool,
    /// Spam-ratio window in seconds.
    pub window_secs: u32,
    /// Buckets of the spam-ratio window.
    pub buckets: u32,
    /// Decided messages a relay needs in the window before its ratio moves its step.
    pub min_messages: u32,
    /// Quota steps, by rising `spam_ratio`; the first must start at 0.
    pub steps: Vec<QuotaStep>,
    /// A relay goes back to a looser step only when its ratio is this far below the
    /// current step's.
    pub relax_margin: f64,
    /// Resellers with a high spam ratio.
    pub reseller: RatioSignal,
    /// First-sender codes with a high spam ratio.
    pub first_sender_code: RatioSignal,
    /// Keys of each kind kept per partition.
    pub max_keys: usize,
    /// How far ahead of the partition clock an event may be.
    pub max_future_secs: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        let step = |spam_ratio, per_second, burst| QuotaStep {
            spam_ratio,
            per_second,
            burst,
        };
        ThrottleConfig {
            enabled: true,
            window_secs: 600,
            buckets: 10,
            min_messages: 100,
            steps: vec![
                step(0.0, 500, 1_000),
                step(0.05, 100, 200),
                step(0.2, 20, 40),
                step(0.5, 2, 4),
            ],
            relax_margin: 0.02,
            reseller: RatioSignal {
                above: 0.5,
                min_messages: 50,
                score: 20,
            },
            first_sender_code: RatioSignal {
                above: 0.5,
                min_messages: 50,
                score: 20,
            },
            max_keys: 100_000,
            max_future_secs: 300,
        }
    }
}

impl ThrottleConfig {
    /// Every problem at once, as (key under `[throttle]`, reason).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errs = Vec::new();
        if self.window_secs == 0 || self.buckets == 0 || self.buckets > 1_000 {
            errs.push(ConfigProblem::new(
                "window_secs",
                "window_secs must be positive and buckets 1..=1000",
            ));
        }
        if self.steps.first().map(|s| s.spam_ratio) != Some(0.0) {
            errs.push(ConfigProblem::new(
                "steps",
                "the first step must start at spam_ratio 0",
            ));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if !(0.0..=1.0).contains(&s.spam_ratio) {
                errs.push(ConfigProblem::new(
                    format!("steps[{i}].spam_ratio"),
                    "must be 0..=1",
                ));
            }
            if i > 0 && s.spam_ratio <= self.steps[i - 1].spam_ratio {
                errs.push(ConfigProblem::new(
                    format!("steps[{i}].spam_ratio"),
                    "steps must rise",
                ));
            }
            if s.per_second == 0 || s.burst == 0 {
                errs.push(ConfigProblem::new(
                    format!("steps[{i}]"),
                    "per_second and burst must be positive",
                ));
            }
        }
        if self.steps.len() > 255 {
            errs.push(ConfigProblem::new("steps", "at most 255 steps"));
        }
        if !(0.0..1.0).contains(&self.relax_margin) {
            errs.push(ConfigProblem::new("relax_margin", "must be 0..1"));
        }
        for (k, r) in [
            ("reseller", &self.reseller),
            ("first_sender_code", &self.first_sender_code),
        ] {
            if !(0.0..1.0).contains(&r.above) {
                errs.push(ConfigProblem::new(format!("{k}.above"), "must be 0..1"));
            }
            if r.score > 100 {
                errs.push(ConfigProblem::new(
                    format!("{k}.score"),
                    format!("{} is above 100", r.score),
                ));
            }
        }
        if self.max_keys == 0 {
            errs.push(ConfigProblem::new("max_keys", "must be positive"));
        }
        errs
    }

    /// Content hash (part of `rules_version`).
    pub fn content_hash(&self) -> String {
        crate::operator::config_hash(self)
    }

    /// The GCRA quota of step `step`.
    pub(super) fn quota(&self, step: usize) -> Quota {
        let s = &self.steps[step.min(self.steps.len() - 1)];
        let burst = NonZeroU32::new(s.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(Duration::from_nanos(
            1_000_000_000 / u64::from(s.per_second.max(1)),
        ))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
    }
}

/// Width of a spam-ratio bucket in seconds.
pub(super) fn bucket_secs(cfg: &ThrottleConfig) -> u32 {
    (cfg.window_secs / cfg.buckets.max(1)).max(1)
}
