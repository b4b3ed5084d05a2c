//! The throttle operator (stateful): slowing down the relay operators that carry spam.
//!
//! Per relay operator (중계사), reseller (재판매사) and first-sender code, a sliding spam
//! ratio over the last `window_secs` of event time: messages blocked / messages decided
//! (allow, label or block; a throttled message is not counted, it comes back). The
//! ratio is fed back from the policy's verdict through [`StatefulOperator::decided`].
//!
//! Each relay operator has a GCRA quota ([`governor`]) chosen from configurable steps by
//! its spam ratio: it tightens as soon as the ratio reaches a step and relaxes only when
//! the ratio falls `relax_margin` below the current step (no flapping at a boundary). A
//! message over quota gets the hint `throttle` with `retry_after_ms` from the limiter.
//! Blocked messages give their quota back: the SMSC never sends them.
//!
//! **Governor and event time.** governor measures time with a [`Clock`]; here the clock
//! is the partition's event-time watermark ([`crate::eventtime`]), read through a clock
//! whose instant is nanoseconds since the Unix epoch (the limiter is made with the clock
//! at 0, so its theoretical arrival time is absolute event time). The GCRA state (one
//! `u64`) lives in the relay's own state through a [`StateStore`] over that `u64`, so it is
//! written to the changelog and restored with the ratio; a limiter is assembled around it
//! for each check (a few arithmetic operations). Backtest, replay at any speed and a
//! restart therefore give the same throttle decisions.
//!
//! **Partition-local quotas.** Input is keyed by sender, so a relay operator's traffic
//! is spread over every partition and each partition enforces its own share: the quota
//! in the configuration is per input partition (a relay's total is `partitions` times
//! it), and its spam ratio is the one seen in the partition (with many senders per relay,
//! each partition sees a fair sample).

mod config;
mod ratio;
mod table;

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::FixedState;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use spamflow_schemas::{Action, Verdict};

use config::bucket_secs;
pub use config::{QuotaStep, RatioSignal, ThrottleConfig};
pub use table::KeyKind;
use table::{KeyState, Name, Table};

use crate::eventtime::{Observed, PartitionClock, CLOCK_KEY};
use crate::operator::drain_dirty;
use crate::{ActionHint, EventCtx, Signal, StateError, StateUpdate, StatefulOperator};

/// Counters of the throttle operators of one pipeline (rare events only).
#[derive(Debug, Default)]
pub struct ThrottleStats {
    /// Messages over their relay's quota.
    pub throttled: AtomicU64,
    /// Step changes (tighten or relax).
    pub step_changes: AtomicU64,
    /// Events beyond the window behind the partition clock, not counted.
    pub stale: AtomicU64,
    /// Keys not tracked because the table was full.
    pub table_full: AtomicU64,
}

/// The partition clock as governor's clock: nanoseconds since the Unix epoch.
struct EventClock<'a>(&'a Cell<u64>);

impl Clock for EventClock<'_> {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::new(self.0.get())
    }
}

/// A relay's GCRA state (theoretical arrival time, 0 = none) as governor's state store.
struct TatSlot<'a>(&'a Cell<u64>);

impl StateStore for TatSlot<'_> {
    type Key = NotKeyed;
    fn measure_and_replace<T, F, E>(&self, _key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let prev = self.0.get();
        let (t, next) = f((prev != 0).then(|| Nanos::new(prev)))?;
        self.0.set(next.as_u64());
        Ok(t)
    }
}

/// Checks one message against `quota` at event time `now_ns`; `tat` is the relay's GCRA
/// state. `Err(wait)` when over quota.
fn check(quota: Quota, tat: &mut u64, now_ns: u64) -> Result<(), Duration> {
    let cell = Cell::new(*tat);
    let clock_at = Cell::new(0);
    let limiter: RateLimiter<NotKeyed, TatSlot<'_>, EventClock<'_>, NoOpMiddleware<Nanos>> =
        RateLimiter::new(quota, TatSlot(&cell), EventClock(&clock_at));
    clock_at.set(now_ns);
    let r = limiter
        .check()
        .map_err(|nu| nu.wait_time_from(Nanos::new(now_ns)));
    *tat = cell.get();
    r
}

