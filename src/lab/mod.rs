//! Owns `understudy-lab`, the companion binary that is never deployed: load
//! generation, verification, fault drills and benchmarks.
//!
//! - [`cli`]: its command line.
//! - [`drill`]: load, the exactly-once checker, the local cluster harness, faults, chaos, reports.
//! - [`bench`](mod@bench): throughput, latency and failover benchmarks beside their baselines.

pub mod bench;
pub mod cli;
pub mod drill;
