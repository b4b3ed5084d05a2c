//! `spamflow`: the pipeline binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde_json::json;
use spamflow_operators::classifier::train::{Metrics as EvalMetrics, TrainConfig};
use spamflow_operators::classifier::{Model, ModelHandle};
use spamflow_pipeline::config::{config_path, Config, Guarantee};
use spamflow_pipeline::embedded::{self, EmbeddedOptions};
use spamflow_pipeline::metrics::Metrics;
use spamflow_pipeline::runtime::{self, Stop};
use spamflow_pipeline::{admin, backtest, registry};

#[derive(Parser)]
#[command(
    name = "spamflow",
    version,
    about = "Spam-filtering stream pipeline for mobile carriers"
)]
struct Cli {
    /// TOML configuration file (also SPAMFLOW_CONFIG). Layers: defaults < file < SPAMFLOW_* env < flags.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log format, `text` or `json` (log.format).
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the pipeline. With no brokers configured, on the embedded broker with replayed sample traffic.
    Run(RunArgs),
    /// Run the operator chain and policy over SubmissionEvent JSON lines, without Kafka.
    Backtest(BacktestArgs),
    /// Publish sender-number registrations to the registry topic.
    Registry {
        #[command(subcommand)]
        cmd: RegistryCmd,
    },
    /// Rule-pack tools.
    Rules {
        #[command(subcommand)]
        cmd: RulesCmd,
    },
    /// Print the effective configuration (after all layers) as JSON, or the problems with it.
    Config,
    /// Train the classifier and fit the policy on labelled JSON lines; print held-out metrics.
    Train {
        /// Labelled JSON lines ({"text", "label": "spam"|"ham", "category"?, "language"?}); repeatable.
        #[arg(long = "data", required = true)]
        data: Vec<PathBuf>,
        /// Where to write the model file.
        #[arg(long)]
        out: PathBuf,
        /// Shuffle seed (same data and seed: same model bytes).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Passes over the data.
        #[arg(long, default_value_t = TrainConfig::default().epochs)]
        epochs: u32,
        /// Spam heads trained on different shuffles and averaged.
        #[arg(long, default_value_t = TrainConfig::default().bag)]
        bag: u32,
        /// Largest share of held-out-fold ham the block threshold may block (text
        /// without Hangul).
        #[arg(long, default_value_t = TrainConfig::default().ham_block_budget)]
        ham_block_budget: f64,
        /// The same for text with Hangul.
        #[arg(long, default_value_t = TrainConfig::default().korean_ham_block_budget)]
        korean_ham_block_budget: f64,
        /// Examples of this source (the `source` field, or the file name) train the
        /// classifier but not the policy; repeatable.
        #[arg(long = "policy-exclude-source")]
        policy_exclude_sources: Vec<String>,
        /// log2 of the spam head's hash slots.
        #[arg(long, default_value_t = TrainConfig::default().buckets_log2)]
        buckets_log2: u8,
        /// log2 of the category head's hash slots.
        #[arg(long, default_value_t = TrainConfig::default().category_buckets_log2)]
        category_buckets_log2: u8,
        /// Longest character n-gram (2..=6).
        #[arg(long, default_value_t = TrainConfig::default().max_ngram)]
        max_ngram: usize,
        /// Longest character n-gram of text with Hangul (2..=6).
        #[arg(long, default_value_t = TrainConfig::default().hangul_max_ngram)]
        hangul_max_ngram: usize,
        /// Score text with Hangul by windows of this many bytes of the canonical text as
        /// well as the whole text, and fit the policy on the largest (docs/classifier.md);
        /// 0 scores the whole text only.
        #[arg(long, default_value_t = TrainConfig::default().hangul_window_bytes.unwrap_or(0))]
        hangul_window_bytes: usize,
        /// Each of a text's n features weighs 1/sqrt(max(n, this)), so that short text
        /// counts for less (1..=1000; docs/classifier.md).
        #[arg(long, default_value_t = TrainConfig::default().min_features)]
        min_features: usize,
        /// AdaGrad learning rate.
        #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
        learning_rate: f32,
        /// L2 penalty per update.
        #[arg(long, default_value_t = TrainConfig::default().l2)]
        l2: f32,
        /// Print the held-out metrics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate a model (and its fitted policy, with the rule pack) on labelled JSON lines.
    Eval {
        /// Model file; default: classifier.model or the built-in model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Labelled JSON lines; repeatable.
        #[arg(long = "data", required = true)]
        data: Vec<PathBuf>,
        /// Print the metrics as JSON.
        #[arg(long)]
        json: bool,
        /// Write every misjudged example (with its verdict) here as JSON lines.
        #[arg(long)]
        errors: Option<PathBuf>,
    },
    /// Publish subscribers' spam reports (SpamReport v1) to topics.reports, from a file of
    /// JSON lines or one from the options; every report is checked first.
    Report(ReportCli),
    /// Read an output topic (verdicts, block, alerts, DLQ) with filters, read-only: no
    /// consumer group, no commits, read_committed (docs/operations.md, "The tap").
    Tap(TapCli),
    /// Print spam statistics per relay operator (and reseller) by hour, day or month, from
    /// topics.operator_stats (docs/stats.md).
    Stats(StatsCli),
    /// Suspended sender numbers, for staff: list, show a number's trail, suspend, release,
    /// and the numbers subscribers' reports propose (docs/reports.md).
    Numbers {
        #[command(subcommand)]
        cmd: NumbersCmd,
    },
    /// Contents blocked because subscribers reported them, for staff: list them, lift a
    /// block by hand (docs/reports.md).
    Reported {
        #[command(subcommand)]
        cmd: ReportedCmd,
    },
    /// Create every spamflow topic on the configured brokers (existing topics are kept).
    CreateTopics {
        /// Bootstrap servers (kafka.brokers).
        #[arg(long)]
        brokers: Option<String>,
        /// Partitions of the input, output and changelog topics.
        #[arg(long, default_value_t = 4)]
        partitions: i32,
    },
}

#[derive(clap::Args)]
struct ReportCli {
    /// Bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// SpamReport v1 JSON lines; nothing is published unless every line is valid.
    #[arg(long, conflicts_with_all = ["reporter", "sender", "text", "message_id"])]
    file: Option<PathBuf>,
    /// The reporting subscriber.
    #[arg(long, required_unless_present = "file")]
    reporter: Option<String>,
    /// The reported sender.
    #[arg(long, required_unless_present = "file")]
    sender: Option<String>,
    /// The reported text.
    #[arg(long)]
    text: Option<String>,
    /// The reported message's id.
    #[arg(long)]
    message_id: Option<String>,
    /// kisa_118, carrier_app, short_code or other.
    #[arg(long, default_value = "other")]
    channel: String,
    /// The category the subscriber chose.
    #[arg(long)]
    category: Option<String>,
    /// Report id; default: one made from the time and this process.
    #[arg(long)]
    report_id: Option<String>,
    /// When it was reported (RFC 3339); default: now.
    #[arg(long)]
    reported_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(clap::Subcommand)]
enum NumbersCmd {
    /// Every number with a record in the registry (or only those of one status).
    List {
        #[command(flatten)]
        common: NumbersArgs,
        /// Only numbers with this status (active or suspended).
        #[arg(long)]
        status: Option<String>,
    },
    /// Every record of one number still in the registry topic, oldest first: who changed
    /// its status, when and why.
    Show {
        #[command(flatten)]
        common: NumbersArgs,
        /// The number, in any format.
        #[arg(long)]
        number: String,
    },
    /// Suspend a number: every message from it is blocked, by every instance.
    Suspend {
        #[command(flatten)]
        common: NumbersArgs,
        #[command(flatten)]
        change: NumberChange,
    },
    /// Release a suspended number.
    Release {
        #[command(flatten)]
        common: NumbersArgs,
        #[command(flatten)]
        change: NumberChange,
    },
    /// Numbers enough distinct subscribers reported and that are not suspended (what
    /// reports.suspend = "propose" leaves to staff), with the record suspending them would
    /// publish.
    Proposals {
        #[command(flatten)]
        common: NumbersArgs,
        /// Reports of this long ago and since count.
        #[arg(long, default_value = "24h")]
        since: humantime::Duration,
    },
}

#[derive(clap::Subcommand)]
enum ReportedCmd {
    /// The blocks in force (with --all, lifted and expired ones too).
    List {
        #[command(flatten)]
        common: NumbersArgs,
        /// Lifted and expired blocks too.
        #[arg(long)]
        all: bool,
    },
    /// Lift a block: every instance stops blocking the content, and only reports made
    /// after the lift count towards blocking it again.
    Lift {
        #[command(flatten)]
        common: NumbersArgs,
        /// The content's fingerprint, as `spamflow reported list` shows it.
        #[arg(long)]
        fingerprint: String,
        /// Who lifts it (kept in the record).
        #[arg(long)]
        by: String,
        /// Why (kept in the record).
        #[arg(long)]
        reason: String,
    },
}

#[derive(clap::Args)]
struct NumbersArgs {
    /// Bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: spamflow_pipeline::numbers::NumbersFormat,
}

#[derive(clap::Args)]
struct NumberChange {
    /// The number, in any format.
    #[arg(long)]
    number: String,
    /// Who makes the change (kept in the record).
    #[arg(long)]
    by: String,
    /// Why (kept in the record).
    #[arg(long)]
    reason: String,
}

impl ReportedCmd {
    fn common(&self) -> &NumbersArgs {
        match self {
            ReportedCmd::List { common, .. } | ReportedCmd::Lift { common, .. } => common,
        }
    }
}

impl RegistryCmd {
    fn brokers(&self) -> Option<&String> {
        match self {
            RegistryCmd::Put { brokers, .. }
            | RegistryCmd::Delete { brokers, .. }
            | RegistryCmd::Load { brokers, .. } => brokers.as_ref(),
        }
    }
}

impl NumbersCmd {
    fn common(&self) -> &NumbersArgs {
        match self {
            NumbersCmd::List { common, .. }
            | NumbersCmd::Show { common, .. }
            | NumbersCmd::Suspend { common, .. }
            | NumbersCmd::Release { common, .. }
            | NumbersCmd::Proposals { common, .. } => common,
        }
    }
}

#[derive(clap::Args)]
struct StatsCli {
    /// Bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// Rows per hour, day or month.
    #[arg(long, value_enum, default_value = "day")]
    period: spamflow_pipeline::stats::Period,
    /// First date counted (YYYY-MM-DD, in --utc-offset).
    #[arg(long)]
    from: Option<chrono::NaiveDate>,
    /// Last date counted (YYYY-MM-DD, in --utc-offset).
    #[arg(long)]
    to: Option<chrono::NaiveDate>,
    /// Hours, days and months are those of this offset from UTC.
    #[arg(long, default_value = "+09:00", allow_hyphen_values = true)]
    utc_offset: String,
    /// One row per reseller as well as relay operator.
    #[arg(long)]
    by_reseller: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: spamflow_pipeline::stats::StatsFormat,
    /// Write a self-contained HTML page (a chart and a table per relay operator) here
    /// instead of printing.
    #[arg(long)]
    html: Option<PathBuf>,
}

#[derive(clap::Args)]
struct TapCli {
    /// Bootstrap servers (kafka.brokers).
    #[arg(long)]
    brokers: Option<String>,
    /// The topic to read (its name comes from topics.*).
    #[arg(long, value_enum, default_value = "verdicts")]
    topic: spamflow_pipeline::tap::TapTopic,
    /// Only this action (allow, label, block, throttle).
    #[arg(long)]
    action: Option<String>,
    /// Only records with a reason of this category (an alert: of its categories).
    #[arg(long)]
    category: Option<String>,
    /// Only this relay operator.
    #[arg(long)]
    relay_operator: Option<String>,
    /// Only senders starting with this (as sent, e.g. +8210 or 010).
    #[arg(long)]
    sender_prefix: Option<String>,
    /// Only records with this reason code, or a code prefix ending in "." (smishing.);
    /// on the DLQ, its error code.
    #[arg(long)]
    rule: Option<String>,
    /// Start this long ago (10m, 2h); default: from the beginning, or with --follow the end.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "from")]
    since: Option<Duration>,
    /// Start at this time (RFC 3339).
    #[arg(long)]
    from: Option<chrono::DateTime<chrono::Utc>>,
    /// Keep reading new records until interrupted.
    #[arg(long)]
    follow: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: spamflow_pipeline::tap::TapFormat,
    /// Print counts by action, category, rule and relay operator every this long (with
    /// --follow; otherwise once, at the end) instead of records.
    #[arg(long, value_parser = humantime::parse_duration)]
    summary: Option<Duration>,
    /// Show sender and recipient numbers unmasked.
    #[arg(long)]
    show_numbers: bool,
    /// Stop after this many records.
    #[arg(long)]
    limit: Option<u64>,
}

#[derive(Subcommand)]
enum RulesCmd {
    /// Compile a rule pack and run every rule's examples; exit code 1 on any failure.
    Check {
        /// Rule-pack directory; default: rules.dir, or the built-in pack.
        dir: Option<PathBuf>,
    },
    /// Print every rule's examples as labelled JSON lines (a training source for
    /// `spamflow train`): examples as spam of the rule's category, counter-examples as ham.
    Examples {
        /// Rule-pack directory; default: rules.dir, or the built-in pack.
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum RegistryCmd {
    /// Register (or re-register) one number.
    Put {
        /// Bootstrap servers (kafka.brokers).
        #[arg(long)]
        brokers: Option<String>,
        /// The number, in any format (it is normalized to E.164 for the key).
        #[arg(long)]
        number: String,
        /// Owner of the number.
        #[arg(long)]
        owner: String,
        /// Relay operator it may send through.
        #[arg(long)]
        relay_operator: String,
        /// Reseller account, if registration is per reseller.
        #[arg(long)]
        reseller: Option<String>,
        /// active or suspended.
        #[arg(long, default_value = "active")]
        status: String,
        /// Registration start (RFC 3339).
        #[arg(long)]
        valid_from: Option<String>,
        /// Registration end (RFC 3339, exclusive).
        #[arg(long)]
        valid_until: Option<String>,
    },
    /// Remove a number (publishes a tombstone).
    Delete {
        /// Bootstrap servers (kafka.brokers).
        #[arg(long)]
        brokers: Option<String>,
        /// The number, in any format.
        #[arg(long)]
        number: String,
    },
    /// Publish every registration record of a JSON-lines file.
    Load {
        /// Bootstrap servers (kafka.brokers).
        #[arg(long)]
        brokers: Option<String>,
        /// Registration records, one JSON object per line.
        #[arg(long)]
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Bootstrap servers (kafka.brokers). Empty: embedded mode.
    #[arg(long)]
    brokers: Option<String>,
    /// exactly_once or at_least_once (processing.guarantee).
    #[arg(long)]
    guarantee: Option<String>,
    /// processing.commit_interval_ms.
    #[arg(long)]
    commit_interval_ms: Option<u64>,
    /// processing.workers (0 = one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// kafka.group_instance_id (static membership; also names the transactional id).
    #[arg(long)]
    instance_id: Option<String>,
    /// Stop after this long (e.g. 20s, 5m). Embedded mode: replay this long, then drain.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Embedded mode: write the summary figures as JSON here.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// Embedded mode: replay rate, events/s (embedded.rate).
    #[arg(long)]
    rate: Option<u32>,
    /// Embedded mode: no live line each second.
    #[arg(long)]
    quiet: bool,
}

impl RunArgs {
    fn overrides(&self) -> serde_json::Value {
        let mut o = json!({});
        if let Some(b) = &self.brokers {
            o["kafka"]["brokers"] = json!(b);
        }
        if let Some(i) = &self.instance_id {
            o["kafka"]["group_instance_id"] = json!(i);
        }
        if let Some(g) = &self.guarantee {
            o["processing"]["guarantee"] = json!(g);
        }
        if let Some(c) = self.commit_interval_ms {
            o["processing"]["commit_interval_ms"] = json!(c);
        }
        if let Some(w) = self.workers {
            o["processing"]["workers"] = json!(w);
        }
        if let Some(r) = self.rate {
            o["embedded"]["rate"] = json!(r);
        }
        o
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `--brokers` of the subcommands that talk to Kafka overrides kafka.brokers.
    let brokers = match &cli.cmd {
        Cmd::CreateTopics { brokers, .. }
        | Cmd::Tap(TapCli { brokers, .. })
        | Cmd::Stats(StatsCli { brokers, .. })
        | Cmd::Report(ReportCli { brokers, .. }) => brokers.as_ref(),
        Cmd::Numbers { cmd } => cmd.common().brokers.as_ref(),
        Cmd::Reported { cmd } => cmd.common().brokers.as_ref(),
        Cmd::Registry { cmd } => cmd.brokers(),
        _ => None,
    };
    let mut overrides = match (&cli.cmd, brokers) {
        (Cmd::Run(a), _) => a.overrides(),
        (_, Some(b)) => json!({"kafka": {"brokers": b}}),
        (_, None) => json!({}),
    };
    if let Some(f) = &cli.log_format {
        overrides["log"]["format"] = json!(f);
    }
    let cfg = match Config::load(config_path(cli.config.clone()).as_deref(), overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("spamflow: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&cfg);
    install_panic_hook();
    let result = match cli.cmd {
        Cmd::Run(args) => run(&cfg, &args),
        Cmd::Backtest(args) => run_backtest(&cfg, &args),
        Cmd::Registry { cmd } => registry_cmd(&cfg, cmd),
        Cmd::Rules {
            cmd: RulesCmd::Check { dir },
        } => rules_check(&cfg, dir.as_deref()),
        Cmd::Rules {
            cmd: RulesCmd::Examples { dir },
        } => rules_examples(&cfg, dir.as_deref()),
        Cmd::CreateTopics { partitions, .. } => create_topics(&cfg, partitions),
        Cmd::Train {
            data,
            out,
            seed,
            epochs,
            bag,
            ham_block_budget,
            korean_ham_block_budget,
            buckets_log2,
            category_buckets_log2,
            max_ngram,
            hangul_max_ngram,
            hangul_window_bytes,
            min_features,
            learning_rate,
            l2,
            policy_exclude_sources,
            json,
        } => {
            let tc = TrainConfig {
                seed,
                epochs,
                bag,
                ham_block_budget,
                korean_ham_block_budget,
                buckets_log2,
                category_buckets_log2,
                max_ngram,
                hangul_max_ngram,
                learning_rate,
                l2,
                policy_exclude_sources,
                hangul_window_bytes: (hangul_window_bytes > 0).then_some(hangul_window_bytes),
                min_features,
                ..TrainConfig::default()
            };
            spamflow_pipeline::classifier::train_cmd(&cfg, &data, &out, &tc).and_then(
                |(m, metrics)| {
                    print_metrics(&metrics, json)?;
                    eprintln!("model {} written to {}", m.version, out.display());
                    Ok(())
                },
            )
        }
        Cmd::Eval {
            model,
            data,
            json,
            errors,
        } => eval(&cfg, model.as_deref(), &data, json, errors.as_deref()),
        Cmd::Tap(args) => tap(&cfg, &args),
        Cmd::Stats(args) => stats(&cfg, &args),
        Cmd::Numbers { cmd } => numbers_cmd(&cfg, cmd),
        Cmd::Reported { cmd } => reported_cmd(&cfg, cmd),
        Cmd::Report(args) => report(&cfg, args),
        Cmd::Config => serde_json::to_string_pretty(&cfg.redacted_json())
            .map(|s| println!("{s}"))
            .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spamflow: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_metrics(m: &EvalMetrics, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
    } else {
        print!("{}", m.render());
    }
    Ok(())
}

fn eval(
    cfg: &Config,
    model: Option<&Path>,
    data: &[PathBuf],
    json: bool,
    errors: Option<&Path>,
) -> anyhow::Result<()> {
    let model = match model {
        Some(p) => Model::load(p)?,
        None => spamflow_pipeline::classifier::load(cfg)?
            .0
            .current()
            .as_ref()
            .clone(),
    };
    let (examples, _) = spamflow_pipeline::classifier::read(data)?;
    if examples.is_empty() {
        anyhow::bail!("the data files hold no examples");
    }
    eprintln!(
        "evaluating model {} on {} examples",
        model.version,
        examples.len()
    );
    let mut errors = errors
        .map(|p| {
            std::fs::File::create(p)
                .map(std::io::BufWriter::new)
                .with_context(|| format!("creating {}", p.display()))
        })
        .transpose()?;
    let m = spamflow_pipeline::classifier::evaluate(
        cfg,
        &model,
        &examples,
        errors.as_mut().map(|w| w as &mut dyn std::io::Write),
    )?;
    print_metrics(&m, json)
}

/// Logs a panic's place and thread, never its message: a panic while judging a record can
/// carry the message text (a string slice error quotes the string).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info.location().map_or_else(
            || "unknown".to_owned(),
            |l| format!("{}:{}", l.file(), l.line()),
        );
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            %location,
            "panic (its message is not logged: it may hold message text)"
        );
    }));
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&cfg.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: logs that go to a file or a pipe get no escape codes.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if cfg.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn report(cfg: &Config, a: ReportCli) -> anyhow::Result<()> {
    use spamflow_pipeline::reports;
    anyhow::ensure!(
        !cfg.kafka.brokers.is_empty(),
        "spamflow report needs --brokers (or kafka.brokers)"
    );
    let list = match &a.file {
        Some(f) => {
            let (list, problems) = reports::read_file(f)?;
            anyhow::ensure!(
                problems.is_empty(),
                "nothing published; fix these lines first:\n  {}",
                problems.join("\n  ")
            );
            list
        }
        None => {
            let now = chrono::Utc::now();
            let channel = serde_json::from_value(json!(a.channel)).map_err(|_| {
                anyhow::anyhow!(
                    "--channel {:?} is not one of kisa_118, carrier_app, short_code, other",
                    a.channel
                )
            })?;
            vec![spamflow_schemas::SpamReport {
                schema_version: 1,
                report_id: a.report_id.unwrap_or_else(|| {
                    format!(
                        "cli-{}-{}",
                        now.timestamp_nanos_opt().unwrap_or_default(),
                        std::process::id()
                    )
                }),
                reported_at: a.reported_at.unwrap_or(now),
                reporter: a.reporter.unwrap_or_default(),
                sender: a.sender.unwrap_or_default(),
                text: a.text,
                message_id: a.message_id,
                channel,
                category: a.category,
            }]
        }
    };
    reports::publish(cfg, &cfg.kafka.brokers, &list)?;
    println!(
        "published {} report(s) to {}",
        list.len(),
        cfg.topics.reports
    );
    Ok(())
}

fn stats(cfg: &Config, a: &StatsCli) -> anyhow::Result<()> {
    use spamflow_pipeline::stats::{aggregate, read, read_reports, render, Query};
    anyhow::ensure!(
        !cfg.kafka.brokers.is_empty(),
        "spamflow stats needs --brokers (or kafka.brokers)"
    );
    let offset = parse_utc_offset(&a.utc_offset)?;
    if let (Some(f), Some(t)) = (a.from, a.to) {
        anyhow::ensure!(f <= t, "--from {f} is after --to {t}");
    }
    let records = read(cfg)?;
    // Reports from the first day asked for, or from the first hour counted.
    let reports_from = match a.from {
        Some(d) => d
            .and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(offset).single())
            .map(|t| t.with_timezone(&chrono::Utc)),
        None => records.iter().map(|r| r.hour).min(),
    };
    let reports = match read_reports(cfg, reports_from) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("spamflow: reports are not counted: {e:#}");
            Vec::new()
        }
    };
    let rows = aggregate(
        &records,
        &reports,
        &Query {
            period: a.period,
            offset,
            from: a.from,
            to: a.to,
            by_reseller: a.by_reseller,
        },
    );
    if let Some(path) = &a.html {
        let title = format!(
            "spamflow: spam statistics per relay operator, by {} (UTC{})",
            match a.period {
                spamflow_pipeline::stats::Period::Hour => "hour",
                spamflow_pipeline::stats::Period::Day => "day",
                spamflow_pipeline::stats::Period::Month => "month",
            },
            a.utc_offset
        );
        std::fs::write(path, spamflow_pipeline::stats::render_html(&rows, &title))
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {} ({} rows)", path.display(), rows.len());
        return Ok(());
    }
    render(&rows, a.format, &mut std::io::stdout().lock())?;
    Ok(())
}

