//! Owns the sink benchmark: a leader draining a pre-filled topic into
//! PostgreSQL (fenced transactions, offsets, `ON CONFLICT DO NOTHING`), beside
//! its upper bound, a raw `COPY` of the same number of rows into the same table
//! with the same indexes; and the sink store alone (the same fenced commits of
//! pre-built batches, no broker), which tells the sink's own cost from the
//! broker's read rate. Also samples the leader's and a standby's memory while
//! the leader works flat out.

use std::io::Cursor;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::SinkExt;
use serde::Serialize;

use std::collections::BTreeMap;

use crate::config::Config;
use crate::lab::bench::bare_clients::bench_event;
use crate::lab::bench::bare_pipeline::{copy_row, COPY_COLUMNS};
use crate::lab::bench::process_cpu;
use crate::lab::bench::{forget_topic, stored_events, BenchError};
use crate::lab::drill::local_cluster::LocalCluster;
use crate::node::election::epoch::Epoch;
use crate::node::sink::store::{EventRow, KafkaPosition, SinkBatch, SinkStore};
use crate::shared::circuit_breaker::DependencyBreaker;
use crate::shared::postgres::pool::build_pool;
use crate::shared::postgres::tls::connector;

/// Rows per chunk sent to `COPY`.
const COPY_CHUNK_ROWS: u64 = 10_000;

/// What the sink benchmark measured.
#[derive(Debug, Clone, Serialize)]
pub struct SinkResult {
    /// Events drained by the leader.
    pub events: u64,
    /// Leader: first commit to last commit, events per second.
    pub sink_events_per_s: f64,
    /// Raw `COPY` of the same number of rows, events per second.
    pub copy_events_per_s: f64,
    /// The sink store alone (fenced batch commits, no broker), events per second.
    pub store_alone_events_per_s: f64,
    /// Highest leader RSS seen while draining, KiB.
    pub leader_peak_rss_kib: Option<u64>,
    /// A standby's RSS meanwhile, KiB.
    pub standby_rss_kib: Option<u64>,
    /// The leader's CPU seconds per million events drained (counted from
    /// the moment it was seen leading, over the events stored since).
    pub leader_cpu_s_per_million: Option<f64>,
}

