//! Spam statistics per relay operator and reseller: `OperatorStats` v1, the records of the
//! compacted `spamflow.operator-stats` topic.
//!
//! Each record holds one input partition's counts for one hour of event time (UTC), one
//! row per relay operator and reseller. Its key is `<partition>/stats/<hour_start_ms>`, so
//! compaction keeps the latest count of every partition and hour; the figures of an hour
//! are the sum over partitions, those of a day or a month the sum over its hours.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Action;

/// The counts of one relay operator and reseller in one hour of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatsCounts {
    /// Messages decided.
    pub messages: u64,
    /// Verdicts `allow`.
    pub allowed: u64,
    /// Verdicts `label`.
    pub labelled: u64,
    /// Verdicts `throttle`.
    pub throttled: u64,
    /// Verdicts `block`.
    pub blocked: u64,
    /// Messages counted in this hour, the partition clock's, because their own time was
    /// more than `stats.keep_hours` behind or ahead of that clock.
    #[serde(skip_serializing_if = "is_zero")]
    pub misdated: u64,
    /// Labelled and blocked messages by the category of their strongest reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub categories: BTreeMap<String, u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl StatsCounts {
    /// Counts one verdict; labelled and blocked ones also under `category`.
    pub fn count(&mut self, action: Action, category: Option<&str>) {
        self.messages += 1;
        match action {
            Action::Allow => self.allowed += 1,
            Action::Label => self.labelled += 1,
            Action::Throttle => self.throttled += 1,
            Action::Block => self.blocked += 1,
        }
        if matches!(action, Action::Label | Action::Block) {
            let c = category.unwrap_or("none");
            match self.categories.get_mut(c) {
                Some(n) => *n += 1,
                None => {
                    self.categories.insert(c.to_owned(), 1);
                }
            }
        }
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: &StatsCounts) {
        self.messages += other.messages;
        self.allowed += other.allowed;
        self.labelled += other.labelled;
        self.throttled += other.throttled;
        self.blocked += other.blocked;
        self.misdated += other.misdated;
        for (c, n) in &other.categories {
            *self.categories.entry(c.clone()).or_default() += n;
        }
    }

    /// The `n` most frequent categories, most frequent first (ties by name).
    pub fn top_categories(&self, n: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self
            .categories
            .iter()
            .map(|(c, n)| (c.as_str(), *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

/// One relay operator and reseller in an [`OperatorStats`] record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRow {
    /// Relay operator (`none` for traffic without one).
    pub relay_operator: String,
    /// Reseller account (empty when none).
    #[serde(default)]
    pub reseller: String,
    /// The counts.
    #[serde(flatten)]
    pub counts: StatsCounts,
}

/// One partition's counts for one hour: a record of `spamflow.operator-stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorStats {
    /// Always 1.
    pub schema_version: u32,
    /// Start of the hour (UTC).
    pub hour: DateTime<Utc>,
    /// Input partition the counts come from.
    pub partition: i32,
    /// One row per relay operator and reseller, sorted.
    pub rows: Vec<StatsRow>,
}
