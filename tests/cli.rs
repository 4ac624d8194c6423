//! The command line and configuration seen from outside: invalid configuration
//! stops the process with a message naming the key; `SERVER_PORT` is honoured;
//! `understudy config` prints no secret.

mod common;

use std::process::Command;

fn understudy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_understudy"))
}

#[test]
fn invalid_configuration_stops_the_gateway_naming_the_key() {
    let output = understudy()
        .arg("gateway")
        .env("UNDERSTUDY_NODE__HEARTBEAT_TIMEOUT_MS", "10")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("node.heartbeat_timeout_ms"), "{stderr}");

    let output = understudy()
        .arg("gateway")
        .env("UNDERSTUDY_GATEWAY__HTTP_PORT", "eighty")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("http_port"), "{stderr}");
}

#[test]
fn a_configuration_file_is_read_and_unknown_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("understudy.toml");
    std::fs::write(
        &file,
        "cluster = \"east\"\n[kafka]\ntopic = \"from-file\"\n",
    )
    .expect("write");
    let output = understudy()
        .args(["--config", file.to_str().expect("utf-8 path"), "config"])
        .env("UNDERSTUDY_KAFKA__PARTITIONS", "6")
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let effective: toml::Value =
        toml::from_str(&String::from_utf8_lossy(&output.stdout)).expect("toml");
    assert_eq!(effective["cluster"].as_str(), Some("east"));
    assert_eq!(effective["kafka"]["topic"].as_str(), Some("from-file"));
    assert_eq!(effective["kafka"]["partitions"].as_integer(), Some(6));

    std::fs::write(&file, "[gateway]\nport = 1\n").expect("write");
    let output = understudy()
        .args(["--config", file.to_str().expect("utf-8 path"), "config"])
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("port"));
}

#[test]
fn understudy_config_prints_no_password() {
    let output = understudy()
        .arg("config")
        .env(
            "UNDERSTUDY_POSTGRES__URL",
            "postgres://sink:pg-secret@127.0.0.1:5432/understudy",
        )
        .env(
            "UNDERSTUDY_REDIS__URL",
            "redis://user:redis-secret@127.0.0.1:6379",
        )
        .env(
            "UNDERSTUDY_TELEMETRY__OTLP_ENDPOINT",
            "https://u:otlp-secret@collector:4318",
        )
        .env(
            "UNDERSTUDY_POSTGRES__MIGRATIONS_URL",
            "postgres://owner:owner-secret@127.0.0.1/understudy",
        )
        .env("UNDERSTUDY_NODE__ADMIN_TOKEN", "token-secret")
        .output()
        .expect("run");
    assert!(output.status.success());
    let printed = String::from_utf8_lossy(&output.stdout);
    for secret in [
        "pg-secret",
        "redis-secret",
        "otlp-secret",
        "owner-secret",
        "token-secret",
    ] {
        assert!(!printed.contains(secret), "{secret} printed:\n{printed}");
    }
    assert!(
        printed.contains("postgres://sink:***@127.0.0.1:5432/understudy"),
        "{printed}"
    );
}

async fn assert_healthy(process: &common::UnderstudyProcess) {
    let health = common::http_client()
        .get(process.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success());
}

#[tokio::test]
async fn server_port_sets_the_gateway_port() {
    let port = common::free_port();
    let mut env = common::gateway_env(&common::unique("cli-port"), common::KAFKA);
    env.remove("UNDERSTUDY_GATEWAY__HTTP_PORT");
    env.insert("SERVER_PORT".into(), port.to_string());
    let gateway = common::start_process("gateway-port", &["gateway"], &env);
    assert_eq!(gateway.base_url, format!("http://127.0.0.1:{port}"));
    assert_healthy(&gateway).await;
}

#[tokio::test]
async fn a_gateway_reads_understudy_config_and_writes_json_log_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("understudy.toml");
    std::fs::write(&file, "[telemetry]\nlog_format = \"json\"\n").expect("write config");
    let mut env = common::gateway_env(&common::unique("cli-json"), common::KAFKA);
    env.insert("UNDERSTUDY_CONFIG".into(), file.display().to_string());
    // Variables that belong to the scripts and to compose are not keys.
    env.insert("UNDERSTUDY_INFRA_DIR".into(), "/nonexistent".into());
    env.insert("UNDERSTUDY_ADMIN_TOKEN".into(), "for-compose".into());
    let gateway = common::start_process("gateway-json", &["gateway"], &env);
    assert_healthy(&gateway).await;
    let log = std::fs::read_to_string(&gateway.log_path).expect("log");
    let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the gateway logged nothing");
    for line in lines {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["fields"].is_object(),
            "{line}"
        );
    }
}

#[test]
fn the_production_example_configuration_loads_and_validates() {
    let output = understudy()
        .args(["config", "--config"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/production.example.toml"
        ))
        .env("UNDERSTUDY_ZOOKEEPER__DIGEST_AUTH", "understudy:secret")
        // No collector here: the example's CA file exists only on its hosts.
        .env("UNDERSTUDY_TELEMETRY__OTLP_ENDPOINT", "")
        .env(
            "UNDERSTUDY_POSTGRES__URL",
            "postgres://understudy_sink:secret@pg.internal:5432/understudy",
        )
        .output()
        .expect("run understudy config");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("session_timeout_ms = 6000"), "{printed}");
    assert!(printed.contains("discover_nodes = true"), "{printed}");
    assert!(!printed.contains("secret"), "{printed}");
}

#[test]
fn the_deployed_binary_offers_no_drill_load_or_benchmark() {
    let output = understudy().arg("--help").output().expect("run");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for command in ["gateway", "node", "migrate", "config"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    for command in ["drill", "bench", "loadgen", "verify"] {
        assert!(!help.contains(command), "{command} in:\n{help}");
        let refused = understudy().arg(command).output().expect("run");
        assert!(
            !refused.status.success(),
            "`understudy {command}` must not run"
        );
    }
    let lab = Command::new(env!("CARGO_BIN_EXE_understudy-lab"))
        .arg("--help")
        .output()
        .expect("run the lab");
    let help = String::from_utf8_lossy(&lab.stdout);
    for command in ["drill", "bench", "loadgen", "verify"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
}
