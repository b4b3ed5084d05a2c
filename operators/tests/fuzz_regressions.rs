//! Inputs the fuzz targets (`fuzz/`) once crashed on, kept in `fuzz/regressions/<target>/`
//! and replayed here with the same checks, so that `make test` keeps them fixed.

use std::path::PathBuf;

fn cases(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| std::fs::read(e.path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn normalize_regressions_stay_idempotent_with_spans_in_the_original() {
    let cases = cases("normalize");
    assert!(!cases.is_empty(), "fuzz/regressions/normalize is empty");
    for bytes in cases {
        // libFuzzer hands `&str` targets only valid UTF-8.
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let n = spamflow_operators::normalize::normalize(text);
        let again = spamflow_operators::normalize::normalize(n.as_str());
        assert_eq!(again.as_str(), n.as_str(), "not idempotent on {bytes:?}");
        let (s, e) = n.original_span(0, n.as_str().len());
        assert!(s <= e && e <= text.len());
    }
}
