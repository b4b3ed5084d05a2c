//! `spamflow-loadtest`: traffic synthesizer.
//!
//! `spamflow-loadtest synth --seed 7 --count 2000 > events.jsonl` writes SubmissionEvent
//! JSON lines (with a `synthetic_label` ground-truth field) in event-time order.

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spamflow_loadtest::corpus::Corpus;
use spamflow_loadtest::synth::Synth;
use spamflow_loadtest::{chaos, nus, overload, replay, uci};

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
        /// Write a recording for `replay` and `run` to this file instead of JSON lines
        /// (keyed by the normalized sender, timestamped with submitted_at).
        #[arg(long)]
        recording: Option<std::path::PathBuf>,
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
    /// Check the NUS SMS Corpus (English XML) and write its messages as labelled ham JSON
    /// lines: one per text, none that is or nearly is a row of the UCI collection (either
    /// half). What is left out is counted on stderr.
    Nus {
        /// The corpus file (`smsCorpus_en_2015.03.09_all.xml`).
        #[arg(long = "in")]
        input: std::path::PathBuf,
        /// The UCI SMS Spam Collection, whose rows are kept out.
        #[arg(long)]
        uci: std::path::PathBuf,
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
        /// One event that makes the pipeline panic (must reach the DLQ as internal_error)
        /// after every this many; 0: none. Needs a debug build of spamflow (`--spamflow
        /// target/debug/spamflow`): release builds have no fault injector.
        #[arg(long, default_value_t = 0)]
        panic_every: usize,
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
    /// Capture a topic to a compressed file (keys, values, headers, timestamps),
    /// read_committed, without joining a consumer group (docs/loadtest.md).
    Record {
        /// Bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// Topic to capture.
        #[arg(long)]
        topic: String,
        /// Output file.
        #[arg(long)]
        out: std::path::PathBuf,
        /// First record time (RFC 3339); default: the beginning of the topic.
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Last record time (RFC 3339); default: the end of the topic when recording starts.
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// At most this many records.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Send a recording to a topic at its recorded pace scaled by --speed, or at a fixed
    /// --rate; message ids and submitted_at are rewritten, keys kept.
    Replay {
        #[command(flatten)]
        replay: ReplayCli,
    },
    /// Replay and read the verdicts at the same time: every verdict matched to its event,
    /// latency from submitted_at to verdict visible (HdrHistogram), a line per second, a
    /// summary; exit code 1 when an event got no verdict (docs/loadtest.md).
    Run {
        #[command(flatten)]
        replay: ReplayCli,
        /// The verdict topic.
        #[arg(long, default_value = "sms.verdicts")]
        verdicts: String,
        /// The pipeline's consumer group (kafka.group_id): its lag on the input topic,
        /// read from its committed offsets every second; empty: not read.
        #[arg(long, default_value = "spamflow")]
        group: String,
        /// Stop sending after this long (10s, 5m); needed with --loop.
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Wait this long at most for the last verdicts.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        drain: std::time::Duration,
        /// Leave the events sent in this first part out of the run's percentiles (they
        /// are still matched and shown per second).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        warmup: std::time::Duration,
        /// Step mode: first rate (records/s); the recording loops.
        #[arg(long, requires = "step_by")]
        step_from: Option<u64>,
        /// Step mode: rate added at each step.
        #[arg(long)]
        step_by: Option<u64>,
        /// Step mode: length of a step.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
        step_every: std::time::Duration,
        /// Step mode: at most this many steps.
        #[arg(long, default_value_t = 20)]
        step_max: u32,
        /// Step mode: the p99 a step must stay under, ms.
        #[arg(long, default_value_t = 20.0)]
        target_p99_ms: f64,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Draw throughput and latency percentiles over time to this file: .svg, or .png
        /// (its labels need a font: Debian's fonts-dejavu-core).
        #[arg(long)]
        plot: Option<std::path::PathBuf>,
    },
    /// A bare consume -> produce of the same bytes (at-least-once), the baseline for
    /// `run`: start it in place of the pipeline and point `run --verdicts` at its output.
    Passthrough {
        /// Bootstrap servers.
        #[arg(long)]
        brokers: String,
        /// Input topic.
        #[arg(long, default_value = "sms.submissions")]
        from: String,
        /// Output topic.
        #[arg(long)]
        to: String,
        /// Consumer group.
        #[arg(long, default_value = "spamflow-passthrough")]
        group: String,
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
        /// An event that makes the pipeline panic after every this many events (each must
        /// reach the DLQ and get no verdict); 0: none. Needs a debug build of spamflow.
        #[arg(long, default_value_t = 0)]
        panic_every: usize,
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

/// What `replay` and `run` send.
#[derive(clap::Args)]
struct ReplayCli {
    /// Bootstrap servers.
    #[arg(long)]
    brokers: String,
    /// The recording.
    #[arg(long = "in")]
    input: std::path::PathBuf,
    /// Topic to send to.
    #[arg(long, default_value = "sms.submissions")]
    topic: String,
    /// Recorded pace times this (1x, 10x) or max.
    #[arg(long, default_value = "1x", conflicts_with = "rate")]
    speed: replay::Pace,
    /// A fixed rate, records per second, instead of the recorded pace.
    #[arg(long)]
    rate: Option<u32>,
    /// Start again at the end of the recording.
    #[arg(long = "loop")]
    looped: bool,
}

impl ReplayCli {
    fn into_args(self) -> replay::ReplayArgs {
        replay::ReplayArgs {
            brokers: self.brokers,
            input: self.input,
            topic: self.topic,
            pace: self.rate.map_or(self.speed, replay::Pace::Rate),
            looped: self.looped,
            tag: format!("r{}", chrono::Utc::now().timestamp_millis()),
        }
    }
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
            panic_every,
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
                panic_every,
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
        Cmd::Record {
            brokers,
            topic,
            out,
            from,
            to,
            count,
        } => {
            let n = replay::record(&replay::RecordArgs {
                brokers,
                topic,
                out: out.clone(),
                from,
                to,
                count,
                timeout: std::time::Duration::from_secs(30),
            })?;
            eprintln!("recorded {n} record(s) to {}", out.display());
        }
        Cmd::Passthrough {
            brokers,
            from,
            to,
            group,
        } => {
            spamflow_loadtest::kafka::passthrough(&brokers, &from, &to, &group, |_| false)?;
        }
        Cmd::Replay { replay: r } => {
            let stop = std::sync::atomic::AtomicBool::new(false);
            let n = replay::replay(&r.into_args(), &stop)?;
            eprintln!("replayed {n} record(s)");
        }
        Cmd::Run {
            replay: r,
            verdicts,
            group,
            duration,
            drain,
            warmup,
            step_from,
            step_by,
            step_every,
            step_max,
            target_p99_ms,
            json,
            plot,
        } => {
            // A bad plot name fails now, not after the run.
            if let Some(path) = &plot {
                replay::check_plot_path(path)?;
            }
            let args = replay::RunArgs {
                replay: r.into_args(),
                verdicts,
                group: (!group.is_empty()).then_some(group),
                step: step_from.map(|from| replay::Step {
                    from,
                    by: step_by.unwrap_or(0),
                    every: step_every,
                    target_p99_ms,
                    max_steps: step_max,
                }),
                duration,
                drain,
                warmup,
                live: true,
            };
            let stop = std::sync::atomic::AtomicBool::new(false);
            let report = replay::run(&args, &stop)?;
            if let Some(path) = plot {
                replay::write_plot(&report, &path)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", replay::summary(&report));
            }
            if report.missing > 0 {
                eprintln!("{} event(s) got no verdict", report.missing);
                std::process::exit(1);
            }
        }
        Cmd::Chaos {
            events,
            poison_every,
            panic_every,
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
                panic_every,
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
            recording,
        } => {
            let start = start
                .parse()
                .with_context(|| format!("--start {start:?} is not an RFC 3339 timestamp"))?;
            let mut synth = Synth::new(seed, start, rate);
            if let Some(path) = recording {
                // A recording, as `record` would have captured the events from a topic.
                let mut w = replay::RecordWriter::create(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                for _ in 0..count {
                    let (doc, _) = synth.next_event();
                    w.write(&replay::synthetic(&doc)?)?;
                }
                w.finish()?.flush()?;
            } else {
                let stdout = std::io::stdout();
                let mut out = std::io::BufWriter::new(stdout.lock());
                for _ in 0..count {
                    let (doc, _) = synth.next_event();
                    serde_json::to_writer(&mut out, &doc)?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
            }
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
                serde_json::to_writer(&mut out, &uci::labelled_line(spam, &text, source))?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
        Cmd::Nus {
            input,
            uci: uci_path,
        } => {
            let bytes =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            nus::check(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            let xml = std::str::from_utf8(&bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            let messages =
                nus::messages(xml).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            let uci_bytes = std::fs::read(&uci_path)
                .with_context(|| format!("reading {}", uci_path.display()))?;
            uci::check(&uci_bytes).map_err(|e| anyhow::anyhow!("{}: {e}", uci_path.display()))?;
            let rows = uci::parse(&uci_bytes)
                .map_err(|e| anyhow::anyhow!("{}: {e}", uci_path.display()))?;
            let overlap = nus::UciOverlap::new(rows.iter().map(|(_, t)| t.as_str()));
            let total = messages.len();
            let (kept, dropped) = nus::ham_lines(messages, &overlap);
            eprintln!(
                "nus: {total} messages, {} kept; left out: {} empty, {} repeated, {} UCI rows or near copies",
                kept.len(),
                dropped.empty,
                dropped.repeated,
                dropped.uci
            );
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            for text in kept {
                let line = serde_json::json!({"text": text, "label": "ham", "language": "en", "source": "nus-sms"});
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
    }
    Ok(())
}
