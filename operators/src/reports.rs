//! Reported content: text that enough distinct subscribers reported is blocked, from any
//! sender and on any partition.
//!
//! Reports are fingerprinted with the campaign detector's masked-text fingerprint
//! ([`crate::velocity::fingerprint::fingerprint`]), so that copies differing only in
//! names, numbers and links count as one content. When reports of one fingerprint from
//! at least `min_reporters` distinct reporters fall within `window_secs` of each other
//! (report time), the fingerprint is blocked for `block_secs` after the report that
//! crossed the line. [`ReportedContent`] is shared by every worker of an instance and fed
//! by the report follower; [`ReportsOperator`] checks each message against it.
//!
//! Reported numbers: when reports of one sender number from at least
//! `suspend_min_reporters` distinct reporters fall within `suspend_window_secs`,
//! [`ReportedNumbers`] says so once; the report follower then suspends the number in the
//! sender registry (`suspend = "auto"`), or leaves it to staff (`"propose"`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use crate::operator::{EventCtx, OperatorWorker, StatelessOperator};
use crate::signal::{ActionHint, Signal};
use crate::velocity::fingerprint::fingerprint;
use spamflow_schemas::{ContentStatus, ReportedContentRecord};

/// `[reports]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// Follow `topics.reports` and block reported content.
    pub enabled: bool,
    /// Distinct reporters of one content needed to block it.
    pub min_reporters: u32,
    /// The reports must fall within this many seconds of each other.
    pub window_secs: u64,
    /// How long reported content stays blocked after the report that crossed the line.
    pub block_secs: u64,
    /// Most contents tracked (reported but not yet blocked, and blocked); reports of new
    /// contents beyond it are counted and dropped. Reported numbers are bounded alike.
    pub max_contents: usize,
    /// What happens to a number that enough distinct subscribers reported.
    pub suspend: Suspend,
    /// Distinct reporters of one sender number needed.
    pub suspend_min_reporters: u32,
    /// Their reports must fall within this many seconds of each other.
    pub suspend_window_secs: u64,
    /// Warn the recipients who already got content before it was blocked (on
    /// `topics.alerts`).
    pub alert_recipients: bool,
    /// Deliveries this many seconds before the block are warned about.
    pub alert_lookback_secs: u64,
    /// Only deliveries whose verdict scored at least this are remembered (ham rarely
    /// does; the spam that gets reported after delivery usually did).
    pub alert_min_score: u8,
    /// Contents remembered per partition at most (the oldest make room).
    pub alert_max_contents: usize,
    /// Recipients remembered per content at most.
    pub alert_max_recipients: usize,
    /// The text the alerting service shows the recipient.
    pub alert_warning: String,
    /// Delivered messages this instance remembers (message id -> content) so that a
    /// report naming only a message id counts towards that message's content; 0: such
    /// reports count only towards their sender number.
    pub resolve_max_messages: usize,
}

/// What happens to a number that enough distinct subscribers reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suspend {
    /// Suspended at once: a suspension record in the sender registry, which every
    /// instance follows.
    #[default]
    Auto,
    /// Only proposed (`spamflow numbers proposals`); a member of staff decides.
    Propose,
    /// Neither.
    Off,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            enabled: true,
            min_reporters: 3,
            window_secs: 600,
            block_secs: 86_400,
            max_contents: 100_000,
            suspend: Suspend::Auto,
            suspend_min_reporters: 5,
            suspend_window_secs: 3_600,
            alert_recipients: true,
            alert_lookback_secs: 86_400,
            alert_min_score: 20,
            alert_max_contents: 20_000,
            alert_max_recipients: 1_000,
            alert_warning: "이미 받으신 문자가 여러 이용자에게 스팸으로 신고되었습니다. 링크를 누르거나 회신하지 마세요."
                .into(),
            resolve_max_messages: 500_000,
        }
    }
}

/// A blocked content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// Distinct reporters when it was blocked.
    pub reporters: u32,
    /// Report time of the report that crossed the line, ms.
    pub since_ms: i64,
    /// Blocked until then (message event time), ms.
    pub until_ms: i64,
}

/// What one report did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Counted; not (yet) enough reporters.
    Counted,
    /// This report blocked the content.
    Blocked(Blocked),
    /// The content was blocked already.
    AlreadyBlocked,
    /// Not counted: the text has too few letters to be told apart from everyone's
    /// ("네", "ㅇㅋ"), or the table is full.
    Ignored,
}

