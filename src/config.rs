//! Owns the one typed configuration of every Understudy process.
//!
//! Values are merged, last wins, from: the defaults below (which work on a laptop
//! with `scripts/infra up`), an optional TOML file, environment variables
//! `UNDERSTUDY_<SECTION>__<KEY>` (for example `UNDERSTUDY_KAFKA__TOPIC`) and
//! `UNDERSTUDY_CLUSTER`, and the seed's `SERVER_PORT`, which sets the HTTP port of
//! the process being started. The few `UNDERSTUDY_*` variables that are not keys
//! ([`NOT_KEYS`]: the configuration file's path, the scripts' and compose's own)
//! are left alone; any other is refused, so a misspelt key (one underscore
//! where two belong) never passes silently.
//! [`Config::validate`] enforces the cross-field rules; every error names the key.

use std::path::Path;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::node::url::base_url;
use crate::shared::redact::redact_url;

/// Which process is loading the configuration; decides where `SERVER_PORT` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The HTTP gateway that publishes events to Kafka.
    Gateway,
    /// A consumer node (leader or standby).
    Node,
    /// A tool that opens no HTTP port (migrations, load generation).
    Tool,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type.
    #[error("invalid configuration: key `{key}`: {reason}")]
    Load {
        /// Dotted path of the offending key (empty when a whole source failed).
        key: String,
        /// What went wrong, and in which source.
        reason: String,
    },
    /// A value is well-typed but breaks a rule.
    #[error("invalid configuration: key `{key}`: {reason}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `node.heartbeat_timeout_ms`.
        key: &'static str,
        /// What rule the value breaks.
        reason: String,
    },
}

/// Everything a gateway or node needs to know, in one place.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Name of the cluster: namespaces ZooKeeper paths, the fence row, Redis keys
    /// and stored offsets, so several clusters can share the same services.
    pub cluster: String,
    /// The HTTP gateway.
    pub gateway: GatewayConfig,
    /// Consumer nodes.
    pub node: NodeConfig,
    /// The Kafka-protocol broker and the events topic.
    pub kafka: KafkaConfig,
    /// Circuit breakers in front of Kafka, PostgreSQL and Redis.
    pub circuit_breaker: CircuitBreakerConfig,
    /// ZooKeeper, the leadership authority.
    pub zookeeper: ZookeeperConfig,
    /// Redis, for heartbeats and state snapshots.
    pub redis: RedisConfig,
    /// PostgreSQL, where events are stored.
    pub postgres: PostgresConfig,
    /// Traces.
    pub telemetry: TelemetryConfig,
}

/// Where traces go, and how logs are written.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base URL of a collector or Jaeger (e.g. `http://127.0.0.1:4318`);
    /// empty turns tracing export off. `https://` is verified against the
    /// system's roots, or `otlp_ca_file`.
    pub otlp_endpoint: String,
    /// PEM bundle of the CA(s) that sign the collector's certificate (empty:
    /// the system's roots).
    pub otlp_ca_file: String,
    /// How log lines on stderr are written.
    pub log_format: LogFormat,
}

/// The shape of a log line.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (the default on a terminal).
    #[default]
    Text,
    /// One JSON object per line, with the span fields: what a log pipeline ingests.
    Json,
}

