//! Traces checked for real: a gateway and a node export spans over OTLP/HTTP
//! (JSON) to a small receiver this test runs (Jaeger is not installable here),
//! and one event's spans from both processes share one trace id, in the clear
//! and to an `https://` collector (stunnel in front of the receiver).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use common::cluster::{serial, TestCluster};
use common::tls::{stunnel, Pki};
use common::{eventually, free_port};

/// Accepts OTLP/HTTP JSON exports and keeps every span with its service name.
struct OtlpReceiver {
    endpoint: String,
    spans: Arc<Mutex<Vec<(String, Value)>>>,
}

impl OtlpReceiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind receiver");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&spans);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = Arc::clone(&sink);
                std::thread::spawn(move || serve(stream, &sink));
            }
        });
        Self { endpoint, spans }
    }

    fn spans(&self) -> Vec<(String, Value)> {
        self.spans.lock().expect("spans").clone()
    }
}

/// Serves requests on one connection until the client closes it.
fn serve(stream: std::net::TcpStream, sink: &Mutex<Vec<(String, Value)>>) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    loop {
        let mut content_length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if let Ok(export) = serde_json::from_slice::<Value>(&body) {
            for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                let service = resource["resource"]["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["key"] == "service.name")
                    .and_then(|a| a["value"]["stringValue"].as_str())
                    .unwrap_or_default()
                    .to_owned();
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        sink.lock()
                            .expect("spans")
                            .push((service.clone(), span.clone()));
                    }
                }
            }
        }
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)?
        .get("value")?
        .get("stringValue")?
        .as_str()
}

#[tokio::test]
async fn one_event_is_one_trace_from_the_gateway_to_the_sink_commit() {
    let _serial = serial().await;
    let receiver = OtlpReceiver::start();
    one_event_is_one_trace(&receiver, &receiver.endpoint, HashMap::new()).await;
}

#[tokio::test]
async fn traces_reach_an_https_collector_verified_against_its_ca() {
    let _serial = serial().await;
    let receiver = OtlpReceiver::start();
    let pki = Pki::new();
    let port = free_port();
    let plain = receiver.endpoint.trim_start_matches("http://").to_owned();
    let _terminator = stunnel(&pki, port, &plain);
    let ca = HashMap::from([(
        "UNDERSTUDY_TELEMETRY__OTLP_CA_FILE".to_owned(),
        pki.path("ca.pem"),
    )]);
    one_event_is_one_trace(&receiver, &format!("https://127.0.0.1:{port}"), ca).await;
}

/// Publishes one event through a cluster exporting to `endpoint` (which
/// forwards to `receiver`) and checks its spans form one trace.
async fn one_event_is_one_trace(
    receiver: &OtlpReceiver,
    endpoint: &str,
    mut env: HashMap<String, String>,
) {
    env.extend([
        (
            "UNDERSTUDY_TELEMETRY__OTLP_ENDPOINT".to_owned(),
            endpoint.to_owned(),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY".to_owned(), "200".to_owned()),
    ]);
    let cluster = TestCluster::start_with("traces", 1, env).await;
    let message_id = cluster.publish("traced event").await.expect("acknowledged");
    cluster.verify_exactly_once(&[message_id]).await;
    let id = message_id.to_string();

    let (produce, consume) =
        eventually(Duration::from_secs(30), "spans from both processes", || {
            let spans = receiver.spans();
            let id = id.clone();
            async move {
                let produce = spans.iter().find(|(service, span)| {
                    service == "understudy-gateway"
                        && span["name"] == "kafka.produce"
                        && attribute(span, "message_id") == Some(id.as_str())
                })?;
                let consume = spans.iter().find(|(service, span)| {
                    service == "understudy-node"
                        && span["name"] == "node.consume"
                        && attribute(span, "message_id") == Some(id.as_str())
                })?;
                Some((produce.1.clone(), consume.1.clone()))
            }
        })
        .await;
    assert_eq!(
        consume["traceId"], produce["traceId"],
        "one trace per event"
    );
    assert_eq!(
        consume["parentSpanId"], produce["spanId"],
        "consume is a child of produce"
    );
    let request = receiver
        .spans()
        .into_iter()
        .find(|(_, span)| span["spanId"] == produce["parentSpanId"])
        .expect("the gateway request span");
    assert_eq!(request.1["name"], "gateway.publish");
    assert_eq!(request.1["traceId"], produce["traceId"]);
    let commit = eventually(Duration::from_secs(30), "the commit span", || {
        let spans = receiver.spans();
        let consume_id = consume["spanId"].clone();
        async move {
            spans.into_iter().find(|(_, span)| {
                span["name"] == "sink.commit"
                    && span["links"]
                        .as_array()
                        .is_some_and(|links| links.iter().any(|l| l["spanId"] == consume_id))
            })
        }
    })
    .await;
    assert_eq!(commit.0, "understudy-node");
}
