//! Recipients who already got content that subscribers then reported, or that was then
//! found to be a campaign, are warned.
//!
//! Each partition remembers, for `reports.alert_lookback_secs` of event time, who got
//! which content: the delivered messages (allowed or labelled) whose verdict scored at
//! least `reports.alert_min_score`, by the reported-content fingerprint of their text. At
//! every commit, the contents blocked for reports or found to be campaigns since the last
//! one ([`ReportedContent::found_since`]) are looked up, and every recipient who got one of
//! them within the lookback before gets an alert on `topics.alerts`, in the same
//! transaction, once per recipient and content (advice `reported_after_delivery` or
//! `campaign_after_delivery`, a digit-masked excerpt).
//!
//! A content is found to be a campaign when a partition blocks a copy for
//! `campaign.same_text_many_senders` (the same masked text from many senders). The copies
//! delivered before may be in any partition, on any instance: so the partition that blocks
//! it writes a [`CampaignContent`] to `topics.campaign_contents` (once per content and
//! lookback), which every instance's report follower reads into its [`ReportedContent`].
//!
//! The memory is in the changelog, a record per remembered delivery (key
//! `<fingerprint as 16 hex digits>/<recipient>`, value: a version byte, then postcard of
//! [`Stored`]), so that a partition restored after a restart, a rebalance or a rewind
//! still warns about deliveries made before. A warned delivery is forgotten, and its
//! tombstone is written in the transaction of its alert, so no one is warned twice.
//! A restored partition looks at every content its instance knows to be found, not only
//! those found after the restore: deliveries warned about are no longer in its memory.
//!
//! The same deliveries are remembered instance-wide by message id
//! ([`ReportedContent::remember_delivery`]), so that the report follower can resolve a
//! report that names only a message id to its content; restored deliveries are told to it
//! too.
//!
//! The memory is bounded: `alert_max_contents` per partition, the oldest content making
//! room; `alert_max_recipients` per content.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use spamflow_schemas::{Action, Alert, CampaignContent, Verdict};

use crate::operator::{EventCtx, SideRecord, StateError, StateUpdate, StatefulOperator};
use crate::reports::{content_key, forget_oldest, Found, ReportedContent};

/// Operator name.
pub const NAME: &str = "late_alerts";
/// The alert's `advice` for content reported after delivery.
pub const ADVICE: &str = "reported_after_delivery";
/// The alert's `advice` for content found to be a campaign after delivery.
pub const CAMPAIGN_ADVICE: &str = "campaign_after_delivery";
/// The reason that makes a blocked copy a campaign's.
const CAMPAIGN_CODE: &str = "campaign.same_text_many_senders";
/// Characters of the excerpt.
const EXCERPT_CHARS: usize = 40;
/// Version byte of changelog values: postcard of [`Stored`] follows.
const VERSION: u8 = 1;

#[derive(Debug)]
struct Delivery {
    recipient: String,
    message_id: String,
    sender: String,
    submitted_at: DateTime<Utc>,
    action: Action,
    score: u8,
    /// In the changelog already.
    written: bool,
}

/// A remembered delivery as the changelog holds it (the recipient and the content are in
/// the key).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    message_id: String,
    sender: String,
    submitted_ms: i64,
    action: Action,
    score: u8,
    /// The content's excerpt (digits masked), for the alert.
    excerpt: String,
}

#[derive(Debug)]
struct Content {
    deliveries: Vec<Delivery>,
    excerpt: String,
    /// Event time of the latest delivery, ms.
    last_ms: i64,
}

#[derive(Debug, Default)]
struct Part {
    contents: HashMap<u64, Content>,
    /// The next block of [`ReportedContent`] not looked at yet.
    seq: u64,
    /// Contents this partition blocked as a campaign since the last snapshot, with the
    /// blocked copy's event time, ms: to be published.
    campaigns: Vec<(u64, i64)>,
    /// Contents this partition published as campaigns, with the time, ms.
    announced: HashMap<u64, i64>,
    /// Contents with deliveries not in the changelog yet.
    dirty: Vec<u64>,
    /// Changelog keys of deliveries forgotten since the last snapshot (tombstones).
    gone: Vec<Vec<u8>>,
}