/// Waits for the cluster's leader to drain `events` records of its topic,
/// stops the cluster, then copies as many rows with `COPY` and commits as many
/// through the sink store alone. Each of the three starts from the same kind
/// of table (the rows before it deleted and vacuumed) with nothing else of
/// ours running.
pub async fn drain_vs_copy(
    config: &Config,
    cluster: LocalCluster,
    postgres: &tokio_postgres::Client,
    events: u64,
    partitions: i32,
) -> Result<SinkResult, BenchError> {
    let (leader, _) = cluster.wait_for_leader(0, Duration::from_secs(60)).await?;
    let leader_process = cluster.nodes[leader]
        .as_ref()
        .ok_or_else(|| BenchError::Failed("the leader is gone".into()))?;
    let cpu_before = process_cpu::cpu_seconds(leader_process.pid());
    let stored_before = stored_events(postgres, &cluster.topic).await?;
    let standby = (0..cluster.nodes.len()).find(|slot| *slot != leader);
    let mut leader_peak_rss_kib = None;
    let mut standby_rss_kib = None;
    let deadline = Instant::now() + Duration::from_secs(1800);
    let cpu_after = loop {
        let stored = stored_events(postgres, &cluster.topic).await?;
        let rss = cluster.nodes[leader]
            .as_ref()
            .and_then(|node| node.rss_kib());
        leader_peak_rss_kib = leader_peak_rss_kib.max(rss);
        standby_rss_kib = standby
            .and_then(|slot| cluster.nodes[slot].as_ref())
            .and_then(|node| node.rss_kib())
            .or(standby_rss_kib);
        if u64::try_from(stored).unwrap_or(0) >= events {
            break process_cpu::cpu_seconds(leader_process.pid());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Failed(format!(
                "the leader stored {stored} of {events} events"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let row = postgres
        .query_one(
            "SELECT MIN(stored_at), MAX(stored_at), COUNT(*) FROM log_events WHERE topic = $1",
            &[&cluster.topic],
        )
        .await?;
    let (first, last, rows): (DateTime<Utc>, DateTime<Utc>, i64) =
        (row.get(0), row.get(1), row.get(2));
    if u64::try_from(rows).unwrap_or(0) != events {
        return Err(BenchError::Failed(format!(
            "{rows} rows stored for {events} events"
        )));
    }
    let drained_since = u64::try_from(rows - stored_before).unwrap_or(0);
    let sink_seconds = (last - first).num_microseconds().unwrap_or(1) as f64 / 1e6;
    let topic = cluster.topic.clone();
    drop(cluster);
    forget_topic(postgres, &topic).await?;
    let copy_topic = format!("{topic}-copy");
    let copy_elapsed = copy_rows(postgres, &copy_topic, events, partitions).await?;
    forget_topic(postgres, &copy_topic).await?;
    let alone_topic = format!("{topic}-alone");
    let alone_elapsed = commit_alone(config, &alone_topic, events, partitions).await?;
    forget_topic(postgres, &alone_topic).await?;
    Ok(SinkResult {
        events,
        sink_events_per_s: events as f64 / sink_seconds.max(1e-3),
        copy_events_per_s: events as f64 / copy_elapsed.as_secs_f64().max(1e-3),
        store_alone_events_per_s: events as f64 / alone_elapsed.as_secs_f64().max(1e-3),
        leader_peak_rss_kib,
        standby_rss_kib,
        leader_cpu_s_per_million: process_cpu::per_million(cpu_before, cpu_after, drained_since),
    })
}

/// Commits `events` benchmark rows through the sink store, in batches of
/// `node.batch_max_events` as a leader does, under a cluster of its own; how
/// long the commits took (the batches are built before the clock starts).
async fn commit_alone(
    config: &Config,
    topic: &str,
    events: u64,
    partitions: i32,
) -> Result<Duration, BenchError> {
    let tls = connector(&config.postgres).map_err(|error| BenchError::Failed(error.to_string()))?;
    let pool = build_pool(&config.postgres, tls, Duration::from_secs(10));
    let breaker = DependencyBreaker::new("postgres", &config.circuit_breaker);
    let cluster = format!("bench_{}", uuid::Uuid::now_v7().simple());
    let store = SinkStore::new(pool, breaker, &cluster, topic, "bench-store");
    let epoch = Epoch(1);
    store
        .take_over(epoch)
        .await
        .map_err(|error| BenchError::Failed(error.to_string()))?;
    let partitions = u64::try_from(partitions.max(1)).unwrap_or(1);
    let batch_size = u64::try_from(config.node.batch_max_events.max(1)).unwrap_or(1);
    let mut batches = Vec::new();
    let mut n = 0;
    while n < events {
        let mut batch = SinkBatch {
            events: Vec::new(),
            dead_letters: Vec::new(),
            next_offsets: BTreeMap::new(),
        };
        for n in n..(n + batch_size).min(events) {
            let partition = i32::try_from(n % partitions).unwrap_or(0);
            let offset = i64::try_from(n / partitions).unwrap_or(i64::MAX);
            let position = KafkaPosition { partition, offset };
            batch.events.push(EventRow::new(
                bench_event(n),
                topic,
                position,
                epoch,
                "bench-store",
            ));
            batch.next_offsets.insert(partition, offset + 1);
        }
        batches.push(batch);
        n += batch_size;
    }
    let started = Instant::now();
    for batch in &batches {
        store
            .commit(epoch, batch)
            .await
            .map_err(|error| BenchError::Failed(error.to_string()))?;
    }
    Ok(started.elapsed())
}

/// `COPY`s `events` benchmark rows into `log_events`; how long the copy took
/// (the rows are generated before the clock starts).
async fn copy_rows(
    postgres: &tokio_postgres::Client,
    topic: &str,
    events: u64,
    partitions: i32,
) -> Result<Duration, BenchError> {
    let partitions = u64::try_from(partitions.max(1)).unwrap_or(1);
    let mut chunks = Vec::new();
    let mut chunk = String::new();
    for n in 0..events {
        chunk.push_str(&copy_row(
            &bench_event(n),
            topic,
            i32::try_from(n % partitions).unwrap_or(0),
            i64::try_from(n / partitions).unwrap_or(i64::MAX),
            "bench-copy",
        ));
        if (n + 1) % COPY_CHUNK_ROWS == 0 {
            chunks.push(std::mem::take(&mut chunk));
        }
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    let started = Instant::now();
    let sink = postgres.copy_in(COPY_COLUMNS).await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.send(Cursor::new(chunk.into_bytes())).await?;
    }
    sink.finish().await?;
    Ok(started.elapsed())
}