/// The gateway's HTTP surface and input limits.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address the HTTP server binds to.
    pub bind_host: String,
    /// HTTP port (the seed's gateway listens on 8080).
    pub http_port: u16,
    /// Largest accepted request body; larger bodies get 413 before being read whole.
    pub max_body_bytes: usize,
    /// Most events accepted in one `POST /api/logs/batch`.
    pub max_batch_events: usize,
    /// Longest `message`, in bytes of UTF-8.
    pub max_message_bytes: usize,
    /// Longest `source`, in bytes of UTF-8.
    pub max_source_bytes: usize,
    /// Largest `attributes` object, in bytes of its JSON encoding.
    pub max_attributes_bytes: usize,
    /// Status URLs of the nodes that `GET /api/system/status` aggregates.
    pub node_urls: Vec<String>,
    /// Find the nodes in ZooKeeper instead (the election's members and the
    /// URL each advertises, `node.advertised_url`); `node_urls` is then unused.
    pub discover_nodes: bool,
    /// Time allowed for each node's status answer.
    pub node_status_timeout_ms: u64,
    /// How often the broker is probed for readiness (and the topic ensured).
    pub broker_probe_interval_ms: u64,
    /// Publishing requests per second allowed per client address (0: no limit).
    pub rate_limit_per_second: u32,
    /// Requests a client may send at once before the rate applies.
    pub rate_limit_burst: u32,
    /// Longest a client may take to send a request's headers and body, ms
    /// (slow senders are cut off: slowloris).
    pub client_request_timeout_ms: u64,
    /// Most bytes of request bodies held at once across all ingest requests:
    /// a body is admitted only when its size (declared, or `max_body_bytes`)
    /// fits now, else it gets 503 `overloaded` with `Retry-After`, instead of
    /// growing the gateway's memory.
    pub max_inflight_body_bytes: usize,
    /// Where `/metrics` is served instead of the main port, e.g.
    /// `127.0.0.1:9464`; empty: on the main port.
    pub metrics_bind: String,
}

/// A consumer node's HTTP surface and failover knobs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Address the node's HTTP server binds to.
    pub bind_host: String,
    /// HTTP port (`SERVER_PORT` overrides it, as in the seed).
    pub http_port: u16,
    /// Stable identity of this node; a fresh UUID per process when empty.
    pub instance_id: String,
    /// The URL other hosts reach this node's HTTP API at (ZooKeeper carries
    /// it to the gateway and the other nodes); empty: `http://<bind_host>:<port>`,
    /// with 127.0.0.1 for an unspecified bind address, which suits one host only.
    pub advertised_url: String,
    /// Whether the node applies pending migrations at start with
    /// `postgres.migrations_url`. Off in production: migrations are their own
    /// step (`understudy migrate up`), the node holds only the sink role, and
    /// it serves its status but joins no election until the schema is current.
    pub run_migrations: bool,
    /// Whether standbys hold a connection to the leader's process and take
    /// over the moment it dies (its address refuses them after its own
    /// answer ended): crash failover in milliseconds, independent of the
    /// session timeout. Turn off when a proxy that may refuse connections
    /// while the leader lives stands between nodes.
    pub detect_leader_crash: bool,
    /// How often the leader writes `leader:heartbeat` to Redis.
    pub heartbeat_interval_ms: u64,
    /// Age past which a heartbeat counts as missed.
    pub heartbeat_timeout_ms: u64,
    /// How often standbys read the heartbeat.
    pub heartbeat_check_interval_ms: u64,
    /// Consecutive missed heartbeats before a standby forces a takeover.
    pub heartbeat_misses_before_takeover: u32,
    /// Token that admin endpoints (`POST /api/failover/stepdown`) require as
    /// `Authorization: Bearer <token>`; empty: admin endpoints are disabled.
    /// Never printed by `understudy config`.
    #[serde(skip_serializing)]
    pub admin_token: String,
    /// Where `/metrics` is served instead of the main port; empty: on the main port.
    pub metrics_bind: String,
    /// Most events committed in one PostgreSQL transaction.
    pub batch_max_events: usize,
    /// About the most bytes of record keys and values in one transaction: a
    /// batch of large records stops growing here, far below PostgreSQL's
    /// 1 GB message limit.
    pub batch_max_bytes: usize,
    /// Longest a partial batch waits for more events before it is committed.
    /// A term's first batch does not wait: it takes what the term found
    /// waiting, so a takeover's backlog is not delayed further.
    pub batch_linger_ms: u64,
    /// Least time between two state snapshots written to Redis.
    pub snapshot_interval_ms: u64,
    /// Oldest state snapshot a new leader will trust.
    pub state_max_age_ms: u64,
}