#[derive(Debug, Default)]
struct Pending {
    /// (reporter, report time ms), newest last; one entry per reporter.
    reports: Vec<(u64, i64)>,
}

/// The reported contents of one instance.
#[derive(Debug)]
pub struct ReportedContent {
    cfg: ReportsConfig,
    pending: Mutex<HashMap<u64, Pending>>,
    blocked: RwLock<HashMap<u64, Blocked>>,
    /// `blocked.len()`, read without the lock on every message.
    n_blocked: AtomicUsize,
    /// The newest contents blocked for reports or found to be campaigns, in order, with
    /// their sequence numbers and times, ms (for late alerts).
    log: RwLock<std::collections::VecDeque<(u64, u64, i64, Found)>>,
    /// The sequence number of the next entry of the log.
    next_seq: std::sync::atomic::AtomicU64,
    /// Contents staff lifted, with the lift's time (ms): reports up to it do not count.
    lifted: Mutex<HashMap<u64, i64>>,
    /// Messages this instance delivered (allowed or labelled, scoring at least
    /// `alert_min_score`), by [`message_key`]: their content and event time, ms.
    delivered: Mutex<HashMap<u64, (u64, i64)>>,
}

/// How a content in [`ReportedContent`]'s log was found to be spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Enough subscribers reported it.
    Reported,
    /// A partition blocked a copy as a campaign's (one masked text from many senders).
    Campaign,
}

/// Entries kept in [`ReportedContent`]'s log for late alerts.
const LOG_LEN: usize = 10_000;

/// The fingerprint of `text` as reported content, or `None` for a text with too few
/// letters to be told apart from everyone's.
pub fn content_key(text: &str) -> Option<u64> {
    let fp = fingerprint(text);
    (fp.letters >= MIN_LETTERS).then_some(fp.hash)
}

/// Removes the tenth of `map` with the oldest times (at once, so that a full memory is
/// sorted once per tenth of its size, not once per insert), and returns it.
pub(crate) fn forget_oldest<V>(
    map: &mut HashMap<u64, V>,
    time: impl Fn(&V) -> i64,
) -> Vec<(u64, V)> {
    let mut by_age: Vec<(i64, u64)> = map.iter().map(|(k, v)| (time(v), *k)).collect();
    by_age.sort_unstable();
    by_age
        .iter()
        .take((by_age.len() / 10).max(1))
        .filter_map(|(_, k)| map.remove_entry(k))
        .collect()
}

/// A message id as the memory of delivered messages keys it (SipHash with fixed keys).
fn message_key(id: &str) -> u64 {
    use std::hash::BuildHasher as _;
    std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(id)
}

/// Texts with fewer letters than this are never taken as reported content.
const MIN_LETTERS: u32 = 6;

