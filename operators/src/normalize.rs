//! Korean-aware canonical form of message text, with an offset map back to the original.
//!
//! Spammers obfuscate keywords so that a plain pattern misses them: `카.지.노`, `카 지 노`,
//! `카★지★노`, `ㅋr지노`, `ㄷH박`, circled or compatibility jamo, full-width Latin
//! (`ｃａｓｉｎｏ`), zero-width characters, Cyrillic look-alikes, `cas1n0`, `hxxp`, `[.]`.
//! The pattern operator scans the original text *and* this canonical form:
//!
//! 1. zero-width characters, soft hyphens and Hangul fillers are removed;
//! 2. every character but a Hangul syllable is compatibility-decomposed (NFKD: full-width
//!    -> ASCII, circled and compatibility jamo -> conjoining jamo), combining marks
//!    (accents) are dropped, and the result is lower-cased;
//! 3. Cyrillic and Greek look-alikes become the Latin letter they imitate;
//! 4. a Latin letter that imitates a vowel right after a lone initial consonant is read as
//!    that vowel (`ㅋr` -> `카`, `ㄷh` -> `대`);
//! 5. separators (spaces, punctuation, symbols) between two Hangul characters are removed,
//!    and jamo are composed into syllables (a final consonant joins the syllable before
//!    it: `가ㄳ` -> `갃`; a consonant typed after a typed vowel ends that syllable unless a
//!    vowel follows it, as a keyboard reads it: `ㅍㅏㄴㅁㅐ` -> `판매`);
//! 6. in a run of Latin letters, digits and `@ $` that imitate letters become the letter
//!    (`cas1n0` -> `casino`); runs without a letter (phone numbers, amounts) are kept;
//! 7. URL defanging is undone: `hxxp` -> `http`, `[.]` `(.)` `[dot]` -> `.`.
//!
//! Every output byte maps to the byte range of the original character it came from, so a
//! match in the canonical form becomes a span in the original text. The form is
//! idempotent: normalizing it again changes nothing.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// The canonical form of one text, reusable across messages (buffers are kept).
#[derive(Debug, Default, Clone)]
pub struct Normalized {
    text: String,
    /// Byte length of the input it was made from.
    input_len: usize,
    /// For each byte of `text`: the original byte range of the character it came from.
    map: Vec<(u32, u32)>,
    /// The input's characters, as decoded once here (the classifier counts obfuscation
    /// marks on them: [`count_evasions`]).
    input_chars: Vec<char>,
    chars: Vec<(char, u32, u32)>,
    tmp: Vec<(char, u32, u32)>,
}

impl Normalized {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Byte length of the text it was made from (a reader checks that the form is of
    /// the text it means).
    pub fn input_len(&self) -> usize {
        self.input_len
    }

    /// The characters of the text it was made from.
    pub fn input_chars(&self) -> &[char] {
        &self.input_chars
    }

    /// Maps a byte range of the canonical text to the byte range of the original text it
    /// came from. Out-of-range input is clamped; an empty range maps to an empty range.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        if self.map.is_empty() {
            return (0, 0);
        }
        let s = start.min(self.map.len() - 1);
        let e = end.clamp(s + 1, self.map.len()) - 1;
        let (a, _) = self.map[s];
        let (_, b) = self.map[e];
        (a as usize, (b as usize).max(a as usize))
    }

    /// Normalizes `input` into this buffer.
    pub fn normalize(&mut self, input: &str) {
        self.normalize_with(input, true);
    }

    /// [`Normalized::normalize`], with Hangul syllables kept whole or split into jamo
    /// first. A split syllable comes back whole from `compose_jamo` anyway, so keeping it
    /// saves the work of two or three characters in every step for Korean text; the one
    /// thing the split allowed, a final consonant of the next character joining the
    /// syllable (`가ㄳ` -> `갃`), `compose_jamo` does directly. A test checks that both
    /// give the same form and map.
    fn normalize_with(&mut self, input: &str, keep_syllables: bool) {
        self.chars.clear();
        self.tmp.clear();
        self.text.clear();
        self.map.clear();
        self.input_chars.clear();
        self.input_len = input.len();
        decompose(input, &mut self.input_chars, &mut self.tmp, keep_syllables);
        read_typed_finals(input, &mut self.tmp);
        // Undoing a defanging can leave what the earlier steps would have changed (`[[.]]`
        // -> `[.]`, or separators that now stand between two syllables): the steps run
        // again until no defanging is left, so that the form stays idempotent. Text
        // without defanged URLs takes one pass.
        loop {
            read_latin_vowels(&mut self.tmp);
            self.chars.clear();
            drop_separators_between_hangul(&self.tmp, &mut self.chars);
            self.tmp.clear();
            compose_jamo(&self.chars, &mut self.tmp);
            fold_leetspeak(&mut self.tmp);
            self.chars.clear();
            if !undo_url_defanging(&self.tmp, &mut self.chars) {
                break;
            }
            std::mem::swap(&mut self.tmp, &mut self.chars);
        }
        for &(c, s, e) in &self.chars {
            let before = self.text.len();
            self.text.push(c);
            for _ in before..self.text.len() {
                self.map.push((s, e));
            }
        }
    }
}

