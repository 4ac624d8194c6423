//! Owns a local cluster, the one harness of the drills, the benchmarks and
//! the black-box tests: a gateway and several nodes started as child
//! processes of the deployed `understudy` binary, with a cluster name and
//! topic of their own, on free ports, logging to files, and what a harness
//! asks of them (statuses, the leader, signals, stepdown, restarts). Every
//! child is killed when the cluster is dropped. Where the machine allows it
//! and the cluster asks for it, each node starts inside a cgroup of its own so
//! that it can be cut off the network ([`NetworkCuts`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

use crate::gateway::system_status::{Health, SystemStatus};
use crate::lab::drill::cluster_process::ClusterProcess;
use crate::lab::drill::network_cut::{Cut, NetworkCuts};
use crate::lab::drill::DrillError;
use crate::node::status::{NodeRole, NodeStatus};
use crate::shared::circuit_breaker::BreakerState;

/// What a cluster is started with.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// The `understudy` binary.
    pub executable: PathBuf,
    /// Where the processes' logs go.
    pub logs: PathBuf,
    /// Cluster name (`UNDERSTUDY_CLUSTER`).
    pub name: String,
    /// Events topic (the gateway creates it when missing).
    pub topic: String,
    /// The gateway's environment besides the cluster's own settings.
    pub gateway_env: Vec<(String, String)>,
    /// Every node's environment besides the cluster's own settings.
    pub node_env: Vec<(String, String)>,
    /// The nodes' admin token.
    pub admin_token: String,
    /// Whether each node starts in a cgroup of its own, so that it can be cut
    /// off (needs root and a cgroup2 mount; ignored where they are missing).
    pub cuttable: bool,
}

impl ClusterSpec {
    /// A drill's cluster: the binary beside this one, logs in `logs`, a name,
    /// topic and admin token of its own, a gateway that polls no fixed node
    /// address, nodes that can be cut off.
    pub fn drill(logs: &Path) -> Result<Self, DrillError> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        Ok(Self {
            executable: understudy_binary()?,
            logs: logs.to_owned(),
            name: format!("drill_{id}"),
            topic: format!("drill-{id}"),
            gateway_env: vec![("UNDERSTUDY_GATEWAY__NODE_URLS".to_owned(), "[]".to_owned())],
            node_env: Vec::new(),
            admin_token: uuid::Uuid::new_v4().simple().to_string(),
            cuttable: true,
        })
    }
}

/// The deployed `understudy` binary beside the running executable.
pub fn understudy_binary() -> Result<PathBuf, DrillError> {
    let me = std::env::current_exe()?;
    let beside = me.with_file_name("understudy");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(DrillError::Fault(format!(
            "no `understudy` binary beside {} (build both: cargo build --bins)",
            me.display()
        )))
    }
}

/// A running local cluster.
pub struct LocalCluster {
    /// Cluster name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// The gateway.
    pub gateway: ClusterProcess,
    /// Node slots (`None` while a node is down).
    pub nodes: Vec<Option<ClusterProcess>>,
    /// The nodes' cgroups, when this machine can cut nodes off (dropped after
    /// the nodes: a cgroup with processes in it cannot be removed).
    cuts: Option<NetworkCuts>,
    spec: ClusterSpec,
    http: reqwest::Client,
    restarts: usize,
}

impl LocalCluster {
    /// Starts a drill's gateway and `node_count` nodes; logs go to `logs`.
    pub async fn start(node_count: usize, logs: &Path) -> Result<Self, DrillError> {
        Self::launch(ClusterSpec::drill(logs)?, node_count).await
    }

    /// Starts a drill's cluster on `topic`.
    pub async fn start_on(
        topic: String,
        node_count: usize,
        logs: &Path,
    ) -> Result<Self, DrillError> {
        Self::launch(
            ClusterSpec {
                topic,
                ..ClusterSpec::drill(logs)?
            },
            node_count,
        )
        .await
    }

