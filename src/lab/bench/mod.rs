//! Owns `understudy-lab bench`: each number beside its baseline, measured in the
//! same run on the same broker and database, reported as a ratio.
//!
//! - [`bare_clients`]: a bare producer (fills the topic; the producer baseline)
//!   and a bare consumer (the read baseline).
//! - [`bare_pipeline`]: bare producer → broker → bare consumer → `COPY`, all
//!   at once (the end-to-end baseline), and its consumer side alone.
//! - [`process_cpu`]: CPU seconds per million events, from `/proc`.
//! - [`read_path`]: the node's reader plus event decoding over the same topic.
//! - [`sink_throughput`]: a leader draining the topic vs a raw `COPY`; memory.
//! - [`end_to_end`]: gateway to PostgreSQL at saturation and at steady rates,
//!   with latency.
//! - [`rate_search`]: which rate the end-to-end steps offer next.
//! - [`group_failover`]: a plain Kafka consumer group's takeover after a
//!   member dies, for comparison with our failover.

pub mod bare_clients;
pub mod bare_pipeline;
pub mod end_to_end;
pub mod group_failover;
pub mod process_cpu;
pub mod rate_search;
pub mod read_path;
pub mod sink_throughput;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, KafkaConfig};
use crate::lab::bench::rate_search::RateSearch;
use crate::lab::drill::local_cluster::LocalCluster;
use crate::lab::drill::{connect_postgres, require_commit_timestamps, DrillError};
use crate::shared::kafka::topic::{ensure_topic, TopicError};
use crate::shared::postgres::migrations::{self, MigrationStep};

/// Why a benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Kafka refused or failed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The topic could not be created or read.
    #[error("topic: {0}")]
    Topic(#[from] TopicError),
    /// PostgreSQL could not be queried.
    #[error("postgresql: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The cluster under test failed.
    #[error("cluster: {0}")]
    Cluster(#[from] DrillError),
    /// A file or process could not be handled.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An event could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// A benchmark did not get the result it needs.
    #[error("{0}")]
    Failed(String),
}

/// What `understudy-lab bench` does.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    /// Events pre-filled and drained.
    pub events: u64,
    /// Events through the bare pipeline and the saturated end-to-end run.
    pub pipeline_events: u64,
    /// How long each end-to-end rate step lasts.
    pub step: Duration,
    /// Where `bench.json` and the clusters' logs go.
    pub out: PathBuf,
}

/// Every number of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Events in the pre-filled topic.
    pub events: u64,
    /// Bare producer into the broker, events/s.
    pub bare_producer_per_s: f64,
    /// The bare producer's (this process's) CPU seconds per million events.
    pub bare_producer_cpu_s_per_million: Option<f64>,
    /// Bare consumer, before the node's reader, events/s.
    pub bare_consumer_per_s: f64,
    /// Bare consumer again, after the node's reader, events/s.
    pub bare_consumer_again_per_s: f64,
    /// Bare consumer plus decoding plus `COPY` in batches, events/s.
    pub bare_drain_per_s: f64,
    /// Its CPU seconds per million events (client side, as the leader's).
    pub bare_drain_cpu_s_per_million: Option<f64>,
    /// The bare pipeline, producer and consumer at once, events/s.
    pub bare_pipeline_per_s: f64,
    /// Gateway to PostgreSQL at saturation, with CPU per event.
    pub saturated: end_to_end::SaturatedRun,
    /// The node's reader plus decoding, events/s.
    pub read_path_per_s: f64,
    /// Leader draining into PostgreSQL and the `COPY` bound; memory.
    pub sink: sink_throughput::SinkResult,
    /// End-to-end rate steps.
    pub end_to_end: Vec<end_to_end::RateStep>,
    /// A plain consumer group's takeover.
    pub consumer_group: group_failover::GroupFailoverResult,
}

