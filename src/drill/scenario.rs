//! Owns the injected faults and one drill cycle: find the leader, inject the
//! fault, wait for the successor's first commit, put the cluster back to full
//! strength, and measure what happened from PostgreSQL's own records.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use serde::Serialize;

use crate::drill::local_cluster::LocalCluster;
use crate::drill::DrillError;

/// How long a cycle may wait for a leader or a commit.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A fault to inject into the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// SIGKILL the leader (crash): detection takes one session timeout.
    Sigkill,
    /// SIGTERM the leader: graceful hand-over.
    Sigterm,
    /// `POST /api/failover/stepdown` on the leader.
    Stepdown,
    /// SIGSTOP the leader past its session, SIGCONT after the successor commits.
    Sigstop,
    /// SIGKILL the leader, then its successor as soon as it claims leadership.
    Cascade,
    /// A random sequence of the above, from a printed seed.
    Mixed,
}

impl Scenario {
    /// The scenarios `Mixed` draws from.
    pub const SINGLE: [Scenario; 5] = [
        Scenario::Sigkill,
        Scenario::Sigterm,
        Scenario::Stepdown,
        Scenario::Sigstop,
        Scenario::Cascade,
    ];

    /// Injected faults per cycle (a cascade kills two leaders).
    pub fn faults(self) -> usize {
        if self == Scenario::Cascade {
            2
        } else {
            1
        }
    }
}

/// What one cycle measured.
#[derive(Debug, Clone, Serialize)]
pub struct CycleResult {
    /// Cycle number, from 1.
    pub cycle: usize,
    /// The fault injected.
    pub scenario: Scenario,
    /// When it was injected.
    pub fault_at: DateTime<Utc>,
    /// The leader's epoch before.
    pub epoch_before: i64,
    /// The final successor's epoch.
    pub epoch_after: i64,
    /// Fault to the successor's detection of the loss (from `failover_events`).
    pub detection_ms: i64,
    /// Fault to the successor's first commit (from `log_events.stored_at`): the RTO.
    pub rto_ms: i64,
    /// Rows of an older epoch stored after the successor's first commit (must be 0).
    pub stale_commits: i64,
}

/// Runs one cycle of `scenario` against `cluster`, whose current epoch is `epoch`.
pub async fn run_cycle(
    cluster: &mut LocalCluster,
    postgres: &tokio_postgres::Client,
    scenario: Scenario,
    cycle: usize,
) -> Result<CycleResult, DrillError> {
    let (leader, epoch_before) = cluster.wait_for_leader(0, CYCLE_TIMEOUT).await?;
    let fault_at = Utc::now();
    let mut restart = Vec::new();
    let mut resume = None;
    let mut above = epoch_before;
    match scenario {
        Scenario::Sigkill => {
            cluster.signal(leader, Signal::SIGKILL)?;
            drop(cluster.take_node(leader));
            restart.push(leader);
        }
        Scenario::Sigterm => {
            cluster.signal(leader, Signal::SIGTERM)?;
            if let Some(mut node) = cluster.take_node(leader) {
                node.wait_exit(Duration::from_secs(10));
            }
            restart.push(leader);
        }
        Scenario::Stepdown => cluster.step_down(leader).await?,
        Scenario::Sigstop => {
            cluster.signal(leader, Signal::SIGSTOP)?;
            resume = Some(leader);
        }
        Scenario::Cascade => {
            cluster.signal(leader, Signal::SIGKILL)?;
            drop(cluster.take_node(leader));
            restart.push(leader);
            let (second, second_epoch) = claimant(cluster, epoch_before).await?;
            cluster.signal(second, Signal::SIGKILL)?;
            drop(cluster.take_node(second));
            restart.push(second);
            above = second_epoch;
        }
        Scenario::Mixed => {
            return Err(DrillError::Malformed(
                "a mixed drill picks a single scenario per cycle".into(),
            ))
        }
    }
    let (_, epoch_after) = cluster.wait_for_leader(above, CYCLE_TIMEOUT).await?;
    let first_commit = first_commit_of(postgres, &cluster.topic, epoch_after).await?;
    let detected_at = detection_of(postgres, &cluster.name, epoch_after).await?;
    if let Some(slot) = resume {
        cluster.signal(slot, Signal::SIGCONT)?;
        cluster.wait_for_standby(slot, CYCLE_TIMEOUT).await?;
    }
    for slot in restart {
        cluster.start_node(slot)?;
        cluster.wait_for_standby(slot, CYCLE_TIMEOUT).await?;
    }
    let stale_commits: i64 = postgres
        .query_one(
            "SELECT COUNT(*) FROM log_events WHERE topic = $1 AND epoch < $2 AND stored_at > $3",
            &[&cluster.topic, &epoch_after, &first_commit],
        )
        .await?
        .get(0);
    Ok(CycleResult {
        cycle,
        scenario,
        fault_at,
        epoch_before,
        epoch_after,
        detection_ms: (detected_at - fault_at).num_milliseconds(),
        rto_ms: (first_commit - fault_at).num_milliseconds(),
        stale_commits,
    })
}