fn reported_cmd(cfg: &Config, cmd: ReportedCmd) -> anyhow::Result<()> {
    use spamflow_pipeline::reported::{in_force, lift, read_current, render};
    anyhow::ensure!(
        !cfg.kafka.brokers.is_empty(),
        "spamflow reported needs --brokers (or kafka.brokers)"
    );
    let current = read_current(cfg)?;
    let now = chrono::Utc::now();
    let out = &mut std::io::stdout().lock();
    match cmd {
        ReportedCmd::List { common, all } => render(
            current.values().filter(|r| all || in_force(r, now)),
            common.format,
            out,
        ),
        ReportedCmd::Lift {
            common,
            fingerprint,
            by,
            reason,
        } => {
            let r = current.get(&fingerprint).with_context(|| {
                format!(
                    "no content {fingerprint} in {} (see spamflow reported list)",
                    cfg.topics.reported_content
                )
            })?;
            let lifted = lift(r, &by, &reason, now)?;
            let value = serde_json::to_vec(&lifted)?;
            spamflow_pipeline::kafka::publish(
                cfg,
                &cfg.kafka.brokers,
                &cfg.topics.reported_content,
                &[(fingerprint, Some(value))],
            )?;
            render([&lifted], common.format, out)
        }
    }
}

fn numbers_cmd(cfg: &Config, cmd: NumbersCmd) -> anyhow::Result<()> {
    use spamflow_pipeline::numbers::{change, current, proposals, publish, read_history, render};
    use spamflow_schemas::RegistrationStatus;
    anyhow::ensure!(
        !cfg.kafka.brokers.is_empty(),
        "spamflow numbers needs --brokers (or kafka.brokers)"
    );
    let format = cmd.common().format;
    let suspend = matches!(cmd, NumbersCmd::Suspend { .. });
    let history = read_history(cfg)?;
    let out = &mut std::io::stdout().lock();
    match cmd {
        NumbersCmd::List { status, .. } => {
            let status = match status.as_deref() {
                None => None,
                Some("active") => Some(RegistrationStatus::Active),
                Some("suspended") => Some(RegistrationStatus::Suspended),
                Some(other) => anyhow::bail!("--status {other:?} is neither active nor suspended"),
            };
            let now = current(&history);
            render(
                now.values()
                    .copied()
                    .filter(|r| status.is_none_or(|s| r.status == s)),
                format,
                out,
            )
        }
        NumbersCmd::Show { number, .. } => {
            let key = spamflow_operators::origin::parse_sender(&number).key;
            let records = history
                .get(&key)
                .with_context(|| format!("no record of {key} in {}", cfg.topics.registry))?;
            render(records.iter().flatten(), format, out)?;
            if records.last().is_some_and(Option::is_none) {
                println!("(removed: the latest record is a tombstone)");
            }
            Ok(())
        }
        NumbersCmd::Suspend { change: c, .. } | NumbersCmd::Release { change: c, .. } => {
            let status = if suspend {
                RegistrationStatus::Suspended
            } else {
                RegistrationStatus::Active
            };
            let rec = change(
                &history,
                &c.number,
                status,
                &c.by,
                &c.reason,
                chrono::Utc::now(),
            )?;
            render([&rec], format, out)?;
            publish(cfg, rec)
        }
        NumbersCmd::Proposals { since, .. } => {
            let since = chrono::Utc::now() - chrono::Duration::from_std(*since)?;
            render(proposals(cfg, &history, since)?.iter(), format, out)
        }
    }
}

