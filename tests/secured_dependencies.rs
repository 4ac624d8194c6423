//! Authenticated dependencies, against the real services: ZooKeeper digest
//! ACLs on the election and epoch znodes (a client without the credential can
//! neither read, join, delete a member nor move the epoch), a Redis ACL user
//! confined to the cluster's key prefix running a real leader, a PostgreSQL
//! role that may only read and write the rows (migrations run as the owner),
//! and Kafka client properties (SASL/TLS settings) reaching librdkafka.

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError};

use common::cluster::{pg, serial, TestCluster};
use common::{eventually, gateway_env, http_client, pg_connect, postgres_url, unique, KAFKA};

const ZOOKEEPER: &str = "127.0.0.1:2181";
const CREDENTIAL: &str = "understudy:s3cret";

#[tokio::test]
async fn zookeeper_acls_keep_out_a_client_without_the_credential() {
    let _serial = serial().await;
    let cluster = TestCluster::start_with(
        "zk-acl",
        1,
        HashMap::from([(
            "UNDERSTUDY_ZOOKEEPER__DIGEST_AUTH".to_owned(),
            CREDENTIAL.to_owned(),
        )]),
    )
    .await;
    cluster.wait_for_leader(None).await;
    let election = format!("/understudy/{}/election", cluster.name);
    let epoch = format!("/understudy/{}/epoch", cluster.name);

    let stranger = Client::connect(ZOOKEEPER).await.expect("connect");
    assert!(matches!(
        stranger.list_children(&election).await,
        Err(ZkError::NoAuth)
    ));
    assert!(matches!(
        stranger.set_data(&epoch, b"999", None).await,
        Err(ZkError::NoAuth)
    ));
    assert!(matches!(
        stranger
            .create(
                &format!("{election}/member-"),
                b"{}",
                &CreateMode::EphemeralSequential.with_acls(Acls::anyone_all()),
            )
            .await,
        Err(ZkError::NoAuth)
    ));
    assert!(matches!(
        stranger
            .delete(&format!("{election}/member-0000000000"), None)
            .await,
        Err(ZkError::NoAuth)
    ));

    let insider = Client::connector()
        .with_auth("digest", CREDENTIAL.as_bytes())
        .connect(ZOOKEEPER)
        .await
        .expect("connect with the credential");
    let members = insider.list_children(&election).await.expect("list");
    assert_eq!(members.len(), 1, "{members:?}");
    let (stored, _) = insider.get_data(&epoch).await.expect("epoch");
    assert_eq!(stored, b"1");
    let status = cluster.status(0).await.expect("status");
    assert_eq!(status["isLeader"], true);
    assert_eq!(status["epoch"], 1);
}

fn redis_cli(args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", "6379"])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn a_redis_user_confined_to_the_cluster_prefix_runs_a_leader() {
    let _serial = serial().await;
    let cluster_name = unique("redis_acl").replace('-', "_");
    let user = format!("u_{cluster_name}");
    assert_eq!(
        redis_cli(&[
            "ACL",
            "SETUSER",
            &user,
            "on",
            ">p4ss",
            &format!("~understudy:{cluster_name}:*"),
            "+@read",
            "+@write",
            "+@scripting",
            "+@connection",
            "-@dangerous",
        ]),
        "OK"
    );
    let url = format!("redis://{user}:p4ss@127.0.0.1:6379");
    let cluster = TestCluster::start_with(
        "redis-acl",
        1,
        HashMap::from([
            ("UNDERSTUDY_CLUSTER".to_owned(), cluster_name.clone()),
            ("UNDERSTUDY_REDIS__URL".to_owned(), url.clone()),
        ]),
    )
    .await;
    cluster.wait_for_leader(None).await;
    let heartbeat_key = format!("understudy:{cluster_name}:leader:heartbeat");
    eventually(
        Duration::from_secs(10),
        "the leader's heartbeat under its prefix",
        || async {
            let value = redis_cli(&["GET", &heartbeat_key]);
            let fields: Vec<&str> = value.splitn(3, ':').collect();
            (fields.len() == 3 && fields[1] == "1").then_some(())
        },
    )
    .await;
    let status = cluster.status(0).await.expect("status");
    assert_eq!(status["dependencies"]["redis"]["circuit"], "closed");

    let client = redis::Client::open(url.as_str()).expect("url");
    let mut confined = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect as the confined user");
    let outside: redis::RedisResult<()> = redis::cmd("SET")
        .arg("someone-else:key")
        .arg("1")
        .query_async(&mut confined)
        .await;
    let refusal = outside.expect_err("a key outside the prefix is refused");
    assert!(
        refusal.to_string().to_lowercase().contains("noperm"),
        "{refusal}"
    );
    redis_cli(&["ACL", "DELUSER", &user]);
}

