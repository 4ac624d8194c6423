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
//! ever — and the local broker (tansu 0.6) does worse: a produce with an id it
//! half-knows panics its storage task, and it never serves again. So the
//! producer is renewed (a new id, asked of the broker that answers next) when
//! every broker connection is lost, and when a delivery fails for any reason
//! other than the record itself, at most once per [`RENEWAL_INTERVAL`]. The old
//! producer's records are purged at once, so not one of them reaches a restarted
//! broker under the old id; their publishers were answered 503: nothing
//! acknowledged is lost.

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde::Serialize;

use crate::config::KafkaConfig;
use crate::log_event::LogEvent;
use crate::shared::circuit_breaker::DependencyBreaker;
use crate::shared::kafka::client_config;
use crate::shared::telemetry::tracing_setup::current_trace_headers;

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
    /// The Kafka circuit breaker is open: recent deliveries kept failing, so
    /// this one was refused without waiting for a timeout.
    #[error("kafka circuit breaker open: recent deliveries failed; retry shortly")]
    CircuitOpen,
}

/// An encoded event's bytes beside its message and source: the field names,
/// the id, two timestamps, the level and small attributes.
const RECORD_OVERHEAD_BYTES: usize = 256;

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
    producer: FutureProducer<BrokerLossWatch>,
    generation: u64,
}

/// The producer's librdkafka context: asks for a renewal of its generation
/// when every broker connection is lost.
struct BrokerLossWatch {
    renewals: mpsc::Sender<u64>,
    generation: u64,
}

impl ClientContext for BrokerLossWatch {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, reason, "kafka client error");
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        // Renewed on the renewal thread, not here: dropping the old producer
        // on librdkafka's thread would join the very thread it runs on.
        let _ = self.renewals.send(self.generation);
    }
}

struct Shared {
    settings: ClientConfig,
    breaker: DependencyBreaker,
    renewals: mpsc::Sender<u64>,
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
    /// Creates the producer behind `breaker`; no connection is made until the
    /// first record.
    pub fn new(kafka: &KafkaConfig, breaker: DependencyBreaker) -> Result<Self, KafkaError> {
        let mut settings = client_config(kafka);
        settings
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", kafka.message_timeout_ms.to_string())
            .set("linger.ms", kafka.linger_ms.to_string())
            .set(
                "max.in.flight.requests.per.connection",
                kafka.max_in_flight.to_string(),
            );
        let (renewals, requests) = mpsc::channel();
        let producer = settings.create_with_context(BrokerLossWatch {
            renewals: renewals.clone(),
            generation: 0,
        })?;
        let shared = Arc::new(Shared {
            settings,
            breaker,
            renewals,
            current: ArcSwap::from_pointee(ProducerGeneration {
                producer,
                generation: 0,
            }),
            last_renewal: Mutex::new(Instant::now()),
            topic: kafka.topic.clone(),
            enqueue_timeout: Duration::from_millis(kafka.message_timeout_ms),
        });
        // Ends when the producer is dropped (every sender lives inside it).
        let renewer = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("kafka-producer-renewal".into())
            .spawn(move || {
                for generation in requests {
                    let Some(shared) = renewer.upgrade() else {
                        break;
                    };
                    shared.renew(generation, "every broker connection was lost");
                }
            })
            .map_err(|error| KafkaError::ClientCreation(error.to_string()))?;
        Ok(Self { shared })
    }

    /// Publishes one event and waits for the broker's acknowledgement. The
    /// current span's trace context travels in the record's headers.
    #[tracing::instrument(name = "kafka.produce", skip_all, fields(message_id = %event.message_id))]
    pub async fn publish(&self, event: &LogEvent) -> Result<RecordPosition, PublishError> {
        // Sized for the usual event, so encoding rarely grows the buffer.
        let mut payload =
            Vec::with_capacity(RECORD_OVERHEAD_BYTES + event.message.len() + event.source.len());
        serde_json::to_writer(&mut payload, event)?;
        let mut record = FutureRecord::to(&self.shared.topic)
            .key(event.source.as_bytes())
            .payload(&payload);
        // Without a trace exporter there is no context to carry, and an empty
        // header list would still cost librdkafka an allocation per record.
        let trace_headers = current_trace_headers();
        if !trace_headers.is_empty() {
            record = record.headers(trace_headers.iter().fold(
                OwnedHeaders::new_with_capacity(trace_headers.len()),
                |headers, (key, value)| {
                    headers.insert(Header {
                        key,
                        value: Some(value.as_bytes()),
                    })
                },
            ));
        }
        if !self.shared.breaker.permits() {
            return Err(PublishError::CircuitOpen);
        }
        let active = self.shared.current.load_full();
        let delivered = active
            .producer
            .send(record, self.shared.enqueue_timeout)
            .await;
        match delivered {
            Ok(delivery) => {
                self.shared.breaker.record(true);
                Ok(RecordPosition {
                    partition: delivery.partition,
                    offset: delivery.offset,
                })
            }
            Err((error, _)) => {
                if !is_record_error(&error) {
                    self.shared.breaker.record(false);
                    self.shared.renew(active.generation, &error.to_string());
                }
                Err(PublishError::Unacknowledged(error))
            }
        }
    }

    /// The breaker in front of the broker.
    pub fn breaker(&self) -> &DependencyBreaker {
        &self.shared.breaker
    }

    /// Waits up to `timeout` for every queued record to be acknowledged (at shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.shared.current.load().producer.flush(timeout)
    }
}

impl Shared {
    /// Replaces the producer of `failed_generation` (if it is still the
    /// current one and the last renewal is old enough) and purges the old one's
    /// records, which fail their publishers.
    fn renew(&self, failed_generation: u64, cause: &str) {
        let mut last_renewal = match self.last_renewal.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let current = self.current.load_full();
        if current.generation != failed_generation || last_renewal.elapsed() < RENEWAL_INTERVAL {
            return;
        }
        let generation = current.generation + 1;
        let created = self.settings.create_with_context(BrokerLossWatch {
            renewals: self.renewals.clone(),
            generation,
        });
        match created {
            Ok(producer) => {
                self.current.store(Arc::new(ProducerGeneration {
                    producer,
                    generation,
                }));
                *last_renewal = Instant::now();
                current
                    .producer
                    .purge(PurgeConfig::default().queue().inflight());
                tracing::warn!(generation, cause, "renewed the kafka producer");
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