/// `+09:00`, `-05:30`, `Z`.
fn parse_utc_offset(s: &str) -> anyhow::Result<chrono::FixedOffset> {
    if s == "Z" || s == "+00:00" {
        return Ok(chrono::FixedOffset::east_opt(0).expect("zero offset"));
    }
    let bad = || anyhow::anyhow!("--utc-offset {s:?} is not like +09:00 or -05:30");
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, &s[1..]),
        Some(b'-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    anyhow::ensure!(h <= 14 && m < 60, bad());
    chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60)).ok_or_else(bad)
}

fn tap(cfg: &Config, a: &TapCli) -> anyhow::Result<()> {
    use spamflow_pipeline::tap::{Filter, TapArgs};
    anyhow::ensure!(
        !cfg.kafka.brokers.is_empty(),
        "spamflow tap needs --brokers (or kafka.brokers)"
    );
    let since = a
        .since
        .map(|d| chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default());
    let args = TapArgs {
        topic: a.topic,
        filter: Filter {
            action: a.action.clone(),
            category: a.category.clone(),
            relay_operator: a.relay_operator.clone(),
            sender_prefix: a.sender_prefix.clone(),
            rule: a.rule.clone(),
        },
        from: a.from.or(since),
        follow: a.follow,
        format: a.format,
        summary: a.summary,
        show_numbers: a.show_numbers,
        width: std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(160),
        limit: a.limit,
    };
    let stop = Stop::new();
    {
        let stop = stop.clone();
        // Ctrl-C ends a --follow cleanly.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    let _ = tokio::signal::ctrl_c().await;
                });
                stop.trigger();
            }
        });
    }
    let shown =
        spamflow_pipeline::tap::tap(cfg, &args, &mut std::io::stdout().lock(), || stop.is_set())?;
    eprintln!("{shown} record(s)");
    Ok(())
}

