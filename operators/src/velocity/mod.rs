//! The velocity operator (stateful): per-sender event-time windows and campaigns.
//!
//! - [`sender`]: one sender's windows (sparse for typical senders, dense and bounded for
//!   heavy ones) and their exact semantics.
//! - [`campaign`]: one masked text from many senders (snowshoe spam from SIM farms).
//! - [`fingerprint`](mod@fingerprint): masked content fingerprints and stable address keys.
//!
//! Input is keyed by sender, so a sender's whole state is in one partition and one
//! worker owns it: each partition's senders are in a `HashMap` owned by the worker
//! thread, with no locking (the state bench compares it with a `DashMap`).
//!
//! Time is the partition's event-time clock ([`crate::eventtime`]). Per event:
//! 1. the clock observes `submitted_at`: an event more than `max_future_secs` ahead is
//!    taken at the clock + `max_future_secs`; one older than the horizon (longest window
//!    plus allowed lateness) behind the clock is *stale* and not applied;
//! 2. the sender's state records it: within `allowed_lateness_secs` of the sender's own
//!    watermark into its own bucket, later than that at the sender's watermark (a late
//!    flood is never lost from the counts);
//! 3. every rule whose scope fits (person-to-person or bulk) compares its metric over its
//!    window with its threshold, and the campaign table counts distinct senders of the
//!    masked text. Traffic that no rule and no campaign check covers (by default bulk
//!    traffic: relay operators are the throttle operator's) is not tracked at all, and the
//!    text is fingerprinted only when a repeated-content rule or the campaign check needs
//!    it.
//!
//! State goes to the changelog once per key per commit interval: senders (`s` + key),
//! campaigns (`c` + fingerprint) and the clock (`w`). Senders idle for longer than the
//! horizon plus lateness are evicted (tombstones), in a sweep every `sweep_every_secs`
//! of event time. Eviction never changes a verdict: an evicted sender's state would have
//! been entirely outside every window by the time its next non-stale event arrives.

pub mod campaign;
pub mod fingerprint;
pub mod sender;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use foldhash::fast::FixedState;
use serde::{Deserialize, Serialize};

use crate::eventtime::{secs, Observed, PartitionClock, CLOCK_KEY};
use crate::operator::drain_dirty;
use crate::{
    ActionHint, ConfigProblem, EventCtx, Signal, StateError, StateUpdate, StatefulOperator,
};
use campaign::{Campaign, CampaignTable, Seen};
use fingerprint::{address_key, fingerprint, fold32, Fingerprint};
use sender::{Counts, Layout, Sender};

/// Most windows a configuration may have.
pub const MAX_WINDOWS: usize = 8;

/// One window: `buckets` buckets of `bucket_secs` (the window slides by one bucket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Name rules refer to, e.g. `1m`.
    pub name: String,
    /// Bucket width in seconds.
    pub bucket_secs: u32,
    /// Buckets in the window (length = bucket_secs * buckets).
    pub buckets: u32,
}

/// What a rule measures over its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Messages sent.
    Sent,
    /// Distinct recipients.
    DistinctRecipients,
    /// Share (0..=1) of messages to first-contact recipients.
    FirstContactShare,
    /// Messages repeating one of the sender's recent (masked) contents.
    RepeatedContent,
}

impl Metric {
    fn name(self) -> &'static str {
        match self {
            Metric::Sent => "sent",
            Metric::DistinctRecipients => "distinct_recipients",
            Metric::FirstContactShare => "first_contact_share",
            Metric::RepeatedContent => "repeated_content",
        }
    }

    fn value(self, c: &Counts) -> f64 {
        match self {
            Metric::Sent => f64::from(c.sent),
            Metric::DistinctRecipients => f64::from(c.distinct_recipients),
            Metric::FirstContactShare if c.sent == 0 => 0.0,
            Metric::FirstContactShare => f64::from(c.first_contact) / f64::from(c.sent),
            Metric::RepeatedContent => f64::from(c.repeated),
        }
    }
}

