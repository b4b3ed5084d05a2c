//! Any message text through the text operators of the chain (the built-in rule pack and
//! model, the fitted policy): a verdict with a score of at most 100, every reason's span
//! on character boundaries of the text, and a Verdict that serializes and decodes back
//! to itself.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use spamflow_operators::classifier::{self, ModelHandle};
use spamflow_operators::origin::parse_sender;
use spamflow_operators::pattern::{CompiledPack, PackSource, PatternConfig, PatternOperator};
use spamflow_operators::{ChainBuilder, EventCtx, PolicyConfig};
use spamflow_schemas::{SubmissionEvent, Verdict};

fn chain() -> ChainBuilder {
    let pack = CompiledPack::compile(&PackSource::builtin()).expect("the built-in pack compiles");
    let pattern = PatternOperator::new(Arc::new(pack), PatternConfig::default());
    let model = ModelHandle::new(classifier::builtin().expect("the built-in model loads"));
    ChainBuilder::new(PolicyConfig::default().build())
        .stateless(Arc::new(pattern))
        .classifier(model, None)
}

static BUILDER: OnceLock<ChainBuilder> = OnceLock::new();

fuzz_target!(|text: &str| {
    let mut chain = BUILDER.get_or_init(chain).build();
    let event: SubmissionEvent = serde_json::from_value(serde_json::json!({
        "schema_version": 1, "message_id": "fuzz", "submitted_at": "2026-03-01T09:00:00Z",
        "sender": "+821023456789", "recipient": "+821098765432", "text": text,
        "kind": "sms", "origin": {"route": "domestic", "smsc": "fuzz"}
    }))
    .expect("a valid event");
    let sender = parse_sender(&event.sender);
    let ctx = EventCtx {
        event: &event,
        sender: &sender,
        partition: 0,
        event_time_ms: 0,
        counted: false,
    };
    let verdict = chain.process(&ctx, event.submitted_at);
    assert!(verdict.score <= 100, "{verdict:?}");
    for r in &verdict.reasons {
        if let Some([a, b]) = r.span {
            assert!(
                a <= b && text.is_char_boundary(a) && text.is_char_boundary(b),
                "span {a}..{b} of {r:?}"
            );
        }
    }
    let json = serde_json::to_string(&verdict).expect("a verdict serializes");
    let back: Verdict<'static> = serde_json::from_str(&json).expect("and decodes");
    assert_eq!(back, verdict.into_owned());
});
