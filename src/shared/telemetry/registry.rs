//! Owns the metrics pipeline: an OpenTelemetry `SdkMeterProvider` whose reader is
//! the Prometheus exporter, writing into a registry that `/metrics` encodes.

use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

/// Why the metrics pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The exporter refused its configuration.
    #[error("could not build the prometheus exporter: {0}")]
    Exporter(#[from] opentelemetry_sdk::error::OTelSdkError),
    /// An instrument's name or labels clash with one already registered.
    #[error("could not register a metric: {0}")]
    Register(#[from] prometheus::Error),
}

/// A process's metrics: the meter to create instruments and the registry to scrape.
#[derive(Clone)]
pub struct MetricsRegistry {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
}

impl MetricsRegistry {
    /// A fresh pipeline (one per process; tests may build several).
    pub fn new() -> Result<Self, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build()?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        Ok(Self { registry, provider })
    }

    /// The meter instruments are created from.
    pub fn meter(&self) -> Meter {
        self.provider.meter("understudy")
    }

    /// Adds a Prometheus-native instrument beside the OpenTelemetry ones.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), MetricsError> {
        self.registry.register(collector)?;
        Ok(())
    }

    /// Every metric in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut text = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::warn!(%error, "could not encode metrics");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}
