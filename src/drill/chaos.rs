//! Owns what the `chaos` drill adds around each leader fault: faults that
//! overlap it, and hostile input while it happens, all drawn from the drill's
//! seed so a failing run replays.
//!
//! Per cycle, before the leader fault: a standby is paused (SIGSTOP) for a
//! random 100–1,500 ms, which may be the very node that should take over;
//! hostile-but-valid events go through the gateway (timestamps at PostgreSQL's
//! edges, control characters, deep and odd attributes, some that must be
//! refused); and poison records are written straight into the topic. After
//! the cycle, the liveness check: everything acknowledged so far is stored
//! within [`LIVENESS_BOUND`], or the cycle counts as wedged.

use std::collections::HashSet;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::drill::load::MARKER_ATTRIBUTE;
use crate::drill::local_cluster::LocalCluster;
use crate::drill::scenario::FaultSequence;
use crate::drill::verify::stored_among;
use crate::drill::DrillError;

/// How soon after a cycle settled every acknowledged event must be stored.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(10);

/// What was done to the cluster besides the leader fault.
#[derive(Debug, Default)]
pub struct Overlap {
    /// Faults that overlap the leader fault (each may cause one more change).
    pub faults: usize,
    /// Hostile events the gateway acknowledged: they must be stored too.
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

/// Pauses a standby of `cluster` (not `leader`) for a while, and sends hostile
/// events and poison records; draws every choice from `sequence`.
pub async fn overlap(
    cluster: &LocalCluster,
    leader: usize,
    sequence: &mut FaultSequence,
    producer: &FutureProducer,
) -> Result<Overlap, DrillError> {
    let mut done = Overlap::default();
    let standbys: Vec<usize> = (0..cluster.nodes.len())
        .filter(|slot| *slot != leader && cluster.nodes[*slot].is_some())
        .collect();
    if !standbys.is_empty() && sequence.next_u64() % 2 == 0 {
        let slot = standbys[usize::try_from(sequence.next_u64()).unwrap_or(0) % standbys.len()];
        let pause = Duration::from_millis(100 + sequence.next_u64() % 1_400);
        if let Some(node) = &cluster.nodes[slot] {
            let pid = node.pid();
            kill(pid, Signal::SIGSTOP)?;
            done.faults += 1;
            done.resume = Some(tokio::spawn(async move {
                tokio::time::sleep(pause).await;
                if let Err(error) = kill(pid, Signal::SIGCONT) {
                    tracing::warn!(%error, "could not resume a paused standby");
                }
            }));
        }
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
                answer["message_id"]
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
    producer
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
