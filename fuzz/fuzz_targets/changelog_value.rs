//! Any changelog key and value restored into the stateful operators: restored or refused
//! with an error, never a panic; the operator then still judges an event.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use spamflow_operators::throttle::{ThrottleConfig, ThrottleFactory};
use spamflow_operators::velocity::{VelocityConfig, VelocityFactory};
use spamflow_operators::{EventCtx, StatefulOperator};

/// Factories are made once, as in the pipeline (a factory keeps its rule codes for the
/// life of the process); every input gets fresh operators from them.
fn factories() -> &'static (VelocityFactory, ThrottleFactory) {
    static F: OnceLock<(VelocityFactory, ThrottleFactory)> = OnceLock::new();
    F.get_or_init(|| {
        (
            VelocityFactory::new(VelocityConfig::default(), Arc::default()),
            ThrottleFactory::new(ThrottleConfig::default(), Arc::default()),
        )
    })
}

fuzz_target!(|input: (&[u8], Option<&[u8]>)| {
    let (velocity, throttle) = factories();
    let ops: [Box<dyn StatefulOperator>; 2] =
        [Box::new(velocity.build()), Box::new(throttle.build())];
    let ev = spamflow_schemas::decode_submission(br#"{"schema_version":1,"message_id":"m","submitted_at":"2026-03-01T09:00:00Z","sender":"+821012345678","recipient":"+821098765432","text":"hi","kind":"sms","origin":{"route":"domestic","smsc":"s"},"relay":{"operator":"relay-a"}}"#).unwrap();
    for mut op in ops {
        op.assigned(0);
        let _ = op.restore(0, input.0, input.1);
        let ctx = EventCtx {
            event: &ev,
            partition: 0,
            event_time_ms: ev.event_time_ms(),
            counted: false,
        };
        let mut out = Vec::new();
        op.inspect(&ctx, &mut out);
        let mut snap = Vec::new();
        op.snapshot(0, &mut snap);
    }
});
