//! Owns a whole drill: start a cluster, put it under load, run the cycles, stop
//! the load, wait for every acknowledged event to be stored, verify, and write
//! the report (`report.json`, `timeline.svg`, `acked.txt`, process logs).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::lab::drill::attribution::{false_failovers, FaultWindow};
use crate::lab::drill::chaos::{self, Chaos};
use crate::lab::drill::clock_skew::{ClockSkew, SkewedClocks};
use crate::lab::drill::infra_control::InfraControl;
use crate::lab::drill::load::{LoadPlan, RunningLoad};
use crate::lab::drill::local_cluster::LocalCluster;
use crate::lab::drill::report::{DrillReport, MemoryReport};
use crate::lab::drill::scenario::{run_cycle, FaultContext, FaultSequence, Scenario};
use crate::lab::drill::timeline::{render, Marker};
use crate::lab::drill::verify::{unknown_path, verify, write_ids};
use crate::lab::drill::{connect_postgres, require_commit_timestamps, DrillError};

/// Bucket of the timeline.
const TIMELINE_BUCKET_MS: i64 = 250;

/// What a drill does.
#[derive(Debug, Clone)]
pub struct DrillPlan {
    /// The fault.
    pub scenario: Scenario,
    /// How many cycles.
    pub cycles: usize,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Offered load, events per second.
    pub rate: u32,
    /// Steady state before and between cycles.
    pub settle: Duration,
    /// Seed of a mixed drill.
    pub seed: u64,
    /// Where the report goes.
    pub out: PathBuf,
    /// PostgreSQL to verify against.
    pub postgres_url: String,
    /// `scripts/infra`, for the dependency outages.
    pub infra_script: PathBuf,
    /// How long Redis, PostgreSQL and ZooKeeper stay down in their outages.
    pub outage: Duration,
    /// ZooKeeper's client port.
    pub zookeeper_port: u16,
    /// The nodes' ZooKeeper session timeout.
    pub session_timeout: Duration,
    /// The broker, for the poison records of a chaos drill.
    pub kafka_bootstrap: String,
}

/// Runs the drill and writes its report.
pub async fn run(plan: DrillPlan) -> Result<DrillReport, DrillError> {
    std::fs::create_dir_all(&plan.out)?;
    let postgres = connect_postgres(&plan.postgres_url).await?;
    require_commit_timestamps(&postgres).await?;
    let mut context = FaultContext {
        postgres,
        postgres_url: plan.postgres_url.clone(),
        infra: InfraControl::new(plan.infra_script.clone()),
        outage: plan.outage,
        zookeeper_port: plan.zookeeper_port,
        session_timeout: plan.session_timeout,
        skewed_clocks: SkewedClocks::default(),
    };
    let mut cluster = LocalCluster::start(plan.nodes, &plan.out.join("logs")).await?;
    cluster.wait_for_leader(0, Duration::from_secs(30)).await?;
    let load = RunningLoad::start(LoadPlan {
        gateway: cluster.gateway.base_url.clone(),
        rate: plan.rate,
        batch_size: 1,
    });
    tokio::time::sleep(plan.settle).await;
    let mut sequence = FaultSequence::new(plan.seed);
    let mut cycles = Vec::with_capacity(plan.cycles);
    let mut hostile_acked = Vec::new();
    let mut hostile_unknown = Vec::new();
    // The shim is build output, not part of the report: it lives in a
    // directory of its own, removed when the drill ends. Under the report's
    // directory, not the system's temporary one, which may be mounted
    // noexec (the preload would then be ignored, and skewed nodes hang).
    let shim_dir = match plan.scenario {
        Scenario::Chaos => Some(
            tempfile::Builder::new()
                .prefix(".clock-skew-")
                .tempdir_in(&plan.out)?,
        ),
        _ => None,
    };
    let mut chaos = match shim_dir.as_ref() {
        Some(dir) => Some(Chaos::new(
            &plan.kafka_bootstrap,
            ClockSkew::prepare(dir.path())?,
            context.infra.clone(),
        )?),
        None => None,
    };
    for cycle in 1..=plan.cycles {
        let scenario = match plan.scenario {
            Scenario::Mixed | Scenario::Chaos => sequence.next_scenario(),
            single => single,
        };
        let mut overlap = match chaos.as_mut() {
            Some(chaos) => {
                let (leader, _) = cluster.wait_for_leader(0, Duration::from_secs(30)).await?;
                Some(
                    chaos::overlap(
                        &mut cluster,
                        leader,
                        &mut sequence,
                        chaos,
                        &mut context.skewed_clocks,
                    )
                    .await?,
                )
            }
            None => None,
        };
        let mut result = run_cycle(&mut cluster, &mut context, scenario, cycle).await?;
        if let Some(overlap) = overlap.as_mut() {
            overlap.finish().await;
            result.overlap_at = overlap.started_at;
            result.overlapping_faults = overlap.faults;
            result.overlap_changes_allowed = i64::from(
                overlap
                    .paused_until
                    .is_some_and(|until| until > result.fault_at),
            );
            result.skewed_standby = overlap.skewed_standby;
            result.added_partition = overlap.added_partition;
            hostile_acked.append(&mut overlap.acked);
            hostile_unknown.append(&mut overlap.unknown);
            let mut acked = load.acked();
            acked.extend_from_slice(&hostile_acked);
            result.wedged = Some(!chaos::stored_within_bound(&context.postgres, &acked).await?);
        }
        tracing::info!(
            cycle,
            ?scenario,
            detection_ms = ?result.detection_ms,
            leading_ms = ?result.leading_ms,
            rto_ms = result.rto_ms,
            "drill cycle"
        );
        cycles.push(result);
        tokio::time::sleep(plan.settle).await;
    }
    let memory = memory_under_load(&cluster).await;
    let postgres = &context.postgres;
    let mut outcome = load.finish().await;
    outcome.acked.extend(hostile_acked);
    outcome.unknown.extend(hostile_unknown);
    let acked_path = plan.out.join("acked.txt");
    write_ids(&acked_path, &outcome.acked)?;
    write_ids(&unknown_path(&acked_path), &outcome.unknown)?;
    let mut verdict = verify(postgres, &cluster.topic, &outcome.acked, &outcome.unknown).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while verdict.lost > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        verdict = verify(postgres, &cluster.topic, &outcome.acked, &outcome.unknown).await?;
    }
    // Every leadership change after the initial election, by when its
    // leader started (on the real clock); each must fall in the window of
    // the faults that caused it.
    let changes: Vec<DateTime<Utc>> =
        leadership_changes(postgres, &cluster.name, &context.skewed_clocks)
            .await?
            .into_iter()
            .skip(1)
            .map(|(at, _)| at)
            .collect();
    let windows: Vec<FaultWindow> = cycles
        .iter()
        .map(|cycle| FaultWindow {
            start: cycle.overlap_at.unwrap_or(cycle.fault_at),
            end: cycle.settled_at,
            allowed: cycle.scenario.allowed_failovers() + cycle.overlap_changes_allowed,
        })
        .collect();
    let false_failovers = false_failovers(&changes, &windows);
    let report = DrillReport::new(
        plan.scenario,
        matches!(plan.scenario, Scenario::Mixed | Scenario::Chaos).then_some(plan.seed),
        cycles,
        verdict,
        false_failovers,
        memory,
    );
    std::fs::write(
        plan.out.join("report.json"),
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    )?;
    std::fs::write(
        plan.out.join("timeline.svg"),
        timeline(postgres, &cluster, &report, &context.skewed_clocks).await?,
    )?;
    Ok(report)
}

