//! Owns PostgreSQL: the embedded schema migrations and, for the node, the
//! connection pool and the fenced sink transaction.

pub mod migrations;
