//! Sender identity: every `sender` as presented becomes a normalized key with a kind and
//! a country, using libphonenumber metadata (the `phonenumber` crate), not hand-written
//! prefix tables.
//!
//! - Numbers parse with Korea as the default region, so `010-1234-5678`, `01012345678`,
//!   `+82 10 1234 5678` and `0082 10 1234 5678` all become `+821012345678`. (`0082` is
//!   rewritten to `+82` first: Korean international prefixes include `008`, which would
//!   otherwise read `00 82...` as prefix `008` and country code 2x.)
//! - Kinds come from the number's type in the metadata: mobile, fixed line, business
//!   (UAN / shared-cost: Korea's 15xx/16xx/18xx), toll-free, premium, VoIP, other.
//! - All-digit senders of 3 to 6 digits that are not valid numbers are short codes,
//!   keyed `short:<digits>`; senders with letters are alphanumeric, keyed
//!   `alpha:<UPPER>`; everything else is invalid, keyed `invalid:<digits or text>`.
//!
//! The key is also the recommended input-topic key (all per-sender state of one sender
//! then lives in one partition).

use phonenumber::{Mode, Type};

/// What kind of sender this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SenderKind {
    /// Mobile subscriber line.
    Mobile,
    /// Fixed line.
    Fixed,
    /// Business number (Korea's 15xx/16xx/18xx: UAN or shared-cost in the metadata).
    Business,
    /// Toll-free (080).
    TollFree,
    /// Premium rate.
    Premium,
    /// VoIP (070).
    Voip,
    /// A valid number of another type (pager, personal, ...).
    OtherNumber,
    /// A short code (3 to 6 digits).
    ShortCode,
    /// Alphanumeric sender id.
    Alphanumeric,
    /// Not a valid, assignable number.
    Invalid,
}

impl SenderKind {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SenderKind::Mobile => "mobile",
            SenderKind::Fixed => "fixed",
            SenderKind::Business => "business",
            SenderKind::TollFree => "toll_free",
            SenderKind::Premium => "premium",
            SenderKind::Voip => "voip",
            SenderKind::OtherNumber => "other_number",
            SenderKind::ShortCode => "short_code",
            SenderKind::Alphanumeric => "alphanumeric",
            SenderKind::Invalid => "invalid",
        }
    }

    /// Whether the sender is a phone number (has an E.164 form).
    pub fn is_number(self) -> bool {
        !matches!(
            self,
            SenderKind::ShortCode | SenderKind::Alphanumeric | SenderKind::Invalid
        )
    }
}

/// A parsed sender.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SenderId {
    /// Normalized key: E.164 for numbers, `short:`, `alpha:` or `invalid:` otherwise.
    pub key: String,
    /// Kind.
    pub kind: SenderKind,
    /// ISO 3166 alpha-2 region of a number, when the metadata knows it.
    pub country: Option<String>,
    /// Country calling code of a number (82 for Korea).
    pub calling_code: Option<u16>,
    /// A 64-bit key of `key` for compact per-sender state (the velocity operator's): a
    /// number's E.164 digits packed exactly, other keys hashed. Made with the identity,
    /// so that the chain's cache makes it once per sender.
    pub state_key: u64,
}

impl SenderId {
    fn new(
        key: String,
        kind: SenderKind,
        country: Option<String>,
        calling_code: Option<u16>,
    ) -> Self {
        SenderId {
            state_key: crate::velocity::fingerprint::address_key(&key),
            key,
            kind,
            country,
            calling_code,
        }
    }

    /// Whether this is a Korean (+82) number.
    pub fn is_korean_number(&self) -> bool {
        self.calling_code == Some(82) && self.kind.is_number()
    }
}

/// Longest sender text considered; longer input is invalid without parsing it.
pub const MAX_SENDER_LEN: usize = 64;

