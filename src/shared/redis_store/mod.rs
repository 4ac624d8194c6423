//! Owns the Redis connection the heartbeat ([`crate::node::heartbeat::store`])
//! and the state snapshot ([`crate::node::snapshot::store`]) write through: Lua
//! scripts that refuse to overwrite a higher epoch, so a stale leader can never
//! clobber what its successor wrote.
//!
//! Keys are namespaced per cluster: `understudy:{cluster}:leader:heartbeat` (the
//! seed's `leader:heartbeat`) and `understudy:{cluster}:consumer:state`.
//! The connection is lazy and self-healing: a node starts while Redis is down,
//! every call is bounded by a timeout, and calls succeed again once Redis returns.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::TlsCertificates;

use crate::config::RedisConfig;
use crate::shared::circuit_breaker::DependencyBreaker;
use crate::shared::pem_file::{self, PemContent, PemFileError};

/// Why a Redis call failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisStoreError {
    /// Redis refused the command or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// The configured CA bundle cannot be used.
    #[error("{0}")]
    CaFile(#[from] PemFileError),
    /// A stored value could not be decoded.
    #[error("stored value is malformed: {0}")]
    Malformed(String),
    /// The Redis circuit breaker is open: recent commands kept failing, so
    /// this one was not sent.
    #[error("redis circuit breaker open: recent commands failed")]
    CircuitOpen,
}

/// The node's Redis connection behind its circuit breaker; cheap to clone.
#[derive(Clone)]
pub struct GuardedRedis {
    connection: ConnectionManager,
    breaker: DependencyBreaker,
}

impl GuardedRedis {
    /// `connection` behind `breaker`.
    pub fn new(connection: ConnectionManager, breaker: DependencyBreaker) -> Self {
        Self {
            connection,
            breaker,
        }
    }

    /// Runs `command` on the connection if the breaker permits, recording
    /// whether Redis answered.
    pub async fn run<T, Command, Reply>(&self, command: Command) -> Result<T, RedisStoreError>
    where
        Command: FnOnce(ConnectionManager) -> Reply,
        Reply: Future<Output = Result<T, redis::RedisError>>,
    {
        if !self.breaker.permits() {
            return Err(RedisStoreError::CircuitOpen);
        }
        let result = command(self.connection.clone()).await;
        self.breaker.record(result.is_ok());
        Ok(result?)
    }

    /// The breaker in front of Redis.
    pub fn breaker(&self) -> &DependencyBreaker {
        &self.breaker
    }
}

/// Bound on one Redis command: a heartbeat must not wait longer than its interval.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// A lazily connected, reconnecting handle on the Redis of `redis`: over TLS
/// for a `rediss://` URL, verified against `tls_ca_file` when it is set.
pub fn connect_lazily(redis: &RedisConfig) -> Result<ConnectionManager, RedisStoreError> {
    let client = if redis.tls_ca_file.is_empty() {
        redis::Client::open(redis.url.as_str())?
    } else {
        let ca = pem_file::read(
            "redis.tls_ca_file",
            &redis.tls_ca_file,
            PemContent::Certificates,
        )?;
        redis::Client::build_with_tls(
            redis.url.as_str(),
            TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.into_bytes()),
            },
        )?
    };
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_max_delay(Duration::from_secs(1));
    Ok(client.get_connection_manager_lazy(config)?)
}

/// The key prefix of one cluster.
pub fn key_prefix(cluster: &str) -> String {
    format!("understudy:{cluster}:")
}
