//! Sender numbers blocked for spam again and again are suspended (stateful).
//!
//! Each partition counts, per sender number, the messages blocked for spam in windows of
//! `numbers.window_secs` of event time. The block that reaches
//! `numbers.suspend_after_blocks` makes a suspension record for the sender registry
//! (status `suspended`, `changed_by` [`SUSPENDED_BY`], `changed_at` that message's
//! `submitted_at`, `reason` and `blocks`), which the runtime writes to `topics.registry`
//! in the same transaction as the changelog; every instance follows the registry, so every
//! later message from the number is blocked everywhere (`registry.suspended`).
//!
//! Input is keyed by sender, so one partition, and one worker, sees all of a number's
//! messages: the counts need no coordination, and they are state like the velocity
//! windows (changelog, restore, exactly once).
//!
//! A block counts when one of its reasons is spam (a rule, the classifier, reported
//! content, velocity, a campaign) and none says the number was spoofed: a spoofed
//! number belongs to somebody else, who must not lose it. Blocks only for registry
//! reasons (an unregistered bulk sender) do not count either. A number already suspended
//! is not counted, and blocks up to its last status change (a release by staff) do not
//! count.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use spamflow_schemas::{Action, RegistrationRecord, RegistrationStatus, Verdict};

use crate::operator::{
    ConfigProblem, EventCtx, SideRecord, StateError, StateUpdate, StatefulOperator,
};
use crate::origin::Registry;

/// Operator name (changelog prefix).
pub const NAME: &str = "numbers";
/// Who a suspension made here names as its author.
pub const SUSPENDED_BY: &str = "spamflow:blocks";
/// Reason categories that do not make a block the sender's own spam.
const NOT_SPAM: [&str; 3] = ["spoofing", "registry", "overseas"];
/// Suspension records waiting for the next snapshot, at most (`backtest` never takes
/// them).
const MAX_PENDING: usize = 10_000;

/// `[numbers]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumbersConfig {
    /// Suspend a sender number after this many spam blocks within `window_secs`; 0: never.
    pub suspend_after_blocks: u32,
    /// The window, in seconds of event time (windows are aligned to the epoch).
    pub window_secs: u64,
    /// Numbers counted per partition at most; blocks of new numbers beyond are not counted.
    pub max_numbers: usize,
    /// `auto`: the record suspends the number (`topics.registry`); `propose`: it is only
    /// proposed to staff (`topics.number_proposals`, `spamflow numbers proposals`).
    /// `off` is `suspend_after_blocks = 0`.
    pub suspend: crate::reports::Suspend,
}

impl Default for NumbersConfig {
    fn default() -> Self {
        NumbersConfig {
            // Off unless a carrier asks for it: the feedback through the registry makes
            // later decisions depend on when the suspension arrives, and suspending is a
            // policy decision (docs/reports.md).
            suspend_after_blocks: 0,
            window_secs: 3_600,
            max_numbers: 100_000,
            suspend: crate::reports::Suspend::Auto,
        }
    }
}

impl NumbersConfig {
    /// Every problem at once, as `(key, reason)`.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errs = Vec::new();
        if self.window_secs == 0 {
            errs.push(ConfigProblem::new("window_secs", "must be positive"));
        }
        if self.max_numbers == 0 {
            errs.push(ConfigProblem::new("max_numbers", "must be positive"));
        }
        errs
    }
}

/// One number's blocks in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Count {
    /// Window index (event time / window).
    window: i64,
    blocks: u32,
    /// The suspension was made in this window.
    suspended: bool,
}

impl Count {
    fn encode(&self) -> Vec<u8> {
        let mut v = self.window.to_be_bytes().to_vec();
        v.extend_from_slice(&self.blocks.to_be_bytes());
        v.push(u8::from(self.suspended));
        v
    }

