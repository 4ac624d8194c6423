//! Owns the node's Kafka consumer: every partition of the topic assigned by hand
//! (active-passive: no group membership, so no rebalance in the failover path),
//! positioned at the offsets PostgreSQL stored, read in bounded batches.
//!
//! A standby creates its reader at start-up and keeps its broker connection warm,
//! so a takeover costs an assign and a seek, not a cold bootstrap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::node::election::epoch::Epoch;
use crate::shared::kafka::client_config;

/// One record as read from Kafka, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Raw key.
    pub key: Option<Vec<u8>>,
    /// Raw value.
    pub payload: Option<Vec<u8>>,
    /// Text headers (the W3C trace context among them).
    pub headers: std::collections::HashMap<String, String>,
}

/// The leader's reader of the events topic; cheap to clone.
///
/// Every term of this node shares the one consumer, so the assignment
/// remembers the epoch that made it: a consumer of an older term that stops
/// late (a fenced retry waking after the node was elected again) can never
/// unassign the partitions of the new term.
#[derive(Clone)]
pub struct PartitionReader {
    consumer: Arc<StreamConsumer>,
    kafka: KafkaConfig,
    assigned_by: Arc<Mutex<Option<Epoch>>>,
}

impl PartitionReader {
    /// Creates the reader. `group_id` is required by the broker even for manual
    /// assignment; offsets are never committed to Kafka (PostgreSQL holds them).
    pub fn new(kafka: &KafkaConfig, group_id: &str) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer = client_config(kafka)
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
            .create()?;
        Ok(Self {
            consumer: Arc::new(consumer),
            kafka: kafka.clone(),
            assigned_by: Arc::new(Mutex::new(None)),
        })
    }

    /// Partition ids of the topic (empty while it does not exist); also keeps the
    /// connection to the broker warm.
    pub async fn partitions(&self) -> Result<Vec<i32>, KafkaError> {
        let consumer = Arc::clone(&self.consumer);
        let topic = self.kafka.topic.clone();
        let timeout = Duration::from_millis(self.kafka.request_timeout_ms);
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect())
        })
        .await
        .map_err(|_| KafkaError::Canceled)?
    }

    /// Assigns `partitions` for the term of `epoch`, each at its stored next
    /// offset or the beginning (a partition never committed, new ones included).
    /// `Ok(false)`, and nothing changed, when a newer term holds the assignment.
    pub fn assign(
        &self,
        epoch: Epoch,
        partitions: &[i32],
        next_offsets: &std::collections::BTreeMap<i32, i64>,
    ) -> Result<bool, KafkaError> {
        let mut assignment = TopicPartitionList::new();
        for partition in partitions {
            let offset = next_offsets
                .get(partition)
                .map_or(Offset::Beginning, |next| Offset::Offset(*next));
            assignment.add_partition_offset(&self.kafka.topic, *partition, offset)?;
        }
        let mut assigned_by = self
            .assigned_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if assigned_by.is_some_and(|current| current > epoch) {
            tracing::debug!(%epoch, current = ?*assigned_by, "not assigning over a newer term");
            return Ok(false);
        }
        self.consumer.assign(&assignment)?;
        *assigned_by = Some(epoch);
        Ok(true)
    }

    /// The high watermark (next offset to be written) of each of `partitions`.
    pub async fn high_watermarks(
        &self,
        partitions: Vec<i32>,
    ) -> Result<Vec<(i32, i64)>, KafkaError> {
        let consumer = Arc::clone(&self.consumer);
        let topic = self.kafka.topic.clone();
        let timeout = Duration::from_millis(self.kafka.request_timeout_ms);
        tokio::task::spawn_blocking(move || {
            partitions
                .into_iter()
                .map(|partition| {
                    let (_, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
                    Ok((partition, high))
                })
                .collect()
        })
        .await
        .map_err(|_| KafkaError::Canceled)?
    }

    /// Drops the assignment if the term of `epoch` made it (on losing
    /// leadership); a later term's assignment is left alone.
    pub fn unassign(&self, epoch: Epoch) -> Result<(), KafkaError> {
        let mut assigned_by = self
            .assigned_by
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *assigned_by != Some(epoch) {
            tracing::debug!(%epoch, current = ?*assigned_by, "not unassigning another term's partitions");
            return Ok(());
        }
        self.consumer.unassign()?;
        *assigned_by = None;
        Ok(())
    }

    /// Waits up to `idle` for the next record, then gathers more for up to
    /// `linger`, at most `max` records and about `max_bytes` of keys and
    /// values (the batch goes into one PostgreSQL transaction, whose messages
    /// are capped at 1 GB, and stays in memory while a failed commit is
    /// retried). Empty when no record came within `idle`, so that an idle
    /// caller gets its turn (to look for added partitions); nothing is lost,
    /// as `recv` is cancellation safe. Not cancellation safe itself once the
    /// first record arrived.
    pub async fn next_batch(
        &self,
        max: usize,
        max_bytes: usize,
        linger: Duration,
        idle: Duration,
    ) -> Result<Vec<ConsumedRecord>, KafkaError> {
        let Ok(first) = tokio::time::timeout(idle, self.consumer.recv()).await else {
            return Ok(Vec::new());
        };
        let first = first?;
        let mut batch = Vec::with_capacity(max.min(4096));
        let mut bytes = record_bytes(&first);
        batch.push(owned(&first));
        drop(first);
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < max && bytes < max_bytes {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Ok(Ok(message)) => {
                    bytes += record_bytes(&message);
                    batch.push(owned(&message));
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "kafka error while filling a batch");
                    break;
                }
                Err(_) => break,
            }
        }
        Ok(batch)
    }
}

/// Whether `error` only reports the broker connection coming or going, which
/// librdkafka handles by itself.
pub fn is_connection_event(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure | RDKafkaErrorCode::AllBrokersDown
        )
    )
}

fn record_bytes(message: &rdkafka::message::BorrowedMessage<'_>) -> usize {
    message.key_len() + message.payload_len()
}

fn owned(message: &rdkafka::message::BorrowedMessage<'_>) -> ConsumedRecord {
    ConsumedRecord {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        headers: message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .filter_map(|header| {
                        let value = std::str::from_utf8(header.value?).ok()?;
                        Some((header.key.to_owned(), value.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> PartitionReader {
        // No broker is needed: assignment is local to the client.
        let kafka = KafkaConfig {
            bootstrap_servers: "127.0.0.1:1".to_owned(),
            topic: "t".to_owned(),
            ..KafkaConfig::default()
        };
        PartitionReader::new(&kafka, "g").expect("a consumer")
    }

    fn assigned(reader: &PartitionReader) -> usize {
        reader.consumer.assignment().expect("assignment").count()
    }

    #[tokio::test]
    async fn a_stale_term_stopping_late_never_unassigns_the_new_term() {
        let reader = reader();
        let offsets = std::collections::BTreeMap::from([(0, 5)]);
        reader
            .assign(Epoch(4), &[0, 1, 2], &offsets)
            .expect("assign");
        reader
            .assign(Epoch(6), &[0, 1, 2], &offsets)
            .expect("reassign");
        reader.unassign(Epoch(4)).expect("no-op");
        assert_eq!(assigned(&reader), 3, "the new term keeps its partitions");
        assert!(
            !reader.assign(Epoch(4), &[0], &offsets).expect("refused"),
            "a stale term never assigns over a newer one"
        );
        assert_eq!(assigned(&reader), 3);
        reader.unassign(Epoch(6)).expect("unassign");
        assert_eq!(assigned(&reader), 0);
    }
}
