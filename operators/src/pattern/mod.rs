//! The pattern operator: Hyperscan rule packs over the canonical form of the text (and,
//! for rules that ask for it, the original text).
//!
//! - [`pack`]: rule files, list files, compilation into one block database.
//! - [`PatternOperator`]: the shared, hot-swappable compiled pack. [`PatternOperator::swap`]
//!   installs a new pack atomically; workers notice at their next event and allocate
//!   scratch for it, so processing never pauses for a reload.
//! - [`Matcher`]: one thread's scanner (own scratch, own normalization buffers), also used
//!   by `spamflow rules check`.
//!
//! Each rule fires at most once per message. A reason carries the rule id, category,
//! score, the span of its first pattern in the *original* text, and that text as evidence.
//! Texts longer than [`PatternConfig::max_scan_bytes`] are scanned up to that limit (at a
//! character boundary) and the verdict says so (`pattern.truncated`, score 0). Input is
//! always valid UTF-8: the decoder sends invalid UTF-8 to the DLQ before any operator.

pub mod pack;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyperscan::prelude::*;

pub use pack::{BareScanner, CompiledPack, Hint, PackError, PackSource, Rule, Scan};

use crate::normalize::Normalized;
use crate::{EventCtx, OperatorWorker, Signal, StatelessOperator};

/// Pattern operator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternConfig {
    /// Longest prefix of a text that is scanned, in bytes.
    pub max_scan_bytes: usize,
}

impl Default for PatternConfig {
    fn default() -> Self {
        PatternConfig {
            max_scan_bytes: 8 * 1024,
        }
    }
}

/// The shared pattern operator.
#[derive(Debug, Clone)]
pub struct PatternOperator {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    pack: ArcSwap<CompiledPack>,
    generation: AtomicU64,
    cfg: PatternConfig,
}

impl PatternOperator {
    /// An operator serving `pack`.
    pub fn new(pack: Arc<CompiledPack>, cfg: PatternConfig) -> Self {
        PatternOperator {
            shared: Arc::new(Shared {
                pack: ArcSwap::new(pack),
                generation: AtomicU64::new(1),
                cfg,
            }),
        }
    }

    /// The pack being served.
    pub fn current(&self) -> Arc<CompiledPack> {
        self.shared.pack.load_full()
    }

    /// Installs a new pack; every worker uses it from its next event on.
    pub fn swap(&self, pack: Arc<CompiledPack>) {
        self.shared.pack.store(pack);
        self.shared.generation.fetch_add(1, Ordering::Release);
    }
}

impl StatelessOperator for PatternOperator {
    fn name(&self) -> &'static str {
        "pattern"
    }

    fn content_hash(&self) -> String {
        self.current().hash.clone()
    }

    fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    fn worker(&self) -> Box<dyn OperatorWorker> {
        let generation = self.generation();
        Box::new(PatternWorker {
            matcher: Matcher::new(self.current(), self.shared.cfg),
            shared: self.shared.clone(),
            generation,
        })
    }
}

/// A worker's matcher, rebuilt (new scratch) when the shared pack changes.
struct PatternWorker {
    shared: Arc<Shared>,
    matcher: Matcher,
    generation: u64,
}

impl OperatorWorker for PatternWorker {
    fn inspect(&mut self, ctx: &EventCtx<'_>, out: &mut Vec<Signal>) {
        // One atomic load per event; a swap costs the next event one scratch allocation.
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.matcher = Matcher::new(self.shared.pack.load_full(), self.shared.cfg);
            self.generation = g;
        }
        self.matcher.inspect(&ctx.event.text, out);
    }

    fn inspect_canonical(
        &mut self,
        ctx: &EventCtx<'_>,
        canonical: &Normalized,
        out: &mut Vec<Signal>,
    ) {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.matcher = Matcher::new(self.shared.pack.load_full(), self.shared.cfg);
            self.generation = g;
        }
        self.matcher
            .inspect_with(&ctx.event.text, Some(canonical), out);
    }
}

