//! Content fingerprints and stable keys for per-sender and per-campaign state.
//!
//! A fingerprint is a hash of the message text with what changes from copy to copy
//! masked out: digit runs (amounts, codes, phone numbers) become one `#`, URLs and
//! domains one `U`, a personal name before an honorific (`홍길동님`, `홍길동 고객님`) one
//! `N`; whitespace, punctuation, symbols and emoji are dropped and letters lower-cased.
//! Names are told by whole tokens (between whitespace): a name joined to what comes before
//! it by punctuation (`[은행]홍길동님`) is hashed as it is.
//! Two texts that differ only there have the same fingerprint, so a campaign that puts
//! each recipient's name, a per-sender phone number or a rotating URL into the same
//! template is still one campaign.
//!
//! It is one pass over the text, with no allocation: cheap enough to run on every event,
//! unlike the full normalizer of the pattern operator. Hashes are FNV-1a 64 over 32-bit
//! units (code points and mask markers), fixed across versions and platforms, because
//! keys and fingerprints are stored in the changelog.

/// FNV-1a 64 offset basis.
pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
pub(super) const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

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

impl Fingerprint {
    /// The fingerprint of a text that is not looked at.
    pub const NONE: Fingerprint = Fingerprint {
        hash: 0,
        letters: 0,
        contact: false,
    };
}

/// A token that names a web address: a scheme, `www.`, or a dotted name ending in two or
/// more ASCII letters (`bit.ly`, `abc.co.kr`), with a path after `/` and anything that is
/// not an ASCII letter, digit or `/` at its end (`bit.ly/x에서`, `abc.kr!`) allowed.
///
/// Over bytes, not characters: a non-ASCII character is bytes of `0x80` and above, none of
/// them a letter, digit, `.`, `-` or `/`.
fn is_url(token: &[u8]) -> bool {
    if token.windows(3).any(|w| w == b"://")
        || token.starts_with(b"www.")
        || token.starts_with(b"WWW.")
    {
        return true;
    }
    let end = token
        .iter()
        .rposition(|c| c.is_ascii_alphanumeric() || *c == b'/')
        .map_or(0, |p| p + 1);
    let t = &token[..end];
    let host = &t[..t.iter().position(|c| *c == b'/').unwrap_or(t.len())];
    // Labels: [A-Za-z0-9-]+ between dots, at least two of them, the last (the top-level
    // domain) two or more letters.
    let (mut dots, mut label, mut letters_only) = (0u32, 0u32, true);
    for &c in host {
        if c == b'.' {
            if label == 0 {
                return false;
            }
            (dots, label, letters_only) = (dots + 1, 0, true);
        } else if c.is_ascii_alphanumeric() || c == b'-' {
            label += 1;
            letters_only &= c.is_ascii_alphabetic();
        } else {
            return false;
        }
    }
    dots > 0 && label >= 2 && letters_only
}

/// Mixes one unit (a code point or a mask marker) into the hash: FNV-1a over 32-bit
/// units rather than bytes (one multiplication per character).
#[inline]
fn mix(h: u64, unit: u32) -> u64 {
    (h ^ u64::from(unit)).wrapping_mul(FNV_PRIME)
}

/// FNV-1a over groups of three 21-bit units (code points and markers are below 2^21):
/// one multiplication per three characters. The units wait in `buf` above a marker bit
/// that tells how many there are (the third push moves it to bit 63).
#[derive(Clone, Copy)]
struct Units {
    h: u64,
    buf: u64,
}

impl Units {
    fn new() -> Self {
        Units {
            h: FNV_OFFSET,
            buf: 1,
        }
    }

    #[inline]
    fn push(&mut self, unit: u32) {
        self.buf = (self.buf << 21) | u64::from(unit);
        if self.buf >> 63 != 0 {
            // A branch (every third unit), not a conditional move: a multiplication
            // and two moves less for the other two.
            std::hint::cold_path();
            self.h = (self.h ^ (self.buf & !(1 << 63))).wrapping_mul(FNV_PRIME);
            self.buf = 1;
        }
    }

