//! The pattern operator with the default rule pack: examples, spans, shadow rules,
//! limits, and detection on a labelled set with obfuscated variants.

use std::sync::Arc;

use spamflow_operators::pattern::{
    check_examples, CompiledPack, Matcher, PackSource, PatternConfig, PatternOperator,
};
use spamflow_operators::{ChainBuilder, EventCtx, PolicyConfig};
use spamflow_schemas::{Action, MessageKind, Origin, Route, SubmissionEvent, Verdict};

fn pack() -> Arc<CompiledPack> {
    Arc::new(CompiledPack::compile(&PackSource::builtin()).unwrap())
}

fn event(text: &str) -> SubmissionEvent {
    SubmissionEvent {
        schema_version: 1,
        message_id: "m".into(),
        submitted_at: "2026-03-01T09:00:00Z".parse().unwrap(),
        sender: "+821012345678".into(),
        recipient: "+821011112222".into(),
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

fn verdicts(texts: &[String]) -> Vec<Verdict<'static>> {
    let op = PatternOperator::new(pack(), PatternConfig::default());
    let mut chain = ChainBuilder::new(PolicyConfig::default().build())
        .stateless(Arc::new(op))
        .build();
    texts
        .iter()
        .map(|t| {
            let ev = event(t);
            chain
                .process(
                    &EventCtx {
                        event: &ev,
                        sender: &spamflow_operators::origin::parse_sender(&ev.sender),
                        partition: 0,
                        event_time_ms: 0,
                        counted: false,
                    },
                    ev.submitted_at,
                )
                .into_owned()
        })
        .collect()
}

/// Whether rule `code` is among the reasons of `text`'s verdict.
fn fires(code: &str, text: &str) -> bool {
    verdicts(&[text.to_owned()])[0]
        .reasons
        .iter()
        .any(|r| r.code == code)
}

#[test]
fn the_default_pack_compiles_and_every_example_agrees() {
    let p = pack();
    assert!(p.rules.len() >= 20);
    let failures = check_examples(&p);
    assert!(failures.is_empty(), "{failures:#?}");
    for cat in [
        "gambling", "loan", "stock", "smishing", "drugs", "adult", "en_spam", "url",
    ] {
        assert!(p.rules.iter().any(|r| r.category == cat), "no {cat} rule");
    }
}

#[test]
fn reasons_point_into_the_original_text() {
    let text = "오늘만 카.지.노 첫충 30% 보너스";
    let v = &verdicts(&[text.to_owned()])[0];
    let r = v
        .reasons
        .iter()
        .find(|r| r.code == "gambling.casino")
        .unwrap();
    let [s, e] = r.span.unwrap();
    assert_eq!(&text[s..e], "카.지.노");
    assert_eq!(r.evidence.as_deref(), Some("카.지.노"));
    assert_eq!(v.action, Action::Block);
}

#[test]
fn shadow_rules_are_reported_but_never_act() {
    let v = &verdicts(&["비트코인 무료방 입장".to_owned()])[0];
    assert!(
        v.shadow.iter().any(|r| r.code == "stock.coin_room"),
        "{v:?}"
    );
    assert!(v.reasons.iter().all(|r| r.code != "stock.coin_room"));
    assert_eq!(v.action, Action::Allow);
}

/// Rule `code` fires on each of `lures` and on none of `others`.
fn assert_fires(code: &str, lures: &[impl AsRef<str>], others: &[impl AsRef<str>]) {
    for text in lures.iter().map(AsRef::as_ref) {
        assert!(fires(code, text), "{code} should fire: {text}");
    }
    for text in others.iter().map(AsRef::as_ref) {
        assert!(!fires(code, text), "{code} should not fire: {text}");
    }
}

#[test]
fn the_family_lure_reads_a_phone_left_behind_and_a_borrowed_one() {
    assert_fires(
        "smishing.family",
        &[
            "엄마 폰을 버스에 놓고 내렸어 남의 폰 빌려서 하는 거야 이 번호로 문자 줘",
            "아빠 화면이 나가서 친구 거 빌렸어 급한 데 쓸 돈 좀 보내줄래?",
        ],
        &["아빠 나 폰 교실에 두고 왔어 이따 집에 가서 연락할게"],
    );
}

#[test]
fn the_family_lure_reads_a_request_to_receive_a_code() {
    assert_fires(
        "smishing.family",
        &[
            "엄마 폰 고장 나서 임시폰이야 인증번호 하나만 받아줄래?",
            "아빠 액정 나가서 친구 폰으로 보내 인증문자 받아줘",
            "아들 엄마 폰 수리 맡겨서 빌린 폰이야 인증번호 오면 불러줘",
        ],
        &["엄마 나 폰 고장 나서 인증번호 받아서 새로 가입해야 해"],
    );
}

#[test]
fn the_family_lure_reads_a_blocked_payment_or_transfer() {
    assert_fires(
        "smishing.family",
        &[
            "엄마 나 송금이 막혀서 그래 편의점에서 문상 사서 핀번호 찍어줘",
            "아빠 인증이 막혔어 이 번호로 답장해줘",
        ],
        &[
            "엄마 카드 결제가 막혀서 그냥 현금으로 냈어",
            "아빠 이체가 정지돼서 은행 다녀왔어 이제 돼",
        ],
    );
}

#[test]
fn the_hidden_link_lures_share_the_throwaway_domains_and_shorteners() {
    // The throwaway top-level domains are `url.toml`'s `suspicious_tld`.
    assert_fires(
        "smishing.parcel_short_link",
        &[
            "택배 주소 재입력 바랍니다 parcel-kr.help/a1",
            "배송 보류 상품 확인 dlv-center.sbs/q",
            "소포 반송 예정 수령 일정 선택 url.kr/x7k",
            "택배 도착 사진 보기 soo.gd/Ab3",
            "배송지 확인 rebrand.ly/pk9",
        ],
        &[
            "택배 왔어? 사진 찍어서 보내줘",
            "[CJ대한통운] 배송 완료 https://trace.cjlogistics.com/next/tracking.html",
        ],
    );
    assert_fires(
        "smishing.invitation_link",
        &["저희 결혼합니다 모바일 청첩장 wedcard.help/kim"],
        &["저희 결혼합니다 다음 달에 밥 한번 먹자"],
    );
}

#[test]
fn the_payment_lure_reads_a_cancellation_asked_for_in_a_sentence() {
    assert_fires(
        "smishing.payment_phone",
        &["[해외직구] 주문 1,120,000원 출금 예정 취소를 원하시면 02-2231-8890"],
        &["[해피몰] 주문 1,120,000원 결제 완료 취소를 원하시면 1588-0000"],
    );
}

#[test]
fn the_payment_lure_reads_yen_yuan_and_pounds() {
    assert_fires(
        "smishing.payment_phone",
        &[
            "[해외결제] 라쿠텐 JPY 138,000 승인 본인 거래 아니면 신고 02-4417-2093",
            "[해외승인] ¥52,000 결제 본인 아닐 경우 문의 070-3318-2270",
            "[국외결제] 타오바오 3,200위안 결제 완료 본인 구매가 아니면 02-771-3902",
            "[해외결제] GBP 640 승인 주문하지 않으셨다면 취소 접수 031-552-7781",
        ],
        &[
            "[○○카드] 해외 승인 JPY 138,000 본인 아닐 경우 1588-0000",
            "[○○카드] 해외 승인 ¥52,000 고객센터 1544-0000",
        ],
    );
}

#[test]
fn the_lures_without_a_link_read_a_number_written_with_spaces_or_dots() {
    assert_fires(
        "smishing.payment_phone",
        &[
            "[해외결제] 1,284,000원 승인 본인 아닐 경우 문의 02 3151 7720",
            "[해외승인] 987,000원 결제 본인 사용 아니면 010.2231.4477",
        ],
        &["[해외결제] 1,284,000원 승인 본인 아닐 경우 문의 1588 0000"],
    );
    assert_fires(
        "smishing.card_issued",
        &["고객님 명의로 카드가 발급되었습니다 본인이 신청하지 않으셨다면 070 8842 3310"],
        &["카드가 발급되었습니다 본인이 신청하지 않은 경우 1544 7000"],
    );
    assert_fires(
        "smishing.investigation",
        &["[경찰청] 귀하 명의 통장이 사기에 도용되어 조사 예정 담당 02.6912.4475"],
        &["[경찰청] 명의 도용 보이스피싱 주의 의심 전화는 끊고 112 신고"],
    );
}

#[test]
fn the_civic_lure_reads_dumping_and_parking_enforcement_behind_a_throwaway_host() {
    assert_fires(
        "smishing.civic_notice",
        &[
            "[생활폐기물] 무단투기 단속 사진 확인 후 이의 신청 trash-fine.click/a",
            "귀하 차량 불법주정차 단속 영상 열람 bit.ly/pk7Qx",
            "[구청] 투기 장면 촬영 소명 자료 제출 dump-cctv.xyz/s",
        ],
        &[
            "[○○구청] 불법 주정차 단속 안내 자세한 내용은 www.seoul.go.kr",
            "무단투기 단속 사진 찍혔대 과태료 나온다더라",
        ],
    );
}

#[test]
fn race_betting_futures_accounts_wallet_drainers_and_adult_offers_are_read() {
    assert_fires(
        "gambling.racing",
        &[
            "경정 경륜 모바일로 베팅 가능 신규 가입 시 포인트",
            "주말 경마 배당 보장 회원 전용 픽방 운영",
        ],
        &[
            "경마공원 벚꽃 축제 주말에 가 볼까",
            "경륜 선수 인터뷰 봤어?",
        ],
    );
    assert_fires(
        "stock.futures_account",
        &[
            "항셍 크루드오일 대여계좌 바로 개설 문의 주세요",
            "미국 지수선물 증거금 필요 없이 소액으로 시작",
        ],
        &["[○○증권] 해외선물 위탁증거금 변경 안내"],
    );
    assert_fires(
        "smishing.wallet_connect",
        &["신규 토큰 에어드랍 지갑 연결 후 클레임 https://drop-claim.io/w"],
        &["[○○거래소] 에어드랍 입금 완료 지갑 잔고를 확인하세요"],
    );
    assert_fires(
        "adult.meeting",
        &[
            "유 부 녀 만 남 카 톡 아 이 디 보 내 줘",
            "돌싱 모임 몰래 만날 분 초대해 드려요",
        ],
        &["드라마에서 유부녀 역할 맡았대"],
    );
    assert_fires(
        "adult.venue",
        &["댁으로 찾아가는 아로마 관리사 후불 예약"],
        &["어르신 댁으로 찾아가는 방문 간호 서비스 안내"],
    );
}

#[test]
fn a_reissued_card_and_a_massage_sent_anywhere_are_read() {
    assert_fires(
        "smishing.card_issued",
        &["[Web발신] 체크카드 재발급 요청 접수 내일 배송 요청한 적 없으시면 02-6215-7734"],
        &[
            "[○○카드] 체크카드 재발급 요청 접수 요청한 적 없으시면 1588-0000",
            "카드 재발급 신청했어 다음 주에 온대",
        ],
    );
    assert_fires(
        "adult.venue",
        &[
            "모텔 자택 어디든 가는 안마 젊은 관리사 바로 출발 010-3318-2207",
            "어디든 가는 스웨디시 후불 예약",
            "스웨디시 1인샵 신규 관리사 출근 첫 방문 할인 예약",
        ],
        &[
            "찾아가는 안마의자 체험단 모집 예약 문의",
            "어르신 대상 찾아가는 안마 서비스 신청 예약은 주민센터로",
            "할머니 댁에 안마 의자 방문 설치 예약했어",
        ],
    );
}

#[test]
fn a_masseuse_s_age_and_cannabis_on_sale_are_read() {
    assert_fires(
        "adult.venue",
        &[
            "혼자 계신 분 30대 관리사가 찾아갑니다 후불 예약 010-7712-4481",
            "20 대 관리사 야간 출근 할인",
        ],
        &[
            "피부관리사 자격증반 20대 30대 수강생 모집 주말반 예약",
            "우리 엄마 40대에 관리사 자격증 따셨어",
        ],
    );
    assert_fires(
        "drugs.trade",
        &["카 나 비 스 구매 가능 텔레 문의"],
        &["카나비스 합법화 기사 봤어? 나라마다 다르네"],
    );
}

#[test]
fn overseas_marked_institutions_dead_drops_and_business_loan_pitches_are_read() {
    assert_fires(
        "smishing.overseas_institution",
        &[
            "[국외발신] 국민연금공단 미지급 연금 조회 기한 내 신청 바랍니다",
            "[국제발신] 관세청 통관 보류 개인통관고유부호 재입력 필요",
        ],
        &[
            "[국외발신] Google 인증 코드 G-482913",
            "[국외발신] Google 이미지 검색 기록 삭제 안내",
            "[국제발신] 해외 주식 비과세 관련 안내 요구 청구서 첨부",
            "[국민건강보험] 건강검진 대상자 안내 1577-1000",
        ],
    );
    assert_fires(
        "drugs.dead_drop",
        &["허브 묶음 좌표 거래 당일 수령 텔레 문의"],
        &[
            "허브 화분 분갈이했어 베란다에 둘게",
            "보스 잡는 좌표 찍어줘 거래소 열리기 전에",
        ],
    );
    assert_fires(
        "loan.illegal",
        &["개인사업자 매출 없어도 한도 나오는 곳 부결 나신 분 상담"],
        &["[○○은행] 대출 심사 결과 부결되었습니다 자세한 사항은 영업점으로 문의 바랍니다"],
    );
    assert_fires(
        "smishing.investigation",
        &["[서울중앙지검] 대포통장 개설 사건 피의자로 소환 예정 사전 진술 원하면 회신 02-530-4471"],
        &["[경찰청] 대포통장 명의 대여는 처벌 대상입니다 의심되면 112 신고"],
    );
    assert_fires(
        "smishing.invitation_link",
        &["저희 날 잡았어요 식장 약도 여기 있어요 our-day.click/k2"],
        &["예식장 위치 여기야 https://naver.me/xK2a"],
    );
}

#[test]
fn an_invitation_is_read_in_its_common_wordings_and_only_with_a_link() {
    assert_fires(
        "smishing.invitation",
        &[
            "[결혼] 저희 드디어 결혼합니다 식장 위치 확인 wed-day.shop/park",
            "저희 11월에 식 올려요 오시는 길 보기 hj-wedding.click/v",
        ],
        &[
            "저희 드디어 결혼합니다 다음 달에 밥 한번 먹자",
            "웨딩 촬영 잘 끝났어?",
        ],
    );
}

#[test]
fn a_suspicious_top_level_domain_ends_the_host() {
    assert_fires(
        "url.suspicious_tld",
        &[
            "가입 toto-win77.top",
            "확인 nhis-refund.site/a",
            "여기 deal.shop에서",
            "근처 친구 찾기 meet-near.fun",
            "당첨 확인 lucky-box.online/q",
            "청첩장 보기 ya.mba/3PZ",
        ],
        &[
            "가게 홈페이지 https://m.site.naver.com/1a2B3",
            "www.live.co.kr 공지",
            "온라인 강의 www.fun.co.kr/online 에서 들어",
        ],
    );
}

#[test]
fn the_payment_lure_needs_a_large_sum_so_a_small_shops_order_notice_passes() {
    let notice = |sum: &str| format!("[해피몰] 결제 완료 {sum}원 주문 취소 문의 070-7789-1120");
    assert_fires(
        "smishing.payment_phone",
        &["100,000", "389,000", "1,284,000"].map(notice),
        &["32,000", "99,900", "1,000"].map(notice),
    );
}

#[test]
fn long_texts_are_cut_at_the_limit_with_a_reason() {
    let mut m = Matcher::new(
        pack(),
        PatternConfig {
            max_scan_bytes: 8 * 1024,
        },
    );
    let mut text = "가".repeat(40_000); // 120,000 bytes
    text.push_str(" 카지노 첫충 보너스");
    let mut out = Vec::new();
    m.inspect(&text, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].code, "pattern.truncated");
    assert!(out[0]
        .evidence
        .as_deref()
        .unwrap()
        .contains("scanned the first 8190"));
    let mut out = Vec::new();
    m.inspect(
        &format!("카지노 첫충 보너스 {}", "가".repeat(40_000)),
        &mut out,
    );
    assert!(out.iter().any(|s| s.code == "gambling.casino"));
}

