//! Owns the HTTP surfaces.
//!
//! - [`gateway`]: the gateway server, its shared state and routes.
//! - [`log_ingest`]: `POST /api/logs` and `POST /api/logs/batch`.
//! - [`system_status`]: `GET /api/system/status`.
//! - [`health`]: `/healthz` and `/readyz`.
//! - [`request_body`]: bounded body reading and media-type checks.
//! - [`api_error`]: every error as a status code and a JSON body.

pub mod api_error;
pub mod gateway;
pub mod health;
pub mod log_ingest;
pub mod request_body;
pub mod system_status;
