//! Owns the gateway: the stateless HTTP front that validates log events and
//! publishes them to Kafka, answering 2xx only once the broker acknowledged.
//!
//! - [`process`]: its shared state, routes, server and graceful exit.
//! - [`log_ingest`]: `POST /api/logs` and `POST /api/logs/batch`.
//! - [`request_body`]: bounded body reading and media-type checks.
//! - [`idempotency`]: the `Idempotency-Key` header, turned into stable event ids.
//! - [`rate_limit`]: per-client limits on publishing (429 with Retry-After).
//! - [`system_status`]: `GET /api/system/status`, from every node's answer.
//! - [`node_directory`]: where the gateway finds the nodes (a list, or ZooKeeper).
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`metrics`]: requests by route and status, produce latency.

pub(crate) mod health;
pub(crate) mod idempotency;
pub(crate) mod log_ingest;
pub(crate) mod metrics;
pub(crate) mod node_directory;
pub(crate) mod process;
pub(crate) mod rate_limit;
pub(crate) mod request_body;
pub(crate) mod system_status;

pub use self::process::run;
