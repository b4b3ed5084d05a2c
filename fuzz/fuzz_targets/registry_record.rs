//! Any key and value on the registry topic: applied or refused, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spamflow_operators::origin::Registry;

fuzz_target!(|input: (&str, Option<&[u8]>)| {
    let r = Registry::new();
    if let Err(e) = r.apply(input.0, input.1) {
        let _ = e.to_string();
    }
    let _ = r.check(input.0, "relay-a", None, 0);
});