/// The Kafka-protocol broker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `host:port` list handed to librdkafka.
    pub bootstrap_servers: String,
    /// Topic that carries log events.
    pub topic: String,
    /// Partitions created for the topic when it does not exist.
    pub partitions: i32,
    /// Replication factor used when creating the topic.
    pub replication_factor: i32,
    /// Upper bound on a produce: past it the gateway answers 503, never 2xx.
    pub message_timeout_ms: u64,
    /// How long the gateway's producer waits to fill a batch (`linger.ms`):
    /// lower is less latency, higher is fewer wake-ups and requests per event.
    pub linger_ms: u64,
    /// Produce requests in flight per broker connection, across its
    /// partitions (`max.in.flight.requests.per.connection`, 1..=5 with
    /// idempotence). 1: with more, librdkafka's broker thread spins while a
    /// request is out (measured against one local broker: 58–74 CPU seconds
    /// per million events at 5, 16–19 at 1, at the same throughput). A remote
    /// cluster with several partitions per broker may want up to 5 (README).
    pub max_in_flight: u32,
    /// Upper bound on metadata and admin requests.
    pub request_timeout_ms: u64,
    /// Longest the broker may hold a fetch that has no data yet; bounds how
    /// long a new leader's first fetch can wait (hand-over latency) against
    /// idle fetch requests per second.
    pub fetch_wait_max_ms: u64,
    /// Extra librdkafka properties for every Kafka client, applied last: how a
    /// production cluster is reached, e.g. `security.protocol = "SASL_SSL"`,
    /// `sasl.mechanisms = "SCRAM-SHA-512"`, `sasl.username`, `sasl.password`,
    /// `ssl.ca.location`. An unknown property fails the process at start,
    /// naming it. Never printed by `understudy config` (it holds secrets).
    #[serde(skip_serializing)]
    pub client_properties: std::collections::BTreeMap<String, String>,
}

/// ZooKeeper.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ZookeeperConfig {
    /// `host:port` list.
    pub connect: String,
    /// Session timeout: how long a leader cut off from ZooKeeper (a network
    /// split, a dead host) keeps its member node, and so the failover time
    /// for those faults.
    pub session_timeout_ms: u64,
    /// The server's `tickTime`; sessions are clamped to at least twice this.
    pub tick_time_ms: u64,
    /// Root path under which each cluster keeps its election.
    pub root: String,
    /// `user:password` for ZooKeeper's digest scheme; when set, every znode
    /// the nodes create is readable and writable by that identity only (a
    /// client without it cannot join, delete a member or move the epoch).
    /// Empty: open ACLs (a laptop). Never printed by `understudy config`.
    #[serde(skip_serializing)]
    pub digest_auth: String,
    /// PEM bundle of the CA(s) that sign the servers' certificates: when set,
    /// every connection uses TLS (the servers' `secureClientPort`) and
    /// verifies the server, host name included.
    pub tls_ca_file: String,
    /// This node's certificate (PEM) for servers that require client
    /// authentication (ZooKeeper's default `ssl.clientAuth=need`); with
    /// `tls_key_file`.
    pub tls_cert_file: String,
    /// The private key (PEM) of `tls_cert_file`.
    pub tls_key_file: String,
}

/// Circuit breakers (one per dependency and process, same settings).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerConfig {
    /// Consecutive failures that open a breaker.
    pub failure_threshold: u32,
    /// How long a breaker first stays open before it half-opens to probe.
    pub open_ms: u64,
    /// Longest it stays open after repeated failed probes (the delay grows, jittered).
    pub max_open_ms: u64,
}

/// Redis.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// Connection URL: `redis://` in the clear, `rediss://` over TLS.
    pub url: String,
    /// PEM bundle of the CA(s) that sign the server's certificate, for a
    /// `rediss://` URL (empty: the system's roots).
    pub tls_ca_file: String,
}

