//! Owns what every Understudy process does before its work, in the deployed
//! binary and in the lab alike: one TLS crypto provider for the process, the
//! configuration (defaults, file, environment), and logging and tracing.

use std::path::Path;

use crate::config::{Config, ConfigError, Role};
use crate::shared::telemetry::tracing_setup::{self, TracingError, TracingGuard};

/// Why a process could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Something installed a process-wide TLS provider first.
    #[error("a TLS crypto provider was installed before start")]
    CryptoProvider,
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Logging or tracing could not be set up.
    #[error(transparent)]
    Tracing(#[from] TracingError),
}

/// Installs the TLS provider, loads the configuration for `role` (from
/// `config_file` when given, then the environment) and starts logging; the
/// guard flushes traces when dropped.
pub fn start(config_file: Option<&Path>, role: Role) -> Result<(Config, TracingGuard), StartError> {
    // Two rustls crypto providers are linked (ring, and aws-lc through the
    // ZooKeeper and HTTP clients); rustls then picks no process default, and
    // the clients that take it (ZooKeeper's, Redis's) would panic without one.
    rustls::crypto::ring::default_provider()
        .install_default()
        .map_err(|_| StartError::CryptoProvider)?;
    let config = Config::load(config_file, role)?;
    let service = match role {
        Role::Gateway => "understudy-gateway",
        Role::Node => "understudy-node",
        Role::Tool => "understudy",
    };
    let tracing = tracing_setup::init(service, &config.telemetry)?;
    Ok((config, tracing))
}

/// The runtime a command-line tool (migrations, the lab's commands) runs on.
pub fn tool_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
