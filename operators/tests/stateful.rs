//! The stateful operators (velocity, throttle) through a chain: rules, campaigns, relay
//! quotas on event time, and exact continuation from changelog snapshots.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use spamflow_operators::throttle::{QuotaStep, ThrottleConfig, ThrottleFactory, ThrottleStats};
use spamflow_operators::velocity::{
    Metric, RuleAction, Scope, VelocityConfig, VelocityFactory, VelocityRule, VelocityStats,
};
use spamflow_operators::{
    ActionHint, Chain, ChainBuilder, EventCtx, OperatorWorker, PolicyConfig, Signal,
    StatefulOperator, StatelessOperator,
};
use spamflow_schemas::{Action, MessageKind, Origin, Relay, Route, SubmissionEvent, Verdict};

fn t0() -> DateTime<Utc> {
    "2026-03-01T00:00:00Z".parse().unwrap()
}

fn event(
    i: usize,
    sender: &str,
    recipient: &str,
    text: &str,
    at: DateTime<Utc>,
) -> SubmissionEvent {
    SubmissionEvent {
        schema_version: 1,
        message_id: format!("m{i}"),
        submitted_at: at,
        sender: sender.into(),
        recipient: recipient.into(),
        text: text.into(),
        kind: MessageKind::Sms,
        origin: Origin {
            route: Route::Domestic,
            gateway: None,
            smsc: "s".into(),
            country: None,
        },
        relay: None,
    }
}

fn bulk(mut ev: SubmissionEvent, relay: &str) -> SubmissionEvent {
    ev.relay = Some(Relay {
        operator: Some(relay.into()),
        reseller: Some(format!("{relay}-reseller")),
        first_sender_code: None,
    });
    ev
}

/// Blocks texts containing `SPAM` (stands in for the pattern operator).
#[derive(Debug)]
struct Keyword;

impl StatelessOperator for Keyword {
    fn name(&self) -> &'static str {
        "keyword"
    }
    fn content_hash(&self) -> String {
        "keyword".into()
    }
    fn worker(&self) -> Box<dyn OperatorWorker> {
        Box::new(Keyword)
    }
}

impl OperatorWorker for Keyword {
    fn inspect(&mut self, ctx: &EventCtx<'_>, out: &mut Vec<Signal>) {
        if ctx.event.text.contains("SPAM") {
            out.push(Signal {
                hint: ActionHint::Block,
                ..Signal::new("keyword", "test.spam", "test", 90)
            });
        }
    }
}

fn builder(v: Option<VelocityConfig>, t: Option<ThrottleConfig>) -> ChainBuilder {
    let mut b = ChainBuilder::new(PolicyConfig::default().build()).stateless(Arc::new(Keyword));
    if let Some(v) = v {
        let f = VelocityFactory::new(v, Arc::new(VelocityStats::default()));
        b = b.stateful("velocity", move || Box::new(f.build()));
    }
    if let Some(t) = t {
        let f = ThrottleFactory::new(t, Arc::new(ThrottleStats::default()));
        b = b.stateful("throttle", move || Box::new(f.build()));
    }
    b
}

fn process(chain: &mut Chain, ev: &SubmissionEvent) -> Verdict<'static> {
    let sender = chain.sender(&ev.sender);
    chain
        .process(
            &EventCtx {
                event: ev,
                sender: &sender,
                partition: 0,
                event_time_ms: ev.event_time_ms(),
                counted: false,
            },
            ev.submitted_at,
        )
        .into_owned()
}

fn codes<'v>(v: &'v Verdict<'_>) -> Vec<&'v str> {
    v.reasons.iter().map(|r| &*r.code).collect()
}

fn only(rule: VelocityRule) -> VelocityConfig {
    VelocityConfig {
        rules: vec![rule],
        ..VelocityConfig::default()
    }
}

