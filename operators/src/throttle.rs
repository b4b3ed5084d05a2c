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

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use foldhash::fast::FixedState;
use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use hashbrown::HashTable;
use prefetch_index::prefetch_index;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spamflow_schemas::{Action, Verdict};

use crate::divisor::{Divisor, RingSlots};
use crate::eventtime::{Observed, PartitionClock, CLOCK_KEY};
use crate::operator::drain_dirty;
use crate::{ActionHint, EventCtx, Signal, StateError, StateUpdate, StatefulOperator};

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
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut errs = Vec::new();
        if self.window_secs == 0 || self.buckets == 0 || self.buckets > 1_000 {
            errs.push((
                "window_secs".into(),
                "window_secs must be positive and buckets 1..=1000".into(),
            ));
        }
        if self.steps.first().map(|s| s.spam_ratio) != Some(0.0) {
            errs.push((
                "steps".into(),
                "the first step must start at spam_ratio 0".into(),
            ));
        }
        for (i, s) in self.steps.iter().enumerate() {
            if !(0.0..=1.0).contains(&s.spam_ratio) {
                errs.push((format!("steps[{i}].spam_ratio"), "must be 0..=1".into()));
            }
            if i > 0 && s.spam_ratio <= self.steps[i - 1].spam_ratio {
                errs.push((format!("steps[{i}].spam_ratio"), "steps must rise".into()));
            }
            if s.per_second == 0 || s.burst == 0 {
                errs.push((
                    format!("steps[{i}]"),
                    "per_second and burst must be positive".into(),
                ));
            }
        }
        if self.steps.len() > 255 {
            errs.push(("steps".into(), "at most 255 steps".into()));
        }
        if !(0.0..1.0).contains(&self.relax_margin) {
            errs.push(("relax_margin".into(), "must be 0..1".into()));
        }
        for (k, r) in [
            ("reseller", &self.reseller),
            ("first_sender_code", &self.first_sender_code),
        ] {
            if !(0.0..1.0).contains(&r.above) {
                errs.push((format!("{k}.above"), "must be 0..1".into()));
            }
            if r.score > 100 {
                errs.push((format!("{k}.score"), format!("{} is above 100", r.score)));
            }
        }
        if self.max_keys == 0 {
            errs.push(("max_keys".into(), "must be positive".into()));
        }
        errs
    }

    /// Content hash (part of `rules_version`).
    pub fn content_hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).unwrap_or_default());
        hex::encode(&h.finalize()[..8])
    }

    fn quota(&self, step: usize) -> Quota {
        let s = &self.steps[step.min(self.steps.len() - 1)];
        let burst = NonZeroU32::new(s.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(Duration::from_nanos(
            1_000_000_000 / u64::from(s.per_second.max(1)),
        ))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
    }
}

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

/// Blocked / decided over a ring of buckets. The ring itself lives in its table's
/// bucket arena ([`Table`]), next to the other keys' rings, not behind a pointer per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ratio {
    /// Newest bucket number.
    head: u32,
    /// [decided, blocked] in the ring.
    totals: [u32; 2],
}

/// [decided, blocked] per bucket.
type Ring = [[u32; 2]];

impl Ratio {
    fn new(head: u32) -> Self {
        Ratio {
            head,
            totals: [0; 2],
        }
    }

    /// The ring slots of the buckets after the newest, up to `b` (past it).
    fn after_head(&self, per_n: Divisor, b: u32) -> RingSlots {
        per_n.ring_slots(self.head.wrapping_add(1), b.saturating_sub(self.head))
    }

    fn advance(&mut self, ring: &mut Ring, per_n: Divisor, b: u32) {
        if b <= self.head {
            return;
        }
        for i in self.after_head(per_n, b) {
            let slot = &mut ring[i];
            self.totals[0] -= slot[0];
            self.totals[1] -= slot[1];
            *slot = [0; 2];
        }
        self.head = b;
    }

    /// Counts one decided message in bucket `b` (`per_n`: the ring's length).
    fn add(&mut self, ring: &mut Ring, per_n: Divisor, b: u32, blocked: bool) {
        self.advance(ring, per_n, b);
        let slot = &mut ring[per_n.rem(self.head) as usize];
        slot[0] = slot[0].saturating_add(1);
        self.totals[0] = self.totals[0].saturating_add(1);
        if blocked {
            slot[1] = slot[1].saturating_add(1);
            self.totals[1] = self.totals[1].saturating_add(1);
        }
    }

