//! Owns how Understudy waits for a dependency to come back: exponential backoff
//! from 100 ms to 1 s with jitter, for as long as it takes. Callers bound the
//! retrying themselves (by leadership, by a stop signal), never by a count: a
//! PostgreSQL or Kafka outage must end in recovery, not in a crashed node.

use std::time::Duration;

use backon::ExponentialBuilder;

/// The backoff used for every retried dependency call.
pub fn dependency_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(1))
        .with_jitter()
        .without_max_times()
}
