//! Owns the schema: the SQL under `migrations/`, embedded in the binary, applied
//! and reverted through diesel's migration harness over the pure-Rust async driver.
//!
//! diesel's harness is synchronous; it runs on a blocking thread with its own
//! small runtime (the wrapper's), so it is safe to call from async code.

use std::collections::HashSet;

use diesel::migration::{MigrationSource, MigrationVersion};
use diesel::pg::Pg;
use diesel::QueryableByName;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use diesel_async::RunQueryDsl;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::shared::postgres::tls;

/// Every migration under `migrations/`, compiled in.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Default privileges open every new table to a working role (the sink) with
/// `SELECT, INSERT, UPDATE`, because it moves `consumer_offsets` and
/// `leader_fence`. Every other table is taken back to what a working role
/// needs: diesel's bookkeeping read-only (a node checks the schema is current;
/// only the owner marks a migration applied), and the stored rows append-only
/// (the sink inserts with `ON CONFLICT DO NOTHING`), so a stolen sink password
/// can add rows but not rewrite or remove the ones stored.
const PRIVILEGES_TAKEN_BACK: &str = "DO $$ DECLARE granted record; BEGIN \
    FOR granted IN SELECT DISTINCT g.grantee, g.table_name, g.privilege_type \
        FROM information_schema.role_table_grants g \
        WHERE g.table_schema = current_schema() AND g.grantee NOT IN (current_user, 'PUBLIC') \
          AND ((g.table_name = '__diesel_schema_migrations' \
                AND g.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')) \
            OR (g.table_name IN ('log_events', 'dead_letters', 'failover_events') \
                AND g.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE'))) \
    LOOP \
        EXECUTE format('REVOKE %s ON %I FROM %I', granted.privilege_type, granted.table_name, granted.grantee); \
    END LOOP; END $$";

/// Advisory-lock key serialising migrations across processes ("undrstdy" in ASCII).
const MIGRATION_LOCK_KEY: i64 = 0x756e_6472_7374_6479;

/// Why a migration step failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    /// PostgreSQL could not be reached or refused the login.
    #[error("could not connect to PostgreSQL: {0}")]
    Connect(#[from] diesel::ConnectionError),
    /// A migration's SQL failed.
    #[error("migration failed: {0}")]
    Apply(String),
    /// The blocking task running the harness could not be joined.
    #[error("migration task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Which direction to move the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationStep {
    /// Apply every pending migration.
    UpAll,
    /// Revert the newest applied migration.
    DownOne,
    /// Revert every applied migration.
    DownAll,
}

/// Moves the schema of the database at `url` (over `tls` when given);
/// returns the versions applied or reverted.
pub async fn migrate(
    url: &str,
    tls: Option<MakeRustlsConnect>,
    step: MigrationStep,
) -> Result<Vec<String>, MigrationError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || migrate_blocking(&url, tls.as_ref(), step)).await?
}

/// Lists the versions already applied, oldest first.
pub async fn applied(
    url: &str,
    tls: Option<MakeRustlsConnect>,
) -> Result<Vec<String>, MigrationError> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut connection = open(&url, tls.as_ref())?;
        let mut versions = connection
            .applied_migrations()
            .map_err(|error| MigrationError::Apply(error.to_string()))?;
        versions.sort();
        Ok(versions.iter().map(ToString::to_string).collect())
    })
    .await?
}

/// Counts the migrations not yet applied to the database at `url`. Needs only
/// `SELECT` on diesel's bookkeeping table, which the sink role is granted: a
/// node that may not change the schema can still tell whether it is current.
/// (diesel's harness cannot ask: it first runs `CREATE TABLE IF NOT EXISTS`,
/// which PostgreSQL refuses to a role without `CREATE` on the schema.)
pub async fn pending(url: &str, tls: Option<MakeRustlsConnect>) -> Result<usize, MigrationError> {
    #[derive(QueryableByName)]
    struct Applied {
        #[diesel(sql_type = diesel::sql_types::Text)]
        version: String,
    }
    let mut connection = tls::connect(url, tls.as_ref()).await?;
    let applied: HashSet<String> =
        diesel::sql_query("SELECT version::text AS version FROM __diesel_schema_migrations")
            .load::<Applied>(&mut connection)
            .await
            .map_err(|error| MigrationError::Apply(error.to_string()))?
            .into_iter()
            .map(|row| row.version)
            .collect();
    let known = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(|error| MigrationError::Apply(error.to_string()))?;
    let known_versions: HashSet<String> = known
        .iter()
        .map(|migration| migration.name().version().to_string())
        .collect();
    let newer: Vec<&String> = applied.difference(&known_versions).collect();
    if !newer.is_empty() {
        // A newer release migrated the schema: this binary may not know
        // what the new migrations changed.
        tracing::warn!(
            ?newer,
            "the schema has migrations this binary does not know; upgrade it"
        );
    }
    Ok(known
        .iter()
        .filter(|migration| !applied.contains(&migration.name().version().to_string()))
        .count())
}

/// A blocking connection for diesel_migrations, on a blocking thread of the
/// caller's runtime.
fn open(
    url: &str,
    tls: Option<&MakeRustlsConnect>,
) -> Result<AsyncConnectionWrapper<AsyncPgConnection>, MigrationError> {
    let connection = tokio::runtime::Handle::current().block_on(tls::connect(url, tls))?;
    Ok(AsyncConnectionWrapper::from(connection))
}

fn migrate_blocking(
    url: &str,
    tls: Option<&MakeRustlsConnect>,
    step: MigrationStep,
) -> Result<Vec<String>, MigrationError> {
    fn names(versions: &[MigrationVersion<'_>]) -> Vec<String> {
        versions.iter().map(ToString::to_string).collect()
    }
    let mut connection = open(url, tls)?;
    // Nodes start together: one applies the migrations, the others wait for it.
    // The session-level lock ends with the connection.
    diesel::RunQueryDsl::execute(
        diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})")),
        &mut connection,
    )
    .map_err(|error| MigrationError::Apply(error.to_string()))?;
    match step {
        MigrationStep::UpAll => connection
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| names(&versions))
            .and_then(|versions| {
                diesel::RunQueryDsl::execute(
                    diesel::sql_query(PRIVILEGES_TAKEN_BACK),
                    &mut connection,
                )?;
                Ok(versions)
            }),
        MigrationStep::DownOne => connection
            .revert_last_migration(MIGRATIONS)
            .map(|version| vec![version.to_string()]),
        MigrationStep::DownAll => connection
            .revert_all_migrations(MIGRATIONS)
            .map(|versions| names(&versions)),
    }
    .map_err(|error| MigrationError::Apply(error.to_string()))
}