/// Normalizes `input` into a fresh buffer.
pub fn normalize(input: &str) -> Normalized {
    let mut n = Normalized::new();
    n.normalize(input);
    n
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' | '\u{034F}' | '\u{180E}' | '\u{3164}' | '\u{115F}' | '\u{1160}' | '\u{FFA0}')
}

fn lookalike(c: char) -> char {
    match c {
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' | 'є' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'с' | 'ς' => 'c',
        'т' | 'τ' => 't',
        'у' | 'γ' => 'y',
        'х' | 'χ' => 'x',
        'і' | 'ι' | 'ı' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'α' => 'a',
        'ν' => 'v',
        'κ' => 'k',
        'ℓ' => 'l',
        _ => c,
    }
}

fn is_syllable(c: char) -> bool {
    matches!(c as u32, 0xAC00..=0xD7A3)
}

fn decompose(
    input: &str,
    input_chars: &mut Vec<char>,
    out: &mut Vec<(char, u32, u32)>,
    keep_syllables: bool,
) {
    for (i, c) in input.char_indices() {
        input_chars.push(c);
        if is_invisible(c) {
            continue;
        }
        let (s, e) = (i as u32, (i + c.len_utf8()) as u32);
        if c.is_ascii() || (keep_syllables && is_syllable(c)) {
            out.push((c.to_ascii_lowercase(), s, e));
            continue;
        }
        decompose_compatible(c, |d| {
            if matches!(d as u32, 0x1100..=0x11FF) {
                // Conjoining jamo (from a Hangul syllable): nothing else to do.
                out.push((d, s, e));
                return;
            }
            if is_combining_mark(d) || is_invisible(d) {
                return;
            }
            if d.is_ascii() {
                out.push((d.to_ascii_lowercase(), s, e));
            } else {
                for l in d.to_lowercase() {
                    out.push((lookalike(l), s, e));
                }
            }
        });
    }
}

const L_BASE: u32 = 0x1100;
const V_BASE: u32 = 0x1161;
const T_BASE: u32 = 0x11A7;
const S_BASE: u32 = 0xAC00;

fn is_l(c: char) -> bool {
    (0x1100..=0x1112).contains(&(c as u32))
}

fn is_v(c: char) -> bool {
    (0x1161..=0x1175).contains(&(c as u32))
}

fn is_t(c: char) -> bool {
    (0x11A8..=0x11C2).contains(&(c as u32))
}

/// The final consonant (`T` jamo) a lead consonant (`L` jamo) is written as, where it has
/// one (`ㄸ ㅃ ㅉ` never end a syllable).
fn final_of(lead: char) -> Option<char> {
    const FINALS: [u32; 19] = [
        1, 2, 4, 7, 0, 8, 16, 17, 0, 19, 20, 21, 22, 0, 23, 24, 25, 26, 27,
    ];
    let t = *FINALS.get((lead as u32).checked_sub(L_BASE)? as usize)?;
    (t > 0).then(|| char::from_u32(T_BASE + t)).flatten()
}

fn is_compat_jamo(input: &str, at: u32, vowel: bool) -> bool {
    input[at as usize..].chars().next().is_some_and(|c| {
        if vowel {
            ('\u{314F}'..='\u{3163}').contains(&c)
        } else {
            ('\u{3131}'..='\u{314E}').contains(&c)
        }
    })
}

