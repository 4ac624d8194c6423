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
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::log_event::LogEvent;
use crate::node::election::epoch::Epoch;
use crate::shared::circuit_breaker::DependencyBreaker;
use crate::shared::postgres::pool::PgPool;
use crate::shared::postgres::schema::{
    consumer_offsets, dead_letters, failover_events, leader_fence,
};
use crate::shared::printable::escape_untrusted;

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
    /// PostgreSQL did not answer within [`STORE_CALL_TIMEOUT`]: a connection
    /// that died without a reset would otherwise wait for TCP keepalive (hours).
    #[error("postgresql did not answer within {0:?}")]
    TimedOut(Duration),
}

impl SinkError {
    /// Whether the error says PostgreSQL is unreachable or failing, rather
    /// than that it answered no.
    pub fn is_outage(&self) -> bool {
        use diesel::result::{DatabaseErrorKind, Error};
        match self {
            SinkError::Unavailable(_) | SinkError::CircuitOpen | SinkError::TimedOut(_) => true,
            SinkError::Query(Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            )) => true,
            SinkError::Query(_) | SinkError::Fenced { .. } => false,
        }
    }
}

/// Longest a store call may take, connection wait and every statement
/// included: a silent server (a connection dropped without a reset) would
/// otherwise hold the sink until TCP keepalive gives up, hours later. Well
/// above one `statement_timeout`, because isolating the refused rows of a
/// batch takes up to 2n − 1 statements (about 4 s for 2,000 rows refused
/// one by one here; a remote database multiplies that), and a call that runs
/// out counts as an outage and is retried, which must not turn a data
/// problem into a wedge.
pub const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest dead-letter reason stored (characters).
const MAX_REASON_CHARS: usize = 1024;

/// Inserts `events`, isolating the rows PostgreSQL refuses for what they
/// hold by bisection: one bad row among 2,000 costs about 22 small inserts, and
/// the rest of the batch commits with it dead-lettered. Returns the rows
/// inserted and, per refused row, its index and the reason.
async fn insert_isolating(
    connection: &mut AsyncPgConnection,
    events: &[EventRow],
) -> Result<(usize, Vec<(usize, String)>), SinkError> {
    let mut inserted = 0;
    let mut refused = Vec::new();
    // The ranges still to try, as a stack: bisection without recursion.
    let mut pending = Vec::new();
    pending.push(0..events.len());
    while let Some(range) = pending.pop() {
        if range.is_empty() {
            continue;
        }
        match try_insert_events(connection, &events[range.clone()]).await? {
            Ok(count) => inserted += count,
            Err(reason) if range.len() == 1 => refused.push((range.start, reason)),
            Err(_) => {
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
            }
        }
    }
    Ok((inserted, refused))
}

/// What `understudy_try_insert_events` answers.
#[derive(QueryableByName)]
struct TryInsertOutcome {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    inserted: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    refused_sqlstate: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    refused_message: Option<String>,
}

/// Inserts a batch of events in one statement of twelve arrays, not twelve
/// binds per row: planned once whatever the batch size, and 2–3 times faster
/// than a multi-row `VALUES` of 500 rows (see BENCHMARKS.md). A `message_id`
/// already stored is skipped: a client's retry is stored once. The function
/// (a migration) converts timestamps and attributes itself, so that a value
/// PostgreSQL refuses comes back as `Err(reason)` with its SQLSTATE while the
/// transaction goes on; any other failure fails the transaction.
const TRY_INSERT_EVENTS: &str = "SELECT inserted, refused_sqlstate, refused_message \
    FROM understudy_try_insert_events($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

