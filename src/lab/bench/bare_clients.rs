//! Owns the baselines on the Kafka side: a bare rdkafka producer filling a
//! topic as fast as the broker takes it (the same idempotent, `acks=all`,
//! linger and in-flight settings the gateway uses), and a bare rdkafka consumer reading it back
//! with nothing done per record. Every other number is a ratio to these.

use std::time::{Duration, Instant};

use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::lab::bench::BenchError;
use crate::log_event::{Level, LogEvent};
use crate::shared::kafka::client_config;

/// Most deliveries awaited at once by the bare producer.
const IN_FLIGHT: usize = 50_000;

/// The `n`th benchmark event: a valid event of about 200 bytes of JSON.
pub fn bench_event(n: u64) -> LogEvent {
    let now = chrono::Utc::now();
    LogEvent {
        message_id: uuid::Uuid::now_v7(),
        level: Level::Info,
        message: format!("benchmark event {n}: request served in {} ms", n % 997),
        source: format!("bench-{}", n % 16),
        timestamp: now,
        received_at: now,
        attributes: serde_json::Map::new(),
    }
}

/// Produces `count` benchmark events into `topic`; how long the broker took to
/// acknowledge them all.
pub async fn produce(kafka: &KafkaConfig, topic: &str, count: u64) -> Result<Duration, BenchError> {
    let producer: FutureProducer = client_config(kafka)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", kafka.linger_ms.to_string())
        .set(
            "max.in.flight.requests.per.connection",
            kafka.max_in_flight.to_string(),
        )
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    for n in 0..count {
        let event = bench_event(n);
        let payload = serde_json::to_vec(&event)?;
        loop {
            let record = FutureRecord::to(topic)
                .key(event.source.as_bytes())
                .payload(&payload);
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push(delivery);
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    acknowledged(pending.next().await)?;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        while pending.len() >= IN_FLIGHT {
            acknowledged(pending.next().await)?;
        }
    }
    while let Some(delivery) = pending.next().await {
        acknowledged(Some(delivery))?;
    }
    Ok(started.elapsed())
}

fn acknowledged(
    delivery: Option<
        Result<
            rdkafka::producer::future_producer::OwnedDeliveryResult,
            futures::channel::oneshot::Canceled,
        >,
    >,
) -> Result<(), BenchError> {
    match delivery {
        Some(Ok(Ok(_))) | None => Ok(()),
        Some(Ok(Err((error, _)))) => Err(error.into()),
        Some(Err(_)) => Err(BenchError::Failed("a delivery was cancelled".into())),
    }
}

/// A bare consumer of a group of its own (named after `group_prefix`),
/// assigned `partitions` of `topic` from their beginning, committing nothing.
pub fn consumer_from_beginning(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    group_prefix: &str,
) -> Result<BaseConsumer, BenchError> {
    let consumer: BaseConsumer = client_config(kafka)
        .set(
            "group.id",
            format!("{group_prefix}-{}", uuid::Uuid::now_v7().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment.add_partition_offset(topic, *partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Reads every record of `partitions` of `topic` from the beginning with a
/// bare consumer until `count` arrived; how long that took.
pub fn consume(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    count: u64,
) -> Result<Duration, BenchError> {
    let consumer = consumer_from_beginning(kafka, topic, partitions, "bench-bare")?;
    let started = Instant::now();
    let mut read = 0;
    let deadline = started + Duration::from_secs(600);
    while read < count {
        if Instant::now() > deadline {
            return Err(BenchError::Failed(format!(
                "read {read} of {count} records"
            )));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => read += 1,
            Some(Err(error)) => return Err(error.into()),
            None => {}
        }
    }
    Ok(started.elapsed())
}
