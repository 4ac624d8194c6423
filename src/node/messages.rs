//! Owns every message the node's actors exchange, in one place, grouped by
//! the actor that handles it: an actor module names the messages it sends
//! through this module (and its peers through `Recipient`s where it holds
//! them), not through the receiver's file.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::node::election::epoch::Epoch;
use crate::node::election::named_leader::NamedLeader;
use crate::node::election::takeover_reason::TakeoverReason;
use crate::node::election::Revocation;
use crate::node::sink::store::{CommitOutcome, FailoverRecord, SinkBatch, SinkError};
use crate::node::snapshot::state::{ConsumerState, CustomState};
use crate::node::status::FailoverStatus;
use crate::shared::redis_store::RedisStoreError;

// Handled by the node coordinator (NodeCoordinator).

/// ZooKeeper made this node leader for `epoch`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LeadershipGranted {
    /// The claimed epoch.
    pub epoch: Epoch,
    /// Why leadership changed.
    pub reason: TakeoverReason,
    /// When the previous leader's loss was detected.
    pub detected_at: DateTime<Utc>,
    /// The previous leader's instance id, when known.
    pub previous_leader: Option<String>,
    /// Until when ZooKeeper vouched for this node's session (the claim's
    /// round trip), on this node's monotonic clock.
    pub lease_until: Instant,
}

/// One of the two signals that can end this node's leadership vouched for
/// it until `valid_until` (this node's monotonic clock).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct LeaseConfirmed {
    /// The epoch led.
    pub epoch: Epoch,
    /// When the request that vouched was sent.
    pub sent: Instant,
    /// End of the lease, on this node's monotonic clock.
    pub valid_until: Instant,
    /// Which signal vouched.
    pub witness: LeaseWitness,
}

/// What can end a leadership, and so must vouch for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseWitness {
    /// ZooKeeper answered a request sent one (negotiated) session timeout
    /// before the end: the session cannot have expired before then.
    ZooKeeper,
    /// A heartbeat write landed, sent one heartbeat timeout before the end:
    /// no standby can call this leader hung (and force a takeover) before then.
    Heartbeat,
}

/// This node no longer leads `epoch`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LeadershipRevoked {
    /// The epoch that ended.
    pub epoch: Epoch,
    /// Why.
    pub reason: Revocation,
}

/// Who ZooKeeper names as leader, and the epoch it was granted.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LeaderObserved {
    /// The leader; `None` when this node cannot tell (no session).
    pub leader: Option<NamedLeader>,
}

/// Whether the ZooKeeper session is up.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ZooKeeperConnectivity {
    /// True once a session is established, false when it is lost.
    pub connected: bool,
}

/// How long the leader's heartbeat has not changed, on this node's clock
/// (0 when this node just wrote it).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct HeartbeatObserved {
    /// Time since the leader's last progress; `None` when no leader is judged.
    pub age: Option<Duration>,
}

/// A batch of `epoch` was committed.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct BatchCommitted {
    /// The committing epoch.
    pub epoch: Epoch,
    /// What the commit changed.
    pub outcome: CommitOutcome,
    /// Partitions consumed.
    pub partitions: Vec<i32>,
    /// Next offset per partition after the commit.
    pub next_offsets: BTreeMap<i32, i64>,
}

/// The consumer of `epoch` assigned `partitions` (at start, and when the
/// topic grew): lag is measured on them from now on, commits or not.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct PartitionsAssigned {
    /// The consumer's epoch.
    pub epoch: Epoch,
    /// Every partition it reads.
    pub partitions: Vec<i32>,
}

/// The consumer of `epoch` cannot go on: fenced by a newer leader, or unable to start.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ConsumerFenced {
    /// The consumer's epoch.
    pub epoch: Epoch,
    /// The epoch the fence holds, when that is the cause.
    pub fence_epoch: Option<Epoch>,
}

/// Report this node's failover status.
#[derive(Message)]
#[rtype(result = "FailoverStatus")]
pub struct GetFailoverStatus;

/// Hand leadership over gracefully: finish the in-flight batch, then resign.
#[derive(Message)]
#[rtype(result = "Result<Epoch, NotLeader>")]
pub struct StepDown;

/// Leave the cluster gracefully and stop the process.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// A leader-only request reached a node that does not lead.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("this node is not the leader")]
pub struct NotLeader;

// Handled by the election (ElectionActor).

/// Give up leadership (delete our member znode) and join again at the back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resign;

/// Delete the leader's member znode if the leader is `instance_id`: it is
/// connected to ZooKeeper but its heartbeat is stale (hung).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForceTakeover {
    /// The instance whose heartbeat went stale.
    pub instance_id: String,
}

/// Claim a new epoch above `floor`: the database fence holds `floor`, which
/// ZooKeeper's epoch znode has not reached (its data was lost).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReclaimEpochAbove {
    /// The epoch the fence holds.
    pub floor: Epoch,
}

/// Delete our member znode and close the session; answers when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

