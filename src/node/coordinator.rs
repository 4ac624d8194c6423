//! NodeCoordinator: wires a node's actors and owns its leadership state.
//!
//! Leadership is a message: [`LeadershipGranted`] starts a takeover — load the
//! Redis snapshot (fast, advisory), raise the database fence and read the stored
//! offsets in one transaction, reconcile the two (PostgreSQL wins), then start a
//! ConsumerActor for that epoch and record the failover. [`LeadershipRevoked`]
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

use crate::node::consumer::{ConsumerActor, ConsumerSettings};
use crate::node::election::epoch::Epoch;
use crate::node::election::takeover_reason::TakeoverKind;
use crate::node::election::ElectionActor;
use crate::node::heartbeat::liveness::NamedLeader;
use crate::node::heartbeat::HeartbeatActor;
use crate::node::messages::{
    BatchCommitted, BecomeLeader, BecomeStandby, BeginEpoch, CommitRecorded, ConsumerFenced,
    ConsumerPeers, Drain, EndEpoch, Flush, FlushSnapshot, GetFailoverStatus, HeartbeatObserved,
    LeaderObserved, LeadershipGranted, LeadershipRevoked, LeaseConfirmed, LeaseWitness, Leave,
    LoadSnapshot, NotLeader, PartitionsAssigned, ReclaimEpochAbove, RecordFailover, Resign,
    Shutdown, StepDown, TakeOver, ZooKeeperConnectivity, ZooKeeperLeader,
};
use crate::node::metrics::NodeMetrics;
use crate::node::sink::store::{FailoverRecord, SinkError};
use crate::node::sink::SinkActor;
use crate::node::snapshot::state::{ConsumerState, CustomState};
use crate::node::snapshot::StateSnapshotActor;
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

/// The other actors, started by [`NodeCoordinator::start`].
pub struct NodeActors {
    /// Election.
    pub election: Addr<ElectionActor>,
    /// Heartbeat.
    pub heartbeat: Addr<HeartbeatActor>,
    /// Sink.
    pub sink: Addr<SinkActor>,
    /// Snapshots.
    pub snapshots: Addr<StateSnapshotActor>,
}

/// The actor.
pub struct NodeCoordinator {
    identity: NodeIdentity,
    actors: NodeActors,
    consumer_settings: ConsumerSettings,
    role: Role,
    last_epoch: Option<Epoch>,
    leadership: watch::Sender<Option<Epoch>>,
    consumer: Option<Addr<ConsumerActor>>,
    /// The consumer of the last term, stopped but maybe still finishing its
    /// in-flight commit.
    stopping_consumer: Option<Addr<ConsumerActor>>,
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
    /// Starts the coordinator; `start_actors` starts the others with its address.
    pub fn start(
        identity: NodeIdentity,
        consumer_settings: ConsumerSettings,
        start_actors: impl FnOnce(Addr<NodeCoordinator>) -> NodeActors,
    ) -> Addr<NodeCoordinator> {
        NodeCoordinator::create(|ctx| NodeCoordinator {
            identity,
            actors: start_actors(ctx.address()),
            consumer_settings,
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
        self.actors.heartbeat.do_send(BecomeStandby);
        self.actors.snapshots.do_send(EndEpoch);
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
            let doubt = snapshot.doubt(&self.consumer_settings.topic, epoch, &offsets);
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
        self.actors.snapshots.do_send(BeginEpoch {
            epoch,
            processed_total: self.state.processed_total,
            custom,
        });
        let consumer = ConsumerActor::new(
            epoch,
            offsets,
            self.consumer_settings.clone(),
            ConsumerPeers {
                commit: self.actors.sink.clone().recipient(),
                in_flight: self.actors.snapshots.clone().recipient(),
                committed: ctx.address().recipient(),
                assigned: ctx.address().recipient(),
                fenced: ctx.address().recipient(),
            },
        )
        .start();
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
        let sink = self.actors.sink.clone();
        ctx.spawn(
            async move {
                match sink.send(RecordFailover(record)).await {
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
        let reader = self.consumer_settings.reader.clone();
        let partitions = self.state.partitions.clone();
        ctx.spawn(
            async move { reader.high_watermarks(partitions).await }
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
        self.actors.heartbeat.do_send(BecomeLeader {
            epoch: granted.epoch,
        });
        let epoch = granted.epoch;
        let snapshots = self.actors.snapshots.clone();
        let sink = self.actors.sink.clone();
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
            let snapshot = match snapshots.send(LoadSnapshot).await {
                Ok(Ok(snapshot)) => snapshot,
                Ok(Err(error)) => {
                    tracing::warn!(%error, "could not load the state snapshot; continuing from postgresql");
                    None
                }
                Err(_) => None,
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
            .notify(|error, delay| tracing::warn!(%error, ?delay, "takeover transaction failed; retrying"))
            .await;
            (offsets, snapshot)
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
                    actor.actors.election.do_send(ReclaimEpochAbove { floor: fence_epoch });
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
        self.actors.election.do_send(Resign);
    }
}

impl Handler<LeaderObserved> for NodeCoordinator {
    type Result = ();
    fn handle(&mut self, observed: LeaderObserved, _ctx: &mut Context<Self>) {
        self.actors.heartbeat.do_send(ZooKeeperLeader {
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
        self.actors.snapshots.do_send(CommitRecorded {
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
        let sink = self.actors.sink.clone();
        let snapshots = self.actors.snapshots.clone();
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
            within(bound(FLUSH_BOUND), "the sink's flush", sink.send(Flush)).await;
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
                        actor.actors.election.do_send(Resign);
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
        let election = self.actors.election.clone();
        Box::pin(
            async move {
                wind_down.await;
                within(
                    Some(LEAVE_BOUND),
                    "leaving the election",
                    election.send(Leave),
                )
                .await;
            }
            .into_actor(self)
            .map(|(), actor, _ctx| {
                actor.become_standby();
                tracing::info!("left the election");
            }),
        )
    }
}