/// Which senders a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Person-to-person traffic (no `relay.operator`): subscriber lines.
    Person,
    /// Bulk traffic through a relay operator.
    Bulk,
    /// Both.
    All,
}

impl Scope {
    fn covers(self, bulk: bool) -> bool {
        match self {
            Scope::Person => !bulk,
            Scope::Bulk => bulk,
            Scope::All => true,
        }
    }
}

/// What a rule that fires asks of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Adds its score.
    Score,
    /// Deliver with a label at least.
    Label,
    /// Throttle until the window frees a message (`retry_after_ms`).
    Throttle,
    /// Block.
    Block,
}

/// One velocity rule: fires when `metric` over `window` is above `above`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VelocityRule {
    /// Reason code, e.g. `velocity.daily_cap`.
    pub code: String,
    /// Window name.
    pub window: String,
    /// What is measured.
    pub metric: Metric,
    /// Fires when the metric is strictly above this (a count, or a share 0..=1).
    pub above: f64,
    /// Only when the window holds at least this many messages (for shares).
    #[serde(default)]
    pub min_messages: u32,
    /// Score contribution 0..=100.
    pub score: u8,
    /// What it asks of the policy.
    pub action: RuleAction,
    /// Which senders it applies to.
    pub applies_to: Scope,
}

/// `[velocity.campaign]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignConfig {
    /// Detect campaigns.
    pub enabled: bool,
    /// Window in seconds.
    pub window_secs: u32,
    /// Distinct senders of one masked text within the window, per partition, that make
    /// a campaign (see docs/velocity.md for choosing it from the partition count).
    pub min_senders: u32,
    /// Letters (after masking) a text needs to be tracked.
    pub min_letters: u32,
    /// Track only texts with a URL or a phone number.
    pub require_contact: bool,
    /// Which traffic: `person` (default) is what SIM farms and rotating caller numbers
    /// send; registered bulk senders legitimately send one notice from many numbers and
    /// are covered by the registry and the relay throttle.
    pub applies_to: Scope,
    /// Score of `campaign.same_text_many_senders`.
    pub score: u8,
    /// Fingerprints tracked per partition.
    pub max_fingerprints: usize,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        CampaignConfig {
            enabled: true,
            window_secs: 600,
            min_senders: 5,
            min_letters: 12,
            require_contact: true,
            applies_to: Scope::Person,
            score: 50,
            max_fingerprints: 200_000,
        }
    }
}

/// `[velocity]` configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VelocityConfig {
    /// Run the velocity operator.
    pub enabled: bool,
    /// Windows, e.g. 1 min, 1 h, 24 h.
    pub windows: Vec<WindowConfig>,
    /// How far behind a sender's latest event an event may be and still go into its own
    /// bucket; later ones count at the sender's latest time.
    pub allowed_lateness_secs: u32,
    /// How far ahead of the partition clock an event may be; later ones are taken at the
    /// clock plus this.
    pub max_future_secs: u32,
    /// Recipients remembered per heavy sender (distinct counts saturate here).
    pub max_recipients: usize,
    /// Event-time period of the idle-sender sweep. A sweep visits every sender of the
    /// partition, so its cost per event is senders / (events per second x period); idle
    /// senders stay up to one period past the horizon (10 minutes on 24 hours: under 1 %
    /// more memory).
    pub sweep_every_secs: u32,
    /// The rules.
    pub rules: Vec<VelocityRule>,
    /// Campaign detection.
    pub campaign: CampaignConfig,
}

