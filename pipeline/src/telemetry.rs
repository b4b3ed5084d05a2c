//! OpenTelemetry: the pipeline's metrics and spans, exported over OTLP/HTTP (protobuf)
//! when an endpoint is configured, and W3C trace context carried from input records to
//! their verdicts.
//!
//! Metrics: one set of instruments. The counters and gauges of [`Metrics`] are what
//! `/metrics` renders; here each becomes an observable instrument whose callback reads
//! the same value at export time, so the two exporters can never disagree and the
//! per-record path gains no metric call. The duration histograms get every value they
//! count (per batch, per commit, per restore, per compile, and each batch's decision ages
//! when it is tallied). OTLP names follow the messaging semantic conventions
//! ([`SEMCONV_VERSION`]) where one applies, and otherwise [`otel_name`].
//!
//! Spans: one per worker batch and one per commit (never one per message), and one per
//! message for the messages whose input record carries a sampled `traceparent` or that
//! `telemetry.message_sample_ratio` picks. A `traceparent` on an input record is
//! continued: the verdict, block and alert records carry one with the same trace id
//! (the message's span as parent when it has one, else the input's parent unchanged).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use spamflow_schemas::Action;

use crate::config::Config;
use crate::metrics::{
    Metrics, Value, AGE_BUCKETS_US, CATEGORY_VERDICTS_HELP, DLQ_CODES, DLQ_HELP, HISTOGRAMS,
    RELAY_VERDICTS_HELP, SERIES, VERDICTS_HELP,
};

/// The OpenTelemetry semantic conventions the names and attributes follow.
pub const SEMCONV_VERSION: &str = "1.42.0";
const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.42.0";

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";

/// A W3C trace context (`traceparent`), as read from an input record's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// Trace id (never all zero).
    pub trace_id: [u8; 16],
    /// The parent's span id (never all zero).
    pub span_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value: `00-<32 hex>-<16 hex>-<2 hex>`, or a later version's
    /// value with the same first four fields. Anything else (`ff`, zero ids, upper-case
    /// hex, wrong lengths) is `None`: the record is then treated as untraced.
    pub fn parse(v: &[u8]) -> Option<Self> {
        let s = std::str::from_utf8(v).ok()?;
        let mut parts = s.split('-');
        let (version, trace, span, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let version = lower_hex::<1>(version)?[0];
        if version == 0xff || (version == 0 && parts.next().is_some()) {
            return None;
        }
        let tp = TraceParent {
            trace_id: lower_hex::<16>(trace)?,
            span_id: lower_hex::<8>(span)?,
            flags: lower_hex::<1>(flags)?[0],
        };
        (tp.trace_id != [0; 16] && tp.span_id != [0; 8]).then_some(tp)
    }

    /// Whether the caller sampled this trace.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The header value (version 00).
    pub fn header(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex::encode(self.trace_id),
            hex::encode(self.span_id),
            self.flags
        )
    }

    /// The trace id in hex, for logs.
    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    fn remote_context(&self) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            SpanId::from_bytes(self.span_id),
            TraceFlags::new(self.flags),
            true,
            TraceState::default(),
        ))
    }
}

fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The OTLP name of a Prometheus series name that no semantic convention covers:
/// `spamflow_rules_reloads_total` -> `spamflow.rules_reloads`,
/// `spamflow_commit_duration_seconds` -> `spamflow.commit_duration` (unit `s`).
pub fn otel_name(prometheus: &str) -> String {
    let rest = prometheus.strip_prefix("spamflow_").unwrap_or(prometheus);
    let rest = rest.strip_suffix("_total").unwrap_or(rest);
    let rest = rest.strip_suffix("_seconds").unwrap_or(rest);
    format!("spamflow.{rest}")
}

/// The semantic-convention name of a series, where one applies.
fn semconv_name(prometheus: &str) -> Option<&'static str> {
    match prometheus {
        "spamflow_events_consumed_total" => Some("messaging.client.consumed.messages"),
        "spamflow_batch_duration_seconds" => Some("messaging.process.duration"),
        _ => None,
    }
}

