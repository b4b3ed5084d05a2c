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
    // Korean numbers, the bulk of the traffic, skip the parser.
    if let Some(nsn) = korean_national(&text) {
        if let Some((region, kind)) = classify(82, nsn) {
            return number(82, nsn, region, kind);
        }
    }
    if let Ok(n) = phonenumber::parse(Some(phonenumber::country::Id::KR), &text) {
        let code = n.code().value();
        let national = n.national().to_string();
        if let Some((region, kind)) = classify(code, &national) {
            return number(code, &national, region, kind);
        }
    }
    if !trimmed.starts_with('+') && (3..=6).contains(&digits.len()) && digits.len() == trimmed.len()
    {
        return SenderId::new(format!("short:{digits}"), SenderKind::ShortCode, None, None);
    }
    invalid(if digits.is_empty() { trimmed } else { &digits })
}

fn number(code: u16, national: &str, region: Option<String>, kind: SenderKind) -> SenderId {
    SenderId::new(format!("+{code}{national}"), kind, region, Some(code))
}

/// The national significant number of a Korean number given as `+82...` or national
/// `0...` digits; `None` for anything else.
fn korean_national(text: &str) -> Option<&str> {
    let nsn = match text.strip_prefix("+82") {
        Some(rest) => rest.strip_prefix('0').unwrap_or(rest),
        None if text.starts_with('0') && !text.starts_with("00") => &text[1..],
        None => return None,
    };
    (!nsn.is_empty() && nsn.bytes().all(|b| b.is_ascii_digit())).then_some(nsn)
}

/// A metadata pattern with the lengths it allows (none listed: any length).
struct Pattern {
    re: regex::Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn new(desc: &phonenumber::metadata::Descriptor) -> Option<Pattern> {
        Some(Pattern {
            re: anchored(desc.national_number().as_str())?,
            lengths: desc.possible_length().to_vec(),
        })
    }

    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.re.is_match(national)
    }
}

/// A metadata pattern compiled to match at the start of a number, as the `phonenumber`
/// crate matches them (the number's length is checked against the listed lengths).
/// Metadata patterns carry the XML's line breaks and indentation.
fn anchored(pattern: &str) -> Option<regex::Regex> {
    let pattern: String = pattern.split_whitespace().collect();
    regex::Regex::new(&format!("^(?:{pattern})")).ok()
}

/// One region's number types from the libphonenumber metadata, compiled once. (The
/// `phonenumber` crate's own validation looks every pattern up in a string-keyed regex
/// cache on each call and finds the region three times per number: validity, type and
/// country, microseconds per sender.)
struct Region {
    /// ISO 3166 alpha-2, or `None` for a non-geographic code (`001`).
    id: Option<String>,
    /// Which numbers of a shared calling code belong to this region, where the
    /// metadata says.
    leading_digits: Option<regex::Regex>,
    general: Pattern,
    /// In libphonenumber's `getNumberType` order.
    types: Vec<(SenderKind, Pattern)>,
}

impl Region {
    fn new(meta: &phonenumber::metadata::Metadata) -> Option<Region> {
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
            // A number that is a fixed line or mobile (the same pattern) counts as fixed.
            (SenderKind::Fixed, d.fixed_line()),
            (SenderKind::Mobile, d.mobile()),
        ];
        let mut types = Vec::new();
        for (kind, desc) in order {
            if let Some(desc) = desc {
                types.push((kind, Pattern::new(desc)?));
            }
        }
        Some(Region {
            id: (meta.id() != "001").then(|| meta.id().to_owned()),
            leading_digits: match meta.leading_digits() {
                Some(re) => Some(anchored(re.as_str())?),
                None => None,
            },
            general: Pattern::new(d.general())?,
            types,
        })
    }

    /// The kind of a valid number of this region, `None` for an invalid one.
    fn kind(&self, national: &str) -> Option<SenderKind> {
        if !self.general.is_match(national) {
            return None;
        }
        self.types
            .iter()
            .find(|(_, p)| p.is_match(national))
            .map(|(kind, _)| *kind)
    }
}

/// The regions of each calling code, compiled on first use of the code.
static REGIONS: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<u16, std::sync::Arc<[Region]>>>,
> = std::sync::LazyLock::new(Default::default);

