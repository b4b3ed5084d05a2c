//! RFC 3339 timestamps on the hot path, equal to chrono's serde but cheaper:
//!
//! - [`serialize`] writes a `DateTime<Utc>` the way chrono's serde does (`Z`, fractional
//!   seconds only as long as they need to be: none, 3, 6 or 9 digits), without going
//!   through `fmt`: a verdict carries two timestamps, and chrono's formatter, called one
//!   character at a time by serde_json's `collect_str`, was about a third of the cost of
//!   writing a verdict.
//! - [`deserialize`] reads the form producers write (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`)
//!   directly and hands anything else to chrono's parser, so it accepts and refuses what
//!   chrono does, with chrono's errors.
//!
//! Property tests check both against chrono.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Timelike, Utc};
use serde::{Deserializer, Serializer};

/// Serializes `t` exactly as chrono does (`#[serde(serialize_with = ...)]`).
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let year = t.year();
    if !(0..=9999).contains(&year) {
        // chrono writes these with a sign and more digits; they do not occur in traffic.
        return serde::Serialize::serialize(t, serializer);
    }
    // A leap second is stored as nanoseconds past 10^9; chrono writes it as second 60.
    let (mut sec, mut nano) = (t.second(), t.nanosecond());
    if nano >= 1_000_000_000 {
        sec += 1;
        nano -= 1_000_000_000;
    }
    let mut w = Ascii::default();
    w.digits(year as u32, 4);
    w.byte(b'-');
    w.digits(t.month(), 2);
    w.byte(b'-');
    w.digits(t.day(), 2);
    w.byte(b'T');
    w.digits(t.hour(), 2);
    w.byte(b':');
    w.digits(t.minute(), 2);
    w.byte(b':');
    w.digits(sec, 2);
    if nano != 0 {
        w.byte(b'.');
        if nano % 1_000_000 == 0 {
            w.digits(nano / 1_000_000, 3);
        } else if nano % 1_000 == 0 {
            w.digits(nano / 1_000, 6);
        } else {
            w.digits(nano, 9);
        }
    }
    w.byte(b'Z');
    serializer.serialize_str(std::str::from_utf8(&w.buf[..w.len]).expect("ASCII"))
}

/// Reads a timestamp as chrono's serde does (`#[serde(deserialize_with = ...)]`).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 formatted date and time string")
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<DateTime<Utc>, E> {
            match parse_utc(s) {
                Some(t) => Ok(t),
                None => s
                    .parse::<DateTime<FixedOffset>>()
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(E::custom),
            }
        }
    }
    deserializer.deserialize_str(Visitor)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, with a fraction of 1 to 9 digits before the `Z` or not; `None`
/// for any other form or an invalid date or time (chrono then parses or refuses it).
fn parse_utc(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let shape = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[b.len() - 1] == b'Z';
    if !shape {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nano = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            number(digits)? * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    let date = NaiveDate::from_ymd_opt(
        number(&b[0..4])? as i32,
        number(&b[5..7])?,
        number(&b[8..10])?,
    )?;
    let time = date.and_hms_nano_opt(
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
        nano,
    )?;
    Some(time.and_utc())
}

/// A timestamp's bytes (at most `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, 30 bytes).
#[derive(Default)]
struct Ascii {
    buf: [u8; 30],
    len: usize,
}

impl Ascii {
    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// `value` in `width` decimal digits, zero-padded.
    fn digits(&mut self, value: u32, width: u32) {
        for k in (0..width).rev() {
            self.byte(b'0' + (value / 10u32.pow(k) % 10) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};
    use proptest::prelude::*;

    use super::*;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "serialize")] DateTime<Utc>);

    fn same_as_chrono(t: DateTime<Utc>) {
        let want = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::to_string(&Ours(t)).unwrap(), want);
    }

    proptest! {
        #[test]
        fn writes_what_chrono_writes(
            secs in -70_000_000_000i64..300_000_000_000,
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1_000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..1_000_000_000,
            ],
        ) {
            same_as_chrono(Utc.timestamp_opt(secs, nanos).unwrap());
        }
    }

    /// Our reading of `s` as a JSON string, after checking that chrono reads it alike.
    fn read(s: &str) -> Result<DateTime<Utc>, String> {
        let json = serde_json::to_string(s).unwrap();
        let theirs: Result<DateTime<Utc>, _> = serde_json::from_str(&json);
        let ours = deserialize(&mut serde_json::Deserializer::from_str(&json));
        let (ours, theirs) = (
            ours.map_err(|e| e.to_string()),
            theirs.map_err(|e| e.to_string()),
        );
        assert_eq!(ours, theirs, "{s}");
        ours
    }

    proptest! {
        #[test]
        fn reads_what_chrono_reads(
            secs in 0i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            digits in 0usize..=10,
            form in 0usize..4,
        ) {
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let fraction = format!("{nanos:09}0");
            let fraction = if digits == 0 { String::new() } else { format!(".{}", &fraction[..digits]) };
            let text = match form {
                0 => format!("{base}{fraction}Z"),
                1 => format!("{base}{fraction}+09:00"),
                2 => format!("{base}{fraction}z").replace('T', " "),
                _ => format!("{base}{fraction}Z").replace('-', "/"),
            };
            read(&text).ok();
        }

        #[test]
        fn refuses_what_chrono_refuses(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,10})?Z?") {
            read(&text).ok();
        }
    }

    #[test]
    fn the_usual_form_is_read_directly() {
        assert!(parse_utc("2026-12-03T19:46:03.5Z").is_some());
        assert!(parse_utc("2026-12-03T19:46:03Z").is_some());
        assert!(parse_utc("2026-02-30T19:46:03Z").is_none(), "no such date");
        assert!(
            parse_utc("2016-12-31T23:59:60Z").is_none(),
            "a leap second goes to chrono"
        );
        let leap = read("2016-12-31T23:59:60Z").unwrap();
        assert_eq!(leap.nanosecond(), 1_000_000_000);
        assert!(read("2026-12-03T19:46:03.Z").is_err());
    }

    #[test]
    fn leap_seconds_and_years_beyond_four_digits_too() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        same_as_chrono(leap);
        same_as_chrono(Utc.with_ymd_and_hms(12_026, 1, 2, 3, 4, 5).unwrap());
        same_as_chrono(Utc.with_ymd_and_hms(-1, 1, 2, 3, 4, 5).unwrap());
        same_as_chrono(DateTime::<Utc>::UNIX_EPOCH);
    }
}
