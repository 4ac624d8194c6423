//! Owns the events topic's existence and the broker metadata read about it.
//!
//! The local broker does not auto-create topics, so the gateway creates the
//! topic itself (with the configured partition count) and re-checks it on every
//! readiness probe: a broker that comes back empty gets its topic back without
//! a restart.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::shared::kafka::client_config;

/// Why the topic could not be inspected or created.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The broker did not answer or refused the request.
    #[error("kafka broker error: {0}")]
    Broker(#[from] KafkaError),
    /// Creating the topic failed for a reason other than it already existing.
    #[error("could not create topic `{topic}`: {code}")]
    Create {
        /// The topic.
        topic: String,
        /// What the broker said.
        code: RDKafkaErrorCode,
    },
    /// A blocking metadata call could not be joined.
    #[error("metadata task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// What the broker says about the events topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Number of brokers in the cluster metadata.
    pub brokers: usize,
    /// Partition ids of the topic; empty when the topic does not exist.
    pub partitions: Vec<i32>,
}

/// Reads the cluster metadata for the topic (blocking librdkafka call, run off the executor).
pub async fn fetch_metadata(kafka: &KafkaConfig) -> Result<TopicMetadata, TopicError> {
    let kafka = kafka.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = client_config(&kafka).create()?;
        let metadata = consumer.fetch_metadata(
            Some(&kafka.topic),
            Duration::from_millis(kafka.request_timeout_ms),
        )?;
        let partitions = metadata
            .topics()
            .iter()
            .filter(|topic| topic.name() == kafka.topic && topic.error().is_none())
            .flat_map(|topic| topic.partitions().iter().map(|p| p.id()))
            .collect();
        Ok(TopicMetadata {
            brokers: metadata.brokers().len(),
            partitions,
        })
    })
    .await?
}

/// Creates the topic unless it exists; returns its metadata afterwards.
pub async fn ensure_topic(kafka: &KafkaConfig) -> Result<TopicMetadata, TopicError> {
    let existing = fetch_metadata(kafka).await?;
    if !existing.partitions.is_empty() {
        return Ok(existing);
    }
    let admin: AdminClient<DefaultClientContext> = client_config(kafka).create()?;
    let new_topic = NewTopic::new(
        &kafka.topic,
        kafka.partitions,
        TopicReplication::Fixed(kafka.replication_factor),
    );
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_millis(kafka.request_timeout_ms)))
        .request_timeout(Some(Duration::from_millis(kafka.request_timeout_ms)));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(_) => {
                tracing::info!(topic = %kafka.topic, partitions = kafka.partitions, "created topic")
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(TopicError::Create { topic, code }),
        }
    }
    fetch_metadata(kafka).await
}