    fn finish(self) -> u64 {
        let marker = 63 - self.buf.leading_zeros();
        let h = (self.h ^ (self.buf & !(1 << marker))).wrapping_mul(FNV_PRIME);
        mix(h, marker / 21)
    }
}

const MASK_DIGITS: u32 = 0x11_0000;
const MASK_URL: u32 = 0x11_0001;
const MASK_NAME: u32 = 0x11_0002;

/// A character's class for the fingerprint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Digit,
    /// A letter, hashed as this (lower-cased) code point.
    Letter(u32),
    /// A letter whose lower case is several code points (rare).
    Cased(char),
    Other,
}

#[inline]
fn classify(c: char) -> Class {
    if c.is_numeric() {
        Class::Digit
    } else if c.is_alphabetic() {
        let mut l = c.to_lowercase();
        match (l.next(), l.next()) {
            (Some(one), None) => Class::Letter(u32::from(one)),
            _ => Class::Cased(c),
        }
    } else {
        Class::Other
    }
}

// A mixed token's state, in one integer: flags, and the digits read from bit 2 on.
/// A `.` or `:` was read (it may be a URL).
const DOTTED: u32 = 1;
/// The last character kept was a digit: a digit run is one `#`, masked at its first
/// digit.
const IN_DIGITS: u32 = 2;
/// One digit read.
const DIGIT: u32 = 4;

#[inline]
fn push_digit(u: &mut Units, tok: u32) -> u32 {
    if tok & IN_DIGITS == 0 {
        u.push(MASK_DIGITS);
    }
    (tok | IN_DIGITS) + DIGIT
}

/// A character that is neither ASCII, nor a Hangul syllable, nor a compatibility jamo:
/// pushes what it adds to the hash; returns the letters it adds and the token state.
/// Out of line and by value, so that the hot loop keeps its state in registers.
#[cold]
#[inline(never)]
fn other_char(c: char, mut u: Units, tok: u32) -> (Units, u32, u32) {
    match classify(c) {
        Class::Digit => {
            let tok = push_digit(&mut u, tok);
            (u, 0, tok)
        }
        Class::Letter(unit) => {
            u.push(unit);
            (u, 1, tok & !IN_DIGITS)
        }
        Class::Cased(c) => {
            for lower in c.to_lowercase() {
                u.push(u32::from(lower));
            }
            (u, 1, tok & !IN_DIGITS)
        }
        // Punctuation, symbols and emoji are dropped (and keep a digit run).
        Class::Other => (u, 0, tok),
    }
}

/// Honorifics after a name (`홍길동님`, `홍길동 고객님`); each ends in `님` or `씨`.
const HONORIFICS: [&str; 3] = ["고객님", "님", "씨"];

/// Whether `rest` (the text from a token's start) starts with an honorific.
fn honorific_at(rest: &[u8]) -> bool {
    HONORIFICS.iter().any(|h| rest.starts_with(h.as_bytes()))
}

/// Whether a token of `syllables` Hangul syllables (`t`) that ends in `님` or `씨` is a
/// name of 2 to 4 syllables with an honorific attached (`홍길동님`, `김철수고객님`).
#[cold]
fn named_hangul(t: &[u8], syllables: usize) -> bool {
    HONORIFICS.iter().any(|h| {
        t.ends_with(h.as_bytes())
            && syllables
                .checked_sub(h.len() / 3)
                .is_some_and(|name| (2..=4).contains(&name))
    })
}