    fn decode(v: &[u8]) -> Option<Count> {
        let (window, rest) = v.split_at_checked(8)?;
        let (blocks, flag) = rest.split_at_checked(4)?;
        Some(Count {
            window: i64::from_be_bytes(window.try_into().ok()?),
            blocks: u32::from_be_bytes(blocks.try_into().ok()?),
            suspended: match flag {
                [0] => false,
                [1] => true,
                _ => return None,
            },
        })
    }
}

#[derive(Debug, Default)]
struct Part {
    counts: HashMap<String, Count>,
    /// The latest window seen: counts of earlier windows are dropped at the snapshot.
    window: i64,
    dirty: Vec<String>,
}

/// Makes one [`NumbersOperator`] per worker.
#[derive(Debug, Clone)]
pub struct NumbersFactory {
    cfg: NumbersConfig,
    registry: Arc<Registry>,
}

impl NumbersFactory {
    /// Counts with `cfg`, against `registry` (suspended numbers, releases, registrations).
    pub fn new(cfg: NumbersConfig, registry: Arc<Registry>) -> Self {
        NumbersFactory { cfg, registry }
    }

    /// One worker's operator.
    pub fn build(&self) -> NumbersOperator {
        NumbersOperator {
            cfg: self.cfg.clone(),
            registry: self.registry.clone(),
            parts: HashMap::new(),
            pending: Vec::new(),
        }
    }
}

/// One worker's block counts of its partitions.
#[derive(Debug)]
pub struct NumbersOperator {
    cfg: NumbersConfig,
    registry: Arc<Registry>,
    parts: HashMap<i32, Part>,
    /// Suspensions made since the last snapshot: (partition, number, record).
    pending: Vec<(i32, String, RegistrationRecord)>,
}

/// Whether a blocked verdict is the sender's own spam.
fn spam_block(v: &Verdict) -> bool {
    v.action == Action::Block
        && v.reasons.iter().any(|r| !NOT_SPAM.contains(&&*r.category))
        && !v.reasons.iter().any(|r| r.category == "spoofing")
}

impl NumbersOperator {
    fn suspension(&self, number: &str, blocks: u32, ctx: &EventCtx<'_>) -> RegistrationRecord {
        let mut rec = self
            .registry
            .registration(number)
            .unwrap_or_else(|| RegistrationRecord {
                number: number.to_owned(),
                ..RegistrationRecord::default()
            });
        rec.status = RegistrationStatus::Suspended;
        rec.changed_by = Some(SUSPENDED_BY.into());
        rec.changed_at = Some(ctx.event.submitted_at);
        rec.reason = Some(format!(
            "blocked for spam {blocks} times within {} s",
            self.cfg.window_secs
        ));
        rec.blocks = Some(blocks);
        rec
    }
}