#[test]
fn the_501st_message_of_a_day_is_throttled_until_the_oldest_hour_leaves_the_window() {
    let cap = VelocityConfig::default().rules[0].clone();
    assert_eq!(cap.code, "velocity.daily_cap");
    let mut chain = builder(Some(only(cap)), None).build();
    chain.assigned(0);
    let mut last = None;
    for i in 0..501 {
        let ev = event(
            i,
            "010-2222-3333",
            &format!("010-5555-{:04}", i % 3),
            "안녕하세요 내일 뵙겠습니다",
            t0() + Duration::minutes(i as i64),
        );
        let v = process(&mut chain, &ev);
        if i < 500 {
            assert_eq!(v.action, Action::Allow, "message {i}: {:?}", codes(&v));
        }
        last = Some(v);
    }
    let v = last.unwrap();
    assert_eq!(v.action, Action::Throttle);
    assert_eq!(codes(&v), ["velocity.daily_cap"]);
    assert_eq!(v.reasons[0].evidence.as_deref(), Some("sent=501 in 24h"));
    // The 501st is at 8h20m; the bucket of hour 0 leaves the 24 h window at 24h.
    assert_eq!(v.retry_after_ms, Some((24 * 3600 - 500 * 60) * 1000));
}

#[test]
fn a_line_spraying_new_recipients_is_labelled_and_a_normal_one_is_not() {
    let mut chain = builder(Some(VelocityConfig::default()), None).build();
    chain.assigned(0);
    let mut flagged_at = BTreeMap::new();
    for i in 0..40 {
        let at = t0() + Duration::seconds(i as i64);
        let spray = event(
            i,
            "010-7777-0000",
            &format!("010-4000-{i:04}"),
            &format!("문의 주세요 {i}"),
            at,
        );
        let v = process(&mut chain, &spray);
        for c in codes(&v) {
            flagged_at.entry(c.to_owned()).or_insert(i);
        }
        let normal = event(1000 + i, "010-8888-0000", "010-9999-0001", "어디야?", at);
        let n = process(&mut chain, &normal);
        assert!(
            !codes(&n)
                .iter()
                .any(|c| c.starts_with("velocity.recipient")),
            "{:?}",
            codes(&n)
        );
    }
    // 21 distinct recipients within the minute: the burst rule; 30 messages in the hour
    // (min_messages), all to first contacts: the spray rule.
    assert_eq!(flagged_at.get("velocity.recipient_burst"), Some(&20));
    assert_eq!(flagged_at.get("velocity.first_contact_spray"), Some(&29));
    let at = t0() + Duration::seconds(41);
    let v = process(
        &mut chain,
        &event(99, "010-7777-0000", "010-4000-9999", "문의 주세요", at),
    );
    assert_eq!(v.action, Action::Label, "{:?}", codes(&v));
    // The masked text ("문의 주세요 #") repeats too: 1 - 0.5 * 0.6 * 0.7.
    assert_eq!(
        codes(&v),
        [
            "velocity.recipient_burst",
            "velocity.first_contact_spray",
            "velocity.repeated_content"
        ]
    );
    assert_eq!(v.score, 79);
}

#[test]
fn one_masked_text_from_many_senders_is_a_campaign_but_chat_and_bulk_are_not() {
    let mut chain = builder(Some(VelocityConfig::default()), None).build();
    chain.assigned(0);
    let names = ["김철수", "이영희", "박민수", "최지우", "정다은"];
    let mut seen = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let text = format!("{name}님 정부지원 대출 한도 조회 승인 완료 상담 010-3{i}00-1234");
        let at = t0() + Duration::seconds(30 * i as i64);
        let v = process(
            &mut chain,
            &event(i, &format!("010-1000-000{i}"), "010-2000-0000", &text, at),
        );
        seen.push(codes(&v).contains(&"campaign.same_text_many_senders"));
        if i == 4 {
            assert_eq!(
                v.reasons[0].evidence.as_deref(),
                Some("5 senders of one text in 600s (partition 0)")
            );
        }
        // Short chat from as many senders is not a campaign.
        let chat = process(
            &mut chain,
            &event(
                10 + i,
                &format!("010-1100-000{i}"),
                "010-2000-0000",
                "ㅇㅋ 알겠어",
                at,
            ),
        );
        assert!(codes(&chat).is_empty());
        // Bulk notices through a relay are not campaigns (the registry covers them).
        let notice = bulk(
            event(
                20 + i,
                &format!("1588-000{i}"),
                "010-2000-0000",
                "[은행] 고객님의 대출 만기 안내 문의 1588-0000 www.bank.example",
                at,
            ),
            "relayco",
        );
        assert!(codes(&process(&mut chain, &notice)).is_empty());
    }
    assert_eq!(seen, [false, false, false, false, true]);
}

