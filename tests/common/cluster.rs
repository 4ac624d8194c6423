//! A test cluster: the harness's [`LocalCluster`] (a gateway and real
//! `understudy node` processes on free ports, sharing a cluster name and topic
//! of their own) with the tests' defaults and panicking helpers; a steady load
//! through the gateway that records every acknowledged `message_id`; and the
//! drills' exactly-once check against PostgreSQL.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use serde_json::Value;
use understudy::lab::drill::load::{publish_one, LoadPlan, RunningLoad};
use understudy::lab::drill::local_cluster::{ClusterSpec, LocalCluster};
use understudy::lab::drill::verify::{stored_among, verify};
use uuid::Uuid;

use super::{
    eventually, gateway_env, http_client, log_dir, postgres_url, understudy_binary, unique,
    UnderstudyProcess, KAFKA, TEST_LOG_FILTER,
};

/// ZooKeeper session timeout used by test nodes: sub-second, with margin for a busy CI machine.
pub const SESSION_TIMEOUT_MS: u64 = 800;
/// The admin token of every test cluster's nodes.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A gateway and nodes sharing one cluster name and topic.
pub struct TestCluster {
    cluster: LocalCluster,
    http: reqwest::Client,
}

impl Deref for TestCluster {
    type Target = LocalCluster;

    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

impl DerefMut for TestCluster {
    fn deref_mut(&mut self) -> &mut LocalCluster {
        &mut self.cluster
    }
}

impl TestCluster {
    /// Starts a gateway and `node_count` nodes and waits for one leader (when
    /// there are nodes).
    pub async fn start(prefix: &str, node_count: usize) -> Self {
        Self::start_with(prefix, node_count, HashMap::new()).await
    }

    /// Like [`TestCluster::start`], with `extra_env` added to the environment of
    /// the gateway and of every node.
    pub async fn start_with(
        prefix: &str,
        node_count: usize,
        extra_env: HashMap<String, String>,
    ) -> Self {
        let topic = unique(prefix);
        let mut gateway_env: Vec<(String, String)> =
            gateway_env(&topic, KAFKA).into_iter().collect();
        gateway_env.push(("RUST_LOG".into(), TEST_LOG_FILTER.into()));
        gateway_env.extend(extra_env.clone());
        let mut node_env = vec![
            (
                "UNDERSTUDY_ZOOKEEPER__SESSION_TIMEOUT_MS".to_owned(),
                SESSION_TIMEOUT_MS.to_string(),
            ),
            ("RUST_LOG".to_owned(), TEST_LOG_FILTER.to_owned()),
        ];
        node_env.extend(extra_env);
        let spec = ClusterSpec {
            executable: understudy_binary().to_owned(),
            logs: log_dir(),
            name: unique(prefix).replace('-', "_"),
            topic,
            gateway_env,
            node_env,
            admin_token: ADMIN_TOKEN.to_owned(),
            cuttable: false,
        };
        let cluster = LocalCluster::launch(spec, node_count)
            .await
            .unwrap_or_else(|error| panic!("{prefix} cluster: {error}"));
        let cluster = Self {
            cluster,
            http: http_client(),
        };
        if node_count > 0 {
            cluster.wait_for_leader(None).await;
        }
        cluster
    }

    /// Environment of a node of this cluster on a free port.
    pub fn node_env(&self) -> HashMap<String, String> {
        self.cluster.node_env().into_iter().collect()
    }

    /// Starts one more node; returns its slot.
    pub fn add_node(&mut self) -> usize {
        self.cluster.add_node().expect("a node starts")
    }

    /// Starts a node again in an emptied slot.
    pub fn restart_node(&mut self, slot: usize) {
        self.cluster.start_node(slot).expect("a node restarts");
    }

    /// The node in `slot`.
    pub fn node(&self, slot: usize) -> &UnderstudyProcess {
        self.nodes[slot].as_ref().expect("node is running")
    }

    /// The Prometheus text of the node in `slot`; `None` if it does not answer.
    pub async fn metrics(&self, slot: usize) -> Option<String> {
        let node = self.nodes[slot].as_ref()?;
        let response = self.http.get(node.url("/metrics")).send().await.ok()?;
        response.text().await.ok()
    }

