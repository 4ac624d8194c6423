//! Owns the HTTP pieces the gateway and the node share.
//!
//! - [`api_error`]: every error as a status code and a JSON body.
//! - [`metrics_endpoint`]: `/metrics`, on the main port or a listener of its own.
//! - [`openapi`]: the OpenAPI descriptions of both APIs, served at `/api/openapi.json`.

pub mod api_error;
pub mod metrics_endpoint;
pub mod openapi;
