//! Pattern operator per message on a seeded corpus (mostly 40-200 bytes, 10% LMS up to
//! 2,000 bytes) with the default pack (or the pack in the directory `SPAMFLOW_BENCH_RULES`,
//! to measure a change to a pack), against, in the same run:
//! - a bare `hs_scan` of the same database over the original text,
//! - the normalization alone,
//! - the bare baseline of the operator's work: normalize + bare scan of the original and
//!   of the canonical form (no rule logic).

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use spamflow_operators::normalize::Normalized;
use spamflow_operators::pattern::{BareScanner, CompiledPack, Matcher, PackSource, PatternConfig};

/// The benchmark corpus: seeded, realistic lengths.
fn corpus() -> Vec<String> {
    let mut synth =
        spamflow_loadtest::synth::Synth::new(5, "2026-03-01T09:00:00Z".parse().unwrap(), 1000.0);
    let mut out = Vec::new();
    for i in 0..4096 {
        let mut text = synth.next_event().0["text"].as_str().unwrap().to_owned();
        if i % 10 == 0 {
            while text.len() < 1_500 {
                text.push(' ');
                text.push_str(synth.next_event().0["text"].as_str().unwrap());
            }
        }
        out.push(text);
    }
    out
}

fn pattern(c: &mut Criterion) {
    let texts = corpus();
    let bytes: usize = texts.iter().map(String::len).sum();
    let source = match std::env::var_os("SPAMFLOW_BENCH_RULES") {
        Some(dir) => PackSource::from_dir(dir.as_ref()).unwrap(),
        None => PackSource::builtin(),
    };
    let pack = Arc::new(CompiledPack::compile(&source).unwrap());
    let mut g = c.benchmark_group("pattern");
    g.throughput(Throughput::Elements(texts.len() as u64));
    eprintln!(
        "corpus: {} messages, {} bytes, mean {} bytes",
        texts.len(),
        bytes,
        bytes / texts.len()
    );

    let mut bare = BareScanner::new(pack.clone());
    g.bench_function("bare_hs_scan_original", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|t| bare.count(t.as_bytes()))
                .sum::<usize>()
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

    g.bench_function("bare_baseline_normalize_and_two_scans", |b| {
        b.iter(|| {
            texts
                .iter()
                .map(|t| {
                    norm.normalize(t);
                    bare.count(t.as_bytes()) + bare.count(norm.as_str().as_bytes())
                })
                .sum::<usize>()
        })
    });

    let mut m = Matcher::new(pack.clone(), PatternConfig::default());
    let mut out = Vec::with_capacity(16);
    g.bench_function("operator", |b| {
        b.iter(|| {
            let mut n = 0;
            for t in &texts {
                out.clear();
                m.inspect(t, &mut out);
                n += out.len();
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, pattern);
criterion_main!(benches);
