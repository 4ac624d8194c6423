//! ConsumerActor: exists only while this node leads. The coordinator starts it
//! after the takeover transaction (fence raised, offsets read) and stops it on
//! revocation; it never outlives its epoch.
//!
//! It assigns every partition of the topic at the stored offsets, reads bounded
//! batches, turns each record into an event row or a dead letter (a poison
//! record never blocks its partition), and sends each batch to the SinkActor,
//! waiting for the commit before reading on: at most one batch is in flight,
//! which is the back-pressure. A failed commit is retried with backoff; a fenced
//! one ends the actor and tells the coordinator.
//!
//! Partitions added to the topic while it runs are found by a metadata refresh
//! every `PARTITION_REFRESH_INTERVAL` (5 s) and read from their beginning, so they
//! are never left to the broker's retention until the next failover. The
//! assignment is reported ([`PartitionsAssigned`]) before the first commit, so
//! lag is exported even while no commit succeeds.
//!
//! Handles [`Drain`]: stop reading, let the in-flight commit finish, then stop.
//!
//! - [`partition_reader`]: the manually assigned Kafka reader.

pub mod partition_reader;

use std::collections::BTreeMap;
use std::time::Duration;

use actix::prelude::*;
use backon::Retryable;
use futures::future::BoxFuture;
use opentelemetry::trace::TraceContextExt;
use rdkafka::error::KafkaError;
use tokio::sync::watch;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::log_event::{EventLimits, LogEvent};
use crate::node::consumer::partition_reader::{
    is_connection_event, ConsumedRecord, PartitionReader,
};
use crate::node::election::epoch::Epoch;
use crate::node::messages::{
    BatchCommitted, BatchInFlight, CommitBatch, ConsumerFenced, ConsumerPeers, Drain,
    PartitionsAssigned,
};
use crate::node::metrics::NodeMetrics;
use crate::node::sink::store::{DeadLetterRow, EventRow, KafkaPosition, SinkBatch, SinkError};
use crate::shared::retry_policy::dependency_backoff;
use crate::shared::telemetry::tracing_setup::parent_from_headers;

/// How often a running consumer looks for partitions added to the topic.
const PARTITION_REFRESH_INTERVAL: Duration = Duration::from_secs(5);

/// What a consumer needs besides its epoch and offsets.
#[derive(Clone)]
pub struct ConsumerSettings {
    /// The warm reader.
    pub reader: PartitionReader,
    /// Topic name (stored with each row).
    pub topic: String,
    /// This node's instance id (stored with each row).
    pub instance_id: String,
    /// Most records per batch.
    pub batch_max_events: usize,
    /// About the most bytes of keys and values per batch.
    pub batch_max_bytes: usize,
    /// Longest wait for a batch to fill.
    pub batch_linger: Duration,
    /// Rules each event must meet.
    pub limits: EventLimits,
    /// Instruments.
    pub metrics: NodeMetrics,
}

/// What the coordinator needs of Kafka: a consumer for each term, and how
/// far the topic was written (for the lag). A trait, so the coordinator's
/// tests need no broker.
pub trait Consuming: 'static {
    /// The topic consumed (a snapshot of another topic is not believed).
    fn topic(&self) -> &str;
    /// Starts the consumer of `epoch` at `next_offsets`; answers [`Drain`].
    fn start(
        &self,
        epoch: Epoch,
        next_offsets: BTreeMap<i32, i64>,
        peers: ConsumerPeers,
    ) -> Recipient<Drain>;
    /// The high watermark (next offset to be written) of each of `partitions`.
    fn high_watermarks(
        &self,
        partitions: Vec<i32>,
    ) -> BoxFuture<'static, Result<Vec<(i32, i64)>, KafkaError>>;
}

impl Consuming for ConsumerSettings {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn start(
        &self,
        epoch: Epoch,
        next_offsets: BTreeMap<i32, i64>,
        peers: ConsumerPeers,
    ) -> Recipient<Drain> {
        ConsumerActor::new(epoch, next_offsets, self.clone(), peers)
            .start()
            .recipient()
    }

    fn high_watermarks(
        &self,
        partitions: Vec<i32>,
    ) -> BoxFuture<'static, Result<Vec<(i32, i64)>, KafkaError>> {
        let reader = self.reader.clone();
        Box::pin(async move { reader.high_watermarks(partitions).await })
    }
}

/// The actor.
pub struct ConsumerActor {
    epoch: Epoch,
    reader: PartitionReader,
    /// The loop, until `started` hands it to the actor's context.
    pending: Option<ConsumeLoop>,
    stop: watch::Sender<bool>,
    finished: watch::Sender<bool>,
}

