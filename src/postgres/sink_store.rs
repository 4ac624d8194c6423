//! Owns every write the leader makes to PostgreSQL, each behind the fence.
//!
//! The fence is one row per cluster in `leader_fence`. Every transaction first
//! raises it to the writer's epoch with `... WHERE epoch <= $ours`; zero rows
//! means a newer leader raised it already, and the transaction rolls back with
//! [`SinkError::Fenced`]. The row lock the update takes also serialises the
//! commits of two would-be leaders. Events, dead letters and the next offsets
//! commit in that same transaction: data and position never disagree, so a
//! successor that resumes at the stored offsets neither loses nor repeats a row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use crate::circuit_breaker::DependencyBreaker;
use crate::epoch::Epoch;
use crate::log_event::LogEvent;
use crate::postgres::pool::PgPool;
use crate::postgres::schema::{consumer_offsets, dead_letters, failover_events, leader_fence};

/// Why a sink operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A newer leader holds the fence: this node must stop writing.
    #[error("fenced: the fence is at epoch {fence_epoch}, above ours")]
    Fenced {
        /// The epoch the fence holds.
        fence_epoch: Epoch,
    },
    /// No connection could be had (PostgreSQL down or the pool exhausted).
    #[error("postgresql unavailable: {0}")]
    Unavailable(String),
    /// The PostgreSQL circuit breaker is open: recent calls kept failing, so
    /// this one was not tried.
    #[error("postgresql circuit breaker open: recent calls failed")]
    CircuitOpen,
    /// A statement failed.
    #[error("postgresql query failed: {0}")]
    Query(#[from] diesel::result::Error),
}

impl SinkError {
    /// Whether the error says PostgreSQL is unreachable or failing, rather
    /// than that it answered no.
    pub fn is_outage(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            SinkError::Unavailable(_) | SinkError::CircuitOpen => true,
            SinkError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => true,
            SinkError::Query(_) | SinkError::Fenced { .. } => false,
        }
    }
}

/// Inserts a batch of events in one statement of twelve arrays, not twelve
/// binds per row: planned once whatever the batch size, and 2–3 times faster
/// than a multi-row `VALUES` of 500 rows (see BENCHMARKS.md). A `message_id`
/// already stored is skipped: a client's retry is stored once.
const INSERT_EVENTS: &str = "INSERT INTO log_events \
    (message_id, level, message, source, event_timestamp, received_at, attributes, \
     topic, kafka_partition, kafka_offset, epoch, processed_by) \
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], \
     $5::timestamptz[], $6::timestamptz[], $7::jsonb[], $8::text[], $9::int4[], \
     $10::int8[], $11::int8[], $12::text[]) \
    ON CONFLICT (message_id) DO NOTHING";

async fn insert_events(
    connection: &mut AsyncPgConnection,
    events: &[EventRow],
) -> Result<usize, SinkError> {
    use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Text, Timestamptz, Uuid as SqlUuid};
    // References, not copies: the batch stays owned by the caller (a failed
    // commit is retried with it), and the messages are the bulk of it.
    fn column<'a, T>(events: &'a [EventRow], field: impl Fn(&'a EventRow) -> &'a T) -> Vec<&'a T> {
        events.iter().map(field).collect()
    }
    Ok(diesel::sql_query(INSERT_EVENTS)
        .bind::<Array<SqlUuid>, _>(column(events, |e| &e.message_id))
        .bind::<Array<Text>, _>(column(events, |e| &e.level))
        .bind::<Array<Text>, _>(column(events, |e| &e.message))
        .bind::<Array<Text>, _>(column(events, |e| &e.source))
        .bind::<Array<Timestamptz>, _>(column(events, |e| &e.event_timestamp))
        .bind::<Array<Timestamptz>, _>(column(events, |e| &e.received_at))
        .bind::<Array<Jsonb>, _>(column(events, |e| &e.attributes))
        .bind::<Array<Text>, _>(column(events, |e| &e.topic))
        .bind::<Array<Integer>, _>(column(events, |e| &e.kafka_partition))
        .bind::<Array<BigInt>, _>(column(events, |e| &e.kafka_offset))
        .bind::<Array<BigInt>, _>(column(events, |e| &e.epoch))
        .bind::<Array<Text>, _>(column(events, |e| &e.processed_by))
        .execute(connection)
        .await?)
}