/// A syllable typed as compatibility jamo ends with a consonant the keyboard cannot tell
/// from the next syllable's lead (`ㅍㅏㄴㅁㅐ`, `ㅍ ㅏ ㄴ ㅁ ㅐ`): NFKD makes every typed
/// consonant a lead. As a Korean keyboard does, a typed consonant after a typed vowel is
/// that syllable's final unless a vowel follows it (`판매`, and `ㅎㅗㅁㅌㅏㅇㅣ` is
/// `홈타이`). Only typed jamo are read so: a consonant after a whole syllable (`좋아ㅋㅋ`) or
/// a split one stays as it is, so both ways of [`Normalized::normalize_with`] agree.
fn read_typed_finals(input: &str, chars: &mut [(char, u32, u32)]) {
    let not_separator = |&(c, _, _): &(char, u32, u32)| !is_separator(c);
    for i in 0..chars.len() {
        let (c, s, _) = chars[i];
        let Some(t) = final_of(c).filter(|_| is_compat_jamo(input, s, false)) else {
            continue;
        };
        let after_typed_vowel = chars[..i]
            .iter()
            .rev()
            .find(|x| not_separator(x))
            .is_some_and(|&(p, ps, _)| is_v(p) && is_compat_jamo(input, ps, true));
        let vowel_next = chars[i + 1..]
            .iter()
            .find(|x| not_separator(x))
            .is_some_and(|&(n, _, _)| is_v(n) || latin_vowel(n).is_some());
        if after_typed_vowel && !vowel_next {
            chars[i].0 = t;
        }
    }
}

/// Latin letters spammers write in place of a vowel jamo after an initial consonant.
fn latin_vowel(c: char) -> Option<char> {
    match c {
        'r' => Some('\u{1161}'),                   // ㅏ
        'h' => Some('\u{1162}'),                   // ㅐ (written H)
        'l' | 'i' | '1' | '|' => Some('\u{1175}'), // ㅣ
        _ => None,
    }
}

/// A Latin letter right after a lone initial consonant, imitating a vowel, becomes it.
fn read_latin_vowels(chars: &mut [(char, u32, u32)]) {
    for i in 1..chars.len() {
        if is_l(chars[i - 1].0) {
            if let Some(v) = latin_vowel(chars[i].0) {
                chars[i].0 = v;
            }
        }
    }
}

fn compose_jamo(input: &[(char, u32, u32)], out: &mut Vec<(char, u32, u32)>) {
    let mut i = 0;
    while i < input.len() {
        let (c, s, e) = input[i];
        // A final consonant after a whole syllable without one belongs to it.
        if is_t(c) {
            if let Some(last) = out.last_mut() {
                if is_syllable(last.0) && (last.0 as u32 - S_BASE).is_multiple_of(28) {
                    last.0 = char::from_u32(last.0 as u32 + (c as u32 - T_BASE)).unwrap_or(last.0);
                    last.2 = last.2.max(e);
                    i += 1;
                    continue;
                }
            }
        }
        if is_l(c) && i + 1 < input.len() {
            let (n, _, ne) = input[i + 1];
            if is_v(n) {
                let v = n;
                let mut code = S_BASE + ((c as u32 - L_BASE) * 21 + (v as u32 - V_BASE)) * 28;
                let mut end = ne;
                let mut used = 2;
                // A final consonant belongs to this syllable.
                if let Some(&(t, _, te)) = input.get(i + 2) {
                    if is_t(t) {
                        code += t as u32 - T_BASE;
                        end = te;
                        used = 3;
                    }
                }
                out.push((char::from_u32(code).unwrap_or(c), s, end.max(e)));
                i += used;
                continue;
            }
        }
        out.push((c, s, e));
        i += 1;
    }
}

fn is_hangul(c: char) -> bool {
    matches!(c as u32, 0xAC00..=0xD7A3 | 0x1100..=0x11FF)
}

fn is_separator(c: char) -> bool {
    // Fast paths first: std's Unicode tables cost ~100 ns a lookup.
    if c.is_ascii() {
        !c.is_ascii_alphanumeric()
    } else if is_hangul(c) {
        false
    } else {
        !c.is_alphanumeric()
    }
}

fn drop_separators_between_hangul(input: &[(char, u32, u32)], out: &mut Vec<(char, u32, u32)>) {
    let mut i = 0;
    while i < input.len() {
        let (c, _, _) = input[i];
        if is_separator(c) {
            let start = i;
            while i < input.len() && is_separator(input[i].0) {
                i += 1;
            }
            let prev_hangul = out.last().is_some_and(|p| is_hangul(p.0));
            let next_hangul = input.get(i).is_some_and(|n| is_hangul(n.0));
            if !(prev_hangul && next_hangul) {
                out.extend_from_slice(&input[start..i]);
            }
            continue;
        }
        out.push(input[i]);
        i += 1;
    }
}

