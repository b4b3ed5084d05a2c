//! The classifier per message on 90-character messages (the yardstick) from the
//! seeded corpus generator, against the pattern stage over the same texts in the same run:
//! - `pattern_stage`: the pattern operator's matcher (normalize, two Hyperscan scans,
//!   rule logic, signals);
//! - `classifier`: the classifier worker with the built-in model, given the canonical text
//!   (the chain normalizes once per event for the pattern operator and the classifier):
//!   features, weights, category and evidence for spam-looking text, the signal;
//! - `normalize_only`: that shared normalization.

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
    let model = classifier::builtin().unwrap();
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

    let canonical: Vec<Normalized> = texts
        .iter()
        .map(|t| spamflow_operators::normalize::normalize(t))
        .collect();
    let mut worker = ClassifierWorker::new();
    g.bench_function("classifier", |b| {
        b.iter(|| {
            for (t, n) in texts.iter().zip(&canonical) {
                signals.clear();
                worker.inspect(&model, n, t, &mut signals);
            }
        })
    });

    let mut norm = Normalized::new();
    g.bench_function("normalize_only", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|t| {
                    norm.normalize(t);
                    norm.as_str().len()
                })
                .sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