impl ReportedContent {
    /// Nothing reported yet.
    pub fn new(cfg: ReportsConfig) -> Self {
        ReportedContent {
            cfg,
            pending: Mutex::new(HashMap::new()),
            blocked: RwLock::new(HashMap::new()),
            n_blocked: AtomicUsize::new(0),
            log: RwLock::default(),
            next_seq: std::sync::atomic::AtomicU64::new(0),
            lifted: Mutex::new(HashMap::new()),
            delivered: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ReportsConfig {
        &self.cfg
    }

    /// The sequence number the next entry of the log will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Relaxed)
    }

    /// Calls `f(fingerprint, since ms, how)` for every content blocked for reports or found
    /// to be a campaign with a sequence number from `seq` on (those older than the log are
    /// gone), and returns the next sequence number.
    pub fn found_since(&self, seq: u64, mut f: impl FnMut(u64, i64, Found)) -> u64 {
        let log = self.log.read().unwrap_or_else(|e| e.into_inner());
        for &(s, fp, since, how) in log.iter() {
            if s >= seq {
                f(fp, since, how);
            }
        }
        log.back().map_or(seq, |(s, ..)| (s + 1).max(seq))
    }

    /// Notes that a partition (of this or another instance) blocked a copy of content `fp`
    /// submitted at `detected_ms` as a campaign's, for late alerts.
    pub fn campaign(&self, fp: u64, detected_ms: i64) {
        self.log_found(fp, detected_ms, Found::Campaign);
    }

    fn log_found(&self, fp: u64, since_ms: i64, how: Found) {
        let mut log = self.log.write().unwrap_or_else(|e| e.into_inner());
        log.push_back((self.next_seq.fetch_add(1, Relaxed), fp, since_ms, how));
        if log.len() > LOG_LEN {
            log.pop_front();
        }
    }

    /// Remembers that this instance delivered message `message_id` with content `fp`
    /// (a [`content_key`]) at `at_ms`, so that a report naming only the message id can be
    /// resolved ([`ReportedContent::resolve`]). At most `resolve_max_messages`; the oldest
    /// tenth makes room.
    pub fn remember_delivery(&self, message_id: &str, fp: u64, at_ms: i64) {
        let max = self.cfg.resolve_max_messages;
        if max == 0 {
            return;
        }
        let id = message_key(message_id);
        let mut delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
        if !delivered.contains_key(&id) && delivered.len() >= max {
            forget_oldest(&mut delivered, |&(_, at)| at);
        }
        delivered.insert(id, (fp, at_ms));
    }

    /// The content of a message this instance delivered, if it remembers it.
    pub fn resolve(&self, message_id: &str) -> Option<u64> {
        let delivered = self.delivered.lock().unwrap_or_else(|e| e.into_inner());
        delivered.get(&message_key(message_id)).map(|&(fp, _)| fp)
    }

    /// Counts the report of `text` by `reporter` (any stable id of the subscriber) at
    /// `at_ms` (report time).
    pub fn add(&self, text: &str, reporter: u64, at_ms: i64) -> Added {
        match content_key(text) {
            Some(fp) => self.add_content(fp, reporter, at_ms),
            None => Added::Ignored,
        }
    }

    /// Counts a report of the content with fingerprint `fp` (a [`content_key`]).
    pub fn add_content(&self, fp: u64, reporter: u64, at_ms: i64) -> Added {
        if let Some(b) = self.read_blocked().get(&fp) {
            if at_ms < b.until_ms {
                return Added::AlreadyBlocked;
            }
        }
        let lifted_at = self.lock_lifted().get(&fp).copied();
        if lifted_at.is_some_and(|t| at_ms <= t) {
            return Added::Ignored;
        }
        let window = (self.cfg.window_secs * 1000) as i64;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.contains_key(&fp) && pending.len() >= self.cfg.max_contents {
            // Make room from contents whose reports all fell out of the window.
            pending.retain(|_, p| p.reports.iter().any(|(_, t)| at_ms - t < window));
            if pending.len() >= self.cfg.max_contents {
                return Added::Ignored;
            }
        }
        let p = pending.entry(fp).or_default();
        p.reports
            .retain(|(r, t)| *r != reporter && at_ms - t < window);
        p.reports.push((reporter, at_ms));
        let reporters = p.reports.len() as u32;
        if reporters < self.cfg.min_reporters {
            return Added::Counted;
        }
        pending.remove(&fp);
        drop(pending);
        let b = Blocked {
            reporters,
            since_ms: at_ms,
            until_ms: at_ms + (self.cfg.block_secs * 1000) as i64,
        };
        self.block(fp, b);
        Added::Blocked(b)
    }

    /// Blocks content `fp` with `b`; false if it was blocked already.
    fn block(&self, fp: u64, b: Blocked) -> bool {
        let mut blocked = self.blocked.write().unwrap_or_else(|e| e.into_inner());
        blocked.retain(|_, old| old.until_ms > b.since_ms);
        if blocked.insert(fp, b).is_some() {
            return false;
        }
        self.n_blocked.store(blocked.len(), Relaxed);
        drop(blocked);
        self.log_found(fp, b.since_ms, Found::Reported);
        true
    }

    /// Applies a record of the reported-content topic: a block (from this or another
    /// instance) blocks, a lift unblocks and makes reports up to its time not count.
    /// Returns whether the content was blocked before.
    pub fn apply_record(&self, r: &ReportedContentRecord) -> Result<bool, String> {
        let fp = u64::from_str_radix(&r.fingerprint, 16).map_err(|e| e.to_string())?;
        let was = self.read_blocked().contains_key(&fp);
        match r.status {
            ContentStatus::Blocked => {
                let lifted_at = self.lock_lifted().get(&fp).copied();
                if lifted_at.is_none_or(|t| r.since.timestamp_millis() > t) {
                    self.block(
                        fp,
                        Blocked {
                            reporters: r.reporters,
                            since_ms: r.since.timestamp_millis(),
                            until_ms: r.until.timestamp_millis(),
                        },
                    );
                }
            }
            ContentStatus::Lifted => {
                self.lock_lifted()
                    .insert(fp, r.changed_at.timestamp_millis());
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&fp);
                let mut blocked = self.blocked.write().unwrap_or_else(|e| e.into_inner());
                blocked.remove(&fp);
                self.n_blocked.store(blocked.len(), Relaxed);
            }
        }
        Ok(was)
    }

