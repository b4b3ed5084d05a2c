//! Any bytes: an event or a DLQ reason, never a panic; an error never quotes a value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match spamflow_schemas::decode_submission(data) {
        Ok(ev) => assert!(
            !ev.message_id.trim().is_empty()
                && ev.text.len() <= spamflow_schemas::event::MAX_TEXT_BYTES
        ),
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
});
