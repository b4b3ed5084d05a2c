//! The classifier in the pipeline: pinned evaluation metrics of the shipped model (also with
//! a legitimate link appended), refusal of bad model files at start-up and on reload,
//! shadow models, bad texts, and the `train` / `eval` commands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;

use spamflow_operators::classifier::train::{self, TrainConfig};
use spamflow_operators::classifier::{self, Model, ModelHandle};
use spamflow_operators::EventCtx;
use spamflow_pipeline::classifier::{evaluate, event_of, read, reload_once, Reload};
use spamflow_pipeline::config::Config;
use spamflow_pipeline::metrics::Metrics;
use spamflow_schemas::Action;

fn corpus(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../operators/models/corpus")
        .join(name)
}

fn spamflow() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_spamflow"));
    c.env_remove("SPAMFLOW_CONFIG").env("RUST_LOG", "warn");
    c
}

/// A small model trained on the first hand-written set (a different model from the
/// shipped one, for reload and shadow tests).
fn small_model() -> Model {
    let (examples, sources) = read(&[corpus("ko-handwritten-1.jsonl")]).unwrap();
    let signals = vec![Vec::new(); examples.len()];
    let cfg = TrainConfig {
        buckets_log2: 12,
        category_buckets_log2: 10,
        epochs: 3,
        ..TrainConfig::default()
    };
    train::train(&examples, &signals, sources, &cfg, |_| {}).unwrap()
}

/// The default chain: the built-in rule pack and the shipped model.
fn shipped_chain() -> spamflow_operators::Chain {
    spamflow_pipeline::operators(&Config::default(), None)
        .unwrap()
        .chain
        .build()
}

/// `chain`'s verdict on `text` sent as a domestic SMS with id number `i`.
fn judge(
    chain: &mut spamflow_operators::Chain,
    i: usize,
    text: &str,
) -> spamflow_schemas::Verdict<'static> {
    let ev = event_of(i, text);
    let ctx = EventCtx {
        event: &ev,
        sender: &spamflow_operators::origin::parse_sender(&ev.sender),
        partition: 0,
        event_time_ms: 0,
        counted: false,
    };
    chain.process(&ctx, ev.submitted_at).into_owned()
}

/// The Korean test sets (never trained on): `ko-test.jsonl`, then `ko-test-2.jsonl` on, as
/// many as there are.
fn test_sets() -> Vec<PathBuf> {
    let sets = std::fs::read_dir(corpus(""))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("ko-test")
        })
        .count();
    (1..=sets)
        .map(|i| match i {
            1 => corpus("ko-test.jsonl"),
            i => corpus(&format!("ko-test-{i}.jsonl")),
        })
        .collect()
}

/// Compares `got` with the golden file `name` (rewritten with `UPDATE_GOLDEN=1`).
fn assert_pinned(name: &str, got: &impl serde::Serialize) {
    let got = serde_json::to_string_pretty(got).unwrap() + "\n";
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        got,
        want,
        "metrics differ from {} (model, rules or normalizer changed? review, then UPDATE_GOLDEN=1)",
        golden.display()
    );
}

#[test]
fn evaluation_metrics_of_the_shipped_model_are_pinned() {
    let model = classifier::builtin().unwrap();
    let (examples, _) = read(&test_sets()).unwrap();
    let metrics = evaluate(&Config::default(), &model, &examples, None).unwrap();
    assert_pinned("ko-test-metrics.json", &metrics);
    // Whatever the figures, the issue's target holds: at least 99 % of Korean ham passes.
    let d = &metrics.decision;
    let ham = d.ham_blocked + d.ham_labelled + d.ham_allowed;
    assert!(
        d.ham_blocked * 100 <= ham,
        "{} of {ham} test ham blocked",
        d.ham_blocked
    );
}