#[tokio::test]
async fn kafka_client_properties_reach_librdkafka() {
    let topic = unique("gw-props");
    let mut env = gateway_env(&topic, KAFKA);
    env.insert(
        "UNDERSTUDY_KAFKA__CLIENT_PROPERTIES".into(),
        r#"{"no.such.property"="1"}"#.into(),
    );
    let refused = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .arg("gateway")
        .envs(&env)
        .output()
        .expect("run");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no.such.property"), "{stderr}");

    // SASL toward a broker that speaks none: the settings are applied, so
    // the gateway never becomes ready (and says so) instead of ignoring them.
    env.insert(
        "UNDERSTUDY_KAFKA__CLIENT_PROPERTIES".into(),
        r#"{"security.protocol"="SASL_PLAINTEXT","sasl.mechanisms"="PLAIN","sasl.username"="u","sasl.password"="p"}"#.into(),
    );
    let gateway = common::start_process("gateway-sasl", &["gateway"], &env);
    let http = http_client();
    // Unready for the reason under test: librdkafka tried the SASL handshake.
    gateway
        .wait_for_log(
            "SASL PLAIN mechanism handshake",
            "a SASL handshake attempt in the gateway's log",
        )
        .await
        .expect("the gateway tried SASL");
    let ready = http
        .get(gateway.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    let config = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .arg("config")
        .envs(&env)
        .output()
        .expect("config");
    let printed = String::from_utf8_lossy(&config.stdout);
    assert!(
        !printed.contains("sasl.password"),
        "secrets are never printed: {printed}"
    );
}

#[tokio::test]
async fn a_node_works_as_a_least_privilege_role_and_that_role_cannot_do_more() {
    let _serial = serial().await;
    let role = unique("sink").replace('-', "_");
    let owner = pg().await;
    owner
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'sinkpw'; \
             GRANT SELECT, INSERT, UPDATE ON log_events, consumer_offsets, leader_fence, \
               failover_events, dead_letters TO {role}; \
             GRANT USAGE ON SEQUENCE failover_events_id_seq TO {role};"
        ))
        .await
        .expect("create the sink role");
    let sink_url = format!("postgres://{role}:sinkpw@127.0.0.1:5432/understudy");
    let cluster = TestCluster::start_with(
        "least-privilege",
        1,
        HashMap::from([
            ("UNDERSTUDY_POSTGRES__URL".to_owned(), sink_url.clone()),
            (
                "UNDERSTUDY_POSTGRES__MIGRATIONS_URL".to_owned(),
                postgres_url(),
            ),
        ]),
    )
    .await;
    cluster.wait_for_leader(None).await;
    publish_and_verify(&cluster, "as a least-privilege role").await;

    let sink = pg_connect(&sink_url).await;
    // Granted UPDATE on every table above, as the default privileges do:
    // the nodes' `migrate up` took it back where rows are only appended.
    for forbidden in [
        "UPDATE log_events SET message = 'rewritten'",
        "UPDATE failover_events SET reason = 'rewritten'",
        "UPDATE dead_letters SET reason = 'rewritten'",
        "DELETE FROM log_events",
        "TRUNCATE consumer_offsets",
        "DROP TABLE dead_letters",
        "CREATE TABLE intruder (id int)",
    ] {
        let error = sink
            .batch_execute(forbidden)
            .await
            .expect_err("the sink role may not do this");
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{forbidden}: {:?}",
            error.as_db_error().map(|db| db.message())
        );
    }
    drop(cluster);
    owner
        .batch_execute(&format!(
            "REVOKE ALL ON log_events, consumer_offsets, leader_fence, failover_events, \
               dead_letters FROM {role}; \
             REVOKE ALL ON SEQUENCE failover_events_id_seq FROM {role}; \
             DROP ROLE {role};"
        ))
        .await
        .expect("drop the sink role");
}

