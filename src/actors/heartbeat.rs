//! HeartbeatActor: the second failure signal, beside ZooKeeper.
//!
//! While leading it writes `leader:heartbeat` = `{timestamp_ms}:{epoch}:{instance}`
//! every `node.heartbeat_interval_ms`, never over a higher epoch's. While standing
//! by it reads the heartbeat every `node.heartbeat_check_interval_ms`; after
//! `node.heartbeat_misses_before_takeover` consecutive readings older than
//! `node.heartbeat_timeout_ms`, and only while ZooKeeper still names the writer
//! as leader (a hung but connected leader), it asks the election to force a
//! takeover. An unreadable Redis is not a miss: ZooKeeper stays the authority.
//!
//! Handles [`BecomeLeader`], [`BecomeStandby`] and [`ZooKeeperLeader`]; reports
//! [`HeartbeatObserved`] to the coordinator.

use std::time::Duration;

use actix::prelude::*;

use crate::actors::election::{ElectionActor, ForceTakeover};
use crate::actors::node_coordinator::{HeartbeatObserved, NodeCoordinator};
use crate::config::NodeConfig;
use crate::epoch::Epoch;
use crate::heartbeat_record::HeartbeatRecord;
use crate::redis_store::heartbeat_store::HeartbeatStore;

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

/// Who ZooKeeper currently names as leader.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ZooKeeperLeader {
    /// Its instance id, when known.
    pub instance_id: Option<String>,
}

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
    zookeeper_leader: Option<String>,
    consecutive_misses: u32,
    in_progress: bool,
    coordinator: Addr<NodeCoordinator>,
    election: Addr<ElectionActor>,
}

impl HeartbeatActor {
    /// A heartbeat actor for `instance_id`.
    pub fn new(
        store: HeartbeatStore,
        instance_id: String,
        node: NodeConfig,
        coordinator: Addr<NodeCoordinator>,
        election: Addr<ElectionActor>,
    ) -> Self {
        Self {
            store,
            instance_id,
            node,
            leading: None,
            zookeeper_leader: None,
            consecutive_misses: 0,
            in_progress: false,
            coordinator,
            election,
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
        self.consecutive_misses = 0;
    }
}

impl Handler<BecomeLeader> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, message: BecomeLeader, ctx: &mut Context<Self>) {
        self.leading = Some(message.epoch);
        self.consecutive_misses = 0;
        // Write at once: standbys must not count the hand-over gap as misses.
        ctx.notify(WriteTick);
    }
}

impl Handler<BecomeStandby> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, _message: BecomeStandby, _ctx: &mut Context<Self>) {
        self.leading = None;
        self.consecutive_misses = 0;
    }
}

impl Handler<ZooKeeperLeader> for HeartbeatActor {
    type Result = ();
    fn handle(&mut self, message: ZooKeeperLeader, _ctx: &mut Context<Self>) {
        if self.zookeeper_leader != message.instance_id {
            self.consecutive_misses = 0;
        }
        self.zookeeper_leader = message.instance_id;
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
        ctx.spawn(
            async move { store.write(&record).await }
                .into_actor(self)
                .map(move |result, actor, _ctx| {
                    actor.in_progress = false;
                    match result {
                        Ok(true) => actor.coordinator.do_send(HeartbeatObserved {
                            age_ms: Some(0),
                            epoch: Some(epoch),
                        }),
                        Ok(false) => tracing::warn!(%epoch, "a newer epoch's heartbeat is stored; not overwriting it"),
                        Err(error) => tracing::warn!(%error, "could not write the heartbeat"),
                    }
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
        ctx.spawn(
            async move { store.read().await }
                .into_actor(self)
                .map(|result, actor, _ctx| {
                    actor.in_progress = false;
                    match result {
                        Ok(Some(heartbeat)) => actor.judge(heartbeat),
                        Ok(None) => actor.coordinator.do_send(HeartbeatObserved {
                            age_ms: None,
                            epoch: None,
                        }),
                        Err(error) => tracing::debug!(%error, "could not read the heartbeat"),
                    }
                }),
        );
    }
}

impl HeartbeatActor {
    fn judge(&mut self, heartbeat: HeartbeatRecord) {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.coordinator.do_send(HeartbeatObserved {
            age_ms: Some(heartbeat.age_ms(now_ms)),
            epoch: Some(heartbeat.epoch),
        });
        let names_current_leader =
            self.zookeeper_leader.as_deref() == Some(heartbeat.instance_id.as_str());
        if !names_current_leader || heartbeat.instance_id == self.instance_id {
            self.consecutive_misses = 0;
            return;
        }
        if !heartbeat.is_stale(now_ms, self.node.heartbeat_timeout_ms) {
            self.consecutive_misses = 0;
            return;
        }
        self.consecutive_misses += 1;
        tracing::info!(
            leader = %heartbeat.instance_id,
            age_ms = heartbeat.age_ms(now_ms),
            misses = self.consecutive_misses,
            "leader heartbeat is stale"
        );
        if self.consecutive_misses >= self.node.heartbeat_misses_before_takeover {
            self.consecutive_misses = 0;
            self.election.do_send(ForceTakeover {
                instance_id: heartbeat.instance_id,
            });
        }
    }
}