fn leet(c: char) -> Option<char> {
    match c {
        '0' => Some('o'),
        '1' => Some('i'),
        '3' => Some('e'),
        '4' => Some('a'),
        '5' => Some('s'),
        '7' => Some('t'),
        '@' => Some('a'),
        '$' => Some('s'),
        _ => None,
    }
}

fn fold_leetspeak(chars: &mut [(char, u32, u32)]) {
    let mut i = 0;
    while i < chars.len() {
        let in_run = |c: char| c.is_ascii_lowercase() || leet(c).is_some();
        if !in_run(chars[i].0) {
            i += 1;
            continue;
        }
        let start = i;
        let mut letters = false;
        while i < chars.len() && in_run(chars[i].0) {
            letters |= chars[i].0.is_ascii_lowercase();
            i += 1;
        }
        if letters {
            for ch in &mut chars[start..i] {
                if let Some(l) = leet(ch.0) {
                    ch.0 = l;
                }
            }
        }
    }
}

/// Returns whether anything was undone.
fn undo_url_defanging(input: &[(char, u32, u32)], out: &mut Vec<(char, u32, u32)>) -> bool {
    let mut i = 0;
    let mut undone = false;
    let at = |i: usize, pat: &str| {
        pat.chars()
            .enumerate()
            .all(|(k, p)| input.get(i + k).is_some_and(|c| c.0 == p))
    };
    while i < input.len() {
        if at(i, "hxxp") {
            for (k, c) in "http".chars().enumerate() {
                let (_, s, e) = input[i + k];
                out.push((c, s, e));
            }
            i += 4;
            undone = true;
            continue;
        }
        let mut replaced = false;
        for pat in ["[.]", "(.)", "{.}", "[dot]", "(dot)"] {
            if at(i, pat) {
                let n = pat.chars().count();
                out.push(('.', input[i].1, input[i + n - 1].2));
                i += n;
                replaced = true;
                break;
            }
        }
        if !replaced {
            out.push(input[i]);
            i += 1;
        }
        undone |= replaced;
    }
    undone
}

/// How many obfuscation marks `input` carries: what spammers write so that a plain filter
/// misses a word, and people rarely write otherwise. The classifier reads it as a shape
/// feature (bucketed), so that obfuscation itself counts as evidence. Each of these counts
/// one:
///
/// - an invisible character (zero-width, soft hyphen, Hangul filler), except the joiner
///   inside an emoji sequence (`🤦‍♀️`, `👨‍👩‍👧`: people send those every day);
/// - a full-width, circled or mathematical letter or digit;
/// - a Cyrillic or Greek look-alike next to a Latin letter (`саsinо`);
/// - a lone consonant jamo spelt with a vowel jamo or a Latin vowel (`ㅋr`, `ㄷH`, `ㄷㅐ`;
///   `ㅋㅋ` is laughter and does not count);
/// - a run of symbols without spaces between two Hangul characters (`카.지.노` counts two;
///   brackets and quotes do not count, so `(광고)쿠팡` does not);
/// - a Latin word of four or more characters with a digit or `@ $` between letters
///   (`cas1n0`);
/// - a defanged URL (`hxxp`, `[.]`, `(dot)`).
///
/// Spaces between syllables (`룰 렛 이 벤 트`) do not count: people write runs of
/// one-syllable words too (`차 좀 빼 줄 수 있어?`), and a model trained with them as marks
/// blocked such chat.
pub fn evasions(input: &str) -> u32 {
    count_evasions(&input.chars().collect::<Vec<_>>())
}

/// An emoji or a pictographic symbol, or the variation selector that asks for one.
fn pictographic(c: char) -> bool {
    matches!(c as u32, 0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0xFE0F)
}

