//! The classifier per message on 90-character messages (the yardstick) from the
//! seeded corpus generator, against the pattern stage over the same texts in the same run:
//! - `pattern_stage`: the pattern operator's matcher (normalize, two Hyperscan scans,
//!   rule logic, signals);
//! - `normalize_then_classifier`: the shared normalization (the chain makes it once per
//!   event for the pattern operator and the classifier), then the classifier worker with
//!   the built-in model (or `SPAMFLOW_BENCH_MODEL`): features, weights, category and
//!   evidence for spam-looking text, the signal;
//! - `normalize_only`: that shared normalization; the classifier's cost is the difference.
//!
//! The last two run over all texts, the ham-looking and the spam-looking ones (the model's
//! probability below / at least 0.5), as groups `classifier_all`, `classifier_ham_looking`
//! and `classifier_spam_looking`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spamflow_operators::classifier::{self, ClassifierWorker};
use spamflow_operators::normalize::Normalized;
use spamflow_operators::pattern::{CompiledPack, Matcher, PackSource, PatternConfig};

/// 4,096 texts of 80-100 characters (spam and ham alike), padded or cut from the corpus.
fn corpus() -> Vec<String> {
    let mut gen = spamflow_loadtest::corpus::Corpus::new(5);
    let mut out = Vec::new();
    while out.len() < 4096 {
        let mut text = gen.next_line()["text"].as_str().unwrap().to_owned();
        while text.chars().count() < 80 {
            text.push(' ');
            text.push_str(gen.next_line()["text"].as_str().unwrap());
        }
        out.push(text.chars().take(90).collect());
    }
    out
}

fn bench(c: &mut Criterion) {
    let texts = corpus();
    // SPAMFLOW_BENCH_MODEL: another model file to measure (a candidate's sizes and
    // features); the built-in model otherwise.
    let model = match std::env::var_os("SPAMFLOW_BENCH_MODEL") {
        Some(p) => classifier::Model::from_bytes(&std::fs::read(&p).unwrap(), "bench").unwrap(),
        None => classifier::builtin().unwrap(),
    };
    let pack = Arc::new(CompiledPack::compile(&PackSource::builtin()).unwrap());
    let mut g = c.benchmark_group("classifier");
    g.throughput(Throughput::Elements(texts.len() as u64));

    let mut matcher = Matcher::new(pack, PatternConfig::default());
    let mut signals = Vec::with_capacity(16);
    g.bench_function("pattern_stage", |b| {
        b.iter(|| {
            for t in &texts {
                signals.clear();
                matcher.inspect(t, &mut signals);
            }
        })
    });

    // As in the chain: each text normalized just before the classifier reads it (a
    // canonical form made long before would be read cold from memory). The classifier's
    // own cost is `normalize_then_classifier` minus `normalize_only`, over all texts and
    // over the texts the model finds ham-looking (features and spam head only) or
    // spam-looking (also the category head and evidence).
    let mut worker = ClassifierWorker::new();
    let (spammy, hammy): (Vec<String>, Vec<String>) = texts
        .iter()
        .cloned()
        .partition(|t| worker.score(&model, t).probability >= classifier::REASON_MIN_PROBABILITY);
    eprintln!(
        "{} ham-looking and {} spam-looking texts",
        hammy.len(),
        spammy.len()
    );
    g.finish();
    for (name, set) in [
        ("all", &texts),
        ("ham_looking", &hammy),
        ("spam_looking", &spammy),
    ] {
        let mut g = c.benchmark_group(format!("classifier_{name}"));
        g.throughput(Throughput::Elements(set.len() as u64));
        let mut canonical = Normalized::new();
        g.bench_function("normalize_then_classifier", |b| {
            b.iter(|| {
                for t in set.iter() {
                    signals.clear();
                    canonical.normalize(t);
                    worker.inspect(&model, &canonical, t, &mut signals);
                }
            })
        });
        g.bench_function("normalize_only", |b| {
            b.iter(|| {
                set.iter()
                    .map(|t| {
                        canonical.normalize(t);
                        canonical.as_str().len()
                    })
                    .sum::<usize>()
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