#[tokio::test]
async fn nodes_reach_postgresql_over_verified_tls_and_refuse_an_unknown_ca() {
    let _serial = serial().await;
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/.infra/postgres/tls/ca.crt");
    assert!(
        std::path::Path::new(ca).exists(),
        "scripts/infra up signs PostgreSQL's certificate with {ca}"
    );

    let stranger = tempfile::tempdir().expect("tempdir");
    let stranger_ca = stranger.path().join("ca.crt");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=someone-else", "-keyout"])
        .arg(stranger.path().join("ca.key"))
        .arg("-out")
        .arg(&stranger_ca)
        .output()
        .expect("openssl");
    assert!(made.status.success());
    let refused = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["migrate", "status"])
        .env("UNDERSTUDY_POSTGRES__TLS_CA_FILE", &stranger_ca)
        .output()
        .expect("run");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");

    // A node trusting another CA: it serves its status, never leads, and
    // its log says why (it waits for a schema it cannot verify).
    let mut env = gateway_env(&unique("pg-tls-stranger"), KAFKA);
    env.extend([
        (
            "UNDERSTUDY_CLUSTER".to_owned(),
            unique("pg_tls_stranger").replace('-', "_"),
        ),
        (
            "UNDERSTUDY_NODE__BIND_HOST".to_owned(),
            "127.0.0.1".to_owned(),
        ),
        ("UNDERSTUDY_NODE__HTTP_PORT".to_owned(), "0".to_owned()),
        (
            "UNDERSTUDY_NODE__RUN_MIGRATIONS".to_owned(),
            "false".to_owned(),
        ),
        (
            "UNDERSTUDY_POSTGRES__TLS_CA_FILE".to_owned(),
            stranger_ca.display().to_string(),
        ),
    ]);
    let doubting = common::start_process("pg-tls-stranger", &["node"], &env);
    let http = http_client();
    doubting
        .wait_for_log(
            "UnknownIssuer",
            "the node to refuse PostgreSQL's certificate",
        )
        .await
        .expect("the node refused the certificate");
    let status = common::get_json(&http, &doubting.url("/api/failover/status")).await;
    assert_eq!(status["isLeader"], false, "{status}");
    drop(doubting);

    let cluster = TestCluster::start_with(
        "postgres-tls",
        1,
        HashMap::from([("UNDERSTUDY_POSTGRES__TLS_CA_FILE".to_owned(), ca.to_owned())]),
    )
    .await;
    cluster.wait_for_leader(None).await;
    publish_and_verify(&cluster, "over tls").await;
    let encrypted: i64 = pg()
        .await
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE s.ssl AND a.datname = 'understudy'",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .get(0);
    assert!(encrypted > 0, "the node's connections use TLS");
}

/// Publishes five events through the cluster and checks each is stored once.
async fn publish_and_verify(cluster: &TestCluster, label: &str) {
    let mut acked = Vec::new();
    for i in 0..5 {
        let id = cluster.publish(&format!("{label} {i}")).await;
        acked.push(id.expect("acknowledged"));
    }
    cluster.verify_exactly_once(&acked).await;
}

