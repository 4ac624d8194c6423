//! HeartbeatActor: the second failure signal, beside ZooKeeper.
//!
//! While leading it writes `leader:heartbeat` = `{timestamp_ms}:{epoch}:{instance}`
//! every `node.heartbeat_interval_ms`, never over a higher epoch's unless
//! ZooKeeper confirms that this node still leads (the stored value is then
//! forged: ZooKeeper is the authority on epochs, Redis only a signal). A write
//! refused while ZooKeeper cannot confirm ends the leadership at once.
//!
//! While standing by it reads the heartbeat every
//! `node.heartbeat_check_interval_ms` and feeds [`LeaderLiveness`], which
//! judges on this node's monotonic clock whether the leader ZooKeeper names
//! still makes progress; when it calls the leader hung (a hung but connected
//! leader), the election forces a takeover. An unreadable Redis is not a miss:
//! ZooKeeper stays the authority.
//!
//! Handles [`BecomeLeader`], [`BecomeStandby`] and [`ZooKeeperLeader`]; reports
//! [`HeartbeatObserved`] to the coordinator.
//!
//! - [`record`]: the seed's heartbeat format.
//! - [`liveness`]: how a standby judges the leader alive, on its own clock (pure).
//! - [`store`]: the heartbeat in Redis, epoch-checked.

pub mod liveness;
pub mod record;
pub(crate) mod store;

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::NodeConfig;
use crate::node::election::epoch::Epoch;
use crate::node::heartbeat::liveness::{LeaderLiveness, Verdict};
use crate::node::heartbeat::record::HeartbeatRecord;
use crate::node::heartbeat::store::{HeartbeatStore, WriteOutcome};
use crate::node::messages::{
    BecomeLeader, BecomeStandby, ConfirmLeadership, ForceTakeover, HeartbeatObserved,
    HeartbeatPeers, LeaseConfirmed, LeaseWitness, ZooKeeperLeader,
};
use crate::shared::printable::escape_untrusted;

/// Periodic tick of the leader's writer.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteTick;

/// Periodic tick of the standby's checker.
#[derive(Message)]
#[rtype(result = "()")]
struct CheckTick;

/// The actor.
pub struct HeartbeatActor {
    store: HeartbeatStore,
    instance_id: String,
    node: NodeConfig,
    leading: Option<Epoch>,
    /// When the last heartbeat write that landed was sent (while leading).
    last_written: Option<Instant>,
    liveness: LeaderLiveness,
    in_progress: bool,
    peers: HeartbeatPeers,
}

impl HeartbeatActor {
    /// A heartbeat actor for `instance_id`.
    pub fn new(
        store: HeartbeatStore,
        instance_id: String,
        node: NodeConfig,
        peers: HeartbeatPeers,
    ) -> Self {
        Self {
            store,
            liveness: LeaderLiveness::new(
                instance_id.clone(),
                Duration::from_millis(node.heartbeat_timeout_ms),
                node.heartbeat_misses_before_takeover,
            ),
            instance_id,
            node,
            leading: None,
            last_written: None,
            in_progress: false,
            peers,
        }
    }
}

impl Actor for HeartbeatActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(
            Duration::from_millis(self.node.heartbeat_interval_ms),
            |_, ctx| {
                ctx.notify(WriteTick);
            },
        );
        ctx.run_interval(
            Duration::from_millis(self.node.heartbeat_check_interval_ms),
            |_, ctx| ctx.notify(CheckTick),
        );
    }
}

impl Supervised for HeartbeatActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.in_progress = false;
        self.liveness.read_failed();
    }
}

impl Handler<BecomeLeader> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, message: BecomeLeader, ctx: &mut Context<Self>) {
        self.leading = Some(message.epoch);
        self.last_written = None;
        // Write at once: standbys must not count the hand-over gap as misses.
        ctx.notify(WriteTick);
    }
}

impl Handler<BecomeStandby> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, _message: BecomeStandby, _ctx: &mut Context<Self>) {
        self.leading = None;
    }
}

impl Handler<ZooKeeperLeader> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, message: ZooKeeperLeader, _ctx: &mut Context<Self>) {
        self.liveness.leader_named(message.leader, Instant::now());
    }
}