#[test]
fn each_kind_of_obfuscation_of_the_test_spam_is_blocked_and_pinned() {
    // Every test spam written plainly, obfuscated by each of the synthesizer's kinds in
    // turn (only the texts a kind changes count, under the kind's name as source): the
    // issue's 85 % holds for every kind.
    let model = classifier::builtin().unwrap();
    let (examples, _) = read(&test_sets()).unwrap();
    let mut synth = spamflow_loadtest::corpus::Corpus::new(1);
    let mut obfuscated = Vec::new();
    for &kind in spamflow_loadtest::corpus::OBFUSCATIONS {
        for e in examples.iter().filter(|e| e.is_spam() && !e.obfuscated) {
            let text = synth.obfuscate(&e.text, kind);
            if text != e.text {
                obfuscated.push(train::Example {
                    text,
                    source: Some(format!("{kind:?}").to_lowercase()),
                    obfuscated: true,
                    ..e.clone()
                });
            }
        }
    }
    let metrics = evaluate(&Config::default(), &model, &obfuscated, None).unwrap();
    assert_eq!(
        metrics.by_source.len(),
        spamflow_loadtest::corpus::OBFUSCATIONS.len()
    );
    for (kind, c) in &metrics.by_source {
        let spam = c.spam_blocked + c.spam_labelled + c.spam_allowed;
        assert!(
            c.spam_blocked * 100 >= spam * 85,
            "{kind}: {} of {spam} blocked",
            c.spam_blocked
        );
    }
    assert_pinned("obfuscation-metrics.json", &metrics.by_source);
}

#[test]
fn a_legitimate_link_appended_to_a_test_message_does_not_carry_it() {
    // `scripts/robustness.sh`'s first two sets: a delivery company's tracking page or a
    // video appended to each spam of the first eight test sets in turn, and to each ham of
    // the first seven (the tracking page to notices, the video to chat). Anyone can paste
    // a legitimate link, so it must not carry spam past the threshold.
    const NOTICE: &str = "https://www.cjlogistics.com/ko/tool/parcel/tracking";
    const CHAT: &str = "https://youtu.be/x7Kq9aB";
    let model = classifier::builtin().unwrap();
    let (examples, _) = read(&test_sets()[..8]).unwrap();
    let mut spam = 0;
    let mut with_link = Vec::new();
    for e in &examples {
        let (link, source) = if e.is_spam() {
            spam += 1;
            ([CHAT, NOTICE][spam % 2], "spam-with-link")
        } else if e.source.as_deref() == Some("ko-test-8") {
            continue;
        } else if e.text.starts_with('[') {
            (NOTICE, "ham-with-link")
        } else {
            (CHAT, "ham-with-link")
        };
        with_link.push(train::Example {
            text: format!("{} {link}", e.text),
            source: Some(source.to_owned()),
            ..e.clone()
        });
    }
    let metrics = evaluate(&Config::default(), &model, &with_link, None).unwrap();
    let s = &metrics.by_source["spam-with-link"];
    let n = s.spam_blocked + s.spam_labelled + s.spam_allowed;
    assert!(
        s.spam_blocked * 100 >= n * 90,
        "{} of {n} spam with a link blocked",
        s.spam_blocked
    );
    assert_eq!(metrics.by_source["ham-with-link"].ham_blocked, 0);
    assert_pinned("link-robustness-metrics.json", &metrics.by_source);
}

#[test]
fn a_corrupt_model_file_stops_start_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.sfm");
    std::fs::write(&garbage, b"not a model at all").unwrap();
    let truncated = dir.path().join("truncated.sfm");
    std::fs::write(&truncated, &classifier::BUILTIN_MODEL[..100_000]).unwrap();
    for (file, reason) in [
        (&garbage, "does not start with the SFMODEL1 magic"),
        (&truncated, "bytes of weights where the header calls for"),
    ] {
        let mut cfg = Config::default();
        cfg.classifier.model = file.display().to_string();
        let err = spamflow_pipeline::operators(&cfg, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not a valid spamflow model") && err.contains(reason),
            "{err}"
        );
        // The binary refuses to start as well, naming the file.
        let events = dir.path().join("events.jsonl");
        std::fs::write(&events, "").unwrap();
        let out = spamflow()
            .env("SPAMFLOW_CLASSIFIER__MODEL", file)
            .args(["backtest", "--events"])
            .arg(&events)
            .arg("--out")
            .arg(dir.path().join("v.jsonl"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(&file.display().to_string()),
            "{stderr}"
        );
    }
}