/// Puts a recording `redis-cli`, `psql`, `runuser` and `sudo` first on a `PATH`:
/// each appends its command line to `argv.log` in `dir`, then runs the real
/// one. Returns the `PATH` to use.
fn record_command_lines(dir: &std::path::Path) -> String {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("argv.log");
    for tool in ["redis-cli", "psql", "runuser", "sudo"] {
        let shim = dir.join(tool);
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\necho \"$(basename \"$0\") $*\" >>'{}'\nPATH=${{PATH#'{}:'}} exec {tool} \"$@\"\n",
                log.display(),
                dir.display()
            ),
        )
        .expect("write shim");
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs `scripts/infra up --secure` and returns the node environment it
/// wrote (without the admin token, which test clusters set themselves).
/// Also checks the secrets stayed private: the file is readable by its owner
/// only, and no secret appeared on a command line, where `ps` shows it.
fn secure_setup() -> HashMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let root = env!("CARGO_MANIFEST_DIR");
    let recorder = tempfile::tempdir().expect("tempdir");
    let setup = Command::new("bash")
        .args(["scripts/infra", "up", "--secure"])
        .current_dir(root)
        .env("PATH", record_command_lines(recorder.path()))
        .output()
        .expect("scripts/infra up --secure");
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let path = format!("{root}/.infra/secure.env");
    let written = std::fs::read_to_string(&path).expect("secure.env");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o077, 0, "secure.env is private, mode {mode:o}");
    let owner_path = format!("{root}/.infra/owner.env");
    let owner = std::fs::read_to_string(&owner_path).expect("owner.env");
    let mode = std::fs::metadata(&owner_path)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "owner.env is private, mode {mode:o}");
    assert!(
        owner.starts_with("UNDERSTUDY_POSTGRES__URL=postgres://understudy:")
            && !owner.contains(":understudy@"),
        "the schema owner has a generated password"
    );
    let command_lines =
        std::fs::read_to_string(recorder.path().join("argv.log")).expect("recorded commands");
    assert!(command_lines.contains("redis-cli") && command_lines.contains("psql"));
    for secret in written
        .lines()
        .chain(owner.lines())
        .filter_map(|line| line.split_once('='))
        .flat_map(|(_, value)| value.split([':', '@', '/']))
        .filter(|part| part.len() >= 32)
    {
        assert!(
            !command_lines.contains(secret),
            "a secret was passed on a command line:\n{command_lines}"
        );
    }
    let env: HashMap<String, String> = written
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(key, _)| *key != "UNDERSTUDY_NODE__ADMIN_TOKEN")
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    assert!(env["UNDERSTUDY_REDIS__URL"].starts_with("redis://understudy:"));
    assert!(env["UNDERSTUDY_POSTGRES__URL"].starts_with("postgres://understudy_sink:"));
    assert!(env.contains_key("UNDERSTUDY_ZOOKEEPER__DIGEST_AUTH"));
    // Nodes get no way to change the schema.
    assert_eq!(env["UNDERSTUDY_NODE__RUN_MIGRATIONS"], "false");
    assert!(
        !written.contains(":understudy@"),
        "the schema owner's password is not handed to nodes:\n{written}"
    );
    env
}