/// The masked fingerprint of `text`.
///
/// One pass over the bytes: each token (between ASCII whitespace) is hashed as it is
/// read; when it turns out to be a URL or a name, its contribution is taken back and the
/// mask goes in instead. A name followed by an honorific token (`홍길동 고객님`) is
/// taken back when the honorific is read.
///
/// A token starts on a short loop over Hangul syllables; most Korean tokens end there,
/// and only they can be names, which are told by their last syllable. A token that has
/// anything else goes on a character at a time, with ASCII and Hangul on short paths,
/// its state in one integer and rare characters out of line, so that the loop keeps its
/// state in registers.
pub fn fingerprint(text: &str) -> Fingerprint {
    let b = text.as_bytes();
    let n = b.len();
    let mut u = Units::new();
    let mut letters = 0u32;
    let mut contact = false;
    // After a token of 2 to 4 syllables (a name, if an honorific token follows): the
    // state before it.
    let mut pending: Option<(Units, u32)> = None;
    let mut i = 0;
    loop {
        while i < n && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i == n {
            break;
        }
        let start = i;
        let saved = (u, letters);
        let mut last = 0;
        let mut rest = &b[i..];
        while let &[x, y, z, ref tail @ ..] = rest {
            // Decoded with the lead byte whole: a three-byte lead (0xE_) puts 0xE0000
            // above the code point, any other byte makes a value outside the range.
            let c = (u32::from(x) << 12) | (u32::from(y & 0x3F) << 6) | u32::from(z & 0x3F);
            if c.wrapping_sub(0xE_AC00) > 0xD7A3 - 0xAC00 {
                break;
            }
            last = c - 0xE_0000;
            u.push(last);
            rest = tail;
        }
        i = n - rest.len();
        if let Some(before) = pending.take() {
            // Only a token that starts with a syllable starts with an honorific. The
            // name before it is masked, and this token read again.
            if i > start && honorific_at(&b[start..]) {
                (u, letters) = before;
                u.push(MASK_NAME);
                i = start;
                continue;
            }
        }
        let syllables = (i - start) / 3;
        letters += syllables as u32;
        // (`b[start]` is not whitespace: a token that ends here has a syllable.)
        if b.get(i).is_none_or(u8::is_ascii_whitespace) {
            // (Every honorific ends in `님` or `씨`.)
            if (last == '님' as u32 || last == '씨' as u32) && named_hangul(&b[start..i], syllables)
            {
                (u, letters) = saved;
                u.push(MASK_NAME);
            } else if (2..=4).contains(&syllables) {
                pending = Some(saved);
            }
            continue;
        }
        // The rest of a token that is not Hangul syllables only.
        let mut tok = 0u32;
        while i < n {
            let x = b[i];
            if x < 0x80 {
                if x.is_ascii_whitespace() {
                    break;
                }
                i += 1;
                if x.is_ascii_digit() {
                    tok = push_digit(&mut u, tok);
                } else if x.is_ascii_alphabetic() {
                    tok &= !IN_DIGITS;
                    letters += 1;
                    u.push(u32::from(x | 0x20));
                } else if x == b'.' || x == b':' {
                    tok |= DOTTED;
                }
                // Other punctuation is dropped; it does not end a digit run, so
                // `010-1234-5678` is one `#`.
                continue;
            }
            let c = match b.get(i..i + 3) {
                Some(&[_, y, z]) if x & 0xF0 == 0xE0 => {
                    // Three bytes (Hangul syllables U+AC00..=U+D7A3, compatibility jamo
                    // U+3131..=U+318E, most punctuation and CJK): decoded by hand.
                    let c = (u32::from(x & 0x0F) << 12)
                        | (u32::from(y & 0x3F) << 6)
                        | u32::from(z & 0x3F);
                    i += 3;
                    // Syllables and jamo are letters as they are.
                    if c.wrapping_sub(0xAC00) <= 0xD7A3 - 0xAC00
                        || c.wrapping_sub(0x3131) <= 0x318E - 0x3131
                    {
                        tok &= !IN_DIGITS;
                        letters += 1;
                        u.push(c);
                        continue;
                    }
                    // Valid UTF-8 never encodes a surrogate.
                    char::from_u32(c).unwrap_or(' ')
                }
                _ => {
                    let c = text[i..].chars().next().unwrap_or(' ');
                    i += c.len_utf8();
                    c
                }
            };
            let added;
            (u, added, tok) = other_char(c, u, tok);
            letters += added;
        }
        if tok & DOTTED != 0 && is_url(&b[start..i]) {
            (u, letters) = saved;
            u.push(MASK_URL);
            contact = true;
            continue;
        }
        contact |= tok >= 7 * DIGIT;
    }
    Fingerprint {
        hash: u.finish(),
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
    number_key(raw.as_bytes()).unwrap_or_else(|| {
        // Other whitespace around a number (tabs, line breaks, Unicode spaces) is trimmed.
        let t = raw.trim();
        number_key(t.as_bytes()).unwrap_or_else(|| text_key(t))
    })
}

/// The key of a plain number (digits with `+`, spaces, `-`, `(`, `)` or `.`), in one pass
/// over its bytes; `None` for anything else, and for digits that make no number key (none,
/// or more than 17 after the prefixes).
fn number_key(raw: &[u8]) -> Option<u64> {
    let mut all = 0u64;
    let mut n = 0u32;
    let mut first = [0u8; 2];
    // `+` first (after spaces, which are trimmed): an international number.
    let plus = raw.iter().find(|b| **b != b' ') == Some(&b'+');
    for &c in raw {
        match c {
            b'0'..=b'9' => {
                // Twenty digits or more never make a key (at most 17 after the
                // prefixes): the caller hashes them.
                if n == 19 {
                    return None;
                }
                if n < 2 {
                    first[n as usize] = c - b'0';
                }
                all = all * 10 + u64::from(c - b'0');
                n += 1;
            }
            b' ' | b'+' | b'-' | b'(' | b')' | b'.' => {}
            _ => return None,
        }
    }
    // Leading zeros add nothing to the value, so the international prefix (`00`) and the
    // trunk prefix (`0`, replaced by 82) are handled on the length.
    let (kind, len, prefix) = if plus {
        (0u64, n, 0)
    } else if n >= 2 && first == [0, 0] {
        (0, n - 2, 0)
    } else if n >= 1 && first[0] == 0 {
        (0, n + 1, 82)
    } else {
        (1, n, 0)
    };
    (len > 0 && len <= 17).then(|| {
        let value = prefix * 10u64.pow(len.saturating_sub(2)) + all;
        (kind << 62) | (u64::from(len) << 57) | value
    })
}

/// The key of anything that is not a number (alphanumeric sender ids, garbage): the hash
/// of its upper-cased letters and digits, tagged so that it never equals a number's key.
fn text_key(t: &str) -> u64 {
    let mut h = FNV_OFFSET;
    for c in t.chars().filter(|c| c.is_alphanumeric()) {
        for u in c.to_uppercase() {
            h = mix(h, u32::from(u));
        }
    }
    (2 << 62) | (h >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The first, general implementation of `address_key`: the oracle for the one-pass
    /// number path.
    fn reference_address_key(raw: &str) -> u64 {
        let t = raw.trim();
        let numberish = !t.is_empty()
            && t.bytes().all(|c| {
                c.is_ascii_digit() || matches!(c, b' ' | b'+' | b'-' | b'(' | b')' | b'.')
            });
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
        // Not a number: the same text key (what is under test is the number path).
        text_key(t)
    }

    fn is_hangul_syllable(c: char) -> bool {
        ('\u{AC00}'..='\u{D7A3}').contains(&c)
    }

    /// `name` is 2 to 4 Hangul syllables (3 bytes each in UTF-8).
    fn is_name(name: &str) -> bool {
        (6..=12).contains(&name.len()) && name.chars().all(is_hangul_syllable)
    }

    /// The token is a name with an honorific attached (`홍길동님`).
    fn is_named(token: &str) -> bool {
        (token.ends_with('님') || token.ends_with('씨'))
            && HONORIFICS
                .iter()
                .any(|h| token.strip_suffix(h).is_some_and(is_name))
    }

    /// The first, `str`-based implementation of `is_url`: the oracle for the byte one.
    fn reference_is_url(token: &str) -> bool {
        let b = token.as_bytes();
        if !b.iter().any(|c| *c == b'.' || *c == b':') {
            return false;
        }
        if token.contains("://") || token.starts_with("www.") || token.starts_with("WWW.") {
            return true;
        }
        let t = token.trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c != '/');
        let host = t.split('/').next().unwrap_or("");
        let label_ok =
            |l: &str| !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
        let mut labels = host.split('.');
        if !labels.next().is_some_and(label_ok) {
            return false;
        }
        let mut last = None;
        for l in labels {
            if !label_ok(l) {
                return false;
            }
            last = Some(l);
        }
        last.is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()))
    }

    /// The first, token-iterator implementation: the oracle for the one-pass one.
    fn reference(text: &str) -> Fingerprint {
        let mut h = Units::new();
        let mut letters = 0u32;
        let mut contact = false;
        // ASCII whitespace separates tokens (byte-wise, the fast way); other whitespace is
        // dropped like punctuation.
        let mut tokens = text.split_ascii_whitespace().peekable();
        while let Some(token) = tokens.next() {
            if reference_is_url(token) {
                h.push(MASK_URL);
                contact = true;
                continue;
            }
            // One pass over the token; when it turns out to be a name, its contribution is
            // taken back and the name mask goes in instead.
            let saved = (h, letters);
            let mut in_digits = false;
            let mut digits = 0u32;
            let mut chars = 0usize;
            let mut all_hangul = true;
            for c in token.chars() {
                chars += 1;
                let hangul = is_hangul_syllable(c);
                all_hangul &= hangul;
                let (digit, letter) = if c.is_ascii() {
                    (c.is_ascii_digit(), c.is_ascii_alphabetic())
                } else if hangul || ('\u{3131}'..='\u{318E}').contains(&c) {
                    (false, true)
                } else {
                    (c.is_numeric(), c.is_alphabetic())
                };
                if digit {
                    if !in_digits {
                        h.push(MASK_DIGITS);
                        in_digits = true;
                    }
                    digits += 1;
                } else if letter {
                    in_digits = false;
                    letters += 1;
                    if c.is_ascii() || hangul {
                        h.push(u32::from(c.to_ascii_lowercase()));
                    } else {
                        for l in c.to_lowercase() {
                            h.push(u32::from(l));
                        }
                    }
                }
                // Punctuation, symbols and emoji are dropped; they do not end a digit run, so
                // `010-1234-5678` is one `#`.
            }
            let named = is_named(token)
                || (all_hangul
                    && (2..=4).contains(&chars)
                    && tokens
                        .peek()
                        .is_some_and(|next| HONORIFICS.iter().any(|hon| next.starts_with(hon))));
            if named {
                (h, letters) = saved;
                h.push(MASK_NAME);
                continue;
            }
            contact |= digits >= 7;
        }
        Fingerprint {
            hash: h.finish(),
            letters,
            contact,
        }
    }

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
    fn fingerprints_are_stable_across_versions() {
        // Stored in the changelog (campaign keys, senders' recent contents): these values
        // must not change from one build to the next.
        assert_eq!(
            fingerprint("급등주 무료 리딩방 오픈 선착순 30명 open.kakao.com/o/abc").hash,
            0x101c_55ec_c331_a013
        );
        assert_eq!(fingerprint("abcd").hash, 0x155c_f413_63ad_62b9);
        assert_eq!(
            fingerprint("홍길동 고객님 안녕하세요 Ｃａｓｉｎｏ İ ß 😀").hash,
            0x224e_2713_75ca_e767
        );
    }

    #[test]
    fn short_chat_has_no_contact_and_few_letters() {
        let f = fingerprint("ㅇㅋ 네네");
        assert!(!f.contact);
        assert!(f.letters < 10);
        for (token, url) in [
            ("abc.co.kr", true),
            ("bit.ly/x에서", true),
            ("http://x", true),
            ("www.x", true),
            ("a-b.kr!", true),
            ("3.14", false),
            ("안녕.하세요", false),
            ("a..kr", false),
            ("abc.", false),
            (".kr", false),
            ("x.k", false),
            ("x.k2", false),
            ("a_b.kr", false),
        ] {
            assert_eq!(is_url(token.as_bytes()), url, "{token}");
            assert_eq!(reference_is_url(token), url, "{token}");
        }
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
        // Words that end as a name with its honorific (`가가님`) are left out: a name is
        // told in a token of its own, so `가!가가님` keeps it and `가, 가가님` masks it.
        #[test]
        fn digits_and_punctuation_do_not_change_the_fingerprint(
            words in proptest::collection::vec(
                "[가-힣a-z]{1,6}".prop_filter("no honorific", |w| !w.ends_with('님') && !w.ends_with('씨')),
                1..8,
            ),
            n1 in 0u64..1_000_000, n2 in 0u64..1_000_000,
        ) {
            let a = format!("{} {n1}원 {}", words.join(" "), words.join("!"));
            let b = format!("{} {n2}원 {}", words.join(" "), words.join(", "));
            prop_assert_eq!(fingerprint(&a).hash, fingerprint(&b).hash);
        }

        #[test]
        fn the_one_pass_fingerprint_equals_the_reference(
            parts in proptest::collection::vec(
                prop_oneof![
                    "[가-힣]{1,5}",
                    Just("님".to_owned()), Just("고객님".to_owned()), Just("씨".to_owned()),
                    "[가-힣]{1,5}(님|씨|고객님)", Just("고객".to_owned()), Just("객님".to_owned()),
                    "[a-zA-Z]{1,6}", "[0-9]{1,11}", Just("010-1234-5678".to_owned()),
                    Just("bit.ly/x".to_owned()), Just("www.a.example".to_owned()),
                    Just("http://x.y/z".to_owned()), Just("3.14".to_owned()),
                    Just("니다.".to_owned()), "[ㄱ-ㅎ]{1,3}", Just("Ｃａｓｉｎｏ".to_owned()),
                    Just("İ".to_owned()), Just("😀".to_owned()), Just("ß".to_owned()),
                    // Three-byte characters that are not syllables: jamo vowels, full-width
                    // digits, circled numbers, punctuation, CJK, the end of the syllables.
                    "[ㅏ-ㅣ]{1,2}", Just("０１２".to_owned()), Just("①".to_owned()),
                    Just("…·「광고」".to_owned()), Just("漢字".to_owned()), Just("힣\u{D7A4}".to_owned()),
                    ".{1,4}",
                ],
                0..14,
            ),
            seps in proptest::collection::vec(prop_oneof![Just(" "), Just("  "), Just("\n"), Just(""), Just("\u{3000}")], 14),
        ) {
            let mut text = String::new();
            for (k, p) in parts.iter().enumerate() {
                text.push_str(p);
                text.push_str(seps[k]);
            }
            prop_assert_eq!(fingerprint(&text), reference(&text), "{:?}", text);
        }

        #[test]
        fn the_byte_url_check_equals_the_reference(
            s in prop_oneof![
                "(https?://|www[.]|WWW[.])?[a-zA-Z0-9.-]{0,12}(/[a-z0-9./]{0,6})?[!)?.,]{0,2}",
                "[a-z0-9]{1,5}[.:][a-z0-9]{0,4}([.][a-zA-Z가-힣]{0,3})?[/가-힣]{0,3}",
                "[a-z.:/_가-힣😀-]{0,12}",
            ],
        ) {
            let b = s.as_bytes();
            let dotted = b.iter().any(|c| *c == b'.' || *c == b':');
            prop_assert_eq!(dotted && is_url(b), reference_is_url(&s), "{:?}", s);
        }

        #[test]
        fn the_one_pass_number_key_equals_the_general_one(
            s in prop_oneof![
                "[ +().0-9-]{0,30}",
                " {0,2}[+]?[0-9]{0,3}[ -]?[0-9]{0,4}[ -]?[0-9]{0,4} {0,2}",
                "00[0-9]{0,20}",
                "0[0-9]{0,18}",
                "[\t\n\u{3000} ]{0,2}[+]?[0-9 -]{0,14}[\t\n ]{0,2}",
                "[A-Za-z0-9 ]{0,8}",
                // The loop-free path (9 to 16 digits) and its edges.
                "[+]?[0-9]{7,18}",
                "[+]?0{0,3}[0-9]{6,15}",
            ],
        ) {
            prop_assert_eq!(address_key(&s), reference_address_key(&s), "{:?}", s);
        }

        #[test]
        fn any_text_fingerprints_and_any_address_keys(s in ".{0,200}") {
            let _ = fingerprint(&s);
            let _ = address_key(&s);
        }
    }
}
