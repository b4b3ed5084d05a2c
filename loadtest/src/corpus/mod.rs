//! Labelled text corpus for training the classifier: a seeded template grammar of
//! Korean and English spam of the mission's kinds and of realistic ham, above all the hard
//! negatives (one-time codes, delivery and payment notices, appointment reminders, lawful
//! `(광고)` advertising, family chat that mentions money, loans or parcels), with the
//! obfuscations spammers use.
//!
//! A template is text with `{slot}` placeholders; each slot is filled from its list at
//! random (fillers may hold slots themselves), or by a generator (numbers, amounts, phone
//! numbers, URLs, names, dates). Spam is then obfuscated with probability
//! `obfuscated_share`: spacing or symbols between syllables, full-width letters, zero-width
//! characters, split jamo, Latin letters for vowels, Cyrillic look-alikes, digits for
//! letters, defanged URLs. The same seed gives the same lines.

mod phrases;

use crate::synth::pick;
use phrases::{
    KO_CHAT_BODY, KO_CHAT_OPEN, KO_DECOR, KO_NOTICES, KO_NOTICE_LINKS, KO_PARTS, KO_SHARED_LINKS,
    KO_SPAM_PREFIX, KO_SPAM_SUFFIX,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// Korean spam templates per category.
const KO_SPAM: &[(&str, &[&str])] = &[
    (
        "gambling",
        &[
            "{ad}{casino} {open} {bonus} {contact}",
            "{ad}{casino} 신규가입 {bonus} {exchange} {contact}",
            "{greet} {casino} {event} 첫충 {pct} 매충 {pct} {exchange} {link}",
            "{toto} 안전놀이터 가입머니 {amount} 지급 {exchange} {link}",
            "{toto} 픽 적중률 {pct} 무료 공유방 {contact}",
            "{casino} 먹튀없는 메이저 사이트 {bonus} 코드 {code} {link}",
            "{holdem} 현금게임 24시간 운영 {bonus} {link}",
            "실시간 {casino} 라이브 {exchange} 무제한 베팅 {contact}",
            "{name}님 {casino} 미션 달성 보너스 {amount} 지급 완료 {link}",
            "슬롯 잭팟 {amount} 당첨 인증 지금 바로 참여 {link}",
            "{ad}파워볼 사다리 그래프 {bonus} 즉시 환전 {contact}",
            "{toto} 해외 배당 최고 {bonus} 충전 즉시 {exchange} {link}",
        ],
    ),
    (
        "loan",
        &[
            "{ad}{loan_who} {loan} 최대 {amount} {today} {contact}",
            "{ad}{gov} {loan} 한도 조회 후 {today} 입금 {contact}",
            "{name}님 {loan} 승인 완료 한도 {amount} 확인 {link}",
            "작업대출 개인돈 {loan_who} {today} 비대면 {contact}",
            "{loan_who}도 가능한 {loan} {interest} {contact}",
            "[{fake_bank}] 고객님 {gov} 대상자 선정 {amount} 한도 {link}",
            "기존 대출 {gov} 저금리 전환 {interest} 상담 {contact}",
            "일수 월변 {amount} {today} 당일지급 {contact}",
            "{ad}{loan} 부결자 환영 재직증명 없이 {today} {contact}",
            "{name}님 {amount} {loan} 서류 없이 {today} 입금 가능합니다 {link}",
            "카드깡 휴대폰깡 {today} 현금화 수수료 최저 {contact}",
        ],
    ),
    (
        "stock",
        &[
            "{ad}[{stock_room}] 내일 {stock_hot} 종목 무료 추천 수익률 {pct} {contact}",
            "{stock_hot} 정보 VIP {stock_room} 회원 모집 선착순 {small}명 {link}",
            "{greet} {stock_room} 무료 체험방 입장하세요 {link}",
            "{coin} 리딩 세력주 매집 완료 {stock_room} 입장 {link}",
            "전문가 1:1 코칭 원금 보장 {stock_hot} 수익 인증 {contact}",
            "{name}님 {stock_room} 초대장이 도착했습니다 수익률 {pct} 보장 {link}",
            "공모주 청약 비공개 물량 배정 확정 {amount} 입금 {contact}",
            "{coin} 상장 전 선판매 {pct} 수익 확정 {link}",
            "오늘 추천 {stock_hot} {pct} 달성 축하드립니다 다음 종목 {contact}",
            "손실 복구 전문 {stock_room} 무료 상담 {contact}",
        ],
    ),
    (
        "smishing",
        &[
            "[{courier}] {parcel_issue} {parcel_ask} {link}",
            "[{courier}] 고객님 택배 {parcel_issue} 확인 {link}",
            "[{agency}] {refund} 대상자입니다 {apply} {link}",
            "[{agency}] {fine} 고지서 확인 {link}",
            "[{agency}] {fine} 미납 시 가산금 부과 {link}",
            "모바일 청첩장이 도착했습니다 {heart} 확인하기 {link}",
            "[부고] {family}께서 별세하셨기에 삼가 알려드립니다 장례식장 안내 {link}",
            "[{card}] {amount} 해외결제 승인 {fake_time} 본인 아닐 경우 {callme}",
            "[{card}] {amount} 결제 완료 본인이 아니면 즉시 신고 {callme}",
            "엄마 나 폰 액정 깨져서 임시폰이야 {mom_ask}",
            "엄마 나야 {mom_ask} 급해",
            "아빠 나 폰 고장나서 이 번호로 문자해 {mom_ask}",
            "[{agency}] 건강검진 결과 확인 {link}",
            "[{fake_bank}] 고객님 계좌가 {lock} 해제 {link}",
            "[{agency}] 귀하의 명의가 범죄에 도용되어 조사 예정입니다 {callme}",
            "[국제발신] {amount} 결제 예정 취소 문의 {callme}",
            "{name}님 돌잔치 초대장 보내드립니다 {link}",
            "[{agency}] 교통법규 위반 과태료 사전통지 {link}",
            "[{courier}] 운송장 {code} 주소 불명 반송 예정 {link}",
        ],
    ),
    (
        "drugs",
        &[
            "{drug} {drug} 안전 거래 {contact}",
            "{drug} 던지기 당일 수령 가능 {contact}",
            "{drug} 정품 최저가 {delivery} {contact}",
            "기분 좋아지는 {drug} 있어요 {delivery} {contact}",
            "{drug} 좌표 드립니다 {contact}",
            "수면제 졸피뎀 처방전 없이 {delivery} {contact}",
        ],
    ),
    (
        "adult",
        &[
            "{adult} 오늘 밤 가능 {link}",
            "{adult} 무료 가입 즉시 만남 {link}",
            "{greet} 외로우신가요 {adult} {link}",
            "근처 {small}km 이내 {adult} 대기중 {contact}",
            "19금 {adult} 무료 체험 {link}",
            "오빠 나 심심해 {adult} 연락줘 {contact}",
        ],
    ),
];

/// English spam templates per category.
const EN_SPAM: &[(&str, &[&str])] = &[
    (
        "en_spam",
        &[
            "{en_win} Claim your {en_prize} now: {link}",
            "{en_win} Call {en_premium} to claim your {en_prize}. {en_cost}",
            "URGENT! Your mobile number has been awarded a {en_money} prize. Call {en_premium} now",
            "FREE entry into our {en_money} weekly draw. Text WIN to {en_short} to receive entry. {en_cost}",
            "Congratulations! You have been selected for a {en_prize}. Reply YES to {en_short}",
            "Earn {pct} daily with our crypto signals group! Join {tg_link} now",
            "You have {small} unread messages from singles near you. Call {en_premium} {en_cost}",
            "Your {en_service} subscription renews today. Text STOP to {en_short} to cancel. {en_cost}",
            "Get a {en_money} loan today, no credit check. Apply {link}",
            "Hot singles in your area want to chat. Txt CHAT to {en_short}",
            "Last chance to claim your {en_money} bonus. Call {en_premium} before midnight",
        ],
    ),
    (
        "smishing",
        &[
            "{en_courier}: your parcel could not be delivered. Update your address at {link}",
            "{en_bank} alert: unusual sign-in detected. Verify your account at {link}",
            "URGENT: your account is suspended. Verify at {link}",
            "Your {en_service} payment failed. Update your details at {link} to avoid suspension",
            "{en_agency}: you are eligible for a tax refund of {en_money}. Claim at {link}",
            "Toll road notice: you have an unpaid balance of {en_money}. Pay at {link}",
            "Hi mum, I dropped my phone, this is my new number. Can you send me money for a bill?",
        ],
    ),
];

/// Korean ham templates (person-to-person and legitimate bulk).
const KO_HAM: &[&str] = &[
    "{family} 오늘 저녁 {time}에 {place}에서 보자",
    "{family} 나 {time}쯤 도착해",
    "회의 {small}분 늦을 것 같아요 먼저 시작해 주세요",
    "내일 점심 같이 먹을래? {place} 어때",
    "도착하면 연락줘~",
    "택배 왔어? 내가 주문한 거 문 앞에 놔달라고 했는데",
    "택배 잘못 와서 반송했어 주소 다시 알려줘",
    "오늘 카지노 영화 봤는데 진짜 재밌더라 ㅋㅋ",
    "강원랜드 구경 갔다가 5만원 잃고 왔어 ㅋㅋ",
    "마카오 여행 가면 카지노 호텔 구경은 해보자",
    "동네에 새로 생긴 보드게임 카페 가볼래? 홀덤도 있대",
    "주식 얘기는 그만하자 ㅋㅋ 요즘 다 파란불이야",
    "엄마 이번 달 대출 이자 냈어? 내가 보내줄게",
    "아빠 생신 선물 뭐로 할지 정했어?",
    "병원 예약 {time}로 바꿨어",
    "ㅇㅋ 이따 봐",
    "{name}아 과제 다 했어? 내일 {time}까지 제출이래",
    "오늘 회식 {place}에서 {time}에 시작합니다",
    "엄마 나 용돈 {amount}만 보내줄 수 있어? 교재 사야 돼",
    "형 지난번에 빌린 {amount} 오늘 보냈어 확인해봐",
    "전세 대출 서류 은행에 냈어 다음 주에 승인 난대",
    "주말에 {place} 갈래? 날씨 좋대",
    "아기 오늘 열나서 병원 다녀왔어 걱정마",
    "{name} 결혼식 {date} {time}이래 같이 가자",
    "할머니 부고 소식 들었어 장례식장 어디야?",
    "택배 기사님이 경비실에 맡겼대",
    "비트코인 또 떨어졌네 그냥 존버한다",
    "오늘 야근이라 늦어 먼저 자",
    "우리 모임 회비 {amount}씩 {date}까지 보내줘",
    "{name}님 자료 메일로 보냈습니다 확인 부탁드립니다",
    "고객님 주문하신 케이크 {time}에 찾으러 오시면 됩니다",
    "{name} 선생님 내일 상담 {time} 가능하신가요?",
    "오늘 토토 축구 경기 봤어? 대박이었어",
    "차 막혀서 {small}분 정도 늦어",
    "생일 축하해 {name}! 맛있는 거 먹자",
    "{family} 감기약 사다 놨어 식탁 위에 있어",
    "이번 주 금요일 {place} 예약했어 {time}",
    "카드값 나갔는지 확인해봐 이번 달 좀 많이 썼다",
    "그 주식 리딩방 다 사기래 절대 들어가지 마",
    "보이스피싱 문자 왔는데 무시했어 조심해",
];

/// Korean legitimate bulk templates (the hard negatives).
const KO_BULK: &[&str] = &[
    "[Web발신] [{bank}] 인증번호 [{otp}] 를 입력해 주세요. 타인에게 절대 알려주지 마세요.",
    "[Web발신] 인증번호는 [{otp}] 입니다. 정확히 입력해주세요.",
    "[{service}] 본인확인 인증번호 {otp}",
    "[Web발신] [{courier}] 고객님의 상품이 배송 완료되었습니다. 운송장번호 {code}",
    "[Web발신] [{courier}] 오늘 {time_range} 배달 예정입니다. 부재 시 경비실에 보관합니다.",
    "[{courier}] {name}님 상품을 문 앞에 배송했습니다.",
    "[Web발신] [{card}] 승인 {masked_name} {amount_won} 일시불 {date} {time} {shop}",
    "[Web발신] [{card}] {date} 결제예정금액 {amount_won} 입니다.",
    "[Web발신] [{bank}] 고객님의 대출 만기일이 {date} 입니다. 자세한 내용은 고객센터 {biz_phone}로 문의하세요.",
    "[Web발신] [{bank}] 주택담보대출 금리 변경 안내: {rate} -> {rate}",
    "[Web발신] [{bank}] 입금 {amount_won} {masked_name} 잔액 {amount_won}",
    "[Web발신] [{clinic}] {name}님 {date} {time} 진료 예약되어 있습니다. 변경은 {biz_phone}",
    "[{clinic}] 내일 {time} 예약 잊지 마세요.",
    "[Web발신] [국민건강보험] {year}년 건강검진 대상자입니다. 가까운 검진기관에서 받으세요.",
    "[Web발신] [{city}] 폭염 특보. 야외활동 자제, 충분한 물 섭취 바랍니다.",
    "[재난문자] [{city}] 호우경보 발효 중. 하천변 산책로 이용을 자제해 주세요.",
    "[Web발신] (광고) [{shop}] 봄 세일 최대 {pct} 할인! 무료수신거부 080-{small}-{otp4}",
    "(광고) [{shop}] {name}님 생일 쿠폰 {pct} 할인 쿠폰이 발급되었습니다. 무료거부 080{otp4}{otp4}",
    "[Web발신] [경찰청] 보이스피싱 주의! 기관은 절대 돈을 요구하지 않습니다.",
    "[Web발신] [{agency_real}] 자동차세 납부 기한은 {date}까지입니다. 위택스 또는 가까운 은행에서 납부하세요.",
    "[{telco}] {month}월 이용요금 {amount_won} 자동이체 예정입니다.",
    "[Web발신] [{school}] 내일은 현장체험학습일입니다. 도시락을 준비해 주세요.",
    "[{apt}] 관리사무소 안내: {date} 정전 점검이 있습니다.",
    "[{shop}] 주문하신 상품이 출고되었습니다. 주문번호 {code}",
    "[Web발신] [{stock_firm}] {name}님 {stock_name} 매수 체결 {small}주",
    "[Web발신] [{insurer}] 보험료 {amount_won} 납입이 완료되었습니다.",
    // Foreign services text from abroad, and the carrier marks it so; the spam templates
    // carry the same marker, which must not read as spam by itself.
    "{intl}[{foreign_service}] 인증 코드 {otp} 타인과 공유하지 마세요",
    "{intl}{foreign_service} 인증번호 {otp}",
    "{intl}Your {foreign_service} verification code is {otp}",
    "{intl}[{foreign_travel}] 예약 확정 체크인 {date} 예약번호 {code}",
];

/// English ham templates.
const EN_HAM: &[&str] = &[
    "Running late, see you at {time}",
    "Can you pick up milk on the way home?",
    "Your {en_bank} verification code is {otp}. Do not share it with anyone.",
    "{en_courier}: your parcel {code} will be delivered today between {time_range}.",
    "Reminder: your appointment at {en_clinic} is on {date} at {time}. Reply C to cancel.",
    "Happy birthday! Have a great day",
    "I'll call you after the meeting",
    "Did you win anything at the casino last night? haha",
    "Mum says the loan for the car got approved, finally",
    "Ok, I'll pay you back the {en_money} tomorrow",
    "Thanks for dinner, it was lovely",
    "The train is delayed by {small} minutes",
    "Your {en_bank} one-time passcode is {otp}. It expires in 10 minutes.",
    "{en_courier}: your package {code} was delivered to your front door.",
    "Your order {code} has shipped and will arrive {date}.",
    "Hi, it's {en_clinic}. Confirming your appointment on {date} at {time}.",
    "Your card ending {otp4} was charged {en_money} at {en_shop}. Not you? Call the number on the back of your card.",
    "Are we still on for lunch tomorrow?",
    "Sorry I missed your call, I'm driving. Will ring you back",
    "Can you send me the photos from the weekend?",
    "Don't forget mum's birthday on Sunday",
    "I got the job!! Drinks on me tonight",
    "Where did you park? I can't find the car",
    "Lol that was so funny, see you at work",
    "The kids have a dentist appointment at {time}",
    "Thanks for the money, I'll pay you back next week",
    "Did you see the match last night? What a goal",
    "Meeting moved to {time}, same room",
    "Your prescription is ready for pickup at the pharmacy",
    "{en_bank}: a payment of {en_money} to {name} was made from your account.",
    "We received your loan application. A decision will be sent within 3 working days.",
    "Your bill of {en_money} is due on {date}. Pay in the app or online banking.",
];

/// Slot fillers.
const SLOTS: &[(&str, &[&str])] = &[
    (
        "ad",
        &[
            "",
            "",
            "(광고) ",
            "[Web발신] ",
            "[Web발신] (광고) ",
            "[국제발신] ",
        ],
    ),
    (
        "casino",
        &[
            "카지노",
            "바카라",
            "온라인카지노",
            "라이브카지노",
            "슬롯",
            "카지노 바카라",
            "에볼루션 카지노",
            "블랙잭",
            "룰렛",
            "식보",
        ],
    ),
    (
        "toto",
        &[
            "스포츠토토",
            "토토",
            "사설토토",
            "해외토토",
            "스포츠 베팅",
            "승무패",
            "핸디 언오버",
        ],
    ),
    ("holdem", &["홀덤", "바둑이", "포커", "섯다"]),
    ("open", &["신규 오픈", "그랜드 오픈", "오픈 기념", "재오픈"]),
    (
        "event",
        &["이벤트", "오픈 이벤트", "주말 이벤트", "VIP 이벤트"],
    ),
    (
        "bonus",
        &[
            "첫충 {pct}",
            "가입머니 {amount}",
            "입금 보너스 {pct}",
            "무료 쿠폰 {amount}",
            "매충 {pct} 지급",
            "페이백 {pct}",
        ],
    ),
    (
        "exchange",
        &[
            "즉시환전",
            "무제한 환전",
            "당일 출금 보장",
            "신속 환전",
            "환전 빠름",
        ],
    ),
    (
        "greet",
        &["안녕하세요", "고객님", "회원님", "VIP 고객님", "{name}님"],
    ),
    (
        "loan_who",
        &[
            "무직자",
            "신용불량자",
            "저신용자",
            "주부",
            "대학생",
            "연체자",
            "신불자",
            "개인회생자",
        ],
    ),
    (
        "loan",
        &[
            "대출",
            "당일대출",
            "비대면대출",
            "소액대출",
            "무담보대출",
            "급전",
            "비상금대출",
            "사업자대출",
        ],
    ),
    (
        "gov",
        &[
            "정부지원",
            "서민대출",
            "햇살론",
            "국가지원",
            "대환대출",
            "정책자금",
            "새희망홀씨",
        ],
    ),
    (
        "interest",
        &[
            "금리 {rate}",
            "최저금리 보장",
            "이자 부담 없이",
            "무이자 {small}개월",
        ],
    ),
    ("today", &["당일", "즉시", "30분 내", "당일 입금", "바로"]),
    (
        "stock_room",
        &[
            "주식 리딩방",
            "리딩방",
            "VIP 리딩방",
            "급등주 리딩방",
            "종목 추천방",
            "주식 단톡방",
            "유료 리딩방",
            "VIP 유료방",
        ],
    ),
    (
        "stock_hot",
        &["상한가", "급등주", "세력주", "테마주", "작전주", "대장주"],
    ),
    (
        "coin",
        &[
            "코인",
            "비트코인",
            "알트코인",
            "신규 코인",
            "가상자산",
            "프리세일 코인",
        ],
    ),
    (
        "courier",
        &[
            "CJ대한통운",
            "우체국택배",
            "한진택배",
            "롯데택배",
            "로젠택배",
            "쿠팡",
        ],
    ),
    (
        "parcel_issue",
        &[
            "주소지 불일치로 배송 보류",
            "주소 불명으로 반송 예정",
            "보관 기간 만료 예정",
            "통관 보류",
            "배송 실패",
        ],
    ),
    (
        "parcel_ask",
        &[
            "주소 확인 바랍니다",
            "주소를 재입력해 주세요",
            "아래 링크에서 확인하세요",
            "본인 확인 후 재배송",
        ],
    ),
    (
        "agency",
        &[
            "국민건강보험",
            "정부24",
            "교통민원24",
            "국세청",
            "경찰청",
            "검찰청",
            "금융감독원",
            "건강보험공단",
            "질병관리청",
            "서울중앙지검",
        ],
    ),
    (
        "refund",
        &[
            "환급금 조회",
            "재난지원금 신청",
            "건강보험 환급",
            "세금 환급",
            "지원금 지급",
        ],
    ),
    ("apply", &["신청", "조회", "바로가기", "확인"]),
    (
        "fine",
        &["미납 과태료", "범칙금", "교통 과태료", "주정차 위반 과태료"],
    ),
    ("heart", &["♡", "♥", "", "💌"]),
    (
        "fx_merchant",
        &[
            "AMAZON.COM",
            "NETFLIX.COM",
            "APPLE.COM/BILL",
            "AGODA",
            "BOOKING.COM",
            "ALIEXPRESS",
            "STEAM PURCHASE",
            "UBER TRIP",
            "GOOGLE YOUTUBE",
        ],
    ),
    (
        "family",
        &[
            "엄마",
            "아빠",
            "부친",
            "모친",
            "장인어른",
            "할머니",
            "누나",
            "형",
        ],
    ),
    (
        "card",
        &[
            "신한카드",
            "삼성카드",
            "KB국민카드",
            "현대카드",
            "롯데카드",
            "우리카드",
            "하나카드",
        ],
    ),
    (
        "fake_bank",
        &[
            "KB국민은행",
            "신한은행",
            "우리은행",
            "농협",
            "하나은행",
            "카카오뱅크",
        ],
    ),
    (
        "bank",
        &[
            "KB국민은행",
            "신한은행",
            "우리은행",
            "농협",
            "하나은행",
            "카카오뱅크",
            "IBK기업은행",
            "토스뱅크",
        ],
    ),
    ("fake_time", &["{date} {time}", "방금", "오늘 {time}"]),
    (
        "callme",
        &[
            "고객센터 {phone}",
            "문의 {phone}",
            "☎ {phone}",
            "{phone} 으로 연락 바랍니다",
            "{link}",
        ],
    ),
    (
        "mom_ask",
        &[
            "문화상품권 좀 사줄 수 있어?",
            "이 링크로 인증 좀 해줘 {link}",
            "신분증 사진이랑 카드 번호 좀 보내줘",
            "{amount} 만 급하게 이체해줘",
            "카톡 친추해줘 {code}",
        ],
    ),
    (
        "lock",
        &[
            "일시 정지되었습니다",
            "해외에서 접속 시도되어 잠겼습니다",
            "정지 예정입니다",
        ],
    ),
    (
        "drug",
        &[
            "아이스",
            "작대기",
            "떨",
            "캔디",
            "케이",
            "허브",
            "크리스탈",
            "얼음",
            "엑스터시",
            "대마",
        ],
    ),
    (
        "delivery",
        &["전국 당일 배송", "비대면 거래", "던지기 가능", "안전 배송"],
    ),
    (
        "adult",
        &[
            "조건 만남",
            "성인 화상채팅",
            "19금 영상",
            "즉석 만남",
            "출장 마사지",
            "애인대행",
            "성인 채팅",
            "오피",
            "휴게텔",
            "건마",
            "키스방",
            "출장안마",
            "야동",
        ],
    ),
    (
        "contact",
        &[
            "카톡 {code}",
            "텔레그램 @{handle}",
            "☎ {phone}",
            "문의 {phone}",
            "{link}",
            "오픈채팅 {link}",
            "라인 {handle}",
        ],
    ),
    (
        "link",
        &[
            "{url}",
            "{url}",
            "http://{url}",
            "https://{url}",
            "▶ {url}",
            "☞ {url}",
        ],
    ),
    (
        "name",
        &[
            "김민준",
            "이서연",
            "박지훈",
            "최수아",
            "정우진",
            "강하은",
            "조현우",
            "윤지민",
            "장서준",
            "임예린",
            "홍길동",
        ],
    ),
    (
        "masked_name",
        &["김*준", "이*연", "박*훈", "최*아", "홍*동"],
    ),
    (
        "place",
        &[
            "강남역",
            "회사 앞 국밥집",
            "집 앞 카페",
            "홍대",
            "성수동",
            "엄마 집",
            "체육관",
            "교회",
        ],
    ),
    (
        "service",
        &["네이버", "카카오", "토스", "쿠팡", "배달의민족", "당근마켓"],
    ),
    (
        "clinic",
        &[
            "서울대병원",
            "연세치과",
            "우리동네의원",
            "강남세브란스",
            "튼튼정형외과",
        ],
    ),
    ("city", &["서울시", "부산시", "경기도", "인천시", "대구시"]),
    ("agency_real", &["서울시청", "마포구청", "국세청"]),
    (
        "shop",
        &[
            "올리브영",
            "이마트",
            "GS25",
            "스타벅스",
            "무신사",
            "다이소",
            "교보문고",
        ],
    ),
    ("telco", &["SKT", "KT", "LG U+"]),
    ("intl", &["[국외발신] ", "[국제발신] ", "[해외발신] "]),
    (
        "foreign_service",
        &[
            "Google",
            "Apple",
            "Microsoft",
            "Telegram",
            "WhatsApp",
            "Steam",
            "Discord",
            "Instagram",
            "Amazon",
            "PayPal",
            "LINE",
        ],
    ),
    (
        "foreign_travel",
        &["아고다", "부킹닷컴", "에어비앤비", "익스피디아", "트립닷컴"],
    ),
    ("school", &["한빛초등학교", "서울중학교", "푸른유치원"]),
    ("apt", &["래미안", "자이", "힐스테이트"]),
    (
        "stock_firm",
        &["키움증권", "미래에셋증권", "삼성증권", "NH투자증권"],
    ),
    (
        "stock_name",
        &["삼성전자", "SK하이닉스", "현대차", "카카오", "NAVER"],
    ),
    (
        "insurer",
        &["삼성생명", "현대해상", "DB손해보험", "한화생명"],
    ),
    (
        "en_win",
        &[
            "Congratulations!",
            "WINNER!!",
            "You have won!",
            "Dear customer,",
            "URGENT!",
            "As a valued customer,",
        ],
    ),
    (
        "en_prize",
        &[
            "Walmart gift card",
            "iPhone 15",
            "holiday for 2",
            "cash prize",
            "reward",
            "bonus voucher",
        ],
    ),
    (
        "en_premium",
        &[
            "09061701461",
            "0906 123 4567",
            "08712300220",
            "0871-872-9758",
            "09050000327",
        ],
    ),
    (
        "en_cost",
        &[
            "150p/min",
            "Cost 150ppm",
            "T&Cs apply 18+",
            "£1.50/msg",
            "Std txt rate",
        ],
    ),
    (
        "en_money",
        &["£1000", "$500", "£2,000", "$1,000", "£250", "$5000"],
    ),
    ("en_short", &["87066", "80086", "85023", "83600", "69669"]),
    (
        "en_service",
        &[
            "Netflix",
            "Amazon Prime",
            "ringtone club",
            "Apple ID",
            "PayPal",
        ],
    ),
    (
        "en_courier",
        &["USPS", "Royal Mail", "DHL", "FedEx", "Evri"],
    ),
    (
        "en_bank",
        &["Chase", "HSBC", "Barclays", "Wells Fargo", "Lloyds"],
    ),
    ("en_agency", &["HMRC", "IRS", "Gov.uk"]),
    (
        "en_shop",
        &["Tesco", "Amazon", "Starbucks", "Shell", "Uber"],
    ),
    (
        "en_clinic",
        &["the dental clinic", "Dr. Lee's office", "City Health"],
    ),
    ("tg_link", &["t.me/{handle}", "telegram @{handle}", "{url}"]),
    (
        "real_link",
        &[
            "naver.me/{code}",
            "youtu.be/{code}",
            "www.coupang.com/vp/products/{otp}",
            "blog.naver.com/{handle}",
            "map.kakao.com/{otp}",
        ],
    ),
    (
        "time_range",
        &["14~16시", "10~12시", "18~20시", "2-4pm", "9am-1pm"],
    ),
];

/// Suspicious domains: brand look-alikes and cheap TLDs.
const URL_WORDS: &[&str] = &[
    "cj-deliv",
    "post-kr",
    "nhis-refund",
    "gov24-help",
    "fine24",
    "wedding-card",
    "bugo-notice",
    "casino-vip",
    "toto-win",
    "bet365kr",
    "loan-ok",
    "sunshine-loan",
    "stock-vip",
    "leading-room",
    "hot-meet",
    "ice24",
    "kb-secure",
    "shinhan-verify",
    "paypa1-secure",
    "usps-track",
    "royalmail-fee",
    "my-parcel",
    "refund-kr",
    "police-go",
    "coin-pump",
    "secure-login",
    "apple-id-check",
    "dhl-redeliver",
];
/// Names smishing hosts borrow (institutions, couriers, banks, shops), and what they add
/// to them: `kr-nhis.com`, `hometax-refund.site`, `coupangsafe.xyz`.
const URL_BRANDS: &[&str] = &[
    "nhis", "nps", "hometax", "gov24", "wetax", "ex", "hipass", "police", "spo", "court", "nts",
    "kdca", "epost", "cj", "hanjin", "lotte", "coupang", "naver", "kakao", "toss", "kbstar",
    "shinhan", "woori", "hana", "nh", "ibk", "kepco", "fss", "efine", "minwon",
];
const URL_AFFIXES: &[&str] = &[
    "kr", "pay", "safe", "secure", "help", "refund", "check", "verify", "notice", "service",
    "center", "login", "auth", "24", "m", "my", "web", "support", "event", "care", "go",
];
const TLDS: &[&str] = &[
    "xyz", "top", "click", "site", "info", "shop", "vip", "cc", "com", "kr", "me", "live", "net",
    "online", "link", "icu",
];
const SHORTENERS: &[&str] = &[
    "bit.ly",
    "han.gl",
    "me2.do",
    "vo.la",
    "tinyurl.com",
    "url.kr",
    "c11.kr",
];
const HANDLES: &[&str] = &[
    "casino_king",
    "vip777",
    "ice_seoul",
    "loan_help",
    "stock_master",
    "moonpump",
    "sexy_girl",
    "bet_pro",
    "money24",
    "pump_room",
];

/// The obfuscations applied to spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obfuscation {
    /// `카 지 노`.
    Spacing,
    /// `카.지.노`, `카★지★노`.
    Symbols,
    /// `ｃａｓｉｎｏ`, full-width digits.
    FullWidth,
    /// Zero-width spaces between characters.
    ZeroWidth,
    /// `ㅋㅏㅈㅣ노`: compatibility jamo of some syllables.
    Jamo,
    /// `ㅋr지노`: a Latin letter for the vowel.
    LatinVowel,
    /// Cyrillic look-alikes for Latin letters.
    Cyrillic,
    /// `cas1n0`.
    Leet,
    /// `hxxp`, `[.]`.
    Defang,
}