#[test]
fn reload_keeps_serving_on_a_bad_file_and_swaps_in_a_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.sfm");
    let small = small_model();
    small.save(&path).unwrap();
    let handle = ModelHandle::new(small.clone());
    let metrics = Metrics::default();
    let mut rejected = None;
    assert_eq!(
        reload_once(&path, &handle, &metrics, &mut rejected),
        Reload::Unchanged
    );

    let mut bytes = classifier::BUILTIN_MODEL.to_vec();
    bytes.truncate(bytes.len() - 4);
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        reload_once(&path, &handle, &metrics, &mut rejected),
        Reload::Rejected(_)
    ));
    assert_eq!(
        handle.current().version,
        small.version,
        "the old model keeps serving"
    );
    assert_eq!(
        reload_once(&path, &handle, &metrics, &mut rejected),
        Reload::Unchanged,
        "the same bad content is not retried"
    );
    assert_eq!(metrics.model_reload_failures.load(Relaxed), 1);

    std::fs::write(&path, classifier::BUILTIN_MODEL).unwrap();
    let builtin = classifier::builtin().unwrap();
    assert_eq!(
        reload_once(&path, &handle, &metrics, &mut rejected),
        Reload::Swapped(builtin.version.clone())
    );
    assert_eq!(handle.current().version, builtin.version);
    assert_eq!(metrics.model_reloads.load(Relaxed), 1);
}

#[test]
fn a_shadow_model_reports_its_decision_in_shadow_only() {
    let cfg = Config::default();
    let plain = spamflow_pipeline::operators(&cfg, None).unwrap().chain;
    let (model, _) = spamflow_pipeline::classifier::load(&cfg).unwrap();
    let mut no_classifier = cfg.clone();
    no_classifier.classifier.enabled = false;
    let shadowed = spamflow_pipeline::operators(&no_classifier, None)
        .unwrap()
        .chain
        .classifier(model, Some(ModelHandle::new(small_model())));
    let (mut a, mut b) = (plain.build(), shadowed.build());
    for (i, text) in [
        "카지노 첫충 30% 즉시 환전 가입코드 VIP7 bit.ly/x9",
        "엄마 오늘 저녁 7시에 집에서 봐",
        "무직자 당일 대출 가능 카톡 loan77",
    ]
    .iter()
    .enumerate()
    {
        let (va, vb) = (judge(&mut a, i, text), judge(&mut b, i, text));
        assert_eq!(
            (va.action, va.score, &va.reasons),
            (vb.action, vb.score, &vb.reasons)
        );
        let shadow: Vec<_> = vb
            .shadow
            .iter()
            .filter(|r| r.code.starts_with("shadow_model."))
            .collect();
        assert_eq!(shadow.len(), 1, "{:?}", vb.shadow);
        assert_eq!(
            shadow[0].evidence.as_deref(),
            Some(small_model().version.as_str())
        );
        assert!(va.model_version.is_some() && va.model_version == vb.model_version);
    }
}

#[test]
fn two_rule_findings_that_mean_smishing_together_are_a_reason_of_the_shipped_policy() {
    let mut chain = shipped_chain();
    // An invitation rule and a cheap top-level domain: the shipped fit weighs the pair.
    let v = judge(
        &mut chain,
        1,
        "[모바일부고] 삼가 알려드립니다 빈소와 발인 일정은 링크에서 확인 obit-room.click/3",
    );
    assert_eq!(v.action, Action::Block, "{v:?}");
    let pair = v
        .reasons
        .iter()
        .find(|r| r.code == "policy.smishing_url")
        .unwrap_or_else(|| panic!("{v:?}"));
    assert_eq!(
        (&*pair.category, pair.evidence.as_deref()),
        ("combination", Some("smishing + url"))
    );
    assert!(pair.score > 0);
    // An impersonated institution with a link on a made-up host (the issue's example).
    let v = judge(
        &mut chain,
        2,
        "[국민건강보험공단] 환급금 조회 및 신청 안내 nhis-check.xyz",
    );
    assert_eq!(v.action, Action::Block, "{v:?}");
    assert!(
        v.reasons.iter().all(|r| r.score > 0),
        "no reason without weight: {v:?}"
    );
}

