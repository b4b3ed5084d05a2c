//! `spamflow-bench-registry`: memory of a sender registry of N numbers (default
//! 5,000,000), measured as the process's resident set before and after loading, and
//! the look-up cost on the loaded table.

use std::time::Instant;

use clap::Parser;
use spamflow_benches::rss_bytes;
use spamflow_operators::origin::{Lookup, Registry};

#[derive(Parser)]
struct Args {
    /// Numbers to register.
    #[arg(long, default_value_t = 5_000_000)]
    numbers: u64,
}

fn main() {
    let args = Args::parse();
    let before = rss_bytes();
    let registry = Registry::new();
    let t0 = Instant::now();
    for i in 0..args.numbers {
        // Korean mobile numbers +82 10 2XXX XXXX (distinct up to 10M), 200 relay operators, 5,000 owners.
        let key = format!("+82102{:07}", i * 19 % 10_000_000);
        let value = format!(
            "{{\"number\":\"{key}\",\"owner\":\"owner-{}\",\"relay_operator\":\"relay-{}\",\"status\":\"active\"}}",
            i % 5_000,
            i % 200
        );
        registry
            .apply(&key, Some(value.as_bytes()))
            .expect("valid record");
    }
    let load = t0.elapsed();
    let after = rss_bytes();
    let t1 = Instant::now();
    let mut ok = 0u64;
    let probes = 1_000_000u64;
    for i in 0..probes {
        let key = format!("+82102{:07}", (i * 7919) * 19 % 10_000_000);
        if matches!(
            registry.check(&key, "relay-0", None, 0),
            Lookup::Ok | Lookup::WrongOperator { .. }
        ) {
            ok += 1;
        }
    }
    let lookup = t1.elapsed();
    println!(
        "registry of {} numbers: resident set +{:.1} MiB ({:.0} bytes per number); loaded in {:.1} s (parse + apply); {} look-ups at {:.0} ns each ({} found)",
        registry.len(),
        (after.saturating_sub(before)) as f64 / 1048576.0,
        (after.saturating_sub(before)) as f64 / registry.len().max(1) as f64,
        load.as_secs_f64(),
        probes,
        lookup.as_nanos() as f64 / probes as f64,
        ok
    );
}
