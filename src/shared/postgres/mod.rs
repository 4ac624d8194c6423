//! Owns PostgreSQL plumbing: the embedded schema migrations, the connection
//! pool and TLS. The fenced sink transaction is the node's
//! ([`crate::node::sink::store`]).

pub mod migrations;
pub mod pool;
pub(crate) mod schema;
pub mod tls;
