//! Seeded traffic synthesizer.
//!
//! The same seed gives the same events, byte for byte. Mix (by weight): person-to-person
//! chat, legitimate bulk notices (banks, couriers, government, shops with `(광고)`),
//! spam of each category (plain and obfuscated), and overseas-origin traffic, some of it
//! spoofing domestic numbers.

use chrono::{DateTime, Duration, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Ground-truth class of a synthesized message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// Person-to-person, harmless.
    Ham,
    /// Legitimate bulk notice that may mention loan/parcel/fine words.
    LegitBulk,
    /// Spam of a category (`gambling`, `loan`, `stock`, `smishing`, `drugs`, `adult`, `en_spam`).
    Spam(&'static str),
}

impl Truth {
    /// The `synthetic_label` value.
    pub fn label(self) -> String {
        match self {
            Truth::Ham => "ham".into(),
            Truth::LegitBulk => "legit_bulk".into(),
            Truth::Spam(c) => format!("spam.{c}"),
        }
    }
}

const HAM: &[&str] = &[
    "엄마 오늘 저녁 몇 시에 와?",
    "회의 10분 늦을 것 같아요. 먼저 시작해 주세요.",
    "내일 점심 같이 먹을래? 회사 앞 국밥집 어때",
    "도착하면 연락줘~",
    "택배 왔어? 내가 주문한 거 문 앞에 놔달라고 했는데",
    "오늘 카지노 영화 봤는데 진짜 재밌더라 ㅋㅋ",
    "아빠 생신 선물 뭐로 할지 정했어?",
    "주식 얘기는 그만하자 ㅋㅋ 요즘 다 파란불이야",
    "Running late, see you at 7",
    "Can you pick up milk on the way home?",
    "ㅇㅋ 이따 봐",
    "병원 예약 3시로 바꿨어",
];

const LEGIT_BULK: &[&str] = &[
    "[Web발신] [KB국민은행] 고객님의 대출 만기일이 2026-04-15 입니다. 자세한 내용은 영업점 또는 고객센터 1588-9999로 문의하세요.",
    "[Web발신] [CJ대한통운] 고객님의 상품이 배송 완료되었습니다. 운송장번호 5512-3344-7788",
    "[Web발신] [우체국택배] 오늘 14~16시 배달 예정입니다. 부재 시 경비실에 보관합니다.",
    "[Web발신] [국민건강보험] 2026년 건강검진 대상자입니다. 가까운 검진기관에서 받으세요.",
    "[Web발신] [서울시] 폭염 특보. 야외활동 자제, 충분한 물 섭취 바랍니다.",
    "[Web발신] (광고) [올리브영] 봄 세일 최대 50% 할인! 무료수신거부 080-123-4567",
    "[Web발신] [신한카드] 승인 홍*동 35,000원 일시불 03/01 09:12 스타벅스",
    "[Web발신] [경찰청] 보이스피싱 주의! 기관은 절대 돈을 요구하지 않습니다.",
    "[Web발신] 인증번호 [482913] 를 입력해 주세요. 타인에게 절대 알려주지 마세요.",
    "[Web발신] [하나은행] 주택담보대출 금리 변경 안내: 4.12% -> 3.98%",
];

const SPAM: &[(&str, &[&str])] = &[
    (
        "gambling",
        &[
            "[Web발신] 신규가입 첫충 30% 매충 10% 카지노 바카라 슬롯 즉시환전 bit.ly/3xCas1no",
            "(광고) 스포츠 토토 안전놀이터 가입머니 3만 지급 ☞ toto-win77.top",
            "카.지.노 오픈 이벤트 입금 즉시 보너스 100% 코드 VIP77",
            "ㅋr지노 ㅂr카라 무제한 환전 텔레그램 @casino_king",
            "ｃａｓｉｎｏ 첫입금 50% 보너스 지급 당일 출금 보장",
            "홀덤 바둑이 현금 게임 24시간 운영 www.hold-em-99.xyz",
        ],
    ),
    (
        "loan",
        &[
            "(광고) 무직자 신용불량자 당일 대출 가능 최대 3000만원 카톡 loan77",
            "정부지원 서민대출 한도 조회 후 즉시 입금 ☎ 070-1234-5678",
            "대♠출 승인 완료 고객님 한도 2천만원 확인 http://bit.ly/2Lo4n",
            "작업대출 개인돈 소액 급전 당일 100% 비대면 문의주세요",
        ],
    ),
    (
        "stock",
        &[
            "[주식 리딩방] 내일 상한가 종목 무료 추천 수익률 300% 보장 오픈채팅 입장",
            "급등주 정보 VIP 리딩방 회원 모집 선착순 30명 open.kakao.com/o/s7ock",
            "코인 리딩 세력주 매집 완료 무료 체험방 입장하세요 ☞ t.me/pump_room",
            "주.식 리.딩 전문가 1:1 코칭 원금 보장 수익 인증",
        ],
    ),
    (
        "smishing",
        &[
            "[CJ대한통운] 주소지 불일치로 배송 보류. 주소 확인 바랍니다 http://cj-deliv.xyz/a3",
            "[국민건강보험] 환급금 조회 대상자입니다. 신청 http://nhis-refund.top",
            "[교통민원24] 미납 과태료 고지서 확인 https://bit.ly/fine24",
            "[정부24] 재난지원금 신청 대상자 확인 바로가기 gov24-help.site",
            "모바일 청첩장이 도착했습니다 ♡ 확인하기 http://wedding-card.click/k9",
            "[부고] 부친께서 별세하셨기에 삼가 알려드립니다 장례식장 안내 http://bugo-notice.info",
            "hxxp://cj-deliv[.]xyz 택배 반송 안내 주소 재입력",
        ],
    ),
    ("drugs", &["아이스 작대기 떨 케이 안전 배송 텔레그램 @ice_seoul", "얼음 작대기 던지기 당일 수령 가능 t.me/ice24"]),
    ("adult", &["19금 조건 만남 오늘 밤 가능 ☞ hot-meet.xyz", "성인 화상채팅 무료 가입 즉시 만남 가능"]),
    (
        "en_spam",
        &[
            "Congratulations! You have won a $1000 Walmart gift card. Claim now: http://bit.ly/win-gc",
            "URGENT: your account is suspended. Verify at http://paypa1-secure.top",
            "Earn 300% with our crypto signals group! Join t.me/moonpump now",
            "Call 0906 123 4567 now to claim your prize. 150p/min",
        ],
    ),
];

/// Foreign mobile prefixes, country, and how many digits follow the prefix.
const FOREIGN: &[(&str, &str, u32)] = &[
    ("+447400", "GB", 6),
    ("+1202555", "US", 4),
    ("+86138001", "CN", 5),
    ("+81901", "JP", 7),
    ("+63917", "PH", 7),
];
const RELAYS: &[&str] = &["relay-a", "relay-b", "relay-c", "relay-d"];
const SMSCS: &[&str] = &[
    "smsc-seoul-1",
    "smsc-seoul-2",
    "smsc-busan-1",
    "smsc-daejeon-1",
];

/// The synthesizer.
#[derive(Debug)]
pub struct Synth {
    rng: SmallRng,
    seq: u64,
    start: DateTime<Utc>,
    /// Mean gap between events in event time.
    gap_ms: f64,
    clock_ms: f64,
    senders: Vec<String>,
    recipients: Vec<String>,
    /// Registered business senders and the relay operator each sends through.
    business: Vec<(String, &'static str)>,
}

impl Synth {
    /// A synthesizer with `seed`, starting at `start`, at `rate` events per second of
    /// event time.
    pub fn new(seed: u64, start: DateTime<Utc>, rate: f64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        let senders = (0..400).map(|_| korean_mobile(&mut rng)).collect();
        let recipients = (0..2_000)
            .map(|_| format!("+8210{:08}", rng.random_range(0..100_000_000u32)))
            .collect();
        let business = (0..40)
            .map(|i| {
                (
                    format!(
                        "{}{:04}",
                        ["1588", "1644", "1577", "1600"][i % 4],
                        rng.random_range(0..10_000)
                    ),
                    RELAYS[i % RELAYS.len()],
                )
            })
            .collect();
        Synth {
            rng,
            seq: 0,
            start,
            gap_ms: 1000.0 / rate.max(0.001),
            clock_ms: 0.0,
            senders,
            recipients,
            business,
        }
    }

    /// The next event as a JSON document (with `synthetic_label`) and its truth.
    pub fn next_event(&mut self) -> (Value, Truth) {
        self.seq += 1;
        self.clock_ms += self.rng.random_range(0.0..2.0 * self.gap_ms);
        let at = self.start + Duration::milliseconds(self.clock_ms as i64);
        let recipient = self.recipients[self.rng.random_range(0..self.recipients.len())].clone();
        let roll = self.rng.random_range(0..100);
        let (truth, text, sender, relay, international, country) = match roll {
            0..=44 => {
                let i = self.rng.random_range(0..self.senders.len());
                let s = self.present(&self.senders[i].clone());
                (
                    Truth::Ham,
                    pick(&mut self.rng, HAM).to_string(),
                    s,
                    None,
                    false,
                    None,
                )
            }
            45..=69 => {
                let (sender, relay) =
                    self.business[self.rng.random_range(0..self.business.len())].clone();
                let relay = Some(relay);
                (
                    Truth::LegitBulk,
                    pick(&mut self.rng, LEGIT_BULK).to_string(),
                    sender,
                    relay,
                    false,
                    None,
                )
            }
            70..=91 => {
                let (cat, texts) = SPAM[self.rng.random_range(0..SPAM.len())];
                let text = pick(&mut self.rng, texts).to_string();
                // Spam comes through relays from rotating numbers, or from SIM farms.
                let relay = if self.rng.random_bool(0.6) {
                    Some(RELAYS[self.rng.random_range(0..RELAYS.len())])
                } else {
                    None
                };
                let sender = korean_mobile(&mut self.rng);
                (
                    Truth::Spam(cat),
                    text,
                    self.present(&sender),
                    relay,
                    false,
                    None,
                )
            }
            _ => {
                let (prefix, cc, digits) = FOREIGN[self.rng.random_range(0..FOREIGN.len())];
                let spoofed = self.rng.random_bool(0.3);
                let sender = if spoofed {
                    korean_mobile(&mut self.rng)
                } else {
                    let n = self.rng.random_range(0..10u64.pow(digits));
                    format!("{prefix}{n:0width$}", width = digits as usize)
                };
                let (truth, text) = if self.rng.random_bool(0.7) {
                    let (cat, texts) = SPAM[self.rng.random_range(0..SPAM.len())];
                    (Truth::Spam(cat), pick(&mut self.rng, texts).to_string())
                } else {
                    (Truth::Ham, pick(&mut self.rng, HAM).to_string())
                };
                (truth, text, sender, None, true, Some(cc))
            }
        };
        let kind = if text.len() > 90 { "lms" } else { "sms" };
        let mut origin = json!({
            "route": if international { "international" } else { "domestic" },
            "smsc": SMSCS[self.rng.random_range(0..SMSCS.len())],
        });
        if international {
            origin["gateway"] = json!(format!("igw-{}", self.rng.random_range(1..4)));
            origin["country"] = json!(country);
        }
        let mut doc = json!({
            "schema_version": 1,
            "message_id": format!("syn-{:08}", self.seq),
            "submitted_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "sender": sender,
            "recipient": recipient,
            "text": text,
            "kind": kind,
            "origin": origin,
            "synthetic_label": truth.label(),
        });
        if let Some(op) = relay {
            doc["relay"] = json!({
                "operator": op,
                "reseller": format!("resell-{}", self.rng.random_range(1..20)),
                "first_sender_code": format!("FS{:04}", self.rng.random_range(0..500)),
            });
        }
        (doc, truth)
    }

    /// Registration records (JSON) of the business senders legitimate bulk traffic uses,
    /// each registered to the relay operator it sends through.
    pub fn registry(&self) -> Vec<Value> {
        self.business
            .iter()
            .map(|(number, relay)| json!({"number": number, "owner": format!("business-{number}"), "relay_operator": relay, "status": "active"}))
            .collect()
    }

    /// A Korean mobile number as an SMSC may present it: E.164, national, or dashed.
    fn present(&mut self, e164: &str) -> String {
        let national = format!("0{}", &e164[3..]);
        match self.rng.random_range(0..4) {
            0 => national,
            1 => format!("{}-{}-{}", &national[..3], &national[3..7], &national[7..]),
            _ => e164.to_owned(),
        }
    }
}

/// A Korean mobile number in an assigned range (+82 10 2XXX-9XXX ...).
fn korean_mobile(rng: &mut SmallRng) -> String {
    format!(
        "+8210{}{:07}",
        rng.random_range(2..10u32),
        rng.random_range(0..10_000_000u32)
    )
}

pub(crate) fn pick<'a>(rng: &mut SmallRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_and_every_event_decodes() {
        let start = "2026-03-01T09:00:00Z".parse().unwrap();
        let mut a = Synth::new(7, start, 100.0);
        let mut b = Synth::new(7, start, 100.0);
        let mut spam = 0;
        let mut last = start;
        for _ in 0..2_000 {
            let (da, truth) = a.next_event();
            let (db, _) = b.next_event();
            assert_eq!(da, db);
            let bytes = serde_json::to_vec(&da).unwrap();
            let ev = spamflow_schemas::decode_submission(&bytes).unwrap();
            assert!(ev.submitted_at >= last, "event time must not go back");
            last = ev.submitted_at;
            if matches!(truth, Truth::Spam(_)) {
                spam += 1;
            }
        }
        assert!((400..900).contains(&spam), "spam share off: {spam}");
    }
}