impl Default for VelocityConfig {
    fn default() -> Self {
        let window = |name: &str, bucket_secs, buckets| WindowConfig {
            name: name.into(),
            bucket_secs,
            buckets,
        };
        VelocityConfig {
            enabled: true,
            windows: vec![
                window("1m", 10, 6),
                window("1h", 300, 12),
                window("24h", 3_600, 24),
            ],
            allowed_lateness_secs: 300,
            max_future_secs: 300,
            max_recipients: 32,
            sweep_every_secs: 600,
            rules: vec![
                VelocityRule {
                    // 1일 500건: a subscriber line may send at most 500 messages a day.
                    code: "velocity.daily_cap".into(),
                    window: "24h".into(),
                    metric: Metric::Sent,
                    above: 500.0,
                    min_messages: 0,
                    score: 30,
                    action: RuleAction::Throttle,
                    applies_to: Scope::Person,
                },
                VelocityRule {
                    code: "velocity.recipient_burst".into(),
                    window: "1m".into(),
                    metric: Metric::DistinctRecipients,
                    above: 20.0,
                    min_messages: 0,
                    score: 50,
                    action: RuleAction::Score,
                    applies_to: Scope::Person,
                },
                VelocityRule {
                    code: "velocity.first_contact_spray".into(),
                    window: "1h".into(),
                    metric: Metric::FirstContactShare,
                    above: 0.9,
                    min_messages: 30,
                    score: 40,
                    action: RuleAction::Score,
                    applies_to: Scope::Person,
                },
                VelocityRule {
                    code: "velocity.repeated_content".into(),
                    window: "1h".into(),
                    metric: Metric::RepeatedContent,
                    above: 20.0,
                    min_messages: 0,
                    score: 30,
                    action: RuleAction::Score,
                    applies_to: Scope::Person,
                },
            ],
            campaign: CampaignConfig::default(),
        }
    }
}

impl VelocityConfig {
    /// Every problem at once, as (key under `[velocity]`, reason).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errs = Vec::new();
        if self.windows.is_empty() || self.windows.len() > MAX_WINDOWS {
            errs.push(ConfigProblem::new(
                "windows",
                format!(
                    "{} windows; 1 to {MAX_WINDOWS} are allowed",
                    self.windows.len()
                ),
            ));
        }
        for (i, w) in self.windows.iter().enumerate() {
            if w.bucket_secs == 0 || w.buckets == 0 || w.buckets > 1_000 {
                errs.push(ConfigProblem::new(
                    format!("windows[{i}]"),
                    "bucket_secs must be positive and buckets 1..=1000",
                ));
            }
            if self.windows[..i].iter().any(|o| o.name == w.name) {
                errs.push(ConfigProblem::new(
                    format!("windows[{i}].name"),
                    format!("{:?} is defined twice", w.name),
                ));
            }
        }
        if !(crate::velocity::sender::SPARSE..=255).contains(&self.max_recipients) {
            errs.push(ConfigProblem::new(
                "max_recipients",
                format!("must be {}..=255", crate::velocity::sender::SPARSE),
            ));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let at = |k: &str| format!("rules[{i}].{k}");
            if !self.windows.iter().any(|w| w.name == r.window) {
                errs.push(ConfigProblem::new(
                    at("window"),
                    format!("no window named {:?}", r.window),
                ));
            }
            if r.score > 100 {
                errs.push(ConfigProblem::new(
                    at("score"),
                    format!("{} is above 100", r.score),
                ));
            }
            if !r.above.is_finite() || r.above < 0.0 {
                errs.push(ConfigProblem::new(
                    at("above"),
                    "must be a non-negative number",
                ));
            }
            if r.metric == Metric::FirstContactShare && r.above >= 1.0 {
                errs.push(ConfigProblem::new(at("above"), "a share is below 1"));
            }
            if r.metric == Metric::DistinctRecipients && r.above >= self.max_recipients as f64 {
                errs.push(ConfigProblem::new(
                    at("above"),
                    format!(
                        "distinct recipients saturate at max_recipients = {}",
                        self.max_recipients
                    ),
                ));
            }
            if r.code.is_empty() {
                errs.push(ConfigProblem::new(at("code"), "must not be empty"));
            }
        }
        let c = &self.campaign;
        if c.enabled {
            if c.window_secs == 0 {
                errs.push(ConfigProblem::new(
                    "campaign.window_secs",
                    "must be positive",
                ));
            }
            if !(2..=255).contains(&c.min_senders) {
                errs.push(ConfigProblem::new(
                    "campaign.min_senders",
                    "must be 2..=255",
                ));
            }
            if c.score > 100 {
                errs.push(ConfigProblem::new(
                    "campaign.score",
                    format!("{} is above 100", c.score),
                ));
            }
            if c.max_fingerprints == 0 {
                errs.push(ConfigProblem::new(
                    "campaign.max_fingerprints",
                    "must be positive",
                ));
            }
        }
        if self.sweep_every_secs == 0 {
            errs.push(ConfigProblem::new("sweep_every_secs", "must be positive"));
        }
        errs
    }

    /// Content hash (part of `rules_version`).
    pub fn content_hash(&self) -> String {
        crate::operator::config_hash(self)
    }
}

