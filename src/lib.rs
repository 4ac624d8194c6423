//! Understudy: an active-passive failover runtime for a log pipeline.
//!
//! An HTTP gateway publishes log events to Kafka; consumer nodes elect one leader
//! through ZooKeeper, and only the leader writes events into PostgreSQL, behind a
//! fence that the database enforces so a stale leader can never commit.
//!
//! # Layout
//! - [`config`]: the one typed configuration (defaults, file, environment).
//! - [`cli`]: the `understudy` command line.
//! - [`log_event`]: the event, its validation rules and its wire form.
//! - [`kafka`]: the broker adapter (producer, topic admin, health probe).
//! - [`postgres`]: the database adapter (embedded migrations).
//! - [`web`]: the HTTP surfaces (the gateway today).

pub mod cli;
pub mod config;
pub mod kafka;
pub mod log_event;
pub mod postgres;
pub mod web;
