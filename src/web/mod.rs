//! Owns the HTTP surfaces.
//!
//! - [`gateway`]: the gateway server, its shared state and routes.
//! - [`log_ingest`]: `POST /api/logs` and `POST /api/logs/batch`.
//! - [`system_status`]: `GET /api/system/status`.
//! - [`health`]: the gateway's `/healthz` and `/readyz`.
//! - [`metrics_endpoint`]: `/metrics`, on the main port or a listener of its own.
//! - [`openapi`]: the OpenAPI descriptions, served at `/api/openapi.json`.
//! - [`rate_limit`]: per-client limits on publishing (429 with Retry-After).
//! - [`node_api`]: a node's failover status, history, stepdown and probes.
//! - [`presence_stream`]: the never-ending answer standbys hold to the leader.
//! - [`node_directory`]: where the gateway finds the nodes (a list, or ZooKeeper).
//! - [`request_body`]: bounded body reading and media-type checks.
//! - [`idempotency`]: the `Idempotency-Key` header, turned into stable event ids.
//! - [`api_error`]: every error as a status code and a JSON body.

pub mod api_error;
pub mod gateway;
pub mod health;
pub mod idempotency;
pub mod log_ingest;
pub mod metrics_endpoint;
pub mod node_api;
pub mod node_directory;
pub mod openapi;
pub mod presence_stream;
pub mod rate_limit;
pub mod request_body;
pub mod system_status;
