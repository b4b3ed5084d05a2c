//! Content fingerprints and stable keys for per-sender and per-campaign state.
//!
//! A fingerprint is a hash of the message text with what changes from copy to copy
//! masked out: digit runs (amounts, codes, phone numbers) become one `#`, URLs and
//! domains one `U`, a personal name before an honorific (`홍길동님`, `홍길동 고객님`) one
//! `N`; whitespace, punctuation, symbols and emoji are dropped and letters lower-cased.
//! Two texts that differ only there have the same fingerprint, so a campaign that puts
//! each recipient's name, a per-sender phone number or a rotating URL into the same
//! template is still one campaign.
//!
//! It is one pass over the text, with no allocation: cheap enough to run on every event,
//! unlike the full normalizer of the pattern operator. Hashes are FNV-1a 64, fixed across
//! versions and platforms, because keys and fingerprints are stored in the changelog.

/// FNV-1a 64 offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[inline]
fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

#[inline]
fn fnv_char(h: u64, c: char) -> u64 {
    fnv(h, &u32::from(c).to_le_bytes())
}

/// Mixes a 64-bit hash down to 32 bits (for compact per-sender state).
#[inline]
pub fn fold32(h: u64) -> u32 {
    let h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
    (h ^ (h >> 29)) as u32
}

/// The masked fingerprint of one text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// Hash of the masked text.
    pub hash: u64,
    /// Letters kept (masked tokens not counted): short texts ("ㅇㅋ", "네") are common to
    /// everyone and never make a campaign.
    pub letters: u32,
    /// Whether the text carries a call to action: a URL or domain, or a number of seven
    /// digits or more (a phone number). Campaigns are tracked only for such texts.
    pub contact: bool,
}

fn is_hangul_syllable(c: char) -> bool {
    ('\u{AC00}'..='\u{D7A3}').contains(&c)
}

/// A token that names a web address: a scheme, `www.`, or a dotted name ending in two or
/// more ASCII letters (`bit.ly`, `abc.co.kr`).
fn is_url(token: &str) -> bool {
    if token.contains("://") || token.starts_with("www.") || token.starts_with("WWW.") {
        return true;
    }
    let t = token.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '/');
    let host = t.split('/').next().unwrap_or("");
    let mut labels = host.split('.');
    let first = labels.next().unwrap_or("");
    let rest: Vec<&str> = labels.collect();
    !first.is_empty()
        && first.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !rest.is_empty()
        && rest
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && rest
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()))
}

const HONORIFICS: [&str; 3] = ["고객님", "님", "씨"];

/// `name` is 2 to 4 Hangul syllables.
fn is_name(name: &str) -> bool {
    let n = name.chars().count();
    (2..=4).contains(&n) && name.chars().all(is_hangul_syllable)
}

/// The token is a name with an honorific attached (`홍길동님`).
fn is_named(token: &str) -> bool {
    HONORIFICS
        .iter()
        .any(|h| token.strip_suffix(h).is_some_and(is_name))
}

/// The masked fingerprint of `text`.
pub fn fingerprint(text: &str) -> Fingerprint {
    let mut h = FNV_OFFSET;
    let mut letters = 0u32;
    let mut contact = false;
    let mut tokens = text.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        if is_url(token) {
            h = fnv(h, b"U");
            contact = true;
            continue;
        }
        if is_named(token)
            || (is_name(token)
                && tokens
                    .peek()
                    .is_some_and(|next| HONORIFICS.iter().any(|hon| next.starts_with(hon))))
        {
            h = fnv(h, b"N");
            continue;
        }
        let mut in_digits = false;
        let mut digits = 0u32;
        for c in token.chars() {
            if c.is_numeric() {
                if !in_digits {
                    h = fnv(h, b"#");
                    in_digits = true;
                }
                digits += 1;
            } else if c.is_alphabetic() {
                in_digits = false;
                letters += 1;
                if c.is_ascii() {
                    h = fnv_char(h, c.to_ascii_lowercase());
                } else {
                    for l in c.to_lowercase() {
                        h = fnv_char(h, l);
                    }
                }
            }
            // Punctuation, symbols and emoji are dropped; they do not end a digit run, so
            // `010-1234-5678` is one `#`.
        }
        contact |= digits >= 7;
    }
    Fingerprint {
        hash: h,
        letters,
        contact,
    }
}

