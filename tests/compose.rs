//! No Docker engine runs here, so the compose file is checked as data: every
//! service the configuration refers to is defined, with a healthcheck, on the
//! ports the defaults use.

use std::collections::BTreeSet;

use serde_yaml::Value;
use understudy::config::Config;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docker/docker-compose.yml"
    ))
    .expect("docker/docker-compose.yml exists");
    serde_yaml::from_str(&text).expect("valid YAML")
}

fn published_ports(service: &Value) -> BTreeSet<u16> {
    service["ports"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|mapping| mapping.split(':').next()?.parse().ok())
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
fn the_understudy_services_build_from_the_dockerfile_and_wait_for_healthy_dependencies() {
    let compose = compose();
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker/Dockerfile"))
            .expect("docker/Dockerfile exists");
    assert!(dockerfile.contains("cargo build --release"));
    for name in ["gateway", "node-1", "node-2", "node-3", "migrate"] {
        let service = &compose["services"][name];
        assert_eq!(
            service["build"]["dockerfile"].as_str(),
            Some("docker/Dockerfile"),
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
        for (_, condition) in depends {
            assert_eq!(
                condition["condition"].as_str(),
                Some("service_healthy"),
                "{name}"
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
