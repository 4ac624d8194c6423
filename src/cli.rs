//! Owns the command line of `understudy`, the binary operators deploy: the
//! gateway, the node, migrations and the effective configuration, nothing that
//! injects faults or generates load (those are `understudy-lab`'s, see
//! [`crate::lab::cli`]). Parsing only; `main.rs` runs what was asked.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Active-passive failover runtime for log pipelines.
#[derive(Debug, Parser)]
#[command(name = "understudy", version, about)]
pub struct Cli {
    /// TOML configuration file; environment variables `UNDERSTUDY_<SECTION>__<KEY>` override it.
    #[arg(long, global = true, env = "UNDERSTUDY_CONFIG")]
    pub config: Option<PathBuf>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP gateway that publishes log events to Kafka.
    Gateway,
    /// Run a consumer node (one leads, the others stand by).
    Node,
    /// Move the PostgreSQL schema.
    Migrate {
        /// Direction.
        #[arg(value_enum, default_value_t = MigrateDirection::Up)]
        direction: MigrateDirection,
        /// Database URL; defaults to `postgres.url` from the configuration.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Print the effective configuration (after file and environment) as TOML.
    Config,
}

/// What `understudy migrate` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MigrateDirection {
    /// Apply every pending migration.
    Up,
    /// Revert the newest migration.
    Down,
    /// Revert every migration.
    DownAll,
    /// List the applied migrations.
    Status,
}