/// One rule match in one message.
#[derive(Debug, Clone, Copy)]
struct Hit {
    rule: u32,
    slot: u8,
    /// Found in the original text (otherwise in the canonical form).
    original: bool,
    /// Hyperscan pattern id in its database.
    pattern: u32,
    /// Where the match ends, in the text it was found in.
    end: usize,
}

/// One thread's scanner for one compiled pack.
pub struct Matcher {
    pack: Arc<CompiledPack>,
    scratch: Scratch,
    norm: Normalized,
    hits: Vec<Hit>,
    /// Caches for finding evidence starts: canonical, original database.
    starts: [Option<regex_automata::hybrid::dfa::Cache>; 2],
    cfg: PatternConfig,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("pack", &self.pack.hash)
            .finish_non_exhaustive()
    }
}

/// Hits kept per message: more than any real message produces; a hostile text that
/// matches everything stops the scan here instead of growing without bound.
const MAX_HITS: usize = 4096;

impl Matcher {
    /// A matcher with its own scratch for `pack`.
    ///
    /// # Panics
    /// Only if Hyperscan cannot allocate scratch (out of memory).
    pub fn new(pack: Arc<CompiledPack>, cfg: PatternConfig) -> Self {
        let scratch = pack.alloc_scratch();
        let starts = [&pack.canonical, &pack.original].map(|d| d.as_ref().map(|d| d.start_cache()));
        Matcher {
            pack,
            scratch,
            norm: Normalized::new(),
            hits: Vec::with_capacity(64),
            starts,
            cfg,
        }
    }

    /// The pack this matcher scans with.
    pub fn pack(&self) -> &Arc<CompiledPack> {
        &self.pack
    }

    /// Ids of the rules (enforcing and shadow) that fire on `text`.
    pub fn fired(&mut self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.inspect(text, &mut out);
        out.into_iter()
            .filter(|s| s.code != "pattern.truncated")
            .map(|s| s.code.into_owned())
            .collect()
    }

    /// Scans `text` and appends one signal per rule that fires.
    pub fn inspect(&mut self, text: &str, out: &mut Vec<Signal>) {
        self.inspect_with(text, None, out);
    }