/// A deterministic mixed workload: chat, sprayers, a campaign and bulk traffic through
/// two relay operators, one of them carrying spam.
fn workload(n: usize) -> Vec<SubmissionEvent> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            // Mostly in order, some up to 2 minutes late, an occasional far outlier.
            let mut at = t0() + Duration::milliseconds(i as i64 * 150);
            if r % 10 == 0 {
                at -= Duration::seconds((r % 120) as i64);
            }
            if r % 997 == 0 {
                at += Duration::days(3);
            }
            let sender = format!("010-3{:03}-{:04}", r % 7, (r >> 8) % 150);
            let recipient = format!("010-6{:03}-{:04}", (r >> 16) % 3, (r >> 24) % 400);
            match r % 5 {
                0 => bulk(
                    event(
                        i,
                        &format!("1588-{:04}", r % 40),
                        &recipient,
                        "SPAM 대박 이벤트 당첨 bit.ly/x",
                        at,
                    ),
                    "spamrelay",
                ),
                1 => bulk(
                    event(
                        i,
                        &format!("1577-{:04}", r % 40),
                        &recipient,
                        "[택배] 배송 완료 안내 1577-0000",
                        at,
                    ),
                    "goodrelay",
                ),
                2 => event(
                    i,
                    &sender,
                    &recipient,
                    &format!(
                        "{}님 정부지원 저금리 대출 무료 상담 신청 010-9{:03}-1111 bit.ly/q",
                        ["김", "이"][i % 2],
                        r % 999
                    ),
                    at,
                ),
                _ => event(i, &sender, &recipient, "이따 전화할게", at),
            }
        })
        .collect()
}

fn tight_throttle() -> ThrottleConfig {
    ThrottleConfig {
        window_secs: 60,
        buckets: 6,
        min_messages: 20,
        steps: vec![
            QuotaStep {
                spam_ratio: 0.0,
                per_second: 5,
                burst: 10,
            },
            QuotaStep {
                spam_ratio: 0.3,
                per_second: 1,
                burst: 2,
            },
        ],
        ..ThrottleConfig::default()
    }
}

#[test]
fn state_restored_from_coalesced_snapshots_continues_exactly_like_an_uninterrupted_run() {
    let evs = workload(6_000);
    let b = builder(Some(VelocityConfig::default()), Some(tight_throttle()));
    let mut straight = b.build();
    straight.assigned(0);
    let want: Vec<Verdict> = evs
        .iter()
        .map(|e| process(&mut straight, e).decision())
        .collect();
    for v in [&Action::Throttle, &Action::Label, &Action::Block] {
        assert!(want.iter().any(|w| &w.action == v), "workload has no {v:?}");
    }

    // The same, with a snapshot every 500 events into a compacted "changelog", and a
    // crash after event 3,700 (the last snapshot was at 3,500: the pipeline rewinds to
    // it and processes 3,500.. again).
    let mut log: BTreeMap<(String, Vec<u8>), Option<Vec<u8>>> = BTreeMap::new();
    let mut chain = b.build();
    chain.assigned(0);
    let mut got = Vec::new();
    let mut buf = Vec::new();
    let mut i = 0;
    let mut crashed = false;
    while i < evs.len() {
        if i > 0 && i % 500 == 0 {
            let mut n = 0;
            let mut keys = std::collections::HashSet::new();
            chain.snapshot(0, &mut buf, |op, u, _| {
                n += 1;
                keys.insert((op, u.key.clone()));
                log.insert((op.to_owned(), u.key), u.value);
            });
            assert_eq!(n, keys.len(), "one record per changed key per snapshot");
            assert!(n < 500, "coalesced: {n} records for 500 events");
        }
        if i == 3_700 && !crashed {
            crashed = true;
            chain = b.build();
            chain.assigned(0);
            for ((op, key), value) in &log {
                assert!(chain.restore(0, op, key, value.as_deref()).unwrap());
            }
            got.truncate(3_500);
            i = 3_500;
        }
        got.push(process(&mut chain, &evs[i]).decision());
        i += 1;
    }
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
}

