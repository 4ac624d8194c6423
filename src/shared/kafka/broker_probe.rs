//! Owns the gateway's view of broker health: a background loop that reads the
//! topic's metadata (creating the topic when it is missing) at a fixed interval
//! and publishes the latest result for `/readyz` and `/api/system/status`.
//!
//! The probe never blocks a request: handlers read the last snapshot.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::KafkaConfig;
use crate::gateway::metrics::GatewayMetrics;
use crate::shared::kafka::topic::ensure_topic;

/// The last thing the probe learnt about the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerHealth {
    /// Whether the broker answered and the topic has partitions.
    pub ready: bool,
    /// Partition ids of the events topic.
    pub partitions: Vec<i32>,
    /// Why the last probe failed, if it did.
    pub last_error: Option<String>,
    /// When the last probe finished; `None` before the first.
    pub checked_at: Option<DateTime<Utc>>,
}

/// Shared, cheaply cloned handle on the latest [`BrokerHealth`].
#[derive(Debug, Clone)]
pub struct BrokerProbe {
    latest: Arc<RwLock<BrokerHealth>>,
}

impl BrokerProbe {
    /// Starts probing `kafka` every `interval` on the current runtime.
    pub fn spawn(kafka: KafkaConfig, interval: Duration, metrics: GatewayMetrics) -> Self {
        let probe = Self {
            latest: Arc::new(RwLock::new(BrokerHealth {
                ready: false,
                partitions: Vec::new(),
                last_error: None,
                checked_at: None,
            })),
        };
        let writer = probe.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let ready = writer.record(
                    ensure_topic(&kafka)
                        .await
                        .map(|metadata| metadata.partitions),
                );
                metrics.broker_ready(ready);
            }
        });
        probe
    }

    /// The latest snapshot.
    pub fn latest(&self) -> BrokerHealth {
        match self.latest.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Stores the outcome of one probe; returns whether the broker is ready.
    fn record(&self, outcome: Result<Vec<i32>, crate::shared::kafka::topic::TopicError>) -> bool {
        let health = match outcome {
            Ok(partitions) => BrokerHealth {
                ready: !partitions.is_empty(),
                partitions,
                last_error: None,
                checked_at: Some(Utc::now()),
            },
            Err(error) => {
                tracing::warn!(%error, "broker probe failed");
                BrokerHealth {
                    ready: false,
                    partitions: Vec::new(),
                    last_error: Some(error.to_string()),
                    checked_at: Some(Utc::now()),
                }
            }
        };
        let mut guard = match self.latest.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let ready = health.ready;
        *guard = health;
        ready
    }
}