#[tokio::test]
async fn the_secure_local_setup_runs_a_cluster_with_its_credentials() {
    let _serial = serial().await;
    let env = secure_setup();
    let cluster = TestCluster::start_with("secure-setup", 1, env).await;
    cluster.wait_for_leader(None).await;
    publish_and_verify(&cluster, "with the secure setup").await;
    let status = cluster.status(0).await.expect("status");
    assert_eq!(status["dependencies"]["redis"]["circuit"], "closed");
    assert_eq!(status["dependencies"]["postgres"]["circuit"], "closed");
    // The schema owner's well-known local password no longer opens the database.
    let well_known = "postgres://understudy:understudy@127.0.0.1:5432/understudy";
    let refused = tokio_postgres::connect(well_known, tokio_postgres::NoTls)
        .await
        .err()
        .expect("the well-known owner password is refused");
    assert_eq!(
        refused.as_db_error().map(|error| error.code()),
        Some(&tokio_postgres::error::SqlState::INVALID_PASSWORD),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_sink_role_node_serves_its_status_while_migrations_are_pending_and_leads_once_they_ran() {
    let _serial = serial().await;
    let mut env = secure_setup();
    let database = unique("pending-schema").replace('-', "_");
    let owner = pg().await;
    owner
        .execute(&format!("CREATE DATABASE {database}"), &[])
        .await
        .expect("create an empty database");
    let on_database = |url: &str| {
        let (server, _) = url.rsplit_once('/').expect("a database in the url");
        format!("{server}/{database}")
    };
    let sink_url = on_database(&env["UNDERSTUDY_POSTGRES__URL"]);
    env.insert("UNDERSTUDY_POSTGRES__URL".into(), sink_url);
    env.extend([
        ("UNDERSTUDY_CLUSTER".into(), database.clone()),
        ("UNDERSTUDY_KAFKA__TOPIC".into(), unique("pending-schema")),
        ("UNDERSTUDY_NODE__BIND_HOST".into(), "127.0.0.1".into()),
        ("UNDERSTUDY_NODE__HTTP_PORT".into(), "0".into()),
    ]);
    let node = common::start_process("pending-schema-node", &["node"], &env);
    let http = http_client();
    let status_url = node.url("/api/failover/status");
    for _ in 0..6 {
        let answer = common::get_json(&http, &status_url).await;
        assert_eq!(
            answer["isLeader"], false,
            "leads without a schema: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let log = std::fs::read_to_string(&node.log_path).expect("node log");
    assert!(log.contains("schema not current"), "{log}");
    let insider = Client::connector()
        .with_auth(
            "digest",
            env["UNDERSTUDY_ZOOKEEPER__DIGEST_AUTH"].as_bytes(),
        )
        .connect(ZOOKEEPER)
        .await
        .expect("connect with the credential");
    let election = format!("/understudy/{database}/election");
    match insider.list_children(&election).await {
        Err(ZkError::NoNode) => {}
        Ok(members) => assert!(members.is_empty(), "joined the election: {members:?}"),
        Err(error) => panic!("{error}"),
    }

    let owner_url = on_database(&postgres_url());
    // The owner's password through the environment: argv is public (`ps`).
    let migrate = Command::new(env!("CARGO_BIN_EXE_understudy"))
        .args(["migrate", "up"])
        .env("UNDERSTUDY_POSTGRES__URL", &owner_url)
        .env_remove("UNDERSTUDY_POSTGRES__MIGRATIONS_URL")
        .output()
        .expect("understudy migrate up");
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    // What `scripts/infra up --secure` grants in the main database.
    pg_connect(&owner_url)
        .await
        .batch_execute(
            "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO understudy_sink; \
             GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO understudy_sink; \
             REVOKE ALL ON __diesel_schema_migrations FROM understudy_sink; \
             GRANT SELECT ON __diesel_schema_migrations TO understudy_sink;",
        )
        .await
        .expect("grant the sink role its rows");
    common::wait_until_leading(
        &http,
        &status_url,
        "the node to lead once the schema is current",
    )
    .await;
    drop(node);
    // The killed node's backends belong to the sink role, which the owner
    // may not terminate: wait for them to end instead of forcing.
    eventually(Duration::from_secs(20), "the database dropped", || async {
        owner
            .execute(&format!("DROP DATABASE IF EXISTS {database}"), &[])
            .await
            .ok()
    })
    .await;
}

#[tokio::test]
async fn open_acls_on_existing_znodes_are_closed_before_a_node_works_on_them() {
    let _serial = serial().await;
    // The reproduction: election and epoch znodes created earlier with open
    // ACLs, then a node configured with digest auth.
    let cluster_name = unique("open-acl").replace('-', "_");
    let stranger = Client::connect(ZOOKEEPER).await.expect("connect");
    let open = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let election = format!("/understudy/{cluster_name}/election");
    let epoch = format!("/understudy/{cluster_name}/epoch");
    stranger
        .mkdir(&election, &open)
        .await
        .expect("open election");
    stranger
        .create(&epoch, b"0", &open)
        .await
        .expect("open epoch");

    let mut env = gateway_env(&unique("open-acl"), KAFKA);
    env.extend([
        ("UNDERSTUDY_CLUSTER".to_owned(), cluster_name.clone()),
        (
            "UNDERSTUDY_NODE__BIND_HOST".to_owned(),
            "127.0.0.1".to_owned(),
        ),
        ("UNDERSTUDY_NODE__HTTP_PORT".to_owned(), "0".to_owned()),
        (
            "UNDERSTUDY_ZOOKEEPER__DIGEST_AUTH".to_owned(),
            CREDENTIAL.to_owned(),
        ),
    ]);
    let node = common::start_process("open-acl-node", &["node"], &env);
    let http = http_client();
    common::wait_until_leading(&http, &node.url("/api/failover/status"), "the node to lead").await;
    // The stranger can no longer move the epoch or touch the election.
    assert!(matches!(
        stranger.set_data(&epoch, b"not-a-number", None).await,
        Err(ZkError::NoAuth)
    ));
    assert!(matches!(
        stranger.list_children(&election).await,
        Err(ZkError::NoAuth)
    ));
    let log = std::fs::read_to_string(&node.log_path).expect("log");
    assert!(log.contains("closed an open ACL"), "{log}");
}