/// What makes the tracer decide, and the tracer.
#[derive(Debug)]
pub struct Spans {
    tracer: SdkTracer,
    /// Input topic (span names and attributes).
    topic: String,
    /// `message_sample_ratio` as a bound on 63 bits of the trace id (as the SDK's
    /// trace-id ratio sampler does, so the decision is the same for one trace everywhere).
    ratio_bound: u64,
}

static SPANS: OnceLock<Spans> = OnceLock::new();

/// The process's tracer, when spans are exported.
pub fn spans() -> Option<&'static Spans> {
    SPANS.get()
}

/// A message's span, ended with its verdict.
#[derive(Debug)]
pub struct MessageSpan {
    span: opentelemetry_sdk::trace::Span,
}

impl MessageSpan {
    /// The `traceparent` its outputs carry: this span as their parent.
    pub fn traceparent(&self) -> TraceParent {
        let c = self.span.span_context();
        TraceParent {
            trace_id: c.trace_id().to_bytes(),
            span_id: c.span_id().to_bytes(),
            flags: c.trace_flags().to_u8(),
        }
    }

    /// Ends the span with the verdict's action and score (or the DLQ code).
    pub fn end(mut self, message_id: Option<&str>, outcome: Result<(Action, u8), &str>) {
        if let Some(id) = message_id {
            self.span
                .set_attribute(KeyValue::new("messaging.message.id", id.to_owned()));
        }
        match outcome {
            Ok((action, score)) => {
                self.span
                    .set_attribute(KeyValue::new("spamflow.action", action.as_str()));
                self.span
                    .set_attribute(KeyValue::new("spamflow.score", i64::from(score)));
            }
            Err(code) => {
                self.span
                    .set_attribute(KeyValue::new("error.type", code.to_owned()));
                self.span.set_status(Status::error("sent to the DLQ"));
            }
        }
        self.span.end();
    }
}

impl Spans {
    /// Whether a message gets a span: its caller sampled it, or the ratio picks it.
    fn picks(&self, parent: Option<&TraceParent>) -> bool {
        match parent {
            Some(p) if p.sampled() => true,
            Some(p) => {
                let low = u64::from_be_bytes(p.trace_id[8..].try_into().unwrap_or_default());
                (low >> 1) < self.ratio_bound
            }
            None => self.ratio_bound > 0 && (rand::random::<u64>() >> 1) < self.ratio_bound,
        }
    }

    /// A span for one message, child of its input's `traceparent`, if it gets one.
    pub fn message(
        &self,
        parent: Option<&TraceParent>,
        partition: i32,
        offset: i64,
    ) -> Option<MessageSpan> {
        if !self.picks(parent) {
            return None;
        }
        let cx = parent.map_or_else(Context::new, TraceParent::remote_context);
        let span = self
            .tracer
            .span_builder(format!("process {}", self.topic))
            .with_kind(SpanKind::Consumer)
            .with_attributes([
                KeyValue::new("messaging.system", "kafka"),
                KeyValue::new("messaging.operation.name", "process"),
                KeyValue::new("messaging.destination.name", self.topic.clone()),
                KeyValue::new("messaging.destination.partition.id", partition.to_string()),
                KeyValue::new("messaging.kafka.offset", offset),
            ])
            .start_with_context(&self.tracer, &cx);
        Some(MessageSpan { span })
    }

    /// A span for one worker batch of `records` records of `partition`.
    pub fn batch(&self, partition: i32, records: usize) -> opentelemetry_sdk::trace::Span {
        self.tracer
            .span_builder("spamflow.batch")
            .with_kind(SpanKind::Internal)
            .with_attributes([
                KeyValue::new("messaging.destination.name", self.topic.clone()),
                KeyValue::new("messaging.destination.partition.id", partition.to_string()),
                KeyValue::new("messaging.batch.message_count", records as i64),
            ])
            .start(&self.tracer)
    }

    /// A span for one commit.
    pub fn commit(&self, exactly_once: bool) -> opentelemetry_sdk::trace::Span {
        self.tracer
            .span_builder("spamflow.commit")
            .with_kind(SpanKind::Internal)
            .with_attributes([KeyValue::new(
                "spamflow.guarantee",
                if exactly_once {
                    "exactly_once"
                } else {
                    "at_least_once"
                },
            )])
            .start(&self.tracer)
    }
}

