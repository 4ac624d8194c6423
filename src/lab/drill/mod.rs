//! Owns the failover drills and the tools they are made of: a load generator
//! that records every acknowledged event, a verifier that compares those with
//! PostgreSQL, a local cluster of real processes, fault injection, and the
//! report (table, JSON, SVG timeline).
//!
//! - [`load`]: steady load through the gateway, acknowledged ids recorded.
//! - [`verify`]: lost, duplicated and unexpected events; the seed's query.
//! - [`cluster_process`]: one child process: started, its address scraped, its log kept.
//! - [`local_cluster`]: a gateway and nodes started as child processes (the drills', the
//!   benchmarks' and the tests' one harness).
//! - [`scenario`]: the faults and one drill cycle.
//! - [`network_cut`]: a node cut off from ZooKeeper or from everything (cgroup + iptables).
//! - [`infra_control`]: dependency outages through `scripts/infra`.
//! - [`chaos`]: overlapping faults and hostile input around each fault; the liveness bound.
//! - [`clock_skew`]: a node run with its wall clock skewed (libfaketime and a shim).
//! - [`attribution`]: each leadership change attributed to a fault window, or false.
//! - [`report`]: percentiles, the printed table, JSON.
//! - [`timeline`]: committed events per second with faults and leadership changes, as SVG.
//! - [`runner`]: a whole drill, from cluster start to report.

pub mod attribution;
pub mod chaos;
pub mod clock_skew;
pub mod cluster_process;
pub mod infra_control;
pub mod load;
pub mod local_cluster;
pub mod network_cut;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod timeline;
pub mod verify;

/// Why a drill tool failed.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// An HTTP call to the gateway or a node failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// PostgreSQL could not be queried.
    #[error("postgresql: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// A file could not be read or written, or a process not started.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A process did not reach the expected state in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// A signal could not be sent.
    #[error("signal: {0}")]
    Signal(#[from] nix::errno::Errno),
    /// A fault could not be injected or healed.
    #[error("fault injection: {0}")]
    Fault(String),
    /// A file held something that is not a message id.
    #[error("malformed input: {0}")]
    Malformed(String),
    /// PostgreSQL does not record when transactions commit.
    #[error("postgresql's track_commit_timestamp is off: drills and benchmarks time commits by their commit timestamps; start postgresql with track_commit_timestamp = on (scripts/infra does)")]
    NoCommitTimestamps,
}

/// Fails unless PostgreSQL records commit timestamps: the drills' RTOs end at
/// a commit (`pg_xact_commit_timestamp`), not at `stored_at`, which is
/// stamped when a row is written, before its transaction commits.
pub async fn require_commit_timestamps(
    postgres: &tokio_postgres::Client,
) -> Result<(), DrillError> {
    let setting: String = postgres
        .query_one("SHOW track_commit_timestamp", &[])
        .await?
        .get(0);
    if setting == "on" {
        Ok(())
    } else {
        Err(DrillError::NoCommitTimestamps)
    }
}

/// Connects to PostgreSQL for the drill tools' queries.
pub async fn connect_postgres(url: &str) -> Result<tokio_postgres::Client, DrillError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgresql connection ended");
        }
    });
    Ok(client)
}
