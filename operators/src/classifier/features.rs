//! Hashed text features: character n-grams and word n-grams of the canonical text.
//!
//! The classifier reads the normalizer's canonical form ([`crate::normalize`]), where
//! obfuscations (`카.지.노`, `ｃａｓｉｎｏ`, jamo, zero-width characters, look-alikes) are
//! already undone and spaces between Hangul syllables are gone. On that text:
//!
//! - every character 2-gram up to the model's longest n-gram, which may be shorter for
//!   text with Hangul (Hangul syllables are one character each, so a Korean 2-gram is a
//!   two-syllable word piece; spacing obfuscation cannot split them);
//! - every word and word bigram, where a word is a run of letters or digits;
//! - a few shape features: length bucket, whether there is a URL-like token, digit runs.
//!
//! Text with Hangul and other text hash into separate feature spaces (the script is mixed
//! into every hash): Korean and English traffic share little, and a shared digit or
//! URL n-gram learnt from one would otherwise shift the other.
//!
//! Digits read as `0`, so amounts, codes and phone numbers generalise. Each feature is
//! hashed (multiply-rotate per character, MurmurHash3's finalizer per feature; defined here, so
//! stable across platforms and releases) into `buckets` slots; a text's
//! features all weigh `1/sqrt(n)` so that a 2,000-character LMS does not outvote a short
//! SMS by its length alone. Each feature keeps its byte span in the canonical text, so
//! the strongest ones can be shown as evidence in the original.

/// Hash seed and multiplier (64-bit golden ratio).
const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// Feature kinds, mixed into the hash so that a word and a character n-gram with the
/// same characters land in different slots.
const KIND_CHAR: u64 = 1;
const KIND_WORD: u64 = 2;
const KIND_BIGRAM: u64 = 3;
const KIND_SHAPE: u64 = 4;

/// Shape features at the end of every text's features: length, word count, URL-like, and
/// (for models that read it) the obfuscation marks.
pub const SHAPE_FEATURES: usize = 3;

/// One feature occurrence: its slot and its byte span in the canonical text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Hash slot, `< buckets`.
    pub slot: u32,
    /// Byte span in the canonical text (empty for shape features).
    pub span: (u32, u32),
}

/// Folds one value (a character, a kind, a word's hash) into a running hash: one
/// multiply per character, not one per byte.
fn mix(h: u64, x: u64) -> u64 {
    (h.rotate_left(5) ^ x).wrapping_mul(K)
}

/// The slot of a finished hash: MurmurHash3's finalizer spreads every input bit over the
/// low bits the mask keeps.
fn slot(h: u64, mask: u64) -> u32 {
    let mut h = h ^ (h >> 33);
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h & mask) as u32
}

/// A character as features read it: digits are `0`, every space is one `' '`.
fn fold(c: char) -> char {
    if c.is_ascii_digit() {
        '0'
    } else if c.is_whitespace() {
        ' '
    } else {
        c
    }
}

/// Letters and digits make words (`char::is_alphanumeric`). Hangul and ASCII are decided by
/// range (they are nearly all the traffic; `char::is_alphanumeric` walks Unicode tables
/// for Hangul).
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{3131}'..='\u{318E}')
        || (!c.is_ascii() && c.is_alphanumeric())
}

