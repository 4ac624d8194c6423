//! Black-box failover tests: real `understudy node` processes against the real
//! services, killed (SIGKILL), stopped (SIGTERM), paused (SIGSTOP) and restarted
//! under a steady load, with every acknowledged event checked to be stored in
//! PostgreSQL exactly once.

mod common;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde_json::Value;

use common::cluster::{pg, serial, TestCluster, ADMIN_TOKEN, SESSION_TIMEOUT_MS};
use common::eventually;

/// Steady load: 50 events per second, the seed's load-test rate.
const LOAD_RATE: u32 = 50;

async fn let_load_run(load: &understudy::lab::drill::load::RunningLoad, events: usize) {
    eventually(
        Duration::from_secs(30),
        "load to be acknowledged",
        || async { (load.acked_count() >= events).then_some(()) },
    )
    .await;
}

/// Prints how long the hand-over took (read with `--nocapture`; timing is
/// measured, not asserted: a busy machine must not fail the suite).
fn report_failover(kind: &str, signalled_at: chrono::DateTime<chrono::Utc>, status: &Value) {
    let first_commit = status["lastFailover"]["firstCommitAt"]
        .as_str()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok());
    let kill_to_first_commit =
        first_commit.map(|at| (at.to_utc() - signalled_at).num_milliseconds());
    eprintln!(
        "{kind}: signal to first commit {kill_to_first_commit:?} ms; detection to consuming {} ms; detection to first commit {} ms",
        status["lastFailover"]["recoveryMs"], status["lastFailover"]["firstCommitMs"]
    );
}

#[tokio::test]
async fn the_seed_integration_test_stores_ten_messages() {
    let _serial = serial().await;
    let cluster = TestCluster::start("seed", 2).await;
    let mut acked = Vec::new();
    for i in 1..=10 {
        acked.push(
            cluster
                .publish(&format!("Test message {i}"))
                .await
                .expect("acknowledged"),
        );
    }
    cluster.verify_exactly_once(&acked).await;
}

