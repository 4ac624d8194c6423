//! Owns a node's actors: supervised actix actors exchanging typed messages.
//!
//! - [`messages`]: every message they exchange, grouped by the actor that handles it.
//! - [`node_coordinator`]: wires the others; leadership state; status.
//! - [`election`]: ZooKeeper election and epoch claims.
//! - [`heartbeat`]: the Redis heartbeat, written by the leader, judged by standbys.
//! - [`consumer`]: exists only while leading; reads Kafka, hands batches to the sink.
//! - [`sink`]: fenced PostgreSQL transactions.
//! - [`state_snapshot`]: the Redis state snapshot a new leader loads first.

pub mod consumer;
pub mod election;
pub mod heartbeat;
pub mod messages;
pub mod node_coordinator;
pub mod sink;
pub mod state_snapshot;
