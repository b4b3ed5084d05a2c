//! Any bytes as a model file: loaded (and then able to score) or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spamflow_operators::classifier::{ClassifierWorker, Model};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Model::from_bytes(data, "fuzz") {
        let mut w = ClassifierWorker::new();
        let s = w.score(&m, "카지노 첫충 bonus http://x.y");
        assert!(s.probability.is_finite() || s.log_odds.is_nan());
    }
});
