//! Owns the end-to-end benchmark. First a saturated run: a fixed number of
//! events sent as fast as the gateway takes them (256 batch requests in
//! flight), timed from the first request until the last row is stored, with
//! the gateway's and the leader's CPU per event; the bare pipeline
//! ([`crate::lab::bench::bare_pipeline`]) is its baseline. Then events offered to
//! the gateway in batches at rates chosen by [`RateSearch`] (doubling until a
//! rate does not hold, then narrowing the gap), each step held for a while. A
//! step holds when the gateway acknowledged at least 95 % of what was offered,
//! 99 % of the events were stored within a second of their acceptance, and the
//! leader had stored everything within two seconds of the load stopping: the
//! pipeline keeps up instead of building a backlog. Latency is the gateway's
//! acceptance (`received_at`) to the commit of the row's transaction
//! (`pg_xact_commit_timestamp`), from PostgreSQL.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;

use crate::lab::bench::rate_search::RateSearch;
use crate::lab::bench::{process_cpu, stored_events, BenchError};
use crate::lab::drill::load::{self, LoadPlan, RunningLoad};
use crate::lab::drill::local_cluster::LocalCluster;

/// Events per request.
const BATCH: usize = 100;
/// How long the backlog may take to drain after a step for it to hold.
const DRAIN_ALLOWANCE: Duration = Duration::from_secs(2);
/// Highest p99 acceptance-to-commit latency of a step that holds, ms.
const LATENCY_P99_ALLOWANCE_MS: f64 = 1000.0;
/// Longest a step's backlog may take to drain before the search ends: the
/// next step's counts would otherwise take in this one's late rows.
const DRAIN_BOUND: Duration = Duration::from_secs(120);

/// An offered rate no gateway here reaches: the load generator's bound on
/// requests in flight is what paces a saturated run.
const SATURATING_RATE: u32 = 1_000_000;

/// What the saturated run measured.
#[derive(Debug, Clone, Serialize)]
pub struct SaturatedRun {
    /// Events acknowledged, and then stored.
    pub events: u64,
    /// Events refused (429, 503, …).
    pub refused: u64,
    /// Those events per second, first request to last row stored.
    pub events_per_s: f64,
    /// The gateway's CPU seconds per million events.
    pub gateway_cpu_s_per_million: Option<f64>,
    /// The leader's CPU seconds per million events.
    pub leader_cpu_s_per_million: Option<f64>,
}