/// The byte ranges of the links' schemes and paths in `text` into `out`, and of their
/// hosts into `hosts`, in order: a link read as its host (`https://youtu.be/x7Kq` as
/// `youtu.be`, `bit.ly/3QxZk9` as `bit.ly`). The host says whose link it is; a path of ids
/// and tracking codes says nothing, yet its n-grams would dilute the message's own
/// features (each weighs `1/sqrt(n)`), so that a legitimate link pasted into spam would
/// carry it past the threshold.
fn link_skips(text: &str, out: &mut Vec<(usize, usize)>, hosts: &mut Vec<(usize, usize)>) {
    out.clear();
    hosts.clear();
    // Only a token with a `/` has a scheme or a path to skip.
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(slash) = bytes[from..].iter().position(|&b| b == b'/') {
        let slash = from + slash;
        let at = bytes[..slash]
            .iter()
            .rposition(u8::is_ascii_whitespace)
            .map_or(0, |i| i + 1);
        let end = bytes[slash..]
            .iter()
            .position(u8::is_ascii_whitespace)
            .map_or(bytes.len(), |i| slash + i);
        from = end;
        let token = &text[at..end];
        let (scheme, rest) = match token.find("://") {
            Some(i) => (i + 3, &token[i + 3..]),
            None => (0, token),
        };
        let host = rest.find(['/', '?', '#']).map_or(rest, |i| &rest[..i]);
        let looks_like_host = host.rsplit_once('.').is_some_and(|(name, tld)| {
            !name.is_empty() && tld.starts_with(|c: char| c.is_ascii_alphabetic())
        }) && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !looks_like_host {
            continue;
        }
        if scheme > 0 {
            out.push((at, at + scheme));
        }
        hosts.push((at + scheme, at + scheme + host.len()));
        if host.len() < rest.len() {
            out.push((at + scheme + host.len(), end));
        }
    }
}

/// How the extractor reads a link (a token with a scheme or a path, on a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// As any other text.
    Whole,
    /// As its host ([`link_skips`]): the scheme and the path add nothing.
    Host,
    /// As the words of its host (`www`, `cjlogistics`, `com`), without the host's
    /// character n-grams: a legitimate link pasted into spam adds a handful of features,
    /// not dozens, so it hardly dilutes the pitch's own (every feature weighs
    /// `1/sqrt(n)`).
    HostWords,
}

/// Per-worker feature buffers (kept across messages).
#[derive(Debug, Default, Clone)]
pub struct Extractor {
    chars: Vec<(char, u32)>,
    in_host: Vec<bool>,
    skips: Vec<(usize, usize)>,
    hosts: Vec<(usize, usize)>,
    /// The features of the last text.
    pub features: Vec<Feature>,
    /// How many of them, at the end, are shape features.
    pub shape_features: usize,
    /// Whether the last text extracted has Hangul (its features hash apart).
    pub hangul: bool,
}

