//! Owns a consumer node: supervised actors exchanging typed messages, of
//! which only the leader's consume; everything a node decides and the
//! adapters only it uses.
//!
//! - [`process`]: wiring the actors, the HTTP API, the graceful exit.
//! - [`coordinator`]: leadership state, the takeover, epoch filtering, status.
//! - [`messages`]: every message the actors exchange, and the `Recipient` bundles.
//! - [`election`]: ZooKeeper election and epochs (a pure state machine and its driver).
//! - [`heartbeat`]: the Redis heartbeat the leader writes and standbys judge.
//! - [`consumer`]: exists only while leading; reads Kafka, hands batches to the sink.
//! - [`sink`]: the fenced PostgreSQL transactions.
//! - [`snapshot`]: the Redis state snapshot a new leader loads first.
//! - [`status`]: the node's status answer, typed, for the node, the gateway and the drills.
//! - [`api`], [`presence_stream`]: the node's HTTP API and the answer standbys hold.
//! - [`metrics`]: the seed's failover metrics and what an operator needs more.
//! - [`url`]: what a node's advertised base URL may be.

pub(crate) mod api;
pub(crate) mod consumer;
pub(crate) mod coordinator;
pub mod election;
pub mod heartbeat;
pub(crate) mod messages;
pub(crate) mod metrics;
pub mod presence_stream;
pub(crate) mod process;
pub mod sink;
pub(crate) mod snapshot;
pub mod status;
pub(crate) mod url;

pub use self::process::run;
