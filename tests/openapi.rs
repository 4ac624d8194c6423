//! The served OpenAPI documents against the real servers: every path and
//! method a document describes is routed by its process (never the catch-all
//! 404), every route the process serves is described, and the error schema
//! is the one errors really use.

mod common;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use common::cluster::{serial, TestCluster};
use common::{gateway_env, get_json, http_client, unique, wait_ready, KAFKA};

/// The routes each process serves, as the README lists them.
const GATEWAY_ROUTES: [(&str, &str); 7] = [
    ("post", "/api/logs"),
    ("post", "/api/logs/batch"),
    ("get", "/api/system/status"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
];
const NODE_ROUTES: [(&str, &str); 8] = [
    ("get", "/api/failover/status"),
    ("get", "/api/failover/history"),
    ("get", "/api/failover/presence"),
    ("post", "/api/failover/stepdown"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/openapi.json"),
];

fn described(spec: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.push((method.clone(), path.clone()));
        }
    }
    operations.sort();
    operations
}

/// Calls every described operation on `base` and checks none falls through
/// to the catch-all route.
async fn check_against(http: &reqwest::Client, base: &str, spec: &Value, routes: &[(&str, &str)]) {
    let operations = described(spec);
    let mut expected: Vec<(String, String)> = routes
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(operations, expected, "described operations");
    for (method, path) in &operations {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = http
            .request(method.clone(), format!("{base}{path}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("request");
        let status = response.status();
        // Only a 404's body is read: the presence answer never ends.
        let body: Value = if status == StatusCode::NOT_FOUND {
            response.json().await.unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        assert!(
            !(status == StatusCode::NOT_FOUND && body["error"] == "not_found"),
            "{method} {path} is described but not routed"
        );
    }
    let undescribed = http
        .get(format!("{base}/api/undescribed"))
        .send()
        .await
        .expect("request");
    assert_eq!(undescribed.status(), StatusCode::NOT_FOUND);
    assert!(spec["components"]["schemas"]["ErrorBody"]["properties"]["error"].is_object());
}

#[tokio::test]
async fn the_gateway_serves_a_document_of_exactly_its_routes() {
    let gateway = common::start_process(
        "gateway-openapi",
        &["gateway"],
        &gateway_env(&unique("gw-openapi"), KAFKA),
    );
    let http = http_client();
    wait_ready(&http, &gateway).await;
    let spec = get_json(&http, &gateway.url("/api/openapi.json")).await;
    assert!(spec["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    assert!(spec["components"]["schemas"]["LogEventRequest"]["properties"]["level"].is_object());
    check_against(&http, &gateway.base_url, &spec, &GATEWAY_ROUTES).await;
}

#[tokio::test]
async fn a_node_serves_a_document_of_exactly_its_routes() {
    let _serial = serial().await;
    let cluster = TestCluster::start("openapi", 1).await;
    cluster.wait_for_leader(None).await;
    let http = http_client();
    let node = cluster.node(0);
    let spec = get_json(&http, &node.url("/api/openapi.json")).await;
    assert_eq!(
        spec["paths"]["/api/failover/stepdown"]["post"]["security"][0]["admin_token"],
        serde_json::json!([])
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    check_against(&http, &node.base_url, &spec, &NODE_ROUTES).await;
}