    /// [`Matcher::inspect`], with the canonical form of `text`'s first bytes when the
    /// caller has it; it is used when it covers exactly the scanned part, and made here
    /// otherwise.
    pub fn inspect_with(
        &mut self,
        text: &str,
        canonical: Option<&Normalized>,
        out: &mut Vec<Signal>,
    ) {
        let limit = floor_char_boundary(text, self.cfg.max_scan_bytes);
        let scanned = &text[..limit];
        self.hits.clear();
        let pack = &self.pack;
        let hits = &mut self.hits;
        // Original-text rules first: their spans need no mapping and win over canonical ones.
        if let Some(d) = &pack.original {
            let _ =
                d.db.scan(scanned, &self.scratch, |id: u32, _from: u64, to: u64, _| {
                    let (rule, slot) = d.ids[id as usize];
                    hits.push(Hit {
                        rule,
                        slot,
                        original: true,
                        pattern: id,
                        end: to as usize,
                    });
                    if hits.len() >= MAX_HITS {
                        Matching::Terminate
                    } else {
                        Matching::Continue
                    }
                });
        }
        let norm = match canonical {
            Some(n) if n.input_len() == scanned.len() => n,
            _ if pack.canonical.is_none() => &self.norm,
            _ => {
                self.norm.normalize(scanned);
                &self.norm
            }
        };
        if let Some(d) = &pack.canonical {
            if hits.len() < MAX_HITS {
                let _ = d.db.scan(
                    norm.as_str(),
                    &self.scratch,
                    |id: u32, _from: u64, to: u64, _| {
                        let (rule, slot) = d.ids[id as usize];
                        hits.push(Hit {
                            rule,
                            slot,
                            original: false,
                            pattern: id,
                            end: to as usize,
                        });
                        if hits.len() >= MAX_HITS {
                            Matching::Terminate
                        } else {
                            Matching::Continue
                        }
                    },
                );
            }
        }
        // Per (rule, slot) the first hit is kept: original before canonical, then the
        // earliest end (Hyperscan may report a match that needed the next byte, such as
        // a `\b` at its end, after a later one).
        hits.sort_unstable_by_key(|h| (h.rule, h.slot, !h.original, h.end, h.pattern));
        let mut i = 0;
        while i < hits.len() {
            let rule_idx = hits[i].rule;
            let mut slots: u16 = 0;
            let first = hits[i];
            let mut primary = None;
            while i < hits.len() && hits[i].rule == rule_idx {
                let h = hits[i];
                if h.slot < 16 {
                    slots |= 1 << h.slot;
                }
                if h.slot == 0 && primary.is_none() {
                    primary = Some(h);
                }
                i += 1;
            }
            let rule = &pack.rules[rule_idx as usize];
            let all = if rule.slots >= 16 {
                u16::MAX
            } else {
                (1u16 << rule.slots) - 1
            };
            if slots & all != all {
                continue;
            }
            let hit = primary.unwrap_or(first);
            let [canonical_starts, original_starts] = &mut self.starts;
            let span = match (hit.original, &pack.original, &pack.canonical) {
                (true, Some(d), _) => {
                    let cache = original_starts.as_mut().expect("a cache per database");
                    (d.start(cache, hit.pattern, scanned, hit.end), hit.end)
                }
                (false, _, Some(d)) => {
                    let cache = canonical_starts.as_mut().expect("a cache per database");
                    let start = d.start(cache, hit.pattern, norm.as_str(), hit.end);
                    norm.original_span(start, hit.end)
                }
                // A hit always comes from a database of the pack.
                _ => (hit.end, hit.end),
            };
            let (s, e) = (
                floor_char_boundary(text, span.0),
                floor_char_boundary(text, span.1.max(span.0)),
            );
            out.push(Signal {
                hint: rule.hint.into(),
                evidence: Some(text[s..e].to_owned()),
                span: Some([s, e]),
                shadow: rule.shadow,
                ..Signal::new(
                    "pattern",
                    rule.id.clone(),
                    rule.category.clone(),
                    rule.score,
                )
            });
        }
        if limit < text.len() {
            out.push(Signal {
                evidence: Some(format!(
                    "text is {} bytes; scanned the first {limit}",
                    text.len()
                )),
                ..Signal::new("pattern", "pattern.truncated", "limits", 0)
            });
        }
    }
}

/// The largest char boundary of `s` at or below `i`.
fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// A rule's example that disagrees with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    /// Rule id.
    pub rule: String,
    /// Where it is defined.
    pub origin: String,
    /// The example text.
    pub example: String,
    /// True: should have fired but did not; false: fired on a counter-example.
    pub should_fire: bool,
}

impl std::fmt::Display for ExampleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.should_fire {
            write!(
                f,
                "{} ({}): does not fire on example {:?}",
                self.rule, self.origin, self.example
            )
        } else {
            write!(
                f,
                "{} ({}): fires on counter-example {:?}",
                self.rule, self.origin, self.example
            )
        }
    }
}

/// Runs every rule's examples and counter-examples; returns those that disagree.
pub fn check_examples(pack: &Arc<CompiledPack>) -> Vec<ExampleFailure> {
    let mut m = Matcher::new(
        pack.clone(),
        PatternConfig {
            max_scan_bytes: usize::MAX,
        },
    );
    let mut failures = Vec::new();
    for rule in &pack.rules {
        for (list, should_fire) in [(&rule.examples, true), (&rule.counter_examples, false)] {
            for ex in list.iter() {
                let fired = m.fired(ex).contains(&rule.id);
                if fired != should_fire {
                    failures.push(ExampleFailure {
                        rule: rule.id.clone(),
                        origin: rule.origin.clone(),
                        example: ex.clone(),
                        should_fire,
                    });
                }
            }
        }
    }
    failures
}
