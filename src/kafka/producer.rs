//! Owns publishing validated events: one record per event, value = the event's
//! JSON, key = its source (so one source's events stay in order on one partition).
//!
//! The producer is idempotent with `acks=all`, so a librdkafka retry never
//! duplicates a record, and a publish resolves only when the broker acknowledged
//! it or `message.timeout.ms` passed: the caller can answer 2xx only for events
//! that are really in Kafka.
//!
//! A broker that restarts may forget the producer's id (`UnknownProducerId`);
//! librdkafka then retries with the stale id until every record times out, for
//! ever. So a delivery that fails for any reason other than the record itself
//! renews the producer (a new id), at most once per [`RENEWAL_INTERVAL`]. Records
//! still queued in the old producer fail and were answered 503: nothing
//! acknowledged is lost.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde::Serialize;

use crate::config::KafkaConfig;
use crate::kafka::client_config;
use crate::log_event::LogEvent;
use crate::telemetry::tracing_setup::current_trace_headers;

/// Least time between two producer renewals, so an outage does not churn clients.
pub const RENEWAL_INTERVAL: Duration = Duration::from_secs(1);

/// Why an event was not published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The broker did not acknowledge the record in time or refused it.
    #[error("kafka did not acknowledge the event: {0}")]
    Unacknowledged(#[source] KafkaError),
    /// The event could not be encoded (never expected for a validated event).
    #[error("could not encode the event: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where an acknowledged record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordPosition {
    /// Partition the broker wrote to.
    pub partition: i32,
    /// Offset of the record in that partition.
    pub offset: i64,
}

/// One librdkafka producer and the generation that tells renewals apart.
struct ProducerGeneration {
    producer: FutureProducer,
    generation: u64,
}

struct Shared {
    settings: ClientConfig,
    current: ArcSwap<ProducerGeneration>,
    last_renewal: Mutex<Instant>,
    topic: String,
    enqueue_timeout: Duration,
}

/// The gateway's publisher of log events; cheap to clone.
#[derive(Clone)]
pub struct EventProducer {
    shared: Arc<Shared>,
}

impl EventProducer {
    /// Creates the producer; no connection is made until the first record.
    pub fn new(kafka: &KafkaConfig) -> Result<Self, KafkaError> {
        let mut settings = client_config(kafka);
        settings
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", kafka.message_timeout_ms.to_string())
            .set("linger.ms", "2");
        let producer = settings.create()?;
        Ok(Self {
            shared: Arc::new(Shared {
                settings,
                current: ArcSwap::from_pointee(ProducerGeneration {
                    producer,
                    generation: 0,
                }),
                last_renewal: Mutex::new(Instant::now()),
                topic: kafka.topic.clone(),
                enqueue_timeout: Duration::from_millis(kafka.message_timeout_ms),
            }),
        })
    }

    /// Publishes one event and waits for the broker's acknowledgement. The
    /// current span's trace context travels in the record's headers.
    #[tracing::instrument(name = "kafka.produce", skip_all, fields(message_id = %event.message_id))]
    pub async fn publish(&self, event: &LogEvent) -> Result<RecordPosition, PublishError> {
        let payload = serde_json::to_vec(event)?;
        let trace_headers = current_trace_headers();
        let headers = trace_headers
            .iter()
            .fold(OwnedHeaders::new(), |headers, (key, value)| {
                headers.insert(Header {
                    key,
                    value: Some(value.as_bytes()),
                })
            });
        let record = FutureRecord::to(&self.shared.topic)
            .key(event.source.as_bytes())
            .payload(&payload)
            .headers(headers);
        let active = self.shared.current.load_full();
        match active
            .producer
            .send(record, self.shared.enqueue_timeout)
            .await
        {
            Ok(delivery) => Ok(RecordPosition {
                partition: delivery.partition,
                offset: delivery.offset,
            }),
            Err((error, _)) => {
                if !is_record_error(&error) {
                    self.renew(active.generation, &error);
                }
                Err(PublishError::Unacknowledged(error))
            }
        }
    }

    /// Waits up to `timeout` for every queued record to be acknowledged (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.shared.current.load().producer.flush(timeout)
    }

    fn renew(&self, failed_generation: u64, cause: &KafkaError) {
        let mut last_renewal = match self.shared.last_renewal.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = self.shared.current.load();
        if current.generation != failed_generation || last_renewal.elapsed() < RENEWAL_INTERVAL {
            return;
        }
        match self.shared.settings.create::<FutureProducer>() {
            Ok(producer) => {
                let generation = current.generation + 1;
                self.shared.current.store(Arc::new(ProducerGeneration {
                    producer,
                    generation,
                }));
                *last_renewal = Instant::now();
                tracing::warn!(generation, %cause, "renewed the kafka producer after a failed delivery");
            }
            Err(error) => tracing::error!(%error, "could not renew the kafka producer"),
        }
    }
}

/// Failures caused by the record itself, which a new producer would not fix.
fn is_record_error(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
        )
    )
}