/// PostgreSQL.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// Connection URL the nodes work with (the sink's role: it needs only
    /// SELECT, INSERT and UPDATE on the five tables).
    pub url: String,
    /// Connection URL for migrations (the role that owns the schema); empty:
    /// `url` is used for both. Never printed by `understudy config`.
    #[serde(skip_serializing)]
    pub migrations_url: String,
    /// PEM bundle of the CA(s) that sign the server's certificate: when set,
    /// every connection uses TLS and verifies the server (`verify-full`).
    pub tls_ca_file: String,
    /// Connections kept by the pool.
    pub pool_size: u32,
    /// Upper bound on getting a connection.
    pub connect_timeout_ms: u64,
}

impl Config {
    /// How long a leader that stopped working keeps its leadership at most:
    /// its ZooKeeper session if it is gone (crash, pause, partition), or the
    /// heartbeat rule if it is still connected but hung (forced takeover). A
    /// leader's open transaction idle for longer is ended by PostgreSQL, so a
    /// paused leader holding the fence row never stalls its successor.
    pub fn leadership_loss_bound(&self) -> std::time::Duration {
        let node = &self.node;
        let forced_takeover = node.heartbeat_timeout_ms
            + u64::from(node.heartbeat_misses_before_takeover) * node.heartbeat_check_interval_ms;
        std::time::Duration::from_millis(self.zookeeper.session_timeout_ms.min(forced_takeover))
    }
}

impl Config {
    /// A copy safe to print: every URL's password hidden ([`redact_url`]);
    /// the fields that are secrets of their own are never serialised.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        shown.redis.url = redact_url(&shown.redis.url);
        shown.postgres.url = redact_url(&shown.postgres.url);
        shown.telemetry.otlp_endpoint = redact_url(&shown.telemetry.otlp_endpoint);
        for node_url in &mut shown.gateway.node_urls {
            *node_url = redact_url(node_url);
        }
        shown
    }
}

impl PostgresConfig {
    /// Where migrations run: `migrations_url`, or `url` when it is empty.
    pub fn migrations_url(&self) -> &str {
        if self.migrations_url.is_empty() {
            &self.url
        } else {
            &self.migrations_url
        }
    }
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        // The environment spells keys in upper case; report the dotted form the file uses.
        let key = error.path.join(".").to_lowercase();
        let source = error
            .metadata
            .as_ref()
            .map(|metadata| format!(" (from {})", metadata.name))
            .unwrap_or_default();
        ConfigError::Load {
            key,
            reason: format!("{}{source}", error.kind),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster: "default".to_owned(),
            gateway: GatewayConfig::default(),
            node: NodeConfig::default(),
            kafka: KafkaConfig::default(),
            zookeeper: ZookeeperConfig::default(),
            redis: RedisConfig::default(),
            postgres: PostgresConfig::default(),
            telemetry: TelemetryConfig::default(),
            circuit_breaker: CircuitBreakerConfig::default(),
        }
    }
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            // Short: an open breaker delays recovery by up to its delay
            // (jittered up to twice) once the dependency is back; a probe a
            // second costs a dependency nothing.
            open_ms: 250,
            max_open_ms: 1_000,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            bind_host: "0.0.0.0".to_owned(),
            http_port: 8080,
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_events: 1000,
            max_message_bytes: 64 * 1024,
            max_source_bytes: 256,
            max_attributes_bytes: 16 * 1024,
            node_urls: (8081..=8083)
                .map(|port| format!("http://127.0.0.1:{port}"))
                .collect(),
            discover_nodes: false,
            node_status_timeout_ms: 1000,
            broker_probe_interval_ms: 2000,
            // Generous for one client (a batch is one request), still a cap on
            // a runaway or hostile one.
            rate_limit_per_second: 2000,
            rate_limit_burst: 4000,
            client_request_timeout_ms: 10_000,
            max_inflight_body_bytes: 32 * 1024 * 1024,
            metrics_bind: String::new(),
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            bind_host: "0.0.0.0".to_owned(),
            http_port: 8081,
            instance_id: String::new(),
            advertised_url: String::new(),
            run_migrations: true,
            detect_leader_crash: true,
            heartbeat_interval_ms: 200,
            heartbeat_timeout_ms: 1000,
            heartbeat_check_interval_ms: 250,
            heartbeat_misses_before_takeover: 3,
            admin_token: String::new(),
            metrics_bind: String::new(),
            batch_max_events: 2000,
            batch_max_bytes: 16 * 1024 * 1024,
            batch_linger_ms: 20,
            snapshot_interval_ms: 500,
            state_max_age_ms: 30_000,
        }
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            topic: "log-events".to_owned(),
            partitions: 3,
            replication_factor: 1,
            message_timeout_ms: 5000,
            linger_ms: 5,
            max_in_flight: 1,
            request_timeout_ms: 3000,
            fetch_wait_max_ms: 10,
            client_properties: std::collections::BTreeMap::new(),
        }
    }
}