impl Extractor {
    /// Empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Extracts the features of `canonical` into [`Extractor::features`]: character
    /// 2..=`max_n`-grams (2..=`hangul_max_n`-grams for text with Hangul), words, word
    /// bigrams, shape; `buckets` must be a power of two. At
    /// most `max_chars` characters are read (an LMS's first part carries its pitch; the
    /// cost per message stays bounded). When `original` (the characters of the text
    /// `canonical` was made from, [`crate::normalize::Normalized::input_chars`]) is given,
    /// the obfuscation marks in its first `max_chars` characters
    /// ([`crate::normalize::evasions`]) are a shape feature too: none, one, two or three,
    /// four or more. `links` says how links are read ([`Links`]).
    pub fn extract(
        &mut self,
        canonical: &str,
        original: Option<&[char]>,
        buckets: u32,
        max_chars: usize,
        (max_n, hangul_max_n): (usize, usize),
        links: Links,
    ) {
        debug_assert!(buckets.is_power_of_two());
        let mask = u64::from(buckets - 1);
        let hangul = crate::policy::has_hangul(canonical);
        self.hangul = hangul;
        let offset = mix(SEED, u64::from(hangul));
        let max_n = if hangul { hangul_max_n } else { max_n };
        self.chars.clear();
        self.features.clear();
        if links == Links::Whole {
            self.skips.clear();
            self.hosts.clear();
        } else {
            link_skips(canonical, &mut self.skips, &mut self.hosts);
        }
        // Which characters are in a host read as words (kept only when there is one).
        let host_words = links == Links::HostWords && !self.hosts.is_empty();
        self.in_host.clear();
        let mut hosts = self.hosts.iter().peekable();
        let mut skips = self.skips.iter().peekable();
        let mut last_space = true;
        for (i, c) in canonical.char_indices() {
            if self.chars.len() >= max_chars {
                break;
            }
            while skips.next_if(|&&(_, end)| end <= i).is_some() {}
            if skips.peek().is_some_and(|&&(start, _)| start <= i) {
                continue;
            }
            let f = fold(c);
            // Runs of spaces count once; leading spaces not at all.
            if f == ' ' {
                if last_space {
                    continue;
                }
                last_space = true;
            } else {
                last_space = false;
            }
            self.chars.push((f, i as u32));
            if host_words {
                while hosts.next_if(|&&(_, end)| end <= i).is_some() {}
                self.in_host
                    .push(hosts.peek().is_some_and(|&&(start, _)| start <= i));
            }
        }
        let end_of = |chars: &[(char, u32)], k: usize| -> u32 {
            chars
                .get(k + 1)
                .map_or(canonical.len() as u32, |&(_, at)| at)
        };
        let n = self.chars.len();
        let in_host = |k: usize| host_words && self.in_host[k];
        // Character n-grams (none that touch a host read as words).
        for i in 0..n {
            let mut h = mix(offset, KIND_CHAR);
            for k in i..(i + max_n).min(n) {
                h = mix(h, u64::from(self.chars[k].0));
                if k > i && !in_host(i) && !in_host(k) {
                    self.features.push(Feature {
                        slot: slot(h, mask),
                        span: (self.chars[i].1, end_of(&self.chars, k)),
                    });
                }
            }
        }
        // Words and word bigrams.
        let mut prev: Option<u64> = None;
        let mut words = 0u32;
        let mut url = false;
        let mut i = 0;
        while i < n {
            if !is_word_char(self.chars[i].0) {
                // A dot between letters, or a slash after a colon, looks like a URL.
                let c = self.chars[i].0;
                if (c == '.' || c == '/')
                    && i > 0
                    && i + 1 < n
                    && is_word_char(self.chars[i - 1].0)
                    && is_word_char(self.chars[i + 1].0)
                    && self.chars[i + 1].0.is_ascii_alphabetic()
                {
                    url = true;
                }
                if c != '.' && c != '\'' {
                    prev = None;
                }
                i += 1;
                continue;
            }
            let start = i;
            let mut h = mix(offset, KIND_WORD);
            while i < n && is_word_char(self.chars[i].0) {
                h = mix(h, u64::from(self.chars[i].0));
                i += 1;
            }
            let span = (self.chars[start].1, end_of(&self.chars, i - 1));
            self.features.push(Feature {
                slot: slot(h, mask),
                span,
            });
            if let Some(p) = prev {
                let b = mix(mix(mix(offset, KIND_BIGRAM), p), h);
                self.features.push(Feature {
                    slot: slot(b, mask),
                    span,
                });
            }
            prev = Some(h);
            words += 1;
        }
        // Shape: length bucket, word-count bucket, URL-like token.
        let len_bucket = match n {
            0..=10 => 0,
            11..=30 => 1,
            31..=70 => 2,
            71..=140 => 3,
            _ => 4,
        };
        let evasions = original
            .map(|chars| crate::normalize::count_evasions(&chars[..chars.len().min(max_chars)]));
        let evasion_bucket = evasions.map(|e| match e {
            0 => 0u64,
            1 => 1,
            2..=3 => 2,
            _ => 3,
        });
        self.shape_features = SHAPE_FEATURES + usize::from(evasion_bucket.is_some());
        let shape = [
            (1u64, len_bucket),
            (2, u64::from(words.min(12) / 3)),
            (3, u64::from(url)),
        ];
        for (k, v) in shape.into_iter().chain(evasion_bucket.map(|b| (4, b))) {
            let h = mix(mix(mix(offset, KIND_SHAPE), k), v);
            self.features.push(Feature {
                slot: slot(h, mask),
                span: (0, 0),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(text: &str) -> Vec<u32> {
        let mut x = Extractor::new();
        x.extract(text, None, 1 << 18, 2_000, (4, 4), Links::Whole);
        x.features.iter().map(|f| f.slot).collect()
    }

    #[test]
    fn digits_fold_and_spaces_collapse() {
        assert_eq!(slots("call 0906 now"), slots("call  1234 now"));
        assert_ne!(slots("call 0906 now"), slots("call 0906 later"));
    }

    #[test]
    fn spans_point_into_the_text() {
        let text = "카지노 bonus 가입";
        let mut x = Extractor::new();
        x.extract(text, None, 1 << 16, 2_000, (4, 4), Links::Whole);
        for f in &x.features {
            let (a, b) = (f.span.0 as usize, f.span.1 as usize);
            assert!(
                a <= b && b <= text.len() && text.is_char_boundary(a) && text.is_char_boundary(b)
            );
        }
        assert!(x
            .features
            .iter()
            .any(|f| &text[f.span.0 as usize..f.span.1 as usize] == "카지노"));
        assert!(x
            .features
            .iter()
            .any(|f| &text[f.span.0 as usize..f.span.1 as usize] == "bonus"));
    }

    #[test]
    fn obfuscation_marks_are_a_fourth_shape_feature_when_the_original_is_given() {
        let mut x = Extractor::new();
        let mut shapes = |original: &str| {
            let canonical = crate::normalize::normalize(original);
            x.extract(
                canonical.as_str(),
                Some(canonical.input_chars()),
                1 << 18,
                600,
                (4, 3),
                Links::Whole,
            );
            assert_eq!(x.shape_features, SHAPE_FEATURES + 1);
            x.features.iter().map(|f| f.slot).collect::<Vec<_>>()
        };
        let marked = shapes("카.지.노 오픈");
        let plain = shapes("카지노 오픈");
        let n = marked.len();
        assert_eq!(marked[..n - 1], plain[..n - 1], "same canonical text");
        assert_ne!(marked[n - 1], plain[n - 1], "two marks against none");
    }

    #[test]
    fn links_read_as_their_hosts() {
        let mut skips = Vec::new();
        let kept = |text: &str, skips: &mut Vec<(usize, usize)>| {
            link_skips(text, skips, &mut Vec::new());
            let mut out = String::new();
            let mut at = 0;
            for &(a, b) in skips.iter() {
                out.push_str(&text[at..a]);
                at = b;
            }
            out + &text[at..]
        };
        for (text, want) in [
            ("봐봐 https://youtu.be/x7Kq ㅋㅋ", "봐봐 youtu.be ㅋㅋ"),
            ("조회 https://www.gov.kr", "조회 www.gov.kr"),
            ("bit.ly/3QxZk9 클릭", "bit.ly 클릭"),
            ("casino.xyz 가입", "casino.xyz 가입"),
            ("24/7 3.5/5 and/or 1.5%", "24/7 3.5/5 and/or 1.5%"),
            ("http://x.co?a=1#b", "x.co"),
        ] {
            assert_eq!(kept(text, &mut skips), want, "{text}");
        }
        // A long path adds no features: the same as the bare host.
        let mut x = Extractor::new();
        let mut slots = |text: &str| {
            x.extract(text, None, 1 << 18, 600, (4, 3), Links::Host);
            x.features.iter().map(|f| f.slot).collect::<Vec<_>>()
        };
        assert_eq!(
            slots("택배 조회 https://www.cjlogistics.com/ko/tool/parcel/tracking?no=1234"),
            slots("택배 조회 www.cjlogistics.com")
        );
    }

    #[test]
    fn a_host_read_as_words_adds_its_words_and_none_of_its_ngrams() {
        let text = "택배 조회 https://www.cjlogistics.com/ko/tool?no=1";
        let host = text.find("www").unwrap()..text.find("/ko").unwrap();
        let mut x = Extractor::new();
        let mut inside = |links| {
            x.extract(text, None, 1 << 18, 600, (4, 3), links);
            x.features
                .iter()
                .filter(|f| host.contains(&(f.span.0 as usize)))
                // A span that ends the kept text runs on over the skipped path.
                .map(|f| &text[f.span.0 as usize..(f.span.1 as usize).min(host.end)])
                .collect::<std::collections::BTreeSet<_>>()
        };
        let words = inside(Links::HostWords);
        assert_eq!(words, ["cjlogistics", "com", "www"].into());
        let ngrams = inside(Links::Host);
        assert!(
            ngrams.contains("cj") && ngrams.contains("log"),
            "{ngrams:?}"
        );
        assert!(ngrams.is_superset(&words));
    }

    #[test]
    fn empty_and_symbol_only_texts_have_only_shape_features() {
        assert_eq!(slots("").len(), 3);
        assert_eq!(slots("🙂🙂🙂").len(), 3 + 3);
    }
}