/// What `inspect` left for `decided`: the relay's GCRA state before a check that let
/// the message through, given back when the message is blocked (the SMSC never sends
/// it), and the numbers of the event's keys found, by kind.
#[derive(Debug, Clone, Copy, Default)]
struct Inspected {
    tat_before: Option<u64>,
    ids: [Option<usize>; 3],
}

/// One partition's state.
#[derive(Debug)]
struct Part {
    clock: PartitionClock,
    clock_dirty: bool,
    /// Keys by kind, in the order of [`KeyKind::ALL`].
    tables: [Table; 3],
    /// Keys changed (or removed) since the last snapshot.
    dirty: Vec<(KeyKind, Name)>,
    /// Bucket at which the next sweep runs.
    next_sweep: u32,
    /// The event just inspected (`None`: stale, not counted).
    inspected: Option<Inspected>,
}

impl Part {
    fn new(buckets: u32) -> Self {
        Part {
            clock: PartitionClock::default(),
            clock_dirty: false,
            tables: [(); 3].map(|()| Table::new(buckets)),
            dirty: Vec::new(),
            next_sweep: 0,
            inspected: None,
        }
    }

    /// The number of `name`, made when absent and there is room; `None` (counted) when
    /// the table is full.
    fn find_or_insert(
        &mut self,
        sh: &Shared,
        kind: KeyKind,
        name: &str,
        now_b: u32,
    ) -> Option<usize> {
        let id = self.tables[kind.index()].find_or_insert(name, sh.cfg.max_keys, now_b);
        if id.is_none() {
            sh.stats.table_full.fetch_add(1, Relaxed);
        }
        id
    }

    /// Key `id` of `kind`, marked for the changelog.
    fn touch(&mut self, kind: KeyKind, id: usize) -> &mut KeyState {
        let (name, k) = self.tables[kind.index()].key_mut(id);
        if !k.dirty {
            k.dirty = true;
            self.dirty.push((kind, name.clone()));
        }
        k
    }

    /// Forgets keys with nothing in the window and no pending quota debt (tombstones).
    fn sweep(&mut self, now_b: u32) {
        let now_ns = self.clock.watermark_ms().unwrap_or(0).max(0) as u64 * 1_000_000;
        let dirty = &mut self.dirty;
        for kind in KeyKind::ALL {
            self.tables[kind.index()].retain(
                |_, k| k.ratio.totals_at(now_b).decided > 0 || k.tat > now_ns,
                |name| dirty.push((kind, name.clone())),
            );
        }
    }
}

/// Shared, immutable part.
#[derive(Debug)]
struct Shared {
    cfg: ThrottleConfig,
    quotas: Vec<Quota>,
    hash: String,
    stats: Arc<ThrottleStats>,
}

impl Shared {
    /// The spam-ratio bucket of event time `ms`.
    fn bucket_of(&self, ms: u64) -> u32 {
        (ms / 1000 / u64::from(bucket_secs(&self.cfg))) as u32
    }
}

/// Builds throttle operators for the workers of one pipeline.
#[derive(Debug, Clone)]
pub struct ThrottleFactory {
    shared: Arc<Shared>,
}

impl ThrottleFactory {
    /// A factory for `cfg` (validated by the caller).
    pub fn new(cfg: ThrottleConfig, stats: Arc<ThrottleStats>) -> Self {
        ThrottleFactory {
            shared: Arc::new(Shared {
                quotas: (0..cfg.steps.len()).map(|i| cfg.quota(i)).collect(),
                hash: cfg.content_hash(),
                cfg,
                stats,
            }),
        }
    }

    /// The operator for one worker.
    pub fn build(&self) -> ThrottleOperator {
        ThrottleOperator {
            shared: self.shared.clone(),
            parts: HashMap::default(),
        }
    }
}

/// The throttle operator of one worker.
#[derive(Debug)]
pub struct ThrottleOperator {
    shared: Arc<Shared>,
    parts: HashMap<i32, Part, FixedState>,
}

/// The first bucket after `now_b` that is a multiple of `every` (sweeps are aligned to
/// the clock, so that a restored partition sweeps when an uninterrupted one would).
fn aligned_next(now_b: u32, every: u32) -> u32 {
    (now_b / every + 1) * every
}