    /// `GET /api/failover/status` of the node in `slot` as raw JSON, read as
    /// any client would (the harness's own helpers read it as the typed
    /// `NodeStatus`); `None` if it does not answer.
    pub async fn status(&self, slot: usize) -> Option<Value> {
        let node = self.nodes[slot].as_ref()?;
        let response = self
            .http
            .get(node.url("/api/failover/status"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// Slots of the running nodes that report `isLeader`, every node asked at
    /// once and required to answer (a slow second leader must not pass for a
    /// standby, as it would in [`TestCluster::leaders`]).
    pub async fn leaders_all_answering(&self) -> Vec<(usize, Value)> {
        let asks = self.nodes.iter().enumerate().filter_map(|(slot, node)| {
            let url = node.as_ref()?.url("/api/failover/status");
            let http = self.http.clone();
            Some(async move {
                let status: Value = http
                    .get(url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .expect("every running node answers its status")
                    .json()
                    .await
                    .expect("status json");
                (slot, status)
            })
        });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .filter(|(_, status)| status["isLeader"] == true)
            .collect()
    }

    /// Slots of the running nodes that report `isLeader`.
    pub async fn leaders(&self) -> Vec<(usize, Value)> {
        let mut leaders = Vec::new();
        for slot in 0..self.nodes.len() {
            if let Some(status) = self.status(slot).await {
                if status["isLeader"] == true {
                    leaders.push((slot, status));
                }
            }
        }
        leaders
    }

    /// Waits for exactly one leader with an epoch above `above`; returns (slot, epoch).
    pub async fn wait_for_leader(&self, above: Option<i64>) -> (usize, i64) {
        self.cluster
            .wait_for_leader(above.unwrap_or(0), Duration::from_secs(30))
            .await
            .expect("a single leader")
    }

    /// Sends `signal` to the node in `slot`.
    pub fn signal(&self, slot: usize, signal: nix::sys::signal::Signal) {
        self.cluster.signal(slot, signal).expect("signal node");
    }

    /// `POST /api/failover/stepdown` on the node in `slot`, with the admin
    /// token; returns the status code.
    /// No client-side timeout: a stepdown waits for the in-flight batch.
    pub async fn step_down(&self, slot: usize) -> reqwest::StatusCode {
        self.http
            .post(self.node(slot).url("/api/failover/stepdown"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("stepdown request")
            .status()
    }

    /// Takes the process out of its slot (it is killed when dropped).
    pub fn take_node(&mut self, slot: usize) -> UnderstudyProcess {
        self.cluster.take_node(slot).expect("node is running")
    }

    /// Publishes one event through the gateway; `Some(id)` when acknowledged.
    pub async fn publish(&self, message: &str) -> Option<Uuid> {
        publish_one(&self.http, &self.gateway.base_url, message).await
    }

    /// Starts a steady load through the gateway, `rate` events per second.
    pub fn start_load(&self, rate: u32) -> RunningLoad {
        RunningLoad::start(LoadPlan {
            gateway: self.gateway.base_url.clone(),
            rate,
            batch_size: 1,
        })
    }

    /// Waits until every id in `acked` is stored, then runs the drills'
    /// exactly-once check: none lost, no event stored twice (the seed's query
    /// and the load's markers), no row of this topic no client was
    /// acknowledged for.
    pub async fn verify_exactly_once(&self, acked: &[Uuid]) {
        let client = pg().await;
        let distinct: std::collections::HashSet<&Uuid> = acked.iter().collect();
        assert_eq!(distinct.len(), acked.len(), "an id was acknowledged twice");
        eventually(
            Duration::from_secs(60),
            "every acknowledged event stored",
            || async {
                let stored = stored_among(&client, acked)
                    .await
                    .expect("query log_events");
                (stored.len() == acked.len()).then_some(())
            },
        )
        .await;
        let verdict = verify(&client, &self.topic, acked, &[])
            .await
            .expect("the exactly-once check");
        assert!(verdict.is_exactly_once(), "{verdict:?}");
    }

    /// Rows committed by an epoch below `epoch` after the first row of `epoch`.
    pub async fn stale_commits_after(&self, epoch: i64) -> i64 {
        pg().await
            .query_one(
                "SELECT COUNT(*) FROM log_events WHERE topic = $1 AND epoch < $2 AND stored_at > \
                 (SELECT MIN(stored_at) FROM log_events WHERE topic = $1 AND epoch = $2)",
                &[&self.topic, &epoch],
            )
            .await
            .expect("stale commits")
            .get(0)
    }

    /// Rows committed under `epoch`.
    pub async fn rows_of_epoch(&self, epoch: i64) -> i64 {
        pg().await
            .query_one(
                "SELECT COUNT(*) FROM log_events WHERE topic = $1 AND epoch = $2",
                &[&self.topic, &epoch],
            )
            .await
            .expect("rows of epoch")
            .get(0)
    }
}

/// A connection to the test database.
pub async fn pg() -> tokio_postgres::Client {
    super::pg_connect(&postgres_url()).await
}

/// Serialises the tests of one binary: each starts several processes, and on two
/// cores parallel clusters would starve each other's ZooKeeper sessions.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