impl ConsumerActor {
    /// A consumer for `epoch`, resuming at `next_offsets`.
    pub fn new(
        epoch: Epoch,
        next_offsets: BTreeMap<i32, i64>,
        settings: ConsumerSettings,
        peers: ConsumerPeers,
    ) -> Self {
        let stop = watch::channel(false).0;
        Self {
            epoch,
            reader: settings.reader.clone(),
            pending: Some(ConsumeLoop {
                epoch,
                next_offsets,
                settings,
                peers,
                stop: stop.subscribe(),
            }),
            stop,
            finished: watch::channel(false).0,
        }
    }
}

impl Actor for ConsumerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(run) = self.pending.take() else {
            return;
        };
        ctx.spawn(run.run().into_actor(self).map(|(), actor, ctx| {
            actor.finished.send_replace(true);
            ctx.stop();
        }));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        if let Err(error) = self.reader.unassign(self.epoch) {
            tracing::warn!(%error, "could not unassign partitions");
        }
        tracing::info!(epoch = %self.epoch, "consumer stopped");
    }
}

impl Handler<Drain> for ConsumerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _message: Drain, _ctx: &mut Context<Self>) -> Self::Result {
        self.stop.send_replace(true);
        let mut finished = self.finished.subscribe();
        Box::pin(async move {
            let _ = finished.wait_for(|done| *done).await;
        })
    }
}

/// The read-commit loop, owning clones so it can run as one future.
struct ConsumeLoop {
    epoch: Epoch,
    next_offsets: BTreeMap<i32, i64>,
    settings: ConsumerSettings,
    peers: ConsumerPeers,
    stop: watch::Receiver<bool>,
}

impl ConsumeLoop {
    async fn run(mut self) {
        let Some(mut partitions) = self.discover_partitions().await else {
            return;
        };
        if !self.assign(&partitions) {
            return;
        }
        let mut refreshed_at = tokio::time::Instant::now();
        // The term's first batch does not linger: it takes the records the
        // first fetch brought, which waited through the hand-over already.
        // Every later batch lingers as configured, whether that first one
        // committed or not.
        let mut linger = Duration::ZERO;
        while !*self.stop.borrow() {
            if refreshed_at.elapsed() >= PARTITION_REFRESH_INTERVAL {
                refreshed_at = tokio::time::Instant::now();
                // Raced against the stop: with the broker unreachable the
                // metadata request takes its whole timeout.
                let found = tokio::select! {
                    biased;
                    _ = self.stop.changed() => break,
                    found = self.settings.reader.partitions() => found,
                };
                match found {
                    Ok(found) if found.iter().any(|p| !partitions.contains(p)) => {
                        tracing::info!(
                            ?found,
                            "partitions were added; reading the new ones from their beginning"
                        );
                        partitions = found;
                        if !self.assign(&partitions) {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%error, "could not refresh topic metadata"),
                }
            }
            let records = tokio::select! {
                // Stop first: records taken after the stop would be dropped
                // with this loop, and they may be the next term's.
                biased;
                _ = self.stop.changed() => break,
                // Bounded wait, so that an idle leader looks for added
                // partitions too: their records would wait otherwise.
                records = self.settings.reader.next_batch(
                    self.settings.batch_max_events,
                    self.settings.batch_max_bytes,
                    linger,
                    PARTITION_REFRESH_INTERVAL,
                ) => records,
            };
            let records = match records {
                Ok(records) => records,
                // Connection events are news, not failures: librdkafka
                // reconnects by itself, and a standby's queue holds every one
                // from its idle time (a broker restart leaves dozens), which a
                // pause each would turn into seconds of takeover.
                Err(error) if is_connection_event(&error) => {
                    tracing::debug!(%error, "kafka connection event");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "kafka read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            if records.is_empty() {
                continue;
            }
            linger = self.settings.batch_linger;
            if !self.commit(&partitions, records).await {
                return;
            }
        }
    }

    /// Assigns `partitions` at the committed offsets (between batches, so the
    /// committed offsets are the read position) and reports them; false when
    /// the consumer must end.
    fn assign(&self, partitions: &[i32]) -> bool {
        match self
            .settings
            .reader
            .assign(self.epoch, partitions, &self.next_offsets)
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(epoch = %self.epoch, "a newer term reads the partitions; ending");
                return false;
            }
            Err(error) => {
                tracing::error!(%error, "could not assign partitions; stepping down");
                self.peers.fenced.do_send(ConsumerFenced {
                    epoch: self.epoch,
                    fence_epoch: None,
                });
                return false;
            }
        }
        tracing::info!(epoch = %self.epoch, ?partitions, offsets = ?self.next_offsets, "consuming");
        self.peers.assigned.do_send(PartitionsAssigned {
            epoch: self.epoch,
            partitions: partitions.to_vec(),
        });
        true
    }

