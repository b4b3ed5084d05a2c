//! The UCI SMS Spam Collection (Almeida and Gomez Hidalgo, 2011; CC BY 4.0), split by a
//! fixed rule: a row whose text (after the tab, UTF-8) has a SHA-256 whose first hex digit
//! is 0-7 is the training half; 8-f is the evaluation half, which is never trained or
//! tuned on (thresholds included).
//!
//! The file is not shipped in this repository; `scripts/corpus.sh` finds it (see
//! `docs/classifier.md`) and checks its SHA-256 before splitting.

use sha2::{Digest, Sha256};

/// SHA-256 of the known copy (5,574 rows; its first line carries a stray prefix).
pub const SHA256: &str = "73d4e6cf7e4cac44d0b812efe06db6ada65bfd4f319fb26ddf329b089e6f593f";

/// Which half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// First hex digit 0-7.
    Train,
    /// First hex digit 8-f.
    Eval,
}

/// The half a text belongs to.
pub fn half_of(text: &str) -> Half {
    if Sha256::digest(text.as_bytes())[0] < 0x80 {
        Half::Train
    } else {
        Half::Eval
    }
}

/// One row: `(spam, text)`.
pub type Row = (bool, String);

/// Parses the collection (`ham|spam <TAB> text` per line). A stray prefix before the
/// label on a line is dropped; a line with no label is an error naming it.
pub fn parse(bytes: &[u8]) -> Result<Vec<Row>, String> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let Some((label, body)) = line.split_once('\t') else {
            return Err(format!("line {}: no tab between label and text", i + 1));
        };
        let spam = if label.ends_with("spam") {
            true
        } else if label.ends_with("ham") {
            false
        } else {
            return Err(format!(
                "line {}: label {label:?} is neither ham nor spam",
                i + 1
            ));
        };
        rows.push((spam, body.to_owned()));
    }
    Ok(rows)
}

/// Checks the file's SHA-256 against [`SHA256`].
pub fn check(bytes: &[u8]) -> Result<(), String> {
    check_sha256(bytes, SHA256)
}

/// Checks that `bytes` have the SHA-256 `want` (hex) of a known copy of a corpus.
pub(crate) fn check_sha256(bytes: &[u8], want: &str) -> Result<(), String> {
    let got = hex::encode(Sha256::digest(bytes));
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "SHA-256 {got} is not that of the known copy ({want})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_and_the_stray_prefix() {
        let rows = parse(b"b'ham\tGo until jurong\nspam\tFREE entry\n").unwrap();
        assert_eq!(
            rows,
            vec![
                (false, "Go until jurong".into()),
                (true, "FREE entry".into())
            ]
        );
        assert!(parse(b"maybe\tx\n").is_err());
        // sha256("a") starts with ca.. (eval); sha256("b") with 3e.. (train).
        assert_eq!(half_of("a"), Half::Eval);
        assert_eq!(half_of("b"), Half::Train);
    }
}
