//! Owns logging and tracing: a `tracing` subscriber that prints to stderr and,
//! when `telemetry.otlp_endpoint` is set, exports spans over OTLP/HTTP (JSON) to
//! Jaeger or any collector; plus the W3C trace-context propagation that carries
//! a trace from the gateway's request through Kafka record headers to the node.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};
use crate::shared::pem_file::{self, PemContent, PemFileError};

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TracingError {
    /// The OTLP exporter refused its configuration.
    #[error("could not build the OTLP exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    /// The collector's CA bundle cannot be used.
    #[error("{0}")]
    CaFile(#[from] PemFileError),
    /// The HTTP client for the collector could not be built.
    #[error("telemetry.otlp_ca_file: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Keeps the span exporter alive; flushes it when the process ends.
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("could not flush traces: {error}");
            }
        }
    }
}

/// Installs the global subscriber for `service` (e.g. `understudy-node`).
pub fn init(service: &str, telemetry: &TelemetryConfig) -> Result<TracingGuard, TracingError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match telemetry.log_format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    if telemetry.otlp_endpoint.is_empty() {
        tracing_subscriber::registry().with(filter).with(fmt).init();
        return Ok(TracingGuard { provider: None });
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(collector_client(telemetry)?)
        .with_protocol(Protocol::HttpJson)
        .with_endpoint(format!(
            "{}/v1/traces",
            telemetry.otlp_endpoint.trim_end_matches('/')
        ))
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("understudy"));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    Ok(TracingGuard {
        provider: Some(provider),
    })
}

/// The blocking client the batch exporter posts spans with (it runs on its
/// own thread): `https://` collectors verified against the system's roots,
/// or only against `telemetry.otlp_ca_file` when it is set.
fn collector_client(
    telemetry: &TelemetryConfig,
) -> Result<reqwest::blocking::Client, TracingError> {
    let mut builder = reqwest::blocking::Client::builder().timeout(EXPORT_TIMEOUT);
    if !telemetry.otlp_ca_file.is_empty() {
        let bundle = pem_file::read(
            "telemetry.otlp_ca_file",
            &telemetry.otlp_ca_file,
            PemContent::Certificates,
        )?;
        builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(bundle.as_bytes())?);
    }
    Ok(builder.build()?)
}

/// Upper bound on one export: a silent collector must not hold spans forever.
const EXPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The W3C trace context (`traceparent`, `tracestate`) of the current span.
pub fn current_trace_headers() -> HashMap<String, String> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let mut headers = HeaderMap(HashMap::new());
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut headers);
    headers.0
}

/// The remote parent carried by `headers` (an empty context when absent).
pub fn parent_from_headers(headers: &HashMap<String, String>) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderMapRef(headers))
}

struct HeaderMap(HashMap<String, String>);

impl Injector for HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct HeaderMapRef<'a>(&'a HashMap<String, String>);

impl Extractor for HeaderMapRef<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}
