//! Owns the load generator: events sent through the gateway at a fixed rate (one
//! event per request, or batches), every acknowledged `message_id` recorded.
//! Requests run concurrently (bounded), so a slow answer does not lower the
//! offered rate.
//!
//! Every event carries a marker unique to this run and request
//! (`attributes.drill_marker`), so the checker can see the same event stored
//! twice under two ids, which the primary key cannot. A request whose outcome
//! is unknown (no answer, or a 503 that says so) has its marker recorded: a
//! row carrying it is explained, any other row of the topic is not.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use uuid::Uuid;

/// Most requests in flight at once.
const MAX_IN_FLIGHT: usize = 256;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Gateway base URL.
    pub gateway: String,
    /// Events per second.
    pub rate: u32,
    /// Events per request (1: `POST /api/logs`, more: `POST /api/logs/batch`).
    pub batch_size: usize,
}

/// The attribute that carries each event's marker.
pub const MARKER_ATTRIBUTE: &str = "drill_marker";

/// What the load produced.
#[derive(Debug, Default, Clone)]
pub struct LoadOutcome {
    /// Every acknowledged id.
    pub acked: Vec<Uuid>,
    /// Requests with no event acknowledged and none of unknown outcome.
    pub refused: u64,
    /// Events refused, by reason: the status and the gateway's error code
    /// (`503 broker_unavailable`, `429 rate_limited`, …).
    pub refusals: BTreeMap<String, u64>,
    /// Markers of the events whose outcome the client cannot know: they may
    /// be stored (once), or not at all.
    pub unknown: Vec<String>,
}

/// What one request came to; neither acknowledged nor unknown: refused.
#[derive(Default)]
struct Answer {
    /// Acknowledged ids.
    acked: Vec<Uuid>,
    /// Markers of events that may or may not be stored.
    unknown: Vec<String>,
    /// Why events were refused, one entry per event.
    refusals: Vec<String>,
}

impl Answer {
    fn unknown(markers: Vec<String>) -> Self {
        Self {
            unknown: markers,
            ..Self::default()
        }
    }
}

/// `503 broker_unavailable`: the status and the error code the gateway gave.
fn refusal(status: u16, body: &Value) -> String {
    format!(
        "{status} {}",
        body["error"].as_str().unwrap_or("without a reason")
    )
}

/// A running load; stop it with [`RunningLoad::finish`].
pub struct RunningLoad {
    stop: watch::Sender<bool>,
    outcome: Arc<Mutex<LoadOutcome>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningLoad {
    /// Starts sending.
    pub fn start(plan: LoadPlan) -> Self {
        let (stop, stopped) = watch::channel(false);
        let outcome = Arc::new(Mutex::new(LoadOutcome::default()));
        let task = tokio::spawn(run(plan, stopped, Arc::clone(&outcome)));
        Self {
            stop,
            outcome,
            task,
        }
    }

    /// Acknowledged so far.
    pub fn acked_count(&self) -> usize {
        lock(&self.outcome).acked.len()
    }

    /// The ids acknowledged so far.
    pub fn acked(&self) -> Vec<Uuid> {
        lock(&self.outcome).acked.clone()
    }

    /// Stops sending, waits for requests in flight, returns what was acknowledged.
    pub async fn finish(self) -> LoadOutcome {
        self.stop.send_replace(true);
        let _ = self.task.await;
        lock(&self.outcome).clone()
    }
}

/// Sends `count` events (or for `duration`) and returns the outcome, with a
/// progress bar on stderr (drawn only on a terminal) that shows what was
/// acknowledged and why events were refused, as it happens.
pub async fn run_for(
    plan: LoadPlan,
    duration: Option<Duration>,
    count: Option<u64>,
) -> LoadOutcome {
    let load = RunningLoad::start(plan.clone());
    let started = Instant::now();
    let progress = match (count, duration) {
        (Some(count), _) => ProgressBar::new(count),
        (None, Some(duration)) => ProgressBar::new(duration.as_secs().max(1)),
        (None, None) => ProgressBar::new_spinner(),
    };
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let acked = load.acked_count() as u64;
        progress.set_position(if count.is_some() {
            acked
        } else {
            started.elapsed().as_secs()
        });
        progress.set_message(summary(&lock(&load.outcome)));
        let done_by_time = duration.is_some_and(|d| started.elapsed() >= d);
        let done_by_count = count.is_some_and(|c| acked >= c);
        if done_by_time || done_by_count {
            break;
        }
    }
    let outcome = load.finish().await;
    progress.finish_with_message(summary(&outcome));
    outcome
}

/// One line: acknowledged, unknown, and refusals by reason.
pub fn summary(outcome: &LoadOutcome) -> String {
    let mut line = format!(
        "acknowledged {}, unknown outcome {}, refused requests {}",
        outcome.acked.len(),
        outcome.unknown.len(),
        outcome.refused
    );
    if !outcome.refusals.is_empty() {
        let reasons: Vec<String> = outcome
            .refusals
            .iter()
            .map(|(reason, events)| format!("{reason}: {events}"))
            .collect();
        line.push_str(&format!(" ({})", reasons.join(", ")));
    }
    line
}