/// A `log_events` row.
#[derive(Debug, Clone)]
pub struct EventRow {
    /// Event id.
    pub message_id: Uuid,
    /// Level name.
    pub level: String,
    /// Log line.
    pub message: String,
    /// Emitter.
    pub source: String,
    /// When it happened.
    pub event_timestamp: DateTime<Utc>,
    /// When the gateway accepted it.
    pub received_at: DateTime<Utc>,
    /// Structured context.
    pub attributes: serde_json::Value,
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub kafka_partition: i32,
    /// Kafka offset.
    pub kafka_offset: i64,
    /// Epoch of the committing leader.
    pub epoch: i64,
    /// Instance id of the committing leader.
    pub processed_by: String,
}

/// A `dead_letters` row.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = dead_letters)]
pub struct DeadLetterRow {
    /// Kafka topic.
    pub topic: String,
    /// Kafka partition.
    pub kafka_partition: i32,
    /// Kafka offset.
    pub kafka_offset: i64,
    /// Raw record key.
    pub record_key: Option<Vec<u8>>,
    /// Raw record value.
    pub payload: Option<Vec<u8>>,
    /// Why it is not a valid event.
    pub reason: String,
    /// Epoch of the committing leader.
    pub epoch: i64,
    /// Instance id of the committing leader.
    pub processed_by: String,
}

/// Where a record came from in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KafkaPosition {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Everything one sink transaction writes.
#[derive(Debug, Clone, Default)]
pub struct SinkBatch {
    /// Valid events.
    pub events: Vec<EventRow>,
    /// Invalid records.
    pub dead_letters: Vec<DeadLetterRow>,
    /// Next offset to read per partition once this batch is committed.
    pub next_offsets: BTreeMap<i32, i64>,
}

/// What a committed batch changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOutcome {
    /// Events inserted.
    pub inserted: usize,
    /// Events skipped because their `message_id` was already stored (client retries).
    pub duplicates: usize,
    /// Records dead-lettered.
    pub dead_lettered: usize,
}

/// One leadership change, as stored in `failover_events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = failover_events)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// Epoch the new leader claimed.
    pub epoch: i64,
    /// Instance id of the new leader.
    pub new_leader: String,
    /// Instance id of the leader before it, when known.
    pub previous_leader: Option<String>,
    /// Why leadership changed.
    pub reason: String,
    /// When the loss of the previous leader was detected.
    pub detected_at: DateTime<Utc>,
    /// When the new leader was positioned and consuming.
    pub recovered_at: DateTime<Utc>,
    /// `recovered_at - detected_at`.
    pub recovery_ms: i64,
}

#[derive(Insertable)]
#[diesel(table_name = failover_events)]
struct NewFailover<'a> {
    cluster: &'a str,
    epoch: i64,
    new_leader: &'a str,
    previous_leader: Option<&'a str>,
    reason: &'a str,
    detected_at: DateTime<Utc>,
    recovered_at: DateTime<Utc>,
    recovery_ms: i64,
}

impl EventRow {
    /// The row for `event`, read at `position`, committed by (`epoch`, `processed_by`).
    pub fn new(
        event: LogEvent,
        topic: &str,
        position: KafkaPosition,
        epoch: Epoch,
        processed_by: &str,
    ) -> Self {
        Self {
            message_id: event.message_id,
            level: event.level.as_str().to_owned(),
            message: event.message,
            source: event.source,
            event_timestamp: event.timestamp,
            received_at: event.received_at,
            attributes: serde_json::Value::Object(event.attributes),
            topic: topic.to_owned(),
            kafka_partition: position.partition,
            kafka_offset: position.offset,
            epoch: epoch.0,
            processed_by: processed_by.to_owned(),
        }
    }
}