/// The running exporters; [`Telemetry::shutdown`] exports what is left.
#[derive(Debug)]
pub struct Telemetry {
    meters: Option<SdkMeterProvider>,
    tracer: Option<SdkTracerProvider>,
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

impl Telemetry {
    /// Starts OTLP export of `metrics` and of spans when an endpoint is configured
    /// (`telemetry.otlp_endpoint` or the standard variables); `None` otherwise.
    pub fn start(cfg: &Config, metrics: &Arc<Metrics>) -> anyhow::Result<Option<Telemetry>> {
        if std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let t = &cfg.telemetry;
        let base = t.otlp_endpoint.trim_end_matches('/');
        let generic = !base.is_empty() || env_set("OTEL_EXPORTER_OTLP_ENDPOINT");
        let want_metrics = generic || env_set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        let want_traces = generic || env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        if !want_metrics && !want_traces {
            return Ok(None);
        }
        for var in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        ] {
            if let Ok(p) = std::env::var(var) {
                anyhow::ensure!(
                    p == "http/protobuf",
                    "{var}={p}: spamflow exports OTLP over HTTP with protobuf only (http/protobuf, port 4318)"
                );
            }
        }
        let endpoint = |path: &str| (!base.is_empty()).then(|| format!("{base}{path}"));
        let mut resource = Resource::builder()
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        if !env_set("OTEL_SERVICE_NAME") {
            resource = resource.with_service_name("spamflow");
        }
        let resource = resource.build();
        let scope = InstrumentationScope::builder("spamflow")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(SCHEMA_URL)
            .build();

        let meters = if want_metrics {
            let mut b = opentelemetry_otlp::MetricExporter::builder().with_http();
            if let Some(e) = endpoint("/v1/metrics") {
                b = b.with_endpoint(e);
            }
            let mut reader = PeriodicReader::builder(b.build()?);
            if !env_set("OTEL_METRIC_EXPORT_INTERVAL") {
                reader = reader.with_interval(Duration::from_millis(t.export_interval_ms));
            }
            let provider = SdkMeterProvider::builder()
                .with_resource(resource.clone())
                .with_reader(reader.build())
                .build();
            register(&provider.meter_with_scope(scope.clone()), cfg, metrics);
            Some(provider)
        } else {
            None
        };
        let tracer = if want_traces {
            let mut b = opentelemetry_otlp::SpanExporter::builder().with_http();
            if let Some(e) = endpoint("/v1/traces") {
                b = b.with_endpoint(e);
            }
            // Which messages get a span is decided before one is made (`Spans::picks`);
            // every span made is kept.
            let provider = SdkTracerProvider::builder()
                .with_resource(resource)
                .with_sampler(Sampler::AlwaysOn)
                .with_batch_exporter(b.build()?)
                .build();
            let _ = SPANS.set(Spans {
                tracer: provider.tracer_with_scope(scope),
                topic: cfg.topics.submissions.clone(),
                ratio_bound: (t.message_sample_ratio * (1u64 << 63) as f64) as u64,
            });
            Some(provider)
        } else {
            None
        };
        tracing::info!(
            metrics = want_metrics,
            traces = want_traces,
            endpoint = if base.is_empty() {
                "from OTEL_EXPORTER_OTLP_*"
            } else {
                base
            },
            "OpenTelemetry export over OTLP/HTTP"
        );
        Ok(Some(Telemetry { meters, tracer }))
    }

    /// Exports what is left and stops the exporters.
    pub fn shutdown(self) {
        if let Some(t) = self.tracer {
            if let Err(e) = t.shutdown() {
                tracing::warn!(error = %e, "OpenTelemetry span export did not finish");
            }
        }
        if let Some(m) = self.meters {
            if let Err(e) = m.shutdown() {
                tracing::warn!(error = %e, "OpenTelemetry metric export did not finish");
            }
        }
    }
}

