//! Owns what the `chaos` drill adds around each fault: faults that overlap
//! it, and hostile input while it happens, all drawn from the drill's seed so
//! a failing run replays.
//!
//! Per cycle, before the main fault (any fault the drill knows, dependency
//! outages included):
//! - in a quarter of the cycles, a standby is killed (SIGKILL) and restarted
//!   with its wall clock skewed by ±3 s or ±1 h ([`ClockSkew`]); it keeps that
//!   clock, and may lead later, until it is itself killed;
//! - in half of them, a standby is paused (SIGSTOP) for a random 100–1,500 ms,
//!   which may be the very node that should take over;
//! - in one in sixteen (up to [`MAX_ADDED_PARTITIONS`]), a partition is added to
//!   the topic (with a broker restart: `scripts/infra add-partition` says why)
//!   and a valid event is written straight into it: the leader must find the
//!   partition and store the event;
//! - always, hostile-but-valid events go through the gateway (timestamps at
//!   PostgreSQL's edges, control characters, deep and odd attributes, some that
//!   must be refused), and a poison record is written straight into the topic.
//!
//! After the cycle, the liveness check: everything acknowledged so far is
//! stored within [`LIVENESS_BOUND`], or the cycle counts as wedged.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nix::sys::signal::{kill, Signal};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::lab::drill::clock_skew::{ClockSkew, SkewedClocks};
use crate::lab::drill::infra_control::InfraControl;
use crate::lab::drill::load::MARKER_ATTRIBUTE;
use crate::lab::drill::local_cluster::LocalCluster;
use crate::lab::drill::scenario::FaultSequence;
use crate::lab::drill::verify::stored_among;
use crate::lab::drill::DrillError;
use crate::log_event::{Level, LogEvent};

/// How soon after a cycle settled every acknowledged event must be stored.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(10);

/// Most partitions one drill adds to its topic (each is fetched by every later
/// leader, so the count stays small).
pub const MAX_ADDED_PARTITIONS: usize = 9;

/// The wall-clock skews a restarted standby is given: NTP drift, and a clock
/// set an hour wrong.
const SKEWS_SECONDS: [i64; 4] = [-3600, -3, 3, 3600];

/// How long a restarted standby may take to stand by, and the gateway to
/// accept events again after the broker restart of an added partition.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the chaos drill injects with, besides the cluster.
pub struct Chaos {
    /// Writes poison records into the topic.
    producer: FutureProducer,
    /// The broker, for a producer that sees an added partition.
    kafka_bootstrap: String,
    /// Starts a node with a skewed clock.
    skew: ClockSkew,
    /// Adds partitions.
    infra: InfraControl,
    /// Partitions added so far.
    added_partitions: usize,
}

impl Chaos {
    /// Tools for a chaos drill against the broker at `kafka_bootstrap`.
    pub fn new(
        kafka_bootstrap: &str,
        skew: ClockSkew,
        infra: InfraControl,
    ) -> Result<Self, DrillError> {
        Ok(Self {
            producer: rdkafka::ClientConfig::new()
                .set("bootstrap.servers", kafka_bootstrap)
                .create()
                .map_err(|error| DrillError::Fault(format!("a poison producer: {error}")))?,
            kafka_bootstrap: kafka_bootstrap.to_owned(),
            skew,
            infra,
            added_partitions: 0,
        })
    }
}

/// What was done to the cluster besides the main fault.
#[derive(Debug, Default)]
pub struct Overlap {
    /// When the first of them was injected.
    pub started_at: Option<DateTime<Utc>>,
    /// Faults injected.
    pub faults: usize,
    /// Until when a standby is paused (it may cause a leadership change if
    /// the main fault comes before then).
    pub paused_until: Option<DateTime<Utc>>,
    /// The skew, in seconds, of a standby killed and restarted this cycle
    /// (may cause no leadership change).
    pub skewed_standby: Option<i64>,
    /// A partition added to the topic this cycle, with a broker restart (may
    /// cause no leadership change).
    pub added_partition: Option<i32>,
    /// Events the gateway acknowledged, and the one written into an added
    /// partition: they must be stored too.
    pub acked: Vec<Uuid>,
    /// Markers of hostile events whose outcome is unknown (no answer, or a
    /// 503 that says so): stored once or not at all.
    pub unknown: Vec<String>,
    /// The task that resumes the paused standby.
    resume: Option<tokio::task::JoinHandle<()>>,
}