async fn memory_under_load(cluster: &LocalCluster) -> MemoryReport {
    let leader = cluster
        .wait_for_leader(0, Duration::from_secs(10))
        .await
        .ok()
        .map(|(slot, _)| slot);
    let mut memory = MemoryReport {
        gateway_rss_kib: cluster.gateway.rss_kib(),
        ..MemoryReport::default()
    };
    for (slot, node) in cluster.nodes.iter().enumerate() {
        let Some(rss) = node.as_ref().and_then(|node| node.rss_kib()) else {
            continue;
        };
        if Some(slot) == leader {
            memory.leader_rss_kib = Some(rss);
        } else {
            memory.standby_rss_kib.push(rss);
        }
    }
    memory
}

/// Every leadership of the cluster, in epoch order: when it started, on the
/// real clock, and its epoch.
async fn leadership_changes(
    postgres: &tokio_postgres::Client,
    cluster: &str,
    skewed: &SkewedClocks,
) -> Result<Vec<(DateTime<Utc>, i64)>, DrillError> {
    Ok(postgres
        .query(
            "SELECT recovered_at, epoch, new_leader FROM failover_events WHERE cluster = $1 ORDER BY epoch",
            &[&cluster],
        )
        .await?
        .iter()
        .map(|row| (skewed.real_time(row.get(2), row.get(0)), row.get(1)))
        .collect())
}

async fn timeline(
    postgres: &tokio_postgres::Client,
    cluster: &LocalCluster,
    report: &DrillReport,
    skewed: &SkewedClocks,
) -> Result<String, DrillError> {
    let committed: Vec<(DateTime<Utc>, i64)> = postgres
        .query(
            "SELECT to_timestamp(floor(extract(epoch FROM stored_at)::float8 * 1000 / $2::float8) \
             * $2::float8 / 1000) AS bucket, COUNT(*) FROM log_events WHERE topic = $1 \
             GROUP BY bucket ORDER BY bucket",
            &[&cluster.topic, &(TIMELINE_BUCKET_MS as f64)],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let leadership: Vec<Marker> = leadership_changes(postgres, &cluster.name, skewed)
        .await?
        .into_iter()
        .map(|(at, epoch)| Marker {
            at,
            label: format!("e{epoch}"),
        })
        .collect();
    let faults: Vec<Marker> = report
        .cycles
        .iter()
        .map(|cycle| Marker {
            at: cycle.fault_at,
            label: cycle.scenario.name(),
        })
        .collect();
    Ok(render(&committed, TIMELINE_BUCKET_MS, &faults, &leadership))
}
