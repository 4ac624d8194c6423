//! Owns the read-path benchmark: the node's own reader ([`PartitionReader`],
//! batches as the consumer actor asks for them) plus decoding and re-checking
//! every record as an event, over the same pre-filled topic the bare consumer
//! read. What it measures is everything the leader does before the sink.

use std::time::{Duration, Instant};

use crate::config::{Config, KafkaConfig};
use crate::lab::bench::BenchError;
use crate::log_event::{EventLimits, LogEvent};
use crate::node::consumer::partition_reader::PartitionReader;

/// Reads `count` records of `topic` through the node's reader and decodes
/// each; how long that took.
pub async fn read_and_decode(
    config: &Config,
    topic: &str,
    partitions: &[i32],
    count: u64,
) -> Result<Duration, BenchError> {
    let kafka = KafkaConfig {
        topic: topic.to_owned(),
        ..config.kafka.clone()
    };
    let limits = EventLimits::from(&config.gateway);
    let group = format!("bench-reader-{}", uuid::Uuid::now_v7().simple());
    let reader = PartitionReader::new(&kafka, &group)?;
    reader.assign(
        crate::node::election::epoch::Epoch::ZERO,
        partitions,
        &Default::default(),
    )?;
    let linger = Duration::from_millis(config.node.batch_linger_ms);
    let started = Instant::now();
    let mut read = 0_u64;
    let mut invalid = 0_u64;
    while read < count {
        let batch = reader
            .next_batch(
                config.node.batch_max_events,
                config.node.batch_max_bytes,
                linger,
                Duration::from_secs(60),
            )
            .await?;
        if batch.is_empty() {
            return Err(BenchError::Failed(format!(
                "read {read} of {count} records"
            )));
        }
        for record in &batch {
            if LogEvent::decode(record.payload.as_deref(), &limits).is_err() {
                invalid += 1;
            }
        }
        read += batch.len() as u64;
    }
    if invalid > 0 {
        return Err(BenchError::Failed(format!(
            "{invalid} benchmark records did not decode"
        )));
    }
    Ok(started.elapsed())
}