    /// [decided, blocked] in the window at bucket `b` (read-only: what `advance(b)`
    /// would leave; the ring is only read when `b` is past the newest bucket).
    fn totals_at(&self, ring: &Ring, per_n: Divisor, b: u32) -> [u32; 2] {
        let mut t = self.totals;
        if b <= self.head {
            // Nearly always (once per event and key): no remainder to find.
            return t;
        }
        for i in self.after_head(per_n, b) {
            t[0] -= ring[i][0];
            t[1] -= ring[i][1];
        }
        t
    }

    /// The ratio at bucket `b`, when at least `min` messages were decided.
    fn value_at(&self, ring: &Ring, per_n: Divisor, b: u32, min: u32) -> Option<f64> {
        let [decided, blocked] = self.totals_at(ring, per_n, b);
        (decided >= min.max(1)).then(|| f64::from(blocked) / f64::from(decided))
    }

    fn encode(&self, ring: &Ring, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.head.to_le_bytes());
        out.extend_from_slice(&(ring.len() as u32).to_le_bytes());
        for [d, b] in ring {
            out.extend_from_slice(&d.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
    }

    /// Reads [`Ratio::encode`]'s output into `ring` (of the configured length).
    fn decode(b: &mut &[u8], ring: &mut Ring) -> Result<Ratio, String> {
        let mut word = || -> Result<u32, String> {
            let (x, rest) = b.split_at_checked(4).ok_or("value is truncated")?;
            *b = rest;
            Ok(u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        };
        let head = word()?;
        let len = word()?;
        if len as usize != ring.len() {
            return Err(format!(
                "{len} buckets, the configuration has {} (configuration changed)",
                ring.len()
            ));
        }
        let mut r = Ratio::new(head);
        for slot in ring.iter_mut() {
            *slot = [word()?, word()?];
            for (total, x) in r.totals.iter_mut().zip(*slot) {
                *total = total.checked_add(x).ok_or("bucket counts overflow")?;
            }
        }
        Ok(r)
    }
}

/// Bytes of a name kept inside its entry.
const NAME_INLINE: usize = 22;

/// A key's name: inside the entry when it fits (relay operator, reseller and
/// first-sender code names are short), so that finding a key compares bytes next to its
/// state instead of following a pointer to them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Name {
    Inline { len: u8, bytes: [u8; NAME_INLINE] },
    Heap(Box<[u8]>),
}

impl Name {
    fn new(name: &[u8]) -> Name {
        if name.len() <= NAME_INLINE {
            let mut bytes = [0; NAME_INLINE];
            bytes[..name.len()].copy_from_slice(name);
            Name::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            Name::Heap(name.into())
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Name::Heap(b) => b,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Keyed {
    name: Name,
    ratio: Ratio,
    /// Relay operators only: quota step and GCRA state.
    step: u8,
    tat: u64,
    dirty: bool,
}

const VERSION: u8 = 1;

impl Keyed {
    fn new(name: &[u8], head: u32) -> Self {
        Keyed {
            name: Name::new(name),
            ratio: Ratio::new(head),
            step: 0,
            tat: 0,
            dirty: false,
        }
    }

    fn encode(&self, ring: &Ring, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.push(self.step);
        out.extend_from_slice(&self.tat.to_le_bytes());
        self.ratio.encode(ring, out);
    }

    /// Reads [`Keyed::encode`]'s output, its ratio buckets into `ring`.
    fn decode(name: &[u8], b: &[u8], ring: &mut Ring) -> Result<Keyed, String> {
        match b {
            [VERSION, step, rest @ ..] => {
                let (tat, mut rest) = rest.split_at_checked(8).ok_or("value is truncated")?;
                let ratio = Ratio::decode(&mut rest, ring)?;
                if !rest.is_empty() {
                    return Err(format!("{} trailing bytes", rest.len()));
                }
                Ok(Keyed {
                    ratio,
                    step: *step,
                    tat: u64::from_le_bytes(tat.try_into().unwrap_or_default()),
                    ..Keyed::new(name, 0)
                })
            }
            _ => Err("unknown throttle state version".into()),
        }
    }
}

/// Kinds of keys (also the changelog key prefix).
const RELAY: u8 = b'o';
const RESELLER: u8 = b'r';
const CODE: u8 = b'f';
const KINDS: [u8; 3] = [RELAY, RESELLER, CODE];

fn name_hash(name: &[u8]) -> u64 {
    FixedState::default().hash_one(name)
}

/// Keyed state of one kind (relay operators, resellers or first-sender codes): entries
/// in a `Vec` and their ratio rings in one arena (`buckets` per entry, in entry order),
/// found by name through a hash index of entry numbers, once per event in `inspect`;
/// `decided` reaches them by number. The sweep, the only removal besides restore, runs
/// before the look-ups.
#[derive(Debug)]
struct Table {
    index: HashTable<u32>,
    entries: Vec<Keyed>,
    rings: Vec<[u32; 2]>,
    buckets: usize,
    /// `buckets` as a divisor (a ring slot is a bucket number's remainder).
    per_n: Divisor,
}

impl Table {
    fn new(buckets: u32) -> Self {
        Table {
            index: HashTable::new(),
            entries: Vec::new(),
            rings: Vec::new(),
            buckets: buckets.max(1) as usize,
            per_n: Divisor::new(buckets.max(1)),
        }
    }

    fn find(&self, name: &[u8]) -> Option<u32> {
        let entries = &self.entries;
        self.index
            .find(name_hash(name), |&id| {
                entries[id as usize].name.as_bytes() == name
            })
            .copied()
    }

    /// Prefetches the ratio ring of entry `id`.
    fn prefetch_ring(&self, id: u32) {
        let first = id as usize * self.buckets;
        prefetch_index(&self.rings, first);
        prefetch_index(&self.rings, first + self.buckets - 1);
    }

    fn ring(&self, id: u32) -> &Ring {
        &self.rings[id as usize * self.buckets..][..self.buckets]
    }

    /// Entry `id` and its ring.
    fn get_mut(&mut self, id: u32) -> (&mut Keyed, &mut Ring) {
        (
            &mut self.entries[id as usize],
            &mut self.rings[id as usize * self.buckets..][..self.buckets],
        )
    }

    /// Appends `e` with an empty ring; returns its number.
    fn push(&mut self, e: Keyed) -> u32 {
        let id = self.entries.len() as u32;
        self.entries.push(e);
        self.rings.resize(self.entries.len() * self.buckets, [0; 2]);
        self.index_entry(id);
        id
    }

    /// Adds entry `id` to the name index.
    fn index_entry(&mut self, id: u32) {
        let entries = &self.entries;
        self.index
            .insert_unique(name_hash(entries[id as usize].name.as_bytes()), id, |&j| {
                name_hash(entries[j as usize].name.as_bytes())
            });
    }

    /// The entry of `name`, made (empty, newest bucket `head`) when absent and there is
    /// room.
    fn find_or_insert(&mut self, name: &[u8], max: usize, head: u32) -> Option<u32> {
        if let Some(id) = self.find(name) {
            return Some(id);
        }
        if self.entries.len() >= max {
            return None;
        }
        Some(self.push(Keyed::new(name, head)))
    }

    /// Sets (restore) or removes (tombstone) the entry of `name` from its changelog
    /// value.
    fn restore(&mut self, name: &[u8], value: Option<&[u8]>) -> Result<(), String> {
        let Some(value) = value else {
            if self.find(name).is_some() {
                self.retain(|e, _| e.name.as_bytes() != name, |_| {});
            }
            return Ok(());
        };
        let mut ring = vec![[0; 2]; self.buckets];
        let e = Keyed::decode(name, value, &mut ring)?;
        let id = match self.find(name) {
            Some(id) => id,
            None => self.push(Keyed::new(name, 0)),
        };
        let (slot, slot_ring) = self.get_mut(id);
        *slot = e;
        slot_ring.copy_from_slice(&ring);
        Ok(())
    }

    /// Keeps the entries `keep` says so; `removed` sees the others' names.
    fn retain(
        &mut self,
        mut keep: impl FnMut(&Keyed, &Ring) -> bool,
        mut removed: impl FnMut(&Name),
    ) {
        let n = self.buckets;
        let mut kept = 0;
        for i in 0..self.entries.len() {
            if keep(&self.entries[i], &self.rings[i * n..][..n]) {
                if kept != i {
                    self.entries.swap(kept, i);
                    self.rings.copy_within(i * n..(i + 1) * n, kept * n);
                }
                kept += 1;
            } else {
                removed(&self.entries[i].name);
            }
        }
        if kept != self.entries.len() {
            self.entries.truncate(kept);
            self.rings.truncate(kept * n);
            self.index.clear();
            for id in 0..kept as u32 {
                self.index_entry(id);
            }
        }
    }
}

/// What `inspect` found for `decided`: the relay's GCRA state before a check that let
/// the message through (given back when it is blocked), and the entries of its keys.
#[derive(Debug, Clone, Copy, Default)]
struct Inspected {
    tat_before: Option<u64>,
    ids: [Option<u32>; 3],
}

#[derive(Debug)]
struct Part {
    clock: PartitionClock,
    clock_dirty: bool,
    /// Keyed state per kind (relay, reseller, first-sender code).
    tables: [Table; 3],
    dirty: Vec<(u8, Name)>,
    next_sweep: u32,
    /// The event just inspected (`None`: stale, not counted).
    inspected: Option<Inspected>,
}

fn kind_index(kind: u8) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
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

    /// Entry `id` of table `kind` and its ring, marked for the changelog.
    fn touch(&mut self, kind: usize, id: u32) -> (&mut Keyed, &mut Ring) {
        let (e, ring) = self.tables[kind].get_mut(id);
        if !e.dirty {
            e.dirty = true;
            self.dirty.push((KINDS[kind], e.name.clone()));
        }
        (e, ring)
    }

    /// The entry of `name` of table `kind`, made when absent and the table has room.
    fn find_or_insert(
        &mut self,
        cfg: &ThrottleConfig,
        stats: &ThrottleStats,
        kind: usize,
        name: &[u8],
        now_b: u32,
    ) -> Option<u32> {
        let id = self.tables[kind].find_or_insert(name, cfg.max_keys, now_b);
        if id.is_none() {
            stats.table_full.fetch_add(1, Relaxed);
        }
        id
    }
}

/// Shared, immutable part.
#[derive(Debug)]
struct Shared {
    cfg: ThrottleConfig,
    quotas: Vec<Quota>,
    /// The bucket width in seconds as a divisor.
    per_bucket: Divisor,
    hash: String,
    stats: Arc<ThrottleStats>,
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
                per_bucket: Divisor::new(bucket_secs(&cfg)),
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

impl Shared {
    /// The spam-ratio bucket of event time `ms`: buckets are whole seconds wide, so one
    /// constant division and one by multiplication ([`Divisor`]).
    fn bucket_of(&self, ms: u64) -> u32 {
        let secs = ms / 1000;
        match u32::try_from(secs) {
            Ok(s) => self.per_bucket.div(s),
            // After the year 2106.
            Err(_) => (secs / u64::from(bucket_secs(&self.cfg))) as u32,
        }
    }
}

/// Width of a spam-ratio bucket in seconds.
fn bucket_secs(cfg: &ThrottleConfig) -> u32 {
    (cfg.window_secs / cfg.buckets.max(1)).max(1)
}

fn aligned_next(now_b: u32, every: u32) -> u32 {
    (now_b / every + 1) * every
}

impl Part {
    /// Forgets keys with nothing in the window and no pending quota debt (tombstones).
    fn sweep(&mut self, now_b: u32) {
        let p = self;
        let now_ns = p.clock.watermark_ms().unwrap_or(0).max(0) as u64 * 1_000_000;
        let dirty = &mut p.dirty;
        for (i, table) in p.tables.iter_mut().enumerate() {
            let per_n = table.per_n;
            table.retain(
                |e, ring| e.ratio.totals_at(ring, per_n, now_b)[0] > 0 || e.tat > now_ns,
                |name| dirty.push((KINDS[i], name.clone())),
            );
        }
    }
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
        match p.clock.observe(
            ctx.event_time_ms,
            i64::from(cfg.max_future_secs) * 1000,
            i64::from(cfg.window_secs) * 1000,
        ) {
            Observed::Stale => {
                sh.stats.stale.fetch_add(1, Relaxed);
                return;
            }
            Observed::At { .. } => {}
        }
        p.clock_dirty = true;
        let now_ms = p.clock.watermark_ms().unwrap_or(ctx.event_time_ms).max(0) as u64;
        let now_b = sh.bucket_of(now_ms);
        let mut found = Inspected::default();
        if now_b >= p.next_sweep {
            p.next_sweep = aligned_next(now_b, cfg.buckets);
            p.sweep(now_b);
        }
        let Some(relay) = &ctx.event.relay else {
            p.inspected = Some(found);
            return;
        };
        // The reseller and the first-sender code first (read-only: only a change of
        // state marks a key for the changelog), their ratio rings prefetched: those
        // cache misses then overlap the relay's quota work.
        for (kind, name) in [(1, &relay.reseller), (2, &relay.first_sender_code)] {
            if let Some(name) = name {
                found.ids[kind] = p.tables[kind].find(name.as_bytes());
                if let Some(id) = found.ids[kind] {
                    p.tables[kind].prefetch_ring(id);
                }
            }
        }
        // A replayed event took its quota when it was first judged (`EventCtx::counted`).
        if let Some(op) = relay.operator.as_deref().filter(|_| !ctx.counted) {
            found.ids[0] = p.find_or_insert(cfg, &sh.stats, 0, op.as_bytes(), now_b);
            if let Some(id) = found.ids[0] {
                let per_n = p.tables[0].per_n;
                let (e, ring) = p.touch(0, id);
                let ratio = e
                    .ratio
                    .value_at(ring, per_n, now_b, cfg.min_messages)
                    .unwrap_or(0.0);
                let target = cfg
                    .steps
                    .iter()
                    .rposition(|s| ratio >= s.spam_ratio)
                    .unwrap_or(0);
                let cur = usize::from(e.step);
                let relax = target < cur && ratio < cfg.steps[cur].spam_ratio - cfg.relax_margin;
                if target > cur || relax {
                    e.step = target as u8;
                    sh.stats.step_changes.fetch_add(1, Relaxed);
                }
                let step = usize::from(e.step);
                let before = e.tat;
                match check(sh.quotas[step], &mut e.tat, now_ms * 1_000_000) {
                    Ok(()) => found.tat_before = Some(before),
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
        }
        for (kind, rs, code) in [
            (1, &cfg.reseller, "throttle.reseller_spam_ratio"),
            (
                2,
                &cfg.first_sender_code,
                "throttle.first_sender_code_spam_ratio",
            ),
        ] {
            let table = &p.tables[kind];
            let Some(id) = found.ids[kind] else { continue };
            if rs.score == 0 {
                continue;
            }
            if let Some(r) = table.entries[id as usize]
                .ratio
                .value_at(table.ring(id), table.per_n, now_b, rs.min_messages)
                .filter(|r| *r > rs.above)
            {
                out.push(Signal {
                    evidence: Some(format!("spam ratio {r:.2} over {}s", cfg.window_secs)),
                    ..Signal::new("throttle", code, "relay", rs.score)
                });
            }
        }
        p.inspected = Some(found);
    }

    fn decided(&mut self, ctx: &EventCtx<'_>, verdict: &Verdict) {
        let sh = &*self.shared;
        let cfg = &sh.cfg;
        let Some(p) = self.parts.get_mut(&ctx.partition) else {
            return;
        };
        let Some(found) = p.inspected.take() else {
            return; // stale
        };
        if ctx.counted {
            return; // already in the spam ratios
        }
        let Some(relay) = &ctx.event.relay else {
            return;
        };
        if verdict.action == Action::Throttle {
            return;
        }
        let blocked = verdict.action == Action::Block;
        let now_ms = p.clock.watermark_ms().unwrap_or(0).max(0) as u64;
        let now_b = sh.bucket_of(now_ms);
        let names = [
            relay.operator.as_deref(),
            relay.reseller.as_deref(),
            relay.first_sender_code.as_deref(),
        ];
        for (kind, name) in names.into_iter().enumerate() {
            let Some(name) = name else { continue };
            let id = match found.ids[kind] {
                Some(id) => Some(id),
                None => p.find_or_insert(cfg, &sh.stats, kind, name.as_bytes(), now_b),
            };
            let Some(id) = id else { continue };
            let per_n = p.tables[kind].per_n;
            let (e, ring) = p.touch(kind, id);
            e.ratio.add(ring, per_n, now_b, blocked);
            if kind == 0 && blocked {
                if let Some(tat) = found.tat_before {
                    e.tat = tat;
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
        let every = buckets;
        let p = self
            .parts
            .entry(partition)
            .or_insert_with(|| Part::new(buckets));
        match key {
            [CLOCK_KEY] => {
                p.clock = PartitionClock::decode(value).map_err(err)?;
                let wm = p.clock.watermark_ms().unwrap_or(0);
                p.next_sweep = aligned_next(self.shared.bucket_of(wm.max(0) as u64), every);
            }
            [kind @ (RELAY | RESELLER | CODE), name @ ..] => {
                std::str::from_utf8(name).map_err(|e| err(e.to_string()))?;
                p.tables[kind_index(*kind)]
                    .restore(name, value)
                    .map_err(err)?;
            }
            _ => return Err(err("unknown key".into())),
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
            |(kind, name)| [&[*kind], name.as_bytes()].concat(),
            |(kind, name)| {
                let table = &mut tables[kind_index(*kind)];
                match table.find(name.as_bytes()).map(|id| table.get_mut(id)) {
                    Some((e, ring)) if e.dirty => {
                        e.dirty = false;
                        let mut v = Vec::with_capacity(96);
                        e.encode(ring, &mut v);
                        Some(Some(v))
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
    use proptest::prelude::*;

    proptest! {
        /// The ring (slots found by remainder, wrapping by hand) against a count of
        /// every message kept: the window at bucket `b` holds buckets `b - n + 1 ..= b`.
        #[test]
        fn the_ratio_ring_counts_the_window(
            n in 1u32..13,
            start in 0u32..100_000,
            msgs in proptest::collection::vec((0u32..30, any::<bool>(), 0u32..30), 1..60),
        ) {
            let mut ring = vec![[0u32; 2]; n as usize];
            let per_n = Divisor::new(n);
            let mut r = Ratio::new(start);
            let mut kept: Vec<(u32, bool)> = Vec::new();
            let mut b = start;
            for (step, blocked, ahead) in msgs {
                b += step;
                r.add(&mut ring, per_n, b, blocked);
                kept.push((b, blocked));
                let at = b + ahead;
                let count = |at: u32| {
                    let inside = kept.iter().filter(|(k, _)| k + n > at);
                    let blocked = inside.clone().filter(|(_, x)| *x).count() as u32;
                    [inside.count() as u32, blocked]
                };
                prop_assert_eq!(r.totals, count(b));
                prop_assert_eq!(r.totals_at(&ring, per_n, at), count(at));
            }
        }
    }

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

    #[test]
    fn ratio_slides_by_bucket() {
        let mut ring = [[0; 2]; 10];
        let n = Divisor::new(10);
        let mut r = Ratio::new(100);
        for i in 0..10 {
            r.add(&mut ring, n, 100, i < 3);
        }
        assert_eq!(r.value_at(&ring, n, 100, 1), Some(0.3));
        assert_eq!(r.value_at(&ring, n, 100, 11), None);
        r.add(&mut ring, n, 109, false);
        assert_eq!(r.totals, [11, 3]);
        assert_eq!(r.totals_at(&ring, n, 110), [1, 0]);
        r.advance(&mut ring, n, 110);
        assert_eq!(r.totals, [1, 0], "bucket 100 left the window");
        let mut buf = Vec::new();
        r.encode(&ring, &mut buf);
        let mut b = &buf[..];
        let mut back = [[0; 2]; 10];
        assert_eq!(Ratio::decode(&mut b, &mut back).unwrap(), r);
        assert_eq!(back, ring);
        let mut b = &buf[..];
        assert!(Ratio::decode(&mut b, &mut [[0; 2]; 12])
            .unwrap_err()
            .contains("configuration"));
        // Garbage counts that do not add up are refused, never wrapped or a panic.
        let mut garbage = Vec::new();
        Ratio::new(5).encode(&[[u32::MAX, 0], [1, 0]], &mut garbage);
        assert!(Ratio::decode(&mut &garbage[..], &mut [[0; 2]; 2])
            .unwrap_err()
            .contains("overflow"));
    }
}