/// The first node to claim an epoch above `epoch` (leading or still taking over).
async fn claimant(cluster: &LocalCluster, epoch: i64) -> Result<(usize, i64), DrillError> {
    let deadline = tokio::time::Instant::now() + CYCLE_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        for slot in 0..cluster.nodes.len() {
            if let Some(status) = cluster.status(slot).await {
                let claimed = status["epoch"].as_i64().unwrap_or(0);
                if status["role"] != "STANDBY" && claimed > epoch {
                    return Ok((slot, claimed));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Err(DrillError::Timeout(
        "a successor to claim leadership".into(),
    ))
}

async fn first_commit_of(
    postgres: &tokio_postgres::Client,
    topic: &str,
    epoch: i64,
) -> Result<DateTime<Utc>, DrillError> {
    let deadline = tokio::time::Instant::now() + CYCLE_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        let first: Option<DateTime<Utc>> = postgres
            .query_one(
                "SELECT MIN(stored_at) FROM log_events WHERE topic = $1 AND epoch = $2",
                &[&topic, &epoch],
            )
            .await?
            .get(0);
        if let Some(first) = first {
            return Ok(first);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(DrillError::Timeout(format!("a commit by epoch {epoch}")))
}

async fn detection_of(
    postgres: &tokio_postgres::Client,
    cluster: &str,
    epoch: i64,
) -> Result<DateTime<Utc>, DrillError> {
    let deadline = tokio::time::Instant::now() + CYCLE_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if let Some(row) = postgres
            .query_opt(
                "SELECT detected_at FROM failover_events WHERE cluster = $1 AND epoch = $2",
                &[&cluster, &epoch],
            )
            .await?
        {
            return Ok(row.get(0));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(DrillError::Timeout(format!(
        "the failover record of epoch {epoch}"
    )))
}

/// A small deterministic generator (splitmix64) for the mixed sequence: the
/// printed seed replays the same faults.
pub struct FaultSequence(u64);

impl FaultSequence {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next scenario.
    pub fn next_scenario(&mut self) -> Scenario {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Scenario::SINGLE[usize::try_from(z % Scenario::SINGLE.len() as u64).unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_the_same_faults_and_covers_them_all() {
        let first: Vec<Scenario> = (0..50)
            .scan(FaultSequence::new(7), |s, _| Some(s.next_scenario()))
            .collect();
        let again: Vec<Scenario> = (0..50)
            .scan(FaultSequence::new(7), |s, _| Some(s.next_scenario()))
            .collect();
        assert_eq!(first, again);
        for scenario in Scenario::SINGLE {
            assert!(first.contains(&scenario), "{scenario:?} never drawn");
        }
    }
}