/// Every obfuscation, in a fixed order.
pub const OBFUSCATIONS: &[Obfuscation] = &[
    Obfuscation::Spacing,
    Obfuscation::Symbols,
    Obfuscation::FullWidth,
    Obfuscation::ZeroWidth,
    Obfuscation::Jamo,
    Obfuscation::LatinVowel,
    Obfuscation::Cyrillic,
    Obfuscation::Leet,
    Obfuscation::Defang,
];

/// The corpus generator.
#[derive(Debug)]
pub struct Corpus {
    rng: SmallRng,
    /// Draws what is added to lines (emoji, links), apart from `rng` so that no other line
    /// changes.
    extras: SmallRng,
    /// Share of spam that is obfuscated.
    pub obfuscated_share: f64,
    /// Share of lines that are spam.
    pub spam_share: f64,
    /// Share of lines in English.
    pub english_share: f64,
}

impl Corpus {
    /// A generator with `seed`.
    pub fn new(seed: u64) -> Self {
        Corpus {
            rng: SmallRng::seed_from_u64(seed),
            extras: SmallRng::seed_from_u64(seed ^ 0x5EED_DEC0),
            obfuscated_share: 0.4,
            spam_share: 0.45,
            english_share: 0.0,
        }
    }

    /// The next labelled line: `{"text", "label", "category"?, "language", "source",
    /// "group", "obfuscated"?}`. `group` names the template or hook the text was made from,
    /// so that training can hold out whole groups and measure what it has not seen.
    pub fn next_line(&mut self) -> serde_json::Value {
        let english = self.rng.random_bool(self.english_share);
        let spam = self.rng.random_bool(self.spam_share);
        let language = if english { "en" } else { "ko" };
        if spam {
            let (cat, group, mut text) = if !english && self.rng.random_bool(0.6) {
                self.composed_spam()
            } else {
                let cats = if english { EN_SPAM } else { KO_SPAM };
                let ci = self.rng.random_range(0..cats.len());
                let (cat, templates) = cats[ci];
                let ti = self.rng.random_range(0..templates.len());
                (
                    cat,
                    format!("{language}/{cat}/t{ti}"),
                    self.expand(templates[ti]),
                )
            };
            if !english {
                text = self.spam_extras(text);
            }
            let obfuscated = self.rng.random_bool(self.obfuscated_share);
            if obfuscated {
                for _ in 0..self.rng.random_range(1..=2) {
                    let o = OBFUSCATIONS[self.rng.random_range(0..OBFUSCATIONS.len())];
                    text = self.obfuscate(&text, o);
                }
            }
            json!({"text": text, "label": "spam", "category": cat, "language": language, "source": "synth", "group": group, "obfuscated": obfuscated})
        } else {
            let (group, text) = if english {
                let i = self.rng.random_range(0..EN_HAM.len());
                (format!("en/ham/t{i}"), self.expand(EN_HAM[i]))
            } else {
                match self.rng.random_range(0..10) {
                    0..=2 => {
                        let i = self.rng.random_range(0..KO_HAM.len());
                        let text = self.expand(KO_HAM[i]);
                        (format!("ko/ham/t{i}"), self.chat_extras(text))
                    }
                    3..=6 => {
                        let (group, text) = self.composed_chat();
                        (group, self.chat_extras(text))
                    }
                    7 => {
                        let i = self.rng.random_range(0..KO_BULK.len());
                        let text = self.expand(KO_BULK[i]);
                        (format!("ko/notice/b{i}"), self.notice_link(text))
                    }
                    _ => {
                        let i = self.rng.random_range(0..KO_NOTICES.len());
                        let text = self.expand(KO_NOTICES[i]);
                        (format!("ko/notice/n{i}"), self.notice_link(text))
                    }
                }
            };
            json!({"text": text, "label": "ham", "language": language, "source": "synth", "group": group})
        }
    }

