//! Owns the injected faults and one drill cycle: find the leader, inject the
//! fault, wait for the successor's first commit (or, for a dependency outage,
//! for commits to resume), put the cluster back to full strength, and measure
//! what happened from PostgreSQL's own records.

use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::Signal;
use serde::Serialize;
use tokio_postgres::types::ToSql;

use crate::lab::drill::clock_skew::SkewedClocks;
use crate::lab::drill::infra_control::{InfraControl, Service};
use crate::lab::drill::local_cluster::LocalCluster;
use crate::lab::drill::network_cut::Cut;
use crate::lab::drill::{connect_postgres, DrillError};
use crate::node::status::{BreakerView, NodeDependencies, NodeRole};
use crate::shared::circuit_breaker::BreakerState;

/// How long a cycle may wait for a leader or a commit.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(30);

// Commits are timed by `pg_xact_commit_timestamp(xmin)`, the time of the
// row's transaction's commit record (written just before it is flushed):
// `stored_at` is stamped when the row is written, earlier in that
// transaction, and would leave the rest of the transaction and its commit out
// of every time measured to it. `stored_at` only narrows the rows to look at,
// with ten minutes of margin: a sink call, every statement of its transaction
// included, is bounded by one minute (`STORE_CALL_TIMEOUT`).

/// The first commit by an epoch: topic, epoch.
const FIRST_COMMIT_OF_EPOCH: &str =
    "SELECT MIN(pg_xact_commit_timestamp(xmin)) FROM log_events WHERE topic = $1 AND epoch = $2";
/// The first commit at or after a time: topic, time.
const FIRST_COMMIT_AFTER: &str = "SELECT MIN(pg_xact_commit_timestamp(xmin)) FROM log_events \
     WHERE topic = $1 AND stored_at >= $2::timestamptz - interval '10 minutes' \
       AND pg_xact_commit_timestamp(xmin) >= $2";
/// Rows committed within a window: topic, from, to.
const COMMITTED_BETWEEN: &str = "SELECT COUNT(*) FROM log_events \
     WHERE topic = $1 AND stored_at > $2::timestamptz - interval '10 minutes' AND stored_at < $3 \
       AND pg_xact_commit_timestamp(xmin) > $2 AND pg_xact_commit_timestamp(xmin) < $3";
/// Rows of an older epoch committed after a time: topic, epoch, time. Not
/// narrowed by `stored_at`: a stale commit is what this must never miss.
const STALE_COMMITS: &str = "SELECT COUNT(*) FROM log_events \
     WHERE topic = $1 AND epoch < $2 AND pg_xact_commit_timestamp(xmin) > $3";
/// When the successor of an epoch noticed its predecessor was gone: cluster, epoch.
const DETECTION_OF_EPOCH: &str =
    "SELECT detected_at FROM failover_events WHERE cluster = $1 AND epoch = $2";
/// The rest of that failover record: which node took the epoch (whose clock
/// wrote its times), when it led (its epoch claimed, the database fence
/// raised), and why: cluster, epoch.
const FAILOVER_OF_EPOCH: &str =
    "SELECT new_leader, recovered_at, reason FROM failover_events WHERE cluster = $1 AND epoch = $2";
/// How long leadership must stay put after an outage before the cycle is
/// measured. After a ZooKeeper restart, one session timeout more: the server
/// expires a session it has not heard from within one timeout of its start,
/// and a re-election follows, which must count in this cycle, not the next.
const STABLE_LEADERSHIP: Duration = Duration::from_millis(1500);

/// A fault to inject: into the leader, or into a dependency.
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
    /// Cut the leader off from ZooKeeper only; it can still reach PostgreSQL,
    /// so only the database fence stops it. Healed after the successor commits.
    ZookeeperCut,
    /// Cut the leader off from everything. Healed after the successor commits.
    Partition,
    /// SIGKILL the leader, then its successor as soon as it claims leadership.
    Cascade,
    /// Restart ZooKeeper (stop, start at once).
    ZookeeperRestart,
    /// ZooKeeper down for the outage time: longer than 7/5 of the session,
    /// every client gives its session up, and must reopen it when it returns.
    ZookeeperOutage,
    /// Restart the Kafka broker.
    BrokerRestart,
    /// Redis down for the outage time.
    RedisOutage,
    /// PostgreSQL down for the outage time.
    PostgresOutage,
    /// A random sequence of all the above, from a printed seed.
    Mixed,
    /// Faults from a printed seed (every one above), each overlapped by a
    /// standby restarted with a skewed clock (a quarter of the time), a paused
    /// standby (half the time), a partition added (one in sixteen), hostile
    /// events through the gateway and a poison record in the topic, with a
    /// liveness check after each (see [`crate::lab::drill::chaos`]).
    Chaos,
}

impl Scenario {
    /// The scenarios `Mixed` draws from.
    pub const SINGLE: [Scenario; 12] = [
        Scenario::Sigkill,
        Scenario::Sigterm,
        Scenario::Stepdown,
        Scenario::Sigstop,
        Scenario::ZookeeperCut,
        Scenario::Partition,
        Scenario::Cascade,
        Scenario::ZookeeperRestart,
        Scenario::ZookeeperOutage,
        Scenario::BrokerRestart,
        Scenario::RedisOutage,
        Scenario::PostgresOutage,
    ];

    /// Injected faults per cycle (a cascade kills two leaders).
    pub fn faults(self) -> usize {
        if self == Scenario::Cascade {
            2
        } else {
            1
        }
    }

    /// The name on the command line (`zookeeper-cut`).
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(|| format!("{self:?}"), |value| value.get_name().to_owned())
    }

    /// The dependency a scenario takes down, if it is an outage.
    pub fn outage_of(self) -> Option<Service> {
        match self {
            Scenario::ZookeeperRestart | Scenario::ZookeeperOutage => Some(Service::Zookeeper),
            Scenario::BrokerRestart => Some(Service::Kafka),
            Scenario::RedisOutage => Some(Service::Redis),
            Scenario::PostgresOutage => Some(Service::Postgres),
            _ => None,
        }
    }

    /// Most leadership changes this fault may cause: a leader fault one per
    /// fault; an outage none. Not even a ZooKeeper restart: the server
    /// restores every session with a fresh timeout, and a node whose client
    /// gave its session up reopens it within that timeout.
    pub fn allowed_failovers(self) -> i64 {
        match self {
            other if other.outage_of().is_some() => 0,
            other => other.faults() as i64,
        }
    }
}

/// What a cycle needs besides the cluster.
pub struct FaultContext {
    /// PostgreSQL for the measurements (replaced after a PostgreSQL outage).
    pub postgres: tokio_postgres::Client,
    /// Its URL, to reconnect.
    pub postgres_url: String,
    /// Stops and starts dependencies.
    pub infra: InfraControl,
    /// How long Redis, PostgreSQL and ZooKeeper stay down.
    pub outage: Duration,
    /// ZooKeeper's client port (what a ZooKeeper cut drops).
    pub zookeeper_port: u16,
    /// The nodes' ZooKeeper session timeout.
    pub session_timeout: Duration,
    /// Nodes started with a skewed clock (chaos drills).
    pub skewed_clocks: SkewedClocks,
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
    /// Chaos drills: when the first overlapping fault was injected, before
    /// the main one (the start of the cycle's fault window).
    pub overlap_at: Option<DateTime<Utc>>,
    /// When the cycle found the cluster settled (the end of its fault window).
    pub settled_at: DateTime<Utc>,
    /// The leader's epoch before.
    pub epoch_before: i64,
    /// The final leader's epoch.
    pub epoch_after: i64,
    /// Fault to the successor's detection of the loss (from `failover_events`);
    /// none for a dependency outage.
    pub detection_ms: Option<i64>,
    /// Fault to the successor leading: its epoch claimed and the database
    /// fence raised (from `failover_events`); none for a dependency outage.
    /// What lies between this and the RTO is the term's first batch.
    pub leading_ms: Option<i64>,
    /// Leader faults: fault to the successor's first commit (the RTO).
    /// Outages: the dependency back to the first commit after it.
    pub rto_ms: i64,
    /// How long the dependency was down (outages only).
    pub outage_ms: Option<i64>,
    /// Events committed while the dependency was down (outages only): a Redis
    /// or ZooKeeper outage must not stop the leader.
    pub committed_during_outage: Option<i64>,
    /// Whether the outage is consistent with what was measured during it
    /// (PostgreSQL outages: no commit in the window); outages only.
    pub outage_verified: Option<bool>,
    /// Whether the leader reported its breaker for the dependency open during
    /// the outage (Redis and PostgreSQL outages only).
    pub circuit_opened: Option<bool>,
    /// Why the final leader took over, as it recorded it (leader faults only):
    /// which path detected the loss.
    pub takeover_reason: Option<String>,
    /// Leadership changes during the cycle.
    pub failovers: i64,
    /// Faults injected alongside the main one (chaos drills).
    pub overlapping_faults: usize,
    /// Leadership changes the overlapping faults may cause: one for a paused
    /// standby still paused when the main fault came (it may have been the
    /// node that should take over), none for the others.
    pub overlap_changes_allowed: i64,
    /// Chaos drills: the wall-clock skew, in seconds, of a standby killed and
    /// restarted before the main fault (no leadership change may follow).
    pub skewed_standby: Option<i64>,
    /// Chaos drills: a partition added to the topic before the main fault.
    pub added_partition: Option<i32>,
    /// Chaos drills: whether some acknowledged event was still not stored
    /// `chaos::LIVENESS_BOUND` after the cycle settled.
    pub wedged: Option<bool>,
    /// Rows of an older epoch stored after the final leader's first commit (must be 0).
    pub stale_commits: i64,
}

impl CycleResult {
    /// Faults injected in this cycle: the main one (two for a cascade) and
    /// every overlapping one.
    pub fn faults(&self) -> usize {
        self.scenario.faults() + self.overlapping_faults
    }
}

/// Runs one cycle of `scenario` against `cluster`.
pub async fn run_cycle(
    cluster: &mut LocalCluster,
    context: &mut FaultContext,
    scenario: Scenario,
    cycle: usize,
) -> Result<CycleResult, DrillError> {
    let (leader, epoch_before) = cluster.wait_for_leader(0, CYCLE_TIMEOUT).await?;
    if let Some(service) = scenario.outage_of() {
        return run_outage(
            cluster,
            context,
            (scenario, service, cycle),
            leader,
            epoch_before,
        )
        .await;
    }
    let fault_at = Utc::now();
    let mut restart = Vec::new();
    let mut resume = None;
    let mut heal = None;
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
        Scenario::Stepdown => {
            let answer = cluster.step_down(leader).await?;
            if !answer.is_success() {
                return Err(DrillError::Fault(format!(
                    "the leader answered the stepdown with {answer}"
                )));
            }
        }
        Scenario::Sigstop => {
            cluster.signal(leader, Signal::SIGSTOP)?;
            resume = Some(leader);
        }
        Scenario::ZookeeperCut => {
            cluster.cut(
                leader,
                Cut::Zookeeper {
                    port: context.zookeeper_port,
                },
            )?;
            heal = Some(leader);
        }
        Scenario::Partition => {
            cluster.cut(leader, Cut::Everything)?;
            heal = Some(leader);
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
        Scenario::Mixed
        | Scenario::Chaos
        | Scenario::ZookeeperRestart
        | Scenario::ZookeeperOutage
        | Scenario::BrokerRestart
        | Scenario::RedisOutage
        | Scenario::PostgresOutage => {
            return Err(DrillError::Malformed(format!(
                "{scenario:?} is not a fault of the leader"
            )))
        }
    }
    let (_, epoch_after) = cluster.wait_for_leader(above, CYCLE_TIMEOUT).await?;
    let postgres = &context.postgres;
    let settled = Settled::measure(postgres, cluster, epoch_before, epoch_after).await?;
    let detected_at = first_time(
        postgres,
        DETECTION_OF_EPOCH,
        &[&cluster.name, &epoch_after],
        format!("the failover record of epoch {epoch_after}"),
    )
    .await?;
    let failover = postgres
        .query_one(FAILOVER_OF_EPOCH, &[&cluster.name, &epoch_after])
        .await?;
    let new_leader: String = failover.get(0);
    let detected_at = context.skewed_clocks.real_time(&new_leader, detected_at);
    let leading_at = context
        .skewed_clocks
        .real_time(&new_leader, failover.get(1));
    let takeover_reason = Some(failover.get::<_, String>(2));
    if let Some(slot) = resume {
        cluster.signal(slot, Signal::SIGCONT)?;
        cluster.wait_for_standby(slot, CYCLE_TIMEOUT).await?;
    }
    if let Some(slot) = heal {
        cluster.heal(slot)?;
        cluster.wait_for_standby(slot, CYCLE_TIMEOUT).await?;
    }
    for slot in restart {
        cluster.start_node(slot)?;
        cluster.wait_for_standby(slot, CYCLE_TIMEOUT).await?;
    }
    Ok(CycleResult {
        cycle,
        scenario,
        fault_at,
        settled_at: Utc::now(),
        epoch_before,
        epoch_after,
        detection_ms: Some((detected_at - fault_at).num_milliseconds()),
        leading_ms: Some((leading_at - fault_at).num_milliseconds()),
        rto_ms: (settled.first_commit - fault_at).num_milliseconds(),
        outage_ms: None,
        committed_during_outage: None,
        outage_verified: None,
        circuit_opened: None,
        takeover_reason,
        failovers: settled.failovers,
        overlap_at: None,
        overlapping_faults: 0,
        overlap_changes_allowed: 0,
        skewed_standby: None,
        added_partition: None,
        wedged: None,
        stale_commits: settled.stale_commits,
    })
}

/// A dependency down (a restart: down and straight back up; an outage: down
/// for `context.outage`), then back; the cluster must carry on by itself.
async fn run_outage(
    cluster: &mut LocalCluster,
    context: &mut FaultContext,
    (scenario, service, cycle): (Scenario, Service, usize),
    leader: usize,
    epoch_before: i64,
) -> Result<CycleResult, DrillError> {
    let fault_at = Utc::now();
    context.infra.stop(service)?;
    // The outage starts when the service stopped answering, not when the
    // stop was asked for (a graceful stop lets clients finish first).
    if service.accepts().await {
        return Err(DrillError::Fault(format!(
            "{service:?} still accepts connections after it was stopped: no outage"
        )));
    }
    let down_at = Utc::now();
    let circuit_opened = match scenario {
        Scenario::RedisOutage => {
            Some(circuit_opens(cluster, leader, |deps| &deps.redis, context.outage).await)
        }
        Scenario::PostgresOutage => {
            Some(circuit_opens(cluster, leader, |deps| &deps.postgres, context.outage).await)
        }
        Scenario::ZookeeperOutage => {
            tokio::time::sleep(context.outage).await;
            None
        }
        _ => None,
    };
    let restored_at = start_and_probe(&context.infra, service).await?;
    if service == Service::Postgres {
        context.postgres = reconnect(&context.postgres_url).await?;
    }
    for slot in 0..cluster.nodes.len() {
        cluster
            .wait_for_standby_or_leader(slot, CYCLE_TIMEOUT)
            .await?;
    }
    let (_, epoch_after) = cluster
        .wait_for_stable_leader(
            match service {
                Service::Zookeeper => STABLE_LEADERSHIP + context.session_timeout,
                _ => STABLE_LEADERSHIP,
            },
            CYCLE_TIMEOUT,
        )
        .await?;
    cluster.wait_for_gateway_accepting(CYCLE_TIMEOUT).await?;
    let postgres = &context.postgres;
    let resumed_at = first_time(
        postgres,
        FIRST_COMMIT_AFTER,
        &[&cluster.topic, &restored_at],
        format!("a commit after {restored_at}"),
    )
    .await?;
    let committed_during_outage: i64 = postgres
        .query_one(COMMITTED_BETWEEN, &[&cluster.topic, &down_at, &restored_at])
        .await?
        .get(0);
    let settled = Settled::measure(postgres, cluster, epoch_before, epoch_after).await?;
    Ok(CycleResult {
        cycle,
        scenario,
        fault_at,
        settled_at: Utc::now(),
        epoch_before,
        epoch_after,
        detection_ms: None,
        leading_ms: None,
        rto_ms: (resumed_at - restored_at).num_milliseconds(),
        outage_ms: Some((restored_at - down_at).num_milliseconds()),
        committed_during_outage: Some(committed_during_outage),
        // Nothing can commit while PostgreSQL is down: commits in the window
        // mean the measured outage did not happen as measured.
        outage_verified: Some(service != Service::Postgres || committed_during_outage == 0),
        circuit_opened,
        takeover_reason: None,
        failovers: settled.failovers,
        overlap_at: None,
        overlapping_faults: 0,
        overlap_changes_allowed: 0,
        skewed_standby: None,
        added_partition: None,
        wedged: None,
        stale_commits: settled.stale_commits,
    })
}

/// Starts `service` and returns when it first served ([`Service::serves`]),
/// probed every 10 ms while the start runs (the script's own readiness checks
/// come after, and must not count as outage).
async fn start_and_probe(
    infra: &InfraControl,
    service: Service,
) -> Result<DateTime<Utc>, DrillError> {
    let starting = tokio::task::spawn_blocking({
        let infra = infra.clone();
        move || infra.start(service)
    });
    tokio::pin!(starting);
    let mut serving_since = None;
    loop {
        tokio::select! {
            started = &mut starting => {
                started.map_err(|error| DrillError::Fault(error.to_string()))??;
                break;
            }
            () = tokio::time::sleep(std::time::Duration::from_millis(10)), if serving_since.is_none() => {
                if service.serves().await {
                    serving_since = Some(Utc::now());
                }
            }
        }
    }
    Ok(serving_since.unwrap_or_else(Utc::now))
}

/// Watches the leader's status for `outage`: whether the breaker `breaker`
/// picks from its dependencies was seen open.
async fn circuit_opens(
    cluster: &LocalCluster,
    leader: usize,
    breaker: impl Fn(&NodeDependencies) -> &BreakerView,
    outage: Duration,
) -> bool {
    let until = tokio::time::Instant::now() + outage;
    let mut opened = false;
    while tokio::time::Instant::now() < until {
        if let Some(status) = cluster.status(leader).await {
            opened |= breaker(&status.dependencies).circuit == BreakerState::Open;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    opened
}

async fn reconnect(url: &str) -> Result<tokio_postgres::Client, DrillError> {
    let deadline = tokio::time::Instant::now() + CYCLE_TIMEOUT;
    loop {
        match connect_postgres(url).await {
            Ok(client) => return Ok(client),
            Err(error) if tokio::time::Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The first node to claim an epoch above `epoch` (leading or still taking over).
async fn claimant(cluster: &LocalCluster, epoch: i64) -> Result<(usize, i64), DrillError> {
    let deadline = tokio::time::Instant::now() + CYCLE_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        for slot in 0..cluster.nodes.len() {
            if let Some(status) = cluster.status(slot).await {
                let claimed = status.failover.epoch.unwrap_or(0);
                if status.failover.role != NodeRole::Standby && claimed > epoch {
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

/// What every cycle measures once leadership settled on an epoch.
struct Settled {
    /// The settled epoch's first commit.
    first_commit: DateTime<Utc>,
    /// Leadership changes since the cycle's first epoch.
    failovers: i64,
    /// Rows of an older epoch stored after that first commit (must be 0).
    stale_commits: i64,
}

impl Settled {
    async fn measure(
        postgres: &tokio_postgres::Client,
        cluster: &LocalCluster,
        epoch_before: i64,
        epoch_after: i64,
    ) -> Result<Self, DrillError> {
        let what = format!("a commit by epoch {epoch_after}");
        let first_commit = first_time(
            postgres,
            FIRST_COMMIT_OF_EPOCH,
            &[&cluster.topic, &epoch_after],
            what,
        )
        .await?;
        let failovers = postgres
            .query_one(
                "SELECT COUNT(*) FROM failover_events WHERE cluster = $1 AND epoch > $2 AND epoch <= $3",
                &[&cluster.name, &epoch_before, &epoch_after],
            )
            .await?
            .get(0);
        let stale_commits = postgres
            .query_one(
                STALE_COMMITS,
                &[&cluster.topic, &epoch_after, &first_commit],
            )
            .await?
            .get(0);
        Ok(Self {
            first_commit,
            failovers,
            stale_commits,
        })
    }
}

/// Polls `sql` (one timestamp column, NULL or no row until it exists) until it
/// answers, for up to a cycle's timeout.
async fn first_time(
    postgres: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    what: String,
) -> Result<DateTime<Utc>, DrillError> {
    let deadline = tokio::time::Instant::now() + CYCLE_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        let row = postgres.query_opt(sql, params).await?;
        if let Some(at) = row.and_then(|row| row.get::<_, Option<DateTime<Utc>>>(0)) {
            return Ok(at);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(DrillError::Timeout(what))
}

/// A small deterministic generator (splitmix64) for the mixed sequence: the
/// printed seed replays the same faults.
pub struct FaultSequence(u64);

impl FaultSequence {
    /// A sequence from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number (splitmix64: every seed replays the same sequence).
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next scenario.
    pub fn next_scenario(&mut self) -> Scenario {
        let draw = self.next_u64();
        Scenario::SINGLE[usize::try_from(draw % Scenario::SINGLE.len() as u64).unwrap_or(0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_replays_the_same_faults_and_covers_them_all() {
        let first: Vec<Scenario> = (0..100)
            .scan(FaultSequence::new(7), |s, _| Some(s.next_scenario()))
            .collect();
        let again: Vec<Scenario> = (0..100)
            .scan(FaultSequence::new(7), |s, _| Some(s.next_scenario()))
            .collect();
        assert_eq!(first, again);
        for scenario in Scenario::SINGLE {
            assert!(first.contains(&scenario), "{scenario:?} never drawn");
        }
    }
}
