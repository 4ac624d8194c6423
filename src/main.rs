//! The `understudy` binary: parses the command line, loads the configuration,
//! sets up logging and runs the chosen subcommand. The only place `anyhow` is used.

use anyhow::Context;
use clap::Parser;

use understudy::cli::{Cli, Command, MigrateDirection};
use understudy::config::{Config, Role};
use understudy::postgres::migrations::{self, MigrationStep};
use understudy::telemetry::tracing_setup;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let role = match cli.command {
        Command::Gateway => Role::Gateway,
        Command::Node => Role::Node,
        Command::Migrate { .. } | Command::Config => Role::Tool,
    };
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
            let url = database_url.unwrap_or(config.postgres.url);
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(migrate(&url, direction))
        }
        Command::Config => {
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
    }
}

async fn migrate(url: &str, direction: MigrateDirection) -> anyhow::Result<()> {
    let step = match direction {
        MigrateDirection::Up => MigrationStep::UpAll,
        MigrateDirection::Down => MigrationStep::DownOne,
        MigrateDirection::DownAll => MigrationStep::DownAll,
        MigrateDirection::Status => {
            for version in migrations::applied(url).await? {
                println!("applied {version}");
            }
            return Ok(());
        }
    };
    let versions = migrations::migrate(url, step).await?;
    if versions.is_empty() {
        println!("nothing to do");
    }
    for version in versions {
        println!("{direction:?} {version}");
    }
    Ok(())
}