#[test]
fn evicting_idle_senders_never_changes_a_verdict() {
    // Short windows so that senders go idle within the workload's 15 minutes.
    let short = |sweep_every_secs| VelocityConfig {
        windows: vec![spamflow_operators::velocity::WindowConfig {
            name: "1m".into(),
            bucket_secs: 10,
            buckets: 6,
        }],
        allowed_lateness_secs: 30,
        sweep_every_secs,
        rules: vec![VelocityRule {
            code: "velocity.busy".into(),
            window: "1m".into(),
            metric: Metric::Sent,
            above: 1.0,
            min_messages: 0,
            score: 60,
            action: RuleAction::Score,
            applies_to: Scope::All,
        }],
        campaign: spamflow_operators::velocity::CampaignConfig {
            window_secs: 60,
            ..Default::default()
        },
        ..VelocityConfig::default()
    };
    let evs = workload(6_000);
    let run = |sweep_every_secs| {
        let stats = Arc::new(VelocityStats::default());
        let f = VelocityFactory::new(short(sweep_every_secs), stats.clone());
        let mut chain = ChainBuilder::new(PolicyConfig::default().build())
            .stateful("velocity", move || Box::new(f.build()))
            .build();
        chain.assigned(0);
        let verdicts: Vec<Verdict> = evs
            .iter()
            .map(|e| process(&mut chain, e).decision())
            .collect();
        (verdicts, stats.evicted.load(Relaxed))
    };
    let (often, evicted) = run(1);
    let (never, none) = run(1_000_000);
    assert!(evicted > 100, "only {evicted} evictions");
    assert_eq!(none, 0);
    assert!(often.iter().any(|v| codes(v).contains(&"velocity.busy")));
    // The sweep period is configuration, so rules_version differs; nothing else may.
    let differ: Vec<&str> = often
        .iter()
        .zip(&never)
        .filter(|(a, b)| {
            (a.action, a.score, &a.reasons, a.retry_after_ms)
                != (b.action, b.score, &b.reasons, b.retry_after_ms)
        })
        .map(|(a, _)| &*a.message_id)
        .take(5)
        .collect();
    assert!(differ.is_empty(), "eviction changed verdicts: {differ:?}");
}

#[test]
fn a_spamming_relay_is_slowed_down_and_recovers_when_it_cleans_up() {
    let stats = Arc::new(ThrottleStats::default());
    let f = ThrottleFactory::new(tight_throttle(), stats.clone());
    let mut chain = ChainBuilder::new(PolicyConfig::default().build())
        .stateless(Arc::new(Keyword))
        .stateful("throttle", move || Box::new(f.build()))
        .build();
    chain.assigned(0);
    let at = |ms: i64| t0() + Duration::milliseconds(ms);
    let mut i = 0;
    let mut send = |chain: &mut Chain, text: &str, ms: i64| {
        i += 1;
        process(
            chain,
            &bulk(event(i, "1588-1234", "010-1111-2222", text, at(ms)), "R"),
        )
    };
    // Clean traffic at 4/s is under the base quota (5/s).
    for k in 0..40 {
        assert_eq!(send(&mut chain, "정상 안내", k * 250).action, Action::Allow);
    }
    // Then half of it spam: the ratio passes 0.3 and the quota tightens to 1/s, burst 2.
    let mut throttled = Vec::new();
    for k in 40..120 {
        let text = if k % 2 == 0 {
            "SPAM 광고"
        } else {
            "정상 안내"
        };
        let v = send(&mut chain, text, k * 250);
        if v.action == Action::Throttle {
            throttled.push(v);
        }
    }
    assert!(!throttled.is_empty());
    let v = &throttled[0];
    assert_eq!(codes(v), ["throttle.relay_quota"]);
    assert!(v.retry_after_ms.unwrap() > 0 && v.retry_after_ms.unwrap() <= 1_000);
    assert!(v.reasons[0].evidence.as_deref().unwrap().contains("step 1"));
    // Clean again at 1/s: after the 60 s window the ratio falls and the quota relaxes.
    for k in 0..70 {
        send(&mut chain, "정상 안내", 30_000 + k * 1_000);
    }
    for k in 0..8 {
        let v = send(&mut chain, "정상 안내", 100_000 + k * 250);
        assert_eq!(v.action, Action::Allow, "relaxed to 5/s: {:?}", codes(&v));
    }
    assert!(stats.step_changes.load(Relaxed) >= 2);
}

#[test]
fn blocked_messages_give_their_quota_back() {
    let cfg = ThrottleConfig {
        min_messages: 1_000_000, // keep the base step
        steps: vec![QuotaStep {
            spam_ratio: 0.0,
            per_second: 1,
            burst: 3,
        }],
        ..ThrottleConfig::default()
    };
    let mut chain = builder(None, Some(cfg)).build();
    chain.assigned(0);
    let mut n = 0;
    let mut at = |text: &str| {
        n += 1;
        bulk(event(n, "1588-1234", "010-1111-2222", text, t0()), "R")
    };
    for _ in 0..10 {
        assert_eq!(process(&mut chain, &at("SPAM")).action, Action::Block);
    }
    for _ in 0..3 {
        assert_eq!(process(&mut chain, &at("안내")).action, Action::Allow);
    }
    assert_eq!(process(&mut chain, &at("안내")).action, Action::Throttle);
}