    /// A Korean spam message composed of a hook, offers, a push and an action.
    fn composed_spam(&mut self) -> (&'static str, String, String) {
        let ci = self.rng.random_range(0..KO_PARTS.len());
        let p = &KO_PARTS[ci];
        let hi = self.rng.random_range(0..p.hooks.len());
        let mut parts = vec![p.hooks[hi]];
        for _ in 0..self.rng.random_range(1..=2) {
            parts.push(pick(&mut self.rng, p.offers));
        }
        if self.rng.random_bool(0.5) {
            parts.push(pick(&mut self.rng, p.pushes));
        }
        parts.push(pick(&mut self.rng, p.actions));
        if self.rng.random_bool(0.2) {
            // Hook last, or anywhere: spam is not always written in one order.
            let j = self.rng.random_range(0..parts.len());
            parts.swap(0, j);
        }
        let sep = [" ", " ", ". ", "\n", " / ", "! ", " ~ "][self.rng.random_range(0..7)];
        let body = parts
            .iter()
            .map(|t| self.expand(t))
            .collect::<Vec<_>>()
            .join(sep);
        let pre = {
            let t = pick(&mut self.rng, KO_SPAM_PREFIX);
            self.expand(t)
        };
        let suf = {
            let t = pick(&mut self.rng, KO_SPAM_SUFFIX);
            self.expand(t)
        };
        let text = [pre.as_str(), body.as_str(), suf.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        (p.category, format!("ko/{}/h{hi}", p.category), text)
    }

    /// Korean chat composed of an opening and one or two bodies.
    fn composed_chat(&mut self) -> (String, String) {
        let bi = self.rng.random_range(0..KO_CHAT_BODY.len());
        let open = {
            let t = pick(&mut self.rng, KO_CHAT_OPEN);
            self.expand(t)
        };
        let mut text = self.expand(KO_CHAT_BODY[bi]);
        if self.rng.random_bool(0.3) {
            let more = {
                let t = pick(&mut self.rng, KO_CHAT_BODY);
                self.expand(t)
            };
            text = format!("{text} {more}");
        }
        if !open.is_empty() {
            text = format!("{open} {text}");
        }
        (format!("ko/chat/c{bi}"), text)
    }

    /// A third of Korean lines, chat and spam alike, end with emoji or an emoticon.
    fn decorate(&mut self, text: String) -> String {
        if !self.extras.random_bool(0.3) {
            return text;
        }
        let d = pick(&mut self.extras, KO_DECOR);
        let sep = if self.extras.random_bool(0.3) {
            ""
        } else {
            " "
        };
        format!("{text}{sep}{d}")
    }

    /// A chat line: one in twelve shares a link, a third end with emoji.
    fn chat_extras(&mut self, text: String) -> String {
        let text = if self.extras.random_bool(1.0 / 12.0) {
            let link = self.link(KO_SHARED_LINKS);
            format!("{text} {link}")
        } else {
            text
        };
        self.decorate(text)
    }

    /// A spam line: as many carry a notice's or a chat's link as ham lines do (spam
    /// copies them as decoys and shares videos and blogs too), so that a link decides
    /// nothing by itself; a third end with emoji.
    fn spam_extras(&mut self, text: String) -> String {
        let links = match self.extras.random_range(0..100) {
            0..10 => Some(KO_NOTICE_LINKS),
            10..16 => Some(KO_SHARED_LINKS),
            _ => None,
        };
        let text = match links {
            Some(links) => {
                let link = self.link(links);
                format!("{text} {link}")
            }
            None => text,
        };
        self.decorate(text)
    }

    /// A notice: a third of them point to the sender's site.
    fn notice_link(&mut self, text: String) -> String {
        if !self.extras.random_bool(0.35) {
            return text;
        }
        let join = pick(
            &mut self.extras,
            &[" 자세히 보기 ", " ", " 바로가기 ", "\n"],
        );
        let link = self.link(KO_NOTICE_LINKS);
        format!("{text}{join}{link}")
    }

    /// One of `links` with its `{id}` and `{num}` filled.
    fn link(&mut self, links: &[&str]) -> String {
        let r = &mut self.extras;
        let id = short_id(r);
        let num = r.random_range(1_000_000..10_000_000_000u64).to_string();
        pick(r, links).replace("{id}", &id).replace("{num}", &num)
    }

    /// Fills every `{slot}` of `template`.
    pub fn expand(&mut self, template: &str) -> String {
        let mut out = String::with_capacity(template.len() + 32);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                out.push_str(&rest[open..]);
                return out;
            };
            let slot = &rest[open + 1..open + close];
            let filled = self.fill(slot);
            out.push_str(&filled);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }

    fn fill(&mut self, slot: &str) -> String {
        let r = &mut self.rng;
        match slot {
            "pct" => format!(
                "{}%",
                [10, 20, 30, 50, 100, 200, 300, 500][r.random_range(0..8)]
            ),
            "amount" => match r.random_range(0..4) {
                0 => format!("{}만원", r.random_range(1..500) * 10),
                1 => format!("{}천만원", r.random_range(1..10)),
                2 => format!("{}억", r.random_range(1..5)),
                _ => format!("{},000원", r.random_range(10..999)),
            },
            "amount_won" => format!(
                "{},{:03}원",
                r.random_range(1..990),
                r.random_range(0..100) * 10
            ),
            "fx_amount" => format!(
                "{} {}.{:02}",
                ["USD", "USD", "EUR", "GBP"][r.random_range(0..4)],
                r.random_range(1..900),
                r.random_range(0..100)
            ),
            "rate" => format!("{}.{:02}%", r.random_range(2..9), r.random_range(0..100)),
            "small" => r.random_range(2..60).to_string(),
            "otp" => format!("{:06}", r.random_range(0..1_000_000)),
            "otp4" => format!("{:04}", r.random_range(0..10_000)),
            "code" => format!(
                "{}{:04}",
                ["vip", "A", "K", "", "77"][r.random_range(0..5)],
                r.random_range(0..10_000)
            ),
            "year" => r.random_range(2024..2027).to_string(),
            "month" => r.random_range(1..13).to_string(),
            "date" => format!("{:02}/{:02}", r.random_range(1..13), r.random_range(1..29)),
            "time" => format!(
                "{}:{:02}",
                r.random_range(7..22),
                [0, 10, 30, 45][r.random_range(0..4)]
            ),
            "phone" => match r.random_range(0..4) {
                0 => format!(
                    "070-{:04}-{:04}",
                    r.random_range(0..10_000),
                    r.random_range(0..10_000)
                ),
                1 => format!(
                    "010-{:04}-{:04}",
                    r.random_range(1000..10_000),
                    r.random_range(0..10_000)
                ),
                2 => format!("1588-{:04}", r.random_range(0..10_000)),
                _ => format!(
                    "02-{}-{:04}",
                    r.random_range(100..1000),
                    r.random_range(0..10_000)
                ),
            },
            "biz_phone" => format!(
                "{}-{:04}",
                ["1588", "1599", "1644", "1577"][r.random_range(0..4)],
                r.random_range(0..10_000)
            ),
            "handle" => HANDLES[r.random_range(0..HANDLES.len())].to_string(),
            "url" => match r.random_range(0..5) {
                0 => format!(
                    "{}/{}",
                    SHORTENERS[r.random_range(0..SHORTENERS.len())],
                    short_id(r)
                ),
                1 => format!(
                    "{}{}.{}",
                    URL_WORDS[r.random_range(0..URL_WORDS.len())],
                    r.random_range(1..99),
                    TLDS[r.random_range(0..TLDS.len())]
                ),
                3 | 4 => {
                    let brand = URL_BRANDS[r.random_range(0..URL_BRANDS.len())];
                    let affix = URL_AFFIXES[r.random_range(0..URL_AFFIXES.len())];
                    let tld = TLDS[r.random_range(0..TLDS.len())];
                    match r.random_range(0..4) {
                        0 => format!("{brand}-{affix}.{tld}"),
                        1 => format!("{affix}-{brand}.{tld}"),
                        2 => format!("{brand}{affix}.{tld}"),
                        _ => format!("{brand}-{affix}.{tld}/{}", short_id(r)),
                    }
                }
                _ => format!(
                    "{}.{}/{}",
                    URL_WORDS[r.random_range(0..URL_WORDS.len())],
                    TLDS[r.random_range(0..TLDS.len())],
                    short_id(r)
                ),
            },
            _ => match SLOTS.iter().find(|(name, _)| *name == slot) {
                Some((_, fillers)) => {
                    let f = fillers[self.rng.random_range(0..fillers.len())];
                    self.expand(f)
                }
                None => format!("{{{slot}}}"),
            },
        }
    }

