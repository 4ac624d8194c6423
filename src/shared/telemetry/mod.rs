//! Owns telemetry: the OpenTelemetry meter provider exported in Prometheus text
//! format on `GET /metrics`, and traces; each process's instruments live with it
//! ([`crate::node::metrics`], [`crate::gateway::metrics`]).
//!
//! - [`registry`]: the Prometheus registry behind the OpenTelemetry exporter.
//! - [`breaker_metrics`]: circuit breaker state and refused calls per dependency.
//! - [`tracing_setup`]: logs, OTLP span export, trace context across Kafka.
//!
//! Names follow the seed (`failover_events_total`, `leader_status`, ...); label
//! values are bounded (routes, status codes, reasons, partitions), never ids.

pub mod breaker_metrics;
pub mod registry;
pub mod tracing_setup;
