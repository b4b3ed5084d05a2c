//! Rule packs: TOML files of rules (and plain list files), compiled into one Hyperscan
//! block database.
//!
//! A rule fires when every one of its `patterns` matches the original text or its
//! canonical form ([`crate::normalize`]): one pattern for a distinctive phrase, two or
//! more for "a keyword *and* a solicitation" so that legitimate notices that merely
//! mention a word (a bank's loan notice, a real parcel notice) do not fire. A `[[list]]`
//! names a plain file of literals (domains, keywords), one per line, `#` comments; each
//! line is compiled as an escaped literal and any of them satisfies the list's first
//! pattern slot.
//!
//! ```toml
//! [[rule]]
//! id = "gambling.casino"
//! category = "gambling"
//! score = 70
//! patterns = ['카지노|바카라|casino', '가입|충전|환전|보너스']
//! examples = ["카.지.노 가입머니 지급"]
//! counter_examples = ["카지노 영화 재밌더라"]
//! ```
//!
//! A `[[define]]` names a piece of pattern that several rules share (a list of brands,
//! of shorteners); a pattern writes `{{name}}` where it goes, and the pack compiles the
//! pattern with the piece in its place. Names are pack-wide, and a piece uses no other.
//!
//! Every pattern of every rule gets its own Hyperscan id; the id maps back to (rule,
//! slot). The pack's content hash (SHA-256 over file names and bytes) is its version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyperscan::prelude::*;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::ActionHint;

/// What a rule asks of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hint {
    /// Score only (default).
    #[default]
    Score,
    /// At least a label.
    Label,
    /// Block regardless of score.
    Block,
}

impl From<Hint> for ActionHint {
    fn from(h: Hint) -> Self {
        match h {
            Hint::Score => ActionHint::Score,
            Hint::Label => ActionHint::Label,
            Hint::Block => ActionHint::Block,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleDef>,
    #[serde(default)]
    list: Vec<ListDef>,
    #[serde(default)]
    define: Vec<Define>,
}

/// A named piece of pattern, written `{{name}}` in any rule's patterns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Define {
    name: toml::Spanned<String>,
    pattern: String,
}

/// The pack's definitions by name, with where each is written.
#[derive(Default)]
struct Defines(BTreeMap<String, (String, String)>);

impl Defines {
    /// Collects every file's `[[define]]`s; a name given twice, a name that is not
    /// `[a-z0-9_]`, or a piece that uses another is refused.
    fn collect(files: &[(&str, &str, RuleFile)], errors: &mut Vec<PackError>) -> Self {
        let mut defines = Defines::default();
        for (file, text, parsed) in files {
            for d in &parsed.define {
                let name = d.name.get_ref();
                let line = line_of(text, d.name.span().start);
                let bad = |detail: String| PackError::Rule {
                    file: (*file).to_owned(),
                    line,
                    rule: format!("define {name}"),
                    detail,
                };
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                {
                    errors.push(bad("a name is lower-case letters, digits and `_`".into()));
                } else if d.pattern.contains("{{") {
                    errors.push(bad("a definition cannot use another".into()));
                } else if let Some((_, prev)) = defines.0.get(name) {
                    errors.push(bad(format!("defined twice (also at {prev})")));
                } else {
                    defines
                        .0
                        .insert(name.clone(), (d.pattern.clone(), format!("{file}:{line}")));
                }
            }
        }
        defines
    }

