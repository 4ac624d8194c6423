//! Black-box tests of `understudy gateway` against the real broker: accepted
//! events are in the topic, bad input gets a 4xx and never reaches the topic, and
//! a stopped broker gets 503 (never 2xx) until it returns.

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use understudy::log_event::{Level, LogEvent};
use uuid::Uuid;

use common::{
    eventually, gateway_env, get_json, read_record, records_in_topic, unique, wait_ready,
    PrivateBroker, UnderstudyProcess, KAFKA,
};

fn read_event(topic: &str, accepted: &Value) -> LogEvent {
    let partition = accepted["partition"].as_i64().expect("partition") as i32;
    let offset = accepted["offset"].as_i64().expect("offset");
    serde_json::from_slice(&read_record(KAFKA, topic, partition, offset)).expect("an event")
}

async fn started_gateway(topic: &str) -> (UnderstudyProcess, reqwest::Client) {
    let gateway = common::start_process("gateway", &["gateway"], &gateway_env(topic, KAFKA));
    let http = common::http_client();
    wait_ready(&http, &gateway).await;
    (gateway, http)
}

#[tokio::test]
async fn an_accepted_event_is_in_the_topic_with_its_message_id() {
    let topic = unique("gw-single");
    let (gateway, http) = started_gateway(&topic).await;

    let response = http
        .post(gateway.url("/api/logs"))
        .json(&json!({"level":"INFO","message":"Pre-failover message 1","source":"test"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.expect("json");
    let stored = read_event(&topic, &accepted);
    assert_eq!(stored.message_id.to_string(), accepted["messageId"]);
    assert_eq!(stored.level, Level::Info);
    assert_eq!(stored.message, "Pre-failover message 1");
    assert_eq!(stored.source, "test");

    let client_id = Uuid::now_v7();
    let response = http
        .post(gateway.url("/api/logs"))
        .json(&json!({
            "level":"warn", "message":"with id", "source":"billing",
            "message_id": client_id, "timestamp": "2026-01-02T03:04:05Z",
            "attributes": {"user": 42, "tags": ["a", "b"]}
        }))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.expect("json");
    assert_eq!(accepted["messageId"], client_id.to_string());
    let stored = read_event(&topic, &accepted);
    assert_eq!(stored.message_id, client_id);
    assert_eq!(stored.level, Level::Warn);
    assert_eq!(stored.timestamp.to_rfc3339(), "2026-01-02T03:04:05+00:00");
    assert_eq!(stored.attributes["user"], 42);

    // The camelCase spelling every answer uses is accepted as well.
    let camel_id = Uuid::now_v7();
    let response = http
        .post(gateway.url("/api/logs"))
        .json(&json!({"level":"INFO", "message":"m", "source":"s", "messageId": camel_id}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let accepted: Value = response.json().await.expect("json");
    assert_eq!(accepted["messageId"], camel_id.to_string());
    assert_eq!(
        accepted["message_id"], accepted["messageId"],
        "the deprecated spelling of the id is still answered"
    );

    // Both spellings at once is one field given twice: refused, not guessed.
    let response = http
        .post(gateway.url("/api/logs"))
        .json(&json!({"level":"INFO", "message":"m", "source":"s",
            "messageId": Uuid::now_v7(), "message_id": Uuid::now_v7()}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_batch_lands_in_the_topic_item_by_item() {
    let topic = unique("gw-batch");
    let (gateway, http) = started_gateway(&topic).await;

    let events: Vec<Value> = (0..5)
        .map(|i| json!({"level":"INFO","message":format!("batch {i}"),"source":format!("s{i}")}))
        .collect();
    let response = http
        .post(gateway.url("/api/logs/batch"))
        .json(&events)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["accepted"], 5);
    for (i, result) in body["results"]
        .as_array()
        .expect("results")
        .iter()
        .enumerate()
    {
        assert_eq!(result["index"], i);
        assert_eq!(result["status"], 202);
        assert_eq!(read_event(&topic, result).message, format!("batch {i}"));
    }

    let ndjson = "{\"level\":\"ERROR\",\"message\":\"nd 1\",\"source\":\"n\"}\n\
                  {\"level\":\"LOUD\",\"message\":\"nd 2\",\"source\":\"n\"}\n\
                  {not json\n\
                  {\"level\":\"debug\",\"message\":\"nd 3\",\"source\":\"n\"}\n";
    let response = http
        .post(gateway.url("/api/logs/batch"))
        .header("content-type", "application/x-ndjson")
        .body(ndjson)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::MULTI_STATUS);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 2);
    let results = body["results"].as_array().expect("results");
    assert_eq!(read_event(&topic, &results[0]).message, "nd 1");
    assert_eq!(results[1]["status"], 422);
    assert_eq!(results[1]["error"], "invalid_event");
    assert_eq!(results[2]["status"], 400);
    assert_eq!(results[2]["error"], "malformed_json");
    assert_eq!(read_event(&topic, &results[3]).message, "nd 3");
    assert_eq!(records_in_topic(KAFKA, &topic), 7);
}

/// One hostile request and the answer it must get: name, path, content type,
/// body, status, and `error` code (empty for a batch answered per item).
type BadRequest = (
    &'static str,
    &'static str,
    &'static str,
    Vec<u8>,
    StatusCode,
    &'static str,
);

#[tokio::test]
async fn bad_input_gets_a_json_4xx_and_nothing_reaches_the_topic() {
    let topic = unique("gw-bad");
    let mut env = gateway_env(&topic, KAFKA);
    env.insert("UNDERSTUDY_GATEWAY__MAX_BODY_BYTES".into(), "65536".into());
    env.insert(
        "UNDERSTUDY_GATEWAY__MAX_MESSAGE_BYTES".into(),
        "1024".into(),
    );
    env.insert("UNDERSTUDY_GATEWAY__MAX_SOURCE_BYTES".into(), "64".into());
    env.insert("UNDERSTUDY_GATEWAY__MAX_BATCH_EVENTS".into(), "10".into());
    let gateway = common::start_process("gateway-bad", &["gateway"], &env);
    let http = common::http_client();
    wait_ready(&http, &gateway).await;

    let seed = |level: &str, message: &str, source: &str| {
        json!({"level": level, "message": message, "source": source}).to_string()
    };
    let json_type = "application/json";
    let cases: Vec<BadRequest> = vec![
        ("unknown level", "/api/logs", json_type, seed("LOUD", "m", "s").into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("empty message", "/api/logs", json_type, seed("INFO", "", "s").into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("oversized message", "/api/logs", json_type, seed("INFO", &"x".repeat(2000), "s").into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("oversized source", "/api/logs", json_type, seed("INFO", "m", &"s".repeat(65)).into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("NUL in message", "/api/logs", json_type, seed("INFO", "a\u{0}b", "s").into(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("missing field", "/api/logs", json_type, br#"{"level":"INFO","message":"m"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("unknown field", "/api/logs", json_type, br#"{"level":"INFO","message":"m","source":"s","sauce":1}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("wrong type", "/api/logs", json_type, br#"{"level":"INFO","message":7,"source":"s"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("not a uuid", "/api/logs", json_type, br#"{"level":"INFO","message":"m","source":"s","message_id":"abc"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("nil uuid", "/api/logs", json_type, br#"{"level":"INFO","message":"m","source":"s","message_id":"00000000-0000-0000-0000-000000000000"}"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "invalid_event"),
        ("malformed json", "/api/logs", json_type, b"{\"level\":".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("invalid utf-8", "/api/logs", json_type, b"{\"level\":\"INFO\",\"message\":\"\xff\xfe\",\"source\":\"s\"}".to_vec(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("wrong content type", "/api/logs", "text/plain", seed("INFO", "m", "s").into(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("body over the limit", "/api/logs", json_type, vec![b' '; 100_000], StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("batch not an array", "/api/logs/batch", json_type, seed("INFO", "m", "s").into(), StatusCode::BAD_REQUEST, "malformed_json"),
        ("empty batch", "/api/logs/batch", json_type, b"[]".to_vec(), StatusCode::BAD_REQUEST, "empty_batch"),
        ("batch over the count", "/api/logs/batch", json_type, serde_json::to_vec(&vec![json!({"level":"INFO","message":"m","source":"s"}); 11]).expect("json"), StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large"),
        ("batch of only bad items", "/api/logs/batch", json_type, br#"[{"level":"LOUD","message":"m","source":"s"}]"#.to_vec(), StatusCode::UNPROCESSABLE_ENTITY, ""),
    ];
    for (name, path, content_type, body, expected_status, expected_code) in cases {
        let response = http
            .post(gateway.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(response.status(), expected_status, "{name}");
        let body: Value = response
            .json()
            .await
            .unwrap_or_else(|error| panic!("{name}: body is not JSON: {error}"));
        if expected_code.is_empty() {
            assert_eq!(body["accepted"], 0, "{name}");
        } else {
            assert_eq!(body["error"], expected_code, "{name}: {body}");
            assert!(
                body["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}"
            );
        }
    }
    let response = http
        .get(gateway.url("/no/such/route"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.json::<Value>().await.expect("json")["error"],
        "not_found"
    );

    assert_eq!(
        records_in_topic(KAFKA, &topic),
        0,
        "bad input reached the topic"
    );
    let health = http
        .get(gateway.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status(), StatusCode::OK, "the gateway kept serving");
}

#[tokio::test]
async fn a_stopped_broker_gets_503_never_2xx_and_the_gateway_recovers() {
    let mut broker = PrivateBroker::start();
    let topic = unique("gw-outage");
    let mut env = gateway_env(&topic, &broker.address);
    env.insert("UNDERSTUDY_KAFKA__MESSAGE_TIMEOUT_MS".into(), "2000".into());
    env.insert(
        "UNDERSTUDY_CIRCUIT_BREAKER__FAILURE_THRESHOLD".into(),
        "2".into(),
    );
    env.insert("UNDERSTUDY_CIRCUIT_BREAKER__OPEN_MS".into(), "3000".into());
    env.insert(
        "UNDERSTUDY_CIRCUIT_BREAKER__MAX_OPEN_MS".into(),
        "3000".into(),
    );
    let gateway = common::start_process("gateway-outage", &["gateway"], &env);
    let http = common::http_client();
    wait_ready(&http, &gateway).await;
    let event = json!({"level":"INFO","message":"before","source":"test"});
    let response = http
        .post(gateway.url("/api/logs"))
        .json(&event)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    broker.stop();
    let started = Instant::now();
    let response = http
        .post(gateway.url("/api/logs"))
        .json(&json!({"level":"INFO","message":"during","source":"test"}))
        .send()
        .await
        .expect("post");
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let timed_out: Value = response.json().await.expect("json");
    assert_eq!(timed_out["error"], "broker_unavailable");
    // The record may have reached the broker before the timeout: the client
    // is told so, and given the id to retry with.
    assert_eq!(timed_out["outcome"], "unknown", "{timed_out}");
    assert!(
        timed_out["messageId"]
            .as_str()
            .is_some_and(|id| id.parse::<Uuid>().is_ok()),
        "{timed_out}"
    );
    assert!(
        waited < Duration::from_secs(30),
        "503 must come within a bounded time, took {waited:?}"
    );
    // A second failure opens the breaker: the next publish is refused without
    // waiting for the broker, with a Retry-After, and the status says why.
    let second = http
        .post(gateway.url("/api/logs"))
        .json(&json!({"level":"INFO","message":"during","source":"test"}))
        .send()
        .await
        .expect("post");
    assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
    let refused = http
        .post(gateway.url("/api/logs"))
        .json(&json!({"level":"INFO","message":"refused","source":"test"}))
        .send()
        .await
        .expect("post");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.expect("json");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("circuit breaker open")),
        "{body}"
    );
    // An open breaker sent nothing: no unknown outcome, no id to retry with.
    assert!(
        body.get("outcome").is_none() && body.get("messageId").is_none(),
        "{body}"
    );
    let status = get_json(&http, &gateway.url("/api/system/status")).await;
    assert_eq!(status["broker"]["circuit"], "open", "{status}");
    let metrics = http
        .get(gateway.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("circuit_breaker_state{dependency=\"kafka\"} 2"),
        "{metrics}"
    );
    eventually(
        Duration::from_secs(30),
        "readyz to report the outage",
        || async {
            let response = http.get(gateway.url("/readyz")).send().await.ok()?;
            (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
        },
    )
    .await;

    broker.restart();
    let recovered: Value = eventually(
        Duration::from_secs(60),
        "a 202 after the broker returned",
        || async {
            let response = http
                .post(gateway.url("/api/logs"))
                .json(&json!({"level":"INFO","message":"after","source":"test"}))
                .send()
                .await
                .ok()?;
            if response.status() == StatusCode::ACCEPTED {
                response.json().await.ok()
            } else {
                None
            }
        },
    )
    .await;
    let partition = recovered["partition"].as_i64().expect("partition") as i32;
    let offset = recovered["offset"].as_i64().expect("offset");
    let stored: LogEvent =
        serde_json::from_slice(&read_record(&broker.address, &topic, partition, offset))
            .expect("event");
    assert_eq!(stored.message, "after");
    let status = get_json(&http, &gateway.url("/api/system/status")).await;
    assert_eq!(status["broker"]["circuit"], "closed", "{status}");
    // The event refused with 503 must not be in the topic.
    let in_topic = common::records_in_topic(&broker.address, &topic);
    assert!(in_topic >= 2, "both accepted events are stored");
    for partition in 0..3 {
        let (low, high) = watermarks(&broker.address, &topic, partition);
        for offset in low..high {
            let event: LogEvent =
                serde_json::from_slice(&read_record(&broker.address, &topic, partition, offset))
                    .expect("event");
            assert_ne!(event.message, "during", "a refused event reached the topic");
            assert_ne!(
                event.message, "refused",
                "a refused event reached the topic"
            );
        }
    }
}

fn watermarks(kafka: &str, topic: &str, partition: i32) -> (i64, i64) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka)
        .set("group.id", unique("wm"))
        .create()
        .expect("consumer");
    consumer
        .fetch_watermarks(topic, partition, Duration::from_secs(10))
        .expect("watermarks")
}

#[tokio::test]
async fn system_status_reports_broker_gateway_and_unreachable_nodes() {
    let topic = unique("gw-status");
    let mut env = gateway_env(&topic, KAFKA);
    let silent_port = common::free_port();
    env.insert(
        "UNDERSTUDY_GATEWAY__NODE_URLS".into(),
        format!("[\"http://127.0.0.1:{silent_port}\"]"),
    );
    env.insert(
        "UNDERSTUDY_GATEWAY__NODE_STATUS_TIMEOUT_MS".into(),
        "300".into(),
    );
    let gateway = common::start_process("gateway-status", &["gateway"], &env);
    let http = common::http_client();
    wait_ready(&http, &gateway).await;
    let status: Value = http
        .get(gateway.url("/api/system/status"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(status["gateway"]["status"], "UP");
    assert_eq!(status["broker"]["status"], "UP");
    assert_eq!(status["broker"]["topic"], topic);
    assert_eq!(
        status["broker"]["partitions"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(status["nodes"][0]["reachable"], false);
    assert_eq!(status["leader"], Value::Null);
    assert_eq!(status["leadersClaimed"], 0);
    assert_eq!(status["status"], "DEGRADED");
}

#[tokio::test]
async fn a_discovering_gateway_follows_the_nodes_through_zookeeper() {
    let mut cluster = common::cluster::TestCluster::start("discover", 2).await;
    let (leader, _) = cluster.wait_for_leader(None).await;
    let mut env = gateway_env(&cluster.topic, KAFKA);
    env.extend([
        ("UNDERSTUDY_CLUSTER".to_owned(), cluster.name.clone()),
        (
            "UNDERSTUDY_GATEWAY__DISCOVER_NODES".to_owned(),
            "true".to_owned(),
        ),
        // A list that must not be used.
        (
            "UNDERSTUDY_GATEWAY__NODE_URLS".to_owned(),
            "[\"http://127.0.0.1:9\"]".to_owned(),
        ),
    ]);
    let gateway = common::start_process("gateway-discover", &["gateway"], &env);
    let http = common::http_client();
    let status = || async {
        http.get(gateway.url("/api/system/status"))
            .send()
            .await
            .expect("status")
            .json::<Value>()
            .await
            .expect("json")
    };
    let urls = |status: &Value| -> Vec<String> {
        let mut urls: Vec<String> = status["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|node| node["url"].as_str().map(str::to_owned))
            .collect();
        urls.sort();
        urls
    };
    let mut expected: Vec<String> = (0..2)
        .map(|slot| cluster.node(slot).base_url.clone())
        .collect();
    expected.sort();
    // The standby may join the election after the gateway first reads it
    // (a CI run: 80 ms later); its member must then appear.
    let first = eventually(Duration::from_secs(10), "both nodes listed", || async {
        let status = status().await;
        (urls(&status) == expected).then_some(status)
    })
    .await;
    assert_eq!(first["leadersClaimed"], 1, "{first}");
    assert_eq!(
        first["leader"]["url"],
        cluster.node(leader).base_url.as_str()
    );

    let standby = 1 - leader;
    drop(cluster.take_node(standby));
    let leader_url = cluster.node(leader).base_url.clone();
    eventually(
        Duration::from_secs(10),
        "the stopped node to leave",
        || async { (urls(&status().await) == [leader_url.clone()]).then_some(()) },
    )
    .await;
    let added = cluster.add_node();
    let added_url = cluster.node(added).base_url.clone();
    eventually(
        Duration::from_secs(10),
        "the new node to appear",
        || async { urls(&status().await).contains(&added_url).then_some(()) },
    )
    .await;

    // A node bound to every interface names itself as configured.
    let mut env = cluster.node_env();
    env.insert("UNDERSTUDY_NODE__BIND_HOST".into(), "0.0.0.0".into());
    env.insert(
        "UNDERSTUDY_NODE__ADVERTISED_URL".into(),
        "http://node-4.internal:8084".into(),
    );
    let advertised = cluster.push_node(common::start_process("advertised", &["node"], &env));
    assert_eq!(
        cluster.node(advertised).base_url,
        "http://node-4.internal:8084"
    );
    eventually(Duration::from_secs(10), "the advertised URL", || async {
        let status = status().await;
        urls(&status)
            .contains(&"http://node-4.internal:8084".to_owned())
            .then_some(())
    })
    .await;
}
