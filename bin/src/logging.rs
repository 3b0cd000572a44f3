//! One tracing set-up for every subcommand: `RUST_LOG` filter, pretty or JSON on stderr, and,
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans exported over OTLP (HTTP/protobuf).
//!
//! Traces: with the endpoint set, every `tracing` span becomes an OpenTelemetry span
//! (service name `OTEL_SERVICE_NAME`, default `sluice-<command>`), batched and sent to
//! `$OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces`; the transport's hooks ([`sluice_net::trace`])
//! put the caller's trace context into each request's envelope and make it the parent of the
//! server's `rpc` span. Without the variable none of this is set up.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::SdkTracerProvider;
use sluice_net::TraceContext;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line (with span fields), for log shippers.
    Json,
}

/// The OTLP endpoint variable (base URL; spans go to `<it>/v1/traces`).
pub const OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The service name variable.
pub const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// What must outlive the command: the span exporter, flushed by [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans still buffered and stops the exporter (a no-op without one).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: could not flush traces: {e}");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Installs the global subscriber for subcommand `command` (`broker`, `console-producer`).
/// Safe to call more than once (later calls install nothing).
pub fn init(format: LogFormat, command: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    // Colours only for a person at a terminal, never into files or pipes.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = match format {
        LogFormat::Pretty => fmt.compact().boxed(),
        LogFormat::Json => fmt.json().with_current_span(true).with_span_list(true).boxed(),
    };
    let provider = std::env::var(OTLP_ENDPOINT).ok().filter(|e| !e.trim().is_empty()).and_then(|_| {
        let name = std::env::var(SERVICE_NAME)
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("sluice-{command}"));
        match exporter(name) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("warning: traces are not exported: {e}");
                None
            }
        }
    });
    let otel = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("sluice")));
    let installed = tracing_subscriber::registry().with(fmt).with(otel).with(filter).try_init().is_ok();
    if installed && provider.is_some() {
        sluice_net::trace::install(sluice_net::trace::Hooks { current: current_context, set_parent });
    }
    Telemetry { provider: provider.filter(|_| installed) }
}

/// An OTLP HTTP/protobuf exporter (endpoint from the environment) behind a batch processor.
fn exporter(service: String) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The current span's OpenTelemetry context as a W3C trace context.
fn current_context() -> Option<TraceContext> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}

/// Makes a remote caller's context the parent of `span`.
fn set_parent(span: &tracing::Span, parent: &TraceContext) {
    let sc = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
}
