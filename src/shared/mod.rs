//! Owns the infrastructure the gateway, the node and the lab share: one
//! adapter per dependency, telemetry, HTTP plumbing, and the small rules every
//! caller of a dependency follows.
//!
//! - [`kafka`]: client settings, the producer, topic admin, the broker probe.
//! - [`postgres`]: migrations, the pool, TLS.
//! - [`redis_store`]: the lazy, self-healing Redis connection.
//! - [`telemetry`]: the Prometheus registry, breaker metrics, tracing and OTLP.
//! - [`http`]: JSON errors, `/metrics`, OpenAPI.
//! - [`circuit_breaker`], [`retry_policy`]: how dependency calls fail fast and retry.
//! - [`pem_file`]: the CA bundles, certificates and keys TLS settings name.
//! - [`printable`]: escaping untrusted text before it is logged or stored.
//! - [`redact`]: passwords hidden in every URL a process prints.

pub mod circuit_breaker;
pub(crate) mod http;
pub(crate) mod kafka;
pub(crate) mod pem_file;
pub mod postgres;
pub(crate) mod printable;
pub(crate) mod redact;
pub mod redis_store;
pub(crate) mod retry_policy;
pub(crate) mod telemetry;