    /// Starts the gateway of `spec`, waits until it is ready, then starts
    /// `node_count` nodes (without waiting for a leader).
    pub async fn launch(spec: ClusterSpec, node_count: usize) -> Result<Self, DrillError> {
        std::fs::create_dir_all(&spec.logs)?;
        let mut env = vec![
            ("UNDERSTUDY_CLUSTER".to_owned(), spec.name.clone()),
            ("UNDERSTUDY_KAFKA__TOPIC".to_owned(), spec.topic.clone()),
            (
                "UNDERSTUDY_GATEWAY__BIND_HOST".to_owned(),
                "127.0.0.1".to_owned(),
            ),
            ("UNDERSTUDY_GATEWAY__HTTP_PORT".to_owned(), "0".to_owned()),
        ];
        env.extend_from_slice(&spec.gateway_env);
        let gateway = ClusterProcess::start(
            &spec.executable,
            &["gateway"],
            &env,
            &spec.logs.join(format!("{}-gateway.log", spec.name)),
            None,
        )?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_millis(500))
            .build()?;
        let cuts = if spec.cuttable {
            NetworkCuts::prepare(&spec.name)
        } else {
            None
        };
        let mut cluster = Self {
            name: spec.name.clone(),
            topic: spec.topic.clone(),
            gateway,
            nodes: Vec::new(),
            cuts,
            spec,
            http,
            restarts: 0,
        };
        cluster.wait_gateway_ready().await?;
        for _ in 0..node_count {
            cluster.add_node()?;
        }
        Ok(cluster)
    }

    /// The environment of a node of this cluster (on a free port).
    pub fn node_env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("UNDERSTUDY_CLUSTER".to_owned(), self.name.clone()),
            ("UNDERSTUDY_KAFKA__TOPIC".to_owned(), self.topic.clone()),
            (
                "UNDERSTUDY_NODE__BIND_HOST".to_owned(),
                "127.0.0.1".to_owned(),
            ),
            ("UNDERSTUDY_NODE__HTTP_PORT".to_owned(), "0".to_owned()),
            ("UNDERSTUDY_POSTGRES__POOL_SIZE".to_owned(), "4".to_owned()),
            (
                "UNDERSTUDY_NODE__ADMIN_TOKEN".to_owned(),
                self.spec.admin_token.clone(),
            ),
        ];
        env.extend_from_slice(&self.spec.node_env);
        env
    }

    /// Starts one more node in a new slot; returns the slot.
    pub fn add_node(&mut self) -> Result<usize, DrillError> {
        self.nodes.push(None);
        let slot = self.nodes.len() - 1;
        self.start_node(slot)?;
        Ok(slot)
    }

    /// Puts an already started node in a new slot; returns the slot.
    pub fn push_node(&mut self, node: ClusterProcess) -> usize {
        self.nodes.push(Some(node));
        self.nodes.len() - 1
    }

    /// Starts (or restarts) the node in `slot`.
    pub fn start_node(&mut self, slot: usize) -> Result<(), DrillError> {
        self.start_node_with(slot, &[])
    }

    /// Starts (or restarts) the node in `slot` with `extra_env` added to its
    /// environment (a skewed clock, say).
    pub fn start_node_with(
        &mut self,
        slot: usize,
        extra_env: &[(String, String)],
    ) -> Result<(), DrillError> {
        self.restarts += 1;
        let log = self
            .spec
            .logs
            .join(format!("{}-node-{slot}-{}.log", self.name, self.restarts));
        let procs = match &self.cuts {
            Some(cuts) => Some(cuts.procs_file(slot)?),
            None => None,
        };
        let mut env = self.node_env();
        env.extend_from_slice(extra_env);
        self.nodes[slot] = Some(ClusterProcess::start(
            &self.spec.executable,
            &["node"],
            &env,
            &log,
            procs.as_deref(),
        )?);
        Ok(())
    }

    /// Cuts the node in `slot` off the network as `cut` says.
    pub fn cut(&mut self, slot: usize, cut: Cut) -> Result<(), DrillError> {
        self.cuts
            .as_mut()
            .ok_or_else(|| {
                DrillError::Fault(
                    "cutting a node off needs root, a cgroup2 mount and iptables".into(),
                )
            })?
            .cut(slot, cut)
    }

    /// Reconnects the node in `slot`.
    pub fn heal(&mut self, slot: usize) -> Result<(), DrillError> {
        match self.cuts.as_mut() {
            Some(cuts) => cuts.heal(slot),
            None => Ok(()),
        }
    }

    async fn wait_gateway_ready(&self) -> Result<(), DrillError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(response) = self
                .http
                .get(format!("{}/readyz", self.gateway.base_url))
                .send()
                .await
            {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(DrillError::Timeout("gateway readiness".into()))
    }

    /// `GET /api/failover/status` of the node in `slot`, if it answers.
    pub async fn status(&self, slot: usize) -> Option<NodeStatus> {
        let node = self.nodes.get(slot)?.as_ref()?;
        let response = self
            .http
            .get(node.url("/api/failover/status"))
            .send()
            .await
            .ok()?;
        response.json().await.ok()
    }

    /// The single node that reports leading with an epoch above `above`: (slot, epoch).
    pub async fn wait_for_leader(
        &self,
        above: i64,
        timeout: Duration,
    ) -> Result<(usize, i64), DrillError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let mut leaders = Vec::new();
            for slot in 0..self.nodes.len() {
                if let Some(status) = self.status(slot).await {
                    if status.failover.is_leader {
                        leaders.push((slot, status.failover.epoch.unwrap_or(0)));
                    }
                }
            }
            if let [(slot, epoch)] = leaders.as_slice() {
                if *epoch > above {
                    return Ok((*slot, *epoch));
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(DrillError::Timeout(format!("a leader above epoch {above}")))
    }

    /// Waits for one leader that stays the only one, with the same epoch, for
    /// `stable_for`: after a ZooKeeper restart a held leadership may still be
    /// replaced by a fresh election.
    pub async fn wait_for_stable_leader(
        &self,
        stable_for: Duration,
        timeout: Duration,
    ) -> Result<(usize, i64), DrillError> {
        let deadline = Instant::now() + timeout;
        let mut since: Option<((usize, i64), Instant)> = None;
        while Instant::now() < deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let leader = self.wait_for_leader(0, remaining).await?;
            match since {
                Some((seen, at)) if seen == leader => {
                    if at.elapsed() >= stable_for {
                        return Ok(leader);
                    }
                }
                _ => since = Some((leader, Instant::now())),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(DrillError::Timeout("a stable leader".into()))
    }

    /// Waits until the node in `slot` answers as a standby.
    pub async fn wait_for_standby(&self, slot: usize, timeout: Duration) -> Result<(), DrillError> {
        self.wait_for_node(slot, timeout, "to stand by", |status| {
            status.failover.role == NodeRole::Standby && status.failover.zookeeper_connected
        })
        .await
    }

    /// Waits until the gateway accepts events again: ready, and its circuit
    /// breaker in front of the broker closed.
    pub async fn wait_for_gateway_accepting(&self, timeout: Duration) -> Result<(), DrillError> {
        let deadline = Instant::now() + timeout;
        let status_url = format!("{}/api/system/status", self.gateway.base_url);
        while Instant::now() < deadline {
            let status: Option<SystemStatus> = match self.http.get(&status_url).send().await {
                Ok(response) => response.json().await.ok(),
                Err(_) => None,
            };
            if status.is_some_and(|status| {
                status.broker.status == Health::Up && status.broker.circuit == BreakerState::Closed
            }) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(DrillError::Timeout("the gateway to accept events".into()))
    }

    /// Waits until the node in `slot` answers and is connected to ZooKeeper,
    /// whatever its role: the cluster is whole again after an outage.
    pub async fn wait_for_standby_or_leader(
        &self,
        slot: usize,
        timeout: Duration,
    ) -> Result<(), DrillError> {
        self.wait_for_node(slot, timeout, "to reconnect", |status| {
            status.failover.zookeeper_connected
        })
        .await
    }

    /// Polls the status of the node in `slot` until `ready` holds.
    async fn wait_for_node(
        &self,
        slot: usize,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&NodeStatus) -> bool,
    ) -> Result<(), DrillError> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.status(slot).await.is_some_and(|status| ready(&status)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(DrillError::Timeout(format!("node {slot} {what}")))
    }

    /// Sends `signal` to the node in `slot`.
    pub fn signal(&self, slot: usize, signal: Signal) -> Result<(), DrillError> {
        let node = self.nodes[slot]
            .as_ref()
            .ok_or_else(|| DrillError::Timeout(format!("node {slot} is not running")))?;
        Ok(kill(node.pid(), signal)?)
    }

    /// Takes the node out of its slot.
    pub fn take_node(&mut self, slot: usize) -> Option<ClusterProcess> {
        self.nodes[slot].take()
    }

    /// `POST /api/failover/stepdown` on the node in `slot`.
    /// The node's answer (a standby refuses).
    pub async fn step_down(&self, slot: usize) -> Result<reqwest::StatusCode, DrillError> {
        let node = self.nodes[slot]
            .as_ref()
            .ok_or_else(|| DrillError::Timeout(format!("node {slot} is not running")))?;
        Ok(self
            .http
            .post(node.url("/api/failover/stepdown"))
            .bearer_auth(&self.spec.admin_token)
            .send()
            .await?
            .status())
    }
}