impl Handler<WriteTick> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, _tick: WriteTick, ctx: &mut Context<Self>) {
        let Some(epoch) = self.leading else { return };
        if self.in_progress {
            return;
        }
        self.in_progress = true;
        let record = HeartbeatRecord {
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
            epoch,
            instance_id: self.instance_id.clone(),
        };
        let store = self.store.clone();
        let confirm = self.peers.confirm.clone();
        let sent = Instant::now();
        ctx.spawn(
            async move {
                match store.write(&record).await? {
                    WriteOutcome::Written => Ok(true),
                    WriteOutcome::Refused { stored } => {
                        tracing::warn!(%epoch, stored = %escape_untrusted(&stored, 128), "a higher epoch's heartbeat is stored; asking zookeeper who leads");
                        // An actor that is restarting cannot confirm either:
                        // then the leadership ends.
                        if confirm.send(ConfirmLeadership { epoch }).await.unwrap_or(false) {
                            tracing::warn!(%epoch, "zookeeper confirms our leadership; replacing a forged heartbeat");
                            store.replace(&stored, &record).await
                        } else {
                            Ok(false)
                        }
                    }
                }
            }
            .into_actor(self)
            .map(move |result, actor, _ctx| {
                actor.in_progress = false;
                match result {
                    Ok(true) => {
                        actor.last_written = Some(sent);
                        actor.peers.lease.do_send(LeaseConfirmed {
                            epoch,
                            sent,
                            valid_until: sent + Duration::from_millis(actor.node.heartbeat_timeout_ms),
                            witness: LeaseWitness::Heartbeat,
                        });
                    }
                    Ok(false) => {}
                    Err(error) => tracing::warn!(%error, "could not write the heartbeat"),
                }
                // The leader's own view: how long since its heartbeat last
                // landed, so an alert on the age can fire from the one node
                // that knows its writes fail.
                actor.peers.observed.do_send(HeartbeatObserved {
                    age: actor.last_written.map(|written| written.elapsed()),
                });
            }),
        );
    }
}

impl Handler<CheckTick> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, _tick: CheckTick, ctx: &mut Context<Self>) {
        if self.leading.is_some() || self.in_progress {
            return;
        }
        self.in_progress = true;
        let store = self.store.clone();
        let started = Instant::now();
        let slow = Duration::from_millis(self.node.heartbeat_timeout_ms);
        ctx.spawn(async move { store.read().await }.into_actor(self).map(
            move |result, actor, _ctx| {
                actor.in_progress = false;
                // A read that took longer than the heartbeat timeout
                // waited for Redis to come back (the client retries
                // inside the call): Redis was unreadable meanwhile, which
                // is no miss. (A Redis that always answers this slowly
                // cannot serve a heartbeat rule of this timeout anyway.) Measured: a standby started just before a Redis
                // outage got its first answer after it, judged the
                // outage as 5.7 s of staleness and forced a takeover of
                // a healthy leader (4 false failovers in 560 chaos cycles).
                if started.elapsed() > slow {
                    tracing::debug!(took = ?started.elapsed(), "the heartbeat read was slow");
                    actor.liveness.read_failed();
                }
                match result {
                    Ok(stored) => actor.judge(stored),
                    Err(error) => {
                        tracing::debug!(%error, "could not read the heartbeat");
                        actor.liveness.read_failed();
                    }
                }
            },
        ));
    }
}

impl HeartbeatActor {
    fn judge(&mut self, stored: Option<HeartbeatRecord>) {
        let now = Instant::now();
        let verdict = self.liveness.heartbeat_read(stored, now);
        self.peers.observed.do_send(HeartbeatObserved {
            age: self.liveness.since_progress(now),
        });
        match verdict {
            Verdict::NotJudged | Verdict::Alive { .. } => {}
            Verdict::Missed {
                misses,
                since_progress,
            } => tracing::info!(
                misses,
                unchanged_ms = since_progress.as_millis(),
                "leader heartbeat is stale"
            ),
            Verdict::Hung {
                instance_id,
                since_progress,
            } => {
                tracing::warn!(
                    leader = %instance_id,
                    unchanged_ms = since_progress.as_millis(),
                    "leader heartbeat stopped changing; forcing a takeover"
                );
                self.peers
                    .force_takeover
                    .do_send(ForceTakeover { instance_id });
            }
        }
    }
}