#[tokio::test]
async fn at_most_one_node_reports_leader_at_every_sample() {
    let _serial = serial().await;
    let cluster = TestCluster::start("single-leader", 3).await;
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut samples = 0;
    let mut stepdowns = 0;
    while Instant::now() < deadline {
        let leaders = cluster.leaders_all_answering().await;
        assert!(leaders.len() <= 1, "two nodes claim to lead: {leaders:?}");
        samples += 1;
        if samples % 40 == 0 {
            if let [(slot, _)] = leaders.as_slice() {
                if cluster.step_down(*slot).await.is_success() {
                    stepdowns += 1;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        stepdowns >= 1,
        "the sampling crossed at least one hand-over"
    );
    cluster.wait_for_leader(None).await;
}

#[tokio::test]
async fn sigkill_of_the_leader_under_load_loses_and_duplicates_nothing() {
    let _serial = serial().await;
    let mut cluster = TestCluster::start("sigkill", 3).await;
    let load = cluster.start_load(LOAD_RATE);
    let_load_run(&load, 50).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let killed_at = chrono::Utc::now();
    cluster.signal(leader, Signal::SIGKILL);
    drop(cluster.take_node(leader));
    let (successor, new_epoch) = cluster.wait_for_leader(Some(epoch)).await;
    assert_ne!(successor, leader);
    let before = load.acked_count();
    let_load_run(&load, before + 50).await;
    let acked = load.finish().await.acked;
    cluster.verify_exactly_once(&acked).await;
    assert!(
        cluster.rows_of_epoch(new_epoch).await > 0,
        "the successor committed"
    );
    assert_eq!(cluster.stale_commits_after(new_epoch).await, 0);
    let status = cluster.status(successor).await.expect("status");
    assert_eq!(
        status["lastFailover"]["reason"],
        "leader process gone: connection refused"
    );
    report_failover("sigkill", killed_at, &status);
}

#[tokio::test]
async fn a_killed_leader_is_replaced_long_before_its_session_would_expire() {
    let _serial = serial().await;
    // A 20 s session: only the refused connection can explain a takeover
    // within seconds.
    let session = std::collections::HashMap::from([(
        "UNDERSTUDY_ZOOKEEPER__SESSION_TIMEOUT_MS".to_owned(),
        "20000".to_owned(),
    )]);
    let mut cluster = TestCluster::start_with("sigkill-long-session", 3, session).await;
    let load = cluster.start_load(LOAD_RATE);
    let_load_run(&load, 50).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let killed_at = chrono::Utc::now();
    let killed = Instant::now();
    cluster.signal(leader, Signal::SIGKILL);
    drop(cluster.take_node(leader));
    let (successor, new_epoch) = cluster.wait_for_leader(Some(epoch)).await;
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the successor led {took:?} after the kill: the session (20 s), not the dead process, decided"
    );
    let before = load.acked_count();
    let_load_run(&load, before + 50).await;
    let acked = load.finish().await.acked;
    cluster.verify_exactly_once(&acked).await;
    assert_eq!(cluster.stale_commits_after(new_epoch).await, 0);
    let status = cluster.status(successor).await.expect("status");
    assert_eq!(
        status["lastFailover"]["reason"],
        "leader process gone: connection refused"
    );
    report_failover("sigkill, 20 s session", killed_at, &status);
}

#[tokio::test]
async fn a_leader_whose_advertised_address_refuses_is_not_taken_for_dead() {
    let _serial = serial().await;
    let mut cluster = TestCluster::start("wrong-address", 0).await;
    // The first node advertises an address where nothing listens: standbys
    // are refused there before they ever read its answer.
    let mut env = cluster.node_env();
    let port = common::free_port();
    env.insert("UNDERSTUDY_NODE__HTTP_PORT".into(), port.to_string());
    env.insert(
        "UNDERSTUDY_NODE__ADVERTISED_URL".into(),
        format!("http://127.0.0.1:{}", common::free_port()),
    );
    let _misadvertised = common::start_process("misadvertised", &["node"], &env);
    let status_url = format!("http://127.0.0.1:{port}/api/failover/status");
    let http = common::http_client();
    common::wait_until_leading(&http, &status_url, "the misadvertised node to lead").await;
    cluster.add_node();
    cluster.add_node();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status = common::get_json(&http, &status_url).await;
    assert_eq!(status["isLeader"], true, "forced out: {status}");
    assert_eq!(status["epoch"], 1, "{status}");
}

#[tokio::test]
async fn sigterm_of_the_leader_hands_over_exits_cleanly_and_loses_nothing() {
    let _serial = serial().await;
    let mut cluster = TestCluster::start("sigterm", 3).await;
    let load = cluster.start_load(LOAD_RATE);
    let_load_run(&load, 50).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let killed_at = chrono::Utc::now();
    cluster.signal(leader, Signal::SIGTERM);
    let (successor, _) = cluster.wait_for_leader(Some(epoch)).await;
    assert_ne!(successor, leader);
    let mut stopped = cluster.take_node(leader);
    let exited = eventually(Duration::from_secs(10), "the old leader to exit", || {
        let status = stopped.try_wait().ok().flatten();
        async move { status }
    })
    .await;
    assert!(exited.success(), "graceful exit: {exited:?}");
    let before = load.acked_count();
    let_load_run(&load, before + 50).await;
    let acked = load.finish().await.acked;
    cluster.verify_exactly_once(&acked).await;
    let status = cluster.status(successor).await.expect("status");
    report_failover("sigterm", killed_at, &status);
}

#[tokio::test]
async fn a_paused_leader_commits_nothing_after_its_successor_and_rejoins_as_standby() {
    let _serial = serial().await;
    let cluster = TestCluster::start("sigstop", 3).await;
    let load = cluster.start_load(LOAD_RATE);
    let_load_run(&load, 50).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    cluster.signal(leader, Signal::SIGSTOP);
    let (successor, new_epoch) = cluster.wait_for_leader(Some(epoch)).await;
    assert_ne!(successor, leader);
    eventually(
        Duration::from_secs(30),
        "the successor to commit",
        || async { (cluster.rows_of_epoch(new_epoch).await > 0).then_some(()) },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2 * SESSION_TIMEOUT_MS)).await;
    cluster.signal(leader, Signal::SIGCONT);
    let zombie: Value = eventually(
        Duration::from_secs(30),
        "the old leader to stand by",
        || async {
            let status = cluster.status(leader).await?;
            (status["role"] == "STANDBY" && status["zookeeperConnected"] == true).then_some(status)
        },
    )
    .await;
    assert_eq!(zombie["isLeader"], false);
    let before = load.acked_count();
    let_load_run(&load, before + 50).await;
    let acked = load.finish().await.acked;
    cluster.verify_exactly_once(&acked).await;
    assert_eq!(
        cluster.stale_commits_after(new_epoch).await,
        0,
        "the paused leader committed after its successor started"
    );
    assert_eq!(cluster.leaders().await.len(), 1);
}

/// What a successor's takeover does to a leader that still believes it
/// leads, done directly in PostgreSQL: the fence is raised above its epoch.
/// Its next commit must be refused by the database, counted, and end its
/// leadership; nothing of its epoch is stored after the raise, and a leader
/// of a newer epoch stores everything acknowledged.
#[tokio::test]
async fn a_commit_under_a_raised_fence_is_refused_counted_and_ends_that_leadership() {
    let _serial = serial().await;
    let cluster = TestCluster::start("fence", 2).await;
    let load = cluster.start_load(LOAD_RATE);
    let_load_run(&load, 20).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let client = pg().await;
    let raised_at: chrono::DateTime<chrono::Utc> = client
        .query_one(
            // clock_timestamp(), not now(): taken once the row lock is held,
            // after any commit that held it (and stamped its rows) ended.
            "UPDATE leader_fence SET epoch = $2, holder = 'a test posing as a successor', \
             updated_at = clock_timestamp() WHERE cluster = $1 RETURNING updated_at",
            &[&cluster.name, &(epoch + 1)],
        )
        .await
        .expect("raise the fence")
        .get(0);
    eventually(
        Duration::from_secs(30),
        "the leader's commit to be refused and counted",
        || async {
            let text = cluster.metrics(leader).await?;
            (common::sample(&text, "fenced_commits_total")? >= 1.0).then_some(())
        },
    )
    .await;
    let (_, successor_epoch) = cluster.wait_for_leader(Some(epoch)).await;
    assert!(successor_epoch > epoch);
    let late: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM log_events WHERE topic = $1 AND epoch <= $2 AND stored_at > $3",
            &[&cluster.topic, &epoch, &raised_at],
        )
        .await
        .expect("late rows")
        .get(0);
    assert_eq!(
        late, 0,
        "rows of epoch {epoch} committed after the fence rose"
    );
    let before = load.acked_count();
    let_load_run(&load, before + 30).await;
    let acked = load.finish().await.acked;
    cluster.verify_exactly_once(&acked).await;
}

