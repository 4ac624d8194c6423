//! StateSnapshotActor: the seed's state migration, kept advisory.
//!
//! While leading it keeps the latest [`ConsumerState`] in memory, updated by
//! every [`BatchInFlight`] and [`CommitRecorded`], and writes it to Redis at most
//! once per `node.snapshot_interval_ms` (coalesced), epoch-checked so a stale
//! leader never overwrites a successor's snapshot. A new leader asks it to
//! [`LoadSnapshot`] during its takeover transaction; the coordinator reconciles
//! that with PostgreSQL, which wins. Redis being down only delays snapshots: the next write carries it all.
//!
//! - [`state`]: the snapshot's content, its reconciliation and plausibility.
//! - [`store`]: the snapshot in Redis, epoch-checked.

pub mod state;
pub mod store;

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;

use crate::node::messages::{
    BatchInFlight, BeginEpoch, CommitRecorded, EndEpoch, FlushSnapshot, LoadSnapshot,
};
use crate::node::snapshot::state::{ConsumerState, InFlightId, IN_FLIGHT_TTL_MS};
use crate::node::snapshot::store::SnapshotStore;
use crate::shared::redis_store::RedisStoreError;

#[derive(Message)]
#[rtype(result = "()")]
struct FlushTick;

/// The actor.
pub struct StateSnapshotActor {
    store: SnapshotStore,
    instance_id: String,
    topic: String,
    interval: Duration,
    current: Option<ConsumerState>,
    dirty: bool,
    writing: bool,
}

impl StateSnapshotActor {
    /// A snapshot writer for `instance_id` consuming `topic`.
    pub fn new(
        store: SnapshotStore,
        instance_id: String,
        topic: String,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            instance_id,
            topic,
            interval,
            current: None,
            dirty: false,
            writing: false,
        }
    }
}

impl Actor for StateSnapshotActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.interval, |_, ctx| ctx.notify(FlushTick));
    }
}

impl Supervised for StateSnapshotActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.writing = false;
    }
}

impl Handler<LoadSnapshot> for StateSnapshotActor {
    type Result = ResponseFuture<Result<Option<ConsumerState>, RedisStoreError>>;
    fn handle(&mut self, _message: LoadSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        Box::pin(async move { store.read().await })
    }
}

impl Handler<BeginEpoch> for StateSnapshotActor {
    type Result = ();
    fn handle(&mut self, message: BeginEpoch, _ctx: &mut Context<Self>) {
        self.current = Some(ConsumerState {
            instance_id: self.instance_id.clone(),
            epoch: message.epoch,
            topic: self.topic.clone(),
            partitions: Vec::new(),
            offsets: BTreeMap::new(),
            in_flight: Vec::new(),
            processed_total: message.processed_total,
            custom: message.custom,
            updated_at_ms: chrono::Utc::now().timestamp_millis(),
        });
        self.dirty = true;
    }
}

impl Handler<BatchInFlight> for StateSnapshotActor {
    type Result = ();
    fn handle(&mut self, message: BatchInFlight, _ctx: &mut Context<Self>) {
        let Some(state) = self.current.as_mut().filter(|s| s.epoch == message.epoch) else {
            tracing::debug!(epoch = %message.epoch, "in-flight ids of another epoch ignored");
            return;
        };
        let expires_at_ms = chrono::Utc::now().timestamp_millis() + IN_FLIGHT_TTL_MS;
        state.in_flight = message
            .message_ids
            .into_iter()
            .map(|message_id| InFlightId {
                message_id,
                expires_at_ms,
            })
            .collect();
        self.dirty = true;
    }
}

impl Handler<CommitRecorded> for StateSnapshotActor {
    type Result = ();
    fn handle(&mut self, message: CommitRecorded, _ctx: &mut Context<Self>) {
        let Some(state) = self.current.as_mut().filter(|s| s.epoch == message.epoch) else {
            tracing::debug!(epoch = %message.epoch, "commit of another epoch ignored");
            return;
        };
        state.partitions = message.partitions;
        state.offsets = message.next_offsets;
        state.processed_total = message.processed_total;
        state.in_flight.clear();
        self.dirty = true;
    }
}

impl Handler<FlushSnapshot> for StateSnapshotActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _message: FlushSnapshot, _ctx: &mut Context<Self>) -> Self::Result {
        let Some(state) = self.current.as_mut().filter(|_| self.dirty) else {
            return Box::pin(async {});
        };
        state.updated_at_ms = chrono::Utc::now().timestamp_millis();
        let snapshot = state.clone();
        self.dirty = false;
        let store = self.store.clone();
        Box::pin(async move {
            if let Err(error) = store.write(&snapshot).await {
                tracing::warn!(%error, "could not write the final state snapshot");
            }
        })
    }
}

impl Handler<EndEpoch> for StateSnapshotActor {
    type Result = ();
    fn handle(&mut self, _message: EndEpoch, _ctx: &mut Context<Self>) {
        self.current = None;
        self.dirty = false;
    }
}

impl Handler<FlushTick> for StateSnapshotActor {
    type Result = ();
    fn handle(&mut self, _tick: FlushTick, ctx: &mut Context<Self>) {
        if !self.dirty || self.writing {
            return;
        }
        let Some(state) = self.current.as_mut() else {
            return;
        };
        state.updated_at_ms = chrono::Utc::now().timestamp_millis();
        let snapshot = state.clone();
        self.dirty = false;
        self.writing = true;
        let store = self.store.clone();
        ctx.spawn(
            async move { store.write(&snapshot).await }
                .into_actor(self)
                .map(|result, actor, _ctx| {
                    actor.writing = false;
                    match result {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("a newer epoch's snapshot is stored; not overwriting it"),
                        Err(error) => {
                            tracing::warn!(%error, "could not write the state snapshot; will retry");
                            actor.dirty = actor.current.is_some();
                        }
                    }
                }),
        );
    }
}
