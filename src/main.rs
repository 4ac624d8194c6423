//! The `understudy` binary: parses the command line, loads the configuration,
//! sets up logging and runs the chosen subcommand. The only place `anyhow` is used.

use anyhow::Context;
use clap::Parser;

use tokio_postgres_rustls::MakeRustlsConnect;
use understudy::bench::{self, group_failover, BenchPlan};
use understudy::cli::{Cli, Command, MigrateDirection};
use understudy::config::{Config, Role};
use understudy::drill::load::{self, LoadPlan};
use understudy::drill::runner::{self, DrillPlan};
use understudy::drill::{self, verify};
use understudy::postgres::migrations::{self, MigrationStep};
use understudy::postgres::tls;
use understudy::telemetry::tracing_setup;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let role = match cli.command {
        Command::Gateway => Role::Gateway,
        Command::Node => Role::Node,
        Command::Migrate { .. }
        | Command::Config
        | Command::Loadgen { .. }
        | Command::Verify { .. }
        | Command::Drill { .. }
        | Command::Bench { .. }
        | Command::BenchGroupMember { .. } => Role::Tool,
    };
    // Two rustls crypto providers are linked (ring, and aws-lc through the
    // ZooKeeper and HTTP clients); rustls then picks no process default, and
    // the clients that take it (ZooKeeper's, Redis's) would panic without one.
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        anyhow::bail!("a TLS crypto provider was installed before start");
    }
    let config = Config::load(cli.config.as_deref(), role)?;
    let service = match role {
        Role::Gateway => "understudy-gateway",
        Role::Node => "understudy-node",
        Role::Tool => "understudy",
    };
    let _tracing = tracing_setup::init(service, &config.telemetry)?;
    match cli.command {
        Command::Gateway => actix_web::rt::System::new()
            .block_on(understudy::web::gateway::run(config))
            .context("gateway failed"),
        Command::Node => {
            // Actors run on the system arbiter; spawned tasks (the ZooKeeper session
            // among them) on worker threads, so pings never wait behind actor work.
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            actix::System::with_tokio_rt(move || runtime)
                .block_on(understudy::node::run(config))
                .context("node failed")
        }
        Command::Migrate {
            direction,
            database_url,
        } => {
            let url = database_url.unwrap_or_else(|| config.postgres.migrations_url().to_owned());
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(migrate(&url, tls::connector(&config.postgres)?, direction))
        }
        Command::Config => {
            print!("{}", toml::to_string_pretty(&config.redacted())?);
            Ok(())
        }
        Command::Loadgen {
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
            let outcome = runtime()?.block_on(load::run_for(
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
        Command::Verify { acked, topic } => {
            let ids = verify::read_ids(&acked)?;
            let unknown = verify::read_markers(&verify::unknown_path(&acked))?;
            let topic = topic.unwrap_or(config.kafka.topic);
            let verdict = runtime()?.block_on(async {
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
        Command::Drill {
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
            let report = runtime()?.block_on(runner::run(DrillPlan {
                scenario,
                cycles,
                nodes,
                rate,
                settle,
                seed,
                out: out.clone(),
                zookeeper_port: config.zookeeper.first_port(),
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
        Command::Bench {
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
            let report = runtime()?.block_on(bench::run(&config, &plan))?;
            print!("{}", report.table());
            println!("report: {}/bench.json", out.display());
            Ok(())
        }
        Command::BenchGroupMember { topic, group } => {
            Ok(runtime()?.block_on(group_failover::run_member(&config.kafka, &topic, &group))?)
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

async fn migrate(
    url: &str,
    tls: Option<MakeRustlsConnect>,
    direction: MigrateDirection,
) -> anyhow::Result<()> {
    let step = match direction {
        MigrateDirection::Up => MigrationStep::UpAll,
        MigrateDirection::Down => MigrationStep::DownOne,
        MigrateDirection::DownAll => MigrationStep::DownAll,
        MigrateDirection::Status => {
            for version in migrations::applied(url, tls).await? {
                println!("applied {version}");
            }
            return Ok(());
        }
    };
    let versions = migrations::migrate(url, tls, step).await?;
    if versions.is_empty() {
        println!("nothing to do");
    }
    for version in versions {
        println!("{direction:?} {version}");
    }
    Ok(())
}
