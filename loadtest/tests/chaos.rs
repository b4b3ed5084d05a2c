//! The fault harness's short form, run by `make test` (CI): at least 5 SIGKILLs, one
//! broker restart and scaling 1 -> 2 -> 3 -> 1, on a broker of its own, with malformed
//! records and records that make the (debug) pipeline panic. The full run is
//! `spamflow-loadtest chaos` (docs/reliability.md).

use std::path::Path;
use std::time::Duration;

use spamflow_loadtest::chaos::{self, ChaosConfig};

#[test]
fn kills_broker_restarts_and_scaling_lose_duplicate_and_change_nothing() {
    // Needs Java and the Kafka jars, which `make test` fetches; it sets CI or the
    // shared broker's address.
    if std::env::var_os("CI").is_none() && std::env::var_os("SPAMFLOW_TEST_BROKERS").is_none() {
        eprintln!("SKIPPED: run by `make test` (it fetches the Kafka jars the harness needs)");
        return;
    }
    let cfg = ChaosConfig {
        events: 4_000,
        poison_every: 500,
        panic_every: 400,
        partitions: 4,
        kills: 5,
        broker_restarts: 1,
        scale: true,
        seed: 7,
        harness: chaos::HarnessConfig {
            spamflow: chaos::default_spamflow(),
            kafka_script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/kafka.sh"),
            // The harness's own broker (and its controller on the next port), below the
            // ephemeral port range like scripts/kafka.sh's default.
            port: 29292,
            work_dir: None,
            drain_timeout: Duration::from_secs(300),
        },
    };
    let report = chaos::run(&cfg, |line| eprintln!("chaos: {line}")).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&report).unwrap());
    assert!(
        report.kills >= 5 && report.broker_restarts == 1,
        "{report:?}"
    );
    assert_eq!(report.scale_steps, [1, 2, 3, 1]);
    assert_eq!(report.panics, 10, "{report:?}");
    assert_eq!(report.verdicts + report.dlq, 4_000 + 8 + 10, "{report:?}");
    assert!(report.passed(), "{report:?}");
}
