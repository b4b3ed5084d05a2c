//! Any text: the canonical form is idempotent and every span maps into the original.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spamflow_operators::normalize::normalize;

fuzz_target!(|text: &str| {
    let n = normalize(text);
    let again = normalize(n.as_str());
    assert_eq!(again.as_str(), n.as_str(), "not idempotent");
    let len = n.as_str().len();
    for (a, b) in [(0, len), (0, len / 2), (len / 3, len)] {
        let (s, e) = n.original_span(a, b);
        assert!(s <= e && e <= text.len(), "span out of the original");
    }
});
