//! Understudy: an active-passive failover runtime for a log pipeline.
//!
//! An HTTP gateway publishes log events to Kafka; consumer nodes elect one leader
//! through ZooKeeper, and only the leader writes events into PostgreSQL, behind a
//! fence that the database enforces so a stale leader can never commit.
//!
//! # Layout
//! - [`config`]: the one typed configuration (defaults, file, environment).
//! - [`cli`]: the command line of `understudy`, the deployed binary.
//! - [`lab_cli`]: the command line of `understudy-lab` (drills, load, benchmarks).
//! - [`process_start`]: what every process does first (TLS provider, configuration, logging).
//! - [`log_event`]: the event, its validation rules and its wire form.
//! - [`epoch`]: the leadership epoch carried on every leadership-bound write.
//! - [`election_order`]: who leads among ZooKeeper members, whom each watches.
//! - [`heartbeat_record`]: the seed's heartbeat format and staleness rule.
//! - [`takeover_reason`]: why a node came to lead, and whether that was a failover.
//! - [`leader_presence`]: how a standby sees the leader's process die, in milliseconds.
//! - [`leader_liveness`]: how a standby judges the leader alive, on its own clock.
//! - [`consumer_state`]: the migratable state snapshot and its reconciliation.
//! - [`kafka`]: the broker adapter (producer, topic admin, probe, partition reader).
//! - [`postgres`]: the database adapter (migrations, pool, fenced sink store).
//! - [`redis_store`]: the Redis adapter (heartbeat, state snapshot).
//! - [`zookeeper`]: the ZooKeeper adapter (election session, epoch claims).
//! - [`telemetry`]: metrics (OpenTelemetry, exported for Prometheus).
//! - [`pem_file`]: reading the CA bundles, certificates and keys TLS settings name.
//! - [`printable`]: escaping untrusted text before it is logged or stored.
//! - [`redact`]: passwords hidden in every URL a process prints.
//! - [`retry_policy`]: how every dependency call is retried.
//! - [`circuit_breaker`]: the breakers in front of Kafka, PostgreSQL and Redis.
//! - [`actors`]: a node's supervised actors and their messages.
//! - [`node`]: the node process.
//! - [`node_status`]: a node's status answer, typed, for the node, the gateway and the drills.
//! - [`node_url`]: what a node's advertised base URL may be.
//! - [`drill`]: load generation, verification and failover drills.
//! - [`bench`]: throughput, latency and failover benchmarks beside their baselines.
//! - [`web`]: the HTTP surfaces of the gateway and the node.

pub mod actors;
pub mod bench;
pub mod circuit_breaker;
pub mod cli;
pub mod config;
pub mod consumer_state;
pub mod drill;
pub mod election_order;
pub mod epoch;
pub mod heartbeat_record;
pub mod kafka;
pub mod lab_cli;
pub mod leader_liveness;
pub mod leader_presence;
pub mod log_event;
pub mod node;
pub mod node_status;
pub mod node_url;
pub mod pem_file;
pub mod postgres;
pub mod printable;
pub mod process_start;
pub mod redact;
pub mod redis_store;
pub mod retry_policy;
pub mod takeover_reason;
pub mod telemetry;
pub mod web;
pub mod zookeeper;
