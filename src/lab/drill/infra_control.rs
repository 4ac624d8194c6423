//! Owns stopping and starting the local infrastructure for the dependency
//! outage drills, through the same `scripts/infra down|up <service>` that
//! started it: the drill restarts ZooKeeper, the broker, Redis and PostgreSQL
//! the way an operator (or a crash and a supervisor) would, and it adds a
//! partition to a running topic (`scripts/infra add-partition`).

use std::path::PathBuf;
use std::process::Command;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::lab::drill::DrillError;

/// A service of the local infrastructure, named as `scripts/infra` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// ZooKeeper.
    Zookeeper,
    /// The Kafka-protocol broker.
    Kafka,
    /// Redis.
    Redis,
    /// PostgreSQL.
    Postgres,
}

impl Service {
    /// The port `scripts/infra` starts the service on.
    pub fn port(self) -> u16 {
        match self {
            Service::Zookeeper => 2181,
            Service::Kafka => 9092,
            Service::Redis => 6379,
            Service::Postgres => 5432,
        }
    }

    /// Whether something accepts connections on the service's port now.
    pub async fn accepts(self) -> bool {
        tokio::time::timeout(
            std::time::Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", self.port())),
        )
        .await
        .is_ok_and(|connected| connected.is_ok())
    }

    /// Whether the service serves now. ZooKeeper binds its port before it
    /// has loaded its database, and closes every session's connection until
    /// then (measured: 3 s on a saturated machine); only its `srvr` answer
    /// says it serves.
    pub async fn serves(self) -> bool {
        if self != Service::Zookeeper {
            return self.accepts().await;
        }
        let answer = tokio::time::timeout(std::time::Duration::from_millis(500), async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port())).await?;
            stream.write_all(b"srvr").await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(answer)
        })
        .await;
        matches!(answer, Ok(Ok(answer)) if answer.starts_with(b"Zookeeper version"))
    }

    fn name(self) -> &'static str {
        match self {
            Service::Zookeeper => "zookeeper",
            Service::Kafka => "kafka",
            Service::Redis => "redis",
            Service::Postgres => "postgres",
        }
    }
}

/// Runs the infrastructure script.
#[derive(Debug, Clone)]
pub struct InfraControl {
    script: PathBuf,
}

impl InfraControl {
    /// Control through `script` (normally `scripts/infra`).
    pub fn new(script: PathBuf) -> Self {
        Self { script }
    }

    /// Stops `service`; returns when it is down. A service this script did not
    /// start is left alone by it, which would make the drill measure nothing:
    /// that is an error.
    pub fn stop(&self, service: Service) -> Result<(), DrillError> {
        self.run(&["down", service.name()])?;
        let status = self.run(&["status", service.name()])?;
        if status.contains(&format!("{}: stopped", service.name())) {
            Ok(())
        } else {
            Err(DrillError::Fault(format!(
                "{} is still running after `{} down {}` (not started by that script?)",
                service.name(),
                self.script.display(),
                service.name()
            )))
        }
    }

    /// Starts `service`; returns when it answers.
    pub fn start(&self, service: Service) -> Result<(), DrillError> {
        self.run(&["up", service.name()]).map(drop)
    }

    /// Adds one partition to `topic` on the running broker; the new
    /// partition's id.
    pub fn add_partition(&self, topic: &str) -> Result<i32, DrillError> {
        let printed = self.run(&["add-partition", topic])?;
        printed.trim().parse().map_err(|_| {
            DrillError::Fault(format!(
                "add-partition {topic} printed {printed:?}, not a partition id"
            ))
        })
    }

    /// Runs the script with `args`; its standard output.
    fn run(&self, args: &[&str]) -> Result<String, DrillError> {
        let command = format!("{} {}", self.script.display(), args.join(" "));
        let output = Command::new(&self.script)
            .args(args)
            .output()
            .map_err(|error| DrillError::Fault(format!("{command}: {error}")))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(DrillError::Fault(format!(
                "{command}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }
}
