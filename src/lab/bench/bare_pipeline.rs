//! Owns the fair baseline of the end-to-end number: a bare pipeline doing the
//! same work with no failover machinery. A bare producer fills a fresh topic
//! while, at the same time, a bare consumer reads it, decodes every event and
//! `COPY`s it into `log_events` in batches as large and as lingering as the
//! leader's. Its consumer side also runs alone over a filled topic, for the
//! CPU a bare consumer plus `COPY` spends per event.

use std::io::Cursor;
use std::time::{Duration, Instant};

use futures::SinkExt;
use rdkafka::message::Message;
use tokio::sync::mpsc;

use crate::config::KafkaConfig;
use crate::lab::bench::{bare_clients, BenchError};
use crate::log_event::LogEvent;

/// The columns every `COPY` of the benchmarks fills.
pub const COPY_COLUMNS: &str = "COPY log_events (message_id, level, message, source, \
     event_timestamp, received_at, attributes, topic, kafka_partition, kafka_offset, epoch, \
     processed_by) FROM STDIN (FORMAT csv)";

/// How the consumer side batches: the leader's `node.batch_max_events` and
/// `node.batch_linger_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Most rows per `COPY`.
    pub max_rows: usize,
    /// Longest a started batch waits for more rows.
    pub linger: Duration,
}

/// Produces `count` events into `kafka.topic` while a bare consumer copies
/// them into PostgreSQL; the time from the first send to the last row copied.
pub async fn produce_and_drain(
    kafka: &KafkaConfig,
    postgres: &tokio_postgres::Client,
    partitions: &[i32],
    count: u64,
    batching: Batching,
) -> Result<Duration, BenchError> {
    let started = Instant::now();
    // A task of its own: the producer's send loop rarely yields, and must
    // not hold up the COPY side on the same task.
    let producer_kafka = kafka.clone();
    let producer = tokio::spawn(async move {
        bare_clients::produce(&producer_kafka, &producer_kafka.topic, count).await
    });
    drain(kafka, postgres, partitions, count, batching).await?;
    producer
        .await
        .map_err(|error| BenchError::Failed(error.to_string()))??;
    Ok(started.elapsed())
}

/// Reads `count` records of `kafka.topic` from the beginning with a bare
/// consumer, decodes each and `COPY`s them into `log_events` (under the
/// topic's name) in batches; how long that took.
pub async fn drain(
    kafka: &KafkaConfig,
    postgres: &tokio_postgres::Client,
    partitions: &[i32],
    count: u64,
    batching: Batching,
) -> Result<Duration, BenchError> {
    let (batches, mut copied) = mpsc::channel::<String>(4);
    let consumer_kafka = kafka.clone();
    let consumer_partitions = partitions.to_vec();
    let started = Instant::now();
    let reader = tokio::task::spawn_blocking(move || {
        read_into_batches(
            &consumer_kafka,
            &consumer_partitions,
            count,
            batching,
            &batches,
        )
    });
    while let Some(batch) = copied.recv().await {
        let sink = postgres.copy_in(COPY_COLUMNS).await?;
        futures::pin_mut!(sink);
        sink.send(Cursor::new(batch.into_bytes())).await?;
        sink.finish().await?;
    }
    reader
        .await
        .map_err(|error| BenchError::Failed(error.to_string()))??;
    Ok(started.elapsed())
}

/// The consumer thread: polls, decodes and formats rows, handing over a batch
/// when it is full or has lingered long enough.
fn read_into_batches(
    kafka: &KafkaConfig,
    partitions: &[i32],
    count: u64,
    batching: Batching,
    batches: &mpsc::Sender<String>,
) -> Result<(), BenchError> {
    let consumer =
        bare_clients::consumer_from_beginning(kafka, &kafka.topic, partitions, "bench-pipeline")?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut read = 0_u64;
    let mut batch = String::new();
    let mut rows = 0_usize;
    let mut batch_started = Instant::now();
    while read < count {
        if Instant::now() > deadline {
            return Err(BenchError::Failed(format!(
                "the bare pipeline read {read} of {count} records"
            )));
        }
        if let Some(record) = consumer.poll(Duration::from_millis(5)) {
            let record = record?;
            let event: LogEvent = serde_json::from_slice(record.payload().unwrap_or_default())?;
            if rows == 0 {
                batch_started = Instant::now();
            }
            batch.push_str(&copy_row(
                &event,
                &kafka.topic,
                record.partition(),
                record.offset(),
                "bench-pipeline",
            ));
            rows += 1;
            read += 1;
        }
        let lingered = rows > 0 && batch_started.elapsed() >= batching.linger;
        if rows >= batching.max_rows || lingered || (read == count && rows > 0) {
            batches
                .blocking_send(std::mem::take(&mut batch))
                .map_err(|_| BenchError::Failed("the COPY side stopped".into()))?;
            rows = 0;
        }
    }
    Ok(())
}

/// One CSV row of [`COPY_COLUMNS`] for `event`, with every text field quoted.
pub fn copy_row(
    event: &LogEvent,
    topic: &str,
    partition: i32,
    offset: i64,
    processed_by: &str,
) -> String {
    format!(
        "{},{},{},{},{},{},{},{},{},{},1,{}\n",
        event.message_id,
        event.level,
        quoted(&event.message),
        quoted(&event.source),
        event.timestamp.to_rfc3339(),
        event.received_at.to_rfc3339(),
        quoted(&serde_json::Value::Object(event.attributes.clone()).to_string()),
        quoted(topic),
        partition,
        offset,
        quoted(processed_by),
    )
}

fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_quoted_with_inner_quotes_doubled() {
        let mut event = bare_clients::bench_event(7);
        event.message = "said \"hi\", then left".into();
        let row = copy_row(&event, "t", 2, 9, "p");
        assert!(row.contains(",\"said \"\"hi\"\", then left\","), "{row}");
        assert!(row.ends_with(",\"t\",2,9,1,\"p\"\n"), "{row}");
    }
}