    /// A rule's patterns with the definitions in place, as (expression, line, slot), the
    /// first in `first_slot`.
    fn patterns(
        &self,
        file: &str,
        text: &str,
        rule: &str,
        patterns: &[toml::Spanned<String>],
        first_slot: usize,
    ) -> Result<Vec<(String, usize, u8)>, PackError> {
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let line = line_of(text, p.span().start);
                let expr = self.expand(p.get_ref()).map_err(|detail| PackError::Rule {
                    file: file.to_owned(),
                    line,
                    rule: rule.to_owned(),
                    detail,
                })?;
                Ok((expr, line, (first_slot + i).min(255) as u8))
            })
            .collect()
    }

    /// `pattern` with each `{{name}}` replaced by that definition.
    fn expand(&self, pattern: &str) -> Result<String, String> {
        let mut out = String::with_capacity(pattern.len());
        let mut rest = pattern;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("`{{{{` without `}}}}` in {pattern:?}"))?;
            let name = &after[..close];
            let (piece, _) = self
                .0
                .get(name)
                .ok_or_else(|| format!("no definition named {name:?} in the pack"))?;
            out.push_str(piece);
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDef {
    id: toml::Spanned<String>,
    category: String,
    #[serde(default)]
    description: String,
    patterns: Vec<toml::Spanned<String>>,
    score: u8,
    #[serde(default)]
    hint: Hint,
    #[serde(default)]
    shadow: bool,
    /// Which text the patterns are matched against (default: the canonical form).
    #[serde(default)]
    scan: Scan,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListDef {
    id: toml::Spanned<String>,
    category: String,
    #[serde(default)]
    description: String,
    /// List file, relative to the pack directory.
    file: String,
    /// Further patterns that must also match (AND), as in a rule.
    #[serde(default)]
    requires: Vec<toml::Spanned<String>>,
    /// Which text the literals are matched against (default: the canonical form).
    #[serde(default)]
    scan: Scan,
    score: u8,
    #[serde(default)]
    hint: Hint,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    examples: Vec<String>,
    #[serde(default)]
    counter_examples: Vec<String>,
}

/// Which text a rule's patterns are matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scan {
    /// The canonical form only (default): obfuscations are undone, spans map back.
    #[default]
    Canonical,
    /// The original text only: for rules about exact layout (`hxxp`, `[.]`) or tokens
    /// the canonical form rewrites (digits inside Latin words: `paypa1`, `150p/min`).
    Original,
    /// Both.
    Both,
}

impl Scan {
    fn canonical(self) -> bool {
        matches!(self, Scan::Canonical | Scan::Both)
    }
    fn original(self) -> bool {
        matches!(self, Scan::Original | Scan::Both)
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id, e.g. `gambling.casino`.
    pub id: String,
    /// Category for statistics.
    pub category: String,
    /// What it is for.
    pub description: String,
    /// Score 0..=100.
    pub score: u8,
    /// Action hint.
    pub hint: Hint,
    /// Reported in `shadow[]` only.
    pub shadow: bool,
    /// Which text its patterns are matched against.
    pub scan: Scan,
    /// Number of pattern slots that must all match.
    pub slots: u8,
    /// Examples that must fire the rule.
    pub examples: Vec<String>,
    /// Examples that must not fire it.
    pub counter_examples: Vec<String>,
    /// Where it is defined (`file:line`).
    pub origin: String,
}

/// A problem with a rule pack, naming the rule and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// A file could not be read.
    #[error("{file}: {detail}")]
    Io {
        /// File.
        file: String,
        /// OS error.
        detail: String,
    },
    /// A file is not a valid rule file.
    #[error("{file}: {detail}")]
    Syntax {
        /// File.
        file: String,
        /// Parser message (with line and column).
        detail: String,
    },
    /// A rule's pattern does not compile, or a rule is inconsistent.
    #[error("{file}:{line}: rule {rule}: {detail}")]
    Rule {
        /// File.
        file: String,
        /// 1-based line.
        line: usize,
        /// Rule id.
        rule: String,
        /// What is wrong.
        detail: String,
    },
    /// The pack has no rules.
    #[error("the rule pack has no rules")]
    Empty,
}

/// Source files of a pack: (file name, contents), plus list files by name.
#[derive(Debug, Clone, Default)]
pub struct PackSource {
    /// Rule files (`*.toml`), sorted by name.
    pub rule_files: Vec<(String, String)>,
    /// List files referenced by `[[list]]`, by name.
    pub list_files: BTreeMap<String, String>,
}

macro_rules! builtin {
    ($($name:literal),* $(,)?) => { &[$(($name, include_str!(concat!("../../rules/default/", $name)))),*] };
}

/// The default pack, compiled into the binary.
const BUILTIN: &[(&str, &str)] = builtin!(
    "adult.toml",
    "drugs.toml",
    "english.toml",
    "gambling.toml",
    "impersonation.toml",
    "loan.toml",
    "smishing.toml",
    "stock.toml",
    "url.toml",
    "lookalike-domains.txt",
    "shorteners.txt",
);

impl PackSource {
    /// The default pack shipped with spamflow (`operators/rules/default`).
    pub fn builtin() -> Self {
        let mut src = PackSource::default();
        for (name, text) in BUILTIN {
            src.add(name, text.to_string());
        }
        src
    }