#[tokio::test]
async fn when_the_new_leader_dies_at_once_the_third_node_takes_over() {
    let _serial = serial().await;
    let mut cluster = TestCluster::start("cascade", 3).await;
    let load = cluster.start_load(LOAD_RATE);
    let_load_run(&load, 50).await;
    let (first, epoch) = cluster.wait_for_leader(None).await;
    cluster.signal(first, Signal::SIGKILL);
    drop(cluster.take_node(first));
    let (second, second_epoch) = eventually(Duration::from_secs(30), "a new leader", || async {
        for slot in 0..cluster.nodes.len() {
            let Some(status) = cluster.status(slot).await else {
                continue;
            };
            let claimed = status["epoch"].as_i64().unwrap_or(0);
            if status["role"] != "STANDBY" && claimed > epoch {
                return Some((slot, claimed));
            }
        }
        None
    })
    .await;
    cluster.signal(second, Signal::SIGKILL);
    drop(cluster.take_node(second));
    let (third, third_epoch) = cluster.wait_for_leader(Some(second_epoch)).await;
    assert!(third != first && third != second);
    let before = load.acked_count();
    let_load_run(&load, before + 50).await;
    let acked = load.finish().await.acked;
    cluster.verify_exactly_once(&acked).await;
    assert_eq!(cluster.stale_commits_after(third_epoch).await, 0);
}