/// Registers every series of [`Metrics`] as an instrument of `meter`.
fn register(meter: &Meter, cfg: &Config, metrics: &Arc<Metrics>) {
    let messaging = vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.destination.name", cfg.topics.submissions.clone()),
        KeyValue::new("messaging.consumer.group.name", cfg.kafka.group_id.clone()),
    ];
    for s in SERIES {
        let m = metrics.clone();
        let (name, attrs) = match semconv_name(s.name) {
            Some(n) => (n.to_owned(), messaging.clone()),
            None => (otel_name(s.name), Vec::new()),
        };
        match s.value {
            Value::Counter(f) => {
                meter
                    .u64_observable_counter(name)
                    .with_description(s.help)
                    .with_callback(move |o| o.observe(f(&m), &attrs))
                    .build();
            }
            Value::Gauge(f) => {
                meter
                    .i64_observable_gauge(name)
                    .with_description(s.help)
                    .with_callback(move |o| o.observe(f(&m), &attrs))
                    .build();
            }
        }
    }
    let m = metrics.clone();
    meter
        .u64_observable_counter("spamflow.verdicts")
        .with_description(VERDICTS_HELP)
        .with_callback(move |o| {
            for a in Action::ALL {
                o.observe(m.verdicts_of(a), &[KeyValue::new("action", a.as_str())]);
            }
        })
        .build();
    let by_action = |name: &'static str,
                     help: &'static str,
                     label: &'static str,
                     rows: fn(&Metrics) -> crate::metrics::ByAction| {
        let m = metrics.clone();
        meter
            .u64_observable_counter(name)
            .with_description(help)
            .with_callback(move |o| {
                for (value, counts) in rows(&m) {
                    for a in Action::ALL {
                        o.observe(
                            counts[a.index()],
                            &[
                                KeyValue::new(label, value.clone()),
                                KeyValue::new("action", a.as_str()),
                            ],
                        );
                    }
                }
            })
            .build();
    };
    by_action(
        "spamflow.relay_verdicts",
        RELAY_VERDICTS_HELP,
        "relay_operator",
        |m| m.operators.relay.snapshot(),
    );
    by_action(
        "spamflow.category_verdicts",
        CATEGORY_VERDICTS_HELP,
        "category",
        |m| m.operators.relay.categories(),
    );
    let m = metrics.clone();
    meter
        .u64_observable_counter("spamflow.dlq")
        .with_description(DLQ_HELP)
        .with_callback(move |o| {
            for (i, code) in DLQ_CODES.iter().enumerate() {
                o.observe(m.dlq_of(i), &[KeyValue::new("code", *code)]);
            }
        })
        .build();
    let bounds: Vec<f64> = AGE_BUCKETS_US.iter().map(|us| *us as f64 / 1e6).collect();
    for h in HISTOGRAMS {
        let (name, attrs) = match semconv_name(h.name) {
            Some(n) => (n.to_owned(), messaging.clone()),
            None => (otel_name(h.name), Vec::new()),
        };
        let hist = meter
            .f64_histogram(name)
            .with_description(h.help)
            .with_unit("s")
            .with_boundaries(bounds.clone())
            .build();
        (h.of)(metrics).export_to(hist, attrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_refuses_what_the_spec_refuses() {
        let v = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(v.as_bytes()).unwrap();
        assert!(tp.sampled());
        assert_eq!(tp.header(), v);
        assert_eq!(tp.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        // A later version may add fields; version 00 may not.
        assert!(TraceParent::parse(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra"
        )
        .is_some());
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
            "garbage",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(TraceParent::parse(&[0xff, 0xfe]), None);
    }

    #[test]
    fn otlp_names_follow_the_conventions_or_the_prometheus_name() {
        assert_eq!(
            otel_name("spamflow_rules_reloads_total"),
            "spamflow.rules_reloads"
        );
        assert_eq!(
            otel_name("spamflow_commit_duration_seconds"),
            "spamflow.commit_duration"
        );
        assert_eq!(otel_name("spamflow_ready"), "spamflow.ready");
        assert_eq!(
            semconv_name("spamflow_events_consumed_total"),
            Some("messaging.client.consumed.messages")
        );
        // Every series has a distinct OTLP name.
        let mut names: Vec<String> = SERIES
            .iter()
            .map(|s| s.name)
            .chain(HISTOGRAMS.iter().map(|h| h.name))
            .map(|n| semconv_name(n).map_or_else(|| otel_name(n), str::to_owned))
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