const SPAM: &[&str] = &[
    "신규가입 첫충 30% 카지노 바카라 즉시환전",
    "스포츠 토토 안전놀이터 가입머니 3만 지급",
    "무직자 신용불량자 당일 대출 가능 카톡 문의",
    "정부지원 서민대출 한도 조회 후 즉시 입금 ☎ 070-1234-5678",
    "주식 리딩방 내일 상한가 종목 무료 추천 수익률 300% 보장",
    "CJ대한통운 주소지 불일치로 배송 보류 주소 확인 http://cj-deliv.xyz/a3",
    "미납 과태료 고지서 확인 https://bit.ly/fine24",
    "재난지원금 신청 대상자 확인 바로가기 http://gov24-help.site",
    "모바일 청첩장이 도착했습니다 확인하기 http://wedding-card.click/k9",
    "아이스 작대기 안전 배송 텔레그램 @ice_seoul",
    "19금 조건 만남 오늘 밤 가능 hot-meet.xyz",
    "casino first deposit bonus 100%",
    "Congratulations! You have won a gift card. Claim now: http://bit.ly/win-gc",
    "Earn 300% with our crypto signals group! Join t.me/moonpump now",
];

const LEGIT: &[&str] = &[
    "[Web발신] [KB국민은행] 고객님의 대출 만기일이 2026-04-15 입니다. 고객센터 1588-9999로 문의하세요.",
    "[Web발신] [하나은행] 주택담보대출 금리 변경 안내: 4.12% -> 3.98%",
    "[Web발신] [신한은행] 대출 한도 조회 결과는 신한 SOL 앱에서 확인하세요.",
    "[Web발신] [CJ대한통운] 고객님의 상품이 배송 완료되었습니다. 운송장번호 5512-3344-7788",
    "[Web발신] [우체국택배] 오늘 14~16시 배달 예정입니다. 부재 시 경비실에 보관합니다.",
    "[Web발신] [국민건강보험] 2026년 건강검진 대상자입니다. 가까운 검진기관에서 받으세요.",
    "[Web발신] [경찰청] 보이스피싱 주의! 기관은 절대 돈을 요구하지 않습니다.",
    "[Web발신] [서울시] 폭염 특보. 야외활동 자제, 충분한 물 섭취 바랍니다.",
    "[연합뉴스] 불법 카지노 조직 검거, 리딩방 사기 피해 급증",
    "[뉴스] 금감원, 불법 대출 광고 문자 주의 당부",
    "오늘 카지노 영화 봤는데 진짜 재밌더라",
    "주식 얘기는 그만하자 요즘 다 파란불이야",
    "택배 왔어? 문 앞에 놔달라고 했는데",
    "다음 주 토요일 결혼식 몇 시였지?",
    "We won the game! Call me later",
    "Your Amazon order has shipped and will arrive Tuesday.",
];