/// [`evasions`] of a text given as its characters.
pub fn count_evasions(chars: &[char]) -> u32 {
    let hangul = |c: char| matches!(c as u32, 0xAC00..=0xD7A3 | 0x1100..=0x11FF | 0x3131..=0x318E);
    let lone_consonant = |c: char| matches!(c as u32, 0x3131..=0x314E);
    let vowel = |c: char| {
        matches!(c as u32, 0x314F..=0x3163)
            || (c.is_ascii_alphabetic() && latin_vowel(c.to_ascii_lowercase()).is_some())
    };
    let bracket_or_quote = |c: char| "()[]{}<>「」『』【】\"'“”‘’".contains(c);
    let symbol = |c: char| is_separator(c) && !c.is_whitespace() && !is_invisible(c);
    let mut n = 0u32;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Most characters are syllables or spaces, which mark nothing by themselves.
        if c == ' ' || matches!(c as u32, 0xAC00..=0xD7A3) {
            i += 1;
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        if !c.is_ascii() {
            let emoji_joiner =
                c == '\u{200D}' && prev.is_some_and(pictographic) && next.is_some_and(pictographic);
            let disguised = (is_invisible(c) && !emoji_joiner)
                || matches!(c as u32, 0xFF01..=0xFF5E | 0x2460..=0x24FF | 0x3200..=0x327F | 0x1D400..=0x1D7FF);
            // Cyrillic or Greek.
            let lookalike = matches!(c as u32, 0x0370..=0x04FF)
                && (prev.is_some_and(|p| p.is_ascii_alphabetic())
                    || next.is_some_and(|x| x.is_ascii_alphabetic()));
            let spelt_jamo = lone_consonant(c) && next.is_some_and(vowel);
            n += u32::from(disguised || lookalike || spelt_jamo);
        }
        // Symbols between two Hangul characters.
        if prev.is_some_and(hangul) && symbol(c) {
            let start = i;
            while i < chars.len() && symbol(chars[i]) {
                i += 1;
            }
            let run = &chars[start..i];
            if chars.get(i).is_some_and(|&x| hangul(x)) && !run.iter().any(|&r| bracket_or_quote(r))
            {
                n += 1;
            }
            continue;
        }
        // A Latin word with a digit or `@ $` between letters.
        if c.is_ascii_alphanumeric() || c == '@' || c == '$' {
            if prev.is_some_and(|p| p.is_ascii_alphanumeric() || p == '@' || p == '$') {
                i += 1;
                continue;
            }
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '@' || chars[i] == '$')
            {
                i += 1;
            }
            let word = &chars[start..i];
            let between_letters = (1..word.len().saturating_sub(1)).any(|k| {
                leet(word[k].to_ascii_lowercase()).is_some()
                    && !word[k].is_ascii_alphabetic()
                    && word[k - 1].is_ascii_alphabetic()
                    && word[k + 1].is_ascii_alphabetic()
            });
            let hxxp = word.len() >= 4
                && word[..4]
                    .iter()
                    .zip("hxxp".chars())
                    .all(|(c, h)| c.to_ascii_lowercase() == h);
            if (word.len() >= 4 && between_letters) || hxxp {
                n += 1;
            }
            continue;
        }
        if matches!(c, '[' | '(' | '{')
            && ["[.]", "(.)", "{.}", "[dot]", "(dot)"].iter().any(|p| {
                p.chars().enumerate().all(|(k, pc)| {
                    chars
                        .get(i + k)
                        .is_some_and(|&x| x.to_ascii_lowercase() == pc)
                })
            })
        {
            n += 1;
        }
        i += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn canon(s: &str) -> String {
        normalize(s).as_str().to_owned()
    }

    #[test]
    fn nested_defanging_is_undone_whole() {
        // Found by the normalize fuzz target (fuzz/regressions/normalize).
        assert_eq!(canon("\0[[.]]"), "\0.");
        assert_eq!(canon("evil[[.]]com"), "evil.com");
        assert_eq!(canon(&canon("x((.))y")), canon("x((.))y"));
    }

    #[test]
    fn hangul_obfuscations_collapse() {
        for (input, want) in [
            ("카.지.노", "카지노"),
            ("카 지 노", "카지노"),
            ("카★지★노 오픈", "카지노오픈"),
            ("대♠출", "대출"),
            ("ㅋr지노", "카지노"),
            ("ㄷH박", "대박"),
            ("㉠ㅏ", "가"),
            ("카\u{200B}지\u{FEFF}노", "카지노"),
            ("바카라 ㅋㅋ", "바카라ᄏᄏ"),
            ("ㅍㅏㄴㅁㅐ", "판매"),
            ("떨 ㅍ ㅏ ㄴ ㅁ ㅐ", "떨판매"),
            ("ㅎ ㅗ ㅁ ㅌ ㅏ ㅇ ㅣ 출 장", "홈타이출장"),
            ("ㅋㅏㅈㅣㄴㅗ", "카지노"),
            ("좋아ㅋㅋ", "좋아ᄏᄏ"),
            ("ㅇㅋ ㅇㅋ", "ᄋᄏᄋᄏ"),
        ] {
            assert_eq!(canon(input), want, "{input}");
        }
    }

    #[test]
    fn latin_obfuscations_collapse() {
        for (input, want) in [
            ("ｃａｓｉｎｏ", "casino"),
            ("CASINO", "casino"),
            ("cas1n0", "casino"),
            ("саsinо", "casino"), // Cyrillic а, о
            ("cásíno", "casino"),
            ("hxxp://cj-deliv[.]xyz", "http://cj-deliv.xyz"),
            ("010-1234-5678", "010-1234-5678"),
            ("2026년 3월", "2026년 3월"),
        ] {
            assert_eq!(canon(input), want, "{input}");
        }
    }

    #[test]
    fn obfuscation_marks_are_counted_and_ordinary_writing_is_not() {
        for (input, want) in [
            ("카.지.노", 2),
            ("룰 렛 이 벤 트", 0),
            ("급❤만❤남 매❤칭", 3),
            ("ㅋr지노 ㄷH박 ㄷㅐ출", 3),
            ("카\u{200B}지노", 1),
            ("카\u{200D}지노", 1),
            ("ｃａｓｉｎｏ", 6),
            ("саsinо", 2),
            ("cas1n0 hxxp://x[.]com", 3),
            // Ordinary writing.
            ("(광고)쿠팡 [Web발신] 배송 완료", 0),
            ("차 좀 빼 줄 수 있어?", 0),
            ("ㅋㅋㅋ 알았어! 내일 봐~", 0),
            // Emoji sequences joined by U+200D, one with a variation selector.
            (
                "오늘 피곤하다 🤦\u{200D}♀\u{FE0F} 가족 사진 👨\u{200D}👩\u{200D}👧",
                0,
            ),
            ("010-1234-5678 2026년 3월 4u gr8", 0),
            ("", 0),
        ] {
            assert_eq!(evasions(input), want, "{input}");
        }
    }

    #[test]
    fn spans_map_back_to_the_original() {
        let text = "오늘 카.지.노 OPEN";
        let n = normalize(text);
        let c = n.as_str();
        let at = c.find("카지노").unwrap();
        let (s, e) = n.original_span(at, at + "카지노".len());
        assert_eq!(&text[s..e], "카.지.노");
        let at = c.find("open").unwrap();
        let (s, e) = n.original_span(at, at + 4);
        assert_eq!(&text[s..e], "OPEN");
        let text = "ㅋr지노";
        let n = normalize(text);
        let (s, e) = n.original_span(0, n.as_str().len());
        assert_eq!(&text[s..e], text);
    }

    proptest! {
        #[test]
        fn whole_syllables_give_the_form_and_map_of_split_ones(
            t in "[가각나카캉지노대출ㅋㄷㄳㄺㅄㅏㅓrHl1 .★\u{11A8}\u{11AA}\u{1100}\u{1161}0-9a-z\u{200B}ｃ\\[\\]()hx]{0,40}",
            s in "\\PC{0,60}",
        ) {
            for text in [t.as_str(), s.as_str()] {
                let whole = normalize(text);
                let mut split = Normalized::new();
                split.normalize_with(text, false);
                prop_assert_eq!(whole.as_str(), split.as_str());
                prop_assert_eq!(&whole.map, &split.map);
            }
        }

        #[test]
        fn never_panics_is_idempotent_and_spans_stay_inside(s in "\\PC{0,80}", t in "[카지노대출ㅋㄷㅏrHl1 .★0-9a-zA-Z\u{200B}ｃａ]{0,40}") {
            for text in [s.as_str(), t.as_str()] {
                let n = normalize(text);
                let once = n.as_str().to_owned();
                prop_assert_eq!(canon(&once), once.clone());
                for (a, _) in once.char_indices() {
                    let (x, y) = n.original_span(a, a + 1);
                    prop_assert!(x <= y && y <= text.len());
                    prop_assert!(text.is_char_boundary(x) && text.is_char_boundary(y));
                }
            }
        }
    }
}
