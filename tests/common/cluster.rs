//! A test cluster: a gateway and several real `understudy node` processes on free
//! ports, sharing a cluster name and topic of their own; a steady load through
//! the gateway that records every acknowledged `message_id`; and the checks
//! against PostgreSQL that every acknowledged event is stored exactly once.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use understudy::drill::load::{publish_one, LoadPlan, RunningLoad};
use uuid::Uuid;

use super::{eventually, gateway_env, http_client, unique, UnderstudyProcess, KAFKA, POSTGRES_URL};

/// ZooKeeper session timeout used by test nodes: sub-second, with margin for a busy CI machine.
pub const SESSION_TIMEOUT_MS: u64 = 800;
/// The admin token of every test cluster's nodes.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A gateway and nodes sharing one cluster name and topic.
pub struct TestCluster {
    /// Cluster name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// The gateway.
    pub gateway: UnderstudyProcess,
    /// Node slots; `None` once stopped.
    pub nodes: Vec<Option<UnderstudyProcess>>,
    http: reqwest::Client,
    extra_env: HashMap<String, String>,
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
        let name = unique(prefix).replace('-', "_");
        let topic = unique(prefix);
        let mut env = gateway_env(&topic, KAFKA);
        env.extend(extra_env.clone());
        let gateway = UnderstudyProcess::start(&format!("{prefix}-gateway"), &["gateway"], &env);
        Self::with_gateway(name, topic, gateway, node_count, extra_env).await
    }

    async fn with_gateway(
        name: String,
        topic: String,
        gateway: UnderstudyProcess,
        node_count: usize,
        extra_env: HashMap<String, String>,
    ) -> Self {
        let http = http_client();
        super::wait_ready(&http, &gateway).await;
        let mut cluster = Self {
            name,
            topic,
            gateway,
            nodes: Vec::new(),
            http,
            extra_env,
        };
        for _ in 0..node_count {
            cluster.add_node();
        }
        if node_count > 0 {
            cluster.wait_for_leader(None).await;
        }
        cluster
    }

    /// Environment of a node of this cluster on a free port.
    pub fn node_env(&self) -> HashMap<String, String> {
        let mut env = HashMap::from([
            ("UNDERSTUDY_CLUSTER".into(), self.name.clone()),
            ("UNDERSTUDY_KAFKA__TOPIC".into(), self.topic.clone()),
            ("UNDERSTUDY_NODE__BIND_HOST".into(), "127.0.0.1".into()),
            ("UNDERSTUDY_NODE__HTTP_PORT".into(), "0".into()),
            (
                "UNDERSTUDY_ZOOKEEPER__SESSION_TIMEOUT_MS".into(),
                SESSION_TIMEOUT_MS.to_string(),
            ),
            ("UNDERSTUDY_POSTGRES__POOL_SIZE".into(), "4".into()),
            ("UNDERSTUDY_NODE__ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
        ]);
        env.extend(self.extra_env.clone());
        env
    }

    /// Starts one more node; returns its slot.
    pub fn add_node(&mut self) -> usize {
        self.push_node(UnderstudyProcess::start(
            "node",
            &["node"],
            &self.node_env(),
        ))
    }

    /// Puts an already started node in a new slot; returns the slot.
    pub fn push_node(&mut self, node: UnderstudyProcess) -> usize {
        self.nodes.push(Some(node));
        self.nodes.len() - 1
    }

    /// Starts a node again in an emptied slot.
    pub fn restart_node(&mut self, slot: usize) {
        self.nodes[slot] = Some(UnderstudyProcess::start(
            "node",
            &["node"],
            &self.node_env(),
        ));
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

    /// `GET /api/failover/status` of the node in `slot`; `None` if it does not answer.
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
        eventually(Duration::from_secs(30), "a single leader", || async {
            match self.leaders().await.as_slice() {
                [(slot, status)] => {
                    let epoch = status["epoch"].as_i64()?;
                    (above.is_none_or(|floor| epoch > floor)).then_some((*slot, epoch))
                }
                _ => None,
            }
        })
        .await
    }

    /// Sends `signal` to the node in `slot`.
    pub fn signal(&self, slot: usize, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.node(slot).pid()), signal)
            .expect("signal node");
    }

    /// `POST /api/failover/stepdown` on the node in `slot`, with the admin
    /// token; returns the status code.
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
        self.nodes[slot].take().expect("node is running")
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

    /// Waits until every id in `acked` is stored, then checks each is stored exactly once.
    pub async fn verify_exactly_once(&self, acked: &[Uuid]) {
        let client = pg().await;
        let expected = acked.len() as i64;
        let ids: Vec<Uuid> = acked.to_vec();
        eventually(
            Duration::from_secs(60),
            "every acknowledged event stored",
            || async {
                let row = client
                    .query_one(
                        "SELECT COUNT(*) FROM log_events WHERE message_id = ANY($1)",
                        &[&ids],
                    )
                    .await
                    .ok()?;
                (row.get::<_, i64>(0) == expected).then_some(())
            },
        )
        .await;
        let duplicates = client
            .query(
                "SELECT message_id, COUNT(*) FROM log_events GROUP BY message_id HAVING COUNT(*) > 1;",
                &[],
            )
            .await
            .expect("seed duplicate query");
        assert!(duplicates.is_empty(), "duplicated message ids");
        let stored: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM log_events WHERE topic = $1",
                &[&self.topic],
            )
            .await
            .expect("count")
            .get(0);
        assert_eq!(
            stored, expected,
            "rows of this topic that no client was acknowledged for"
        );
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
    super::pg_connect(POSTGRES_URL).await
}

/// Serialises the tests of one binary: each starts several processes, and on two
/// cores parallel clusters would starve each other's ZooKeeper sessions.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