impl Overlap {
    /// Waits until the paused standby was resumed.
    pub async fn finish(&mut self) {
        if let Some(resume) = self.resume.take() {
            let _ = resume.await;
        }
    }
}

/// Restarts a standby with a skewed clock (recorded in `skewed`), pauses one,
/// adds a partition, and sends hostile events and a poison record, as the
/// draws from `sequence` say; `leader` is left alone.
pub async fn overlap(
    cluster: &mut LocalCluster,
    leader: usize,
    sequence: &mut FaultSequence,
    chaos: &mut Chaos,
    skewed: &mut SkewedClocks,
) -> Result<Overlap, DrillError> {
    let mut done = Overlap {
        started_at: Some(Utc::now()),
        ..Overlap::default()
    };
    let standbys: Vec<usize> = (0..cluster.nodes.len())
        .filter(|slot| *slot != leader && cluster.nodes[*slot].is_some())
        .collect();
    if !standbys.is_empty() && sequence.next_u64() % 4 == 0 {
        let slot = standbys[usize::try_from(sequence.next_u64()).unwrap_or(0) % standbys.len()];
        let skew =
            SKEWS_SECONDS[usize::try_from(sequence.next_u64()).unwrap_or(0) % SKEWS_SECONDS.len()];
        cluster.signal(slot, Signal::SIGKILL)?;
        drop(cluster.take_node(slot));
        cluster.start_node_with(slot, &chaos.skew.env(skew))?;
        cluster.wait_for_standby(slot, RECOVERY_TIMEOUT).await?;
        let instance = cluster
            .status(slot)
            .await
            .map(|status| status.failover.instance_id)
            .ok_or_else(|| DrillError::Timeout(format!("the instance id of node {slot}")))?;
        skewed.record(instance, skew);
        done.faults += 1;
        done.skewed_standby = Some(skew);
    }
    if !standbys.is_empty() && sequence.next_u64() % 2 == 0 {
        let slot = standbys[usize::try_from(sequence.next_u64()).unwrap_or(0) % standbys.len()];
        let pause = Duration::from_millis(100 + sequence.next_u64() % 1_400);
        if let Some(node) = &cluster.nodes[slot] {
            let pid = node.pid();
            kill(pid, Signal::SIGSTOP)?;
            done.faults += 1;
            done.paused_until = chrono::Duration::from_std(pause)
                .ok()
                .map(|pause| Utc::now() + pause);
            done.resume = Some(tokio::spawn(async move {
                tokio::time::sleep(pause).await;
                if let Err(error) = kill(pid, Signal::SIGCONT) {
                    tracing::warn!(%error, "could not resume a paused standby");
                }
            }));
        }
    }
    if chaos.added_partitions < MAX_ADDED_PARTITIONS && sequence.next_u64() % 16 == 0 {
        // Costs a broker restart here (see `scripts/infra add-partition`).
        let partition = chaos.infra.add_partition(&cluster.topic)?;
        chaos.added_partitions += 1;
        done.faults += 1;
        cluster.wait_for_gateway_accepting(RECOVERY_TIMEOUT).await?;
        let marker = format!("chaos-partition:{partition}");
        done.acked.push(
            produce_event_into(&chaos.kafka_bootstrap, &cluster.topic, partition, &marker).await?,
        );
        done.added_partition = Some(partition);
    }
    let http = reqwest::Client::new();
    for _ in 0..4 {
        let draw = sequence.next_u64();
        let marker = format!("chaos:{draw}");
        let mut body = hostile_event(draw);
        if let Some(attributes) = body
            .as_object_mut()
            .map(|event| event.entry("attributes").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            attributes.insert(MARKER_ATTRIBUTE.to_owned(), json!(marker));
        }
        let answer = http
            .post(format!("{}/api/logs", cluster.gateway.base_url))
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let Ok(answer) = answer else {
            done.unknown.push(marker);
            continue;
        };
        let status = answer.status();
        let answer: Value = answer.json().await.unwrap_or_default();
        if status == reqwest::StatusCode::ACCEPTED {
            done.acked.extend(
                answer["messageId"]
                    .as_str()
                    .and_then(|id| id.parse::<Uuid>().ok()),
            );
        } else if answer["outcome"] == "unknown" {
            done.unknown.push(marker);
        }
    }
    let poison: [&[u8]; 3] = [
        b"\xff\xfe not json",
        br#"{"message_id":"00000000-0000-0000-0000-000000000000","level":"INFO"}"#,
        b"{\"level\":\"INFO\",\"message\":\"m\",\"source\":\"s\",\"unknown\\n\\u001b[31m\":1}",
    ];
    let record = poison[usize::try_from(sequence.next_u64()).unwrap_or(0) % poison.len()];
    chaos
        .producer
        .send(
            FutureRecord::to(&cluster.topic)
                .key("chaos\0key")
                .payload(record),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| DrillError::Fault(format!("producing a poison record: {error}")))?;
    Ok(done)
}

