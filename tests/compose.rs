//! No Docker engine runs here. The compose file is checked as data (every
//! service the configuration refers to is defined, with a healthcheck, on the
//! ports the defaults use), and then run as far as this machine allows: the
//! same services from Debian's packages with the file's settings, every
//! healthcheck, every Understudy command with the file's environment.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_yaml::Value;
use understudy::config::Config;

use common::{eventually, free_port, http_client, unique, KAFKA};

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docker/docker-compose.yml"
    ))
    .expect("docker/docker-compose.yml exists");
    let mut compose: Value = serde_yaml::from_str(&text).expect("valid YAML");
    compose.apply_merge().expect("merge keys resolve");
    compose
}

fn published_ports(service: &Value) -> BTreeSet<u16> {
    service["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        // "HOST:CONTAINER" or "IP:HOST:CONTAINER".
        .filter_map(|mapping| mapping.rsplit(':').nth(1)?.parse().ok())
        .collect()
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|port| {
            port.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .expect("address has a port")
}

#[test]
fn every_dependency_is_defined_with_a_healthcheck_on_the_default_port() {
    let compose = compose();
    let services = &compose["services"];
    let defaults = Config::default();
    let postgres_port = port_of(
        defaults
            .postgres
            .url
            .rsplit('@')
            .next()
            .and_then(|host| host.split('/').next())
            .expect("host in url"),
    );
    let expected = [
        ("kafka", port_of(&defaults.kafka.bootstrap_servers)),
        ("zookeeper", port_of(&defaults.zookeeper.connect)),
        ("redis", port_of(&defaults.redis.url)),
        ("postgres", postgres_port),
        ("gateway", defaults.gateway.http_port),
        ("node-1", defaults.node.http_port),
        ("prometheus", 9090),
        ("grafana", 3000),
        ("jaeger", 16686),
    ];
    for (name, port) in expected {
        let service = &services[name];
        assert!(service.is_mapping(), "service `{name}` is missing");
        assert!(
            published_ports(service).contains(&port),
            "service `{name}` does not publish port {port}"
        );
        assert!(
            service["healthcheck"]["test"].is_sequence(),
            "service `{name}` has no healthcheck"
        );
    }
}

#[test]
fn the_understudy_services_share_one_image_and_wait_for_their_dependencies() {
    let compose = compose();
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/Dockerfile"))
            .expect("docker/Dockerfile exists");
    assert!(dockerfile.contains("cargo build --release"));
    assert!(
        dockerfile.contains("\nUSER understudy"),
        "the image runs as an unprivileged user"
    );
    let dockerignore =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.dockerignore"))
            .expect(".dockerignore exists");
    for kept_out in ["target/", ".infra/", "docker/.env"] {
        assert!(
            dockerignore.lines().any(|line| line == kept_out),
            "{kept_out}"
        );
    }
    for name in ["gateway", "node-1", "node-2", "node-3", "migrate"] {
        let service = &compose["services"][name];
        assert_eq!(
            service["build"]["dockerfile"].as_str(),
            Some("docker/Dockerfile"),
            "{name}"
        );
        assert_eq!(
            service["image"].as_str(),
            Some("understudy:local"),
            "{name}"
        );
        if name != "migrate" {
            assert_eq!(
                service["environment"]["UNDERSTUDY_TELEMETRY__OTLP_ENDPOINT"].as_str(),
                Some("http://jaeger:4318"),
                "{name} exports traces to jaeger"
            );
        }
        let depends = service["depends_on"].as_mapping().expect("depends_on");
        for (dependency, condition) in depends {
            let expected = if dependency.as_str() == Some("migrate") {
                "service_completed_successfully"
            } else {
                "service_healthy"
            };
            assert_eq!(condition["condition"].as_str(), Some(expected), "{name}");
        }
        if name.starts_with("node-") {
            assert!(
                depends.contains_key("migrate"),
                "{name} waits for the schema"
            );
        }
    }
}

#[test]
fn grafana_and_prometheus_get_the_dashboard_and_the_alerts() {
    let compose = compose();
    let mounts = |name: &str| -> Vec<String> {
        compose["services"][name]["volumes"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let docker = concat!(env!("CARGO_MANIFEST_DIR"), "/docker");
    for (service, source) in [
        ("grafana", "./grafana/provisioning"),
        ("grafana", "./grafana/dashboards"),
        ("prometheus", "./prometheus.yml"),
        ("prometheus", "./alerts.yml"),
    ] {
        assert!(
            mounts(service)
                .iter()
                .any(|m| m.starts_with(&format!("{source}:"))),
            "{service} does not mount {source}"
        );
        let path = format!("{docker}/{}", source.trim_start_matches("./"));
        assert!(std::path::Path::new(&path).exists(), "{path} is missing");
    }
    let dashboard = std::fs::read_to_string(format!("{docker}/grafana/dashboards/understudy.json"))
        .expect("dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .filter_map(|panel| panel["title"].as_str())
        .collect();
    for seed_panel in [
        "Leadership timeline",
        "Message processing rate",
        "Consumer lag",
        "Heartbeat health",
        "Recovery time distribution",
    ] {
        assert!(
            titles.iter().any(|title| title.starts_with(seed_panel)),
            "the seed's panel `{seed_panel}` is missing: {titles:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The compose file run here: each service it defines started from Debian's
// packages with the file's own settings, each healthcheck run as written
// (adapted only where a container's address or port differs), and every
// Understudy command started with the file's environment.

/// Services whose image has no Debian counterpart here: the broker is tansu
/// (no `kafka-broker-api-versions.sh`), and there is no Grafana or Jaeger.
const NOT_RUN_HERE: [&str; 3] = ["kafka", "grafana", "jaeger"];

/// The secrets `docker/.env` provides, as compose substitutes them.
fn secrets() -> HashMap<&'static str, String> {
    [
        "POSTGRES_PASSWORD",
        "UNDERSTUDY_SINK_PASSWORD",
        "REDIS_PASSWORD",
        "ZOOKEEPER_SECRET",
        "UNDERSTUDY_ADMIN_TOKEN",
        "GRAFANA_ADMIN_PASSWORD",
    ]
    .into_iter()
    .map(|name| (name, uuid::Uuid::new_v4().simple().to_string()))
    .collect()
}

/// Compose's `${NAME:?message}` and `${NAME:-default}`; a variable the
/// `.env` does not define fails, as `docker compose` would.
fn substitute(text: &str, values: &HashMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let expression = &rest[start + 2..end];
        let name = expression
            .split([':', '-', '?'])
            .next()
            .expect("a variable name");
        let value = match (values.get(name), expression.split_once(":-")) {
            (Some(value), _) => value.clone(),
            (None, Some((_, default))) => default.to_owned(),
            (None, None) => panic!("`{expression}` is not set in docker/.env.example"),
        };
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Host:port pairs of the compose network and what answers for them here.
struct Addresses(Vec<(String, String)>);

impl Addresses {
    fn rewrite(&self, text: &str) -> String {
        self.0
            .iter()
            .fold(text.to_owned(), |text, (from, to)| text.replace(from, to))
    }
}

/// A service's environment as the container sees it, addresses rewritten.
fn environment(
    service: &Value,
    values: &HashMap<&str, String>,
    addresses: &Addresses,
) -> HashMap<String, String> {
    service["environment"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(key, value)| {
            let key = key.as_str().expect("key").to_owned();
            let value = value.as_str().expect("a string value");
            (key, addresses.rewrite(&substitute(value, values)))
        })
        .collect()
}

/// Runs a service's healthcheck here: `adapt` turns the container's command
/// into the local one (a binary's path, a port); `env` is the container's.
fn run_healthcheck(
    name: &str,
    service: &Value,
    addresses: &Addresses,
    env: &HashMap<String, String>,
    adapt: impl Fn(Vec<String>) -> Vec<String>,
) {
    let test: Vec<String> = service["healthcheck"]["test"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{name} has no healthcheck"))
        .iter()
        .map(|part| addresses.rewrite(part.as_str().expect("string")))
        .collect();
    let command = match test[0].as_str() {
        "CMD" => adapt(test[1..].to_vec()),
        "CMD-SHELL" => adapt(vec!["sh".into(), "-c".into(), test[1].clone()]),
        other => panic!("{name}: unknown healthcheck form {other}"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = Command::new(&command[0])
            .args(&command[1..])
            .envs(env)
            .output()
            .unwrap_or_else(|e| panic!("{name}: cannot run {command:?}: {e}"));
        if output.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name}'s healthcheck {command:?} keeps failing: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A child process killed when the test ends, however it ends.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// ZooKeeper configured as the official image's entrypoint turns `ZOO_*`
/// variables into `zoo.cfg`.
fn zookeeper(env: &HashMap<String, String>, dir: &Path, port: u16) -> (Service, PathBuf) {
    let mut config = format!(
        "dataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\ninitLimit=5\nsyncLimit=2\n",
        dir.join("data").display()
    );
    for (key, value) in env {
        match key.as_str() {
            "ZOO_TICK_TIME" => config += &format!("tickTime={value}\n"),
            "ZOO_4LW_COMMANDS_WHITELIST" => config += &format!("4lw.commands.whitelist={value}\n"),
            "ZOO_ADMINSERVER_ENABLED" => config += &format!("admin.enableServer={value}\n"),
            "ZOO_CFG_EXTRA" => {
                for setting in value.split_whitespace() {
                    config += &format!("{setting}\n");
                }
            }
            other => panic!("zookeeper: {other} is not mapped to zoo.cfg by this test"),
        }
    }
    let path = dir.join("zoo.cfg");
    std::fs::write(&path, config).expect("zoo.cfg");
    let child = Command::new("java")
        .args([
            "-cp",
            "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-nop.jar",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
        ])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("java (scripts/infra installs ZooKeeper)");
    (Service(child), path)
}

/// A fresh PostgreSQL cluster set up as the `postgres` image sets up an empty
/// data directory: the superuser and database of `POSTGRES_*`, password
/// authentication over TCP, then every script of `docker-entrypoint-initdb.d`.
struct FreshPostgres {
    data: PathBuf,
    port: u16,
}

impl FreshPostgres {
    fn start(env: &HashMap<String, String>, dir: &Path, init_scripts: &Path) -> Self {
        let bin = Path::new(PG_BIN);
        let data = dir.join("pgdata");
        let port = free_port();
        std::fs::create_dir_all(&data).expect("data dir");
        let password_file = dir.join("pwfile");
        std::fs::write(&password_file, &env["POSTGRES_PASSWORD"]).expect("pwfile");
        run_checked(&["chown", "-R", "postgres", &dir.display().to_string()]);
        let postgres = Self { data, port };
        as_postgres(&[
            &bin.join("initdb").display().to_string(),
            "-D",
            &postgres.data.display().to_string(),
            "-U",
            &env["POSTGRES_USER"],
            "--pwfile",
            &password_file.display().to_string(),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]);
        as_postgres(&[
            &bin.join("pg_ctl").display().to_string(),
            "-D",
            &postgres.data.display().to_string(),
            "-w",
            "-o",
            &format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1",
                dir.display()
            ),
            "-l",
            &dir.join("postgres.log").display().to_string(),
            "start",
        ]);
        let socket = dir.display().to_string();
        as_postgres(&[
            "psql",
            "-h",
            &socket,
            "-p",
            &port.to_string(),
            "-U",
            &env["POSTGRES_USER"],
            "-d",
            "postgres",
            "-c",
            &format!("CREATE DATABASE {}", env["POSTGRES_DB"]),
        ]);
        let mut scripts: Vec<PathBuf> = std::fs::read_dir(init_scripts)
            .expect("init scripts")
            .map(|entry| entry.expect("entry").path())
            .collect();
        scripts.sort();
        for script in scripts {
            let output = Command::new("bash")
                .arg(&script)
                .envs(env)
                .env("PGHOST", &socket)
                .env("PGPORT", port.to_string())
                .output()
                .expect("run init script");
            assert!(
                output.status.success(),
                "{}: {}",
                script.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        postgres
    }
}

impl Drop for FreshPostgres {
    fn drop(&mut self) {
        let pg_ctl = format!("{PG_BIN}/pg_ctl");
        let data = self.data.display().to_string();
        let _ = Command::new("runuser")
            .args([
                "-u",
                "postgres",
                "--",
                &pg_ctl,
                "-D",
                &data,
                "-m",
                "immediate",
                "stop",
            ])
            .output();
    }
}

/// Debian's PostgreSQL 15 binaries.
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Runs `command` as the `postgres` user (initdb refuses root).
fn as_postgres(command: &[&str]) {
    run_checked(&[&["runuser", "-u", "postgres", "--"], command].concat());
}

/// Runs `command` and requires it to succeed.
fn run_checked(command: &[&str]) {
    let output = Command::new(command[0])
        .args(&command[1..])
        .output()
        .expect("run a command");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn every_healthcheck_passes_and_every_understudy_command_runs_with_the_compose_settings() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("services");
    let values = secrets();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/.env.example"))
            .expect("docker/.env.example");
    for name in values.keys() {
        assert!(
            example.contains(&format!("{name}=")),
            "{name} missing from .env.example"
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (zookeeper_port, redis_port, prometheus_port, gateway_port) =
        (free_port(), free_port(), free_port(), free_port());
    let node_ports = [free_port(), free_port(), free_port()];
    let pg_dir = dir.path().join("postgres");
    let mut exercised: BTreeSet<String> = BTreeSet::new();

    // ZooKeeper.
    let service = &compose["services"]["zookeeper"];
    let zk_env = environment(service, &values, &Addresses(vec![]));
    let zk_dir = dir.path().join("zookeeper");
    std::fs::create_dir_all(zk_dir.join("data")).expect("zk dir");
    let (_zookeeper, zoo_cfg) = zookeeper(&zk_env, &zk_dir, zookeeper_port);
    run_healthcheck(
        "zookeeper",
        service,
        &Addresses(vec![]),
        &zk_env,
        |mut command| {
            // The image's script reads /conf/zoo.cfg; Debian's takes the file.
            assert_eq!(command, ["zkServer.sh", "status"]);
            command[0] = "/usr/share/zookeeper/bin/zkServer.sh".into();
            command.push(zoo_cfg.display().to_string());
            command
        },
    );
    exercised.insert("zookeeper".into());

    // Redis, with the compose file's command line.
    let service = &compose["services"]["redis"];
    let redis_env = environment(service, &values, &Addresses(vec![]));
    let mut redis_command: Vec<String> = service["command"]
        .as_sequence()
        .expect("redis command")
        .iter()
        .map(|part| substitute(part.as_str().expect("string"), &values))
        .collect();
    redis_command.extend([
        "--port".into(),
        redis_port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
    ]);
    let _redis = Service(
        Command::new(&redis_command[0])
            .args(&redis_command[1..])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    run_healthcheck(
        "redis",
        service,
        &Addresses(vec![]),
        &redis_env,
        |mut command| {
            command.extend(["-p".into(), redis_port.to_string()]);
            command
        },
    );
    exercised.insert("redis".into());

    // PostgreSQL, initialised as the image does, with the compose file's init scripts.
    let service = &compose["services"]["postgres"];
    let pg_env = environment(service, &values, &Addresses(vec![]));
    let init_scripts = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/docker")).join(
        service["volumes"][0]
            .as_str()
            .expect("init scripts mount")
            .split(':')
            .next()
            .expect("source"),
    );
    let postgres = FreshPostgres::start(&pg_env, &pg_dir, &init_scripts);
    let mut healthcheck_env = pg_env.clone();
    healthcheck_env.insert("PGPORT".into(), postgres.port.to_string());
    run_healthcheck(
        "postgres",
        service,
        &Addresses(vec![]),
        &healthcheck_env,
        |c| c,
    );
    exercised.insert("postgres".into());

    // Prometheus with the compose file's configuration and alert rules.
    let service = &compose["services"]["prometheus"];
    let prometheus_addresses = Addresses(vec![(
        "localhost:9090".into(),
        format!("127.0.0.1:{prometheus_port}"),
    )]);
    let _prometheus = Service(
        Command::new("prometheus")
            .arg(concat!(
                "--config.file=",
                env!("CARGO_MANIFEST_DIR"),
                "/docker/prometheus.yml"
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus"),
    );
    run_healthcheck(
        "prometheus",
        service,
        &prometheus_addresses,
        &HashMap::new(),
        |c| c,
    );
    exercised.insert("prometheus".into());

    // Understudy: where each compose host name answers here.
    let cluster = unique("compose").replace('-', "_");
    let mut addresses = vec![
        ("kafka:19092".to_owned(), KAFKA.to_owned()),
        (
            "zookeeper:2181".to_owned(),
            format!("127.0.0.1:{zookeeper_port}"),
        ),
        ("redis:6379".to_owned(), format!("127.0.0.1:{redis_port}")),
        (
            "postgres:5432".to_owned(),
            format!("127.0.0.1:{}", postgres.port),
        ),
        (
            "jaeger:4318".to_owned(),
            format!("127.0.0.1:{}", free_port()),
        ),
        (
            "localhost:8080".to_owned(),
            format!("127.0.0.1:{gateway_port}"),
        ),
    ];
    for (n, port) in node_ports.iter().enumerate() {
        let compose_port = 8081 + n;
        addresses.push((
            format!("node-{}:{compose_port}", n + 1),
            format!("127.0.0.1:{port}"),
        ));
        addresses.push((
            format!("localhost:{compose_port}"),
            format!("127.0.0.1:{port}"),
        ));
    }
    let addresses = Addresses(addresses);
    let isolated = |mut env: HashMap<String, String>| {
        env.insert("UNDERSTUDY_CLUSTER".into(), cluster.clone());
        env.insert("UNDERSTUDY_KAFKA__TOPIC".into(), cluster.replace('_', "-"));
        env
    };

    let service = &compose["services"]["migrate"];
    let migrate_env = environment(service, &values, &addresses);
    let args: Vec<&str> = service["command"]
        .as_sequence()
        .expect("migrate command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let migrate = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(&args)
        .envs(&migrate_env)
        .output()
        .expect("understudy migrate");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    exercised.insert("migrate".into());

    let service = &compose["services"]["gateway"];
    let mut gateway_env = isolated(environment(service, &values, &addresses));
    gateway_env.insert(
        "UNDERSTUDY_GATEWAY__HTTP_PORT".into(),
        gateway_port.to_string(),
    );
    let _gateway = common::start_process("compose-gateway", &["gateway"], &gateway_env);
    run_healthcheck("gateway", service, &addresses, &gateway_env, |c| c);
    exercised.insert("gateway".into());

    let mut nodes = Vec::new();
    for (n, port) in node_ports.iter().enumerate() {
        let name = format!("node-{}", n + 1);
        let service = &compose["services"][name.as_str()];
        let mut env = isolated(environment(service, &values, &addresses));
        env.insert("SERVER_PORT".into(), port.to_string());
        nodes.push(common::start_process(
            &format!("compose-{name}"),
            &["node"],
            &env,
        ));
        run_healthcheck(&name, service, &addresses, &env, |c| c);
        exercised.insert(name);
    }

    // The three nodes, holding the sink role only, elect one leader that
    // stores what the gateway accepts.
    let http = http_client();
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let id = eventually(Duration::from_secs(60), "an event accepted", || async {
        let response = http
            .post(format!("{gateway}/api/logs"))
            .json(&serde_json::json!({"level": "INFO", "message": "through compose", "source": "compose-test"}))
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: serde_json::Value = response.json().await.ok()?;
        body["messageId"].as_str().map(str::to_owned)
    })
    .await;
    let owner = common::pg_connect(&format!(
        "postgres://understudy:{}@127.0.0.1:{}/understudy",
        values["POSTGRES_PASSWORD"], postgres.port
    ))
    .await;
    eventually(Duration::from_secs(60), "the event stored", || async {
        let rows = owner
            .query(
                "SELECT 1 FROM log_events WHERE message_id::text = $1",
                &[&id],
            )
            .await
            .ok()?;
        (!rows.is_empty()).then_some(())
    })
    .await;
    let leaders = leader_count(&http, &node_ports).await;
    assert_eq!(leaders, 1, "exactly one compose node leads");

    let not_run: BTreeSet<&str> = services
        .keys()
        .filter_map(Value::as_str)
        .filter(|name| !exercised.contains(*name))
        .collect();
    assert_eq!(
        not_run,
        BTreeSet::from(NOT_RUN_HERE),
        "a service is neither exercised here nor listed as impossible to run here"
    );
}

/// How many of the nodes on `ports` report `isLeader`.
async fn leader_count(http: &reqwest::Client, ports: &[u16]) -> usize {
    let mut leaders = 0;
    for port in ports {
        let status: serde_json::Value = http
            .get(format!("http://127.0.0.1:{port}/api/failover/status"))
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("status JSON");
        if status["isLeader"] == true {
            leaders += 1;
        }
    }
    leaders
}