fn regions(code: u16) -> Option<std::sync::Arc<[Region]>> {
    if let Some(r) = REGIONS.read().unwrap_or_else(|e| e.into_inner()).get(&code) {
        return Some(r.clone());
    }
    let db = &*phonenumber::metadata::DATABASE;
    let compiled: Vec<Region> = db
        .by_code(&code)?
        .into_iter()
        .map(Region::new)
        .collect::<Option<_>>()?;
    let compiled: std::sync::Arc<[Region]> = compiled.into();
    REGIONS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(code, compiled.clone());
    Some(compiled)
}

/// The region (`None`: non-geographic) and kind of a valid number, as libphonenumber's
/// `isValidNumber` and `getNumberType` decide them; `None` for an invalid number. A
/// calling code shared by several regions picks the region by its leading digits where
/// the metadata has them, otherwise the first region the number is valid in.
fn classify(code: u16, national: &str) -> Option<(Option<String>, SenderKind)> {
    let regions = regions(code)?;
    let valid_in = |r: &Region| r.kind(national).map(|kind| (r.id.clone(), kind));
    if let [region] = &regions[..] {
        return valid_in(region);
    }
    for region in regions.iter() {
        match &region.leading_digits {
            Some(leading) if leading.is_match(national) => return valid_in(region),
            Some(_) => {}
            None => {
                if let Some(found) = valid_in(region) {
                    return Some(found);
                }
            }
        }
    }
    None
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
        assert_eq!(korean_national("+821012345678"), Some("1012345678"));
        assert_eq!(korean_national("01012345678"), Some("1012345678"));
        assert_eq!(korean_national("+447400123456"), None);
        assert!(!parse_sender("+447400123456").is_korean_number());
    }

    /// libphonenumber's kind for a number type.
    fn kind_of(t: phonenumber::Type) -> SenderKind {
        use phonenumber::Type;
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

    /// A number as the `phonenumber` crate's own validation sees it: key, kind, region.
    fn slow(raw: &str) -> Option<(String, SenderKind, Option<String>)> {
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
        let region = n.country().id().map(|id| id.as_ref().to_owned());
        Some((
            n.format().mode(phonenumber::Mode::E164).to_string(),
            kind,
            region,
        ))
    }

    fn ours(raw: &str) -> Option<(String, SenderKind, Option<String>)> {
        let id = parse_sender(raw);
        id.kind.is_number().then_some((id.key, id.kind, id.country))
    }

    /// Every example number of every region in the metadata, and the same with the
    /// last digit changed, one digit more and one less.
    #[test]
    fn every_example_number_reads_as_the_phonenumber_crate_reads_it() {
        let db = &*phonenumber::metadata::DATABASE;
        let mut checked = 0;
        for code in 1..1000u16 {
            for id in db.region(&code).unwrap_or_default() {
                let d = db.by_id(id).unwrap().descriptors();
                let descs = [
                    d.fixed_line(),
                    d.mobile(),
                    d.toll_free(),
                    d.premium_rate(),
                    d.shared_cost(),
                    d.voip(),
                    d.personal_number(),
                    d.pager(),
                    d.uan(),
                    d.voicemail(),
                ];
                for example in descs.into_iter().flatten().filter_map(|d| d.example()) {
                    let last = example.len() - 1;
                    let changed = format!(
                        "{}{}",
                        &example[..last],
                        (example.as_bytes()[last] - b'0' + 1) % 10
                    );
                    for national in [
                        example.to_owned(),
                        changed,
                        format!("{example}5"),
                        example[..last].to_owned(),
                    ] {
                        let raw = format!("+{code}{national}");
                        assert_eq!(ours(&raw), slow(&raw), "{raw} ({id})");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 3000, "{checked} numbers");
    }

    proptest::proptest! {
        #[test]
        fn korean_numbers_read_as_the_phonenumber_crate_reads_them(n in "0[1-9][0-9]{6,10}") {
            proptest::prop_assert_eq!(ours(&n), slow(&n), "{}", n);
        }

        #[test]
        fn international_numbers_read_as_the_phonenumber_crate_reads_them(n in "\\+[1-9][0-9]{6,13}") {
            proptest::prop_assert_eq!(ours(&n), slow(&n), "{}", n);
        }

        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let id = parse_sender(&s);
            proptest::prop_assert!(!id.key.is_empty());
        }
    }
}