/// Writes a valid event carrying `marker` straight into `partition` of
/// `topic`, past the gateway (as another producer would); its message id.
/// A fresh producer, so that its first metadata already shows a partition
/// added a moment ago.
pub async fn produce_event_into(
    kafka_bootstrap: &str,
    topic: &str,
    partition: i32,
    marker: &str,
) -> Result<Uuid, DrillError> {
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_bootstrap)
        .create()
        .map_err(|error| DrillError::Fault(format!("a producer: {error}")))?;
    let now = Utc::now();
    let event = LogEvent {
        message_id: Uuid::now_v7(),
        level: Level::Info,
        message: format!("written into partition {partition}"),
        source: "chaos".to_owned(),
        timestamp: now,
        received_at: now,
        attributes: Map::from_iter([(MARKER_ATTRIBUTE.to_owned(), json!(marker))]),
    };
    let payload = serde_json::to_vec(&event)
        .map_err(|error| DrillError::Fault(format!("encoding an event: {error}")))?;
    producer
        .send(
            FutureRecord::to(topic)
                .partition(partition)
                .key(&event.message_id.to_string())
                .payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(error, _)| {
            DrillError::Fault(format!("producing into partition {partition}: {error}"))
        })?;
    Ok(event.message_id)
}

/// A valid-JSON event from a catalogue of hostile shapes; some must be
/// accepted and stored, some refused with a 4xx.
fn hostile_event(draw: u64) -> Value {
    let deep = (0..40).fold(json!("bottom"), |inner, _| json!({ "d": inner }));
    let shapes = [
        json!({"level":"INFO","message":"m","source":"s","timestamp":"-5000-01-01T00:00:00Z"}),
        json!({"level":"INFO","message":"m","source":"s","timestamp":"0001-01-01T00:00:00Z"}),
        json!({"level":"INFO","message":"m","source":"s","timestamp":"9999-12-31T23:59:59.999999999Z"}),
        json!({"level":"warn","message":"line\nINFO forged\u{1b}[31m","source":"s\tx"}),
        json!({"level":"ERROR","message":"a\u{0}b","source":"s"}),
        json!({"level":"INFO","message":"\u{202e}rtl \u{feff}","source":"ü","attributes":{"k\n":1e308,"n":-0.0,"u":u64::MAX}}),
        json!({"level":"FATAL","message":"deep","source":"s","attributes":{"deep": deep}}),
        json!({"level":"NOTICE","message":"m","source":"s"}),
    ];
    let index = usize::try_from(draw).unwrap_or(0) % shapes.len();
    shapes[index].clone()
}

/// Whether every id of `acked` is in `log_events` within [`LIVENESS_BOUND`].
pub async fn stored_within_bound(
    postgres: &tokio_postgres::Client,
    acked: &[Uuid],
) -> Result<bool, DrillError> {
    let deadline = tokio::time::Instant::now() + LIVENESS_BOUND;
    let wanted: HashSet<&Uuid> = acked.iter().collect();
    loop {
        if stored_among(postgres, acked).await?.len() >= wanted.len() {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