/// Stable 64-bit key of a sender or recipient address.
///
/// Numbers are packed exactly (no hashing): the digits of the E.164 form for `+CC...`,
/// `00CC...` and Korean national numbers (`010-1234-5678` and `+82 10 1234 5678` are one
/// key), or the national digits of a number without trunk prefix (`1588-1234`, `114`).
/// Anything else (alphanumeric sender ids, garbage) is the FNV hash of its upper-cased
/// letters and digits, tagged so that it never equals a number's key.
pub fn address_key(raw: &str) -> u64 {
    let t = raw.trim();
    let numberish = !t.is_empty()
        && t.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'));
    if numberish {
        let plus = t.starts_with('+');
        let mut digits = [0u8; 24];
        let mut n = 0usize;
        for b in t.bytes().filter(u8::is_ascii_digit) {
            if n == digits.len() {
                n = usize::MAX;
                break;
            }
            digits[n] = b - b'0';
            n += 1;
        }
        if n != usize::MAX && n > 0 {
            let d = &digits[..n];
            // (kind, prefix, digits): kind 0 = E.164, 1 = national without trunk prefix.
            let (kind, prefix, rest): (u64, &[u8], &[u8]) = if plus {
                (0, &[], d)
            } else if d.starts_with(&[0, 0]) {
                (0, &[], &d[2..])
            } else if d[0] == 0 {
                (0, &[8, 2], &d[1..])
            } else {
                (1, &[], d)
            };
            let len = prefix.len() + rest.len();
            if len > 0 && len <= 17 {
                let value = prefix
                    .iter()
                    .chain(rest)
                    .fold(0u64, |v, x| v * 10 + u64::from(*x));
                return (kind << 62) | ((len as u64) << 57) | value;
            }
        }
    }
    let mut h = FNV_OFFSET;
    for c in t.chars().filter(|c| c.is_alphanumeric()) {
        for u in c.to_uppercase() {
            h = fnv_char(h, u);
        }
    }
    (2 << 62) | (h >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn masks_numbers_urls_and_names() {
        let a = fingerprint("[Web발신] 홍길동님 고객님 계좌로 300만원 즉시 입금! 문의 010-1234-5678 http://a.example/x");
        let b = fingerprint(
            "[Web발신] 김철수님 고객님 계좌로 500만원 즉시 입금! 문의 010-9999-0000 bit.ly/zz",
        );
        assert_eq!(a.hash, b.hash);
        assert!(a.contact);
        let c = fingerprint(
            "[Web발신] 김철수님 고객님 계좌로 500만원 내일 입금! 문의 010-9999-0000 bit.ly/zz",
        );
        assert_ne!(a.hash, c.hash);
        assert_eq!(
            fingerprint("홍길동 고객님 안녕하세요").hash,
            fingerprint("이영희 고객님 안녕하세요").hash
        );
    }

    #[test]
    fn short_chat_has_no_contact_and_few_letters() {
        let f = fingerprint("ㅇㅋ 네네");
        assert!(!f.contact);
        assert!(f.letters < 10);
        assert!(is_url("abc.co.kr"));
        assert!(!is_url("3.14"));
        assert!(!is_url("안녕.하세요"));
    }

    #[test]
    fn address_keys_agree_across_formats() {
        let k = address_key("010-1234-5678");
        assert_eq!(k, address_key("+82 10 1234 5678"));
        assert_eq!(k, address_key("008210-1234-5678"));
        assert_ne!(k, address_key("010-1234-5679"));
        assert_ne!(address_key("1588-1234"), address_key("+15881234"));
        assert_eq!(address_key("KBank"), address_key("KBANK"));
        assert_ne!(address_key("KBank"), address_key("KBank2"));
        // Too many digits for a number: hashed, never a panic.
        let long = "9".repeat(40);
        assert_eq!(address_key(&long) >> 62, 2);
        assert_eq!(address_key("") >> 62, 2);
    }

    proptest! {
        #[test]
        fn digits_and_punctuation_do_not_change_the_fingerprint(
            words in proptest::collection::vec("[가-힣a-z]{1,6}", 1..8),
            n1 in 0u64..1_000_000, n2 in 0u64..1_000_000,
        ) {
            let a = format!("{} {n1}원 {}", words.join(" "), words.join("!"));
            let b = format!("{} {n2}원 {}", words.join(" "), words.join(", "));
            prop_assert_eq!(fingerprint(&a).hash, fingerprint(&b).hash);
        }

        #[test]
        fn any_text_fingerprints_and_any_address_keys(s in ".{0,200}") {
            let _ = fingerprint(&s);
            let _ = address_key(&s);
        }
    }
}
