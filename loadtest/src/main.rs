//! `spamflow-loadtest`: traffic synthesizer.
//!
//! `spamflow-loadtest synth --seed 7 --count 2000 > events.jsonl` writes SubmissionEvent
//! JSON lines (with a `synthetic_label` ground-truth field) in event-time order.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spamflow_loadtest::synth::Synth;

#[derive(Parser)]
#[command(
    name = "spamflow-loadtest",
    version,
    about = "spamflow traffic synthesizer"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write seeded synthetic SubmissionEvent JSON lines to stdout.
    Synth {
        /// Seed; the same seed gives the same events.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Number of events.
        #[arg(long, default_value_t = 2_000)]
        count: u64,
        /// Event time of the first event (RFC 3339).
        #[arg(long, default_value = "2026-03-01T09:00:00Z")]
        start: String,
        /// Events per second of event time.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// Also write the registration records of the legitimate bulk senders here.
        #[arg(long)]
        registry: Option<std::path::PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Synth {
            seed,
            count,
            start,
            rate,
            registry,
        } => {
            let start = start
                .parse()
                .with_context(|| format!("--start {start:?} is not an RFC 3339 timestamp"))?;
            let mut synth = Synth::new(seed, start, rate);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for _ in 0..count {
                let (doc, _) = synth.next_event();
                serde_json::to_writer(&mut out, &doc)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            if let Some(path) = registry {
                let lines: Vec<String> = synth.registry().iter().map(|r| r.to_string()).collect();
                std::fs::write(&path, lines.join("\n") + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
    }
    Ok(())
}
