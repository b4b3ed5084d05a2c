# spamflow — the two set-up commands are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
ARGS ?=

.PHONY: fuzz model run test deps build k8s-check test-unit kafka-start kafka-stop bench bench-e2e bench-rules bench-registry bench-state sample fmt lint

## make run: build and run the pipeline on the embedded broker with replayed sample traffic.
##   make run ARGS="--duration 20s --summary-json out.json"
run: deps
	$(CARGO) build --release -p spamflow-pipeline --bin spamflow
	./target/release/spamflow run $(ARGS)

## make test: everything, including the real-broker tests against a throwaway
## single-node Apache Kafka (KRaft) on 127.0.0.1 started from Maven Central jars.
test: deps
	scripts/kafka.sh fetch >/dev/null
	scripts/k8s-check.sh
	$(CARGO) build --workspace --tests
	@set -euo pipefail; \
	trap 'scripts/kafka.sh stop >/dev/null 2>&1' EXIT; \
	SPAMFLOW_TEST_BROKERS=$$(scripts/kafka.sh start | tail -n 1); \
	export SPAMFLOW_TEST_BROKERS; \
	SPAMFLOW_OTELCOL=$$(scripts/gotools.sh otelcol); export SPAMFLOW_OTELCOL; \
	echo "real broker for tests: $$SPAMFLOW_TEST_BROKERS"; \
	status=0; $(CARGO) test --workspace -- --test-threads 2 2>&1 | tee target/test.log || status=$$?; \
	awk '/^test result:/ {p += $$4; f += $$6} END {printf "tests: %d passed, %d failed\n", p, f}' target/test.log; \
	exit $$status

deps:
	@scripts/deps.sh

## Unit and mock-cluster tests only (no real broker; real-broker tests skip outside CI).
test-unit:
	$(CARGO) test --workspace

## Render every k8s overlay and validate it against the vendored schemas (kubeconform).
k8s-check:
	scripts/k8s-check.sh

kafka-start:
	@scripts/kafka.sh start
kafka-stop:
	@scripts/kafka.sh stop

## Operator-chain benches (criterion) and the end-to-end pipeline vs passthrough bench.
bench:
	$(CARGO) bench -p spamflow-benches --bench chain --bench pattern --bench origin --bench velocity --bench classifier
bench-registry:
	$(CARGO) run --release -p spamflow-benches --bin spamflow-bench-registry -- $(ARGS)
bench-rules:
	$(CARGO) run --release -p spamflow-benches --bin spamflow-bench-rules -- $(ARGS)
bench-e2e:
	$(CARGO) run --release -p spamflow-benches --bin spamflow-bench-e2e -- $(ARGS)
## Stateful stage: 1/2 threads, 10k/1M senders, bytes per sender, sender table vs HashMap
## vs DashMap, fingerprints; then restore of 1M senders from the local Kafka (started only
## for that, so that its JVM does not share the cores with the per-event figures).
bench-state:
	$(CARGO) run --release -p spamflow-benches --bin spamflow-bench-state -- $(ARGS)
	scripts/kafka.sh start
	$(CARGO) run --release -p spamflow-benches --bin spamflow-bench-state -- --restore-only --brokers 127.0.0.1:$${SPAMFLOW_KAFKA_PORT:-29092}

## Rebuild the shipped classifier model from its sources (docs/classifier.md); the real
## corpora are read from $$SPAMFLOW_UCI, $$SPAMFLOW_KOR and $$SPAMFLOW_KOSPAM, or ../shared/corpora/.
model:
	scripts/model.sh

## Coverage-guided fuzzing of the parsers and loaders (nightly toolchain and cargo-fuzz:
## `cargo install cargo-fuzz`); FUZZ_RUNS executions per target (docs/reliability.md).
FUZZ_RUNS ?= 10000000
FUZZ_TARGETS ?= decode_submission registry_record changelog_value normalize sender_number model_file rule_pack chain_text
fuzz:
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  cargo +nightly fuzz run -O $$t -- -runs=$(FUZZ_RUNS) -max_len=4096 || exit 1; done

## Regenerate the bundled sample traffic.
sample:
	$(CARGO) run -q -p spamflow-loadtest -- synth --seed 7 --count 2000 --registry pipeline/data/sample-registry.jsonl > pipeline/data/sample-traffic.jsonl

fmt:
	$(CARGO) fmt --all
lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings
