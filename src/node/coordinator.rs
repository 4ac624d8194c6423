//! NodeCoordinator: owns a node's leadership state and drives the other
//! actors through Recipients ([`CoordinatorPeers`]) and Kafka through
//! [`Consuming`], so its tests stand in-memory fakes in for all of them.
//!
//! Leadership is a message: [`LeadershipGranted`] starts a takeover — raise the
//! database fence and read the stored offsets in one transaction while the
//! Redis snapshot (advisory) is read beside it, reconcile the two (PostgreSQL
//! wins), then start a ConsumerActor for that epoch and record the failover. [`LeadershipRevoked`]
//! and [`ConsumerFenced`] stop the consumer at once. A message of an older epoch
//! is dropped with a debug log; what makes that safe is the fence, not the check.
//!
//! Leadership as the node reports it (`isLeader`) is a lease on this node's
//! monotonic clock, held only while both signals that can end it vouch for it
//! ([`LeaseConfirmed`]): ZooKeeper answered within a session timeout (no
//! expiry yet), and a heartbeat write landed within the heartbeat timeout (no
//! standby can have forced a takeover yet). A paused leader that wakes after
//! its successor took over never says it leads.
//!
//! Also handles [`LeaderObserved`], [`LeaseConfirmed`], [`ZooKeeperConnectivity`],
//! [`HeartbeatObserved`], [`BatchCommitted`], [`GetFailoverStatus`],
//! [`StepDown`] and [`Shutdown`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use backon::Retryable;
use chrono::Utc;
use tokio::sync::watch;
use tracing::Instrument;

use crate::node::consumer::Consuming;
use crate::node::election::epoch::Epoch;
use crate::node::election::named_leader::NamedLeader;
use crate::node::election::takeover_reason::TakeoverKind;
use crate::node::messages::{
    BatchCommitted, BecomeLeader, BecomeStandby, BeginEpoch, CommitRecorded, ConsumerFenced,
    ConsumerPeers, CoordinatorPeers, Drain, EndEpoch, Flush, FlushSnapshot, GetFailoverStatus,
    HeartbeatObserved, LeaderObserved, LeadershipGranted, LeadershipRevoked, LeaseConfirmed,
    LeaseWitness, Leave, LoadSnapshot, NotLeader, PartitionsAssigned, ReclaimEpochAbove,
    RecordFailover, Resign, Shutdown, StepDown, TakeOver, ZooKeeperConnectivity, ZooKeeperLeader,
};
use crate::node::metrics::NodeMetrics;
use crate::node::sink::store::{FailoverRecord, SinkError};
use crate::node::snapshot::state::{ConsumerState, CustomState};
use crate::node::status::{FailoverStatus, FailoverView, NodeRole, StateSummary};
use crate::shared::retry_policy::dependency_backoff;

/// Longest a new term waits for the previous term's consumer to end: its
/// in-flight commit is bounded by the store's own timeout.
const PREVIOUS_TERM_BOUND: Duration =
    Duration::from_secs(crate::node::sink::store::STORE_CALL_TIMEOUT.as_secs() + 5);

/// How often the leader measures consumer lag.
const LAG_INTERVAL: Duration = Duration::from_secs(2);

/// Periodic tick: measure consumer lag while leading.
#[derive(Message)]
#[rtype(result = "()")]
struct MeasureLag;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Standby,
    TakingOver(Epoch),
    Leading(Epoch),
}

impl Role {
    fn epoch(self) -> Option<Epoch> {
        match self {
            Role::Standby => None,
            Role::TakingOver(epoch) | Role::Leading(epoch) => Some(epoch),
        }
    }
}

/// Fixed facts and settings of a node.
pub struct NodeIdentity {
    /// Instance id.
    pub instance_id: String,
    /// Cluster name.
    pub cluster: String,
    /// Oldest snapshot trusted at takeover.
    pub state_max_age_ms: u64,
    /// Instruments.
    pub metrics: NodeMetrics,
}

/// The actor.
pub struct NodeCoordinator {
    identity: NodeIdentity,
    peers: CoordinatorPeers,
    consuming: Box<dyn Consuming>,
    role: Role,
    last_epoch: Option<Epoch>,
    leadership: watch::Sender<Option<Epoch>>,
    consumer: Option<Recipient<Drain>>,
    /// The consumer of the last term, stopped but maybe still finishing its
    /// in-flight commit.
    stopping_consumer: Option<Recipient<Drain>>,
    zookeeper_connected: bool,
    zookeeper_leader: Option<NamedLeader>,
    /// Until when ZooKeeper vouched for our leadership.
    zookeeper_lease_until: Option<Instant>,
    /// Until when our last heartbeat write keeps standbys from forcing a takeover.
    heartbeat_lease_until: Option<Instant>,
    /// When the last ZooKeeper confirmation was sent.
    zookeeper_confirmed_sent: Option<Instant>,
    /// When the heartbeat lease last lapsed before heartbeats landed again:
    /// standbys may have forced a takeover since, so only a ZooKeeper
    /// confirmation sent after this proves the leadership again.
    heartbeat_resumed_at: Option<Instant>,
    /// When the sink last made progress (a commit, or the start of leading).
    last_sink_progress: Instant,
    heartbeat_age_ms: Option<i64>,
    state: StateSummary,
    reconciliation_mismatches: u64,
    last_failover: Option<FailoverView>,
}

impl NodeCoordinator {
    /// Starts the coordinator; `start_peers` starts the other actors with
    /// its address and says how to reach them.
    pub fn start(
        identity: NodeIdentity,
        consuming: Box<dyn Consuming>,
        start_peers: impl FnOnce(Addr<NodeCoordinator>) -> CoordinatorPeers,
    ) -> Addr<NodeCoordinator> {
        NodeCoordinator::create(|ctx| NodeCoordinator {
            identity,
            peers: start_peers(ctx.address()),
            consuming,
            role: Role::Standby,
            last_epoch: None,
            leadership: watch::channel(None).0,
            consumer: None,
            stopping_consumer: None,
            zookeeper_connected: false,
            zookeeper_leader: None,
            zookeeper_lease_until: None,
            heartbeat_lease_until: None,
            zookeeper_confirmed_sent: None,
            heartbeat_resumed_at: None,
            last_sink_progress: Instant::now(),
            heartbeat_age_ms: None,
            state: StateSummary::default(),
            reconciliation_mismatches: 0,
            last_failover: None,
        })
    }

    /// Whether this node leads and can prove it now: both leases run, and
    /// no gap in its heartbeats is newer than ZooKeeper's last word.
    fn leads_provably(&self) -> bool {
        let now = Instant::now();
        matches!(self.role, Role::Leading(_))
            && [self.zookeeper_lease_until, self.heartbeat_lease_until]
                .iter()
                .all(|lease| lease.is_some_and(|until| until > now))
            && self.heartbeat_resumed_at <= self.zookeeper_confirmed_sent
    }

    fn set_role(&mut self, role: Role) {
        self.role = role;
        if let Some(epoch) = role.epoch() {
            self.last_epoch = Some(epoch);
            self.identity.metrics.epoch(epoch.0);
        }
        // What `isLeader` says: a new leader counts once its leases hold.
        self.identity.metrics.leading(self.leads_provably());
        self.leadership.send_replace(role.epoch());
    }

    /// Stops the consumer at once: used when leadership is already gone.
    fn stop_consumer(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            // Drain ends its loop now; the address is kept until the next
            // term, which waits for that loop to have ended.
            consumer.do_send(Drain);
            self.stopping_consumer = Some(consumer);
        }
    }

    fn become_standby(&mut self) {
        self.stop_consumer();
        // Only the leader reports lag; a standby's last values would double-count.
        for partition in &self.state.partitions {
            self.identity.metrics.lag(*partition, 0);
        }
        self.identity.metrics.stalled(Duration::ZERO);
        self.set_role(Role::Standby);
        self.zookeeper_lease_until = None;
        self.heartbeat_lease_until = None;
        self.heartbeat_resumed_at = None;
        // We no longer know that we lead; the election names the next leader.
        if self
            .zookeeper_leader
            .as_ref()
            .is_some_and(|leader| leader.instance_id == self.identity.instance_id)
        {
            self.zookeeper_leader = None;
        }
        self.peers.heartbeat.become_standby.do_send(BecomeStandby);
        self.peers.snapshots.end.do_send(EndEpoch);
    }

    /// Runs after the takeover transaction succeeded for `epoch`.
    fn start_leading(
        &mut self,
        granted: &LeadershipGranted,
        offsets: BTreeMap<i32, i64>,
        snapshot: Option<ConsumerState>,
        ctx: &mut Context<Self>,
    ) {
        let epoch = granted.epoch;
        let now = Utc::now();
        let mut custom = CustomState::default();
        let snapshot = snapshot.filter(|snapshot| {
            let doubt = snapshot.doubt(self.consuming.topic(), epoch, &offsets);
            if let Some(doubt) = &doubt {
                self.reconciliation_mismatches += 1;
                self.identity.metrics.reconciliation_mismatch();
                tracing::warn!(%doubt, "state snapshot not believed; continuing from postgresql");
            }
            doubt.is_none()
        });
        if let Some(snapshot) = snapshot {
            if snapshot.is_fresh(now.timestamp_millis(), self.identity.state_max_age_ms) {
                let mismatches = snapshot.mismatches(&offsets);
                if !mismatches.is_empty() {
                    self.reconciliation_mismatches += 1;
                    self.identity.metrics.reconciliation_mismatch();
                    tracing::warn!(
                        ?mismatches,
                        "state snapshot disagrees with postgresql; postgresql wins"
                    );
                }
                self.state.processed_total =
                    self.state.processed_total.max(snapshot.processed_total);
                custom = snapshot.custom;
            } else {
                tracing::info!(snapshot_epoch = %snapshot.epoch, "state snapshot too old; ignoring it");
            }
        }
        self.state.offsets = offsets.clone();
        self.last_sink_progress = Instant::now();
        self.peers.snapshots.begin.do_send(BeginEpoch {
            epoch,
            processed_total: self.state.processed_total,
            custom,
        });
        let consumer = self.consuming.start(
            epoch,
            offsets,
            ConsumerPeers {
                commit: self.peers.sink.commit.clone(),
                in_flight: self.peers.snapshots.in_flight.clone(),
                committed: ctx.address().recipient(),
                assigned: ctx.address().recipient(),
                fenced: ctx.address().recipient(),
            },
        );
        self.consumer = Some(consumer);
        self.set_role(Role::Leading(epoch));
        let record = FailoverRecord {
            epoch: epoch.0,
            new_leader: self.identity.instance_id.clone(),
            previous_leader: granted.previous_leader.clone(),
            reason: granted.reason.as_str().to_owned(),
            detected_at: granted.detected_at,
            recovered_at: now,
            recovery_ms: (now - granted.detected_at).num_milliseconds().max(0),
        };
        tracing::info!(%epoch, recovery_ms = record.recovery_ms, reason = %record.reason, "leading");
        self.identity.metrics.failover(granted.reason);
        // The seed's recovery time, for failovers only: detection to the new
        // leader consuming (its first commit waits for traffic, which an
        // idle topic may not have for hours).
        if granted.reason.kind() == TakeoverKind::Failover {
            self.identity.metrics.recovered(Duration::from_millis(
                u64::try_from(record.recovery_ms).unwrap_or(0),
            ));
        }
        self.last_failover = Some(FailoverView {
            record: record.clone(),
            first_commit_at: None,
            first_commit_ms: None,
        });
        let record_failover = self.peers.sink.record_failover.clone();
        ctx.spawn(
            async move {
                match record_failover.send(RecordFailover(record)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "could not record the failover"),
                    Err(error) => tracing::warn!(%error, "sink unavailable to record the failover"),
                }
            }
            .into_actor(self),
        );
    }
}

impl Actor for NodeCoordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(LAG_INTERVAL, |_, ctx| ctx.notify(MeasureLag));
    }
}

impl Handler<MeasureLag> for NodeCoordinator {
    type Result = ();

    fn handle(&mut self, _tick: MeasureLag, ctx: &mut Context<Self>) {
        // `leader_status` says what the status API says: a leader whose
        // lease ran out (Redis or ZooKeeper cannot vouch for it) is not
        // counted, so the alerts and `isLeader` never disagree for long.
        self.identity.metrics.leading(self.leads_provably());
        let Role::Leading(epoch) = self.role else {
            return;
        };
        if self.state.partitions.is_empty() {
            return;
        }
        let watermarks = self
            .consuming
            .high_watermarks(self.state.partitions.clone());
        ctx.spawn(
            watermarks
                .into_actor(self)
                .map(move |watermarks, actor, _ctx| {
                    if actor.role != Role::Leading(epoch) {
                        return;
                    }
                    match watermarks {
                        Ok(watermarks) => {
                            let mut waiting = 0;
                            for (partition, high) in watermarks {
                                let committed =
                                    actor.state.offsets.get(&partition).copied().unwrap_or(0);
                                let lag = (high - committed).max(0);
                                waiting += lag;
                                actor.identity.metrics.lag(partition, lag);
                            }
                            actor.identity.metrics.stalled(if waiting > 0 {
                                actor.last_sink_progress.elapsed()
                            } else {
                                Duration::ZERO
                            });
                        }
                        Err(error) => tracing::debug!(%error, "could not read watermarks"),
                    }
                }),
        );
    }
}

impl Handler<LeadershipGranted> for NodeCoordinator {
    type Result = ();

    fn handle(&mut self, granted: LeadershipGranted, ctx: &mut Context<Self>) {
        if self
            .role
            .epoch()
            .is_some_and(|current| current >= granted.epoch)
        {
            tracing::debug!(epoch = %granted.epoch, "leadership grant of an older epoch ignored");
            return;
        }
        // The previous term's loop is stopped now and awaited below: both
        // terms share one Kafka consumer, and records the old loop takes
        // after the new term assigned would be lost to the new term.
        self.stop_consumer();
        let previous = self.stopping_consumer.take();
        self.zookeeper_lease_until = Some(granted.lease_until);
        self.zookeeper_confirmed_sent = None;
        self.heartbeat_lease_until = None;
        self.heartbeat_resumed_at = None;
        self.set_role(Role::TakingOver(granted.epoch));
        self.peers.heartbeat.become_leader.do_send(BecomeLeader {
            epoch: granted.epoch,
        });
        let epoch = granted.epoch;
        let snapshots = self.peers.snapshots.load.clone();
        let sink = self.peers.sink.take_over.clone();
        let leadership = self.leadership.subscribe();
        let takeover = async move {
            if let Some(previous) = previous {
                if tokio::time::timeout(PREVIOUS_TERM_BOUND, previous.send(Drain))
                    .await
                    .is_err()
                {
                    tracing::warn!(%epoch, "the previous term's consumer did not stop in time");
                }
            }
            // The snapshot does not decide where reading starts (PostgreSQL's
            // offsets do), so its read from Redis need not add to the
            // takeover's time. What it carries (the processed count, the
            // custom state) was written after commits, so a snapshot read
            // during the transaction is never ahead of the database; one that
            // is not believed is dropped by the reconciliation.
            let snapshot = async {
                match snapshots.send(LoadSnapshot).await {
                    Ok(Ok(snapshot)) => snapshot,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "could not load the state snapshot; continuing from postgresql");
                        None
                    }
                    Err(_) => None,
                }
            };
            let offsets = (|| {
                let sink = sink.clone();
                async move {
                    sink.send(TakeOver { epoch })
                        .await
                        .unwrap_or_else(|error| Err(SinkError::Unavailable(error.to_string())))
                }
            })
            .retry(dependency_backoff())
            .when(|error| {
                !matches!(error, SinkError::Fenced { .. }) && *leadership.borrow() == Some(epoch)
            })
            .notify(|error, delay| tracing::warn!(%error, ?delay, "takeover transaction failed; retrying"));
            tokio::join!(offsets, snapshot)
        }
        .instrument(tracing::info_span!(
            "leadership.takeover",
            epoch = %granted.epoch,
            reason = %granted.reason,
            previous_leader = ?granted.previous_leader,
        ));
        ctx.spawn(takeover.into_actor(self).map(move |(offsets, snapshot), actor, ctx| {
            if actor.role != Role::TakingOver(epoch) {
                tracing::debug!(%epoch, "takeover finished after leadership moved on");
                return;
            }
            match offsets {
                Ok(offsets) => actor.start_leading(&granted, offsets, snapshot, ctx),
                Err(SinkError::Fenced { fence_epoch }) => {
                    tracing::warn!(%epoch, %fence_epoch, "the database fence is above our epoch; reclaiming");
                    actor.peers.election.reclaim.do_send(ReclaimEpochAbove { floor: fence_epoch });
                }
                Err(error) => tracing::warn!(%error, "takeover abandoned"),
            }
        }));
    }
}

impl Handler<LeadershipRevoked> for NodeCoordinator {
    type Result = ();

    fn handle(&mut self, revoked: LeadershipRevoked, _ctx: &mut Context<Self>) {
        if self.role.epoch() != Some(revoked.epoch) {
            tracing::debug!(epoch = %revoked.epoch, "revocation of an epoch we do not hold ignored");
            return;
        }
        tracing::warn!(epoch = %revoked.epoch, reason = %revoked.reason, "standing down");
        self.become_standby();
    }
}

impl Handler<PartitionsAssigned> for NodeCoordinator {
    type Result = ();

    fn handle(&mut self, assigned: PartitionsAssigned, _ctx: &mut Context<Self>) {
        if self.role != Role::Leading(assigned.epoch) {
            tracing::debug!(epoch = %assigned.epoch, "assignment of another epoch ignored");
            return;
        }
        self.state.partitions = assigned.partitions;
    }
}

impl Handler<ConsumerFenced> for NodeCoordinator {
    type Result = ();

    fn handle(&mut self, fenced: ConsumerFenced, _ctx: &mut Context<Self>) {
        if self.role.epoch() != Some(fenced.epoch) {
            tracing::debug!(epoch = %fenced.epoch, "fencing of an epoch we do not hold ignored");
            return;
        }
        tracing::warn!(epoch = %fenced.epoch, fence_epoch = ?fenced.fence_epoch, "fenced; stepping down");
        self.become_standby();
        self.peers.election.resign.do_send(Resign);
    }
}

impl Handler<LeaderObserved> for NodeCoordinator {
    type Result = ();
    fn handle(&mut self, observed: LeaderObserved, _ctx: &mut Context<Self>) {
        self.peers
            .heartbeat
            .zookeeper_leader
            .do_send(ZooKeeperLeader {
                leader: observed.leader.clone(),
            });
        if let (Role::Standby, Some(leader)) = (self.role, &observed.leader) {
            self.identity.metrics.epoch(leader.epoch.0);
        }
        self.zookeeper_leader = observed.leader;
    }
}

impl Handler<LeaseConfirmed> for NodeCoordinator {
    type Result = ();
    fn handle(&mut self, confirmed: LeaseConfirmed, _ctx: &mut Context<Self>) {
        if self.role.epoch() != Some(confirmed.epoch) {
            tracing::debug!(epoch = %confirmed.epoch, "lease of an epoch we do not hold ignored");
            return;
        }
        match confirmed.witness {
            LeaseWitness::ZooKeeper => {
                self.zookeeper_confirmed_sent =
                    self.zookeeper_confirmed_sent.max(Some(confirmed.sent));
                self.zookeeper_lease_until =
                    self.zookeeper_lease_until.max(Some(confirmed.valid_until));
            }
            LeaseWitness::Heartbeat => {
                // The gap began when the lease lapsed, not when this write
                // was sent: a write sent before the lapse but landing after
                // a forced takeover must not let an older word count.
                if let Some(lapsed) = self
                    .heartbeat_lease_until
                    .filter(|until| *until <= Instant::now())
                {
                    self.heartbeat_resumed_at = Some(lapsed);
                }
                self.heartbeat_lease_until =
                    self.heartbeat_lease_until.max(Some(confirmed.valid_until));
            }
        }
        self.identity.metrics.leading(self.leads_provably());
    }
}

impl Handler<ZooKeeperConnectivity> for NodeCoordinator {
    type Result = ();
    fn handle(&mut self, connectivity: ZooKeeperConnectivity, _ctx: &mut Context<Self>) {
        self.zookeeper_connected = connectivity.connected;
        self.identity
            .metrics
            .zookeeper_connected(connectivity.connected);
    }
}

impl Handler<HeartbeatObserved> for NodeCoordinator {
    type Result = ();
    fn handle(&mut self, observed: HeartbeatObserved, _ctx: &mut Context<Self>) {
        self.heartbeat_age_ms = observed
            .age
            .map(|age| i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
        if let Some(age) = observed.age {
            self.identity.metrics.heartbeat_age(age);
        }
    }
}

impl Handler<BatchCommitted> for NodeCoordinator {
    type Result = ();

    fn handle(&mut self, committed: BatchCommitted, _ctx: &mut Context<Self>) {
        if self.role != Role::Leading(committed.epoch) {
            tracing::debug!(epoch = %committed.epoch, "commit report of another epoch ignored");
            return;
        }
        self.last_sink_progress = Instant::now();
        self.state.processed_total = self
            .state
            .processed_total
            .saturating_add(committed.outcome.inserted as u64);
        self.state.dead_lettered_total = self
            .state
            .dead_lettered_total
            .saturating_add(committed.outcome.dead_lettered as u64);
        self.state.partitions = committed.partitions.clone();
        self.state.offsets = committed.next_offsets.clone();
        if let Some(view) = self
            .last_failover
            .as_mut()
            .filter(|v| v.first_commit_at.is_none())
        {
            let now = Utc::now();
            let first_commit_ms = (now - view.record.detected_at).num_milliseconds().max(0);
            view.first_commit_at = Some(now);
            view.first_commit_ms = Some(first_commit_ms);
            tracing::info!(epoch = %committed.epoch, first_commit_ms, "first commit after takeover");
        }
        self.peers
            .snapshots
            .commit_recorded
            .do_send(CommitRecorded {
                epoch: committed.epoch,
                partitions: committed.partitions,
                next_offsets: committed.next_offsets,
                processed_total: self.state.processed_total,
            });
    }
}

impl Handler<GetFailoverStatus> for NodeCoordinator {
    type Result = MessageResult<GetFailoverStatus>;

    fn handle(&mut self, _message: GetFailoverStatus, _ctx: &mut Context<Self>) -> Self::Result {
        let is_leader = self.leads_provably();
        MessageResult(FailoverStatus {
            instance_id: self.identity.instance_id.clone(),
            cluster: self.identity.cluster.clone(),
            is_leader,
            role: match self.role {
                Role::Standby => NodeRole::Standby,
                Role::TakingOver(_) => NodeRole::TakingOver,
                Role::Leading(_) if is_leader => NodeRole::Leader,
                Role::Leading(_) => NodeRole::Unconfirmed,
            },
            epoch: self.role.epoch().or(self.last_epoch).map(|epoch| epoch.0),
            leader_id: self
                .zookeeper_leader
                .as_ref()
                .map(|leader| leader.instance_id.clone()),
            zookeeper_connected: self.zookeeper_connected,
            heartbeat_age_ms: self.heartbeat_age_ms,
            state: self.state.clone(),
            reconciliation_mismatches: self.reconciliation_mismatches,
            last_failover: self.last_failover.clone(),
        })
    }
}

/// How long a shutdown's wind-down waits for the in-flight commit.
const DRAIN_BOUND: Duration = Duration::from_secs(5);
/// How long it waits for the sink to flush.
const FLUSH_BOUND: Duration = Duration::from_secs(5);
/// How long it waits for the last state snapshot.
const SNAPSHOT_BOUND: Duration = Duration::from_secs(1);
/// How long a shutdown waits for the election to be left.
const LEAVE_BOUND: Duration = Duration::from_secs(2);

/// Runs `step`, within `bound` when given; says so when the bound cut it short.
async fn within<F: std::future::Future>(bound: Option<Duration>, what: &'static str, step: F) {
    match bound {
        None => drop(step.await),
        Some(bound) => {
            if tokio::time::timeout(bound, step).await.is_err() {
                tracing::warn!(?bound, "{what} did not finish in time; going on without it");
            }
        }
    }
}

impl NodeCoordinator {
    /// Ends this node's term in order, for a stepdown and a shutdown alike:
    /// the consumer drains (its in-flight commit finishes), the sink
    /// flushes, the state snapshot is written. A stepdown waits for each
    /// (`bounded` false: the hand-over must carry the exact state); a
    /// shutdown bounds each, as a supervisor's kill is coming, and a step cut
    /// short is safe: the successor's fence refuses whatever this term
    /// commits after it. The consumer is kept as the stopping one, so that a
    /// next term of this node waits for its loop to end.
    fn wind_down(&mut self, bounded: bool) -> impl std::future::Future<Output = ()> + 'static {
        let consumer = self.consumer.take();
        if let Some(consumer) = &consumer {
            self.stopping_consumer = Some(consumer.clone());
        }
        let flush = self.peers.sink.flush.clone();
        let snapshots = self.peers.snapshots.flush.clone();
        let bound = move |bound| bounded.then_some(bound);
        async move {
            if let Some(consumer) = consumer {
                within(
                    bound(DRAIN_BOUND),
                    "the consumer's drain",
                    consumer.send(Drain),
                )
                .await;
            }
            within(bound(FLUSH_BOUND), "the sink's flush", flush.send(Flush)).await;
            within(
                bound(SNAPSHOT_BOUND),
                "the last state snapshot",
                snapshots.send(FlushSnapshot),
            )
            .await;
        }
    }
}

impl Handler<StepDown> for NodeCoordinator {
    type Result = ResponseActFuture<Self, Result<Epoch, NotLeader>>;

    fn handle(&mut self, _message: StepDown, _ctx: &mut Context<Self>) -> Self::Result {
        let Role::Leading(epoch) = self.role else {
            return Box::pin(fut::ready(Err(NotLeader)));
        };
        Box::pin(
            self.wind_down(false)
                .into_actor(self)
                .map(move |(), actor, _ctx| {
                    // The term may have ended meanwhile (revoked, or a newer
                    // one granted): that one is not this stepdown's to end.
                    if actor.role == Role::Leading(epoch) {
                        tracing::info!(%epoch, "stepping down: in-flight batch committed, resigning");
                        actor.become_standby();
                        actor.peers.election.resign.do_send(Resign);
                    }
                    Ok(epoch)
                }),
        )
    }
}

impl Handler<Shutdown> for NodeCoordinator {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _message: Shutdown, _ctx: &mut Context<Self>) -> Self::Result {
        let wind_down = self.wind_down(true);
        let leave = self.peers.election.leave.clone();
        Box::pin(
            async move {
                wind_down.await;
                within(Some(LEAVE_BOUND), "leaving the election", leave.send(Leave)).await;
            }
            .into_actor(self)
            .map(|(), actor, _ctx| {
                actor.become_standby();
                tracing::info!("left the election");
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    //! The coordinator against in-memory peers: one fake actor stands in for
    //! the election, the heartbeat, the sink and the snapshot store, and a
    //! fake [`Consuming`] for Kafka. No service runs.

    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use futures::future::BoxFuture;
    use rdkafka::error::KafkaError;

    use super::*;
    use crate::node::election::takeover_reason::TakeoverReason;
    use crate::node::messages::{
        BatchInFlight, CommitBatch, ElectionOrders, HeartbeatOrders, SinkOrders, SnapshotOrders,
    };
    use crate::node::sink::store::CommitOutcome;
    use crate::shared::redis_store::RedisStoreError;
    use crate::shared::telemetry::registry::MetricsRegistry;

    /// What a peer was told, in order.
    #[derive(Debug, Clone, PartialEq)]
    enum Told {
        BecomeLeader(Epoch),
        BecomeStandby,
        ZooKeeperLeader,
        LoadSnapshot,
        SnapshotLoaded,
        TakeOver(Epoch),
        BeginEpoch(Epoch),
        ConsumerStarted(Epoch, BTreeMap<i32, i64>),
        RecordFailover(i64, String),
        CommitRecorded(Epoch),
        Drained,
        DrainDone,
        Flush,
        FlushSnapshot,
        EndEpoch,
        Resign,
        Reclaim(Epoch),
        Leave,
        InFlight,
    }

    type Log = Arc<Mutex<Vec<Told>>>;

    fn note(log: &Log, told: Told) {
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(told);
    }

    fn told(log: &Log) -> Vec<Told> {
        log.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Every peer at once: notes what it is told, answers as scripted.
    struct FakePeers {
        log: Log,
        take_over: VecDeque<Result<BTreeMap<i32, i64>, SinkError>>,
        snapshot: Option<ConsumerState>,
        /// How long Redis takes to answer for the snapshot.
        snapshot_delay: Duration,
    }

    impl Actor for FakePeers {
        type Context = Context<Self>;
    }

    macro_rules! noting {
        ($message:ty, $received:pat => $told:expr) => {
            impl Handler<$message> for FakePeers {
                type Result = ();
                fn handle(&mut self, $received: $message, _ctx: &mut Context<Self>) {
                    note(&self.log, $told);
                }
            }
        };
    }

    noting!(BecomeLeader, message => Told::BecomeLeader(message.epoch));
    noting!(BecomeStandby, _ => Told::BecomeStandby);
    noting!(ZooKeeperLeader, _ => Told::ZooKeeperLeader);
    noting!(BeginEpoch, message => Told::BeginEpoch(message.epoch));
    noting!(EndEpoch, _ => Told::EndEpoch);
    noting!(CommitRecorded, message => Told::CommitRecorded(message.epoch));
    noting!(FlushSnapshot, _ => Told::FlushSnapshot);
    noting!(Flush, _ => Told::Flush);
    noting!(Resign, _ => Told::Resign);
    noting!(ReclaimEpochAbove, message => Told::Reclaim(message.floor));
    noting!(Leave, _ => Told::Leave);
    noting!(BatchInFlight, _ => Told::InFlight);

    impl Handler<CommitBatch> for FakePeers {
        type Result = Result<CommitOutcome, SinkError>;
        fn handle(&mut self, _message: CommitBatch, _ctx: &mut Context<Self>) -> Self::Result {
            Err(SinkError::Unavailable("a fake sink commits nothing".into()))
        }
    }

    impl Handler<TakeOver> for FakePeers {
        type Result = Result<BTreeMap<i32, i64>, SinkError>;
        fn handle(&mut self, message: TakeOver, _ctx: &mut Context<Self>) -> Self::Result {
            note(&self.log, Told::TakeOver(message.epoch));
            self.take_over
                .pop_front()
                .unwrap_or_else(|| Ok(BTreeMap::new()))
        }
    }

    impl Handler<LoadSnapshot> for FakePeers {
        type Result = ResponseFuture<Result<Option<ConsumerState>, RedisStoreError>>;
        fn handle(&mut self, _message: LoadSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
            note(&self.log, Told::LoadSnapshot);
            let (log, snapshot, delay) =
                (self.log.clone(), self.snapshot.clone(), self.snapshot_delay);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                note(&log, Told::SnapshotLoaded);
                Ok(snapshot)
            })
        }
    }

    impl Handler<RecordFailover> for FakePeers {
        type Result = Result<(), SinkError>;
        fn handle(&mut self, message: RecordFailover, _ctx: &mut Context<Self>) -> Self::Result {
            note(
                &self.log,
                Told::RecordFailover(message.0.epoch, message.0.reason),
            );
            Ok(())
        }
    }

    /// A term's consumer: its drain takes a while (an in-flight commit), so
    /// "waits for the drain" differs from "asks for the drain".
    struct FakeConsumer {
        log: Log,
    }

    impl Actor for FakeConsumer {
        type Context = Context<Self>;
    }

    impl Handler<Drain> for FakeConsumer {
        type Result = ResponseActFuture<Self, ()>;
        fn handle(&mut self, _message: Drain, _ctx: &mut Context<Self>) -> Self::Result {
            note(&self.log, Told::Drained);
            let log = self.log.clone();
            Box::pin(
                async move {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    note(&log, Told::DrainDone);
                }
                .into_actor(self),
            )
        }
    }

    /// Kafka, as the coordinator sees it.
    struct FakeKafka {
        log: Log,
    }

    impl Consuming for FakeKafka {
        fn topic(&self) -> &str {
            "events"
        }

        fn start(
            &self,
            epoch: Epoch,
            next_offsets: BTreeMap<i32, i64>,
            _peers: ConsumerPeers,
        ) -> Recipient<Drain> {
            note(&self.log, Told::ConsumerStarted(epoch, next_offsets));
            FakeConsumer {
                log: self.log.clone(),
            }
            .start()
            .recipient()
        }

        fn high_watermarks(
            &self,
            _partitions: Vec<i32>,
        ) -> BoxFuture<'static, Result<Vec<(i32, i64)>, KafkaError>> {
            Box::pin(async { Ok(Vec::new()) })
        }
    }

    fn coordinator(
        take_over: Vec<Result<BTreeMap<i32, i64>, SinkError>>,
        snapshot: Option<ConsumerState>,
    ) -> (Addr<NodeCoordinator>, Log) {
        coordinator_with_snapshot_delay(take_over, snapshot, Duration::ZERO)
    }

    fn coordinator_with_snapshot_delay(
        take_over: Vec<Result<BTreeMap<i32, i64>, SinkError>>,
        snapshot: Option<ConsumerState>,
        snapshot_delay: Duration,
    ) -> (Addr<NodeCoordinator>, Log) {
        let log = Log::default();
        let peers = FakePeers {
            log: log.clone(),
            take_over: take_over.into(),
            snapshot,
            snapshot_delay,
        }
        .start();
        let registry = MetricsRegistry::new().expect("registry");
        let identity = NodeIdentity {
            instance_id: "a".into(),
            cluster: "c".into(),
            state_max_age_ms: 60_000,
            metrics: NodeMetrics::new(&registry).expect("metrics"),
        };
        let kafka = Box::new(FakeKafka { log: log.clone() });
        let address = NodeCoordinator::start(identity, kafka, |_| CoordinatorPeers {
            election: ElectionOrders::to(&peers),
            heartbeat: HeartbeatOrders::to(&peers),
            sink: SinkOrders::to(&peers),
            snapshots: SnapshotOrders::to(&peers),
        });
        (address, log)
    }

    fn granted(epoch: i64) -> LeadershipGranted {
        LeadershipGranted {
            epoch: Epoch(epoch),
            reason: TakeoverReason::LeaderDeparted,
            detected_at: Utc::now(),
            previous_leader: Some("b".into()),
            lease_until: Instant::now() + Duration::from_secs(30),
        }
    }

    fn lease(epoch: i64, witness: LeaseWitness, valid_for: Duration) -> LeaseConfirmed {
        let sent = Instant::now();
        LeaseConfirmed {
            epoch: Epoch(epoch),
            sent,
            valid_until: sent + valid_for,
            witness,
        }
    }

    fn offsets(pairs: &[(i32, i64)]) -> BTreeMap<i32, i64> {
        pairs.iter().copied().collect()
    }

    /// Waits (briefly) until `log` holds `wanted`.
    async fn until_told(log: &Log, wanted: &Told) {
        for _ in 0..400 {
            if told(log).contains(wanted) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("never told {wanted:?}; told {:?}", told(log));
    }

    /// Leads under `epoch` with the stored offsets `stored`.
    async fn leading(epoch: i64, stored: &[(i32, i64)]) -> (Addr<NodeCoordinator>, Log) {
        let (coordinator, log) = coordinator(vec![Ok(offsets(stored))], None);
        coordinator.do_send(granted(epoch));
        until_told(&log, &Told::ConsumerStarted(Epoch(epoch), offsets(stored))).await;
        (coordinator, log)
    }

    fn position(log: &[Told], told: &Told) -> usize {
        log.iter()
            .position(|entry| entry == told)
            .unwrap_or_else(|| panic!("{told:?} missing from {log:?}"))
    }

    async fn status(coordinator: &Addr<NodeCoordinator>) -> FailoverStatus {
        coordinator.send(GetFailoverStatus).await.expect("status")
    }

    #[actix::test]
    async fn a_grant_raises_the_fence_before_the_consumer_starts_where_postgresql_says() {
        let (_coordinator, log) = leading(3, &[(0, 10), (1, 4)]).await;
        until_told(&log, &Told::RecordFailover(3, "leader departed".into())).await;
        let log = told(&log);
        let heartbeat = position(&log, &Told::BecomeLeader(Epoch(3)));
        let fence = position(&log, &Told::TakeOver(Epoch(3)));
        let consumer = position(
            &log,
            &Told::ConsumerStarted(Epoch(3), offsets(&[(0, 10), (1, 4)])),
        );
        assert!(heartbeat < fence && fence < consumer, "{log:?}");
        assert!(log.contains(&Told::BeginEpoch(Epoch(3))), "{log:?}");
    }

    #[actix::test]
    async fn a_slow_snapshot_read_does_not_hold_the_takeover_transaction_back() {
        let (coordinator, log) = coordinator_with_snapshot_delay(
            vec![Ok(offsets(&[(0, 10)]))],
            None,
            Duration::from_millis(300),
        );
        coordinator.do_send(granted(3));
        until_told(&log, &Told::ConsumerStarted(Epoch(3), offsets(&[(0, 10)]))).await;
        let log = told(&log);
        let asked = position(&log, &Told::LoadSnapshot);
        let fence = position(&log, &Told::TakeOver(Epoch(3)));
        let loaded = position(&log, &Told::SnapshotLoaded);
        assert!(
            asked < loaded && fence < loaded,
            "the transaction ran while Redis was answering: {log:?}"
        );
    }

    #[actix::test]
    async fn it_says_it_leads_only_while_both_leases_run() {
        let (coordinator, _log) = leading(3, &[]).await;
        let before = status(&coordinator).await;
        assert!(!before.is_leader, "no heartbeat has landed yet");
        assert_eq!(before.role, NodeRole::Unconfirmed);
        let now = Instant::now();
        coordinator.do_send(LeaseConfirmed {
            epoch: Epoch(3),
            sent: now,
            valid_until: now + Duration::from_secs(5),
            witness: LeaseWitness::Heartbeat,
        });
        let after = status(&coordinator).await;
        assert!(after.is_leader);
        assert_eq!(after.role, NodeRole::Leader);
        coordinator.do_send(LeaseConfirmed {
            epoch: Epoch(2),
            sent: now,
            valid_until: now + Duration::from_secs(60),
            witness: LeaseWitness::ZooKeeper,
        });
        assert!(
            status(&coordinator).await.is_leader,
            "an older epoch's lease changes nothing"
        );
    }

    #[actix::test]
    async fn a_lapsed_zookeeper_lease_is_not_renewed_by_another_epochs() {
        let (coordinator, log) = coordinator(vec![Ok(BTreeMap::new())], None);
        coordinator.do_send(LeadershipGranted {
            lease_until: Instant::now(),
            ..granted(3)
        });
        until_told(&log, &Told::ConsumerStarted(Epoch(3), BTreeMap::new())).await;
        let long = Duration::from_secs(60);
        coordinator.do_send(lease(2, LeaseWitness::ZooKeeper, long));
        coordinator.do_send(lease(3, LeaseWitness::Heartbeat, long));
        let lapsed = status(&coordinator).await;
        assert!(!lapsed.is_leader, "ZooKeeper vouched only for epoch 2");
        assert_eq!(lapsed.role, NodeRole::Unconfirmed);
        coordinator.do_send(lease(3, LeaseWitness::ZooKeeper, long));
        assert!(status(&coordinator).await.is_leader);
    }

    #[actix::test]
    async fn a_fence_above_our_epoch_makes_the_election_reclaim_and_starts_no_consumer() {
        let fenced = Err(SinkError::Fenced {
            fence_epoch: Epoch(9),
        });
        let (coordinator, log) = coordinator(vec![fenced], None);
        coordinator.do_send(granted(3));
        until_told(&log, &Told::Reclaim(Epoch(9))).await;
        assert!(
            !told(&log)
                .iter()
                .any(|entry| matches!(entry, Told::ConsumerStarted(..))),
            "{:?}",
            told(&log)
        );
        assert_eq!(status(&coordinator).await.role, NodeRole::TakingOver);
    }

    #[actix::test]
    async fn a_snapshot_that_disagrees_is_counted_and_postgresql_wins() {
        let snapshot = ConsumerState {
            instance_id: "b".into(),
            epoch: Epoch(2),
            topic: "events".into(),
            partitions: vec![0, 1],
            offsets: offsets(&[(0, 9), (1, 4)]),
            in_flight: Vec::new(),
            processed_total: 12,
            custom: CustomState::default(),
            updated_at_ms: Utc::now().timestamp_millis(),
        };
        let (coordinator, log) = coordinator(vec![Ok(offsets(&[(0, 10), (1, 4)]))], Some(snapshot));
        coordinator.do_send(granted(3));
        until_told(
            &log,
            &Told::ConsumerStarted(Epoch(3), offsets(&[(0, 10), (1, 4)])),
        )
        .await;
        let status = status(&coordinator).await;
        assert_eq!(status.reconciliation_mismatches, 1);
        assert_eq!(status.state.processed_total, 12, "the count carries over");
        assert_eq!(status.state.offsets, offsets(&[(0, 10), (1, 4)]));
    }

    #[actix::test]
    async fn a_snapshot_that_cannot_be_true_is_not_believed() {
        let forged = ConsumerState {
            instance_id: "b".into(),
            epoch: Epoch(2),
            topic: "events".into(),
            partitions: vec![0],
            offsets: offsets(&[(0, 10)]),
            in_flight: Vec::new(),
            processed_total: u64::MAX,
            custom: CustomState::default(),
            updated_at_ms: Utc::now().timestamp_millis(),
        };
        let (coordinator, log) = coordinator(vec![Ok(offsets(&[(0, 10)]))], Some(forged));
        coordinator.do_send(granted(3));
        until_told(&log, &Told::ConsumerStarted(Epoch(3), offsets(&[(0, 10)]))).await;
        let status = status(&coordinator).await;
        assert_eq!(status.reconciliation_mismatches, 1);
        assert_eq!(status.state.processed_total, 0);
    }

    #[actix::test]
    async fn messages_of_another_epoch_are_dropped() {
        let (coordinator, log) = leading(3, &[(0, 10)]).await;
        coordinator.do_send(LeadershipRevoked {
            epoch: Epoch(2),
            reason: crate::node::election::Revocation::MemberGone,
        });
        coordinator.do_send(granted(2));
        coordinator.do_send(BatchCommitted {
            epoch: Epoch(2),
            outcome: CommitOutcome {
                inserted: 5,
                duplicates: 0,
                dead_lettered: 0,
                refused: 0,
            },
            partitions: vec![0],
            next_offsets: offsets(&[(0, 99)]),
        });
        coordinator.do_send(ConsumerFenced {
            epoch: Epoch(2),
            fence_epoch: None,
        });
        let status = status(&coordinator).await;
        assert_eq!(status.epoch, Some(3));
        assert_eq!(status.state.processed_total, 0);
        assert_eq!(status.state.offsets, offsets(&[(0, 10)]));
        let log = told(&log);
        assert!(!log.contains(&Told::Drained), "{log:?}");
        assert!(!log.contains(&Told::TakeOver(Epoch(2))), "{log:?}");
        assert!(!log.contains(&Told::Resign), "{log:?}");
    }

    #[actix::test]
    async fn a_commit_of_our_epoch_moves_the_state_on() {
        let (coordinator, log) = leading(3, &[(0, 10)]).await;
        coordinator.do_send(BatchCommitted {
            epoch: Epoch(3),
            outcome: CommitOutcome {
                inserted: 5,
                duplicates: 1,
                dead_lettered: 2,
                refused: 0,
            },
            partitions: vec![0],
            next_offsets: offsets(&[(0, 18)]),
        });
        let status = status(&coordinator).await;
        assert_eq!(status.state.processed_total, 5);
        assert_eq!(status.state.dead_lettered_total, 2);
        assert_eq!(status.state.offsets, offsets(&[(0, 18)]));
        assert!(status
            .last_failover
            .is_some_and(|view| view.first_commit_ms.is_some()));
        until_told(&log, &Told::CommitRecorded(Epoch(3))).await;
    }

    #[actix::test]
    async fn a_revocation_of_our_epoch_stops_the_consumer_at_once() {
        let (coordinator, log) = leading(3, &[]).await;
        coordinator.do_send(LeadershipRevoked {
            epoch: Epoch(3),
            reason: crate::node::election::Revocation::MemberDeleted,
        });
        until_told(&log, &Told::EndEpoch).await;
        let log = told(&log);
        assert!(position(&log, &Told::Drained) < position(&log, &Told::BecomeStandby));
        assert_eq!(status(&coordinator).await.role, NodeRole::Standby);
    }

    #[actix::test]
    async fn a_fenced_commit_stands_down_and_resigns() {
        let (coordinator, log) = leading(3, &[]).await;
        coordinator.do_send(ConsumerFenced {
            epoch: Epoch(3),
            fence_epoch: Some(Epoch(4)),
        });
        until_told(&log, &Told::Resign).await;
        assert!(told(&log).contains(&Told::Drained));
        assert_eq!(status(&coordinator).await.role, NodeRole::Standby);
    }

    #[actix::test]
    async fn a_stepdown_drains_flushes_and_snapshots_before_it_resigns() {
        let (coordinator, log) = leading(3, &[]).await;
        let stepped = coordinator.send(StepDown).await.expect("answer");
        assert_eq!(stepped.ok(), Some(Epoch(3)));
        until_told(&log, &Told::Resign).await;
        let log = told(&log);
        let order = [
            Told::DrainDone,
            Told::Flush,
            Told::FlushSnapshot,
            Told::BecomeStandby,
            Told::Resign,
        ]
        .map(|entry| position(&log, &entry));
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{log:?}");
    }

    #[actix::test]
    async fn a_standby_refuses_to_step_down() {
        let (coordinator, _log) = coordinator(Vec::new(), None);
        let answer = coordinator.send(StepDown).await.expect("answer");
        assert!(answer.is_err());
    }

    #[actix::test]
    async fn a_shutdown_winds_down_then_leaves_the_election() {
        let (coordinator, log) = leading(3, &[]).await;
        coordinator.send(Shutdown).await.expect("answer");
        let log = told(&log);
        let order = [
            Told::DrainDone,
            Told::Flush,
            Told::FlushSnapshot,
            Told::Leave,
        ]
        .map(|entry| position(&log, &entry));
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{log:?}");
        assert_eq!(status(&coordinator).await.role, NodeRole::Standby);
    }

    #[actix::test]
    async fn a_newer_grant_ends_the_old_term_before_the_new_one_takes_over() {
        let (coordinator, log) =
            coordinator(vec![Ok(offsets(&[(0, 1)])), Ok(offsets(&[(0, 7)]))], None);
        coordinator.do_send(granted(3));
        until_told(&log, &Told::ConsumerStarted(Epoch(3), offsets(&[(0, 1)]))).await;
        coordinator.do_send(granted(5));
        until_told(&log, &Told::ConsumerStarted(Epoch(5), offsets(&[(0, 7)]))).await;
        let log = told(&log);
        assert!(
            position(&log, &Told::DrainDone) < position(&log, &Told::TakeOver(Epoch(5))),
            "the old term's loop must have ended before the new term reads: {log:?}"
        );
    }
}
