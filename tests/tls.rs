//! TLS to every dependency, against real TLS endpoints on this machine:
//! Redis 7 on its `--tls-port`, ZooKeeper 3.8 on its `secureClientPort` with
//! client certificates required, and stunnel terminating TLS in front of a
//! private broker for Kafka's `security.protocol=SSL`. Each carries a real
//! cluster's traffic, and each refuses a server its CA bundle does not vouch
//! for. (SASL: tansu offers no mechanism, so none is exercised here.)

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::cluster::TestCluster;
use common::tls::{stunnel, wait_listening, Killed, Pki};
use common::{free_port, gateway_env, http_client, unique, PrivateBroker};
use understudy::config::RedisConfig;
use zookeeper_client::{Client, TlsOptions};

/// Tests call TLS clients (Redis's, ZooKeeper's) that take rustls's process
/// default provider, as the binary installs it at start.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[tokio::test]
async fn redis_over_tls_carries_the_leaders_heartbeat_and_refuses_an_unknown_ca() {
    install_crypto_provider();
    let pki = Pki::new();
    let port = free_port();
    let _redis = Killed(
        Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .args(["--tls-cert-file", &pki.path("server.pem")])
            .args(["--tls-key-file", &pki.path("server.key")])
            .args(["--tls-ca-cert-file", &pki.path("ca.pem")])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    wait_listening(port, "redis over TLS");
    let url = format!("rediss://127.0.0.1:{port}");

    let stranger = understudy::shared::redis_store::connect_lazily(&RedisConfig {
        url: url.clone(),
        tls_ca_file: pki.path("other-ca.pem"),
    })
    .expect("client");
    let refused: Result<String, _> = redis::cmd("PING").query_async(&mut stranger.clone()).await;
    assert!(
        refused.is_err(),
        "a server the bundle does not vouch for was trusted"
    );

    let cluster = TestCluster::start_with(
        "redis-tls",
        1,
        HashMap::from([
            ("UNDERSTUDY_REDIS__URL".into(), url.clone()),
            ("UNDERSTUDY_REDIS__TLS_CA_FILE".into(), pki.path("ca.pem")),
        ]),
    )
    .await;
    cluster.wait_for_leader(None).await;
    let trusted = understudy::shared::redis_store::connect_lazily(&RedisConfig {
        url,
        tls_ca_file: pki.path("ca.pem"),
    })
    .expect("client");
    let key = format!("understudy:{}:leader:heartbeat", cluster.name);
    let heartbeat = common::eventually(Duration::from_secs(10), "a heartbeat over TLS", || async {
        let value: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut trusted.clone())
            .await
            .ok()?;
        value
    })
    .await;
    // `<timestamp>:<epoch>:<instance>`, the seed's format.
    assert_eq!(heartbeat.split(':').nth(1), Some("1"), "{heartbeat}");
    let status = cluster.status(0).await.expect("status");
    assert_eq!(status["dependencies"]["redis"]["circuit"], "closed");
}