    /// Applies one obfuscation to spam text.
    pub fn obfuscate(&mut self, text: &str, o: Obfuscation) -> String {
        let r = &mut self.rng;
        let hangul = |c: char| matches!(c, '\u{AC00}'..='\u{D7A3}');
        let mut out = String::with_capacity(text.len() * 2);
        let chars: Vec<char> = text.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            let next_hangul = chars.get(i + 1).is_some_and(|&n| hangul(n));
            match o {
                Obfuscation::Spacing | Obfuscation::Symbols | Obfuscation::ZeroWidth => {
                    out.push(c);
                    if hangul(c) && next_hangul && r.random_bool(0.5) {
                        let sep = match o {
                            Obfuscation::Spacing => " ",
                            Obfuscation::Symbols => {
                                [".", "★", "♥", "*", "_", "♠", "-", "~"][r.random_range(0..8)]
                            }
                            _ => "\u{200B}",
                        };
                        out.push_str(sep);
                    }
                }
                Obfuscation::FullWidth => match c {
                    '!'..='~' if r.random_bool(0.8) => {
                        out.push(char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c));
                    }
                    _ => out.push(c),
                },
                Obfuscation::Jamo | Obfuscation::LatinVowel if hangul(c) && r.random_bool(0.3) => {
                    let s = c as u32 - 0xAC00;
                    let (l, v, t) = (s / 588, (s % 588) / 28, s % 28);
                    let lead = COMPAT_LEADS[l as usize];
                    let latin = if o == Obfuscation::LatinVowel && t == 0 {
                        latin_vowel(v)
                    } else {
                        None
                    };
                    match latin {
                        Some(lv) => {
                            out.push(lead);
                            out.push(lv);
                        }
                        None if o == Obfuscation::Jamo => {
                            out.push(lead);
                            out.push(char::from_u32(0x314F + v).unwrap_or(c));
                            if t > 0 {
                                out.push(COMPAT_FINALS[t as usize - 1]);
                            }
                        }
                        None => out.push(c),
                    }
                }
                Obfuscation::Cyrillic => out.push(match c {
                    'a' if r.random_bool(0.6) => 'а',
                    'e' if r.random_bool(0.6) => 'е',
                    'o' if r.random_bool(0.6) => 'о',
                    'p' if r.random_bool(0.6) => 'р',
                    'c' if r.random_bool(0.6) => 'с',
                    'x' if r.random_bool(0.6) => 'х',
                    _ => c,
                }),
                Obfuscation::Leet => out.push(match c {
                    'o' | 'O' if r.random_bool(0.5) => '0',
                    'i' | 'I' if r.random_bool(0.5) => '1',
                    'a' if r.random_bool(0.3) => '@',
                    's' if r.random_bool(0.3) => '$',
                    _ => c,
                }),
                _ => out.push(c),
            }
        }
        if o == Obfuscation::Defang {
            out = out.replacen("http", "hxxp", 1).replacen('.', "[.]", 1);
        }
        out
    }
}

