//! Helpers for black-box tests: real `understudy` processes on free ports, the
//! real services started by `scripts/infra` on 127.0.0.1, and names unique to
//! each test so tests never see each other's data.
#![allow(dead_code)] // each test binary uses a different subset of these helpers

pub mod cluster;
pub mod drill_run;
pub mod tls;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

/// The broker `scripts/infra up` starts.
pub const KAFKA: &str = "127.0.0.1:9092";
/// The schema owner's URL for the database `scripts/infra up` creates:
/// `UNDERSTUDY_POSTGRES__URL` when set, else the local default. `scripts/test`
/// sets it from `.infra/owner.env` (the password `scripts/infra up --secure`
/// generated), and every process a test starts inherits it.
pub fn postgres_url() -> String {
    std::env::var("UNDERSTUDY_POSTGRES__URL")
        .unwrap_or_else(|_| "postgres://understudy:understudy@127.0.0.1:5432/understudy".to_owned())
}

/// A connection to the database at `url`.
pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "connect to postgres: {error:?}; once `scripts/infra up --secure` has run, \
                 the owner's password is in .infra/owner.env: run the tests with scripts/test"
            )
        });
    tokio::spawn(connection);
    client
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Where child processes write their logs, kept for post-mortems.
pub fn log_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("process-logs");
    std::fs::create_dir_all(&dir).expect("create log dir");
    dir
}

/// A running `understudy` process, killed when dropped: the harness's own
/// process type.
pub use understudy::lab::drill::cluster_process::ClusterProcess as UnderstudyProcess;

/// Starts `understudy <args>` with `env` (and `RUST_LOG` at info), logging
/// under [`log_dir`]; panics with the end of its log when it does not start.
pub fn start_process(
    name: &str,
    args: &[&str],
    env: &HashMap<String, String>,
) -> UnderstudyProcess {
    let log = log_dir().join(format!("{}.log", unique(name)));
    let mut env: Vec<(String, String)> = env.clone().into_iter().collect();
    env.push(("RUST_LOG".into(), TEST_LOG_FILTER.into()));
    UnderstudyProcess::start(understudy_binary(), args, &env, &log, None)
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// What the processes of a test log.
pub const TEST_LOG_FILTER: &str = "info,librdkafka=warn";

/// The deployed binary under test.
pub fn understudy_binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_understudy"))
}

/// Environment for a gateway on a free port publishing to `topic` on `kafka`.
pub fn gateway_env(topic: &str, kafka: &str) -> HashMap<String, String> {
    HashMap::from([
        ("UNDERSTUDY_GATEWAY__BIND_HOST".into(), "127.0.0.1".into()),
        ("UNDERSTUDY_GATEWAY__HTTP_PORT".into(), "0".into()),
        (
            "UNDERSTUDY_GATEWAY__BROKER_PROBE_INTERVAL_MS".into(),
            "200".into(),
        ),
        ("UNDERSTUDY_KAFKA__BOOTSTRAP_SERVERS".into(), kafka.into()),
        ("UNDERSTUDY_KAFKA__TOPIC".into(), topic.into()),
    ])
}

/// An HTTP client that never reuses an idle connection: a server may close one
/// at its keep-alive timeout just as the client sends on it.
/// The value of the first Prometheus sample in `text` whose name and labels
/// start with `series`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with([' ', '{', ',']))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("http client")
}

/// Polls `check` every 50 ms until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the gateway reports ready (the broker answered and the topic exists).
pub async fn wait_ready(http: &reqwest::Client, gateway: &UnderstudyProcess) {
    eventually(Duration::from_secs(60), "gateway readiness", || async {
        let response = http.get(gateway.url("/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

/// Reads the record at (`partition`, `offset`) of `topic` and returns its value.
pub fn read_record(kafka: &str, topic: &str, partition: i32, offset: i64) -> Vec<u8> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("test-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("create consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("add partition");
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(result) = consumer.poll(Duration::from_millis(200)) {
            let message = result.expect("consume");
            assert_eq!(message.offset(), offset, "seek landed on the wrong offset");
            return message.payload().unwrap_or_default().to_vec();
        }
    }
    panic!("no record at {topic}/{partition}@{offset}");
}

/// Sum over partitions of the high watermark: how many records the topic holds.
pub fn records_in_topic(kafka: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("test-watermarks"))
        .create()
        .expect("create consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions())
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum()
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for one test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("free port")
}

/// A private tansu broker on its own port and data directory, for tests that stop it.
pub struct PrivateBroker {
    child: Option<Child>,
    /// `127.0.0.1:<port>`.
    pub address: String,
    /// The address clients are told to reach the broker at (a TLS
    /// terminator in front of it, say); `address` when not set.
    advertised: String,
    dir: tempfile::TempDir,
}

impl PrivateBroker {
    /// Starts a broker and waits until it accepts connections.
    pub fn start() -> Self {
        Self::advertising(None)
    }

    /// Starts a broker that tells clients to reach it at `advertised`.
    pub fn advertising(advertised: Option<&str>) -> Self {
        let port = free_port();
        let address = format!("127.0.0.1:{port}");
        let mut broker = Self {
            child: None,
            advertised: advertised.unwrap_or(&address).to_owned(),
            address,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        broker.restart();
        broker
    }

    /// Starts the broker process again on the same port and data.
    pub fn restart(&mut self) {
        let tansu = std::env::var("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cargo"))
            .join("bin/tansu");
        let listener = format!("tcp://{}", self.address);
        let log = std::fs::File::create(self.dir.path().join("tansu.log")).expect("log");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &format!("tcp://{}", self.advertised),
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tansu (scripts/infra up builds it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&self.address).is_err() {
            assert!(Instant::now() < deadline, "private broker did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the process to exit (a new one would fail to bind otherwise).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until the node whose status is at `status_url` reports `isLeader`.
pub async fn wait_until_leading(http: &reqwest::Client, status_url: &str, what: &str) {
    eventually(Duration::from_secs(30), what, || async {
        let status: serde_json::Value =
            http.get(status_url).send().await.ok()?.json().await.ok()?;
        (status["isLeader"] == true).then_some(())
    })
    .await;
}

/// `GET url`, answered with JSON (any status).
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    http.get(url)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}