async fn try_insert_events(
    connection: &mut AsyncPgConnection,
    events: &[EventRow],
) -> Result<Result<usize, String>, SinkError> {
    use diesel::sql_types::{Array, BigInt, Integer, Text, Uuid as SqlUuid};
    // References, not copies, where the row holds the value as sent: the batch
    // stays owned by the caller (a failed commit is retried with it), and the
    // messages are the bulk of it.
    fn column<'a, T>(events: &'a [EventRow], field: impl Fn(&'a EventRow) -> &'a T) -> Vec<&'a T> {
        events.iter().map(field).collect()
    }
    fn micros(events: &[EventRow], field: impl Fn(&EventRow) -> DateTime<Utc>) -> Vec<i64> {
        events
            .iter()
            .map(|row| field(row).timestamp_micros())
            .collect()
    }
    let attributes: Vec<String> = events
        .iter()
        .map(|row| row.attributes.to_string())
        .collect();
    let outcome: TryInsertOutcome = diesel::sql_query(TRY_INSERT_EVENTS)
        .bind::<Array<SqlUuid>, _>(column(events, |e| &e.message_id))
        .bind::<Array<Text>, _>(column(events, |e| &e.level))
        .bind::<Array<Text>, _>(column(events, |e| &e.message))
        .bind::<Array<Text>, _>(column(events, |e| &e.source))
        .bind::<Array<BigInt>, _>(micros(events, |e| e.event_timestamp))
        .bind::<Array<BigInt>, _>(micros(events, |e| e.received_at))
        .bind::<Array<Text>, _>(attributes)
        .bind::<Array<Text>, _>(column(events, |e| &e.topic))
        .bind::<Array<Integer>, _>(column(events, |e| &e.kafka_partition))
        .bind::<Array<BigInt>, _>(column(events, |e| &e.kafka_offset))
        .bind::<Array<BigInt>, _>(column(events, |e| &e.epoch))
        .bind::<Array<Text>, _>(column(events, |e| &e.processed_by))
        .get_result(connection)
        .await?;
    Ok(match outcome.refused_sqlstate {
        None => Ok(usize::try_from(outcome.inserted).unwrap_or(0)),
        Some(sqlstate) => Err(format!(
            "SQLSTATE {sqlstate}: {}",
            outcome.refused_message.unwrap_or_default()
        )),
    })
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

impl DeadLetterRow {
    /// The dead letter of the raw record at `position`, refused for `reason`
    /// (escaped and cut: it may quote the record, and is logged and stored).
    pub fn new(
        topic: &str,
        position: KafkaPosition,
        record_key: Option<Vec<u8>>,
        payload: Option<Vec<u8>>,
        reason: &str,
        epoch: Epoch,
        processed_by: &str,
    ) -> Self {
        Self {
            topic: topic.to_owned(),
            kafka_partition: position.partition,
            kafka_offset: position.offset,
            record_key,
            payload,
            reason: escape_untrusted(reason, MAX_REASON_CHARS),
            epoch: epoch.0,
            processed_by: processed_by.to_owned(),
        }
    }
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
    /// Records dead-lettered (refused ones included).
    pub dead_lettered: usize,
    /// Valid-looking events PostgreSQL refused for their content, isolated
    /// from their batch and dead-lettered.
    pub refused: usize,
}

/// One leadership change, as stored in `failover_events`.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Queryable, Selectable,
)]
#[diesel(table_name = failover_events)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// Epoch the new leader claimed.
    pub epoch: i64,
    /// Instance id of the new leader.
    pub new_leader: String,
    /// Instance id of the leader before it, when known.
    pub previous_leader: Option<String>,
    /// Why leadership changed: [`crate::node::election::takeover_reason::TakeoverReason`]'s text.
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
    /// The dead letter of this row, which PostgreSQL refused for `reason`;
    /// its payload is the event in its wire form.
    fn refused(&self, reason: &str) -> DeadLetterRow {
        let payload = serde_json::to_vec(&serde_json::json!({
            "message_id": self.message_id,
            "level": self.level,
            "message": self.message,
            "source": self.source,
            "timestamp": self.event_timestamp,
            "received_at": self.received_at,
            "attributes": self.attributes,
        }))
        .ok();
        DeadLetterRow::new(
            &self.topic,
            KafkaPosition {
                partition: self.kafka_partition,
                offset: self.kafka_offset,
            },
            Some(self.source.as_bytes().to_vec()),
            payload,
            &format!("refused by postgresql: {reason}"),
            Epoch(self.epoch),
            &self.processed_by,
        )
    }

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
                let (inserted, refused) = insert_isolating(connection, &batch.events).await?;
                let refused_letters: Vec<DeadLetterRow> = refused
                    .iter()
                    .map(|(index, reason)| {
                        tracing::warn!(
                            message_id = %batch.events[*index].message_id,
                            reason = %escape_untrusted(reason, MAX_REASON_CHARS),
                            "postgresql refused an event; dead-lettering it"
                        );
                        batch.events[*index].refused(reason)
                    })
                    .collect();
                let mut dead_lettered = 0;
                for letters in [&batch.dead_letters, &refused_letters] {
                    if !letters.is_empty() {
                        dead_lettered += diesel::insert_into(dead_letters::table)
                            .values(letters)
                            .on_conflict_do_nothing()
                            .execute(connection)
                            .await?;
                    }
                }
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
                    duplicates: batch.events.len() - inserted - refused.len(),
                    dead_lettered,
                    refused: refused.len(),
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
        let result = tokio::time::timeout(STORE_CALL_TIMEOUT, operation)
            .await
            .unwrap_or(Err(SinkError::TimedOut(STORE_CALL_TIMEOUT)));
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