impl Part {
    /// Forgets the deliveries of content `fp` for which `forget` holds.
    fn forget(&mut self, fp: u64, mut forget: impl FnMut(&Delivery) -> bool) -> Vec<Delivery> {
        let Some(c) = self.contents.get_mut(&fp) else {
            return Vec::new();
        };
        let (gone, kept) = std::mem::take(&mut c.deliveries)
            .into_iter()
            .partition(|d| forget(d));
        c.deliveries = kept;
        if c.deliveries.is_empty() {
            self.contents.remove(&fp);
        }
        self.tombstones(fp, &gone);
        gone
    }

    fn tombstones(&mut self, fp: u64, gone: &[Delivery]) {
        let written = gone.iter().filter(|d| d.written);
        self.gone
            .extend(written.map(|d| state_key(fp, &d.recipient)));
    }
}

/// The changelog key of content `fp`'s delivery to `recipient`.
fn state_key(fp: u64, recipient: &str) -> Vec<u8> {
    format!("{fp:016x}/{recipient}").into_bytes()
}

/// [`state_key`]'s content and recipient.
fn parse_state_key(key: &[u8]) -> Option<(u64, String)> {
    let key = std::str::from_utf8(key).ok()?;
    let (fp, recipient) = key.split_once('/')?;
    if fp.len() != 16 {
        return None;
    }
    Some((u64::from_str_radix(fp, 16).ok()?, recipient.to_owned()))
}

fn encode(d: &Delivery, excerpt: &str) -> Vec<u8> {
    let stored = Stored {
        message_id: d.message_id.clone(),
        sender: d.sender.clone(),
        submitted_ms: d.submitted_at.timestamp_millis(),
        action: d.action,
        score: d.score,
        excerpt: excerpt.to_owned(),
    };
    // Serializing strings and integers into a Vec cannot fail.
    postcard::to_extend(&stored, vec![VERSION]).unwrap_or_default()
}

fn decode(v: &[u8]) -> Result<Stored, String> {
    match v {
        [VERSION, rest @ ..] => {
            let (stored, left) = postcard::take_from_bytes::<Stored>(rest)
                .map_err(|e| format!("late-alert delivery: {e}"))?;
            if !left.is_empty() {
                return Err(format!("{} trailing bytes", left.len()));
            }
            Ok(stored)
        }
        _ => Err("unknown late-alert delivery version".into()),
    }
}

/// One worker's memory of deliveries, per partition.
#[derive(Debug)]
pub struct LateAlerts {
    reported: Arc<ReportedContent>,
    parts: HashMap<i32, Part>,
}

impl LateAlerts {
    /// Warns recipients of contents `reported` blocks or finds to be campaigns, and tells
    /// it the messages delivered, as its configuration says.
    pub fn new(reported: Arc<ReportedContent>) -> Self {
        LateAlerts {
            reported,
            parts: HashMap::new(),
        }
    }
}

/// The first characters of `text`, digits masked.
pub fn excerpt(text: &str) -> String {
    text.chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_ascii_digit() { '*' } else { c })
        .collect()
}

