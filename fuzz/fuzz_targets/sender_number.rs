//! Any sender string: parsed into a key and a kind, never a panic; parsing is stable.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spamflow_operators::origin::parse_sender;

fuzz_target!(|raw: &str| {
    let a = parse_sender(raw);
    let b = parse_sender(raw);
    assert_eq!(a.key, b.key);
});