impl Default for ZookeeperConfig {
    fn default() -> Self {
        Self {
            connect: "127.0.0.1:2181".to_owned(),
            // Chosen for robustness, not speed: a dead leader process is
            // replaced in milliseconds by its presence (`node.detect_leader_crash`)
            // and a hung one by the heartbeat rule (~1.75 s); the session
            // decides only a leader cut off from the network or a dead host.
            // 6 s rides out a ZooKeeper server's restart on a starved machine:
            // the client gives up 7/5 of the session after its last answer,
            // and alone with one server it retries after 0.1, 0.3, 0.7, 1.5,
            // 3.1 and 6.3 s, so with 4 s its last try came 3.1 s into the
            // restart (BENCHMARKS.md, the soak).
            session_timeout_ms: 6000,
            tick_time_ms: 100,
            digest_auth: String::new(),
            tls_ca_file: String::new(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            root: "/understudy".to_owned(),
        }
    }
}

impl ZookeeperConfig {
    /// The client port of the first server in `connect` (2181 when none is
    /// written).
    pub fn first_port(&self) -> u16 {
        let first = self.connect.split(',').next().unwrap_or_default();
        let address = first.split('/').next().unwrap_or_default();
        address
            .rsplit_once(':')
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(2181)
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".to_owned(),
            tls_ca_file: String::new(),
        }
    }
}

impl Default for PostgresConfig {
    fn default() -> Self {
        Self {
            url: "postgres://understudy:understudy@127.0.0.1:5432/understudy".to_owned(),
            migrations_url: String::new(),
            tls_ca_file: String::new(),
            pool_size: 8,
            // Short: a call waits this long for a pooled connection while
            // PostgreSQL is down, which is also how long recovery can lag
            // once it is back (3 s measured 3.6 s RTO after an outage).
            connect_timeout_ms: 1000,
        }
    }
}

/// `UNDERSTUDY_*` variables that name no key: `UNDERSTUDY_CONFIG` (the file),
/// `UNDERSTUDY_INFRA_DIR` (scripts/infra), `UNDERSTUDY_ADMIN_TOKEN` and
/// `UNDERSTUDY_SINK_PASSWORD` (compose's substitutions).
pub const NOT_KEYS: [&str; 4] = ["CONFIG", "INFRA_DIR", "ADMIN_TOKEN", "SINK_PASSWORD"];

/// Refuses an `UNDERSTUDY_*` variable that is neither a key nor in [`NOT_KEYS`].
fn refuse_stray_variables() -> Result<(), ConfigError> {
    for (name, _) in std::env::vars_os() {
        let Some(rest) = name
            .to_str()
            .and_then(|name| name.strip_prefix("UNDERSTUDY_"))
        else {
            continue;
        };
        let upper = rest.to_ascii_uppercase();
        if !upper.contains("__") && upper != "CLUSTER" && !NOT_KEYS.contains(&upper.as_str()) {
            return Err(ConfigError::Load {
                key: format!("UNDERSTUDY_{rest}"),
                reason: "not a configuration variable: keys are UNDERSTUDY_<SECTION>__<KEY>, e.g. UNDERSTUDY_POSTGRES__URL".to_owned(),
            });
        }
    }
    Ok(())
}

