//! Owns telemetry: the OpenTelemetry meter provider exported in Prometheus text
//! format on `GET /metrics`, the instruments each process records, and traces.
//!
//! - [`registry`]: the Prometheus registry behind the OpenTelemetry exporter.
//! - [`node_metrics`]: the seed's failover metrics and what an operator needs more.
//! - [`gateway_metrics`]: requests by route and status, produce latency.
//! - [`breaker_metrics`]: circuit breaker state and refused calls per dependency.
//! - [`tracing_setup`]: logs, OTLP span export, trace context across Kafka.
//!
//! Names follow the seed (`failover_events_total`, `leader_status`, ...); label
//! values are bounded (routes, status codes, reasons, partitions), never ids.

pub mod breaker_metrics;
pub mod gateway_metrics;
pub mod node_metrics;
pub mod registry;
pub mod tracing_setup;