/// The shipped chain blocks `spam` with reason `code` among its reasons, and delivers `ham`,
/// the same kind of text without what the rule looks for: the rule does not fire on it and
/// it is not blocked (the classifier may still label it).
fn blocked_by_and_ham_delivered(code: &str, spam: &str, ham: &str) {
    let mut chain = shipped_chain();
    let v = judge(&mut chain, 1, spam);
    assert_eq!(v.action, Action::Block, "{v:?}");
    assert!(v.reasons.iter().any(|r| r.code == code), "{v:?}");
    let v = judge(&mut chain, 2, ham);
    assert_ne!(v.action, Action::Block, "{v:?}");
    assert!(v.reasons.iter().all(|r| r.code != code), "{v:?}");
}

#[test]
fn an_outcall_massage_ad_is_blocked_whatever_the_classifier_says_and_chat_about_it_delivered() {
    // The home visit reads as a shop's notice (p < 0.1); the rule's block hint decides.
    blocked_by_and_ham_delivered(
        "adult.venue",
        "집으로 찾아가는 힐링 케어 젊은 선생님 배정 결제는 끝나고 예약 010-3382-1947",
        "어깨 아파서 마사지 예약했어 저녁에 가",
    );
}

#[test]
fn a_family_plea_that_asks_for_money_is_blocked_whatever_the_classifier_says() {
    // The classifier finds this plea ham-like (p ~0.4); the rule's block hint decides. The
    // same news without a request is a child's message like any other.
    blocked_by_and_ham_delivered(
        "smishing.family",
        "엄마 나 수학여행비 오늘까지 내야 돼서 그래 15만원만 보내줄 수 있어? 폰 액정 깨져서 친구꺼로 보내는 거야",
        "아빠 나 폰 침수돼서 수리 맡겼어 저녁에 집 전화로 연락할게",
    );
}

#[test]
fn a_family_plea_from_a_dead_phone_for_the_cards_photos_is_blocked_and_the_news_alone_delivered() {
    blocked_by_and_ham_delivered(
        "smishing.family",
        "아빠 나 폰이 갑자기 안 켜져서 수리점에 맡겼어 이 번호로 답장해 줘 카드 앞뒤 사진 좀 보내 줄래",
        "아빠 나 폰이 갑자기 안 켜져서 수리점에 맡겼어 저녁에 집 전화로 연락할게",
    );
}

#[test]
fn chat_about_a_family_lure_received_is_delivered_and_a_plea_relayed_for_an_aunt_blocked() {
    // "Mum's phone is broken and she asks for money, it's all a scam": the three parts of
    // the lure, told as news. A request passed on ("ask your aunt to send") is a plea.
    blocked_by_and_ham_delivered(
        "smishing.family",
        "엄마 나 폰 액정 나가서 수리 맡겼어 이모한테 계좌번호 보내달라고 해 줘 급해",
        "요새 가족인 척 폰 고장났다고 돈 보내달라는 문자 돈다더라 엄마도 조심해",
    );
}

#[test]
fn a_recheck_lure_behind_a_naver_short_link_is_blocked_and_a_clinics_notice_delivered() {
    // A check-up's result behind `me2.do`, Naver's shortener; the clinic's notice names no
    // link at all.
    blocked_by_and_ham_delivered(
        "smishing.health_check",
        "[건보] 이번 검진에서 재검 소견이 나왔습니다 결과지 확인 me2.do/Qa7vK",
        "[○○내과] 검진 결과 이상 없습니다 재검은 내년 이맘때 받으세요",
    );
}

#[test]
fn an_acquaintance_past_a_transfer_limit_asking_to_pay_in_their_place_is_blocked() {
    // A limit, a payment in the writer's place and a promise to repay; the same limit
    // given as the reason for paying late asks nobody for anything.
    blocked_by_and_ham_delivered(
        "smishing.transfer_limit",
        "부탁 하나만 할게 오늘 이체 한도가 차서 그런데 관리비 대신 입금해 줄 수 있어? 저녁에 바로 돌려줄게",
        "이체 한도가 차서 관리비는 내일 아침에 입금할게",
    );
}