/// Parses a sender as presented.
pub fn parse_sender(raw: &str) -> SenderId {
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_SENDER_LEN {
        return invalid(trimmed);
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let has_letters = trimmed.chars().any(char::is_alphabetic);
    if has_letters {
        let alnum: String = trimmed
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_uppercase)
            .collect();
        // Only letters, digits and light punctuation make an alphanumeric sender id.
        let plausible = !alnum.is_empty()
            && alnum.chars().count() <= 11
            && trimmed
                .chars()
                .all(|c| c.is_alphanumeric() || " .-_&".contains(c));
        return if plausible {
            SenderId::new(
                format!("alpha:{alnum}"),
                SenderKind::Alphanumeric,
                None,
                None,
            )
        } else {
            invalid(trimmed)
        };
    }
    if !trimmed
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        || digits.is_empty()
    {
        return invalid(trimmed);
    }
    // Formatting characters go before parsing (the parser misreads `+8210-...`).
    let text = if trimmed.starts_with('+') {
        format!("+{digits}")
    } else if let Some(rest) = digits.strip_prefix("0082") {
        format!("+82{rest}")
    } else {
        digits.clone()
    };
    if let Some(id) = korean_fast_path(&text) {
        return id;
    }
    if let Ok(n) = phonenumber::parse(Some(phonenumber::country::Id::KR), &text) {
        if n.is_valid() {
            let kind = kind_of(n.number_type(&phonenumber::metadata::DATABASE));
            let country = n.country().id().map(|id| id.as_ref().to_owned());
            return SenderId::new(
                n.format().mode(Mode::E164).to_string(),
                kind,
                country,
                Some(n.code().value()),
            );
        }
    }
    if !trimmed.starts_with('+') && (3..=6).contains(&digits.len()) && digits.len() == trimmed.len()
    {
        return SenderId::new(format!("short:{digits}"), SenderKind::ShortCode, None, None);
    }
    invalid(if digits.is_empty() { trimmed } else { &digits })
}

/// Our kind for a libphonenumber number type.
fn kind_of(t: Type) -> SenderKind {
    match t {
        Type::Mobile => SenderKind::Mobile,
        Type::FixedLine | Type::FixedLineOrMobile => SenderKind::Fixed,
        Type::Uan | Type::SharedCost => SenderKind::Business,
        Type::TollFree => SenderKind::TollFree,
        Type::PremiumRate => SenderKind::Premium,
        Type::Voip => SenderKind::Voip,
        _ => SenderKind::OtherNumber,
    }
}

/// Korea's number types from the libphonenumber metadata, as anchored regular
/// expressions compiled once. The `phonenumber` crate looks each pattern up in a
/// string-keyed regex cache on every call (microseconds per number); Korean senders are
/// the bulk of the traffic, so they are classified here with the same metadata.
struct KoreanTypes {
    /// In libphonenumber's `getNumberType` order.
    types: Vec<(SenderKind, regex::Regex, Vec<u16>)>,
}

static KOREAN: std::sync::LazyLock<Option<KoreanTypes>> = std::sync::LazyLock::new(|| {
    let meta = phonenumber::metadata::DATABASE.by_id("KR")?;
    let d = meta.descriptors();
    let order = [
        (SenderKind::Premium, d.premium_rate()),
        (SenderKind::TollFree, d.toll_free()),
        (SenderKind::Business, d.shared_cost()),
        (SenderKind::Voip, d.voip()),
        (SenderKind::OtherNumber, d.personal_number()),
        (SenderKind::OtherNumber, d.pager()),
        (SenderKind::Business, d.uan()),
        (SenderKind::OtherNumber, d.voicemail()),
        (SenderKind::Fixed, d.fixed_line()),
        (SenderKind::Mobile, d.mobile()),
    ];
    let mut types = Vec::new();
    for (kind, desc) in order {
        if let Some(desc) = desc {
            // Metadata patterns carry the XML's line breaks and indentation.
            let pattern: String = desc.national_number().as_str().split_whitespace().collect();
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).ok()?;
            types.push((kind, re, desc.possible_length().to_vec()));
        }
    }
    Some(KoreanTypes { types })
});

/// A Korean number given as `+82...` or national `0...` digits, classified with the
/// metadata; `None` for anything else (the full parser decides).
fn korean_fast_path(text: &str) -> Option<SenderId> {
    let nsn = match text.strip_prefix("+82") {
        Some(rest) => rest.strip_prefix('0').unwrap_or(rest),
        None if text.starts_with('0') && !text.starts_with("00") => &text[1..],
        None => return None,
    };
    if nsn.is_empty() || !nsn.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let k = KOREAN.as_ref()?;
    let len = nsn.len() as u16;
    let kind = k
        .types
        .iter()
        .find(|(_, re, lengths)| (lengths.is_empty() || lengths.contains(&len)) && re.is_match(nsn))
        .map(|(kind, _, _)| *kind)?;
    Some(SenderId::new(
        format!("+82{nsn}"),
        kind,
        Some("KR".into()),
        Some(82),
    ))
}

