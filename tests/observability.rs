//! Observability checked for real: the seed's metrics scraped from running
//! processes across a failover, and Debian's Prometheus scraping a test cluster
//! and answering every query of the Grafana dashboard and every alert rule.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use common::cluster::{serial, TestCluster};
use common::{eventually, free_port, http_client, sample};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

async fn scrape(http: &reqwest::Client, url: &str) -> String {
    http.get(url)
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("metrics text")
}

#[tokio::test]
async fn the_seed_metrics_follow_a_failover() {
    let _serial = serial().await;
    let cluster = TestCluster::start("metrics", 2).await;
    let http = http_client();
    for i in 0..5 {
        cluster
            .publish(&format!("metric {i}"))
            .await
            .expect("acknowledged");
    }
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let standby = 1 - leader;
    let before = eventually(Duration::from_secs(20), "five events counted", || async {
        let text = scrape(&http, &cluster.node(leader).url("/metrics")).await;
        (sample(&text, "messages_processed_total") == Some(5.0)).then_some(text)
    })
    .await;
    assert_eq!(sample(&before, "leader_status"), Some(1.0));
    assert_eq!(sample(&before, "leader_epoch"), Some(epoch as f64));
    assert_eq!(sample(&before, "messages_lost_total"), Some(0.0));
    assert_eq!(sample(&before, "zookeeper_connected"), Some(1.0));
    let standby_before = scrape(&http, &cluster.node(standby).url("/metrics")).await;
    assert_eq!(sample(&standby_before, "leader_status"), Some(0.0));
    // The seed's failover metrics exist at zero before any takeover, so
    // their alerts have a series to judge.
    assert_eq!(
        sample(
            &standby_before,
            "failover_events_total{kind=\"failover\",reason=\"leader departed\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&standby_before, "failover_recovery_time_seconds_count"),
        Some(0.0)
    );

    assert!(cluster.step_down(leader).await.is_success());
    cluster.wait_for_leader(Some(epoch)).await;
    cluster
        .publish("after the failover")
        .await
        .expect("acknowledged");

    let after = eventually(
        Duration::from_secs(20),
        "a recovery time observed",
        || async {
            let text = scrape(&http, &cluster.node(standby).url("/metrics")).await;
            (sample(&text, "failover_recovery_time_seconds_count") == Some(1.0)).then_some(text)
        },
    )
    .await;
    assert_eq!(sample(&after, "leader_status"), Some(1.0));
    assert!(sample(&after, "leader_epoch").is_some_and(|e| e > epoch as f64));
    assert_eq!(
        sample(
            &after,
            "failover_events_total{kind=\"failover\",reason=\"leader departed\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&after, "state_reconciliation_mismatches_total"),
        Some(0.0)
    );
    eventually(
        Duration::from_secs(10),
        "consumer lag per partition",
        || async {
            let text = scrape(&http, &cluster.node(standby).url("/metrics")).await;
            sample(&text, "consumer_lag_records{partition=\"0\"}")
        },
    )
    .await;
    let old_leader = scrape(&http, &cluster.node(leader).url("/metrics")).await;
    assert_eq!(sample(&old_leader, "leader_status"), Some(0.0));

    let gateway = scrape(&http, &cluster.gateway.url("/metrics")).await;
    assert_eq!(
        sample(
            &gateway,
            "gateway_requests_total{route=\"/api/logs\",status=\"202\"}"
        ),
        Some(6.0)
    );
    assert_eq!(sample(&gateway, "gateway_broker_ready"), Some(1.0));
    assert!(sample(
        &gateway,
        "gateway_produce_duration_seconds_count{outcome=\"ack\"}"
    )
    .is_some());
}

/// Every PromQL expression of the dashboard's panels.
fn dashboard_queries() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{ROOT}/docker/grafana/dashboards/understudy.json"))
        .expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| panel["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|target| target["expr"].as_str().map(str::to_owned))
        .collect()
}

/// Every alert rule's expression without its threshold: the series it judges.
fn rule_series() -> Vec<String> {
    let text = std::fs::read_to_string(format!("{ROOT}/docker/alerts.yml")).expect("rules");
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).expect("rules YAML");
    rules["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|rule| rule["expr"].as_str().map(str::to_owned))
        // `absent(…)` and `up` judge the scrape itself; promtool's rule tests
        // (docker/alerts_test.yml) cover them.
        .filter_map(|expr| {
            let judged = expr.split(" or ").next()?.to_owned();
            (!judged.starts_with("absent(") && !judged.starts_with("up{")).then_some(judged)
        })
        .map(|expr| {
            let cut = [" > ", " < ", " == "]
                .iter()
                .filter_map(|op| expr.rfind(op))
                .max()
                .expect("a threshold");
            expr[..cut].trim().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn prometheus_answers_every_dashboard_query_and_alert_rule() {
    let _serial = serial().await;
    for check in [
        vec!["check", "config", &format!("{ROOT}/docker/prometheus.yml")],
        vec!["check", "rules", &format!("{ROOT}/docker/alerts.yml")],
        vec!["test", "rules", &format!("{ROOT}/docker/alerts_test.yml")],
    ] {
        let output = Command::new("promtool")
            .args(&check)
            .output()
            .expect("promtool (scripts/bootstrap installs it)");
        assert!(
            output.status.success(),
            "promtool {check:?}: {}",
            String::from_utf8_lossy(&output.stdout)
        );
    }

    let cluster = TestCluster::start("prometheus", 2).await;
    let targets: Vec<String> = std::iter::once(&cluster.gateway)
        .chain(cluster.nodes.iter().flatten())
        .map(|process| process.base_url.trim_start_matches("http://").to_owned())
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {ROOT}/docker/alerts.yml\nscrape_configs:\n  - job_name: understudy\n    static_configs:\n      - targets: {targets:?}\n"
        ),
    )
    .expect("write config");
    let port = free_port();
    let mut prometheus = Command::new("prometheus")
        .args([
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            &format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (scripts/bootstrap installs it)");
    let http = http_client();
    let api = format!("http://127.0.0.1:{port}");
    eventually(
        Duration::from_secs(30),
        "prometheus to be ready",
        || async {
            let response = http.get(format!("{api}/-/ready")).send().await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;

    // Traffic and a failover while Prometheus watches, so rates and the
    // recovery histogram have samples to work on.
    for i in 0..10 {
        cluster
            .publish(&format!("scraped {i}"))
            .await
            .expect("acknowledged");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    assert!(cluster.step_down(leader).await.is_success());
    cluster.wait_for_leader(Some(epoch)).await;
    for i in 0..10 {
        cluster
            .publish(&format!("after {i}"))
            .await
            .expect("acknowledged");
    }

    let queries: Vec<String> = dashboard_queries()
        .into_iter()
        .chain(rule_series())
        .collect();
    assert!(queries.len() >= 15, "{queries:?}");
    for query in &queries {
        eventually(
            Duration::from_secs(30),
            &format!("data for `{query}`"),
            || async {
                let answer: Value = http
                    .get(format!("{api}/api/v1/query"))
                    .query(&[("query", query.as_str())])
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                assert_eq!(answer["status"], "success", "`{query}`: {answer}");
                (!answer["data"]["result"].as_array()?.is_empty()).then_some(())
            },
        )
        .await;
    }
    let _ = prometheus.kill();
    let _ = prometheus.wait();
}
