//! Dependency outages, for real: Redis, PostgreSQL and ZooKeeper stopped for
//! a while, the broker and ZooKeeper restarted, each under load through `understudy
//! drill`, which stops and starts them with `scripts/infra`. Nothing may be
//! lost or duplicated, no node may need a restart, and no outage may move
//! leadership. One test, so nothing else in this binary runs while a service
//! is down.

mod common;

use common::drill_run::{assert_exactly_once, drill};

#[test]
fn dependency_outages_lose_nothing_and_need_no_restart() {
    for (scenario, session_ms, outage) in [
        ("redis-outage", "6000", "2s"),
        ("postgres-outage", "6000", "2s"),
        ("broker-restart", "6000", "2s"),
        ("zookeeper-restart", "6000", "2s"),
        // Down longer than 7/5 of the session: every client gives its session
        // up and must reopen it, or leadership moves. The session must outlast
        // the server's start: it restores sessions ~1.5 s before it serves
        // (measured here), so a 1 s session never survives a restart.
        ("zookeeper-outage", "4000", "6s"),
    ] {
        // Nodes see a refused PostgreSQL within half a second and open their
        // breakers after two failures, so a two-second outage shows it.
        let env = [
            ("UNDERSTUDY_POSTGRES__CONNECT_TIMEOUT_MS", "500"),
            ("UNDERSTUDY_CIRCUIT_BREAKER__FAILURE_THRESHOLD", "2"),
            ("UNDERSTUDY_ZOOKEEPER__SESSION_TIMEOUT_MS", session_ms),
        ];
        let report = drill(scenario, 1, &["--outage", outage], &env);
        eprintln!("{scenario}: {}", report["cycles"][0]);
        assert_exactly_once(&report, 1);
        assert_eq!(report["false_failovers"], 0, "{report}");
        let cycle = &report["cycles"][0];
        assert!(
            cycle["rto_ms"].as_i64().is_some_and(|ms| ms >= 0),
            "{cycle}"
        );
        assert_eq!(cycle["failovers"], 0, "{cycle}");
        match scenario {
            // ZooKeeper is the authority, not Redis: the leader keeps committing.
            "redis-outage" => {
                assert!(
                    cycle["committed_during_outage"].as_i64() > Some(0),
                    "{cycle}"
                );
            }
            // A leader that cannot reach ZooKeeper leads on under the fence.
            "zookeeper-restart" | "zookeeper-outage" => {
                assert!(
                    cycle["committed_during_outage"].as_i64() > Some(0),
                    "{cycle}"
                );
            }
            // The leader's breaker opens while PostgreSQL is down (and closes
            // again: the commits resumed, which the drill waited for).
            "postgres-outage" => {
                assert_eq!(cycle["circuit_opened"], true, "{cycle}");
            }
            _ => {}
        }
    }
}