#[test]
fn cannabis_goods_offered_are_blocked_and_a_seizure_in_the_news_delivered() {
    blocked_by_and_ham_delivered(
        "drugs.cannabis_goods",
        "대마 오일 카트리지 국내 재고 있어요 익명 배송 문의 주세요",
        "대마 성분 젤리 몰래 들여오다 세관에서 적발됐대",
    );
}

#[test]
fn an_institutions_name_on_a_throwaway_host_is_blocked_and_its_own_site_delivered() {
    // The fitted policy only labelled such a lure: its two url rules and the impersonated
    // office add little to a classifier that reads it as the office's notice.
    blocked_by_and_ham_delivered(
        "url.brand_throwaway_host",
        "[국세청] 작년 귀속 세금 더 내신 금액 돌려드립니다 이번 주 안에 신청 nts-payout.info/a",
        "[국세청] 작년 귀속 세금 환급 신청은 홈택스 www.hometax.go.kr 에서 하실 수 있습니다",
    );
}

#[test]
fn a_lovers_chat_opening_with_a_shortened_link_is_blocked_and_with_a_video_link_allowed() {
    blocked_by_and_ham_delivered(
        "adult.chat_lure",
        "오빠 나 오늘 집에 혼자라 너무 심심해 잠깐 얘기할래? han.gl/Qw3rT",
        "오빠 나 오늘 집에 혼자라 너무 심심해 이 영상 봤어? https://youtu.be/dQw4w9WgXcQ",
    );
}

#[test]
fn an_agency_notice_on_a_host_made_from_its_name_is_blocked_and_on_its_own_host_delivered() {
    let notice = "[국민건강보험] 올해 건강검진 결과가 나왔습니다 결과 확인";
    blocked_by_and_ham_delivered(
        "url.brand_host",
        &format!("{notice} https://nhis-result.com/r"),
        // The agency's own host, hyphenated under `.or.kr` as public bodies' hosts may be.
        &format!("{notice} https://www.nhis-kr.or.kr"),
    );
}

#[test]
fn a_payment_lure_with_a_number_to_call_is_blocked_and_the_issuers_notice_allowed() {
    // The issuer's own notice of the same sum gives its 15xx number, not a landline.
    blocked_by_and_ham_delivered(
        "smishing.payment_phone",
        "[해외결제] 2,150,000원 승인 처리 완료 구매하지 않으셨다면 취소 접수 02-3321-7788",
        "[삼성카드] 해외승인 2,150,000원 본인 이용이 아닐 경우 1588-8700",
    );
}

#[test]
fn a_payment_lure_that_says_to_call_to_cancel_is_blocked_and_the_shops_own_notice_allowed() {
    // Told to phone an `070` number to cancel an order of a large sum; the shop's own
    // notice of the same order gives its `15xx` number.
    blocked_by_and_ham_delivered(
        "smishing.payment_phone",
        "[11번가] 고객님 주문 결제 완료 1,190,000원 주문 취소 접수는 070-4120-5532",
        "[11번가] 고객님 주문 결제 완료 1,190,000원 주문 취소 접수는 1599-0110",
    );
}

#[test]
fn a_payment_lure_that_says_if_it_was_not_you_is_blocked_and_the_issuers_notice_not() {
    // "If this was not you (not your payment)": the lure gives a landline to call, the
    // card issuer its `15xx` number. The rule blocks; the classifier may label the
    // issuer's notice of a large sum, never block it.
    let mut chain = shipped_chain();
    let rule = |v: &spamflow_schemas::Verdict<'_>| {
        v.reasons.iter().any(|r| r.code == "smishing.payment_phone")
    };
    for (i, (lure, notice)) in [
        (
            "[OO카드] 해외 결제 1,480,000원 승인 본인이 아닐 경우 02-3127-5540 문의",
            "[OO카드] 해외 결제 1,480,000원 승인 본인이 아닐 경우 1588-8100 문의",
        ),
        (
            "[OO카드] 1,480,000원 일시불 승인 본인 결제가 아닐 경우 고객센터 070-7713-2209",
            "[OO카드] 1,480,000원 일시불 승인 본인 결제가 아닐 경우 고객센터 1588-8100",
        ),
        (
            "[OO카드] 1,480,000원 일시불 결제 완료 (해외) 결제한 적 없으면 연락 070-7713-2209",
            "[OO카드] 1,480,000원 일시불 결제 완료 (해외) 결제한 적 없으면 연락 1588-8100",
        ),
        (
            "[OO페이] 1,480,000원 구매 확정 처리 직접 산 게 아니라면 070-7713-2209 연락",
            "[OO페이] 1,480,000원 구매 확정 처리 직접 산 게 아니라면 1588-8100 연락",
        ),
        (
            "[OO마켓] 해외 주문 1,280.00달러 결제 완료 주문하신 적 없으면 취소 접수 02-3127-5540",
            "[OO마켓] 해외 주문 1,280.00달러 결제 완료 주문하신 적 없으면 취소 접수 1588-8100",
        ),
        (
            "[OO카드] USD 980.50 승인 본인 사용이 아니면 070-7713-2209",
            "[OO카드] USD 980.50 승인 본인 사용이 아니면 1588-8100",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let v = judge(&mut chain, 2 * i, lure);
        assert!(rule(&v) && v.action == Action::Block, "{v:?}");
        let v = judge(&mut chain, 2 * i + 1, notice);
        assert!(!rule(&v) && v.action != Action::Block, "{v:?}");
    }
}