/// Compatibility jamo of the 19 leading consonants.
const COMPAT_LEADS: [char; 19] = [
    'ㄱ', 'ㄲ', 'ㄴ', 'ㄷ', 'ㄸ', 'ㄹ', 'ㅁ', 'ㅂ', 'ㅃ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅉ', 'ㅊ', 'ㅋ',
    'ㅌ', 'ㅍ', 'ㅎ',
];

/// The keyboard's jamo for each final consonant, as people type them (`ㅍㅏㄴ`).
const COMPAT_FINALS: [char; 27] = [
    'ㄱ', 'ㄲ', 'ㄳ', 'ㄴ', 'ㄵ', 'ㄶ', 'ㄷ', 'ㄹ', 'ㄺ', 'ㄻ', 'ㄼ', 'ㄽ', 'ㄾ', 'ㄿ', 'ㅀ', 'ㅁ',
    'ㅂ', 'ㅄ', 'ㅅ', 'ㅆ', 'ㅇ', 'ㅈ', 'ㅊ', 'ㅋ', 'ㅌ', 'ㅍ', 'ㅎ',
];

/// The Latin letter spammers write for a vowel (`ㅏ` -> `r`, `ㅐ` -> `H`), if any.
fn latin_vowel(v: u32) -> Option<char> {
    match v {
        0 => Some('r'),
        1 => Some('H'),
        20 => Some('l'),
        _ => None,
    }
}

