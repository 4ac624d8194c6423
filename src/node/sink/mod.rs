//! SinkActor: the only writer of events into PostgreSQL.
//!
//! Handles [`TakeOver`] (raise the fence, read the stored offsets),
//! [`CommitBatch`] (one fenced transaction per batch) and [`RecordFailover`].
//! Each request is atomic in the mailbox: the next one starts only when the
//! previous transaction finished, so commits happen in the order they were sent
//! and a [`Flush`] answers only after every commit sent before it.
//! Failures are returned to the sender, who decides to retry or step down.
//!
//! - [`store`]: the fenced transactions, in SQL.

pub mod store;

use std::collections::BTreeMap;

use actix::prelude::*;

use std::time::Instant;

use crate::node::messages::{CommitBatch, Flush, RecordFailover, TakeOver};
use crate::node::metrics::NodeMetrics;
use crate::node::sink::store::{CommitOutcome, SinkError, SinkStore};

/// The actor.
pub struct SinkActor {
    store: SinkStore,
    metrics: NodeMetrics,
}

impl SinkActor {
    /// A sink writing through `store`.
    pub fn new(store: SinkStore, metrics: NodeMetrics) -> Self {
        Self { store, metrics }
    }
}

impl Actor for SinkActor {
    type Context = Context<Self>;
}

impl Supervised for SinkActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("sink actor restarting");
    }
}

impl Handler<TakeOver> for SinkActor {
    type Result = AtomicResponse<Self, Result<BTreeMap<i32, i64>, SinkError>>;

    fn handle(&mut self, message: TakeOver, _ctx: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.take_over(message.epoch).await }.into_actor(self),
        ))
    }
}

impl Handler<CommitBatch> for SinkActor {
    type Result = AtomicResponse<Self, Result<CommitOutcome, SinkError>>;

    fn handle(&mut self, message: CommitBatch, _ctx: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        let metrics = self.metrics.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let started = Instant::now();
                let result = store.commit(message.epoch, &message.batch).await;
                match &result {
                    Ok(outcome) => {
                        metrics.refused(outcome.refused);
                        metrics.duplicates(outcome.duplicates);
                        metrics.committed(
                            message.batch.events.len() + message.batch.dead_letters.len(),
                            outcome.inserted,
                            outcome.dead_lettered,
                            started.elapsed(),
                        );
                    }
                    Err(SinkError::Fenced { .. }) => metrics.fenced(),
                    Err(_) => {}
                }
                result
            }
            .into_actor(self),
        ))
    }
}

impl Handler<RecordFailover> for SinkActor {
    type Result = AtomicResponse<Self, Result<(), SinkError>>;

    fn handle(&mut self, message: RecordFailover, _ctx: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        AtomicResponse::new(Box::pin(
            async move { store.record_failover(&message.0).await }.into_actor(self),
        ))
    }
}

impl Handler<Flush> for SinkActor {
    type Result = ();

    fn handle(&mut self, _message: Flush, _ctx: &mut Context<Self>) {}
}
