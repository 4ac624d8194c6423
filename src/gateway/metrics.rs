//! Owns the gateway's instruments: requests by route and status, produce
//! latency, and broker readiness.

use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::KeyValue;

use crate::shared::telemetry::registry::MetricsRegistry;

/// Produce-latency buckets.
const PRODUCE_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Every instrument the gateway records; cheap to clone.
#[derive(Clone)]
pub struct GatewayMetrics {
    requests: Counter<u64>,
    produce_duration: Histogram<f64>,
    broker_ready: Gauge<i64>,
}

impl GatewayMetrics {
    /// Creates the instruments in `registry`.
    pub fn new(registry: &MetricsRegistry) -> Self {
        let meter = registry.meter();
        let metrics = Self {
            requests: meter
                .u64_counter("gateway_requests")
                .with_description("HTTP requests answered, by route pattern and status code")
                .build(),
            produce_duration: meter
                .f64_histogram("gateway_produce_duration")
                .with_unit("s")
                .with_description(
                    "From handing a record to the producer to the broker's acknowledgement",
                )
                .with_boundaries(PRODUCE_BUCKETS.to_vec())
                .build(),
            broker_ready: meter
                .i64_gauge("gateway_broker_ready")
                .with_description("1 while the broker answers and the topic exists, else 0")
                .build(),
        };
        metrics.broker_ready(false);
        metrics
    }

    /// One answered request; `route` is the matched pattern, never the raw path.
    pub fn request(&self, route: &str, status: u16) {
        self.requests.add(
            1,
            &[
                KeyValue::new("route", route.to_owned()),
                KeyValue::new("status", i64::from(status)),
            ],
        );
    }

    /// One produce, acknowledged or not.
    pub fn produced(&self, took: Duration, acknowledged: bool) {
        self.produce_duration.record(
            took.as_secs_f64(),
            &[KeyValue::new(
                "outcome",
                if acknowledged { "ack" } else { "error" },
            )],
        );
    }

    /// Broker readiness as the probe sees it.
    pub fn broker_ready(&self, ready: bool) {
        self.broker_ready.record(i64::from(ready), &[]);
    }
}