impl StatefulOperator for NumbersOperator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decided(&mut self, ctx: &EventCtx<'_>, verdict: &Verdict) {
        if ctx.counted
            || self.cfg.suspend_after_blocks == 0
            || self.cfg.suspend == crate::reports::Suspend::Off
            || !spam_block(verdict)
        {
            return;
        }
        let sender = ctx.sender;
        if !sender.kind.is_number()
            || self.registry.is_suspended(&sender.key)
            || self
                .registry
                .changed_at_ms(&sender.key)
                .is_some_and(|c| ctx.event_time_ms <= c)
        {
            return;
        }
        let window = ctx
            .event_time_ms
            .div_euclid((self.cfg.window_secs * 1000) as i64);
        let p = self.parts.entry(ctx.partition).or_default();
        p.window = p.window.max(window);
        let fresh = Count {
            window,
            blocks: 0,
            suspended: false,
        };
        if !p.counts.contains_key(&sender.key) && p.counts.len() >= self.cfg.max_numbers {
            return;
        }
        let c = p.counts.entry(sender.key.clone()).or_insert(fresh);
        if c.window < window {
            *c = fresh;
        }
        // A late event of an earlier window counts in the number's current one.
        c.blocks += 1;
        let crossed = !c.suspended && c.blocks >= self.cfg.suspend_after_blocks;
        c.suspended |= crossed;
        let blocks = c.blocks;
        p.dirty.push(sender.key.clone());
        if crossed && self.pending.len() < MAX_PENDING {
            let rec = self.suspension(&sender.key, blocks, ctx);
            self.pending.push((ctx.partition, sender.key.clone(), rec));
        }
    }

    fn assigned(&mut self, partition: i32) {
        self.parts.insert(partition, Part::default());
        self.pending.retain(|(p, _, _)| *p != partition);
    }

    fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let number = std::str::from_utf8(key)
            .map_err(|_| StateError::new(NAME, key, "key is not UTF-8"))?
            .to_owned();
        let p = self.parts.entry(partition).or_default();
        match value {
            None => {
                p.counts.remove(&number);
            }
            Some(v) => {
                let c = Count::decode(v)
                    .ok_or_else(|| StateError::new(NAME, key, "not a block count"))?;
                p.window = p.window.max(c.window);
                p.counts.insert(number, c);
            }
        }
        Ok(())
    }

    fn revoked(&mut self, partition: i32) {
        self.parts.remove(&partition);
        self.pending.retain(|(p, _, _)| *p != partition);
    }

    fn snapshot(&mut self, partition: i32, out: &mut Vec<StateUpdate>) {
        let Some(p) = self.parts.get_mut(&partition) else {
            return;
        };
        let current = p.window;
        // Counts of windows before the last one are no longer needed.
        p.counts.retain(|k, c| {
            let keep = c.window + 1 >= current;
            if !keep {
                p.dirty.push(k.clone());
            }
            keep
        });
        let counts = &p.counts;
        crate::operator::drain_dirty(
            &mut p.dirty,
            out,
            |k| k.clone().into_bytes(),
            |k| Some(counts.get(k).map(Count::encode)),
        );
    }

    fn side_records(&mut self, partition: i32, out: &mut Vec<SideRecord>) {
        let propose = self.cfg.suspend == crate::reports::Suspend::Propose;
        self.pending.retain(|(p, _, rec)| {
            if *p == partition {
                out.push(if propose {
                    SideRecord::Proposal(rec.clone())
                } else {
                    SideRecord::Registry(rec.clone())
                });
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spamflow_schemas::SubmissionEvent;

    fn event(sender: &str, at_ms: i64) -> SubmissionEvent {
        crate::testutil::event("m", sender, "+821098765432", "x", at_ms)
    }

    fn verdict(action: Action, categories: &[&str]) -> Verdict<'static> {
        crate::testutil::verdict(action, 90, categories)
    }

    fn decide(op: &mut NumbersOperator, ev: &SubmissionEvent, v: &Verdict, counted: bool) {
        let ctx = EventCtx {
            event: ev,
            sender: &crate::origin::parse_sender(&ev.sender),
            partition: 0,
            event_time_ms: ev.submitted_at.timestamp_millis(),
            counted,
        };
        op.decided(&ctx, v);
    }

    fn records(op: &mut NumbersOperator) -> Vec<RegistrationRecord> {
        let mut out = Vec::new();
        op.side_records(0, &mut out);
        out.into_iter()
            .map(|r| match r {
                SideRecord::Registry(rec) => rec,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    // A whole hour (and minute) since the epoch.
    const T0: i64 = 1_800_000_000_000;

    #[test]
    fn the_block_that_reaches_the_threshold_suspends_once_and_only_spam_blocks_count() {
        let cfg = NumbersConfig {
            suspend_after_blocks: 3,
            ..NumbersConfig::default()
        };
        let registry = Arc::new(Registry::new());
        let mut op = NumbersFactory::new(cfg, registry.clone()).build();
        let a = "010-1234-5678";
        let spam = verdict(Action::Block, &["gambling"]);
        decide(&mut op, &event(a, T0), &spam, false);
        // Not the sender's own spam: spoofed, registry only, allowed, a replay.
        decide(
            &mut op,
            &event(a, T0 + 1),
            &verdict(Action::Block, &["gambling", "spoofing"]),
            false,
        );
        decide(
            &mut op,
            &event(a, T0 + 2),
            &verdict(Action::Block, &["registry"]),
            false,
        );
        decide(
            &mut op,
            &event(a, T0 + 3),
            &verdict(Action::Allow, &["gambling"]),
            false,
        );
        decide(&mut op, &event(a, T0 + 4), &spam, true);
        decide(&mut op, &event(a, T0 + 5), &spam, false);
        assert!(records(&mut op).is_empty());
        decide(&mut op, &event(a, T0 + 6), &spam, false);
        let made = records(&mut op);
        assert_eq!(made.len(), 1);
        let s = &made[0];
        assert_eq!(
            (
                s.number.as_str(),
                s.status,
                s.changed_by.as_deref(),
                s.blocks
            ),
            (
                "+821012345678",
                RegistrationStatus::Suspended,
                Some(SUSPENDED_BY),
                Some(3)
            )
        );
        assert_eq!(s.changed_at.unwrap().timestamp_millis(), T0 + 6);
        decide(&mut op, &event(a, T0 + 7), &spam, false);
        assert!(records(&mut op).is_empty(), "once per window");
        // Once the registry says so, the number is not counted; after a release, only
        // blocks after it count, in a fresh window.
        registry.put(&s.clone()).unwrap();
        let mut released = s.clone();
        released.status = RegistrationStatus::Active;
        released.changed_at = chrono::DateTime::from_timestamp_millis(T0 + 3_600_000);
        registry.put(&released).unwrap();
        for i in 0..3 {
            decide(&mut op, &event(a, T0 + 3_600_000 + i), &spam, false);
        }
        assert_eq!(
            records(&mut op).len(),
            0,
            "the block at the release does not count"
        );
        decide(&mut op, &event(a, T0 + 3_600_005), &spam, false);
        assert_eq!(records(&mut op).len(), 1);
    }

    #[test]
    fn with_propose_the_record_is_a_proposal_not_a_suspension() {
        let cfg = NumbersConfig {
            suspend_after_blocks: 2,
            suspend: crate::reports::Suspend::Propose,
            ..NumbersConfig::default()
        };
        let mut op = NumbersFactory::new(cfg, Arc::new(Registry::new())).build();
        let spam = verdict(Action::Block, &["loan"]);
        for i in 0..2 {
            decide(&mut op, &event("010-2222-3333", T0 + i), &spam, false);
        }
        let mut out = Vec::new();
        op.side_records(0, &mut out);
        match out.as_slice() {
            [SideRecord::Proposal(r)] => {
                assert_eq!(r.status, RegistrationStatus::Suspended);
                assert_eq!(r.blocks, Some(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn counts_restore_and_old_windows_leave_the_changelog() {
        let cfg = NumbersConfig {
            suspend_after_blocks: 5,
            window_secs: 60,
            ..NumbersConfig::default()
        };
        let registry = Arc::new(Registry::new());
        let f = NumbersFactory::new(cfg, registry);
        let mut op = f.build();
        op.assigned(0);
        let spam = verdict(Action::Block, &["loan"]);
        for i in 0..3 {
            decide(&mut op, &event("01011112222", T0 + i), &spam, false);
        }
        let mut out = Vec::new();
        op.snapshot(0, &mut out);
        assert_eq!(out.len(), 1);
        let mut again = f.build();
        again.assigned(0);
        again
            .restore(0, &out[0].key, out[0].value.as_deref())
            .unwrap();
        assert!(again.restore(0, b"+821011112222", Some(b"junk")).is_err());
        // Two more blocks in the same window reach five: the restored three counted.
        for i in 3..5 {
            decide(&mut again, &event("01011112222", T0 + i), &spam, false);
        }
        assert_eq!(records(&mut again).len(), 1);
        // Two windows on, the count is dropped (a tombstone).
        decide(
            &mut again,
            &event("01033334444", T0 + 180_000),
            &spam,
            false,
        );
        let mut out = Vec::new();
        again.snapshot(0, &mut out);
        assert!(out
            .iter()
            .any(|u| u.key == b"+821011112222" && u.value.is_none()));
    }
}