/// Bounds every compile of a pack from a directory (`rules.compile_*`), with this
/// executable as the checker.
fn bound_rule_compiles(cfg: &Config) -> anyhow::Result<()> {
    if cfg.rules.compile_timeout_ms > 0 {
        spamflow_pipeline::rules::bound_compiles(spamflow_pipeline::rules::CompileBounds {
            exe: std::env::current_exe().context("finding the spamflow executable")?,
            timeout: Duration::from_millis(cfg.rules.compile_timeout_ms),
            memory_mb: cfg.rules.compile_memory_mb,
        });
    }
    Ok(())
}

fn run(cfg: &Config, args: &RunArgs) -> anyhow::Result<()> {
    let stop = Stop::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("spamflow-io")
        .build()?;
    stop_on_signal(&rt, stop.clone())?;
    tracing::info!("starting");
    bound_rule_compiles(cfg)?;
    let ops = spamflow_pipeline::operators(cfg, None)?;
    let metrics = Arc::new(Metrics::for_operators(&ops));
    metrics.rules_fallback.store(
        ops.rules_fallback.is_some(),
        std::sync::atomic::Ordering::Relaxed,
    );
    let telemetry = spamflow_pipeline::telemetry::Telemetry::start(cfg, &metrics)?;
    metrics
        .rules_compile_time
        .observe(ops.pattern.current().compile_time);
    if !cfg.admin.listen.is_empty() {
        let (listen, metrics) = (cfg.admin.listen.clone(), metrics.clone());
        let stall = Duration::from_millis(cfg.admin.stall_timeout_ms);
        rt.spawn(async move {
            if let Err(e) = admin::serve(&listen, metrics, stall).await {
                tracing::error!(error = %e, listen, "admin endpoint failed (admin.listen)");
            }
        });
    }
    let watcher = match spamflow_pipeline::rules::dir_of(&cfg.rules.dir) {
        Some(dir) if cfg.rules.reload_interval_ms > 0 => {
            Some(spamflow_pipeline::rules::spawn_watcher(
                dir,
                Duration::from_millis(cfg.rules.reload_interval_ms),
                ops.pattern.clone(),
                metrics.clone(),
                stop.clone(),
                spamflow_pipeline::rules::dir_of(&cfg.rules.last_good_dir),
            )?)
        }
        _ => None,
    };
    let model_watcher = match &ops.models {
        Some((model, shadow)) if cfg.classifier.enabled => {
            let files: Vec<(PathBuf, ModelHandle)> = [
                (&cfg.classifier.model, Some(model)),
                (&cfg.classifier.shadow_model, shadow.as_ref()),
            ]
            .into_iter()
            .filter_map(|(path, h)| {
                Some((PathBuf::from(path), h?.clone())).filter(|(p, _)| !p.as_os_str().is_empty())
            })
            .collect();
            (!files.is_empty())
                .then(|| {
                    spamflow_pipeline::classifier::spawn_watcher(
                        files,
                        Duration::from_millis(cfg.classifier.reload_interval_ms),
                        metrics.clone(),
                        stop.clone(),
                    )
                })
                .transpose()?
        }
        _ => None,
    };
    let result = if cfg.is_embedded() {
        let opts = EmbeddedOptions {
            duration: args.duration,
            summary_json: args.summary_json.clone(),
            live: !args.quiet,
        };
        embedded::run(cfg, ops, &opts, stop.clone()).map(|_| ())
    } else {
        if let Some(d) = args.duration {
            // --duration: stop after `d`, or earlier on a signal.
            let stop = stop.clone();
            std::thread::spawn(move || {
                if !stop.wait(d) {
                    stop.trigger();
                }
            });
        }
        let brokers = cfg.kafka.brokers.clone();
        if cfg.processing.guarantee == Guarantee::ExactlyOnce {
            tracing::info!(transactional_id = %cfg.transactional_id(), "exactly-once: one transaction per commit interval");
        }
        // Bulk traffic is judged against the registry: load it fully before consuming.
        let follower = registry::follow(
            cfg,
            &brokers,
            ops.registry.clone(),
            metrics.clone(),
            stop.clone(),
        )?;
        loop {
            match follower.wait_loaded(&stop, Duration::from_secs(10)) {
                registry::Load::Loaded => break,
                registry::Load::Stopped => return Ok(()),
                registry::Load::TimedOut => tracing::warn!(topic = %cfg.topics.registry, "still loading the sender registry before consuming"),
                registry::Load::Failed => anyhow::bail!(
                    "the sender registry follower ended before the registry {} was loaded (its error is logged above)",
                    cfg.topics.registry
                ),
            }
        }
        let reports = spamflow_pipeline::reports::follow(
            cfg,
            &brokers,
            ops.reported.clone(),
            ops.registry.clone(),
            metrics.clone(),
            stop.clone(),
        )?;
        let checker =
            spamflow_pipeline::reports::check(cfg, &brokers, metrics.clone(), stop.clone())?;
        let result = runtime::run(cfg, &brokers, ops.chain, metrics, stop.clone());
        stop.trigger();
        let _ = follower.handle.join();
        for h in [reports, checker].into_iter().flatten() {
            let _ = h.join();
        }
        result
    };
    stop.trigger();
    for w in [watcher, model_watcher].into_iter().flatten() {
        let _ = w.join();
    }
    if let Some(t) = telemetry {
        t.shutdown();
    }
    result
}