/// Asked by the heartbeat when its write was refused over a higher epoch:
/// answers true when ZooKeeper confirms, within a bounded wait, that this node
/// still leads under `epoch` (the stored heartbeat is then forged and may be
/// replaced). Otherwise the leadership of `epoch` ends at once: a newer leader
/// holds the heartbeat, or ZooKeeper cannot vouch for us. A question about an
/// epoch this node no longer leads (a write in flight across a reclaim) is
/// answered false and changes nothing.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct ConfirmLeadership {
    /// The epoch the heartbeat was written under.
    pub epoch: Epoch,
}

// Handled by the heartbeat (HeartbeatActor).

/// Start writing heartbeats for `epoch`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BecomeLeader {
    /// The epoch to write.
    pub epoch: Epoch,
}

/// Stop writing; start checking.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BecomeStandby;

/// Who ZooKeeper currently names as leader, at which epoch.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ZooKeeperLeader {
    /// The leader; `None` when unknown.
    pub leader: Option<NamedLeader>,
}

// Handled by the consumer (ConsumerActor).

/// Stop reading, finish the in-flight commit, stop. Answers when stopped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

// Handled by the sink (SinkActor).

/// Raise the fence to `epoch` and return the stored next offset per partition.
#[derive(Message)]
#[rtype(result = "Result<BTreeMap<i32, i64>, SinkError>")]
pub struct TakeOver {
    /// The new leader's epoch.
    pub epoch: Epoch,
}

/// Commit one batch under `epoch`.
#[derive(Message)]
#[rtype(result = "Result<CommitOutcome, SinkError>")]
pub struct CommitBatch {
    /// The committing leader's epoch.
    pub epoch: Epoch,
    /// What to write.
    pub batch: SinkBatch,
}

/// Store one leadership change.
#[derive(Message)]
#[rtype(result = "Result<(), SinkError>")]
pub struct RecordFailover(pub FailoverRecord);

/// Answers once every request sent before it has finished.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Flush;

// Handled by the state snapshot (StateSnapshotActor).

/// Read the stored snapshot (a new leader's first step).
#[derive(Message)]
#[rtype(result = "Result<Option<ConsumerState>, RedisStoreError>")]
pub struct LoadSnapshot;

/// Start a new state for `epoch`, carrying over what the previous leader left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BeginEpoch {
    /// The new epoch.
    pub epoch: Epoch,
    /// Processed total to continue from.
    pub processed_total: u64,
    /// Application state carried over.
    pub custom: CustomState,
}

/// Ids handed to the sink and not yet committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct BatchInFlight {
    /// The committing epoch.
    pub epoch: Epoch,
    /// The batch's event ids.
    pub message_ids: Vec<Uuid>,
}

/// A batch was committed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CommitRecorded {
    /// The committing epoch.
    pub epoch: Epoch,
    /// Partitions consumed.
    pub partitions: Vec<i32>,
    /// Next offset per partition after the commit.
    pub next_offsets: BTreeMap<i32, i64>,
    /// Processed total after the commit.
    pub processed_total: u64,
}

/// Write the current state now (graceful hand-over); answers when written.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FlushSnapshot;

/// Stop snapshotting (leadership ended).
#[derive(Message)]
#[rtype(result = "()")]
pub struct EndEpoch;

// Who an actor talks to, as `Recipient`s: an actor holds the messages it may
// send, not its peers' concrete types, so the actor modules do not import
// each other and a test can stand a fake actor in for any peer.

/// Where the election reports what it decided and saw (the coordinator, in a node).
#[derive(Clone)]
pub struct ElectionEvents {
    /// This node now leads.
    pub granted: Recipient<LeadershipGranted>,
    /// This node no longer leads.
    pub revoked: Recipient<LeadershipRevoked>,
    /// Who ZooKeeper names as leader.
    pub observed: Recipient<LeaderObserved>,
    /// ZooKeeper vouched for this node's leadership.
    pub lease: Recipient<LeaseConfirmed>,
    /// The ZooKeeper session came or went.
    pub connectivity: Recipient<ZooKeeperConnectivity>,
}