fn short_id(r: &mut SmallRng) -> String {
    const A: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..r.random_range(4..8))
        .map(|_| A[r.random_range(0..A.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_lines_and_every_slot_is_filled() {
        let mut a = Corpus::new(3);
        let mut b = Corpus::new(3);
        a.english_share = 0.2;
        b.english_share = 0.2;
        let mut spam = 0;
        for _ in 0..3_000 {
            let (x, y) = (a.next_line(), b.next_line());
            assert_eq!(x, y);
            let text = x["text"].as_str().unwrap();
            assert!(
                !text.contains('{') && !text.contains('}'),
                "unfilled slot in {text}"
            );
            if x["label"] == "spam" {
                spam += 1;
                assert!(x["category"].is_string());
            }
        }
        assert!((1_000..1_700).contains(&spam), "{spam}");
    }

    /// Of 6,000 lines (seed 4) that `counts`, the shares of ham and of spam whose text
    /// `has` something.
    fn shares(
        counts: impl Fn(&serde_json::Value) -> bool,
        has: impl Fn(&str) -> bool,
    ) -> (f64, f64) {
        let mut c = Corpus::new(4);
        let mut seen = [[0u32; 2]; 2];
        for _ in 0..6_000 {
            let line = c.next_line();
            if counts(&line) {
                let text = line["text"].as_str().unwrap();
                seen[usize::from(line["label"] == "spam")][usize::from(has(text))] += 1;
            }
        }
        let share = |[without, with]: [u32; 2]| f64::from(with) / f64::from(without + with);
        (share(seen[0]), share(seen[1]))
    }

    #[test]
    fn chat_and_spam_end_with_the_same_emoji_alike() {
        // The model must not learn that emoji mean spam (or ham): both draw from one list.
        let chat_or_spam = |line: &serde_json::Value| {
            line["label"] == "spam"
                || line["group"]
                    .as_str()
                    .is_some_and(|g| g.starts_with("ko/chat") || g.starts_with("ko/ham"))
        };
        let (chat, spam) = shares(chat_or_spam, |text| {
            KO_DECOR.iter().any(|d| text.ends_with(d))
        });
        assert!((0.25..0.45).contains(&chat), "{chat}");
        assert!((0.25..0.45).contains(&spam), "{spam}");
    }

    #[test]
    fn legitimate_links_are_in_ham_and_spam_alike() {
        // A model must not learn that every link means spam, nor that a real site's link
        // means ham: notices and chat carry them, and spam as often.
        let hosts: Vec<&str> = KO_NOTICE_LINKS
            .iter()
            .chain(KO_SHARED_LINKS)
            .map(|l| l.split('/').nth(2).unwrap())
            .collect();
        let (ham, spam) = shares(|_| true, |text| hosts.iter().any(|h| text.contains(h)));
        assert!((0.1..0.25).contains(&ham), "{ham}");
        assert!((0.1..0.25).contains(&spam), "{spam}");
    }

    #[test]
    fn obfuscations_change_the_text() {
        let mut c = Corpus::new(1);
        let t = "카지노 바카라 가입머니 지급 http://casino.xyz";
        let mut changed = 0;
        for &o in OBFUSCATIONS {
            if (0..5).any(|_| c.obfuscate(t, o) != t) {
                changed += 1;
            }
        }
        assert_eq!(changed, OBFUSCATIONS.len());
    }
}
