//! Owns the comparison with what users would otherwise pick: a plain Kafka
//! consumer group on the same broker. Two member processes share a
//! two-partition topic under steady production; one is killed (SIGKILL, then
//! another SIGTERM) and the clock runs until the survivor consumes a record of
//! a partition the dead member held. Members use the shortest session Apache
//! Kafka accepts (`group.min.session.timeout.ms`, 6 s), the best case a user
//! could configure.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::Message;
use serde::Serialize;

use crate::config::KafkaConfig;
use crate::lab::bench::BenchError;
use crate::shared::kafka::client_config;

/// Session timeout of the members: Apache Kafka's lowest allowed.
const SESSION_TIMEOUT_MS: u32 = 6_000;
/// How long to wait for a takeover before calling it missing.
const TAKEOVER_LIMIT: Duration = Duration::from_secs(30);

/// What the consumer group did.
#[derive(Debug, Clone, Serialize)]
pub struct GroupFailoverResult {
    /// The members' session timeout, ms.
    pub session_timeout_ms: u32,
    /// SIGKILL of a member to the survivor consuming its partitions, ms (none
    /// within the limit when absent).
    pub sigkill_takeover_ms: Option<u64>,
    /// SIGTERM (the member leaves the group) to the same, ms.
    pub sigterm_takeover_ms: Option<u64>,
    /// The limit waited, s.
    pub limit_s: u64,
}

/// Runs one consumer group member until SIGTERM: subscribes to `topic` as
/// part of `group` and prints `consumed <partition> <offset>` per record.
pub async fn run_member(kafka: &KafkaConfig, topic: &str, group: &str) -> Result<(), BenchError> {
    let consumer: StreamConsumer = client_config(kafka)
        .set("group.id", group)
        .set("session.timeout.ms", SESSION_TIMEOUT_MS.to_string())
        .set(
            "heartbeat.interval.ms",
            (SESSION_TIMEOUT_MS / 3).to_string(),
        )
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", kafka.fetch_wait_max_ms.to_string())
        .create()?;
    consumer.subscribe(&[topic])?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| BenchError::Failed(error.to_string()))?;
    loop {
        tokio::select! {
            message = consumer.recv() => match message {
                Ok(message) => println!("consumed {} {}", message.partition(), message.offset()),
                Err(error) => eprintln!("consumer error: {error}"),
            },
            _ = terminate.recv() => break,
        }
    }
    // Dropping the consumer closes it: it leaves the group, so the survivor
    // is reassigned at once instead of after the session timeout.
    drop(consumer);
    Ok(())
}

/// One member process and the partitions it reports consuming.
struct Member {
    child: Child,
    records: mpsc::Receiver<(Instant, i32)>,
}

impl Member {
    fn start(topic: &str, group: &str) -> Result<Self, BenchError> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["bench-group-member", "--topic", topic, "--group", group])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Failed("member has no stdout".into()))?;
        let (sender, records) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let partition = line
                    .strip_prefix("consumed ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|p| p.parse().ok());
                if let Some(partition) = partition {
                    if sender.send((Instant::now(), partition)).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Self { child, records })
    }

    /// Partitions consumed over `window` from now.
    fn partitions_during(&self, window: Duration) -> BTreeSet<i32> {
        let deadline = Instant::now() + window;
        let mut seen = BTreeSet::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.records.recv_timeout(left) {
                Ok((_, partition)) => {
                    seen.insert(partition);
                }
                Err(_) => break,
            }
        }
        seen
    }

    /// Time from `since` until a record of one of `partitions` arrives.
    fn first_of(&self, partitions: &BTreeSet<i32>, since: Instant) -> Option<Duration> {
        let deadline = since + TAKEOVER_LIMIT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.records.recv_timeout(left) {
                Ok((at, partition)) if partitions.contains(&partition) && at >= since => {
                    return Some(at - since)
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    }

    fn signal(&self, signal: Signal) -> Result<(), BenchError> {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        kill(pid, signal).map_err(|error| BenchError::Failed(error.to_string()))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the comparison on `topic` (two partitions, created by the caller).
pub async fn compare(kafka: &KafkaConfig, topic: &str) -> Result<GroupFailoverResult, BenchError> {
    let producer: FutureProducer = client_config(kafka).create()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let topic_name = topic.to_owned();
    let production = tokio::spawn(async move {
        let mut n = 0_u64;
        while !*stopped.borrow() {
            for partition in 0..2 {
                let payload = n.to_string();
                let record = FutureRecord::<(), _>::to(&topic_name)
                    .partition(partition)
                    .payload(&payload);
                let _ = producer.send(record, Duration::from_secs(1)).await;
            }
            n += 1;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = stopped.changed() => {}
            }
        }
    });
    let topic_name = topic.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        Ok(GroupFailoverResult {
            session_timeout_ms: SESSION_TIMEOUT_MS,
            sigkill_takeover_ms: takeover_after(&topic_name, Signal::SIGKILL)?,
            sigterm_takeover_ms: takeover_after(&topic_name, Signal::SIGTERM)?,
            limit_s: TAKEOVER_LIMIT.as_secs(),
        })
    })
    .await
    .map_err(|error| BenchError::Failed(error.to_string()))
    .and_then(|result| result);
    stop.send_replace(true);
    let _ = production.await;
    result
}

/// In a group of its own, starts two members, waits until they split the
/// partitions, sends `signal` to one and times the other's takeover of its
/// partitions (none within [`TAKEOVER_LIMIT`]: `None`).
fn takeover_after(topic: &str, signal: Signal) -> Result<Option<u64>, BenchError> {
    let group = format!("bench-group-{}", uuid::Uuid::now_v7().simple());
    let survivor = Member::start(topic, &group)?;
    survivor.partitions_during(Duration::from_secs(2));
    let victim = Member::start(topic, &group)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let victims = loop {
        let held = victim.partitions_during(Duration::from_secs(1));
        let kept = survivor.partitions_during(Duration::from_millis(200));
        if !held.is_empty() && !kept.is_empty() && held.is_disjoint(&kept) {
            break held;
        }
        if Instant::now() > deadline {
            return Err(BenchError::Failed(
                "the group never split the partitions between its two members".into(),
            ));
        }
    };
    while survivor.records.try_recv().is_ok() {}
    let since = Instant::now();
    victim.signal(signal)?;
    let waited = survivor.first_of(&victims, since);
    Ok(waited.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}