impl ElectionEvents {
    /// Every event to `actor`.
    pub fn to<A>(actor: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<LeadershipGranted>
            + Handler<LeadershipRevoked>
            + Handler<LeaderObserved>
            + Handler<LeaseConfirmed>
            + Handler<ZooKeeperConnectivity>,
    {
        Self {
            granted: actor.clone().recipient(),
            revoked: actor.clone().recipient(),
            observed: actor.clone().recipient(),
            lease: actor.clone().recipient(),
            connectivity: actor.clone().recipient(),
        }
    }
}

/// Whom the heartbeat tells what it saw, and what it asks of the election.
#[derive(Clone)]
pub struct HeartbeatPeers {
    /// A heartbeat was read or written (the coordinator).
    pub observed: Recipient<HeartbeatObserved>,
    /// The heartbeat vouched for this node's leadership (the coordinator).
    pub lease: Recipient<LeaseConfirmed>,
    /// Does ZooKeeper still name this node leader? (the election)
    pub confirm: Recipient<ConfirmLeadership>,
    /// Replace a hung leader (the election).
    pub force_takeover: Recipient<ForceTakeover>,
}

/// Where a consumer sends its batches and what it reports.
#[derive(Clone)]
pub struct ConsumerPeers {
    /// Commits a batch (the sink).
    pub commit: Recipient<CommitBatch>,
    /// Notes a batch in flight (the state snapshot).
    pub in_flight: Recipient<BatchInFlight>,
    /// A batch was committed (the coordinator).
    pub committed: Recipient<BatchCommitted>,
    /// The partitions are assigned (the coordinator).
    pub assigned: Recipient<PartitionsAssigned>,
    /// A commit was fenced, or the consumer cannot go on (the coordinator).
    pub fenced: Recipient<ConsumerFenced>,
}

/// What the coordinator asks of the election.
#[derive(Clone)]
pub struct ElectionOrders {
    /// Give up leadership (fenced, or stepping down).
    pub resign: Recipient<Resign>,
    /// Claim an epoch above the database fence.
    pub reclaim: Recipient<ReclaimEpochAbove>,
    /// Leave the election (shutdown).
    pub leave: Recipient<Leave>,
}

impl ElectionOrders {
    /// Every order to `actor`.
    pub fn to<A>(actor: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<Resign>
            + Handler<ReclaimEpochAbove>
            + Handler<Leave>,
    {
        Self {
            resign: actor.clone().recipient(),
            reclaim: actor.clone().recipient(),
            leave: actor.clone().recipient(),
        }
    }
}

/// What the coordinator tells the heartbeat.
#[derive(Clone)]
pub struct HeartbeatOrders {
    /// Write heartbeats under this epoch.
    pub become_leader: Recipient<BecomeLeader>,
    /// Stop writing; judge the leader instead.
    pub become_standby: Recipient<BecomeStandby>,
    /// Who ZooKeeper names as leader.
    pub zookeeper_leader: Recipient<ZooKeeperLeader>,
}

impl HeartbeatOrders {
    /// Every order to `actor`.
    pub fn to<A>(actor: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<BecomeLeader>
            + Handler<BecomeStandby>
            + Handler<ZooKeeperLeader>,
    {
        Self {
            become_leader: actor.clone().recipient(),
            become_standby: actor.clone().recipient(),
            zookeeper_leader: actor.clone().recipient(),
        }
    }
}

/// What the coordinator, and the consumers it starts, ask of the sink.
#[derive(Clone)]
pub struct SinkOrders {
    /// Raise the fence and read the stored offsets.
    pub take_over: Recipient<TakeOver>,
    /// Store a leadership change.
    pub record_failover: Recipient<RecordFailover>,
    /// Answer once every earlier commit finished.
    pub flush: Recipient<Flush>,
    /// Commit a batch (sent by the consumer).
    pub commit: Recipient<CommitBatch>,
}

impl SinkOrders {
    /// Every order to `actor`.
    pub fn to<A>(actor: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<TakeOver>
            + Handler<RecordFailover>
            + Handler<Flush>
            + Handler<CommitBatch>,
    {
        Self {
            take_over: actor.clone().recipient(),
            record_failover: actor.clone().recipient(),
            flush: actor.clone().recipient(),
            commit: actor.clone().recipient(),
        }
    }
}

/// What the coordinator, and the consumers it starts, tell the state snapshot.
#[derive(Clone)]
pub struct SnapshotOrders {
    /// Load the last snapshot (takeover).
    pub load: Recipient<LoadSnapshot>,
    /// A term begins.
    pub begin: Recipient<BeginEpoch>,
    /// The term ended.
    pub end: Recipient<EndEpoch>,
    /// A commit landed.
    pub commit_recorded: Recipient<CommitRecorded>,
    /// Write the snapshot now (wind-down).
    pub flush: Recipient<FlushSnapshot>,
    /// A batch is in flight (sent by the consumer).
    pub in_flight: Recipient<BatchInFlight>,
}

impl SnapshotOrders {
    /// Every order to `actor`.
    pub fn to<A>(actor: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>>
            + Handler<LoadSnapshot>
            + Handler<BeginEpoch>
            + Handler<EndEpoch>
            + Handler<CommitRecorded>
            + Handler<FlushSnapshot>
            + Handler<BatchInFlight>,
    {
        Self {
            load: actor.clone().recipient(),
            begin: actor.clone().recipient(),
            end: actor.clone().recipient(),
            commit_recorded: actor.clone().recipient(),
            flush: actor.clone().recipient(),
            in_flight: actor.clone().recipient(),
        }
    }
}

/// Every peer of the coordinator.
#[derive(Clone)]
pub struct CoordinatorPeers {
    /// The election.
    pub election: ElectionOrders,
    /// The heartbeat.
    pub heartbeat: HeartbeatOrders,
    /// The sink.
    pub sink: SinkOrders,
    /// The state snapshot.
    pub snapshots: SnapshotOrders,
}