/// Sends `count` events through the gateway as fast as it takes them and
/// waits until the leader stored every acknowledged one.
pub async fn saturate(
    cluster: &LocalCluster,
    postgres: &tokio_postgres::Client,
    count: u64,
) -> Result<SaturatedRun, BenchError> {
    let (leader, epoch) = cluster.wait_for_leader(0, Duration::from_secs(60)).await?;
    let leader_pid = cluster.nodes[leader]
        .as_ref()
        .ok_or_else(|| BenchError::Failed("the leader is gone".into()))?
        .pid();
    let gateway_pid = cluster.gateway.pid();
    let cpu_before = (
        process_cpu::cpu_seconds(gateway_pid),
        process_cpu::cpu_seconds(leader_pid),
    );
    let stored_before = stored_events(postgres, &cluster.topic).await?;
    let started = Instant::now();
    let outcome = load::run_for(
        LoadPlan {
            gateway: cluster.gateway.base_url.clone(),
            rate: SATURATING_RATE,
            batch_size: BATCH,
        },
        None,
        Some(count),
    )
    .await;
    if !outcome.unknown.is_empty() {
        // Their records may or may not be in the topic: the stored count
        // could then be reached before every acknowledged event is stored.
        return Err(BenchError::Failed(format!(
            "{} events of the saturated run have an unknown outcome",
            outcome.unknown.len()
        )));
    }
    let acked = u64::try_from(outcome.acked.len()).unwrap_or(u64::MAX);
    let expected = stored_before.saturating_add(i64::try_from(acked).unwrap_or(i64::MAX));
    while stored_events(postgres, &cluster.topic).await? < expected {
        if started.elapsed() > Duration::from_secs(600) {
            return Err(BenchError::Failed(format!(
                "the saturated run's {acked} events were not all stored"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let cpu_after = (
        process_cpu::cpu_seconds(gateway_pid),
        process_cpu::cpu_seconds(leader_pid),
    );
    if cluster.wait_for_leader(0, Duration::from_secs(5)).await? != (leader, epoch) {
        return Err(BenchError::Failed(
            "leadership changed during the saturated run".into(),
        ));
    }
    let result = SaturatedRun {
        events: acked,
        refused: outcome.refusals.values().sum(),
        events_per_s: acked as f64 / elapsed.as_secs_f64().max(1e-3),
        gateway_cpu_s_per_million: process_cpu::per_million(cpu_before.0, cpu_after.0, acked),
        leader_cpu_s_per_million: process_cpu::per_million(cpu_before.1, cpu_after.1, acked),
    };
    tracing::info!(?result, refused = ?outcome.refusals, "saturated end-to-end run");
    Ok(result)
}

/// One rate step.
#[derive(Debug, Clone, Serialize)]
pub struct RateStep {
    /// Offered events per second.
    pub offered_per_s: u32,
    /// Acknowledged events per second.
    pub acked_per_s: f64,
    /// Time from the load stopping until everything acknowledged was stored, ms.
    pub drain_ms: i64,
    /// Gateway acceptance to commit, median, ms (none when nothing of the
    /// step was stored).
    pub latency_p50_ms: Option<f64>,
    /// Gateway acceptance to commit, 99th percentile, ms.
    pub latency_p99_ms: Option<f64>,
    /// Events whose outcome the load generator never learned.
    pub unknown_outcomes: usize,
    /// Whether the step held.
    pub held: bool,
}

/// Runs the steps `search` chooses, for `step` each.
pub async fn find_steady_rate(
    cluster: &LocalCluster,
    postgres: &tokio_postgres::Client,
    mut search: RateSearch,
    step: Duration,
) -> Result<Vec<RateStep>, BenchError> {
    cluster.wait_for_leader(0, Duration::from_secs(60)).await?;
    let mut steps = Vec::new();
    let mut stored_before = stored_events(postgres, &cluster.topic).await?;
    while let Some(rate) = search.next() {
        let began = Utc::now();
        let load = RunningLoad::start(LoadPlan {
            gateway: cluster.gateway.base_url.clone(),
            rate,
            batch_size: BATCH,
        });
        tokio::time::sleep(step).await;
        let outcome = load.finish().await;
        let stopped = Instant::now();
        let ended = Utc::now();
        // An event of unknown outcome may be stored late and counted as one
        // of the acknowledged: such a step proves nothing, and ends the search.
        let unknown_outcomes = outcome.unknown.len();
        let acked = i64::try_from(outcome.acked.len()).unwrap_or(i64::MAX);
        let expected = stored_before + acked;
        let mut now_stored = stored_events(postgres, &cluster.topic).await?;
        // Polled often enough that the drain time is not the poll's period.
        while now_stored < expected && stopped.elapsed() < DRAIN_BOUND {
            tokio::time::sleep(Duration::from_millis(5)).await;
            now_stored = stored_events(postgres, &cluster.topic).await?;
        }
        let drain = stopped.elapsed();
        stored_before = now_stored;
        let latency = postgres
            .query_one(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM pg_xact_commit_timestamp(xmin) - received_at)), \
                        percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM pg_xact_commit_timestamp(xmin) - received_at)) \
                 FROM log_events WHERE topic = $1 AND received_at >= $2 AND received_at <= $3",
                &[&cluster.topic, &began, &ended],
            )
            .await?;
        let acked_per_s = acked as f64 / step.as_secs_f64();
        // No latency (nothing of the step stored) is no evidence that it held.
        let latency_ms = |column: usize| latency.get::<_, Option<f64>>(column).map(|s| s * 1000.0);
        let (p50, p99) = (latency_ms(0), latency_ms(1));
        let result = RateStep {
            offered_per_s: rate,
            acked_per_s,
            drain_ms: i64::try_from(drain.as_millis()).unwrap_or(i64::MAX),
            latency_p50_ms: p50,
            latency_p99_ms: p99,
            unknown_outcomes,
            held: unknown_outcomes == 0
                && acked_per_s >= 0.95 * f64::from(rate)
                && drain <= DRAIN_ALLOWANCE
                && p99.is_some_and(|p99| p99 <= LATENCY_P99_ALLOWANCE_MS),
        };
        tracing::info!(?result, "end-to-end step");
        search.record(rate, result.held);
        steps.push(result);
        if now_stored < expected || unknown_outcomes > 0 {
            tracing::warn!(
                rate,
                unknown_outcomes,
                "the step's backlog did not drain, or some outcomes are unknown; no further steps"
            );
            break;
        }
    }
    Ok(steps)
}
