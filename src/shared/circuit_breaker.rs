//! Owns the circuit breakers in front of the dependencies (Kafka at the
//! gateway; PostgreSQL and Redis at a node). A breaker opens after a run of
//! consecutive failures, refuses calls at once while open (a 503 at the
//! gateway, a paused fetch at the leader, a skipped heartbeat write), and
//! half-opens after a jittered, growing delay to let probe calls through; one
//! success closes it. The state machine is failsafe's; this module adds the
//! state as a value the status endpoints and metrics can read.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use failsafe::failure_policy::{consecutive_failures, ConsecutiveFailures};
use failsafe::{Instrument, StateMachine};
use serde::{Deserialize, Serialize};

use crate::config::CircuitBreakerConfig;

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Probe calls go through; the next result decides.
    HalfOpen,
    /// Calls are refused without being tried.
    Open,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => BreakerState::HalfOpen,
            2 => BreakerState::Open,
            _ => BreakerState::Closed,
        }
    }
}

/// The breaker's state as failsafe reports it, readable at any time.
#[derive(Debug, Default)]
struct StateRecord {
    state: AtomicU8,
    rejected: AtomicU64,
    dependency: &'static str,
}

/// failsafe's instrument hook, writing into the shared [`StateRecord`].
#[derive(Debug, Clone)]
struct Recorder(Arc<StateRecord>);

impl Recorder {
    fn set(&self, state: BreakerState) {
        let previous = self.0.state.swap(state.gauge() as u8, Ordering::Relaxed);
        if previous != state.gauge() as u8 {
            match state {
                BreakerState::Open => {
                    tracing::warn!(dependency = self.0.dependency, "circuit breaker opened")
                }
                BreakerState::HalfOpen => {
                    tracing::info!(
                        dependency = self.0.dependency,
                        "circuit breaker half-open: probing"
                    )
                }
                BreakerState::Closed => {
                    tracing::info!(dependency = self.0.dependency, "circuit breaker closed")
                }
            }
        }
    }
}

impl Instrument for Recorder {
    fn on_call_rejected(&self) {
        self.0.rejected.fetch_add(1, Ordering::Relaxed);
    }

    fn on_open(&self) {
        self.set(BreakerState::Open);
    }

    fn on_half_open(&self) {
        self.set(BreakerState::HalfOpen);
    }

    fn on_closed(&self) {
        self.set(BreakerState::Closed);
    }
}

/// How long an open breaker waits before it probes: backon's jittered
/// exponential delays (failsafe's own backoffs cannot go below a second). A
/// clone starts the sequence over, which is what failsafe asks of a clone: it
/// keeps a fresh copy to reset to after a success.
struct OpenDelays {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
}

impl OpenDelays {
    fn new(builder: ExponentialBuilder) -> Self {
        Self {
            builder,
            delays: builder.build(),
        }
    }
}

impl Clone for OpenDelays {
    fn clone(&self) -> Self {
        Self::new(self.builder)
    }
}

impl Iterator for OpenDelays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.delays.next()
    }
}

/// A circuit breaker for one dependency; cheap to clone (clones share state).
#[derive(Clone)]
pub struct DependencyBreaker {
    machine: StateMachine<ConsecutiveFailures<OpenDelays>, Recorder>,
    record: Arc<StateRecord>,
}

impl std::fmt::Debug for DependencyBreaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DependencyBreaker")
            .field("dependency", &self.record.dependency)
            .field("state", &self.state())
            .finish()
    }
}

impl DependencyBreaker {
    /// A closed breaker for `dependency`.
    pub fn new(dependency: &'static str, config: &CircuitBreakerConfig) -> Self {
        let record = Arc::new(StateRecord {
            dependency,
            ..StateRecord::default()
        });
        let delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(config.open_ms))
            .with_max_delay(Duration::from_millis(config.max_open_ms))
            .with_jitter()
            .without_max_times();
        let policy = consecutive_failures(config.failure_threshold, OpenDelays::new(delays));
        Self {
            machine: StateMachine::new(policy, Recorder(Arc::clone(&record))),
            record,
        }
    }

    /// Whether a call may be tried now (an open breaker past its delay
    /// half-opens and permits it).
    pub fn permits(&self) -> bool {
        self.machine.is_call_permitted()
    }

    /// Records the outcome of a call that was tried.
    pub fn record(&self, succeeded: bool) {
        if succeeded {
            self.machine.on_success();
        } else {
            self.machine.on_error();
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        BreakerState::from_code(self.record.state.load(Ordering::Relaxed))
    }

    /// Calls refused while open, since start.
    pub fn rejected(&self) -> u64 {
        self.record.rejected.load(Ordering::Relaxed)
    }

    /// The dependency's name.
    pub fn dependency(&self) -> &'static str {
        self.record.dependency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CircuitBreakerConfig {
        CircuitBreakerConfig {
            failure_threshold: 3,
            open_ms: 50,
            max_open_ms: 100,
        }
    }

    #[test]
    fn opens_after_consecutive_failures_and_refuses_calls() {
        let breaker = DependencyBreaker::new("postgres", &config());
        for _ in 0..2 {
            assert!(breaker.permits());
            breaker.record(false);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Open);
        assert!(!breaker.permits());
        assert_eq!(breaker.rejected(), 1);
    }

    #[test]
    fn a_success_between_failures_keeps_it_closed() {
        let breaker = DependencyBreaker::new("redis", &config());
        for _ in 0..10 {
            breaker.record(false);
            breaker.record(false);
            breaker.record(true);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn half_opens_after_the_delay_and_one_success_closes_it() {
        let breaker = DependencyBreaker::new("kafka", &config());
        for _ in 0..3 {
            breaker.record(false);
        }
        assert!(!breaker.permits());
        std::thread::sleep(Duration::from_millis(120));
        assert!(breaker.permits());
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        breaker.record(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let breaker = DependencyBreaker::new("kafka", &config());
        for _ in 0..3 {
            breaker.record(false);
        }
        std::thread::sleep(Duration::from_millis(120));
        assert!(breaker.permits());
        breaker.record(false);
        assert_eq!(breaker.state(), BreakerState::Open);
    }
}
