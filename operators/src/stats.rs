//! Spam statistics per relay operator and reseller (stateful).
//!
//! For every hour of event time, each partition counts its messages by relay operator and
//! reseller: verdicts by action, and the labelled and blocked ones by category. The counts
//! are operator state like the velocity windows: written to the changelog in the same
//! transaction as the verdicts and offsets (so kept exactly once across kills and
//! rebalances), and restored from it. The runtime also writes every changed hour to the
//! compacted `spamflow.operator-stats` topic ([`spamflow_schemas::OperatorStats`]), which
//! `spamflow stats` reads.
//!
//! The clock is the partition's event-time watermark ([`crate::eventtime`]). An hour more
//! than `keep_hours` behind it is dropped from memory (its record stays on the stats
//! topic). An event more than `keep_hours` behind or ahead of the clock is counted as
//! `misdated` in the clock's hour: no message goes uncounted, no closed hour is rewritten
//! from zero, and no bad timestamp opens hours without end.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{TimeZone as _, Utc};
use serde::{Deserialize, Serialize};
use spamflow_schemas::{OperatorStats, StatsCounts, StatsRow, Verdict};

use crate::eventtime::{PartitionClock, CLOCK_KEY};
use crate::operator::{
    drain_dirty, ConfigProblem, EventCtx, StateError, StateUpdate, StatefulOperator,
};
use crate::origin::Registry;

/// Operator name (changelog prefix).
pub const NAME: &str = "stats";
const HOUR_MS: i64 = 3_600_000;
/// Relay-operator name for traffic without one.
pub const NO_OPERATOR: &str = "none";
/// Metric label for relay operators the registry does not name, and row name for those
/// beyond `max_rows_per_hour`.
pub const OTHER: &str = "other";
/// How far one event moves the partition's clock at most (`crate::eventtime`).
const MAX_FUTURE_MS: i64 = 5 * 60_000;

/// `[stats]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsConfig {
    /// Count messages per relay operator, reseller and hour.
    pub enabled: bool,
    /// Hours kept in memory behind the partition's event-time watermark; events further
    /// behind or ahead are counted as `misdated` in the watermark's hour.
    pub keep_hours: u32,
    /// Relay operator and reseller pairs per hour and partition; more are counted under
    /// `other` (input names them, so their number is bounded here).
    pub max_rows_per_hour: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            enabled: true,
            keep_hours: 48,
            max_rows_per_hour: 2_000,
        }
    }
}

impl StatsConfig {
    /// Every problem at once, as `(key, reason)`.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errs = Vec::new();
        if self.keep_hours == 0 || self.keep_hours > 24 * 31 {
            errs.push(ConfigProblem::new(
                "keep_hours",
                format!("{} is outside 1..=744", self.keep_hours),
            ));
        }
        if self.max_rows_per_hour == 0 {
            errs.push(ConfigProblem::new("max_rows_per_hour", "must be positive"));
        }
        errs
    }
}

/// Verdicts by relay operator for the metrics: the operators the sender registry names,
/// every other one as `other`, traffic without one as `none`.
#[derive(Debug, Default)]
pub struct StatsMetrics {
    by_operator: Mutex<BTreeMap<String, [u64; 4]>>,
    by_category: Mutex<BTreeMap<String, [u64; 4]>>,
}

/// Distinct categories the metrics name; later ones count as `other` (a rule pack
/// defines its categories, so a bad pack must not make the series unbounded).
pub const MAX_METRIC_CATEGORIES: usize = 64;