impl BenchReport {
    /// The best end-to-end step that held.
    pub fn steady(&self) -> Option<&end_to_end::RateStep> {
        self.end_to_end
            .iter()
            .filter(|step| step.held)
            .max_by(|a, b| a.acked_per_s.total_cmp(&b.acked_per_s))
    }

    /// The printed table: each number, its baseline, the ratio and the goal.
    pub fn table(&self) -> String {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let steady = self.steady();
        let steady_rate = steady.map_or(0.0, |step| step.acked_per_s);
        let mut text = String::new();
        text.push_str(&format!(
            "{:<34} {:>12} {:>14} {:>7} {:>6}\n",
            "measure", "events/s", "baseline/s", "ratio", "goal"
        ));
        for (name, value, baseline, goal) in [
            (
                "sink (leader -> postgresql)",
                self.sink.sink_events_per_s,
                self.sink.copy_events_per_s,
                0.5,
            ),
            (
                "sink store alone (no broker)",
                self.sink.store_alone_events_per_s,
                self.sink.copy_events_per_s,
                0.5,
            ),
            (
                "read path (reader + decode)",
                self.read_path_per_s,
                (self.bare_consumer_per_s + self.bare_consumer_again_per_s) / 2.0,
                0.9,
            ),
            (
                "end to end, saturated",
                self.saturated.events_per_s,
                self.bare_pipeline_per_s,
                0.7,
            ),
            (
                "end to end, highest steady rate",
                steady_rate,
                self.bare_pipeline_per_s,
                0.7,
            ),
        ] {
            text.push_str(&format!(
                "{:<34} {:>12.0} {:>14.0} {:>7.2} {:>6}\n",
                name,
                value,
                baseline,
                ratio(value, baseline),
                format!(">={goal}")
            ));
        }
        text.push_str(
            "baselines: COPY of the same rows; bare rdkafka consumer (mean of a read before and one after the node's reader); bare producer -> consumer -> COPY\n",
        );
        text.push_str(&format!(
            "bare producer {:.0}/s; bare consumer {:.0}/s before the node's reader, {:.0}/s after it\n",
            self.bare_producer_per_s, self.bare_consumer_per_s, self.bare_consumer_again_per_s
        ));
        text.push_str(&format!(
            "{:<34} {:>12} {:>14} {:>7} {:>6}\n",
            "CPU s per million events", "ours", "baseline", "ratio", "goal"
        ));
        let cpu_ratio = |ours: Option<f64>, baseline: Option<f64>| match (ours, baseline) {
            (Some(ours), Some(baseline)) if baseline > 0.0 => format!("{:.2}", ours / baseline),
            _ => "n/a".to_owned(),
        };
        let seconds =
            |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}"));
        for (name, ours, baseline) in [
            (
                "gateway (saturated) / bare producer",
                self.saturated.gateway_cpu_s_per_million,
                self.bare_producer_cpu_s_per_million,
            ),
            (
                "leader (draining) / bare drain",
                self.sink.leader_cpu_s_per_million,
                self.bare_drain_cpu_s_per_million,
            ),
        ] {
            text.push_str(&format!(
                "{:<34} {:>12} {:>14} {:>7} {:>6}\n",
                name,
                seconds(ours),
                seconds(baseline),
                cpu_ratio(ours, baseline),
                "<=2"
            ));
        }
        text.push_str(&format!(
            "leader CPU in the saturated run: {} s per million (batches as events arrive, no baseline of that shape)\n",
            seconds(self.saturated.leader_cpu_s_per_million)
        ));
        text.push_str(&format!(
            "bare drain alone (consumer -> COPY): {:.0}/s; saturated run: {} events, {} refused\n",
            self.bare_drain_per_s, self.saturated.events, self.saturated.refused
        ));
        let latency =
            |ms: Option<f64>| ms.map_or_else(|| "none".to_owned(), |ms| format!("{ms:.1}"));
        for step in &self.end_to_end {
            text.push_str(&format!(
                "  offered {:>6}/s: acked {:>8.0}/s, drained {:>5} ms after, latency p50 {:>6} ms p99 {:>7} ms, {}\n",
                step.offered_per_s,
                step.acked_per_s,
                step.drain_ms,
                latency(step.latency_p50_ms),
                latency(step.latency_p99_ms),
                if step.held { "held" } else { "did not hold" }
            ));
        }
        let shown = |ms: Option<u64>| {
            ms.map_or_else(
                || format!("none within {} s", self.consumer_group.limit_s),
                |ms| format!("{ms} ms"),
            )
        };
        text.push_str(&format!(
            "consumer group (session {} ms): SIGKILL takeover {}, SIGTERM takeover {}\n",
            self.consumer_group.session_timeout_ms,
            shown(self.consumer_group.sigkill_takeover_ms),
            shown(self.consumer_group.sigterm_takeover_ms)
        ));
        text.push_str(&format!(
            "RSS: leader draining (peak) {} KiB, standby {} KiB\n",
            self.sink.leader_peak_rss_kib.unwrap_or(0),
            self.sink.standby_rss_kib.unwrap_or(0)
        ));
        text
    }
}