fn lock(outcome: &Mutex<LoadOutcome>) -> std::sync::MutexGuard<'_, LoadOutcome> {
    outcome
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn run(plan: LoadPlan, mut stopped: watch::Receiver<bool>, outcome: Arc<Mutex<LoadOutcome>>) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_IN_FLIGHT)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let batch_size = plan.batch_size.max(1);
    let requests_per_second = (f64::from(plan.rate.max(1)) / batch_size as f64).max(0.1);
    // The first request goes one period in, so a run of n periods sends n
    // requests (an interval's first tick fires at once: one request too many).
    let period = Duration::from_secs_f64(1.0 / requests_per_second);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let run_id = Uuid::now_v7().simple().to_string();
    let mut sequence = 0_u64;
    while !*stopped.borrow() {
        // A stop during the wait ends the run before the tick's request.
        tokio::select! {
            biased;
            changed = stopped.changed() => {
                if changed.is_err() || *stopped.borrow() {
                    break;
                }
                continue;
            }
            _ = ticker.tick() => {}
        }
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let events: Vec<Value> = (0..batch_size)
            .map(|_| {
                sequence += 1;
                json!({
                    "level": "INFO",
                    "message": format!("drill event {sequence}"),
                    "source": format!("drill-{}", sequence % 8),
                    "attributes": {MARKER_ATTRIBUTE: format!("{run_id}:{sequence}")},
                })
            })
            .collect();
        let http = http.clone();
        let gateway = plan.gateway.clone();
        let outcome = Arc::clone(&outcome);
        tokio::spawn(async move {
            let answer = send(&http, &gateway, events).await;
            let mut outcome = lock(&outcome);
            if answer.acked.is_empty() && answer.unknown.is_empty() {
                outcome.refused += 1;
            }
            outcome.acked.extend(answer.acked);
            outcome.unknown.extend(answer.unknown);
            for reason in answer.refusals {
                *outcome.refusals.entry(reason).or_default() += 1;
            }
            drop(permit);
        });
    }
    // Wait for every request in flight to be answered.
    let _ = permits.acquire_many(MAX_IN_FLIGHT as u32).await;
}

/// Publishes one event with `message` through the gateway; `Some(id)` when acknowledged.
pub async fn publish_one(http: &reqwest::Client, gateway: &str, message: &str) -> Option<Uuid> {
    let event = json!({"level": "INFO", "message": message, "source": "drill"});
    send(http, gateway, vec![event]).await.acked.pop()
}

fn marker_of(event: &Value) -> String {
    event["attributes"][MARKER_ATTRIBUTE]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Whether an answer's body says the event may have been stored.
fn outcome_unknown(body: &Value) -> bool {
    body["outcome"] == "unknown"
}

async fn send(http: &reqwest::Client, gateway: &str, events: Vec<Value>) -> Answer {
    let markers = || events.iter().map(marker_of).collect::<Vec<_>>();
    let request = match events.as_slice() {
        [event] => http.post(format!("{gateway}/api/logs")).json(event),
        _ => http.post(format!("{gateway}/api/logs/batch")).json(&events),
    };
    let Ok(response) = request.send().await else {
        // No answer: the request may have been published before it failed.
        return Answer::unknown(markers());
    };
    let status = response.status();
    let Ok(answer) = response.json::<Value>().await else {
        return if status.is_success() {
            Answer::unknown(markers())
        } else {
            Answer {
                refusals: vec![format!("{} without a JSON body", status.as_u16()); events.len()],
                ..Answer::default()
            }
        };
    };
    let mut outcome = Answer::default();
    if let [event] = events.as_slice() {
        match answer["messageId"].as_str().and_then(|id| id.parse().ok()) {
            Some(id) if status == reqwest::StatusCode::ACCEPTED => outcome.acked.push(id),
            _ if outcome_unknown(&answer) => outcome.unknown.push(marker_of(event)),
            _ => outcome.refusals.push(refusal(status.as_u16(), &answer)),
        }
        return outcome;
    }
    let Some(results) = answer["results"].as_array() else {
        // No per-item results: the whole batch was refused (too large,
        // rate-limited, overloaded).
        outcome.refusals = vec![refusal(status.as_u16(), &answer); events.len()];
        return outcome;
    };
    for result in results {
        let index = result["index"]
            .as_u64()
            .and_then(|i| usize::try_from(i).ok());
        match result["messageId"].as_str().and_then(|id| id.parse().ok()) {
            Some(id) if result["status"] == 202 => outcome.acked.push(id),
            _ if outcome_unknown(result) => outcome
                .unknown
                .extend(index.and_then(|i| events.get(i)).map(marker_of)),
            _ => outcome.refusals.push(refusal(
                result["status"]
                    .as_u64()
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(0),
                result,
            )),
        }
    }
    outcome
}