/// Counters of the velocity operators of one pipeline (shared by all workers; touched
/// only by rare events and by the sweep, never once per message).
#[derive(Debug, Default)]
pub struct VelocityStats {
    /// Events more than the allowed lateness behind their sender, counted at its watermark.
    pub late: AtomicU64,
    /// Events too far ahead of the partition clock, taken at the clock's limit.
    pub future: AtomicU64,
    /// Events beyond the horizon behind the partition clock, not applied to state.
    pub stale: AtomicU64,
    /// Idle senders evicted.
    pub evicted: AtomicU64,
    /// Messages not tracked for campaigns because the table was full.
    pub campaign_table_full: AtomicU64,
    /// Senders kept, summed over partitions, as of the last sweep of each.
    pub senders: AtomicU64,
}

#[derive(Debug, Clone)]
struct CompiledRule {
    rule: VelocityRule,
    /// `rule.code`, leaked once per factory (a handful of bytes per configuration) so
    /// that a firing rule's signal borrows it instead of allocating.
    code: &'static str,
    window: usize,
    hint: ActionHint,
}

/// Which traffic something applies to.
#[derive(Debug, Clone, Copy)]
struct Coverage {
    /// Person-to-person traffic.
    person: bool,
    /// Bulk traffic (through a relay operator).
    bulk: bool,
}

impl Coverage {
    fn covers(self, bulk: bool) -> bool {
        if bulk {
            self.bulk
        } else {
            self.person
        }
    }
}

/// Shared, immutable part of the operator.
#[derive(Debug)]
struct Shared {
    cfg: VelocityConfig,
    /// The traffic some rule or the campaign check covers; traffic no rule looks at is
    /// not tracked at all.
    tracked: Coverage,
    /// The traffic that needs the content fingerprint (a repeated-content rule or the
    /// campaign check covers it).
    fingerprinted: Coverage,
    layout: Layout,
    /// Whether some rule reads distinct recipients over window `i` (the only number of a
    /// window that takes a pass over the recipient table).
    recipients: [bool; MAX_WINDOWS],
    rules: Vec<CompiledRule>,
    hash: String,
    stats: Arc<VelocityStats>,
}

/// One partition's state.
#[derive(Debug, Default)]
struct Part {
    clock: PartitionClock,
    clock_dirty: bool,
    senders: HashMap<u64, Sender, FixedState>,
    dirty: Vec<u64>,
    campaigns: CampaignTable,
    next_sweep: u32,
    /// Senders counted in `VelocityStats::senders` for this partition.
    reported: u64,
}

/// The velocity operator of one worker.
#[derive(Debug)]
pub struct VelocityOperator {
    shared: Arc<Shared>,
    parts: HashMap<i32, Part, FixedState>,
}

/// Builds velocity operators for the workers of one pipeline.
#[derive(Debug, Clone)]
pub struct VelocityFactory {
    shared: Arc<Shared>,
}

