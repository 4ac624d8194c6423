//! Owns a drill's cluster: a gateway and several nodes started as child
//! processes of the deployed `understudy` binary (the one beside the running
//! executable: cargo builds both into one directory), with a cluster name and
//! topic of their own, on free ports, logging to files. Every child is killed when the cluster is dropped.
//! Where the machine allows it, each node starts inside a cgroup of its own so
//! that a drill can cut it off the network ([`NetworkCuts`]).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::drill::network_cut::{Cut, NetworkCuts};
use crate::drill::DrillError;

/// One child process and where it listens.
pub struct ClusterProcess {
    child: Child,
    /// Base URL it announced.
    pub base_url: String,
}

impl ClusterProcess {
    /// Starts `understudy <args>` with `env`, waiting for its "listening on"
    /// line; inside the cgroup of `cgroup_procs` when given.
    fn start(
        args: &[&str],
        env: &[(String, String)],
        log: &Path,
        cgroup_procs: Option<&Path>,
    ) -> Result<Self, DrillError> {
        let executable = understudy_binary()?;
        let mut command = match cgroup_procs {
            // The shell joins the cgroup and then becomes the node (same pid),
            // so not one socket of the node is opened outside it.
            Some(procs) => {
                let mut command = Command::new("sh");
                command
                    .args(["-c", "echo $$ > \"$1\" && shift && exec \"$@\"", "sh"])
                    .arg(procs)
                    .arg(executable);
                command
            }
            None => Command::new(executable),
        };
        let mut child = command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| DrillError::Timeout("child has no stdout".into()))?;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once(" listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(base_url) => Ok(Self { child, base_url }),
            Err(_) => {
                let _ = child.kill();
                Err(DrillError::Timeout(format!(
                    "{args:?} did not start; see {}",
                    log.display()
                )))
            }
        }
    }

    /// Process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// Resident memory of the process, in KiB (from `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for ClusterProcess {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
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

/// The drill's cluster.
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
    logs: PathBuf,
    /// The nodes' admin token (random per cluster).
    admin_token: String,
    http: reqwest::Client,
    restarts: usize,
}

impl LocalCluster {
    /// Starts a gateway and `node_count` nodes; logs go to `logs`.
    pub async fn start(node_count: usize, logs: &Path) -> Result<Self, DrillError> {
        Self::start_on(None, node_count, logs).await
    }

    /// Starts a cluster on `topic` (one of its own when `None`: the gateway
    /// creates it).
    pub async fn start_on(
        topic: Option<String>,
        node_count: usize,
        logs: &Path,
    ) -> Result<Self, DrillError> {
        std::fs::create_dir_all(logs)?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let name = format!("drill_{id}");
        let topic = topic.unwrap_or_else(|| format!("drill-{id}"));
        let env = [
            ("UNDERSTUDY_CLUSTER".to_owned(), name.clone()),
            ("UNDERSTUDY_KAFKA__TOPIC".to_owned(), topic.clone()),
            (
                "UNDERSTUDY_GATEWAY__BIND_HOST".to_owned(),
                "127.0.0.1".to_owned(),
            ),
            ("UNDERSTUDY_GATEWAY__HTTP_PORT".to_owned(), "0".to_owned()),
            ("UNDERSTUDY_GATEWAY__NODE_URLS".to_owned(), "[]".to_owned()),
        ];
        let gateway = ClusterProcess::start(&["gateway"], &env, &logs.join("gateway.log"), None)?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_millis(500))
            .build()?;
        let mut cluster = Self {
            name,
            topic,
            gateway,
            nodes: Vec::new(),
            cuts: NetworkCuts::prepare(&id),
            logs: logs.to_owned(),
            admin_token: uuid::Uuid::new_v4().simple().to_string(),
            http,
            restarts: 0,
        };
        cluster.wait_gateway_ready().await?;
        for slot in 0..node_count {
            cluster.nodes.push(None);
            cluster.start_node(slot)?;
        }
        Ok(cluster)
    }

    fn node_env(&self) -> Vec<(String, String)> {
        vec![
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
                self.admin_token.clone(),
            ),
        ]
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
        let log = self.logs.join(format!("node-{slot}-{}.log", self.restarts));
        let procs = match &self.cuts {
            Some(cuts) => Some(cuts.procs_file(slot)?),
            None => None,
        };
        let mut env = self.node_env();
        env.extend_from_slice(extra_env);
        self.nodes[slot] = Some(ClusterProcess::start(
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
    pub async fn status(&self, slot: usize) -> Option<Value> {
        let node = self.nodes.get(slot)?.as_ref()?;
        let response = self
            .http
            .get(format!("{}/api/failover/status", node.base_url))
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
                    if status["isLeader"] == true {
                        leaders.push((slot, status["epoch"].as_i64().unwrap_or(0)));
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
            status["role"] == "STANDBY" && status["zookeeperConnected"] == true
        })
        .await
    }

    /// Waits until the gateway accepts events again: ready, and its circuit
    /// breaker in front of the broker closed.
    pub async fn wait_for_gateway_accepting(&self, timeout: Duration) -> Result<(), DrillError> {
        let deadline = Instant::now() + timeout;
        let status_url = format!("{}/api/system/status", self.gateway.base_url);
        while Instant::now() < deadline {
            let status: Option<Value> = match self.http.get(&status_url).send().await {
                Ok(response) => response.json().await.ok(),
                Err(_) => None,
            };
            if let Some(status) = status {
                if status["broker"]["status"] == "UP" && status["broker"]["circuit"] == "closed" {
                    return Ok(());
                }
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
            status["zookeeperConnected"] == true
        })
        .await
    }

    /// Polls the status of the node in `slot` until `ready` holds.
    async fn wait_for_node(
        &self,
        slot: usize,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&Value) -> bool,
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
    pub async fn step_down(&self, slot: usize) -> Result<(), DrillError> {
        let node = self.nodes[slot]
            .as_ref()
            .ok_or_else(|| DrillError::Timeout(format!("node {slot} is not running")))?;
        self.http
            .post(format!("{}/api/failover/stepdown", node.base_url))
            .bearer_auth(&self.admin_token)
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}