impl Config {
    /// Loads defaults, then `file` if given, then the environment, and validates.
    pub fn load(file: Option<&Path>, role: Role) -> Result<Self, ConfigError> {
        refuse_stray_variables()?;
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed("UNDERSTUDY_")
                .filter(|key| key.as_str().contains("__") || key == "cluster")
                .split("__"),
        );
        let port_key = match role {
            Role::Gateway => Some("gateway.http_port"),
            Role::Node => Some("node.http_port"),
            Role::Tool => None,
        };
        if let Some(port_key) = port_key {
            figment = figment.merge(
                Env::raw()
                    .only(&["SERVER_PORT"])
                    .map(move |_| port_key.into()),
            );
        }
        let config: Config = figment.extract().map_err(ConfigError::from)?;
        config.validate()?;
        Ok(config)
    }

    /// Enforces the rules that no single field's type can express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                reason: reason.into(),
            }
        }
        if self.cluster.is_empty()
            || !self
                .cluster
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "cluster",
                "must be non-empty and use only ASCII letters, digits, '-' and '_' (it names ZooKeeper paths and Redis keys)",
            ));
        }
        let advertised = &self.node.advertised_url;
        if !advertised.is_empty() && base_url(advertised).is_none() {
            return Err(invalid(
                "node.advertised_url",
                "must be http://host:port other hosts can reach (no path, query or credentials), e.g. http://node-1.internal:8081",
            ));
        }
        let zookeeper = &self.zookeeper;
        if zookeeper.tls_cert_file.is_empty() != zookeeper.tls_key_file.is_empty() {
            return Err(invalid(
                "zookeeper.tls_cert_file",
                "a client certificate needs its key (`zookeeper.tls_key_file`), and a key its certificate",
            ));
        }
        if !zookeeper.tls_cert_file.is_empty() && zookeeper.tls_ca_file.is_empty() {
            return Err(invalid(
                "zookeeper.tls_ca_file",
                "a client certificate is used over TLS only: set the CA bundle too",
            ));
        }
        if self.kafka.topic.is_empty() {
            return Err(invalid("kafka.topic", "must not be empty"));
        }
        if self.circuit_breaker.failure_threshold == 0 {
            return Err(invalid(
                "circuit_breaker.failure_threshold",
                "must be at least 1",
            ));
        }
        if self.circuit_breaker.open_ms == 0
            || self.circuit_breaker.max_open_ms < self.circuit_breaker.open_ms
        {
            return Err(invalid(
                "circuit_breaker.max_open_ms",
                "open_ms must be above 0 and max_open_ms at least open_ms",
            ));
        }
        if self.kafka.partitions < 1 {
            return Err(invalid("kafka.partitions", "must be at least 1"));
        }
        if self.kafka.replication_factor < 1 {
            return Err(invalid("kafka.replication_factor", "must be at least 1"));
        }
        if self.kafka.message_timeout_ms == 0 {
            return Err(invalid("kafka.message_timeout_ms", "must be positive"));
        }
        if self.gateway.max_batch_events == 0 {
            return Err(invalid("gateway.max_batch_events", "must be at least 1"));
        }
        if self.gateway.max_message_bytes == 0 {
            return Err(invalid("gateway.max_message_bytes", "must be at least 1"));
        }
        if self.gateway.max_message_bytes >= self.gateway.max_body_bytes {
            return Err(invalid(
                "gateway.max_message_bytes",
                "must be smaller than gateway.max_body_bytes, or no message of that size could ever arrive",
            ));
        }
        for url in &self.gateway.node_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "gateway.node_urls",
                    format!("`{url}` is not an http(s) URL"),
                ));
            }
        }
        if self.node.heartbeat_interval_ms == 0 {
            return Err(invalid("node.heartbeat_interval_ms", "must be positive"));
        }
        if self.node.heartbeat_timeout_ms <= self.node.heartbeat_interval_ms {
            return Err(invalid(
                "node.heartbeat_timeout_ms",
                "must be greater than node.heartbeat_interval_ms, or every heartbeat would count as missed",
            ));
        }
        if self.node.heartbeat_check_interval_ms == 0 {
            return Err(invalid(
                "node.heartbeat_check_interval_ms",
                "must be positive",
            ));
        }
        if self.node.heartbeat_misses_before_takeover == 0 {
            return Err(invalid(
                "node.heartbeat_misses_before_takeover",
                "must be at least 1",
            ));
        }
        if !(1..=5).contains(&self.kafka.max_in_flight) {
            return Err(invalid(
                "kafka.max_in_flight",
                "must be 1 to 5 (the idempotent producer allows no more)",
            ));
        }
        if self.gateway.max_inflight_body_bytes < self.gateway.max_body_bytes {
            return Err(invalid(
                "gateway.max_inflight_body_bytes",
                "must be at least gateway.max_body_bytes, or a largest body could never be read",
            ));
        }
        if self.node.batch_max_bytes == 0 {
            return Err(invalid("node.batch_max_bytes", "must be at least 1"));
        }
        if self.node.batch_max_events == 0 {
            return Err(invalid("node.batch_max_events", "must be at least 1"));
        }
        if self.zookeeper.session_timeout_ms < 2 * self.zookeeper.tick_time_ms {
            return Err(invalid(
                "zookeeper.session_timeout_ms",
                format!(
                    "must be at least 2 x zookeeper.tick_time_ms ({} ms); the server would silently raise it",
                    2 * self.zookeeper.tick_time_ms
                ),
            ));
        }
        if !self.zookeeper.root.starts_with('/') || self.zookeeper.root.ends_with('/') {
            return Err(invalid(
                "zookeeper.root",
                "must start with '/' and not end with '/'",
            ));
        }
        let endpoint = &self.telemetry.otlp_endpoint;
        if !endpoint.is_empty()
            && !endpoint.starts_with("http://")
            && !endpoint.starts_with("https://")
        {
            return Err(invalid(
                "telemetry.otlp_endpoint",
                "must be an http(s) URL, or empty to turn tracing off",
            ));
        }
        if self.postgres.pool_size == 0 {
            return Err(invalid("postgres.pool_size", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
// figment::Jail fixes the closures' error type to figment::Error, which is large.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn a_paused_leaders_transaction_outlives_neither_its_session_nor_the_heartbeat_rule() {
        let mut config = Config::default();
        assert_eq!(config.leadership_loss_bound().as_millis(), 1000 + 3 * 250);
        config.zookeeper.session_timeout_ms = 400;
        assert_eq!(config.leadership_loss_bound().as_millis(), 400);
    }

    #[test]
    fn the_first_zookeeper_port_comes_from_the_connect_string() {
        let mut zookeeper = ZookeeperConfig::default();
        for (connect, port) in [
            ("127.0.0.1:2181", 2181),
            ("zk-1:2182,zk-2:2183/understudy", 2182),
            ("zk-1", 2181),
        ] {
            zookeeper.connect = connect.to_owned();
            assert_eq!(zookeeper.first_port(), port, "{connect}");
        }
    }

    fn invalid_key(config: &Config) -> &'static str {
        match config.validate() {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid_and_match_the_seed_ports() {
        let config = Config::default();
        config.validate().expect("defaults validate");
        assert_eq!(config.gateway.http_port, 8080);
        assert_eq!(config.node.http_port, 8081);
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(config.zookeeper.connect, "127.0.0.1:2181");
    }

    #[test]
    fn heartbeat_timeout_must_exceed_interval() {
        let mut config = Config::default();
        config.node.heartbeat_timeout_ms = config.node.heartbeat_interval_ms;
        assert_eq!(invalid_key(&config), "node.heartbeat_timeout_ms");
    }

    #[test]
    fn session_timeout_must_cover_two_ticks() {
        let mut config = Config::default();
        config.zookeeper.tick_time_ms = 2000;
        config.zookeeper.session_timeout_ms = 1000;
        assert_eq!(invalid_key(&config), "zookeeper.session_timeout_ms");
    }

    #[test]
    fn an_advertised_url_must_be_an_http_url() {
        let mut config = Config::default();
        config.node.advertised_url = "node-1:8081".to_owned();
        assert_eq!(invalid_key(&config), "node.advertised_url");
        config.node.advertised_url = "http://node-1.internal:8081".to_owned();
        config.validate().expect("an http URL is valid");
    }

    #[test]
    fn cluster_name_must_be_path_safe() {
        let config = Config {
            cluster: "a/b".to_owned(),
            ..Config::default()
        };
        assert_eq!(invalid_key(&config), "cluster");
    }

    #[test]
    fn file_environment_and_server_port_merge_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "understudy.toml",
                "cluster = \"from-file\"\n[kafka]\ntopic = \"file-topic\"\n",
            )?;
            jail.set_env("UNDERSTUDY_KAFKA__TOPIC", "env-topic");
            jail.set_env("SERVER_PORT", "8082");
            let node = Config::load(Some(Path::new("understudy.toml")), Role::Node)
                .map_err(|e| e.to_string())?;
            assert_eq!(node.cluster, "from-file");
            assert_eq!(node.kafka.topic, "env-topic");
            assert_eq!(node.node.http_port, 8082);
            assert_eq!(node.gateway.http_port, 8080);
            let gateway = Config::load(None, Role::Gateway).map_err(|e| e.to_string())?;
            assert_eq!(gateway.gateway.http_port, 8082);
            Ok(())
        });
    }

    #[test]
    fn understudy_variables_that_are_not_keys_are_left_to_their_owners() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("UNDERSTUDY_CONFIG", "/etc/understudy.toml");
            jail.set_env("UNDERSTUDY_ADMIN_TOKEN", "compose-substitution");
            jail.set_env("UNDERSTUDY_INFRA_DIR", "/tmp/infra");
            jail.set_env("UNDERSTUDY_CLUSTER", "from-env");
            let config = Config::load(None, Role::Node).map_err(|e| e.to_string())?;
            assert_eq!(config.cluster, "from-env");
            jail.set_env("UNDERSTUDY_NODE__HEARTBEAT_INTERVALL_MS", "5");
            let error = Config::load(None, Role::Node).expect_err("a misspelt key must fail");
            assert!(
                error.to_string().contains("heartbeat_intervall_ms"),
                "{error}"
            );
            jail.set_env("UNDERSTUDY_POSTGRES_URL", "postgres://x:y@prod/db");
            let error = Config::load(None, Role::Node).expect_err("one underscore must fail");
            assert!(
                error.to_string().contains("UNDERSTUDY_POSTGRES_URL"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_wrongly_typed_value_names_its_key() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("UNDERSTUDY_NODE__HEARTBEAT_INTERVAL_MS", "soon");
            let error = Config::load(None, Role::Node).expect_err("must fail");
            assert!(
                error.to_string().contains("`node.heartbeat_interval_ms`"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_rejected() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("understudy.toml", "[node]\nheartbeat_intervall_ms = 5\n")?;
            let error = Config::load(Some(Path::new("understudy.toml")), Role::Node)
                .expect_err("must fail");
            assert!(
                error.to_string().contains("heartbeat_intervall_ms"),
                "{error}"
            );
            Ok(())
        });
    }
}