fn invalid(s: &str) -> SenderId {
    let shown: String = s.chars().take(MAX_SENDER_LEN).collect();
    SenderId::new(format!("invalid:{shown}"), SenderKind::Invalid, None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_of_formats() {
        use SenderKind::*;
        let cases: &[(&str, &str, SenderKind, Option<&str>)] = &[
            // Korean mobile, every way it is written
            ("010-1234-5678", "+821012345678", Mobile, Some("KR")),
            ("01012345678", "+821012345678", Mobile, Some("KR")),
            ("+82 10 1234 5678", "+821012345678", Mobile, Some("KR")),
            ("+821012345678", "+821012345678", Mobile, Some("KR")),
            ("0082 10 1234 5678", "+821012345678", Mobile, Some("KR")),
            ("008210-1234-5678", "+821012345678", Mobile, Some("KR")),
            (" (010) 1234.5678 ", "+821012345678", Mobile, Some("KR")),
            // Korean fixed lines
            ("02-312-3456", "+8223123456", Fixed, Some("KR")),
            ("031-123-4567", "+82311234567", Fixed, Some("KR")),
            // Business numbers 15xx/16xx/18xx
            ("1588-1234", "+8215881234", Business, Some("KR")),
            ("15881234", "+8215881234", Business, Some("KR")),
            ("1644-5678", "+8216445678", Business, Some("KR")),
            // Toll-free and VoIP
            ("080-123-4567", "+82801234567", TollFree, Some("KR")),
            ("070-1234-5678", "+827012345678", Voip, Some("KR")),
            // Foreign
            ("+44 7400 123456", "+447400123456", Mobile, Some("GB")),
            ("+44 7700 900123", "invalid:447700900123", Invalid, None), // Ofcom drama range
            ("+81 90-1234-5678", "+819012345678", Mobile, Some("JP")),
            ("+8613800138000", "+8613800138000", Mobile, Some("CN")),
            ("+12025550123", "+12025550123", Fixed, Some("US")),
            // Short codes and alphanumeric
            ("#1234", "invalid:#1234", Invalid, None),
            ("1234", "short:1234", ShortCode, None),
            ("114", "short:114", ShortCode, None),
            ("KBBank", "alpha:KBBANK", Alphanumeric, None),
            ("Coupang", "alpha:COUPANG", Alphanumeric, None),
            // Garbage
            ("", "invalid:", Invalid, None),
            ("010-0000", "invalid:0100000", Invalid, None),
            ("+82 10 12", "invalid:821012", Invalid, None),
            ("++--", "invalid:++--", Invalid, None),
            ("DROP TABLE; --", "invalid:DROP TABLE; --", Invalid, None),
        ];
        for (raw, key, kind, country) in cases {
            let id = parse_sender(raw);
            assert_eq!(
                (id.key.as_str(), id.kind, id.country.as_deref()),
                (*key, *kind, *country),
                "{raw:?}"
            );
        }
        assert_eq!(parse_sender(&"9".repeat(500)).kind, Invalid);
        assert!(parse_sender("010-1234-5678").is_korean_number());
        assert!(
            korean_fast_path("+821012345678").is_some(),
            "the fast path must serve Korean numbers"
        );
        assert!(!parse_sender("+447400123456").is_korean_number());
    }

    /// The same sender through the full libphonenumber parser.
    fn slow(raw: &str) -> Option<(String, SenderKind)> {
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        let text = if raw.starts_with('+') {
            format!("+{digits}")
        } else {
            digits
        };
        let n = phonenumber::parse(Some(phonenumber::country::Id::KR), &text).ok()?;
        if !n.is_valid() {
            return None;
        }
        let kind = kind_of(n.number_type(&phonenumber::metadata::DATABASE));
        Some((n.format().mode(Mode::E164).to_string(), kind))
    }

    proptest::proptest! {
        #[test]
        fn korean_fast_path_agrees_with_the_full_parser(n in "0[1-9][0-9]{6,10}") {
            // Where the fast path answers, it answers what the full parser does; where it
            // does not, parse_sender falls back to the full parser.
            if let Some(fast) = korean_fast_path(&n) {
                proptest::prop_assert_eq!(Some((fast.key.clone(), fast.kind)), slow(&n), "{}", n);
            }
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let id = parse_sender(&s);
            proptest::prop_assert!(!id.key.is_empty());
        }
    }
}
