//! The gateway against hostile clients, for real: a catalogue of requests an
//! attacker or a broken client sends (huge, deep, trickled, duplicated,
//! out-of-range), each answered with the right 4xx while the gateway keeps
//! serving; per-client rate limiting with 429 and Retry-After; and `/metrics`
//! moved to a listener of its own.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{free_port, gateway_env, http_client, records_in_topic, unique, wait_ready, KAFKA};

async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = http
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("post");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn hostile_requests_get_a_4xx_and_the_gateway_keeps_serving() {
    let topic = unique("gw-hostile");
    let mut env = gateway_env(&topic, KAFKA);
    env.insert(
        "UNDERSTUDY_GATEWAY__CLIENT_REQUEST_TIMEOUT_MS".into(),
        "1000".into(),
    );
    let gateway = common::start_process("gateway-hostile", &["gateway"], &env);
    let http = http_client();
    wait_ready(&http, &gateway).await;
    let url = gateway.url("/api/logs");

    let nested = format!(
        r#"{{"level":"INFO","message":"m","source":"s","attributes":{{"a":{}1{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let ten_megabytes = {
        let mut body = br#"{"level":"INFO","source":"s","message":""#.to_vec();
        body.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
        body.extend(br#""}"#);
        body
    };
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "10 MB body",
            ten_megabytes,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "JSON nested 10,000 deep",
            nested.into_bytes(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "number out of range",
            br#"{"level":"INFO","message":"m","source":"s","attributes":{"n":1e400}}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "number where a timestamp goes",
            br#"{"level":"INFO","message":"m","source":"s","timestamp":1e300}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            "duplicate key",
            br#"{"level":"INFO","level":"ERROR","message":"m","source":"s"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            "attributes not an object",
            br#"{"level":"INFO","message":"m","source":"s","attributes":[1,2]}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            "NUL escaped in an attribute",
            br#"{"level":"INFO","message":"m","source":"s","attributes":{"k":"a\u0000b"}}"#
                .to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            "lone surrogate",
            br#"{"level":"INFO","message":"\ud800","source":"s"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "JSON null",
            b"null".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_event",
        ),
        (
            "empty body",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "trailing garbage",
            br#"{"level":"INFO","message":"m","source":"s"} trailing"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (name, body, expected_status, expected_code) in cases {
        let (status, body) = post(&http, &url, body).await;
        assert_eq!(status, expected_status, "{name}: {body}");
        assert_eq!(body["error"], expected_code, "{name}: {body}");
    }

    // A body trickled slower than the request timeout is cut off with a 408.
    let address = gateway.base_url.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    slow.write_all(
        b"POST /api/logs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"level\"",
    )
    .await
    .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut answer))
        .await
        .expect("the gateway must not wait for ever")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    let (status, accepted) = post(
        &http,
        &url,
        json!({"level":"INFO","message":"still serving","source":"s"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(records_in_topic(KAFKA, &topic), 1, "only the valid event");
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let topic = unique("gw-rate");
    let mut env = gateway_env(&topic, KAFKA);
    env.insert(
        "UNDERSTUDY_GATEWAY__RATE_LIMIT_PER_SECOND".into(),
        "2".into(),
    );
    env.insert("UNDERSTUDY_GATEWAY__RATE_LIMIT_BURST".into(), "3".into());
    let gateway = common::start_process("gateway-rate", &["gateway"], &env);
    let http = http_client();
    wait_ready(&http, &gateway).await;
    let event = json!({"level":"INFO","message":"m","source":"s"})
        .to_string()
        .into_bytes();
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let response = http
            .post(gateway.url("/api/logs"))
            .header("content-type", "application/json")
            .body(event.clone())
            .send()
            .await
            .expect("post");
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = response.headers()["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            let body: Value = response.json().await.expect("json");
            limited = Some((retry_after, body));
        }
    }
    let accepted = statuses
        .iter()
        .filter(|status| **status == StatusCode::ACCEPTED)
        .count();
    assert!((3..6).contains(&accepted), "{statuses:?}");
    let (retry_after, body) = limited.expect("a request over the burst is limited");
    assert!(retry_after >= 1, "Retry-After {retry_after}");
    assert_eq!(body["error"], "rate_limited", "{body}");
    // Probes and the status page are not publishing: never limited.
    for _ in 0..5 {
        let health = http.get(gateway.url("/healthz")).send().await.expect("get");
        assert_eq!(health.status(), StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let response = http
        .post(gateway.url("/api/logs"))
        .header("content-type", "application/json")
        .body(event)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn metrics_can_live_on_a_listener_of_their_own() {
    let topic = unique("gw-metrics-bind");
    let mut env = gateway_env(&topic, KAFKA);
    let metrics_address = format!("127.0.0.1:{}", free_port());
    env.insert(
        "UNDERSTUDY_GATEWAY__METRICS_BIND".into(),
        metrics_address.clone(),
    );
    let gateway = common::start_process("gateway-metrics-bind", &["gateway"], &env);
    let http = http_client();
    wait_ready(&http, &gateway).await;
    let on_main = http.get(gateway.url("/metrics")).send().await.expect("get");
    assert_eq!(on_main.status(), StatusCode::NOT_FOUND);
    let scraped = http
        .get(format!("http://{metrics_address}/metrics"))
        .send()
        .await
        .expect("get");
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.expect("text");
    assert!(text.contains("gateway_requests_total"), "{text}");
    assert!(text.contains("circuit_breaker_state"), "{text}");
    let elsewhere = http
        .get(format!("http://{metrics_address}/api/system/status"))
        .send()
        .await
        .expect("get");
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bodies_beyond_the_inflight_budget_get_503_at_once_and_the_budget_comes_back() {
    let topic = unique("gw-budget");
    let mut env = gateway_env(&topic, KAFKA);
    // Room for two largest bodies at once, no more.
    env.insert(
        "UNDERSTUDY_GATEWAY__MAX_BODY_BYTES".into(),
        "1048576".into(),
    );
    env.insert(
        "UNDERSTUDY_GATEWAY__MAX_INFLIGHT_BODY_BYTES".into(),
        "2097152".into(),
    );
    env.insert(
        "UNDERSTUDY_GATEWAY__CLIENT_REQUEST_TIMEOUT_MS".into(),
        "3000".into(),
    );
    let gateway = common::start_process("gateway-budget", &["gateway"], &env);
    let http = http_client();
    wait_ready(&http, &gateway).await;
    let address = gateway.base_url.trim_start_matches("http://").to_owned();
    // Two uploads that declare the largest body and then send nothing.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        stream
            .write_all(
                b"POST /api/logs/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n[",
            )
            .await
            .expect("head");
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let (status, body) = post(
        &http,
        &gateway.url("/api/logs"),
        json!({"level":"INFO","message":"m","source":"s"})
            .to_string()
            .into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "overloaded");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not queued behind the stalled uploads"
    );
    drop(stalled);
    common::eventually(
        Duration::from_secs(10),
        "the budget back once the stalled uploads ended",
        || async {
            let (status, _) = post(
                &http,
                &gateway.url("/api/logs"),
                json!({"level":"INFO","message":"m","source":"s"})
                    .to_string()
                    .into_bytes(),
            )
            .await;
            (status == StatusCode::ACCEPTED).then_some(())
        },
    )
    .await;
}