/// Obfuscated variants a spammer would send instead of the plain text.
fn variants(plain: &str) -> Vec<String> {
    let hangul = |c: char| ('가'..='힣').contains(&c);
    let join = |sep: &str| {
        let mut out = String::new();
        let chars: Vec<char> = plain.chars().collect();
        for (i, c) in chars.iter().enumerate() {
            out.push(*c);
            if hangul(*c) && chars.get(i + 1).is_some_and(|n| hangul(*n)) {
                out.push_str(sep);
            }
        }
        out
    };
    let fullwidth: String = plain
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                char::from_u32(c as u32 + 0xFEE0).unwrap()
            } else {
                c
            }
        })
        .collect();
    let cyrillic: String = plain
        .chars()
        .map(|c| match c {
            'a' => 'а',
            'o' => 'о',
            'e' => 'е',
            'c' => 'с',
            'p' => 'р',
            _ => c,
        })
        .collect();
    let leet: String = plain
        .chars()
        .map(|c| match c {
            'o' => '0',
            'i' => '1',
            'e' => '3',
            _ => c,
        })
        .collect();
    vec![
        join("."),
        join(" "),
        join("★"),
        join("\u{200B}"),
        fullwidth,
        cyrillic,
        leet,
    ]
}

#[test]
fn detection_holds_up_under_obfuscation_and_spares_legitimate_notices() {
    let plain: Vec<String> = SPAM.iter().map(|s| s.to_string()).collect();
    let obfuscated: Vec<String> = SPAM.iter().flat_map(|s| variants(s)).collect();
    let caught = |vs: &[Verdict]| {
        vs.iter().filter(|v| v.action == Action::Block).count() as f64 / vs.len() as f64
    };
    let plain_recall = caught(&verdicts(&plain));
    let obf = verdicts(&obfuscated);
    let obf_recall = caught(&obf);
    let legit = verdicts(&LEGIT.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let blocked: Vec<(&str, &Verdict)> = LEGIT
        .iter()
        .copied()
        .zip(legit.iter())
        .filter(|(_, v)| v.action == Action::Block)
        .collect();
    let flagged = legit.iter().filter(|v| v.action != Action::Allow).count();
    let missed: Vec<&String> = obfuscated
        .iter()
        .zip(&obf)
        .filter(|(_, v)| v.action != Action::Block)
        .map(|(t, _)| t)
        .collect();
    println!(
        "detection: plain recall {:.3} ({} msgs), obfuscated recall {:.3} ({} variants), ratio {:.3}; legit blocked {}/{}, flagged {}/{}",
        plain_recall,
        plain.len(),
        obf_recall,
        obfuscated.len(),
        obf_recall / plain_recall,
        blocked.len(),
        legit.len(),
        flagged,
        legit.len()
    );
    assert_eq!(plain_recall, 1.0);
    assert!(
        obf_recall / plain_recall >= 0.9,
        "obfuscated recall {obf_recall:.3}; missed {missed:#?}"
    );
    assert!(
        blocked.is_empty(),
        "legitimate messages blocked: {blocked:#?}"
    );
}