/// Triggers `stop` on SIGTERM or SIGINT. Both are registered before this returns, so a
/// signal that comes while the pipeline is still starting (compiling the rule pack,
/// loading the model) stops it cleanly instead of killing it.
fn stop_on_signal(rt: &tokio::runtime::Runtime, stop: Stop) -> anyhow::Result<()> {
    let _runtime = rt.enter();
    #[cfg(unix)]
    let signalled = {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("registering for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("registering for SIGINT")?;
        async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
    };
    #[cfg(not(unix))]
    let signalled = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    rt.spawn(async move {
        signalled.await;
        tracing::info!("signal received: stopping");
        stop.trigger();
    });
    Ok(())
}

/// `spamflow backtest`.
#[derive(Debug, clap::Args)]
struct BacktestArgs {
    /// Input: SubmissionEvent JSON lines.
    #[arg(long)]
    pub events: PathBuf,
    /// Output: one Verdict JSON line per event, in event-time order.
    #[arg(long)]
    pub out: PathBuf,
    /// Write lines that are not valid events here (JSON lines: line, code, error).
    #[arg(long)]
    pub dlq: Option<PathBuf>,
    /// Write the summary as JSON here.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// Candidate rule-pack directory (default: rules.dir, or the built-in pack).
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Sender-number registry: registration records as JSON lines.
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Process as this many input partitions, each event in the partition a librdkafka
    /// producer (default partitioner, key = normalized sender) would put it in, so that
    /// partition-local state (campaigns, relay quotas) matches a pipeline on a topic with
    /// this many partitions.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
}

fn run_backtest(cfg: &Config, args: &BacktestArgs) -> anyhow::Result<()> {
    let (events, out) = (&args.events, &args.out);
    let (dlq, summary_json) = (args.dlq.as_deref(), args.summary_json.as_deref());
    let (rules_dir, registry_file) = (args.rules.as_deref(), args.registry.as_deref());
    anyhow::ensure!(
        (1..=10_000).contains(&args.partitions),
        "--partitions {} is outside 1..=10000",
        args.partitions
    );
    let input = std::fs::File::open(events)
        .with_context(|| format!("opening --events {}", events.display()))?;
    let (evs, bad) = backtest::read_events(std::io::BufReader::new(input))
        .with_context(|| format!("reading {}", events.display()))?;
    bound_rule_compiles(cfg)?;
    let ops = spamflow_pipeline::operators(cfg, rules_dir)?;
    if let Some(path) = registry_file {
        for p in registry::load_file(path, &ops.registry)? {
            eprintln!("registry: skipped {p}");
        }
    }
    let chain = ops.chain;
    let file =
        std::fs::File::create(out).with_context(|| format!("creating --out {}", out.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let mut summary = backtest::run(&chain, evs, args.partitions, &mut w)?;
    summary.bad_lines = bad;
    if let Some(path) = dlq {
        let mut s = String::new();
        for b in &summary.bad_lines {
            s.push_str(&serde_json::to_string(b)?);
            s.push('\n');
        }
        std::fs::write(path, s).with_context(|| format!("writing --dlq {}", path.display()))?;
    }
    if let Some(path) = summary_json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", summary.render());
    Ok(())
}

fn create_topics(cfg: &Config, partitions: i32) -> anyhow::Result<()> {
    anyhow::ensure!(
        !cfg.is_embedded(),
        "kafka.brokers is empty: name the brokers with --brokers or SPAMFLOW_KAFKA__BROKERS"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&partitions),
        "--partitions {partitions} is outside 1..=10000"
    );
    let specs = spamflow_pipeline::kafka::topic_specs(cfg, partitions);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(spamflow_pipeline::kafka::create_topics(
        &cfg.kafka.brokers,
        cfg,
        &specs,
    ))?;
    for t in &specs {
        println!(
            "{} partitions={} compacted={}",
            t.name, t.partitions, t.compacted
        );
    }
    Ok(())
}

fn rules_examples(cfg: &Config, dir: Option<&Path>) -> anyhow::Result<()> {
    let dir = dir
        .map(Path::to_path_buf)
        .or_else(|| spamflow_pipeline::rules::dir_of(&cfg.rules.dir));
    let src = spamflow_pipeline::rules::source(dir.as_deref())?;
    let pack = spamflow_pipeline::rules::compile_checked(&src, "rules")?;
    for line in spamflow_pipeline::classifier::rule_examples(&pack) {
        println!("{line}");
    }
    Ok(())
}

fn rules_check(cfg: &Config, dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    use spamflow_operators::pattern::{check_examples, CompiledPack};
    let dir = dir
        .map(std::path::Path::to_path_buf)
        .or_else(|| spamflow_pipeline::rules::dir_of(&cfg.rules.dir));
    let name = dir
        .as_ref()
        .map_or_else(|| "built-in pack".to_owned(), |d| d.display().to_string());
    let src = spamflow_pipeline::rules::source(dir.as_deref())?;
    let pack = match CompiledPack::compile(&src) {
        Ok(p) => std::sync::Arc::new(p),
        Err(errs) => {
            for e in &errs {
                println!("FAIL {e}");
            }
            anyhow::bail!(
                "{name}: {} problem(s); the pack does not compile",
                errs.len()
            );
        }
    };
    let failures = check_examples(&pack);
    let examples: usize = pack
        .rules
        .iter()
        .map(|r| r.examples.len() + r.counter_examples.len())
        .sum();
    for f in &failures {
        println!("FAIL {f}");
    }
    println!(
        "{name}: {} rules ({} shadow), {} patterns, {} examples; compiled in {:.1} ms; database {} bytes; version {}",
        pack.rules.len(),
        pack.rules.iter().filter(|r| r.shadow).count(),
        pack.patterns,
        examples,
        pack.compile_time.as_secs_f64() * 1000.0,
        pack.database_size(),
        pack.short_hash()
    );
    if failures.is_empty() {
        println!("OK");
        Ok(())
    } else {
        anyhow::bail!("{} example(s) disagree with their rules", failures.len())
    }
}

fn registry_cmd(cfg: &Config, cmd: RegistryCmd) -> anyhow::Result<()> {
    use spamflow_schemas::{RegistrationRecord, RegistrationStatus};
    anyhow::ensure!(
        !cfg.is_embedded(),
        "kafka.brokers is empty: name the brokers with --brokers or SPAMFLOW_KAFKA__BROKERS"
    );
    let time =
        |s: Option<String>, flag: &str| -> anyhow::Result<Option<chrono::DateTime<chrono::Utc>>> {
            s.map(|t| {
                t.parse()
                    .with_context(|| format!("{flag} {t:?} is not an RFC 3339 timestamp"))
            })
            .transpose()
        };
    let records = match cmd {
        RegistryCmd::Put {
            number,
            owner,
            relay_operator,
            reseller,
            status,
            valid_from,
            valid_until,
            ..
        } => {
            let status = match status.as_str() {
                "active" => RegistrationStatus::Active,
                "suspended" => RegistrationStatus::Suspended,
                other => anyhow::bail!("--status {other:?} is neither active nor suspended"),
            };
            let rec = RegistrationRecord {
                number: number.clone(),
                owner,
                relay_operator,
                reseller,
                status,
                valid_from: time(valid_from, "--valid-from")?,
                valid_until: time(valid_until, "--valid-until")?,
                ..Default::default()
            };
            vec![(number, Some(rec))]
        }
        RegistryCmd::Delete { number, .. } => vec![(number, None)],
        RegistryCmd::Load { file, .. } => {
            let (records, problems) = registry::read_file(&file)?;
            anyhow::ensure!(
                problems.is_empty(),
                "nothing published; fix these lines first:\n  {}",
                problems.join("\n  ")
            );
            records
                .into_iter()
                .map(|r| (r.number.clone(), Some(r)))
                .collect()
        }
    };
    registry::publish(cfg, &cfg.kafka.brokers, &records)?;
    println!(
        "published {} record(s) to {}",
        records.len(),
        cfg.topics.registry
    );
    Ok(())
}