    /// Adds a file: `*.toml` is a rule file, anything else a list file.
    pub fn add(&mut self, name: &str, text: String) {
        if name.ends_with(".toml") {
            self.rule_files.push((name.to_owned(), text));
            self.rule_files.sort();
        } else {
            self.list_files.insert(name.to_owned(), text);
        }
    }

    /// Reads every `*.toml` and `*.txt` file of `dir` (not recursive; files starting with
    /// `.` are skipped, which also skips Kubernetes ConfigMap `..data` links).
    /// Writes the pack's files into `dir`, replacing what was there: into a fresh sibling
    /// directory first, then renamed over `dir`, so a reader sees the old pack or the new
    /// one, never half of one.
    pub fn write_dir(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let lists = self.list_files.iter();
        for (name, text) in self.rule_files.iter().map(|(n, t)| (n, t)).chain(lists) {
            std::fs::write(tmp.join(name), text)?;
        }
        let old = dir.with_extension("old");
        let _ = std::fs::remove_dir_all(&old);
        if dir.exists() {
            std::fs::rename(dir, &old)?;
        }
        std::fs::rename(&tmp, dir)?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Reads every `*.toml` and `*.txt` file of `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self, PackError> {
        let io = |file: &Path, e: std::io::Error| PackError::Io {
            file: file.display().to_string(),
            detail: e.to_string(),
        };
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or(".");
                !name.starts_with('.') && (name.ends_with(".toml") || name.ends_with(".txt"))
            })
            .collect();
        names.sort();
        let mut src = PackSource::default();
        for p in names {
            let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            src.add(&name, text);
        }
        Ok(src)
    }

    /// Content hash: SHA-256 over every file name and its bytes.
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        for (name, text) in self
            .rule_files
            .iter()
            .map(|(n, t)| (n, t))
            .chain(self.list_files.iter())
        {
            h.update(name.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        hex::encode(h.finalize())
    }
}

/// A compiled pack: rules, the Hyperscan database, and where each pattern id leads.
pub struct CompiledPack {
    /// Rules, in file and definition order.
    pub rules: Vec<Rule>,
    /// Patterns matched against the canonical form.
    pub(crate) canonical: Option<Database>,
    /// Patterns matched against the original text.
    pub(crate) original: Option<Database>,
    /// Content hash of the source.
    pub hash: String,
    /// Time to parse and compile.
    pub compile_time: Duration,
    /// Hyperscan patterns compiled.
    pub patterns: usize,
}

impl std::fmt::Debug for CompiledPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPack")
            .field("rules", &self.rules.len())
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct PackBuilder {
    rules: Vec<Rule>,
    pending: Vec<PendingPattern>,
    errors: Vec<PackError>,
    seen_ids: BTreeMap<String, String>,
}

impl PackBuilder {
    fn add(&mut self, file: &str, line: usize, rule: Rule, exprs: Vec<(String, usize, u8)>) {
        let bad = |detail: String| PackError::Rule {
            file: file.to_owned(),
            line,
            rule: rule.id.clone(),
            detail,
        };
        if let Some(prev) = self
            .seen_ids
            .insert(rule.id.clone(), format!("{file}:{line}"))
        {
            self.errors
                .push(bad(format!("duplicate id (also at {prev})")));
            return;
        }
        if rule.score > 100 {
            self.errors
                .push(bad(format!("score {} is above 100", rule.score)));
        }
        if rule.slots == 0 || rule.slots > 8 {
            self.errors
                .push(bad(format!("{} patterns; a rule has 1 to 8", rule.slots)));
            return;
        }
        if rule.examples.is_empty() {
            self.errors
                .push(bad("has no examples; every rule needs at least one".into()));
        }
        let idx = self.rules.len() as u32;
        for (expr, l, slot) in exprs {
            self.pending.push(PendingPattern {
                expr,
                rule: idx,
                slot,
                file: file.to_owned(),
                line: l,
            });
        }
        self.rules.push(rule);
    }
}

/// One compiled database and where each of its pattern ids leads.
///
/// Hyperscan reports where matches end. Tracking where they start (`SOM_LEFTMOST`)
/// made the scan 2.3 times as slow, almost all of it for patterns with an unbounded
/// prefix such as `[a-z0-9-]+\.(xyz|top)`; yet a start is needed only for the one
/// match each firing rule shows as evidence. So the scan reports ends, and
/// [`Database::start`] finds that one start by running the same patterns backwards
/// from the end (a lazy DFA, anchored), which gives the leftmost start as Hyperscan's
/// `SOM_LEFTMOST` does.
pub(crate) struct Database {
    pub(crate) db: BlockDatabase,
    /// Hyperscan id -> (rule index, slot).
    pub(crate) ids: Vec<(u32, u8)>,
    /// The patterns reversed, one start state each (pattern id = Hyperscan id).
    starts: regex_automata::hybrid::dfa::DFA,
    #[cfg(test)]
    exprs: Vec<String>,
}

impl Database {
    /// A cache for [`Database::start`] (one per thread).
    pub(crate) fn start_cache(&self) -> regex_automata::hybrid::dfa::Cache {
        self.starts.create_cache()
    }

    /// Where the leftmost match of pattern `id` ending at `end` of `text` starts (`end`
    /// itself if none does, which a match Hyperscan reported does not allow).
    pub(crate) fn start(
        &self,
        cache: &mut regex_automata::hybrid::dfa::Cache,
        id: u32,
        text: &str,
        end: usize,
    ) -> usize {
        use regex_automata::{Anchored, Input, PatternID};
        let input = Input::new(text)
            .range(..end)
            .anchored(Anchored::Pattern(PatternID::new_unchecked(id as usize)));
        match self.starts.try_search_rev(cache, &input) {
            Ok(Some(m)) => m.offset(),
            _ => end,
        }
    }
}

/// The patterns compiled backwards for [`Database::start`], with Hyperscan's meaning
/// under [`flags`]: caseless, and `\b`, `\w`, `\d`, `\s` over ASCII.
fn reverse_dfa(exprs: &[&str]) -> Result<regex_automata::hybrid::dfa::DFA, String> {
    use regex_automata::{hybrid::dfa::DFA, nfa::thompson, util::syntax, MatchKind};
    DFA::builder()
        .configure(
            DFA::config()
                .match_kind(MatchKind::All)
                .starts_for_each_pattern(true),
        )
        .syntax(
            syntax::Config::new()
                .case_insensitive(true)
                .unicode(false)
                .utf8(false),
        )
        .thompson(thompson::Config::new().reverse(true))
        .build_many(exprs)
        .map_err(|e| e.to_string())
}

fn hs_pattern(expr: &str, id: usize) -> Pattern {
    Pattern {
        expression: expr.to_owned(),
        flags: flags(),
        id: Some(id),
        ext: Default::default(),
        som: None,
    }
}

fn build_database(
    pending: &[&PendingPattern],
    rules: &[Rule],
    errors: &mut Vec<PackError>,
) -> Option<Database> {
    if pending.is_empty() {
        return None;
    }
    let patterns: Patterns = pending
        .iter()
        .enumerate()
        .map(|(i, p)| hs_pattern(&p.expr, i))
        .collect();
    let db = match patterns.build() {
        Ok(db) => db,
        Err(_) => {
            name_failing_patterns(
                pending,
                rules,
                errors,
                |expr| {
                    hs_pattern(expr, 0)
                        .build::<hyperscan::Block>()
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                },
                "does not compile",
                "the patterns compile one by one but not together (database too large?)".into(),
            );
            return None;
        }
    };
    let exprs: Vec<&str> = pending.iter().map(|p| p.expr.as_str()).collect();
    let starts = match reverse_dfa(&exprs) {
        Ok(dfa) => dfa,
        Err(all) => {
            name_failing_patterns(
                pending,
                rules,
                errors,
                |expr| reverse_dfa(&[expr]).map(|_| ()),
                "uses syntax evidence spans cannot be found for",
                format!("the patterns' evidence spans cannot be found together: {all}"),
            );
            return None;
        }
    };
    Some(Database {
        db,
        ids: pending.iter().map(|p| (p.rule, p.slot)).collect(),
        starts,
        #[cfg(test)]
        exprs: pending.iter().map(|p| p.expr.clone()).collect(),
    })
}

/// After a database's patterns failed to build together: names the rule of every pattern
/// that fails on its own (`single`), or the pack when each one builds alone.
fn name_failing_patterns(
    pending: &[&PendingPattern],
    rules: &[Rule],
    errors: &mut Vec<PackError>,
    single: impl Fn(&str) -> Result<(), String>,
    fails: &str,
    together: String,
) {
    let before = errors.len();
    for p in pending {
        if let Err(e) = single(&p.expr) {
            errors.push(PackError::Rule {
                file: p.file.clone(),
                line: p.line,
                rule: rules[p.rule as usize].id.clone(),
                detail: format!("pattern {:?} {fails}: {e}", p.expr),
            });
        }
    }
    if errors.len() == before {
        errors.push(PackError::Rule {
            file: "(pack)".into(),
            line: 0,
            rule: "*".into(),
            detail: together,
        });
    }
}

struct PendingPattern {
    expr: String,
    rule: u32,
    slot: u8,
    file: String,
    line: usize,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Escapes a literal for a Hyperscan expression.
fn escape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if c.is_ascii_punctuation() || c == ' ' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn flags() -> CompileFlags {
    CompileFlags::CASELESS | CompileFlags::UTF8
}

impl CompiledPack {
    /// Parses and compiles a pack. Reports every problem it finds, by rule and line.
    pub fn compile(src: &PackSource) -> Result<CompiledPack, Vec<PackError>> {
        let t0 = Instant::now();
        let mut b = PackBuilder::default();
        let mut files = Vec::with_capacity(src.rule_files.len());
        for (file, text) in &src.rule_files {
            match toml::from_str::<RuleFile>(text) {
                Ok(parsed) => files.push((file.as_str(), text.as_str(), parsed)),
                Err(e) => b.errors.push(PackError::Syntax {
                    file: file.clone(),
                    detail: e.to_string(),
                }),
            }
        }
        let defines = Defines::collect(&files, &mut b.errors);
        for (file, text, parsed) in &files {
            let (file, text) = (*file, *text);
            for r in &parsed.rule {
                let line = line_of(text, r.id.span().start);
                let exprs = match defines.patterns(file, text, r.id.get_ref(), &r.patterns, 0) {
                    Ok(exprs) => exprs,
                    Err(e) => {
                        b.errors.push(e);
                        continue;
                    }
                };
                let rule = Rule {
                    id: r.id.get_ref().clone(),
                    category: r.category.clone(),
                    description: r.description.clone(),
                    score: r.score,
                    hint: r.hint,
                    shadow: r.shadow,
                    scan: r.scan,
                    slots: r.patterns.len().min(255) as u8,
                    examples: r.examples.clone(),
                    counter_examples: r.counter_examples.clone(),
                    origin: format!("{file}:{line}"),
                };
                b.add(file, line, rule, exprs);
            }
            for l in &parsed.list {
                let line = line_of(text, l.id.span().start);
                let Some(list_text) = src.list_files.get(&l.file) else {
                    b.errors.push(PackError::Rule {
                        file: file.to_owned(),
                        line,
                        rule: l.id.get_ref().clone(),
                        detail: format!("list file {:?} not found in the pack", l.file),
                    });
                    continue;
                };
                // Slot 0: any literal of the list; `requires` fill slots 1...
                let mut exprs: Vec<(String, usize, u8)> = list_text
                    .lines()
                    .map(str::trim)
                    .filter(|x| !x.is_empty() && !x.starts_with('#'))
                    .map(|lit| (escape_literal(lit), line, 0))
                    .collect();
                if exprs.is_empty() {
                    b.errors.push(PackError::Rule {
                        file: file.to_owned(),
                        line,
                        rule: l.id.get_ref().clone(),
                        detail: format!("list file {:?} is empty", l.file),
                    });
                    continue;
                }
                match defines.patterns(file, text, l.id.get_ref(), &l.requires, 1) {
                    Ok(requires) => exprs.extend(requires),
                    Err(e) => {
                        b.errors.push(e);
                        continue;
                    }
                }
                let rule = Rule {
                    id: l.id.get_ref().clone(),
                    category: l.category.clone(),
                    description: l.description.clone(),
                    score: l.score,
                    hint: l.hint,
                    shadow: l.shadow,
                    scan: l.scan,
                    slots: (1 + l.requires.len()).min(255) as u8,
                    examples: l.examples.clone(),
                    counter_examples: l.counter_examples.clone(),
                    origin: format!("{file}:{line}"),
                };
                b.add(file, line, rule, exprs);
            }
        }
        let PackBuilder {
            rules,
            pending,
            mut errors,
            ..
        } = b;
        if rules.is_empty() && errors.is_empty() {
            errors.push(PackError::Empty);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let canonical: Vec<&PendingPattern> = pending
            .iter()
            .filter(|p| rules[p.rule as usize].scan.canonical())
            .collect();
        let original: Vec<&PendingPattern> = pending
            .iter()
            .filter(|p| rules[p.rule as usize].scan.original())
            .collect();
        let canonical = build_database(&canonical, &rules, &mut errors);
        let original = build_database(&original, &rules, &mut errors);
        // A pattern of a `both` rule fails in both databases: report it once.
        errors.dedup();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CompiledPack {
            rules,
            canonical,
            original,
            hash: src.hash(),
            compile_time: t0.elapsed(),
            patterns: pending.len(),
        })
    }

    /// Size of the compiled database in bytes.
    pub fn database_size(&self) -> usize {
        [&self.canonical, &self.original]
            .iter()
            .filter_map(|d| d.as_ref())
            .map(|d| d.db.size().unwrap_or(0))
            .sum()
    }

    /// A scratch space large enough for both databases.
    ///
    /// # Panics
    /// Only if Hyperscan cannot allocate scratch (out of memory).
    pub(crate) fn alloc_scratch(&self) -> Scratch {
        let mut dbs = [&self.canonical, &self.original].into_iter().flatten();
        // `compile` never yields a pack without a database (it has at least one rule).
        let first = dbs.next().expect("a compiled pack has a database");
        let mut scratch = first
            .db
            .alloc_scratch()
            .expect("hyperscan scratch allocation (out of memory)");
        for d in dbs {
            d.db.realloc_scratch(&mut scratch)
                .expect("hyperscan scratch allocation (out of memory)");
        }
        scratch
    }

    /// Short version for `rules_version`.
    pub fn short_hash(&self) -> &str {
        &self.hash[..16.min(self.hash.len())]
    }
}

/// A bare `hs_scan` over a pack's database, with no rule logic: the baseline the
/// pattern operator is benchmarked against.
pub struct BareScanner {
    pack: std::sync::Arc<CompiledPack>,
    scratch: Scratch,
}

impl std::fmt::Debug for BareScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareScanner").finish_non_exhaustive()
    }
}

impl BareScanner {
    /// A scanner with its own scratch.
    ///
    /// # Panics
    /// Only if Hyperscan cannot allocate scratch (out of memory).
    pub fn new(pack: std::sync::Arc<CompiledPack>) -> Self {
        let scratch = pack.alloc_scratch();
        BareScanner { pack, scratch }
    }

    /// Number of matches of the (canonical) database's patterns in `text`.
    pub fn count(&mut self, text: &[u8]) -> usize {
        let mut n = 0;
        let Some(d) = self.pack.canonical.as_ref().or(self.pack.original.as_ref()) else {
            return 0;
        };
        let _ = d.db.scan(text, &self.scratch, |_, _, _, _| {
            n += 1;
            Matching::Continue
        });
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every evidence start found backwards is the start Hyperscan reports with
    /// `SOM_LEFTMOST`, for every match end of every pattern of the built-in pack, over
    /// the rule examples and the golden events, as written and in canonical form.
    #[test]
    fn evidence_starts_are_the_starts_hyperscan_reports() {
        let pack = CompiledPack::compile(&PackSource::builtin()).unwrap();
        let mut texts: Vec<String> = pack
            .rules
            .iter()
            .flat_map(|r| r.examples.iter().chain(&r.counter_examples).cloned())
            .collect();
        let golden = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../pipeline/tests/golden/events.jsonl"
        );
        // Events only: the file also holds lines that are not events, for the DLQ.
        for line in std::fs::read_to_string(golden).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            if let Some(text) = v["text"].as_str() {
                texts.push(text.to_owned());
            }
        }
        let canonical: Vec<String> = texts
            .iter()
            .map(|t| crate::normalize::normalize(t).as_str().to_owned())
            .collect();
        texts.extend(canonical);
        let mut compared = 0;
        for d in [&pack.canonical, &pack.original].into_iter().flatten() {
            let mut cache = d.start_cache();
            for (id, expr) in d.exprs.iter().enumerate() {
                let som: BlockDatabase = Pattern {
                    flags: flags() | CompileFlags::SOM_LEFTMOST,
                    ..hs_pattern(expr, 0)
                }
                .build()
                .unwrap();
                let scratch = som.alloc_scratch().unwrap();
                for text in &texts {
                    let mut found = Vec::new();
                    som.scan(text.as_str(), &scratch, |_, from, to, _| {
                        found.push((from as usize, to as usize));
                        Matching::Continue
                    })
                    .unwrap();
                    for (from, to) in found {
                        assert_eq!(
                            d.start(&mut cache, id as u32, text, to),
                            from,
                            "{expr:?} in {text:?} ending at {to}"
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 1000, "{compared} matches compared");
    }

    /// A pattern Hyperscan takes but the backwards search cannot is refused by rule and
    /// line, not served without evidence.
    #[test]
    fn a_pattern_without_a_backwards_form_is_refused_by_rule() {
        let mut src = PackSource::default();
        src.add(
            "x.toml",
            "[[rule]]\nid = \"x.hspace\"\ncategory = \"x\"\npatterns = ['a\\hb']\nscore = 10\nexamples = [\"a b\"]\n".into(),
        );
        let errors = CompiledPack::compile(&src).unwrap_err();
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(
            shown
                .iter()
                .any(|e| e.contains("x.hspace") && e.contains("evidence spans")),
            "{shown:?}"
        );
    }

    fn pack(files: &[(&str, &str)]) -> Result<CompiledPack, Vec<String>> {
        let mut src = PackSource::default();
        for (name, text) in files {
            src.add(name, (*text).to_owned());
        }
        src.list_files.insert("l.txt".into(), "bit.ly\n".into());
        CompiledPack::compile(&src).map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_definition_is_compiled_in_place_in_every_rule_and_list_that_names_it() {
        let compiled = pack(&[
            ("a.toml", "[[define]]\nname = \"brand\"\npattern = 'kbank|nhbank'\n\n[[rule]]\nid = \"a.host\"\ncategory = \"url\"\npatterns = ['({{brand}})-[a-z]+\\.xyz']\nscore = 10\nexamples = [\"kbank-safe.xyz\"]\n"),
            ("b.toml", "[[list]]\nid = \"b.lure\"\ncategory = \"url\"\nfile = \"l.txt\"\nrequires = ['{{brand}}']\nscore = 10\nexamples = [\"nhbank bit.ly/x\"]\n"),
        ])
        .unwrap();
        let mut scan = BareScanner::new(std::sync::Arc::new(compiled));
        assert_eq!(
            scan.count(b"kbank-safe.xyz"),
            2,
            "the rule and the list's brand"
        );
        assert_eq!(scan.count(b"nhbank-x.xyz"), 2);
        assert_eq!(scan.count(b"shinhan-safe.xyz"), 0);
    }

    #[test]
    fn unknown_twice_defined_and_nested_definitions_are_refused_by_name_and_line() {
        let rule = |p: &str| {
            format!("[[rule]]\nid = \"x.r\"\ncategory = \"x\"\npatterns = ['{p}']\nscore = 10\nexamples = [\"a\"]\n")
        };
        let errors = pack(&[("x.toml", &rule("{{nowhere}}"))]).unwrap_err();
        assert!(errors[0].starts_with("x.toml:4: rule x.r:"), "{errors:?}");
        assert!(
            errors[0].contains("no definition named \"nowhere\""),
            "{errors:?}"
        );

        let unclosed = pack(&[("x.toml", &rule("{{a"))]).unwrap_err();
        assert!(unclosed[0].contains("without"), "{unclosed:?}");

        let define =
            |name: &str, p: &str| format!("[[define]]\nname = \"{name}\"\npattern = '{p}'\n");
        let twice = pack(&[
            ("a.toml", &(define("d", "a") + &rule("{{d}}"))),
            ("b.toml", &define("d", "b")),
        ])
        .unwrap_err();
        assert_eq!(twice.len(), 1, "{twice:?}");
        assert!(
            twice[0].starts_with("b.toml:2: rule define d: defined twice (also at a.toml:2)"),
            "{twice:?}"
        );

        let nested = pack(&[("a.toml", &(define("d", "{{e}}") + &define("e", "a")))]).unwrap_err();
        assert!(nested[0].contains("cannot use another"), "{nested:?}");

        let named = pack(&[("a.toml", &define("D-1", "a"))]).unwrap_err();
        assert!(named[0].contains("lower-case"), "{named:?}");
    }
}