/// The leader's fenced writer; cheap to clone.
#[derive(Clone)]
pub struct SinkStore {
    pool: PgPool,
    breaker: DependencyBreaker,
    cluster: String,
    topic: String,
    instance_id: String,
}

impl SinkStore {
    /// A writer for `cluster`'s consumption of `topic`, acting as
    /// `instance_id`, behind `breaker`.
    pub fn new(
        pool: PgPool,
        breaker: DependencyBreaker,
        cluster: &str,
        topic: &str,
        instance_id: &str,
    ) -> Self {
        Self {
            pool,
            breaker,
            cluster: cluster.to_owned(),
            topic: topic.to_owned(),
            instance_id: instance_id.to_owned(),
        }
    }

    /// Raises the fence to `epoch` and reads the stored offsets, in one transaction.
    /// From its commit on, every commit of an older epoch fails.
    pub async fn take_over(&self, epoch: Epoch) -> Result<BTreeMap<i32, i64>, SinkError> {
        self.guarded(self.take_over_unguarded(epoch)).await
    }

    async fn take_over_unguarded(&self, epoch: Epoch) -> Result<BTreeMap<i32, i64>, SinkError> {
        let mut connection = self.connection().await?;
        connection
            .transaction::<_, SinkError, _>(async |connection| {
                self.raise_fence(connection, epoch).await?;
                let offsets: Vec<(i32, i64)> = consumer_offsets::table
                    .filter(consumer_offsets::cluster.eq(&self.cluster))
                    .filter(consumer_offsets::topic.eq(&self.topic))
                    .select((
                        consumer_offsets::kafka_partition,
                        consumer_offsets::next_offset,
                    ))
                    .load(connection)
                    .await?;
                Ok(offsets.into_iter().collect())
            })
            .await
    }

    /// Commits `batch` under `epoch`: fence, events, dead letters, offsets.
    pub async fn commit(
        &self,
        epoch: Epoch,
        batch: &SinkBatch,
    ) -> Result<CommitOutcome, SinkError> {
        self.guarded(self.commit_unguarded(epoch, batch)).await
    }

    async fn commit_unguarded(
        &self,
        epoch: Epoch,
        batch: &SinkBatch,
    ) -> Result<CommitOutcome, SinkError> {
        let mut connection = self.connection().await?;
        connection
            .transaction::<_, SinkError, _>(async |connection| {
                self.raise_fence(connection, epoch).await?;
                let inserted = if batch.events.is_empty() {
                    0
                } else {
                    insert_events(connection, &batch.events).await?
                };
                let dead_lettered = if batch.dead_letters.is_empty() {
                    0
                } else {
                    diesel::insert_into(dead_letters::table)
                        .values(&batch.dead_letters)
                        .on_conflict_do_nothing()
                        .execute(connection)
                        .await?
                };
                let offsets: Vec<_> = batch
                    .next_offsets
                    .iter()
                    .map(|(partition, next_offset)| {
                        (
                            consumer_offsets::cluster.eq(&self.cluster),
                            consumer_offsets::topic.eq(&self.topic),
                            consumer_offsets::kafka_partition.eq(*partition),
                            consumer_offsets::next_offset.eq(*next_offset),
                            consumer_offsets::epoch.eq(epoch.0),
                        )
                    })
                    .collect();
                if !offsets.is_empty() {
                    diesel::insert_into(consumer_offsets::table)
                        .values(&offsets)
                        .on_conflict((
                            consumer_offsets::cluster,
                            consumer_offsets::topic,
                            consumer_offsets::kafka_partition,
                        ))
                        .do_update()
                        .set((
                            consumer_offsets::next_offset
                                .eq(excluded(consumer_offsets::next_offset)),
                            consumer_offsets::epoch.eq(excluded(consumer_offsets::epoch)),
                            consumer_offsets::updated_at.eq(diesel::dsl::now),
                        ))
                        .execute(connection)
                        .await?;
                }
                Ok(CommitOutcome {
                    inserted,
                    duplicates: batch.events.len() - inserted,
                    dead_lettered,
                })
            })
            .await
    }