    /// The record that publishes block `b` of content `fp`, with an excerpt of a reported
    /// text when the report that crossed the line had one (made by the reports follower).
    pub fn record(fp: u64, text: Option<&str>, b: Blocked, by: &str) -> ReportedContentRecord {
        let ms = |t: i64| chrono::DateTime::from_timestamp_millis(t).unwrap_or_default();
        ReportedContentRecord {
            schema_version: 1,
            fingerprint: format!("{fp:016x}"),
            status: ContentStatus::Blocked,
            since: ms(b.since_ms),
            until: ms(b.until_ms),
            reporters: b.reporters,
            excerpt: text.map(crate::late_alerts::excerpt),
            changed_by: by.to_owned(),
            changed_at: ms(b.since_ms),
            reason: Some(format!("reported by {} distinct subscribers", b.reporters)),
        }
    }

    fn lock_lifted(&self) -> std::sync::MutexGuard<'_, HashMap<u64, i64>> {
        self.lifted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `text` is blocked for a message at `event_time_ms`.
    pub fn check(&self, text: &str, event_time_ms: i64) -> Option<Blocked> {
        if self.n_blocked.load(Relaxed) == 0 {
            return None;
        }
        let fp = fingerprint(text);
        self.read_blocked()
            .get(&fp.hash)
            .filter(|b| event_time_ms < b.until_ms)
            .copied()
    }

    /// Contents blocked now (expired ones leave with the next block).
    pub fn blocked_count(&self) -> usize {
        self.n_blocked.load(Relaxed)
    }

