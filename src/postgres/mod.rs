//! Owns PostgreSQL: the embedded schema migrations and, for the node, the
//! connection pool and the fenced sink transaction; TLS for all of them.

pub mod migrations;
pub mod pool;
pub mod schema;
pub mod sink_store;
pub mod tls;