/// ZooKeeper 3.8 from Debian's packages on a secure port only, requiring a
/// client certificate signed by the test CA.
fn zookeeper_over_tls(pki: &Pki, port: u16) -> Killed {
    let dir = pki.dir().join("zookeeper");
    std::fs::create_dir_all(dir.join("data")).expect("zk dir");
    let config = dir.join("zoo.cfg");
    std::fs::write(
        &config,
        format!(
            "tickTime=100\ndataDir={}\nsecureClientPort={port}\nsecureClientPortAddress=127.0.0.1\n\
             minSessionTimeout=200\nmaxSessionTimeout=30000\nadmin.enableServer=false\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             ssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
             ssl.trustStore.location={}\nssl.trustStore.type=PEM\nssl.clientAuth=need\n",
            dir.join("data").display(),
            pki.path("server-keystore.pem"),
            pki.path("ca.pem"),
        ),
    )
    .expect("zoo.cfg");
    // Debian's netty-all.jar is an empty aggregate: the parts, one by one.
    let classpath = [
        "zookeeper.jar",
        "zookeeper-jute.jar",
        "netty-buffer.jar",
        "netty-codec.jar",
        "netty-common.jar",
        "netty-handler.jar",
        "netty-resolver.jar",
        "netty-transport.jar",
        "netty-transport-native-unix-common.jar",
        "slf4j-api.jar",
        "slf4j-nop.jar",
    ]
    .map(|jar| format!("/usr/share/java/{jar}"))
    .join(":");
    let zookeeper = Killed(
        Command::new("java")
            .args([
                "-cp",
                &classpath,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("java (scripts/infra installs ZooKeeper)"),
    );
    wait_listening(port, "zookeeper's secure port");
    zookeeper
}

#[tokio::test]
async fn zookeeper_over_tls_with_a_client_certificate_elects_a_leader() {
    install_crypto_provider();
    let pki = Pki::new();
    let port = free_port();
    let _zookeeper = zookeeper_over_tls(&pki, port);
    let connect = format!("127.0.0.1:{port}");

    // The server requires a client certificate: without one, no session.
    let ca = std::fs::read_to_string(pki.path("ca.pem")).expect("ca");
    let anonymous = Client::connector()
        .with_session_timeout(Duration::from_secs(2))
        .with_connection_timeout(Duration::from_secs(2))
        .with_tls(TlsOptions::new().with_pem_ca(&ca).expect("ca"))
        .with_fail_eagerly()
        .secure_connect(&connect)
        .await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate got a session"
    );

    let env = HashMap::from([
        ("UNDERSTUDY_ZOOKEEPER__CONNECT".into(), connect),
        (
            "UNDERSTUDY_ZOOKEEPER__TLS_CA_FILE".into(),
            pki.path("ca.pem"),
        ),
        (
            "UNDERSTUDY_ZOOKEEPER__TLS_CERT_FILE".into(),
            pki.path("client.pem"),
        ),
        (
            "UNDERSTUDY_ZOOKEEPER__TLS_KEY_FILE".into(),
            pki.path("client.key"),
        ),
    ]);
    let cluster = TestCluster::start_with("zk-tls", 2, env).await;
    let (leader, epoch) = cluster.wait_for_leader(None).await;
    let id = cluster
        .publish("elected over TLS")
        .await
        .expect("acknowledged");
    cluster.verify_exactly_once(&[id]).await;
    // A hand-over over TLS too.
    assert!(cluster.step_down(leader).await.is_success());
    cluster.wait_for_leader(Some(epoch)).await;
}

#[tokio::test]
async fn kafka_over_tls_carries_events_from_the_gateway_to_the_leader() {
    let pki = Pki::new();
    let tls_port = free_port();
    let tls_address = format!("127.0.0.1:{tls_port}");
    // The broker tells clients to come back through the terminator.
    let broker = PrivateBroker::advertising(Some(&tls_address));
    let _terminator = stunnel(&pki, tls_port, &broker.address);
    let properties = |ca: &str| {
        format!(
            r#"{{"security.protocol"="SSL","ssl.ca.location"="{}"}}"#,
            pki.path(ca)
        )
    };

    // A bundle that does not vouch for the broker: never ready, never 2xx.
    let topic = unique("kafka-tls");
    let mut env = gateway_env(&topic, &tls_address);
    env.insert(
        "UNDERSTUDY_KAFKA__CLIENT_PROPERTIES".into(),
        properties("other-ca.pem"),
    );
    let stranger = common::start_process("gateway-wrong-ca", &["gateway"], &env);
    let http = http_client();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ready = http
        .get(stranger.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503, "ready through an untrusted broker");
    drop(stranger);

    let env = HashMap::from([
        (
            "UNDERSTUDY_KAFKA__BOOTSTRAP_SERVERS".into(),
            tls_address.clone(),
        ),
        (
            "UNDERSTUDY_KAFKA__CLIENT_PROPERTIES".into(),
            properties("ca.pem"),
        ),
    ]);
    let cluster = TestCluster::start_with("kafka-tls", 1, env).await;
    let mut acked = Vec::new();
    for i in 0..5 {
        acked.push(
            cluster
                .publish(&format!("over TLS {i}"))
                .await
                .expect("acknowledged"),
        );
    }
    cluster.verify_exactly_once(&acked).await;
}
