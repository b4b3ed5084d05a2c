//! `spamflow-loadtest`: traffic synthesizer.
//!
//! `spamflow-loadtest synth --seed 7 --count 2000 > events.jsonl` writes SubmissionEvent
//! JSON lines (with a `synthetic_label` ground-truth field) in event-time order.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spamflow_loadtest::corpus::Corpus;
use spamflow_loadtest::synth::Synth;
use spamflow_loadtest::{chaos, overload, uci};

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
    /// Write a seeded labelled text corpus (JSON lines for `spamflow train`) to stdout.
    Corpus {
        /// Seed; the same seed gives the same lines.
        #[arg(long, default_value_t = 11)]
        seed: u64,
        /// Number of lines.
        #[arg(long, default_value_t = 60_000)]
        count: u64,
        /// Share of English lines (0 by default: the UCI training half is the English
        /// source; the synthetic English templates made its held-out figures worse).
        #[arg(long, default_value_t = 0.0)]
        english_share: f64,
    },
    /// Check the UCI SMS Spam Collection and write one half of it as labelled JSON lines.
    Uci {
        /// The collection file (`SMSSpamCollection`).
        #[arg(long = "in")]
        input: std::path::PathBuf,
        /// `train` (first SHA-256 hex digit of the text 0-7) or `eval` (8-f).
        #[arg(long)]
        half: String,
    },
    /// The fault harness: spamflow instances under random SIGKILLs, broker restarts and
    /// scaling on a broker of its own, then a read_committed verifier and a comparison
    /// with an uninterrupted run (docs/reliability.md). Exit code 1 when anything was lost,
    /// duplicated or different.
    Chaos {
        /// Valid events to seed.
        #[arg(long, default_value_t = 60_000)]
        events: usize,
        /// One poison record (must reach the DLQ) after every this many events; 0: none.
        #[arg(long, default_value_t = 500)]
        poison_every: usize,
        /// Partitions of every topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// SIGKILLs of pipeline instances (at least).
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// Broker restarts (alternately SIGTERM and SIGKILL).
        #[arg(long, default_value_t = 3)]
        broker_restarts: usize,
        /// Do not scale 1 -> 2 -> 3 -> 1 instances.
        #[arg(long)]
        no_scale: bool,
        /// Seed of the events and of the fault schedule.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        harness: HarnessArgs,
    },
    /// The overload run: one instance fed at a multiple of its calibrated rate for a
    /// while, then drained, on a broker of its own (docs/reliability.md). Exit code 1 when
    /// anything was lost or duplicated, or memory went over the bound.
    Overload {
        /// Events of the calibration backlog.
        #[arg(long, default_value_t = 1_000_000)]
        calibration_events: usize,
        /// Input rate as a multiple of the calibrated rate.
        #[arg(long, default_value_t = 2.0)]
        factor: f64,
        /// Seconds of overload.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// A malformed record after every this many events (and an oversized one after
        /// ten times as many); 0: none.
        #[arg(long, default_value_t = 2_000)]
        poison_every: usize,
        /// Peak resident memory allowed to the instance, MiB.
        #[arg(long, default_value_t = 1_024)]
        rss_bound_mib: u64,
        /// Partitions of every topic.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
        /// Seed of the events.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[command(flatten)]
        harness: HarnessArgs,
    },
}

impl HarnessArgs {
    fn into_config(self) -> chaos::HarnessConfig {
        chaos::HarnessConfig {
            spamflow: self.spamflow.unwrap_or_else(chaos::default_spamflow),
            kafka_script: self.kafka_script,
            port: self.port,
            work_dir: self.work_dir,
            drain_timeout: std::time::Duration::from_secs(self.drain_timeout_secs),
        }
    }
}

/// What the harnesses that run a broker of their own share.
#[derive(clap::Args)]
struct HarnessArgs {
    /// The spamflow binary; default: next to this one.
    #[arg(long)]
    spamflow: Option<std::path::PathBuf>,
    /// The broker script.
    #[arg(long, default_value = "scripts/kafka.sh")]
    kafka_script: std::path::PathBuf,
    /// Port of the run's broker (the controller takes the next one).
    #[arg(long, default_value_t = 39192)]
    port: u16,
    /// Keep logs and broker data here (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<std::path::PathBuf>,
    /// Seconds to wait for the last outputs once the input is in.
    #[arg(long, default_value_t = 600)]
    drain_timeout_secs: u64,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Overload {
            calibration_events,
            factor,
            seconds,
            poison_every,
            rss_bound_mib,
            partitions,
            seed,
            harness: h,
        } => {
            let cfg = overload::OverloadConfig {
                calibration_events,
                factor,
                seconds,
                poison_every,
                rss_bound_mib,
                partitions,
                seed,
                harness: h.into_config(),
            };
            let report = overload::run(&cfg, |line| eprintln!("overload: {line}"))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.passed() {
                std::process::exit(1);
            }
        }
        Cmd::Chaos {
            events,
            poison_every,
            partitions,
            kills,
            broker_restarts,
            no_scale,
            seed,
            harness: h,
        } => {
            let cfg = chaos::ChaosConfig {
                events,
                poison_every,
                partitions,
                kills,
                broker_restarts,
                scale: !no_scale,
                seed,
                harness: h.into_config(),
            };
            let report = chaos::run(&cfg, |line| eprintln!("chaos: {line}"))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if !report.passed() {
                std::process::exit(1);
            }
        }
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
        Cmd::Corpus {
            seed,
            count,
            english_share,
        } => {
            anyhow::ensure!(
                (0.0..=1.0).contains(&english_share),
                "--english-share {english_share} is outside 0..=1"
            );
            let mut corpus = Corpus::new(seed);
            corpus.english_share = english_share;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for _ in 0..count {
                serde_json::to_writer(&mut out, &corpus.next_line())?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Cmd::Uci { input, half } => {
            let want = match half.as_str() {
                "train" => uci::Half::Train,
                "eval" => uci::Half::Eval,
                other => anyhow::bail!("--half {other:?}: use train or eval"),
            };
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            uci::check(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            let rows =
                uci::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            let source = match want {
                uci::Half::Train => "uci-sms-train",
                uci::Half::Eval => "uci-sms-eval",
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for (spam, text) in rows.into_iter().filter(|(_, t)| uci::half_of(t) == want) {
                let mut line = serde_json::json!({"text": text, "label": if spam { "spam" } else { "ham" }, "language": "en", "source": source});
                if spam {
                    line["category"] = "en_spam".into();
                }
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