    /// Stores one leadership change (idempotent per epoch).
    pub async fn record_failover(&self, record: &FailoverRecord) -> Result<(), SinkError> {
        self.guarded(self.record_failover_unguarded(record)).await
    }

    async fn record_failover_unguarded(&self, record: &FailoverRecord) -> Result<(), SinkError> {
        let mut connection = self.connection().await?;
        diesel::insert_into(failover_events::table)
            .values(NewFailover {
                cluster: &self.cluster,
                epoch: record.epoch,
                new_leader: &record.new_leader,
                previous_leader: record.previous_leader.as_deref(),
                reason: &record.reason,
                detected_at: record.detected_at,
                recovered_at: record.recovered_at,
                recovery_ms: record.recovery_ms,
            })
            .on_conflict_do_nothing()
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    /// The newest `limit` leadership changes, newest first.
    pub async fn failover_history(&self, limit: i64) -> Result<Vec<FailoverRecord>, SinkError> {
        self.guarded(self.failover_history_unguarded(limit)).await
    }

    async fn failover_history_unguarded(
        &self,
        limit: i64,
    ) -> Result<Vec<FailoverRecord>, SinkError> {
        let mut connection = self.connection().await?;
        Ok(failover_events::table
            .filter(failover_events::cluster.eq(&self.cluster))
            .order(failover_events::epoch.desc())
            .limit(limit)
            .select(FailoverRecord::as_select())
            .load(&mut connection)
            .await?)
    }

    /// The breaker in front of PostgreSQL.
    pub fn breaker(&self) -> &DependencyBreaker {
        &self.breaker
    }

    /// Runs `operation` if the breaker permits and records whether PostgreSQL
    /// answered (a fenced commit is an answer; a lost connection is not).
    async fn guarded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, SinkError>>,
    ) -> Result<T, SinkError> {
        if !self.breaker.permits() {
            return Err(SinkError::CircuitOpen);
        }
        let result = operation.await;
        self.breaker
            .record(!matches!(&result, Err(error) if error.is_outage()));
        result
    }

    async fn connection(
        &self,
    ) -> Result<
        diesel_async::pooled_connection::bb8::PooledConnection<'_, AsyncPgConnection>,
        SinkError,
    > {
        self.pool
            .get()
            .await
            .map_err(|error| SinkError::Unavailable(error.to_string()))
    }

    /// Creates the fence row at `epoch` if absent, else raises it if it is not above
    /// `epoch`; fails with [`SinkError::Fenced`] when a newer epoch holds it.
    async fn raise_fence(
        &self,
        connection: &mut AsyncPgConnection,
        epoch: Epoch,
    ) -> Result<(), SinkError> {
        let created = diesel::insert_into(leader_fence::table)
            .values((
                leader_fence::cluster.eq(&self.cluster),
                leader_fence::epoch.eq(epoch.0),
                leader_fence::holder.eq(&self.instance_id),
            ))
            .on_conflict_do_nothing()
            .execute(connection)
            .await?;
        if created == 1 {
            return Ok(());
        }
        let raised = diesel::update(
            leader_fence::table
                .filter(leader_fence::cluster.eq(&self.cluster))
                .filter(leader_fence::epoch.le(epoch.0)),
        )
        .set((
            leader_fence::epoch.eq(epoch.0),
            leader_fence::holder.eq(&self.instance_id),
            leader_fence::updated_at.eq(diesel::dsl::now),
        ))
        .execute(connection)
        .await?;
        if raised == 1 {
            return Ok(());
        }
        let fence_epoch: i64 = leader_fence::table
            .filter(leader_fence::cluster.eq(&self.cluster))
            .select(leader_fence::epoch)
            .first(connection)
            .await?;
        Err(SinkError::Fenced {
            fence_epoch: Epoch(fence_epoch),
        })
    }
}
