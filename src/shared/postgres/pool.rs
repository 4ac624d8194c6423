//! Owns the connection pool: bounded size, bounded wait for a connection, and
//! connections that are re-established after PostgreSQL restarts.
//!
//! Every connection is set up so that no leader can stall its successor: a
//! paused (SIGSTOP) or partitioned leader may hold the fence row locked in an
//! open transaction, and PostgreSQL ends such a session after
//! `idle_in_transaction_session_timeout` — set to the time after which the
//! leader is replaced anyway ([`crate::config::Config::leadership_loss_bound`]),
//! while a live leader's statements follow each other within milliseconds. A
//! statement can run for at most `statement_timeout`.

use std::time::Duration;

use diesel::ConnectionError;
use diesel_async::pooled_connection::bb8::Pool;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures::FutureExt;

use crate::config::PostgresConfig;
use crate::shared::postgres::tls;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The node's pool of PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;

/// Longest one statement may run.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the pool without connecting: a node starts while PostgreSQL is down.
/// Connections use `tls` when given ([`tls::connector`]).
pub fn build_pool(
    postgres: &PostgresConfig,
    tls: Option<MakeRustlsConnect>,
    idle_in_transaction_timeout: Duration,
) -> PgPool {
    let mut config = ManagerConfig::<AsyncPgConnection>::default();
    config.custom_setup = Box::new(move |url| {
        establish_guarded(url.to_owned(), tls.clone(), idle_in_transaction_timeout).boxed()
    });
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(&postgres.url, config);
    Pool::builder()
        .max_size(postgres.pool_size)
        // A standby keeps a connection open, so its takeover transaction does
        // not pay for a TCP connect and SCRAM authentication.
        .min_idle(Some(1))
        .connection_timeout(Duration::from_millis(postgres.connect_timeout_ms))
        // A refused connection fails the call at once instead of being retried
        // until the timeout: the caller's backoff and circuit breaker decide
        // when to try again, and an outage is seen in milliseconds.
        .retry_connection(false)
        .build_unchecked(manager)
}

async fn establish_guarded(
    url: String,
    tls: Option<MakeRustlsConnect>,
    idle_in_transaction_timeout: Duration,
) -> Result<AsyncPgConnection, ConnectionError> {
    let mut connection = tls::connect(&url, tls.as_ref()).await?;
    for setting in [
        format!(
            "SET idle_in_transaction_session_timeout = {}",
            idle_in_transaction_timeout.as_millis()
        ),
        format!("SET statement_timeout = {}", STATEMENT_TIMEOUT.as_millis()),
    ] {
        diesel::sql_query(setting)
            .execute(&mut connection)
            .await
            .map_err(ConnectionError::CouldntSetupConfiguration)?;
    }
    Ok(connection)
}