    fn read_blocked(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, Blocked>> {
        self.blocked.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Distinct reporters per reported sender number, for suspension. Fed in report order by
/// one thread (the report follower, or `spamflow numbers proposals`): every instance
/// reads the same reports in the same order per partition, and reports are keyed by
/// sender, so every instance finds the same numbers at the same report.
#[derive(Debug)]
pub struct ReportedNumbers {
    min_reporters: u32,
    window_ms: i64,
    max_numbers: usize,
    /// Per normalized number: (reporter, report time ms), one entry per reporter.
    numbers: HashMap<String, Vec<(u64, i64)>>,
}

impl ReportedNumbers {
    /// Nothing reported yet.
    pub fn new(cfg: &ReportsConfig) -> Self {
        ReportedNumbers {
            min_reporters: cfg.suspend_min_reporters.max(1),
            window_ms: (cfg.suspend_window_secs * 1000) as i64,
            max_numbers: cfg.max_contents,
            numbers: HashMap::new(),
        }
    }

    /// Counts a report of `number` by `reporter` at `at_ms`. Reports at or before
    /// `changed_ms` (when staff or an earlier suspension last changed the number's status)
    /// do not count. Returns the distinct reporters when this report is the one that
    /// reaches `suspend_min_reporters`; the count then starts again.
    pub fn add(
        &mut self,
        number: &str,
        reporter: u64,
        at_ms: i64,
        changed_ms: Option<i64>,
    ) -> Option<u32> {
        if changed_ms.is_some_and(|c| at_ms <= c) {
            return None;
        }
        let window = self.window_ms;
        if !self.numbers.contains_key(number) && self.numbers.len() >= self.max_numbers {
            self.numbers
                .retain(|_, r| r.iter().any(|(_, t)| at_ms - t < window));
            if self.numbers.len() >= self.max_numbers {
                return None;
            }
        }
        let reports = self.numbers.entry(number.to_owned()).or_default();
        reports.retain(|(r, t)| {
            *r != reporter && at_ms - t < window && changed_ms.is_none_or(|c| *t > c)
        });
        reports.push((reporter, at_ms));
        let n = reports.len() as u32;
        if n < self.min_reporters {
            return None;
        }
        self.numbers.remove(number);
        Some(n)
    }
}

/// Blocks messages whose content was reported (reason `reports.content`).
#[derive(Debug, Clone)]
pub struct ReportsOperator {
    content: Arc<ReportedContent>,
}

impl ReportsOperator {
    /// An operator checking against `content`.
    pub fn new(content: Arc<ReportedContent>) -> Self {
        ReportsOperator { content }
    }
}

impl StatelessOperator for ReportsOperator {
    fn name(&self) -> &'static str {
        "reports"
    }

    fn content_hash(&self) -> String {
        // Reports are live data, like the registry; the thresholds are configuration.
        let c = &self.content.cfg;
        format!(
            "reports-v1:{}:{}:{}",
            c.min_reporters, c.window_secs, c.block_secs
        )
    }

    fn worker(&self) -> Box<dyn OperatorWorker> {
        Box::new(self.clone())
    }
}

impl OperatorWorker for ReportsOperator {
    fn inspect(&mut self, ctx: &EventCtx<'_>, out: &mut Vec<Signal>) {
        if let Some(b) = self.content.check(&ctx.event.text, ctx.event_time_ms) {
            let since = chrono::DateTime::from_timestamp_millis(b.since_ms)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
            out.push(Signal {
                hint: ActionHint::Block,
                evidence: Some(format!(
                    "reported by {} subscribers; blocked since {since}",
                    b.reporters
                )),
                ..Signal::new("reports", "reports.content", "reports", 100)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAM: &str = "[Web발신] 고객님 택배 주소지 불명으로 보관중 확인 cj-parcel.top/a1";

    fn content(min: u32) -> ReportedContent {
        ReportedContent::new(ReportsConfig {
            min_reporters: min,
            window_secs: 600,
            block_secs: 3_600,
            ..ReportsConfig::default()
        })
    }

    #[test]
    fn distinct_reporters_within_the_window_block_the_content_and_its_variants() {
        let c = content(3);
        let t0 = 1_000_000_000_000;
        assert_eq!(c.add(SPAM, 1, t0), Added::Counted);
        // The same reporter twice counts once.
        assert_eq!(c.add(SPAM, 1, t0 + 1_000), Added::Counted);
        assert_eq!(c.check(SPAM, t0 + 2_000), None);
        assert_eq!(c.add(SPAM, 2, t0 + 2_000), Added::Counted);
        let Added::Blocked(b) = c.add(SPAM, 3, t0 + 3_000) else {
            panic!("three reporters block");
        };
        assert_eq!((b.reporters, b.since_ms), (3, t0 + 3_000));
        assert_eq!(c.add(SPAM, 4, t0 + 4_000), Added::AlreadyBlocked);
        // Another link and name: the same masked content.
        let variant = "[Web발신] 고객님 택배 주소지 불명으로 보관중 확인 cj-box.xyz/zz9";
        assert_eq!(c.check(variant, t0 + 5_000), Some(b));
        assert_eq!(
            c.check(
                "[Web발신] 오늘 저녁 회식 장소는 강남역 3번 출구 앞입니다",
                t0
            ),
            None
        );
        // Expired after block_secs.
        assert_eq!(c.check(SPAM, t0 + 3_000 + 3_600_000), None);
    }

    #[test]
    fn published_blocks_apply_elsewhere_and_a_lift_unblocks_until_later_reports() {
        let t0 = 1_000_000_000_000;
        let a = content(3);
        for r in 1..=3 {
            a.add(SPAM, r, t0 + r as i64 * 1_000);
        }
        let Some(b) = a.check(SPAM, t0 + 5_000) else {
            panic!("blocked on the instance that read the reports");
        };
        let rec = ReportedContent::record(
            content_key(SPAM).unwrap(),
            Some(SPAM),
            b,
            "spamflow:reports",
        );
        assert_eq!(rec.fingerprint.len(), 16);
        assert!(!rec
            .excerpt
            .as_deref()
            .unwrap()
            .contains(|c: char| c.is_ascii_digit()));
        let json = serde_json::to_vec(&rec).unwrap();
        assert_eq!(ReportedContentRecord::decode(&json).unwrap(), rec);

        // Another instance that got the record but not the reports blocks it as well;
        // applying it again changes nothing (and logs no second block).
        let other = content(3);
        assert_eq!(other.apply_record(&rec), Ok(false));
        assert_eq!(other.check(SPAM, t0 + 5_000), Some(b));
        let seq = other.next_seq();
        assert_eq!(other.apply_record(&rec), Ok(true));
        assert_eq!(other.next_seq(), seq);

        // A lift unblocks; reports up to its time do not count again (a restarted
        // instance reads them again), later ones do.
        let lift_at = t0 + 60_000;
        let lifted = ReportedContentRecord {
            status: ContentStatus::Lifted,
            changed_by: "kim".into(),
            changed_at: chrono::DateTime::from_timestamp_millis(lift_at).unwrap(),
            ..rec.clone()
        };
        for c in [&a, &other] {
            c.apply_record(&lifted).unwrap();
            assert_eq!(c.check(SPAM, t0 + 70_000), None);
            assert_eq!(c.blocked_count(), 0);
            for r in 1..=3 {
                assert_eq!(c.add(SPAM, r, t0 + r as i64 * 1_000), Added::Ignored);
            }
            // The block record read again after the lift stays lifted.
            c.apply_record(&rec).unwrap();
            assert_eq!(c.check(SPAM, t0 + 70_000), None);
        }
        for r in 4..=5 {
            assert_eq!(a.add(SPAM, r, lift_at + r as i64), Added::Counted);
        }
        assert!(matches!(a.add(SPAM, 6, lift_at + 6), Added::Blocked(_)));
        assert!(a
            .apply_record(&ReportedContentRecord {
                fingerprint: "not-hex-at-all!!".into(),
                ..rec
            })
            .is_err());
    }

    #[test]
    fn a_number_is_named_once_at_the_report_that_reaches_the_distinct_reporters() {
        let cfg = ReportsConfig {
            suspend_min_reporters: 3,
            suspend_window_secs: 60,
            ..ReportsConfig::default()
        };
        let mut n = ReportedNumbers::new(&cfg);
        let t0 = 1_000_000_000_000;
        let a = "+821012345678";
        assert_eq!(n.add(a, 1, t0, None), None);
        assert_eq!(
            n.add(a, 1, t0 + 1_000, None),
            None,
            "one reporter counts once"
        );
        assert_eq!(n.add("+821099998888", 2, t0, None), None, "another number");
        // Out of the window: reporter 1's first report no longer counts with these.
        assert_eq!(n.add(a, 2, t0 + 61_500, None), None);
        assert_eq!(n.add(a, 3, t0 + 62_000, None), None);
        assert_eq!(n.add(a, 4, t0 + 62_500, None), Some(3));
        // Counting starts again after a decision.
        assert_eq!(n.add(a, 5, t0 + 63_000, None), None);
        // Reports up to a status change by staff do not count.
        let mut n = ReportedNumbers::new(&cfg);
        for r in 1..=2 {
            assert_eq!(n.add(a, r, t0 + r as i64, None), None);
        }
        let released = Some(t0 + 10);
        assert_eq!(n.add(a, 3, t0 + 10, released), None);
        assert_eq!(n.add(a, 3, t0 + 20, released), None);
        assert_eq!(n.add(a, 4, t0 + 30, released), None);
        assert_eq!(n.add(a, 5, t0 + 40, released), Some(3));
    }

    #[test]
    fn reports_outside_the_window_and_short_texts_do_not_count() {
        let c = content(2);
        let t0 = 1_000_000_000_000;
        assert_eq!(c.add(SPAM, 1, t0), Added::Counted);
        assert_eq!(c.add(SPAM, 2, t0 + 601_000), Added::Counted);
        assert_eq!(c.blocked_count(), 0);
        assert!(matches!(c.add(SPAM, 3, t0 + 602_000), Added::Blocked(_)));
        assert_eq!(c.add("네", 1, t0), Added::Ignored);
        assert_eq!(c.add("네", 2, t0), Added::Ignored);
    }

    #[test]
    fn delivered_messages_are_remembered_up_to_the_bound_and_resolved_counts_like_text() {
        let c = ReportedContent::new(ReportsConfig {
            min_reporters: 2,
            resolve_max_messages: 10,
            ..ReportsConfig::default()
        });
        let fp = content_key(SPAM).unwrap();
        let t0 = 1_000_000_000_000;
        for i in 0..11 {
            c.remember_delivery(&format!("m{i}"), fp, t0 + i);
        }
        // The oldest made room for the eleventh.
        assert_eq!(c.resolve("m0"), None);
        assert_eq!(c.resolve("m10"), Some(fp));
        // A resolved report counts like a report with the text.
        assert_eq!(c.add_content(fp, 1, t0 + 100), Added::Counted);
        assert!(matches!(c.add(SPAM, 2, t0 + 200), Added::Blocked(_)));
        let off = ReportedContent::new(ReportsConfig {
            resolve_max_messages: 0,
            ..ReportsConfig::default()
        });
        off.remember_delivery("m1", fp, t0);
        assert_eq!(off.resolve("m1"), None);
    }
}
