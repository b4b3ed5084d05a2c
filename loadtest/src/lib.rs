//! spamflow load-test tooling. It treats the pipeline as a black box over Kafka: it uses
//! `spamflow-schemas` for the wire types and, from `spamflow-operators`, only the sender
//! parser that gives the partition key an SMSC uses.
//!
//! - [`kafka`]: producing with back-pressure, for the tools and the tests.
//! - [`chaos`]: the fault harness (random kills, broker restarts, scaling; a
//!   read_committed verifier and a comparison with an uninterrupted run).
//! - [`overload`]: one instance fed faster than it can process, with its memory bound
//!   and a verifier of one output per input.
//! - [`replay`]: recorded traffic: `record` a topic to a file, `replay` it at any speed,
//!   `run` it while matching every verdict to its event (latency percentiles, step mode,
//!   plots).
//! - [`corpus`]: a seeded labelled text corpus (spam of every category, plain and
//!   obfuscated, and hard-negative ham) for training the classifier.
//! - [`uci`]: the UCI SMS Spam Collection, checked and split by the fixed rule.
//! - [`nus`]: the NUS SMS Corpus's English messages as ham, without the UCI rows.
//! - [`synth`]: a seeded synthesizer of realistic carrier traffic: Korean and some
//!   English text, person-to-person and bulk (relay) traffic, legitimate notices that
//!   mention spam words, the Korean illegal-spam categories with obfuscated variants, and
//!   overseas-origin messages. Each event carries its ground truth in the extra field
//!   `synthetic_label` (readers ignore unknown fields).

pub mod chaos;
pub mod corpus;
pub mod kafka;
pub mod nus;
pub mod overload;
pub mod replay;
pub mod synth;
pub mod uci;