#[tokio::test]
async fn restarted_nodes_resume_from_stored_offsets_without_reinserting() {
    let _serial = serial().await;
    let mut cluster = TestCluster::start("restart", 2).await;
    let mut acked = Vec::new();
    for i in 0..30 {
        acked.push(
            cluster
                .publish(&format!("before {i}"))
                .await
                .expect("acknowledged"),
        );
    }
    cluster.verify_exactly_once(&acked).await;
    let client = pg().await;
    let first_rows: Vec<(uuid::Uuid, i64)> = client
        .query(
            "SELECT message_id, epoch FROM log_events WHERE topic = $1 ORDER BY message_id",
            &[&cluster.topic],
        )
        .await
        .expect("rows")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for slot in 0..2 {
        cluster.signal(slot, Signal::SIGTERM);
    }
    for slot in 0..2 {
        let mut node = cluster.take_node(slot);
        eventually(Duration::from_secs(10), "a node to exit", || {
            let status = node.try_wait().ok().flatten();
            async move { status }
        })
        .await;
    }
    for i in 0..20 {
        acked.push(
            cluster
                .publish(&format!("while down {i}"))
                .await
                .expect("acknowledged"),
        );
    }
    cluster.restart_node(0);
    cluster.restart_node(1);
    cluster.wait_for_leader(None).await;
    cluster.verify_exactly_once(&acked).await;
    // Re-inserts are no-ops in the table, so count what the restarted nodes
    // sent to it: the records of their committed batches, summed.
    let mut attempted = 0.0;
    for slot in 0..2 {
        let text = cluster.metrics(slot).await.expect("metrics");
        attempted += common::sample(&text, "sink_batch_size_sum").unwrap_or(0.0);
    }
    assert_eq!(
        attempted, 20.0,
        "the restarted nodes committed only the 20 events published while they were down"
    );
    let kept: Vec<(uuid::Uuid, i64)> = client
        .query(
            "SELECT message_id, epoch FROM log_events WHERE topic = $1 AND message_id = ANY($2) ORDER BY message_id",
            &[&cluster.topic, &first_rows.iter().map(|(id, _)| *id).collect::<Vec<_>>()],
        )
        .await
        .expect("rows")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        kept, first_rows,
        "rows from before the restart were rewritten"
    );
}

