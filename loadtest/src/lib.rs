//! spamflow load-test tooling. Uses only `spamflow-schemas`: it treats the pipeline as
//! a black box over Kafka.
//!
//! - [`synth`]: a seeded synthesizer of realistic carrier traffic: Korean and some
//!   English text, person-to-person and bulk (relay) traffic, legitimate notices that
//!   mention spam words, the Korean illegal-spam categories with obfuscated variants, and
//!   overseas-origin messages. Each event carries its ground truth in the extra field
//!   `synthetic_label` (readers ignore unknown fields).

pub mod synth;
