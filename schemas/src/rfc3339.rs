//! Timestamps written the way chrono's serde writes a `DateTime<Utc>` (RFC 3339, `Z`,
//! fractional seconds only as long as they need to be: none, 3, 6 or 9 digits), without
//! going through `fmt`: a verdict carries two timestamps, and chrono's formatter, called
//! one character at a time by serde_json's `collect_str`, was about a third of the cost of
//! writing a verdict. A property test checks byte-for-byte equality with chrono.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

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
