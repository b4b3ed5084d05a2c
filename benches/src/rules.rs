//! `spamflow-bench-rules`: compile and swap time of a large rule pack, and whether
//! processing pauses during a reload.
//!
//! Generates a pack of N rules (default 10,000: mixes of literals, alternations and
//! bounded repeats, Korean and Latin), compiles it (timed), then runs a worker thread
//! that processes the corpus continuously while the main thread compiles the pack again
//! and swaps it in. Reports the compile time, the swap time, how many events the worker
//! processed while the compile ran, and the longest gap between two consecutive events
//! against the longest gap in a window without a reload (measured in the same run).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use spamflow_operators::pattern::{CompiledPack, PackSource, PatternConfig, PatternOperator};
use spamflow_operators::{ChainBuilder, EventCtx, PolicyConfig};
use spamflow_schemas::decode_submission;

#[derive(Parser)]
struct Args {
    /// Rules in the generated pack.
    #[arg(long, default_value_t = 10_000)]
    rules: usize,
}

fn pack_source(n: usize, salt: &str) -> PackSource {
    let mut toml = String::new();
    let syll = [
        "가", "나", "다", "라", "마", "바", "사", "아", "자", "차", "카", "타", "파", "하",
    ];
    for i in 0..n {
        let a = syll[i % syll.len()];
        let b = syll[(i / syll.len()) % syll.len()];
        let c = syll[(i / 196) % syll.len()];
        let word = format!("{a}{b}{c}{i}");
        let pattern = match i % 4 {
            0 => word.to_string(),
            1 => format!("{word}|kw{i}{salt}"),
            2 => format!("{word}.{{0,20}}(입금|가입)"),
            _ => format!("(spam|scam){i}[a-z]{{2,4}}"),
        };
        let example = match i % 4 {
            2 => format!("{word} 오늘 입금"),
            3 => format!("scam{i}abc"),
            _ => word.clone(),
        };
        toml.push_str(&format!("[[rule]]\nid = \"gen.r{i}\"\ncategory = \"gen\"\nscore = 10\npatterns = ['{pattern}']\nexamples = [\"{example}\"]\n\n"));
    }
    let mut src = PackSource::default();
    src.rule_files.push(("generated.toml".into(), toml));
    src
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let src = pack_source(args.rules, "a");
    let t0 = Instant::now();
    let pack = CompiledPack::compile(&src).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    println!(
        "pack of {} rules ({} patterns): compiled in {:.2} s, database {} bytes",
        pack.rules.len(),
        pack.patterns,
        t0.elapsed().as_secs_f64(),
        pack.database_size()
    );

    let op = PatternOperator::new(Arc::new(pack), PatternConfig::default());
    let builder =
        ChainBuilder::new(PolicyConfig::default().build()).stateless(Arc::new(op.clone()));
    let mut synth =
        spamflow_loadtest::synth::Synth::new(9, "2026-03-01T09:00:00Z".parse()?, 1000.0);
    let events: Vec<_> = (0..2048)
        .map(|_| decode_submission(&serde_json::to_vec(&synth.next_event().0).unwrap()).unwrap())
        .collect();

    let running = Arc::new(AtomicBool::new(true));
    let processed = Arc::new(AtomicU64::new(0));
    let max_gap_us = Arc::new(AtomicU64::new(0));
    let worker = {
        let (running, processed, max_gap_us) =
            (running.clone(), processed.clone(), max_gap_us.clone());
        std::thread::spawn(move || {
            let mut chain = builder.build();
            let mut last = Instant::now();
            let mut i = 0;
            while running.load(Relaxed) {
                let ev = &events[i % events.len()];
                let sender = chain.sender(&ev.sender);
                let v = chain.process(
                    &EventCtx {
                        event: ev,
                        sender: &sender,
                        partition: 0,
                        event_time_ms: 0,
                        counted: false,
                    },
                    ev.submitted_at,
                );
                std::hint::black_box(v);
                let now = Instant::now();
                max_gap_us.fetch_max((now - last).as_micros() as u64, Relaxed);
                last = now;
                processed.fetch_add(1, Relaxed);
                i += 1;
            }
        })
    };
    // Baseline window without a reload, same length as the compile.
    let wait = |d: Duration| {
        let end = Instant::now() + d;
        while Instant::now() < end {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    };
    wait(Duration::from_millis(200));
    max_gap_us.store(0, Relaxed);
    let p0 = processed.load(Relaxed);
    let t_compile = Instant::now();
    let new_src = pack_source(args.rules, "b");
    let new_pack = CompiledPack::compile(&new_src).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let compile = t_compile.elapsed();
    let during = processed.load(Relaxed) - p0;
    let gap_during_compile = max_gap_us.swap(0, Relaxed);
    let t_swap = Instant::now();
    op.swap(Arc::new(new_pack));
    let swap = t_swap.elapsed();
    wait(Duration::from_millis(300));
    let gap_after_swap = max_gap_us.swap(0, Relaxed);
    wait(compile);
    let baseline_events = processed.load(Relaxed);
    let gap_baseline = max_gap_us.load(Relaxed);
    running.store(false, Relaxed);
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("worker panicked"))?;
    let _ = baseline_events;
    println!("reload: compile aside {:.2} s while the worker processed {} events (longest gap between events {:.1} ms)", compile.as_secs_f64(), during, gap_during_compile as f64 / 1000.0);
    println!("swap: {:.1} us; first events on the new pack: longest gap {:.1} ms (worker allocates new scratch)", swap.as_secs_f64() * 1e6, gap_after_swap as f64 / 1000.0);
    println!(
        "baseline window without reload: longest gap {:.1} ms",
        gap_baseline as f64 / 1000.0
    );
    println!("rules_version now {}", &op.current().hash[..16]);
    Ok(())
}
