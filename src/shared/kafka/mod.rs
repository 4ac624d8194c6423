//! Owns every conversation with the Kafka-protocol broker, so that the gateway
//! and the node hold logic and never touch librdkafka settings directly.
//!
//! - [`client_config`]: the settings every client shares.
//! - [`topic`]: makes sure the events topic exists and reads broker metadata.
//! - [`broker_probe`]: the gateway's background view of broker health.
//! - [`producer`]: the gateway's idempotent, `acks=all` publisher.

pub mod broker_probe;
pub mod producer;
pub mod topic;

use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Settings shared by every client this crate creates.
pub fn client_config(kafka: &KafkaConfig) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("socket.timeout.ms", kafka.request_timeout_ms.to_string())
        // Reconnect quickly after a broker restart; the default backs off to 10 s.
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "4");
    for (property, value) in &kafka.client_properties {
        config.set(property, value);
    }
    config
}
