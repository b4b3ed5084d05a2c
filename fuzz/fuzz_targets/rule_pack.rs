//! Any rule file: compiled or refused with errors naming the problem, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spamflow_operators::pattern::{check_examples, CompiledPack, PackSource};

fuzz_target!(|text: &str| {
    let mut src = PackSource::default();
    src.add("fuzz.toml", text.to_owned());
    match CompiledPack::compile(&src) {
        Ok(pack) => {
            let _ = check_examples(&std::sync::Arc::new(pack));
        }
        Err(errors) => assert!(!errors.is_empty()),
    }
});