impl VelocityFactory {
    /// A factory for `cfg` (validated by the caller).
    pub fn new(cfg: VelocityConfig, stats: Arc<VelocityStats>) -> Self {
        let windows: Vec<(u32, u32)> = cfg
            .windows
            .iter()
            .map(|w| (w.bucket_secs, w.buckets))
            .collect();
        let layout = Layout::new(&windows, cfg.max_recipients, cfg.allowed_lateness_secs);
        let rules: Vec<CompiledRule> = cfg
            .rules
            .iter()
            .map(|r| CompiledRule {
                window: cfg
                    .windows
                    .iter()
                    .position(|w| w.name == r.window)
                    .unwrap_or(0),
                hint: match r.action {
                    RuleAction::Score => ActionHint::Score,
                    RuleAction::Label => ActionHint::Label,
                    RuleAction::Throttle => ActionHint::Throttle,
                    RuleAction::Block => ActionHint::Block,
                },
                code: Box::leak(r.code.clone().into_boxed_str()),
                rule: r.clone(),
            })
            .collect();
        let covers = |bulk: bool, content_only: bool| {
            cfg.rules.iter().any(|r| {
                r.applies_to.covers(bulk) && (!content_only || r.metric == Metric::RepeatedContent)
            }) || (cfg.campaign.enabled && cfg.campaign.applies_to.covers(bulk))
        };
        let mut recipients = [false; MAX_WINDOWS];
        for r in &rules {
            recipients[r.window] |= r.rule.metric == Metric::DistinctRecipients;
        }
        VelocityFactory {
            shared: Arc::new(Shared {
                recipients,
                tracked: Coverage {
                    person: covers(false, false),
                    bulk: covers(true, false),
                },
                fingerprinted: Coverage {
                    person: covers(false, true),
                    bulk: covers(true, true),
                },
                hash: cfg.content_hash(),
                cfg,
                layout,
                rules,
                stats,
            }),
        }
    }

    /// The operator for one worker.
    pub fn build(&self) -> VelocityOperator {
        VelocityOperator {
            shared: self.shared.clone(),
            parts: HashMap::default(),
        }
    }
}

/// Appends `n` in decimal.
fn push_number(s: &mut String, n: u64) {
    s.push_str(itoa::Buffer::new().format(n));
}

fn next_sweep(now: u32, every: u32) -> u32 {
    (now / every.max(1))
        .saturating_add(1)
        .saturating_mul(every.max(1))
}

const SENDER: u8 = b's';
const CAMPAIGN: u8 = b'c';

fn state_key(kind: u8, k: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(kind);
    v.extend_from_slice(&k.to_be_bytes());
    v
}

/// Memory held by one worker's velocity state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Senders kept.
    pub senders: usize,
    /// Of which dense.
    pub dense: usize,
    /// Bytes: map tables at their capacity plus dense senders' heap.
    pub bytes: usize,
}

impl VelocityOperator {
    /// Memory of the sender tables (campaign tables not included).
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint::default();
        for p in self.parts.values() {
            f.senders += p.senders.len();
            // hashbrown's layout: a control byte per bucket beside each (key, sender).
            f.bytes += p.senders.capacity() * (std::mem::size_of::<(u64, Sender)>() + 1);
            for s in p.senders.values() {
                f.dense += usize::from(s.is_dense());
                f.bytes += s.heap_bytes();
            }
        }
        f
    }

    fn sweep(shared: &Shared, p: &mut Part, now: u32) {
        let layout = &shared.layout;
        let before = p.senders.len();
        let dirty = &mut p.dirty;
        p.senders.retain(|k, s| {
            let keep = !s.idle(layout, now);
            if !keep {
                dirty.push(*k);
            }
            keep
        });
        if p.senders.len() * 4 < p.senders.capacity() {
            p.senders.shrink_to_fit();
        }
        let evicted = (before - p.senders.len()) as u64;
        if evicted > 0 {
            shared.stats.evicted.fetch_add(evicted, Relaxed);
        }
        if shared.cfg.campaign.enabled {
            p.campaigns.sweep(now, shared.cfg.campaign.window_secs);
        }
        let n = p.senders.len() as u64;
        shared.stats.senders.fetch_add(n, Relaxed);
        shared.stats.senders.fetch_sub(p.reported, Relaxed);
        p.reported = n;
    }
}