#[tokio::test]
async fn stepdown_hands_over_and_is_refused_by_a_standby() {
    let _serial = serial().await;
    let cluster = TestCluster::start("stepdown", 2).await;
    let http = common::http_client();
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(
            cluster
                .publish(&format!("before stepdown {i}"))
                .await
                .expect("acknowledged"),
        );
    }
    cluster.verify_exactly_once(&acked).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let standby = 1 - leader;
    let stepdown = |slot: usize| http.post(cluster.node(slot).url("/api/failover/stepdown"));
    let anonymous = stepdown(leader).send().await.expect("post");
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let forged = stepdown(leader)
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), reqwest::StatusCode::UNAUTHORIZED);
    let refused = stepdown(standby)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), reqwest::StatusCode::CONFLICT);
    assert_eq!(
        refused.json::<Value>().await.expect("json")["error"],
        "not_leader"
    );
    assert_eq!(cluster.step_down(leader).await, reqwest::StatusCode::OK);
    let (successor, new_epoch) = cluster.wait_for_leader(Some(epoch)).await;
    assert_eq!(successor, standby);
    let status = cluster.status(successor).await.expect("status");
    assert_eq!(
        status["reconciliationMismatches"], 0,
        "a graceful hand-over leaves an exact snapshot"
    );
    assert_eq!(
        status["state"]["processedTotal"], 5,
        "the count carried over from the snapshot"
    );
    let history: Value = eventually(Duration::from_secs(10), "the failover history", || async {
        let history: Value = http
            .get(cluster.node(leader).url("/api/failover/history?limit=10"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (history[0]["epoch"] == new_epoch).then_some(history)
    })
    .await;
    assert_eq!(history[0]["reason"], "leader departed");
    assert_eq!(history[1]["epoch"], epoch);
    let bad = http
        .get(cluster.node(leader).url("/api/failover/history?limit=0"))
        .send()
        .await
        .expect("get");
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_hung_but_connected_leader_is_replaced_by_a_forced_takeover() {
    let _serial = serial().await;
    // A ZooKeeper session far longer than the heartbeat rule: only the stale
    // heartbeat can reveal the paused leader before its session expires.
    let env = std::collections::HashMap::from([(
        "UNDERSTUDY_ZOOKEEPER__SESSION_TIMEOUT_MS".to_owned(),
        "20000".to_owned(),
    )]);
    let cluster = TestCluster::start_with("hung", 2, env).await;
    let load = cluster.start_load(LOAD_RATE);
    let_load_run(&load, 25).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let paused_at = Instant::now();
    cluster.signal(leader, Signal::SIGSTOP);
    let (successor, new_epoch) = cluster.wait_for_leader(Some(epoch)).await;
    let took = paused_at.elapsed();
    assert_ne!(successor, leader);
    assert!(
        took < Duration::from_secs(15),
        "the takeover came from the heartbeat, not the 20 s session expiry ({took:?})"
    );
    let status = cluster.status(successor).await.expect("status");
    assert_eq!(
        status["lastFailover"]["reason"],
        "forced takeover: leader heartbeat stale"
    );
    cluster.signal(leader, Signal::SIGCONT);
    eventually(
        Duration::from_secs(30),
        "the hung leader to stand by",
        || async {
            let status = cluster.status(leader).await?;
            (status["role"] == "STANDBY").then_some(())
        },
    )
    .await;
    let before = load.acked_count();
    let_load_run(&load, before + 25).await;
    let acked = load.finish().await.acked;
    cluster.verify_exactly_once(&acked).await;
    assert_eq!(cluster.stale_commits_after(new_epoch).await, 0);
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_processing_continues() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let _serial = serial().await;
    let cluster = TestCluster::start("poison", 1).await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", common::KAFKA)
        .create()
        .expect("producer");
    let nul_event = serde_json::json!({
        "message_id": uuid::Uuid::now_v7(), "level": "INFO", "message": "a\u{0}b",
        "source": "raw", "timestamp": "2026-01-01T00:00:00Z",
        "received_at": "2026-01-01T00:00:00Z", "attributes": {}
    })
    .to_string();
    let oversized = serde_json::json!({
        "message_id": uuid::Uuid::now_v7(), "level": "INFO", "message": "x".repeat(70_000),
        "source": "raw", "timestamp": "2026-01-01T00:00:00Z",
        "received_at": "2026-01-01T00:00:00Z", "attributes": {}
    })
    .to_string();
    // Decoding quotes the bad value: a newline and a terminal escape in it
    // must reach the log escaped, never as a line or a colour of their own.
    let log_forgery = serde_json::json!({
        "message_id": uuid::Uuid::now_v7(), "level": "INFO\nforged-line-marker \u{1b}[7m",
        "message": "m", "source": "raw", "timestamp": "2026-01-01T00:00:00Z",
        "received_at": "2026-01-01T00:00:00Z", "attributes": {}
    })
    .to_string();
    let poison: Vec<Vec<u8>> = vec![
        log_forgery.into_bytes(),
        b"not json at all".to_vec(),
        vec![0xff, 0xfe, 0x00],
        br#"{"level":"INFO","message":"no id","source":"raw"}"#.to_vec(),
        nul_event.into_bytes(),
        oversized.into_bytes(),
    ];
    for payload in &poison {
        producer
            .send(
                FutureRecord::to(&cluster.topic).key("raw").payload(payload),
                Duration::from_secs(10),
            )
            .await
            .expect("raw record produced");
    }
    let mut acked = Vec::new();
    for i in 0..10 {
        acked.push(
            cluster
                .publish(&format!("after poison {i}"))
                .await
                .expect("acknowledged"),
        );
    }
    cluster.verify_exactly_once(&acked).await;
    let client = pg().await;
    let reasons: Vec<String> = eventually(Duration::from_secs(30), "dead letters", || async {
        let rows = client
            .query(
                "SELECT reason FROM dead_letters WHERE topic = $1 ORDER BY kafka_partition, kafka_offset",
                &[&cluster.topic],
            )
            .await
            .ok()?;
        (rows.len() == poison.len()).then(|| rows.iter().map(|row| row.get(0)).collect())
    })
    .await;
    assert!(
        reasons.iter().any(|r| r.starts_with("not a valid event")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("NUL")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("`message` is")),
        "{reasons:?}"
    );
    let log = std::fs::read_to_string(&cluster.node(0).log_path).expect("node log");
    assert!(
        log.contains("\\nforged-line-marker \\u{1b}[7m"),
        "the record was logged, escaped"
    );
    assert!(
        !log.lines()
            .any(|line| line.starts_with("forged-line-marker"))
            && !log.contains("\u{1b}[7m"),
        "a record forged a log line or a terminal escape"
    );
}

#[tokio::test]
async fn the_heartbeat_and_state_snapshot_follow_the_seed() {
    use redis::AsyncCommands;
    let _serial = serial().await;
    let cluster = TestCluster::start("redis-state", 2).await;
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(
            cluster
                .publish(&format!("state {i}"))
                .await
                .expect("acknowledged"),
        );
    }
    cluster.verify_exactly_once(&acked).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let leader_id = cluster.status(leader).await.expect("status")["instanceId"]
        .as_str()
        .expect("instance id")
        .to_owned();
    let mut redis = redis::Client::open("redis://127.0.0.1:6379")
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let heartbeat: String = redis
        .get(format!("understudy:{}:leader:heartbeat", cluster.name))
        .await
        .expect("heartbeat");
    let parts: Vec<&str> = heartbeat.splitn(3, ':').collect();
    let age_ms = chrono::Utc::now().timestamp_millis() - parts[0].parse::<i64>().expect("ms");
    assert!(age_ms < 5_000, "heartbeat is {age_ms} ms old");
    assert_eq!(parts[1], epoch.to_string());
    assert_eq!(parts[2], leader_id);
    let state: Value = eventually(
        Duration::from_secs(10),
        "a snapshot with every commit",
        || async {
            let mut redis = redis.clone();
            let json: String = redis
                .get(format!("understudy:{}:consumer:state", cluster.name))
                .await
                .ok()?;
            let state: Value = serde_json::from_str(&json).ok()?;
            (state["processedTotal"] == 5).then_some(state)
        },
    )
    .await;
    assert_eq!(state["epoch"], epoch);
    assert_eq!(state["instanceId"], leader_id.as_str());
    assert_eq!(state["partitions"].as_array().map(Vec::len), Some(3));
    let stored: i64 = state["offsets"]
        .as_object()
        .expect("offsets")
        .values()
        .filter_map(Value::as_i64)
        .sum();
    assert_eq!(stored, 5, "next offsets cover the five events");
    assert!(state["inFlight"].is_array());
    assert!(state["updatedAtMs"].as_i64().is_some());
}

#[tokio::test]
async fn a_node_holds_a_bounded_number_of_presence_answers() {
    let cluster = TestCluster::start("presence-cap", 1).await;
    let url = cluster.node(0).url("/api/failover/presence");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut held = Vec::new();
    for _ in 0..understudy::node::presence_stream::MAX_HELD {
        let answer = http.get(&url).send().await.expect("presence");
        assert!(answer.status().is_success());
        held.push(answer);
    }
    let refused = http.get(&url).send().await.expect("presence");
    assert_eq!(
        refused.status(),
        503,
        "one more answer than the cap was held"
    );
    drop(held);
    eventually(Duration::from_secs(10), "a released slot", || async {
        let answer = http.get(&url).send().await.ok()?;
        answer.status().is_success().then_some(())
    })
    .await;
}