#[test]
fn a_prescription_drug_offered_for_sale_is_blocked_and_one_prescribed_allowed() {
    blocked_by_and_ham_delivered(
        "drugs.prescription",
        "비아그라 시알리스 정품 처방전 없이 익명 배송 문의 라인 rx77",
        "병원에서 졸피뎀 처방 받았는데 먹어도 잠이 잘 안 와",
    );
}

#[test]
fn bad_texts_get_a_defined_verdict_and_spam_gets_evidence_in_the_original() {
    let mut chain = shipped_chain();
    let lms = "대출 ".repeat(700);
    let mixed = "Hello 안녕 こんにちは 你好 Привет 😀 https://x.y";
    for (i, text) in [
        "",
        "😀🎉👍",
        "http://bit.ly/abc",
        lms.as_str(),
        mixed,
        "\u{200B}\u{200B}",
    ]
    .iter()
    .enumerate()
    {
        let v = judge(&mut chain, i, text);
        assert!(v.score <= 100 && v.model_version.is_some(), "{v:?}");
    }
    let text = "[Web발신] 카.지.노 첫충 30% 무제한 환전 가입코드 VIP77 casino-vip.xyz";
    let v = judge(&mut chain, 9, text);
    assert_eq!(v.action, Action::Block);
    let r = v
        .reasons
        .iter()
        .find(|r| r.operator == "classifier")
        .unwrap();
    let [a, b] = r.span.unwrap();
    assert!(text.get(a..b).is_some_and(|s| !s.is_empty()), "{r:?}");
    assert!(
        r.evidence.as_ref().is_some_and(|e| e.len() < text.len()),
        "{r:?}"
    );
}

#[test]
fn train_twice_gives_the_same_model_and_eval_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.sfm"), dir.path().join("b.sfm"));
    for out in [&a, &b] {
        let o = spamflow()
            .args([
                "train",
                "--epochs",
                "2",
                "--buckets-log2",
                "14",
                "--category-buckets-log2",
                "10",
                "--json",
            ])
            .arg("--data")
            .arg(corpus("ko-handwritten-1.jsonl"))
            .arg("--data")
            .arg(corpus("ko-handwritten-3.jsonl"))
            .arg("--out")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let metrics: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert!(metrics["examples"].as_u64().unwrap() > 0);
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let o = spamflow()
        .args(["eval", "--model"])
        .arg(&a)
        .arg("--data")
        .arg(corpus("ko-test.jsonl"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && stdout.contains("confusion matrix"),
        "{stdout}"
    );
}

#[test]
fn train_names_a_bad_line_and_refuses_an_empty_set() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\":\"a\",\"label\":\"spam\"}\n{\"text\":\"b\",\"label\":\"maybe\"}\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    for (file, want) in [(&bad, "bad.jsonl:2:"), (&empty, "no examples")] {
        let o = spamflow()
            .args(["train", "--data"])
            .arg(file)
            .arg("--out")
            .arg(dir.path().join("m.sfm"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(want), "{stderr}");
    }
}