#[test]
fn events_far_in_the_future_or_past_are_processed_and_counted() {
    let stats = Arc::new(VelocityStats::default());
    let f = VelocityFactory::new(VelocityConfig::default(), stats.clone());
    let mut chain = ChainBuilder::new(PolicyConfig::default().build())
        .stateful("velocity", move || Box::new(f.build()))
        .build();
    chain.assigned(0);
    let s = "010-1234-5678";
    process(&mut chain, &event(0, s, "010-0000-0001", "a", t0()));
    let v = process(
        &mut chain,
        &event(1, s, "010-0000-0001", "a", t0() + Duration::days(3650)),
    );
    assert_eq!(v.action, Action::Allow);
    assert_eq!(stats.future.load(Relaxed), 1);
    let v = process(
        &mut chain,
        &event(2, s, "010-0000-0001", "a", t0() - Duration::days(3650)),
    );
    assert_eq!(v.action, Action::Allow);
    assert_eq!(stats.stale.load(Relaxed), 1);
    // Late but within the horizon, more than the allowed lateness: counted at the watermark.
    process(
        &mut chain,
        &event(3, s, "010-0000-0001", "a", t0() + Duration::seconds(3_600)),
    );
    process(
        &mut chain,
        &event(4, s, "010-0000-0001", "a", t0() + Duration::seconds(60)),
    );
    assert_eq!(stats.late.load(Relaxed), 1);
    // Senders that are no valid address at all still get a verdict.
    let long = "x".repeat(4_000);
    for weird in ["", "   ", "+", "☎☎☎", long.as_str()] {
        let v = process(&mut chain, &event(5, weird, weird, "a", t0()));
        assert_eq!(v.action, Action::Allow);
    }
}

#[test]
fn velocity_rules_are_config_not_code() {
    let rule = VelocityRule {
        code: "velocity.custom".into(),
        window: "1m".into(),
        metric: Metric::Sent,
        above: 2.0,
        min_messages: 0,
        score: 0,
        action: RuleAction::Block,
        applies_to: Scope::All,
    };
    let mut chain = builder(Some(only(rule.clone())), None).build();
    chain.assigned(0);
    let acts: Vec<Action> = (0..4)
        .map(|i| {
            let ev = bulk(event(i, "1588-1111", "010-1", "안내", t0()), "R");
            process(&mut chain, &ev).action
        })
        .collect();
    assert_eq!(
        acts,
        [Action::Allow, Action::Allow, Action::Block, Action::Block]
    );
    // Every spelling of one number is one sender, for velocity as for the origin checks
    // (the chain parses the sender once and every operator reads that identity).
    let mut chain = builder(Some(only(rule.clone())), None).build();
    chain.assigned(0);
    let spellings = ["1588-2222", "+82 1588 2222", "15882222", "0082-1588-2222"];
    let acts: Vec<Action> = spellings
        .iter()
        .enumerate()
        .map(|(i, s)| process(&mut chain, &bulk(event(i, s, "010-1", "안내", t0()), "R")).action)
        .collect();
    assert_eq!(
        acts,
        [Action::Allow, Action::Allow, Action::Block, Action::Block]
    );
    let bad = VelocityConfig {
        rules: vec![VelocityRule {
            window: "2m".into(),
            ..rule
        }],
        ..VelocityConfig::default()
    };
    let errs = bad.validate();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].key, "rules[0].window");
}

#[test]
fn bad_changelog_records_are_refused_with_the_key_and_the_reason() {
    let vf = VelocityFactory::new(
        VelocityConfig::default(),
        Arc::new(VelocityStats::default()),
    );
    let mut v = vf.build();
    v.assigned(0);
    let e = v
        .restore(0, &[b's', 0, 0, 0, 0, 0, 0, 0, 7], Some(&[1]))
        .unwrap_err();
    assert!(e.detail.contains("truncated"), "{e}");
    assert!(v.restore(0, b"zz", None).is_err(), "unknown key");
    // Nothing was kept from the refused records.
    assert_eq!(v.footprint().senders, 0);
}
