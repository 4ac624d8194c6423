//! Owns the circuit breakers' instruments: `circuit_breaker_state{dependency}`
//! (0 closed, 1 half-open, 2 open) and
//! `circuit_breaker_rejected_calls_total{dependency}`, read from the breakers
//! at every scrape.

use opentelemetry::KeyValue;

use crate::shared::circuit_breaker::DependencyBreaker;
use crate::shared::telemetry::registry::MetricsRegistry;

/// Registers the instruments of `breakers` in `registry`.
pub fn register(registry: &MetricsRegistry, breakers: &[DependencyBreaker]) {
    let meter = registry.meter();
    let states = breakers.to_vec();
    meter
        .i64_observable_gauge("circuit_breaker_state")
        .with_description("Circuit breaker per dependency: 0 closed, 1 half-open (probing), 2 open (calls refused)")
        .with_callback(move |observer| {
            for breaker in &states {
                observer.observe(
                    breaker.state().gauge(),
                    &[KeyValue::new("dependency", breaker.dependency())],
                );
            }
        })
        .build();
    let rejections = breakers.to_vec();
    meter
        .u64_observable_counter("circuit_breaker_rejected_calls")
        .with_description("Calls refused without being tried because the breaker was open")
        .with_callback(move |observer| {
            for breaker in &rejections {
                observer.observe(
                    breaker.rejected(),
                    &[KeyValue::new("dependency", breaker.dependency())],
                );
            }
        })
        .build();
}
