//! The `understudy` binary operators deploy: parses the command line, loads
//! the configuration, sets up logging and runs the gateway, a node, migrations
//! or the configuration print. Drills and benchmarks are `understudy-lab`'s.
//! The only place besides the lab's `main` that uses `anyhow`.

use anyhow::Context;
use clap::Parser;

use tokio_postgres_rustls::MakeRustlsConnect;
use understudy::cli::{Cli, Command, MigrateDirection};
use understudy::config::Role;
use understudy::process_start;
use understudy::shared::postgres::migrations::{self, MigrationStep};
use understudy::shared::postgres::tls;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let role = match cli.command {
        Command::Gateway => Role::Gateway,
        Command::Node => Role::Node,
        Command::Migrate { .. } | Command::Config => Role::Tool,
    };
    let (config, _tracing) = process_start::start(cli.config.as_deref(), role)?;
    match cli.command {
        Command::Gateway => actix_web::rt::System::new()
            .block_on(understudy::gateway::run(config))
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
    }
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
