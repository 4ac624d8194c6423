//! The `understudy-lab` binary: drills, load, verification and benchmarks
//! against clusters of the deployed `understudy` binary. Parses the command
//! line, loads the configuration (for the dependencies' addresses), sets up
//! logging and runs the chosen command. Uses `anyhow`, as a binary's edge.

use std::time::Duration;

use clap::Parser;

use understudy::config::Role;
use understudy::lab::bench::{self, group_failover, BenchPlan};
use understudy::lab::cli::{LabCli, LabCommand};
use understudy::lab::drill::load::{self, LoadPlan};
use understudy::lab::drill::runner::{self, DrillPlan};
use understudy::lab::drill::{self, verify};
use understudy::process_start;

fn main() -> anyhow::Result<()> {
    let cli = LabCli::parse();
    let (config, _tracing) = process_start::start(cli.config.as_deref(), Role::Tool)?;
    match cli.command {
        LabCommand::Loadgen {
            gateway,
            rate,
            duration,
            count,
            batch_size,
            out,
        } => {
            if duration.is_none() && count.is_none() {
                anyhow::bail!("give --duration or --count");
            }
            let outcome = process_start::tool_runtime()?.block_on(load::run_for(
                LoadPlan {
                    gateway,
                    rate,
                    batch_size,
                },
                duration,
                count,
            ));
            verify::write_ids(&out, &outcome.acked)?;
            verify::write_ids(&verify::unknown_path(&out), &outcome.unknown)?;
            println!("{}; ids in {}", load::summary(&outcome), out.display());
            Ok(())
        }
        LabCommand::Verify { acked, topic } => {
            let ids = verify::read_ids(&acked)?;
            let unknown = verify::read_markers(&verify::unknown_path(&acked))?;
            let topic = topic.unwrap_or(config.kafka.topic);
            let verdict = process_start::tool_runtime()?.block_on(async {
                let client = drill::connect_postgres(&config.postgres.url).await?;
                verify::verify(&client, &topic, &ids, &unknown).await
            })?;
            println!("{}", serde_json::to_string_pretty(&verdict)?);
            if !verdict.is_exactly_once() {
                anyhow::bail!(
                    "{} lost, {} duplicated, {} unexpected",
                    verdict.lost,
                    verdict.duplicated,
                    verdict.unexpected
                );
            }
            Ok(())
        }
        LabCommand::Drill {
            scenario,
            cycles,
            nodes,
            rate,
            settle,
            seed,
            out,
            outage,
            infra_script,
        } => {
            let seed = seed.unwrap_or_else(|| {
                u64::try_from(chrono::Utc::now().timestamp_micros()).unwrap_or_default()
            });
            println!(
                "drill {scenario:?}: {cycles} cycles, {nodes} nodes, {rate} events/s, seed {seed}"
            );
            let report = process_start::tool_runtime()?.block_on(runner::run(DrillPlan {
                scenario,
                cycles,
                nodes,
                rate,
                settle,
                seed,
                out: out.clone(),
                zookeeper_port: config.zookeeper.first_port(),
                session_timeout: Duration::from_millis(config.zookeeper.session_timeout_ms),
                kafka_bootstrap: config.kafka.bootstrap_servers,
                postgres_url: config.postgres.url,
                infra_script,
                outage,
            }))?;
            print!("{}", report.table());
            println!(
                "report: {}/report.json, picture: {}/timeline.svg",
                out.display(),
                out.display()
            );
            if !report.passed() {
                anyhow::bail!("the drill found lost, duplicated or stale-epoch events");
            }
            Ok(())
        }
        LabCommand::Bench {
            events,
            pipeline_events,
            step,
            out,
        } => {
            println!("bench: {events} events, end-to-end steps of {step:?}");
            let plan = BenchPlan {
                events,
                pipeline_events,
                step,
                out: out.clone(),
            };
            let report = process_start::tool_runtime()?.block_on(bench::run(&config, &plan))?;
            print!("{}", report.table());
            println!("report: {}/bench.json", out.display());
            Ok(())
        }
        LabCommand::BenchGroupMember { topic, group } => Ok(process_start::tool_runtime()?
            .block_on(group_failover::run_member(&config.kafka, &topic, &group))?),
    }
}
