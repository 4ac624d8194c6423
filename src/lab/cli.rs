//! Owns the command line of `understudy-lab`, the companion binary of drills,
//! load and benchmarks: it starts clusters of the deployed `understudy`
//! binary, injects faults (signals, cgroups, iptables, dependency restarts)
//! and measures. It is not deployed. Parsing only; its `main` runs what was
//! asked.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::lab::drill::scenario::Scenario;

/// Drills, load and benchmarks for Understudy (not for production hosts).
#[derive(Debug, Parser)]
#[command(name = "understudy-lab", version)]
pub struct LabCli {
    /// TOML configuration file; environment variables `UNDERSTUDY_<SECTION>__<KEY>` override it.
    #[arg(long, global = true, env = "UNDERSTUDY_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to run.
    #[command(subcommand)]
    pub command: LabCommand,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Send events through the gateway at a fixed rate; record every acknowledged id.
    Loadgen {
        /// Gateway base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway: String,
        /// Events per second (the seed's load test: 50).
        #[arg(long, default_value_t = 50)]
        rate: u32,
        /// How long to send, e.g. `60s` (the seed's load test: 60 s).
        #[arg(long, value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Stop after this many acknowledged events.
        #[arg(long)]
        count: Option<u64>,
        /// Events per request (1: single requests; more: batches).
        #[arg(long, default_value_t = 1)]
        batch_size: usize,
        /// File receiving the acknowledged ids, one per line.
        #[arg(long, default_value = "acked.txt")]
        out: PathBuf,
    },
    /// Compare acknowledged ids with log_events: lost, duplicated, unexpected.
    Verify {
        /// File of acknowledged ids (from loadgen); the markers of events whose
        /// outcome is unknown are read beside it (same name, `.unknown`).
        #[arg(long, default_value = "acked.txt")]
        acked: PathBuf,
        /// Topic whose rows count as expected; defaults to `kafka.topic`.
        #[arg(long)]
        topic: Option<String>,
    },
    /// Start a local cluster, put it under load and inject failures; report RTO and RPO.
    Drill {
        /// The fault to inject.
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Faults to inject.
        #[arg(long, default_value_t = 5)]
        cycles: usize,
        /// Nodes in the cluster.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Offered load, events per second.
        #[arg(long, default_value_t = 200)]
        rate: u32,
        /// Steady state before and between faults, e.g. `1s`.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Seed of a mixed drill (printed; replays the same sequence).
        #[arg(long)]
        seed: Option<u64>,
        /// Directory for report.json, timeline.svg, acked.txt and logs.
        #[arg(long, default_value = "drill-results")]
        out: PathBuf,
        /// How long Redis, PostgreSQL and ZooKeeper stay down in their outage scenarios.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        outage: Duration,
        /// The script that started the infrastructure (stops and starts it).
        #[arg(long, default_value = "scripts/infra")]
        infra_script: PathBuf,
    },
    /// Measure sink, read path, end-to-end and failover beside their baselines.
    Bench {
        /// Events pre-filled into a topic, read back and drained (the goal is ≥ 1M).
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events through the bare pipeline and the saturated end-to-end run.
        #[arg(long, default_value_t = 200_000)]
        pipeline_events: u64,
        /// How long each end-to-end rate step lasts, e.g. `10s`.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        step: Duration,
        /// Directory for bench.json and the clusters' logs.
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
    },
    /// One member of a plain Kafka consumer group (the bench's comparison).
    #[command(hide = true)]
    BenchGroupMember {
        /// Topic to subscribe to.
        #[arg(long)]
        topic: String,
        /// Group to join.
        #[arg(long)]
        group: String,
    },
}
