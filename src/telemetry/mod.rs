//! Owns telemetry: the OpenTelemetry meter provider exported in Prometheus text
//! format on `GET /metrics`, and the instruments each process records.
//!
//! - [`registry`]: the Prometheus registry behind the OpenTelemetry exporter.
//! - [`node_metrics`]: the seed's failover metrics and what an operator needs more.
//! - [`gateway_metrics`]: requests by route and status, produce latency.
//!
//! Names follow the seed (`failover_events_total`, `leader_status`, ...); label
//! values are bounded (routes, status codes, reasons, partitions), never ids.

pub mod gateway_metrics;
pub mod node_metrics;
pub mod registry;