impl StatefulOperator for LateAlerts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn decided(&mut self, ctx: &EventCtx<'_>, verdict: &Verdict) {
        let cfg = self.reported.config();
        let campaign = cfg.alert_recipients
            && verdict.action == Action::Block
            && verdict.reasons.iter().any(|r| r.code == CAMPAIGN_CODE);
        let delivered = matches!(verdict.action, Action::Allow | Action::Label)
            && verdict.score >= cfg.alert_min_score;
        let resolvable = delivered && cfg.resolve_max_messages > 0;
        let remembered = delivered && cfg.alert_recipients;
        if ctx.counted || !(campaign || resolvable || remembered) {
            return;
        }
        let Some(key) = content_key(&ctx.event.text) else {
            return;
        };
        let p = self.parts.entry(ctx.partition).or_default();
        if resolvable {
            self.reported
                .remember_delivery(&ctx.event.message_id, key, ctx.event_time_ms);
        }
        if campaign {
            let at = ctx.event_time_ms;
            let lookback_ms = (cfg.alert_lookback_secs * 1000) as i64;
            if p.announced.get(&key).is_none_or(|&t| at - t > lookback_ms) {
                if !p.announced.contains_key(&key) && p.announced.len() >= cfg.alert_max_contents {
                    forget_oldest(&mut p.announced, |&t| t);
                }
                p.announced.insert(key, at);
                p.campaigns.push((key, at));
            }
            return;
        }
        if !remembered {
            return;
        }
        if !p.contents.contains_key(&key) && p.contents.len() >= cfg.alert_max_contents {
            for (fp, c) in forget_oldest(&mut p.contents, |c| c.last_ms) {
                p.tombstones(fp, &c.deliveries);
            }
        }
        let c = p.contents.entry(key).or_insert_with(|| Content {
            deliveries: Vec::new(),
            excerpt: excerpt(&ctx.event.text),
            last_ms: ctx.event_time_ms,
        });
        c.last_ms = c.last_ms.max(ctx.event_time_ms);
        let e = ctx.event;
        if c.deliveries.len() < cfg.alert_max_recipients
            && !c.deliveries.iter().any(|d| d.recipient == e.recipient)
        {
            c.deliveries.push(Delivery {
                recipient: e.recipient.clone(),
                message_id: e.message_id.clone(),
                sender: e.sender.clone(),
                submitted_at: e.submitted_at,
                action: verdict.action,
                score: verdict.score,
                written: false,
            });
            p.dirty.push(key);
        }
    }

    fn assigned(&mut self, partition: i32) {
        // Starts at the beginning of the instance's log of found contents: what was
        // warned about before is no longer in the (restored) memory.
        self.parts.insert(partition, Part::default());
    }

    fn restore(
        &mut self,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StateError> {
        let (fp, recipient) = parse_state_key(key)
            .ok_or_else(|| StateError::new(NAME, key, "not a late-alert delivery key"))?;
        let p = self.parts.entry(partition).or_default();
        let Some(v) = value else {
            if let Some(c) = p.contents.get_mut(&fp) {
                c.deliveries.retain(|d| d.recipient != recipient);
                if c.deliveries.is_empty() {
                    p.contents.remove(&fp);
                }
            }
            return Ok(());
        };
        let s = decode(v).map_err(|e| StateError::new(NAME, key, e))?;
        let submitted_at = DateTime::from_timestamp_millis(s.submitted_ms)
            .ok_or_else(|| StateError::new(NAME, key, "submission time out of range"))?;
        if self.reported.config().resolve_max_messages > 0 {
            self.reported
                .remember_delivery(&s.message_id, fp, s.submitted_ms);
        }
        let c = p.contents.entry(fp).or_insert_with(|| Content {
            deliveries: Vec::new(),
            excerpt: s.excerpt,
            last_ms: s.submitted_ms,
        });
        c.last_ms = c.last_ms.max(s.submitted_ms);
        c.deliveries.retain(|d| d.recipient != recipient);
        c.deliveries.push(Delivery {
            recipient,
            message_id: s.message_id,
            sender: s.sender,
            submitted_at,
            action: s.action,
            score: s.score,
            written: true,
        });
        Ok(())
    }

    fn revoked(&mut self, partition: i32) {
        self.parts.remove(&partition);
    }

    fn snapshot(&mut self, partition: i32, out: &mut Vec<StateUpdate>) {
        let Some(p) = self.parts.get_mut(&partition) else {
            return;
        };
        // Tombstones first: a delivery forgotten and made again since is written after.
        out.extend(p.gone.drain(..).map(|key| StateUpdate { key, value: None }));
        p.dirty.sort_unstable();
        p.dirty.dedup();
        for fp in p.dirty.drain(..) {
            let Some(c) = p.contents.get_mut(&fp) else {
                continue;
            };
            for d in c.deliveries.iter_mut().filter(|d| !d.written) {
                d.written = true;
                out.push(StateUpdate {
                    key: state_key(fp, &d.recipient),
                    value: Some(encode(d, &c.excerpt)),
                });
            }
        }
    }

    fn side_records(&mut self, partition: i32, out: &mut Vec<SideRecord>) {
        let cfg = self.reported.config();
        let Some(p) = self.parts.get_mut(&partition) else {
            return;
        };
        if !cfg.alert_recipients {
            return;
        }
        out.extend(p.campaigns.drain(..).map(|(fp, at)| {
            SideRecord::Campaign(CampaignContent {
                schema_version: 1,
                fingerprint: format!("{fp:016x}"),
                detected_at: DateTime::from_timestamp_millis(at).unwrap_or_default(),
            })
        }));
        let lookback_ms = (cfg.alert_lookback_secs * 1000) as i64;
        // (content, when it was found, ms; advice)
        let mut newly = Vec::new();
        p.seq = self.reported.found_since(p.seq, |fp, since, how| {
            let advice = match how {
                Found::Reported => ADVICE,
                Found::Campaign => CAMPAIGN_ADVICE,
            };
            newly.push((fp, since, advice));
        });
        for (fp, since_ms, advice) in newly {
            let Some(excerpt) = p.contents.get(&fp).map(|c| c.excerpt.clone()) else {
                continue;
            };
            // Deliveries up to the finding are done with: warned, or older than the
            // lookback. Later ones wait for a later finding.
            for d in p.forget(fp, |d| d.submitted_at.timestamp_millis() <= since_ms) {
                if d.submitted_at.timestamp_millis() < since_ms - lookback_ms {
                    continue;
                }
                out.push(SideRecord::Alert(Alert {
                    schema_version: 1,
                    message_id: d.message_id,
                    recipient: d.recipient,
                    sender: d.sender,
                    submitted_at: d.submitted_at,
                    action: d.action,
                    score: d.score,
                    categories: vec!["reports".into()],
                    warning: cfg.alert_warning.clone(),
                    advice: Some(advice.into()),
                    excerpt: Some(excerpt.clone()),
                }));
            }
        }
        // Forget what is older than the lookback behind the newest delivery.
        if let Some(newest) = p.contents.values().map(|c| c.last_ms).max() {
            let old: Vec<u64> = p
                .contents
                .iter()
                .filter(|(_, c)| c.last_ms < newest - lookback_ms)
                .map(|(fp, _)| *fp)
                .collect();
            for fp in old {
                p.forget(fp, |_| true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::ReportsConfig;
    use spamflow_schemas::SubmissionEvent;

    const SPAM: &str = "[Web발신] 고객님 택배 주소지 불명으로 보관중 확인 cj-parcel.top/a1";

    fn event(id: &str, recipient: &str, text: &str, at_ms: i64) -> SubmissionEvent {
        crate::testutil::event(id, "+821012345678", recipient, text, at_ms)
    }

    fn verdict(action: Action, score: u8) -> Verdict<'static> {
        crate::testutil::verdict(action, score, &[])
    }

    fn deliver(op: &mut LateAlerts, ev: &SubmissionEvent, action: Action, score: u8) {
        let ctx = EventCtx {
            event: ev,
            sender: &crate::origin::parse_sender(&ev.sender),
            partition: 0,
            event_time_ms: ev.submitted_at.timestamp_millis(),
            counted: false,
        };
        op.decided(&ctx, &verdict(action, score));
    }

    fn alerts(op: &mut LateAlerts) -> Vec<Alert> {
        let mut out = Vec::new();
        op.side_records(0, &mut out);
        out.into_iter()
            .map(|r| match r {
                SideRecord::Alert(a) => a,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn recipients_of_content_reported_after_delivery_are_warned_once() {
        let reported = Arc::new(ReportedContent::new(ReportsConfig {
            min_reporters: 2,
            ..ReportsConfig::default()
        }));
        let mut op = LateAlerts::new(reported.clone());
        op.assigned(0);
        let t0 = 1_800_000_000_000;
        deliver(
            &mut op,
            &event("m1", "+821011110001", SPAM, t0),
            Action::Allow,
            40,
        );
        deliver(
            &mut op,
            &event("m2", "+821011110001", SPAM, t0 + 1),
            Action::Label,
            60,
        );
        deliver(
            &mut op,
            &event("m3", "+821011110002", SPAM, t0 + 2),
            Action::Label,
            60,
        );
        // Not remembered: blocked, scored too low, another content.
        deliver(
            &mut op,
            &event("m4", "+821011110003", SPAM, t0 + 3),
            Action::Block,
            90,
        );
        deliver(
            &mut op,
            &event("m5", "+821011110004", SPAM, t0 + 4),
            Action::Allow,
            5,
        );
        let chat = "내일 점심 같이 먹을래? 12시에 회사 앞에서 보자";
        deliver(
            &mut op,
            &event("m6", "+821011110005", chat, t0 + 5),
            Action::Allow,
            40,
        );
        assert!(alerts(&mut op).is_empty(), "nothing reported yet");
        reported.add(SPAM, 1, t0 + 10);
        reported.add(SPAM, 2, t0 + 20);
        let got = alerts(&mut op);
        let who: Vec<(&str, &str)> = got
            .iter()
            .map(|a| (a.recipient.as_str(), a.message_id.as_str()))
            .collect();
        assert_eq!(who, vec![("+821011110001", "m1"), ("+821011110002", "m3")]);
        assert_eq!(got[0].advice.as_deref(), Some(ADVICE));
        assert_eq!(got[0].excerpt.as_deref(), Some(&*excerpt(SPAM)));
        assert!(!got[0].excerpt.as_ref().unwrap().contains('1'));
        assert_eq!(got[0].categories, vec!["reports".to_string()]);
        assert!(alerts(&mut op).is_empty(), "once per recipient and content");
        // A partition assigned after the block does not warn about it.
        let mut other = LateAlerts::new(reported.clone());
        other.assigned(0);
        deliver(
            &mut other,
            &event("m7", "+821011110009", SPAM, t0 + 30),
            Action::Allow,
            40,
        );
        assert!(alerts(&mut other).is_empty());
    }

    /// The changelog records of partition 0 since the last snapshot, applied to `log`.
    fn snapshot_into(op: &mut LateAlerts, log: &mut std::collections::BTreeMap<Vec<u8>, Vec<u8>>) {
        let mut out = Vec::new();
        op.snapshot(0, &mut out);
        for u in out {
            match u.value {
                Some(v) => log.insert(u.key, v),
                None => log.remove(&u.key),
            };
        }
    }

    /// A new worker (of a new instance) with partition 0 restored from `log`.
    fn restored(
        reported: &Arc<ReportedContent>,
        log: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> LateAlerts {
        let mut op = LateAlerts::new(reported.clone());
        op.assigned(0);
        for (k, v) in log {
            op.restore(0, k, Some(v)).unwrap();
        }
        op
    }

    #[test]
    fn deliveries_survive_a_restart_in_the_changelog_and_are_warned_about_once() {
        let cfg = ReportsConfig {
            min_reporters: 2,
            ..ReportsConfig::default()
        };
        let mut op = LateAlerts::new(Arc::new(ReportedContent::new(cfg.clone())));
        op.assigned(0);
        let t0 = 1_800_000_000_000;
        let mut log = std::collections::BTreeMap::new();
        deliver(
            &mut op,
            &event("m1", "+821011110001", SPAM, t0),
            Action::Allow,
            40,
        );
        deliver(
            &mut op,
            &event("m2", "+821011110002", SPAM, t0 + 1),
            Action::Label,
            60,
        );
        snapshot_into(&mut op, &mut log);
        assert_eq!(log.len(), 2, "a record per delivery");
        let mut again = Vec::new();
        op.snapshot(0, &mut again);
        assert!(again.is_empty(), "written once: {again:?}");
        deliver(
            &mut op,
            &event("m3", "+821011110003", SPAM, t0 + 2),
            Action::Allow,
            40,
        );
        // The instance dies before m3's record is committed; another one restores the
        // partition, with the report follower starting afresh.
        let reported = Arc::new(ReportedContent::new(cfg));
        let mut op = restored(&reported, &log);
        assert_eq!(reported.resolve("m2"), content_key(SPAM), "message ids too");
        // Reports read before the restore count as well.
        reported.add(SPAM, 1, t0 + 10);
        reported.add(SPAM, 2, t0 + 20);
        let mut op2 = restored(&reported, &log);
        for op in [&mut op, &mut op2] {
            let got = alerts(op);
            let who: Vec<&str> = got.iter().map(|a| a.message_id.as_str()).collect();
            assert_eq!(who, vec!["m1", "m2"]);
            assert_eq!(got[0].excerpt.as_deref(), Some(&*excerpt(SPAM)));
            assert_eq!(got[1].action, Action::Label);
            assert_eq!(got[1].score, 60);
        }
        // The alerts' commit forgets the deliveries: restored again, nobody is warned twice.
        snapshot_into(&mut op, &mut log);
        assert!(log.is_empty(), "{log:?}");
        assert!(alerts(&mut restored(&reported, &log)).is_empty());
        // A value of another version is refused with the key.
        let mut bad = LateAlerts::new(reported);
        let key = state_key(7, "+821011110001");
        let e = bad.restore(0, &key, Some(&[9, 1, 2])).unwrap_err();
        assert!(e.to_string().contains("version"), "{e}");
        assert!(bad.restore(0, b"nonsense", Some(&[1])).is_err());
    }

    #[test]
    fn recipients_of_content_later_blocked_as_a_campaign_elsewhere_are_warned_once() {
        // Partition 0 delivered the content; partition 1 (here on another worker) blocks
        // copies of it as a campaign.
        let reported = Arc::new(ReportedContent::new(ReportsConfig::default()));
        let mut op = LateAlerts::new(reported.clone());
        op.assigned(0);
        let mut elsewhere = LateAlerts::new(reported.clone());
        elsewhere.assigned(1);
        let t0 = 1_800_000_000_000;
        deliver(
            &mut op,
            &event("c1", "+821011110001", SPAM, t0),
            Action::Allow,
            30,
        );
        deliver(
            &mut op,
            &event("c2", "+821011110002", SPAM, t0 + 1),
            Action::Label,
            55,
        );
        let decide = |op: &mut LateAlerts, id: &str, code: &str| {
            let ev = event(id, "+821011110003", SPAM, t0 + 2);
            let ctx = EventCtx {
                event: &ev,
                sender: &crate::origin::parse_sender(&ev.sender),
                partition: 1,
                event_time_ms: ev.submitted_at.timestamp_millis(),
                counted: false,
            };
            let mut v = crate::testutil::verdict(Action::Block, 90, &["campaign"]);
            v.reasons[0].code = code.into();
            op.decided(&ctx, &v);
        };
        let published = |op: &mut LateAlerts| {
            let mut out = Vec::new();
            op.side_records(1, &mut out);
            out.into_iter()
                .map(|r| match r {
                    SideRecord::Campaign(c) => c,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        // Blocked for another reason: no campaign.
        decide(&mut elsewhere, "c3", "gambling.x");
        assert!(published(&mut elsewhere).is_empty());
        decide(&mut elsewhere, "c4", CAMPAIGN_CODE);
        decide(&mut elsewhere, "c5", CAMPAIGN_CODE);
        let got = published(&mut elsewhere);
        assert_eq!(got.len(), 1, "once per content and lookback: {got:?}");
        assert_eq!(
            got[0].fingerprint,
            format!("{:016x}", content_key(SPAM).unwrap())
        );
        assert_eq!(got[0].detected_at.timestamp_millis(), t0 + 2);
        assert!(
            alerts(&mut op).is_empty(),
            "not until the record is read back"
        );
        // Every instance's report follower reads the record back.
        reported.campaign(content_key(SPAM).unwrap(), t0 + 2);
        let got = alerts(&mut op);
        let who: Vec<(&str, Option<&str>)> = got
            .iter()
            .map(|a| (a.message_id.as_str(), a.advice.as_deref()))
            .collect();
        assert_eq!(
            who,
            vec![("c1", Some(CAMPAIGN_ADVICE)), ("c2", Some(CAMPAIGN_ADVICE))]
        );
        reported.campaign(content_key(SPAM).unwrap(), t0 + 3);
        assert!(alerts(&mut op).is_empty(), "once per recipient and content");
    }

    #[test]
    fn memory_is_bounded_and_forgets_what_is_older_than_the_lookback() {
        let reported = Arc::new(ReportedContent::new(ReportsConfig {
            min_reporters: 1,
            alert_max_contents: 2,
            alert_max_recipients: 1,
            alert_lookback_secs: 60,
            ..ReportsConfig::default()
        }));
        let mut op = LateAlerts::new(reported.clone());
        op.assigned(0);
        let t0 = 1_800_000_000_000;
        let texts = [
            "첫 번째 광고 문자 내용입니다 확인하세요",
            "두 번째 광고 문자 내용입니다 확인하세요 지금",
            "세 번째 광고 문자 내용입니다 확인하세요 오늘만",
        ];
        let mut log = std::collections::BTreeMap::new();
        for (i, t) in texts.iter().enumerate() {
            snapshot_into(&mut op, &mut log);
            let at = t0 + i as i64 * 1_000;
            deliver(
                &mut op,
                &event("a", "+821011110001", t, at),
                Action::Allow,
                40,
            );
            deliver(
                &mut op,
                &event("b", "+821011110002", t, at),
                Action::Allow,
                40,
            );
        }
        // The first content made room for the third; one recipient each.
        reported.add(texts[0], 1, t0 + 5_000);
        reported.add(texts[2], 1, t0 + 5_000);
        let got = alerts(&mut op);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].recipient, "+821011110001");
        // Two minutes on, the second content is forgotten.
        deliver(
            &mut op,
            &event(
                "c",
                "+821011110003",
                "또 다른 내용의 문자 메시지입니다 여기",
                t0 + 120_000,
            ),
            Action::Allow,
            40,
        );
        let _ = alerts(&mut op);
        reported.add(texts[1], 1, t0 + 121_000);
        assert!(alerts(&mut op).is_empty());
        // What was forgotten is forgotten in the changelog too.
        snapshot_into(&mut op, &mut log);
        let c = content_key("또 다른 내용의 문자 메시지입니다 여기").unwrap();
        let keys: Vec<&Vec<u8>> = log.keys().collect();
        assert_eq!(keys, vec![&state_key(c, "+821011110003")]);
    }

    #[test]
    fn delivered_messages_are_remembered_by_id_for_reports_that_name_only_the_id() {
        let reported = Arc::new(ReportedContent::new(ReportsConfig::default()));
        let mut op = LateAlerts::new(reported.clone());
        op.assigned(0);
        let t0 = 1_800_000_000_000;
        deliver(
            &mut op,
            &event("m1", "+821011110001", SPAM, t0),
            Action::Label,
            60,
        );
        // Not remembered: blocked (never delivered), or scored below alert_min_score.
        deliver(
            &mut op,
            &event("m2", "+821011110002", SPAM, t0),
            Action::Block,
            90,
        );
        deliver(
            &mut op,
            &event("m3", "+821011110003", SPAM, t0),
            Action::Allow,
            5,
        );
        assert_eq!(reported.resolve("m1"), content_key(SPAM));
        assert_eq!(reported.resolve("m2"), None);
        assert_eq!(reported.resolve("m3"), None);
        assert_eq!(reported.resolve("unknown"), None);
        // A rewind or a move of the partition does not forget them.
        op.revoked(0);
        op.assigned(0);
        assert_eq!(reported.resolve("m1"), content_key(SPAM));
        // Without alerts, deliveries are still remembered.
        let quiet = Arc::new(ReportedContent::new(ReportsConfig {
            alert_recipients: false,
            ..ReportsConfig::default()
        }));
        let mut op = LateAlerts::new(quiet.clone());
        op.assigned(0);
        deliver(
            &mut op,
            &event("m1", "+821011110001", SPAM, t0),
            Action::Allow,
            60,
        );
        assert_eq!(quiet.resolve("m1"), content_key(SPAM));
    }
}