/// Runs every benchmark and writes `bench.json`.
pub async fn run(config: &Config, plan: &BenchPlan) -> Result<BenchReport, BenchError> {
    std::fs::create_dir_all(&plan.out)?;
    let postgres = connect_postgres(&config.postgres.url).await?;
    require_commit_timestamps(&postgres).await?;
    // The bare baselines write into the schema before any node has started
    // (and applied it), so on a new database the bench applies it first.
    migrations::migrate(config.postgres.migrations_url(), None, MigrationStep::UpAll)
        .await
        .map_err(|error| BenchError::Failed(format!("could not apply the schema: {error}")))?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let kafka = KafkaConfig {
        topic: format!("bench-{id}"),
        ..config.kafka.clone()
    };
    let partitions = ensure_topic(&kafka).await?.partitions;
    tracing::info!(events = plan.events, topic = %kafka.topic, "filling the topic with a bare producer");
    let cpu_before = process_cpu::own_cpu_seconds();
    let produced = bare_clients::produce(&kafka, &kafka.topic, plan.events).await?;
    let bare_producer_cpu_s_per_million =
        process_cpu::per_million(cpu_before, process_cpu::own_cpu_seconds(), plan.events);
    let per_s = |events: u64, elapsed: Duration| events as f64 / elapsed.as_secs_f64().max(1e-3);
    let bare_producer_per_s = per_s(plan.events, produced);
    tracing::info!(bare_producer_per_s, "reading it back with a bare consumer");
    let consumed = read_with_bare_consumer(&kafka, &partitions, plan.events).await?;
    let batching = bare_pipeline::Batching {
        max_rows: config.node.batch_max_events,
        linger: Duration::from_millis(config.node.batch_linger_ms),
    };
    tracing::info!("draining it into postgresql with a bare consumer and COPY");
    let cpu_before = process_cpu::own_cpu_seconds();
    let bare_drained =
        bare_pipeline::drain(&kafka, &postgres, &partitions, plan.events, batching).await?;
    let bare_drain_cpu_s_per_million =
        process_cpu::per_million(cpu_before, process_cpu::own_cpu_seconds(), plan.events);
    // The leader stores the same message ids from this topic below.
    forget_topic(&postgres, &kafka.topic).await?;
    tracing::info!("reading it with the node's reader");
    let read = read_path::read_and_decode(config, &kafka.topic, &partitions, plan.events).await?;
    // Read once more after the node's reader, so neither side alone gets the
    // broker's warmer caches: the read path is compared with the mean of both.
    let consumed_again = read_with_bare_consumer(&kafka, &partitions, plan.events).await?;
    tracing::info!("draining it into postgresql with a leader");
    let cluster =
        LocalCluster::start_on(kafka.topic.clone(), 2, &plan.out.join("logs-sink")).await?;
    let partition_count = i32::try_from(partitions.len()).unwrap_or(1);
    let sink =
        sink_throughput::drain_vs_copy(config, cluster, &postgres, plan.events, partition_count)
            .await?;
    tracing::info!(
        events = plan.pipeline_events,
        "the bare pipeline, all at once"
    );
    let pipeline_kafka = KafkaConfig {
        topic: format!("bench-pipeline-{id}"),
        ..config.kafka.clone()
    };
    let pipeline_partitions = ensure_topic(&pipeline_kafka).await?.partitions;
    let bare_pipeline_elapsed = bare_pipeline::produce_and_drain(
        &pipeline_kafka,
        &postgres,
        &pipeline_partitions,
        plan.pipeline_events,
        batching,
    )
    .await?;
    forget_topic(&postgres, &pipeline_kafka.topic).await?;
    tracing::info!("end to end: saturated, then at rising rates");
    let (saturated, end_to_end) = {
        let cluster = LocalCluster::start(2, &plan.out.join("logs-end-to-end")).await?;
        let saturated = end_to_end::saturate(&cluster, &postgres, plan.pipeline_events).await?;
        let search = RateSearch::new(1_000, 7, 3);
        let steps = end_to_end::find_steady_rate(&cluster, &postgres, search, plan.step).await?;
        (saturated, steps)
    };
    tracing::info!("a plain consumer group's takeover");
    let group_kafka = KafkaConfig {
        topic: format!("bench-group-{id}"),
        partitions: 2,
        ..config.kafka.clone()
    };
    ensure_topic(&group_kafka).await?;
    let consumer_group = group_failover::compare(&group_kafka, &group_kafka.topic).await?;
    let report = BenchReport {
        events: plan.events,
        bare_producer_per_s,
        bare_producer_cpu_s_per_million,
        bare_consumer_per_s: per_s(plan.events, consumed),
        bare_consumer_again_per_s: per_s(plan.events, consumed_again),
        bare_drain_per_s: per_s(plan.events, bare_drained),
        bare_drain_cpu_s_per_million,
        bare_pipeline_per_s: per_s(plan.pipeline_events, bare_pipeline_elapsed),
        saturated,
        read_path_per_s: per_s(plan.events, read),
        sink,
        end_to_end,
        consumer_group,
    };
    std::fs::write(
        plan.out.join("bench.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    Ok(report)
}

/// Reads `events` records of `kafka.topic` from the beginning with a bare
/// consumer, off the async runtime; how long that took.
async fn read_with_bare_consumer(
    kafka: &KafkaConfig,
    partitions: &[i32],
    events: u64,
) -> Result<Duration, BenchError> {
    let kafka = kafka.clone();
    let partitions = partitions.to_vec();
    tokio::task::spawn_blocking(move || {
        bare_clients::consume(&kafka, &kafka.topic, &partitions, events)
    })
    .await
    .map_err(|error| BenchError::Failed(error.to_string()))?
}

/// Deletes the rows stored for `topic` and vacuums the table, so the next
/// measurement inserts into the same kind of table as the one before it
/// (no dead index entries left behind for the same message ids).
pub(crate) async fn forget_topic(
    postgres: &tokio_postgres::Client,
    topic: &str,
) -> Result<(), BenchError> {
    postgres
        .execute("DELETE FROM log_events WHERE topic = $1", &[&topic])
        .await?;
    postgres
        .batch_execute("VACUUM (ANALYZE) log_events")
        .await?;
    Ok(())
}

/// Events the leaders of every cluster stored for `topic` (their committed
/// next offsets, summed: offsets start at 0 and every record is stored once).
pub(crate) async fn stored_events(
    postgres: &tokio_postgres::Client,
    topic: &str,
) -> Result<i64, BenchError> {
    Ok(postgres
        .query_one(
            "SELECT COALESCE(SUM(next_offset), 0)::bigint FROM consumer_offsets WHERE topic = $1",
            &[&topic],
        )
        .await?
        .get(0))
}