impl StatefulOperator for VelocityOperator {
    fn name(&self) -> &'static str {
        "velocity"
    }

    fn content_hash(&self) -> String {
        self.shared.hash.clone()
    }

    fn inspect(&mut self, ctx: &EventCtx<'_>, out: &mut Vec<Signal>) {
        let sh = &*self.shared;
        let cfg = &sh.cfg;
        let layout = &sh.layout;
        let p = self.parts.entry(ctx.partition).or_default();
        let horizon_ms = i64::from(layout.horizon_s + layout.lateness_s) * 1000;
        let time_ms = match p.clock.observe(
            ctx.event_time_ms,
            i64::from(cfg.max_future_secs) * 1000,
            horizon_ms,
        ) {
            Observed::Stale => {
                sh.stats.stale.fetch_add(1, Relaxed);
                return;
            }
            Observed::At { time_ms, future } => {
                if future {
                    sh.stats.future.fetch_add(1, Relaxed);
                }
                time_ms
            }
        };
        p.clock_dirty = true;
        let now = secs(p.clock.watermark_ms().unwrap_or(time_ms));
        if now >= p.next_sweep {
            Self::sweep(sh, p, now);
            // Aligned to the clock, so that a restored partition sweeps when an
            // uninterrupted one would.
            p.next_sweep = next_sweep(now, cfg.sweep_every_secs);
        }
        let ev = ctx.event;
        let bulk = ev.relay_operator().is_some();
        if !sh.tracked.covers(bulk) {
            return;
        }
        let t = secs(time_ms);
        let key = ctx.sender.state_key;
        let mut new = false;
        let s = p.senders.entry(key).or_insert_with(|| {
            new = true;
            Sender::new(t)
        });
        let recipient = fold32(address_key(&ev.recipient));
        let fp = if sh.fingerprinted.covers(bulk) {
            fingerprint(&ev.text)
        } else {
            Fingerprint::NONE
        };
        let cc = &cfg.campaign;
        let campaign = (cc.enabled
            && cc.applies_to.covers(bulk)
            && fp.letters >= cc.min_letters
            && (fp.contact || !cc.require_contact))
            .then(|| {
                p.campaigns.observe(
                    fp.hash,
                    fold32(key),
                    now,
                    cc.window_secs,
                    cc.min_senders,
                    cc.max_fingerprints,
                )
            });
        // A replayed event is already in the sender's counts (see `EventCtx::counted`).
        if !ctx.counted {
            if new || !s.dirty() {
                p.dirty.push(key);
            }
            let (_, late) = s.record(layout, t, recipient, fold32(fp.hash));
            if late {
                sh.stats.late.fetch_add(1, Relaxed);
            }
        }
        let mut counts: [Option<Counts>; MAX_WINDOWS] = [None; MAX_WINDOWS];
        for r in &sh.rules {
            let rule = &r.rule;
            if !rule.applies_to.covers(bulk) {
                continue;
            }
            let c = *counts[r.window]
                .get_or_insert_with(|| s.window(layout, r.window, sh.recipients[r.window]));
            let value = rule.metric.value(&c);
            if c.sent < rule.min_messages || value <= rule.above {
                continue;
            }
            let window = &cfg.windows[r.window].name;
            // Whole numbers (a share as its two counts), written without the formatting
            // machinery, which cost more than the rest of the operator on a busy sender.
            let mut evidence = String::with_capacity(40);
            evidence.push_str(rule.metric.name());
            evidence.push('=');
            if rule.metric == Metric::FirstContactShare {
                push_number(&mut evidence, u64::from(c.first_contact));
                evidence.push('/');
                push_number(&mut evidence, u64::from(c.sent));
            } else {
                push_number(&mut evidence, value as u64);
            }
            evidence.push_str(" in ");
            evidence.push_str(window);
            out.push(Signal {
                hint: r.hint,
                retry_after_ms: (r.hint == ActionHint::Throttle)
                    .then(|| u64::from(s.frees_in(layout, r.window).max(1)) * 1000),
                evidence: Some(evidence),
                ..Signal::new("velocity", r.code, "velocity", rule.score)
            });
        }
        if let Some(seen) = campaign {
            match seen {
                Seen::Senders(n) if n >= cc.min_senders => out.push(Signal {
                    evidence: Some({
                        let mut e = String::with_capacity(56);
                        push_number(&mut e, u64::from(n));
                        e.push_str(" senders of one text in ");
                        push_number(&mut e, u64::from(cc.window_secs));
                        e.push_str("s (partition ");
                        push_number(&mut e, u64::from(ctx.partition.unsigned_abs()));
                        e.push(')');
                        e
                    }),
                    ..Signal::new(
                        "velocity",
                        "campaign.same_text_many_senders",
                        "campaign",
                        cc.score,
                    )
                }),
                Seen::Senders(_) => {}
                Seen::TableFull => {
                    sh.stats.campaign_table_full.fetch_add(1, Relaxed);
                }
            }
        }
    }

    fn assigned(&mut self, partition: i32) {
        // Also after an abort: the partition is rebuilt from the changelog.
        if let Some(old) = self.parts.insert(partition, Part::default()) {
            self.shared.stats.senders.fetch_sub(old.reported, Relaxed);
        }
    }

    fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let err = |detail: String| StateError::new("velocity", key, detail);
        let p = self.parts.entry(partition).or_default();
        match key {
            [CLOCK_KEY] => {
                p.clock = PartitionClock::decode(value).map_err(err)?;
                let wm = p.clock.watermark_ms().unwrap_or(0);
                p.next_sweep = next_sweep(secs(wm), self.shared.cfg.sweep_every_secs);
            }
            [kind @ (SENDER | CAMPAIGN), k @ ..] if k.len() == 8 => {
                let id = u64::from_be_bytes(k.try_into().unwrap_or_default());
                match (*kind, value) {
                    (SENDER, None) => {
                        p.senders.remove(&id);
                    }
                    (SENDER, Some(v)) => {
                        let s = Sender::decode(&self.shared.layout, v).map_err(err)?;
                        p.senders.insert(id, s);
                    }
                    (_, None) => {
                        p.campaigns.map.remove(&id);
                    }
                    (_, Some(v)) => {
                        p.campaigns
                            .map
                            .insert(id, Campaign::decode(v).map_err(err)?);
                    }
                }
            }
            _ => return Err(err("unknown key".into())),
        }
        Ok(())
    }

    fn revoked(&mut self, partition: i32) {
        if let Some(p) = self.parts.remove(&partition) {
            self.shared.stats.senders.fetch_sub(p.reported, Relaxed);
        }
    }

    fn snapshot(&mut self, partition: i32, out: &mut Vec<StateUpdate>) {
        let Some(p) = self.parts.get_mut(&partition) else {
            return;
        };
        let layout = &self.shared.layout;
        let senders = &mut p.senders;
        drain_dirty(
            &mut p.dirty,
            out,
            |k| state_key(SENDER, *k),
            |k| match senders.get_mut(k) {
                Some(s) if s.dirty() => {
                    s.set_dirty(false);
                    let mut v = Vec::with_capacity(64);
                    s.encode(layout, &mut v);
                    Some(Some(v))
                }
                Some(_) => None,
                None => Some(None),
            },
        );
        let c = &mut p.campaigns;
        let map = &mut c.map;
        drain_dirty(
            &mut c.dirty,
            out,
            |k| state_key(CAMPAIGN, *k),
            |k| match map.get_mut(k) {
                Some(e) if e.dirty => {
                    e.dirty = false;
                    let mut v = Vec::with_capacity(16);
                    e.encode(&mut v);
                    Some(Some(v))
                }
                Some(_) => None,
                None => Some(None),
            },
        );
        p.clock.snapshot(&mut p.clock_dirty, out);
    }
}
