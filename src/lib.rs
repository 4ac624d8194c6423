//! Understudy: an active-passive failover runtime for a log pipeline.
//!
//! An HTTP gateway publishes log events to Kafka; consumer nodes elect one leader
//! through ZooKeeper, and only the leader writes events into PostgreSQL, behind a
//! fence that the database enforces so a stale leader can never commit.
//!
//! # Layout
//! - [`gateway`]: the gateway process (validate, publish, answer).
//! - [`node`]: the node process: coordinator, election, heartbeat, consumer,
//!   sink and snapshot actors, its status and API.
//! - [`lab`]: `understudy-lab`, never deployed: load, verification, drills, benchmarks.
//! - [`shared`]: the adapters and plumbing both processes use (Kafka,
//!   PostgreSQL, Redis, telemetry, HTTP, breakers, retries).
//! - [`log_event`]: the event, its validation rules and its wire form.
//! - [`config`]: the one typed configuration (defaults, file, environment).
//! - [`cli`]: the command line of `understudy`, the deployed binary.
//! - [`process_start`]: what every process does first (TLS provider, configuration, logging).
//!
//! The names most callers need are re-exported here.

// The module maps link to crate-private modules on purpose: they are for
// whoever changes this crate (`cargo doc --document-private-items`), while
// the public API is the few modules and names exported below.
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod config;
pub mod gateway;
pub mod lab;
pub mod log_event;
pub mod node;
pub mod process_start;
pub mod shared;

pub use crate::config::Config;
pub use crate::log_event::{LogEvent, LogEventRequest};
pub use crate::node::election::epoch::Epoch;
pub use crate::node::status::{FailoverStatus, NodeRole, NodeStatus};