    /// Waits until the topic exists; `None` when asked to stop first.
    async fn discover_partitions(&mut self) -> Option<Vec<i32>> {
        loop {
            match self.settings.reader.partitions().await {
                Ok(partitions) if !partitions.is_empty() => return Some(partitions),
                Ok(_) => {
                    tracing::info!(topic = %self.settings.topic, "waiting for the topic to exist")
                }
                Err(error) => tracing::warn!(%error, "could not read topic metadata"),
            }
            tokio::select! {
                _ = self.stop.changed() => return None,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Commits one batch, retrying transient failures; false when this consumer must end.
    async fn commit(&mut self, partitions: &[i32], records: Vec<ConsumedRecord>) -> bool {
        let (batch, event_spans) = self.build_batch(records);
        // One trace per event (gateway request -> produce -> consume, which ends
        // at its commit); the batch's commit span links to every one of them.
        let commit_span =
            tracing::info_span!("sink.commit", epoch = %self.epoch, events = batch.events.len());
        for span in &event_spans {
            commit_span.add_link(span.context().span().span_context().clone());
        }
        let message_ids: Vec<Uuid> = batch.events.iter().map(|row| row.message_id).collect();
        self.peers.in_flight.do_send(BatchInFlight {
            epoch: self.epoch,
            message_ids,
        });
        let sink = self.peers.commit.clone();
        let epoch = self.epoch;
        let stop = self.stop.clone();
        let outcome = (|| {
            let sink = sink.clone();
            let batch = batch.clone();
            async move {
                sink.send(CommitBatch { epoch, batch })
                    .await
                    .unwrap_or_else(|error| Err(SinkError::Unavailable(error.to_string())))
            }
        })
        .retry(dependency_backoff())
        .when(|error| !matches!(error, SinkError::Fenced { .. }) && !*stop.borrow())
        .notify(|error, delay| tracing::warn!(%error, ?delay, "commit failed; retrying"))
        .instrument(commit_span)
        .await;
        drop(event_spans);
        match outcome {
            Ok(outcome) => {
                self.next_offsets.extend(batch.next_offsets.iter());
                // Awaited: once this loop ends, the coordinator has seen every
                // commit, so a hand-over can flush an exact state snapshot.
                let _ = self
                    .peers
                    .committed
                    .send(BatchCommitted {
                        epoch,
                        outcome,
                        partitions: partitions.to_vec(),
                        next_offsets: self.next_offsets.clone(),
                    })
                    .await;
                true
            }
            Err(SinkError::Fenced { fence_epoch }) => {
                tracing::warn!(%epoch, %fence_epoch, "commit fenced by a newer leader");
                self.peers.fenced.do_send(ConsumerFenced {
                    epoch,
                    fence_epoch: Some(fence_epoch),
                });
                false
            }
            Err(error) => {
                tracing::warn!(%error, "abandoning the in-flight batch while draining");
                false
            }
        }
    }

    fn build_batch(&self, records: Vec<ConsumedRecord>) -> (SinkBatch, Vec<tracing::Span>) {
        let mut batch = SinkBatch::default();
        let mut spans = Vec::with_capacity(records.len());
        for record in records {
            let span = tracing::info_span!(
                "node.consume",
                partition = record.partition,
                offset = record.offset,
                epoch = %self.epoch,
                message_id = tracing::field::Empty,
            );
            if !record.headers.is_empty() {
                let _ = span.set_parent(parent_from_headers(&record.headers));
            }
            spans.push(span);
            let expected = batch
                .next_offsets
                .get(&record.partition)
                .or_else(|| self.next_offsets.get(&record.partition));
            if let Some(expected) = expected.copied().filter(|e| record.offset > *e) {
                // Without transactions offsets are contiguous: a gap is data the
                // broker lost or skipped, which no retry can bring back.
                let skipped = record.offset - expected;
                tracing::error!(
                    partition = record.partition,
                    expected,
                    got = record.offset,
                    "offset gap: records lost by the broker"
                );
                self.settings
                    .metrics
                    .lost(u64::try_from(skipped).unwrap_or(0));
            }
            let position = KafkaPosition {
                partition: record.partition,
                offset: record.offset,
            };
            let next = batch.next_offsets.entry(record.partition).or_insert(0);
            *next = (*next).max(record.offset + 1);
            match LogEvent::decode(record.payload.as_deref(), &self.settings.limits) {
                Ok(event) => {
                    if let Some(span) = spans.last() {
                        span.record("message_id", tracing::field::display(event.message_id));
                    }
                    batch.events.push(EventRow::new(
                        event,
                        &self.settings.topic,
                        position,
                        self.epoch,
                        &self.settings.instance_id,
                    ));
                }
                Err(reason) => {
                    let letter = DeadLetterRow::new(
                        &self.settings.topic,
                        position,
                        record.key,
                        record.payload,
                        &reason,
                        self.epoch,
                        &self.settings.instance_id,
                    );
                    tracing::warn!(partition = record.partition, offset = record.offset, reason = %letter.reason, "dead-lettering a record");
                    batch.dead_letters.push(letter);
                }
            }
        }
        (batch, spans)
    }
}