impl StatsMetrics {
    /// `(category, [allow, label, throttle, block])` of the verdicts with a reason,
    /// by the category of their first (strongest) reason, sorted.
    pub fn categories(&self) -> Vec<(String, [u64; 4])> {
        let m = self.by_category.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn add_categories(&self, deltas: &mut HashMap<String, [u64; 4]>) {
        if deltas.is_empty() {
            return;
        }
        let mut m = self.by_category.lock().unwrap_or_else(|e| e.into_inner());
        for (category, d) in deltas.drain() {
            let key = if m.contains_key(&category) || m.len() < MAX_METRIC_CATEGORIES {
                category
            } else {
                OTHER.to_owned()
            };
            let e = m.entry(key).or_default();
            for (a, b) in e.iter_mut().zip(d) {
                *a += b;
            }
        }
    }

    /// `(relay operator label, [allow, label, throttle, block])`, sorted.
    pub fn snapshot(&self) -> Vec<(String, [u64; 4])> {
        let m = self.by_operator.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    fn add(&self, deltas: &mut HashMap<String, (String, [u64; 4])>) {
        if deltas.is_empty() {
            return;
        }
        let mut m = self.by_operator.lock().unwrap_or_else(|e| e.into_inner());
        for (_, (label, d)) in deltas.drain() {
            let e = m.entry(label).or_default();
            for (a, b) in e.iter_mut().zip(d) {
                *a += b;
            }
        }
    }
}

/// Makes one [`StatsOperator`] per worker.
#[derive(Debug, Clone)]
pub struct StatsFactory {
    cfg: StatsConfig,
    registry: Arc<Registry>,
    metrics: Arc<StatsMetrics>,
}

impl StatsFactory {
    /// Counts with `cfg`, labelling metrics by the operators `registry` names.
    pub fn new(cfg: StatsConfig, registry: Arc<Registry>, metrics: Arc<StatsMetrics>) -> Self {
        StatsFactory {
            cfg,
            registry,
            metrics,
        }
    }

    /// One worker's operator.
    pub fn build(&self) -> StatsOperator {
        StatsOperator {
            cfg: self.cfg.clone(),
            registry: self.registry.clone(),
            metrics: self.metrics.clone(),
            partitions: HashMap::new(),
            deltas: HashMap::new(),
            category_deltas: HashMap::new(),
        }
    }
}

/// The counts of one hour: relay operator -> reseller -> counts, and how many rows that is.
#[derive(Debug, Default)]
struct Hour {
    operators: BTreeMap<String, BTreeMap<String, StatsCounts>>,
    rows: usize,
}

#[derive(Debug, Default)]
struct PartitionStats {
    clock: PartitionClock,
    clock_dirty: bool,
    hours: BTreeMap<i64, Hour>,
    dirty: Vec<i64>,
}

/// One worker's statistics of its partitions.
#[derive(Debug)]
pub struct StatsOperator {
    cfg: StatsConfig,
    registry: Arc<Registry>,
    metrics: Arc<StatsMetrics>,
    partitions: HashMap<i32, PartitionStats>,
    /// Relay operators seen since the last snapshot: their metric label and their
    /// verdicts by action.
    deltas: HashMap<String, (String, [u64; 4])>,
    /// Verdicts by their first reason's category since the last snapshot.
    category_deltas: HashMap<String, [u64; 4]>,
}

impl StatsOperator {
    /// Counts a verdict of relay operator `op` for the metrics.
    fn count_metric(&mut self, op: &str, action: usize) {
        match self.deltas.get_mut(op) {
            Some((_, counts)) => counts[action] += 1,
            None => {
                let label = if op == NO_OPERATOR || self.registry.knows_relay_operator(op) {
                    op
                } else {
                    OTHER
                };
                let mut counts = [0; 4];
                counts[action] = 1;
                self.deltas
                    .insert(op.to_owned(), (label.to_owned(), counts));
            }
        }
    }

    /// The record of `partition`'s hour starting at `hour_ms`, if it is kept.
    pub fn record(&self, partition: i32, hour_ms: i64) -> Option<OperatorStats> {
        let p = self.partitions.get(&partition)?;
        let hour = p.hours.get(&hour_ms)?;
        Some(record(partition, hour_ms, hour))
    }
}

/// Whether a changelog key of this operator is an hour's counts, not the partition clock.
fn is_hour_key(key: &[u8]) -> bool {
    key != [CLOCK_KEY]
}

fn record(partition: i32, hour_ms: i64, hour: &Hour) -> OperatorStats {
    let rows = hour
        .operators
        .iter()
        .flat_map(|(op, resellers)| {
            resellers.iter().map(move |(r, c)| StatsRow {
                relay_operator: op.clone(),
                reseller: r.clone(),
                counts: c.clone(),
            })
        })
        .collect();
    OperatorStats {
        schema_version: 1,
        hour: Utc
            .timestamp_millis_opt(hour_ms)
            .single()
            .unwrap_or_default(),
        partition,
        rows,
    }
}

impl StatefulOperator for StatsOperator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decided(&mut self, ctx: &EventCtx<'_>, verdict: &Verdict) {
        let op = ctx.event.relay_operator().unwrap_or(NO_OPERATOR);
        let reseller = ctx
            .event
            .relay
            .as_ref()
            .and_then(|r| r.reseller.as_deref())
            .unwrap_or("");
        let category = verdict.reasons.first().map(|r| &*r.category);
        self.count_metric(op, verdict.action.index());
        if let Some(c) = category {
            match self.category_deltas.get_mut(c) {
                Some(counts) => counts[verdict.action.index()] += 1,
                None => {
                    let mut counts = [0; 4];
                    counts[verdict.action.index()] = 1;
                    self.category_deltas.insert(c.to_owned(), counts);
                }
            }
        }
        if ctx.counted {
            return;
        }

        let max_rows = self.cfg.max_rows_per_hour;
        let p = self.partitions.entry(ctx.partition).or_default();
        // An event within keep_hours of the clock counts in its own hour and moves the
        // clock (at most MAX_FUTURE_MS per event); one further away counts in the clock's
        // hour, as misdated.
        let horizon = i64::from(self.cfg.keep_hours) * HOUR_MS;
        let (time_ms, misdated) = match p.clock.watermark_ms() {
            Some(wm) if ctx.event_time_ms.abs_diff(wm) > horizon.unsigned_abs() => (wm, true),
            _ => {
                p.clock.observe(ctx.event_time_ms, MAX_FUTURE_MS, horizon);
                (ctx.event_time_ms, false)
            }
        };
        p.clock_dirty = true;
        let hour_ms = time_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let hour = p.hours.entry(hour_ms).or_default();
        let known = hour
            .operators
            .get(op)
            .is_some_and(|r| r.contains_key(reseller));
        let (op, reseller) = if known || hour.rows < max_rows {
            (op, reseller)
        } else {
            (OTHER, "")
        };
        let resellers = match hour.operators.get_mut(op) {
            Some(r) => r,
            None => hour.operators.entry(op.to_owned()).or_default(),
        };
        let counts = match resellers.get_mut(reseller) {
            Some(c) => c,
            None => {
                hour.rows += 1;
                resellers.entry(reseller.to_owned()).or_default()
            }
        };
        counts.count(verdict.action, category);
        if misdated {
            counts.misdated += 1;
        }
        if p.dirty.last() != Some(&hour_ms) {
            p.dirty.push(hour_ms);
        }
    }

    fn assigned(&mut self, partition: i32) {
        self.partitions.insert(partition, PartitionStats::default());
    }

    fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let err = |detail: String| StateError::new(NAME, key, detail);
        let p = self.partitions.entry(partition).or_default();
        if !is_hour_key(key) {
            p.clock = PartitionClock::decode(value).map_err(err)?;
            return Ok(());
        }
        let hour_ms: i64 = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.parse().ok())
            .ok_or_else(|| err("key is not an hour".into()))?;
        let Some(value) = value else {
            p.hours.remove(&hour_ms);
            return Ok(());
        };
        let rec: OperatorStats = serde_json::from_slice(value).map_err(|e| err(e.to_string()))?;
        let mut hour = Hour {
            rows: rec.rows.len(),
            ..Hour::default()
        };
        for row in rec.rows {
            hour.operators
                .entry(row.relay_operator)
                .or_default()
                .insert(row.reseller, row.counts);
        }
        p.hours.insert(hour_ms, hour);
        Ok(())
    }

    fn revoked(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    fn published(&self, key: &[u8]) -> bool {
        is_hour_key(key)
    }

    fn snapshot(&mut self, partition: i32, out: &mut Vec<StateUpdate>) {
        self.metrics.add(&mut self.deltas);
        self.metrics.add_categories(&mut self.category_deltas);
        let Some(p) = self.partitions.get_mut(&partition) else {
            return;
        };
        let Some(wm) = p.clock.watermark_ms() else {
            return;
        };
        // Hours the misdated rule no longer counts into are dropped (a tombstone in the
        // changelog only: the stats topic keeps them).
        let oldest = (wm - i64::from(self.cfg.keep_hours) * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
        let kept = p.hours.split_off(&oldest);
        p.dirty
            .extend(std::mem::replace(&mut p.hours, kept).into_keys());
        let hours = &p.hours;
        drain_dirty(
            &mut p.dirty,
            out,
            |h| h.to_string().into_bytes(),
            |h| {
                Some(hours.get(h).map(|hour| {
                    serde_json::to_vec(&record(partition, *h, hour))
                        .expect("stats records serialize")
                }))
            },
        );
        p.clock.snapshot(&mut p.clock_dirty, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spamflow_schemas::{Action, SubmissionEvent};

    fn event(op: Option<&str>, reseller: Option<&str>, at_ms: i64) -> SubmissionEvent {
        let mut v = serde_json::json!({
            "schema_version": 1, "message_id": "m", "submitted_at": Utc.timestamp_millis_opt(at_ms).unwrap(),
            "sender": "+821012345678", "recipient": "+821098765432", "text": "x", "kind": "sms",
            "origin": {"route": "domestic", "smsc": "smsc-1"}
        });
        if let Some(op) = op {
            v["relay"] = serde_json::json!({"operator": op, "reseller": reseller});
        }
        serde_json::from_value(v).unwrap()
    }

    fn verdict(action: Action, category: Option<&str>) -> Verdict<'static> {
        crate::testutil::verdict(action, 90, category.as_slice())
    }

    fn op(cfg: StatsConfig) -> StatsOperator {
        let registry = Arc::new(Registry::new());
        StatsFactory::new(cfg, registry, Arc::default()).build()
    }

    fn decide(s: &mut StatsOperator, p: i32, ev: &SubmissionEvent, v: &Verdict) {
        let ctx = EventCtx {
            event: ev,
            sender: &crate::origin::parse_sender(&ev.sender),
            partition: p,
            event_time_ms: ev.submitted_at.timestamp_millis(),
            counted: false,
        };
        s.inspect(&ctx, &mut Vec::new());
        s.decided(&ctx, v);
    }

    const T0: i64 = 1_780_000_000_000 / HOUR_MS * HOUR_MS;

    #[test]
    fn counts_by_hour_operator_reseller_action_and_category() {
        let mut s = op(StatsConfig::default());
        s.assigned(0);
        let kt = event(Some("kt-relay"), Some("r1"), T0 + 10);
        decide(&mut s, 0, &kt, &verdict(Action::Block, Some("gambling")));
        decide(&mut s, 0, &kt, &verdict(Action::Block, Some("gambling")));
        decide(&mut s, 0, &kt, &verdict(Action::Label, Some("loan")));
        decide(&mut s, 0, &kt, &verdict(Action::Allow, None));
        decide(
            &mut s,
            0,
            &event(None, None, T0 + HOUR_MS),
            &verdict(Action::Throttle, None),
        );
        let first = s.record(0, T0).unwrap();
        assert_eq!(first.rows.len(), 1);
        let c = &first.rows[0].counts;
        assert_eq!(
            (
                first.rows[0].relay_operator.as_str(),
                first.rows[0].reseller.as_str()
            ),
            ("kt-relay", "r1")
        );
        assert_eq!(
            (c.messages, c.allowed, c.labelled, c.throttled, c.blocked),
            (4, 1, 1, 0, 2)
        );
        assert_eq!(c.top_categories(3), vec![("gambling", 2), ("loan", 1)]);
        let second = s.record(0, T0 + HOUR_MS).unwrap();
        assert_eq!(second.rows[0].relay_operator, NO_OPERATOR);
        assert_eq!(second.rows[0].counts.throttled, 1);
    }

    #[test]
    fn snapshot_restores_to_the_same_counts_and_drops_old_hours() {
        let cfg = StatsConfig {
            keep_hours: 2,
            ..StatsConfig::default()
        };
        let mut s = op(cfg.clone());
        s.assigned(3);
        // One message every 4 minutes for 5 hours: the clock follows.
        for i in 0..=75 {
            decide(
                &mut s,
                3,
                &event(Some("a"), None, T0 + i * 240_000),
                &verdict(Action::Allow, None),
            );
        }
        let mut out = Vec::new();
        s.snapshot(3, &mut out);
        let key = |h: i64| (T0 + h * HOUR_MS).to_string().into_bytes();
        let tombstones: Vec<_> = out
            .iter()
            .filter(|u| u.value.is_none())
            .map(|u| u.key.clone())
            .collect();
        assert_eq!(
            tombstones,
            vec![key(0), key(1), key(2)],
            "hours over 2 behind the clock are dropped"
        );
        assert_eq!(out.len(), 3 + 3 + 1, "the kept hours and the clock");
        assert_eq!(
            s.record(3, T0 + 4 * HOUR_MS).unwrap().rows[0]
                .counts
                .messages,
            15
        );
        // Events over 2 hours behind or ahead of the clock count in the clock's hour.
        decide(
            &mut s,
            3,
            &event(Some("a"), None, T0),
            &verdict(Action::Block, Some("loan")),
        );
        decide(
            &mut s,
            3,
            &event(Some("a"), None, T0 + 1000 * HOUR_MS),
            &verdict(Action::Allow, None),
        );
        let newest = s.record(3, T0 + 5 * HOUR_MS).unwrap();
        assert_eq!(
            (
                newest.rows[0].counts.messages,
                newest.rows[0].counts.misdated
            ),
            (3, 2)
        );
        let mut more = Vec::new();
        s.snapshot(3, &mut more);
        assert_eq!(more.len(), 2, "the changed hour and the clock");

        let mut r = op(cfg);
        r.assigned(3);
        for u in out.iter().chain(&more) {
            r.restore(3, &u.key, u.value.as_deref()).unwrap();
        }
        for h in 0..=5 {
            assert_eq!(
                r.record(3, T0 + h * HOUR_MS),
                s.record(3, T0 + h * HOUR_MS),
                "hour {h}"
            );
        }
        assert!(r.record(3, T0).is_none());
        // The restored clock goes on where it was: the same rule.
        decide(
            &mut r,
            3,
            &event(Some("a"), None, T0 + HOUR_MS),
            &verdict(Action::Allow, None),
        );
        assert_eq!(
            r.record(3, T0 + 5 * HOUR_MS).unwrap().rows[0]
                .counts
                .misdated,
            3
        );
        assert!(r.restore(3, b"not-an-hour", Some(b"{}")).is_err());
        assert!(r.restore(3, b"5", Some(b"{")).is_err());
    }

    #[test]
    fn rows_per_hour_are_bounded_and_metric_labels_are_the_registry_operators() {
        let registry = Arc::new(Registry::new());
        let rec: spamflow_schemas::RegistrationRecord = serde_json::from_value(serde_json::json!({
            "number": "+821011112222", "owner": "Acme", "relay_operator": "kt-relay", "status": "active"
        }))
        .unwrap();
        registry.put(&rec).unwrap();
        let metrics = Arc::new(StatsMetrics::default());
        let mut s = StatsFactory::new(
            StatsConfig {
                max_rows_per_hour: 2,
                ..StatsConfig::default()
            },
            registry,
            metrics.clone(),
        )
        .build();
        s.assigned(0);
        for name in ["kt-relay", "x1", "x2", "x3"] {
            decide(
                &mut s,
                0,
                &event(Some(name), None, T0),
                &verdict(Action::Block, Some("adult")),
            );
        }
        let rows = s.record(0, T0).unwrap().rows;
        let names: Vec<_> = rows
            .iter()
            .map(|r| (r.relay_operator.as_str(), r.counts.messages))
            .collect();
        assert_eq!(names, vec![("kt-relay", 1), (OTHER, 2), ("x1", 1)]);
        s.snapshot(0, &mut Vec::new());
        assert_eq!(
            metrics.snapshot(),
            vec![
                ("kt-relay".to_owned(), [0, 0, 0, 1]),
                (OTHER.to_owned(), [0, 0, 0, 3])
            ]
        );
        assert_eq!(
            metrics.categories(),
            vec![("adult".to_owned(), [0, 0, 0, 4])]
        );
    }

    #[test]
    fn category_metric_labels_are_bounded() {
        let metrics = Arc::new(StatsMetrics::default());
        let mut s =
            StatsFactory::new(StatsConfig::default(), Arc::default(), metrics.clone()).build();
        s.assigned(0);
        let ev = event(None, None, T0);
        for i in 0..MAX_METRIC_CATEGORIES + 5 {
            decide(
                &mut s,
                0,
                &ev,
                &verdict(Action::Label, Some(&format!("c{i:03}"))),
            );
        }
        decide(&mut s, 0, &ev, &verdict(Action::Allow, None));
        s.snapshot(0, &mut Vec::new());
        let got = metrics.categories();
        assert_eq!(got.len(), MAX_METRIC_CATEGORIES + 1);
        let total: u64 = got.iter().map(|(_, c)| c[Action::Label.index()]).sum();
        assert_eq!(total, (MAX_METRIC_CATEGORIES + 5) as u64);
        assert!(got
            .iter()
            .any(|(c, n)| c == OTHER && n[Action::Label.index()] > 0));
    }
}