impl StatefulOperator for ThrottleOperator {
    fn name(&self) -> &'static str {
        "throttle"
    }

    fn content_hash(&self) -> String {
        self.shared.hash.clone()
    }

    fn inspect(&mut self, ctx: &EventCtx<'_>, out: &mut Vec<Signal>) {
        let sh = &*self.shared;
        let cfg = &sh.cfg;
        let p = self
            .parts
            .entry(ctx.partition)
            .or_insert_with(|| Part::new(cfg.buckets));
        p.inspected = None;
        let observed = p.clock.observe(
            ctx.event_time_ms,
            i64::from(cfg.max_future_secs) * 1000,
            i64::from(cfg.window_secs) * 1000,
        );
        if observed == Observed::Stale {
            sh.stats.stale.fetch_add(1, Relaxed);
            return;
        }
        p.clock_dirty = true;
        let now_ms = p.clock.watermark_ms().unwrap_or(ctx.event_time_ms).max(0) as u64;
        let now_b = sh.bucket_of(now_ms);
        if now_b >= p.next_sweep {
            p.next_sweep = aligned_next(now_b, cfg.buckets);
            p.sweep(now_b);
        }
        let mut inspected = Inspected::default();
        let Some(relay) = &ctx.event.relay else {
            p.inspected = Some(inspected);
            return;
        };
        // A replayed event took its quota when it was first judged (`EventCtx::counted`).
        let operator = relay.operator.as_deref().filter(|_| !ctx.counted);
        inspected.ids[0] = operator.and_then(|op| p.find_or_insert(sh, KeyKind::Relay, op, now_b));
        if let Some(id) = inspected.ids[0] {
            let k = p.touch(KeyKind::Relay, id);
            let ratio = k.ratio.value_at(now_b, cfg.min_messages).unwrap_or(0.0);
            let target = cfg
                .steps
                .iter()
                .rposition(|s| ratio >= s.spam_ratio)
                .unwrap_or(0);
            let current = usize::from(k.step);
            let relax =
                target < current && ratio < cfg.steps[current].spam_ratio - cfg.relax_margin;
            if target > current || relax {
                k.step = target as u8;
                sh.stats.step_changes.fetch_add(1, Relaxed);
            }
            let step = usize::from(k.step);
            let before = k.tat;
            match check(sh.quotas[step], &mut k.tat, now_ms * 1_000_000) {
                Ok(()) => inspected.tat_before = Some(before),
                Err(wait) => {
                    sh.stats.throttled.fetch_add(1, Relaxed);
                    let s = &cfg.steps[step];
                    out.push(Signal {
                        hint: ActionHint::Throttle,
                        retry_after_ms: Some((wait.as_nanos().div_ceil(1_000_000) as u64).max(1)),
                        evidence: Some(format!(
                            "relay quota step {step}: {}/s, burst {} per partition (spam ratio {ratio:.2} over {}s)",
                            s.per_second, s.burst, cfg.window_secs
                        )),
                        ..Signal::new("throttle", "throttle.relay_quota", "relay", 0)
                    });
                }
            }
        }
        // Resellers and first-sender codes are only read here: `decided` counts them.
        for (kind, name, rs, code) in [
            (
                KeyKind::Reseller,
                &relay.reseller,
                &cfg.reseller,
                "throttle.reseller_spam_ratio",
            ),
            (
                KeyKind::FirstSenderCode,
                &relay.first_sender_code,
                &cfg.first_sender_code,
                "throttle.first_sender_code_spam_ratio",
            ),
        ] {
            let table = &p.tables[kind.index()];
            let Some(id) = name.as_deref().and_then(|name| table.find(name)) else {
                continue;
            };
            inspected.ids[kind.index()] = Some(id);
            let ratio = table.key(id).1.ratio.value_at(now_b, rs.min_messages);
            if let Some(r) = ratio.filter(|r| *r > rs.above && rs.score > 0) {
                out.push(Signal {
                    evidence: Some(format!("spam ratio {r:.2} over {}s", cfg.window_secs)),
                    ..Signal::new("throttle", code, "relay", rs.score)
                });
            }
        }
        p.inspected = Some(inspected);
    }

    fn decided(&mut self, ctx: &EventCtx<'_>, verdict: &Verdict) {
        let sh = &*self.shared;
        let Some(p) = self.parts.get_mut(&ctx.partition) else {
            return;
        };
        let Some(inspected) = p.inspected.take() else {
            return; // stale
        };
        if ctx.counted {
            return; // already in the spam ratios
        }
        let Some(relay) = &ctx.event.relay else {
            return;
        };
        // A throttled message is not decided: it comes back.
        if verdict.action == Action::Throttle {
            return;
        }
        let blocked = verdict.action == Action::Block;
        let now_ms = p.clock.watermark_ms().unwrap_or(0).max(0) as u64;
        let now_b = sh.bucket_of(now_ms);
        for (kind, name) in [
            (KeyKind::Relay, &relay.operator),
            (KeyKind::Reseller, &relay.reseller),
            (KeyKind::FirstSenderCode, &relay.first_sender_code),
        ] {
            let Some(name) = name.as_deref() else {
                continue;
            };
            let id = match inspected.ids[kind.index()] {
                Some(id) => Some(id),
                None => p.find_or_insert(sh, kind, name, now_b),
            };
            let Some(id) = id else { continue };
            let k = p.touch(kind, id);
            k.ratio.count(now_b, blocked);
            if kind == KeyKind::Relay && blocked {
                if let Some(tat) = inspected.tat_before {
                    k.tat = tat;
                }
            }
        }
    }

    fn assigned(&mut self, partition: i32) {
        self.parts
            .insert(partition, Part::new(self.shared.cfg.buckets));
    }

    fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let err = |detail: String| StateError::new("throttle", key, detail);
        let buckets = self.shared.cfg.buckets;
        let p = self
            .parts
            .entry(partition)
            .or_insert_with(|| Part::new(buckets));
        match key {
            [CLOCK_KEY] => {
                p.clock = PartitionClock::decode(value).map_err(err)?;
                let wm = p.clock.watermark_ms().unwrap_or(0);
                p.next_sweep = aligned_next(self.shared.bucket_of(wm.max(0) as u64), buckets);
            }
            [prefix, name @ ..] => {
                let kind = KeyKind::of_prefix(*prefix).ok_or_else(|| err("unknown key".into()))?;
                let name = std::str::from_utf8(name).map_err(|e| err(e.to_string()))?;
                p.tables[kind.index()].restore(name, value).map_err(err)?;
            }
            [] => return Err(err("unknown key".into())),
        }
        Ok(())
    }

    fn revoked(&mut self, partition: i32) {
        self.parts.remove(&partition);
    }

    fn snapshot(&mut self, partition: i32, out: &mut Vec<StateUpdate>) {
        let Some(p) = self.parts.get_mut(&partition) else {
            return;
        };
        let tables = &mut p.tables;
        drain_dirty(
            &mut p.dirty,
            out,
            |(kind, name)| [&[kind.prefix()], name.as_bytes()].concat(),
            |(kind, name)| {
                let table = &mut tables[kind.index()];
                match table.find(name).map(|id| table.key_mut(id).1) {
                    Some(k) if k.dirty => {
                        k.dirty = false;
                        Some(Some(k.encode()))
                    }
                    Some(_) => None,
                    None => Some(None),
                }
            },
        );
        p.clock.snapshot(&mut p.clock_dirty, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn governor_on_event_time_allows_the_burst_then_says_when() {
        let q = ThrottleConfig::default();
        let quota = QuotaStep {
            spam_ratio: 0.0,
            per_second: 2,
            burst: 4,
        };
        let cfg = ThrottleConfig {
            steps: vec![quota],
            ..q
        };
        let mut tat = 0;
        let t0 = 1_772_000_000_000u64 * 1_000_000; // 2026, in ns
        for _ in 0..4 {
            assert_eq!(check(cfg.quota(0), &mut tat, t0), Ok(()));
        }
        let wait = check(cfg.quota(0), &mut tat, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Half a second of event time later, one more fits.
        assert_eq!(check(cfg.quota(0), &mut tat, t0 + 500_000_000), Ok(()));
        assert!(check(cfg.quota(0), &mut tat, t0 + 500_000_000).is_err());
    }
}
