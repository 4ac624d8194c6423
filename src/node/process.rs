//! Owns the node process: applies migrations (or waits until `understudy
//! migrate` has), starts the actors and the HTTP API,
//! and turns SIGTERM or Ctrl+C into a graceful exit (finish the in-flight batch,
//! leave the election so the successor takes over in milliseconds).

use std::net::SocketAddr;
use std::time::Duration;

use actix::Supervisor;
use actix_web::{web, App, HttpServer};
use backon::{BackoffBuilder, Retryable};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::{Config, PostgresConfig};
use crate::log_event::EventLimits;
use crate::node::api::{self, NodeState};
use crate::node::consumer::partition_reader::PartitionReader;
use crate::node::consumer::ConsumerSettings;
use crate::node::coordinator::{NodeCoordinator, NodeIdentity};
use crate::node::election::presence;
use crate::node::election::session::{self, ElectionError, MemberInfo};
use crate::node::election::{CampaignSetup, ElectionActor};
use crate::node::heartbeat::store::HeartbeatStore;
use crate::node::heartbeat::HeartbeatActor;
use crate::node::messages::{
    CoordinatorPeers, ElectionEvents, ElectionOrders, HeartbeatOrders, HeartbeatPeers, Shutdown,
    SinkOrders, SnapshotOrders,
};
use crate::node::metrics::NodeMetrics;
use crate::node::presence_stream::{self, Presence};
use crate::node::sink::store::SinkStore;
use crate::node::sink::SinkActor;
use crate::node::snapshot::store::SnapshotStore;
use crate::node::snapshot::StateSnapshotActor;
use crate::node::url::base_url;
use crate::shared::circuit_breaker::DependencyBreaker;
use crate::shared::http::api_error::ApiError;
use crate::shared::http::metrics_endpoint;
use crate::shared::postgres::migrations::{self, MigrationStep};
use crate::shared::postgres::pool::build_pool;
use crate::shared::postgres::tls::{self, TlsSetupError};
use crate::shared::redis_store::{self, GuardedRedis, RedisStoreError};
use crate::shared::retry_policy::dependency_backoff;
use crate::shared::telemetry::breaker_metrics;
use crate::shared::telemetry::registry::{MetricsError, MetricsRegistry};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The Kafka client could not be created.
    #[error("could not create the kafka consumer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The Redis client could not be created (bad URL).
    #[error("could not create the redis client: {0}")]
    Redis(#[from] RedisStoreError),
    /// The metrics pipeline could not be built.
    #[error("{0}")]
    Metrics(#[from] MetricsError),
    /// TLS to PostgreSQL is configured but cannot work.
    #[error("{0}")]
    PostgresTls(#[from] TlsSetupError),
    /// ZooKeeper's TLS files cannot be used.
    #[error("{0}")]
    ZooKeeperTls(#[from] ElectionError),
    /// The client that watches the leader's process could not be built.
    #[error("could not build the leader presence client: {0}")]
    PresenceClient(#[from] reqwest::Error),
    /// The port could not be bound or the server failed.
    #[error("http server error: {0}")]
    Server(#[from] std::io::Error),
}

/// Connections kept for `GET /api/failover/history`, apart from the sink's.
const HISTORY_POOL_SIZE: u32 = 2;

/// Runs a node until SIGTERM or Ctrl+C.
pub async fn run(config: Config) -> Result<(), NodeError> {
    let instance_id = if config.node.instance_id.is_empty() {
        format!("node-{}", Uuid::now_v7().simple())
    } else {
        config.node.instance_id.clone()
    };
    let registry = MetricsRegistry::new()?;
    let metrics = NodeMetrics::new(&registry)?;
    let postgres_tls = tls::connector(&config.postgres)?;
    session::tls_options(&config.zookeeper)?;
    let (schema_current, schema) = watch::channel(false);
    if config.node.run_migrations {
        apply_migrations(config.postgres.migrations_url(), postgres_tls.clone()).await;
        schema_current.send_replace(true);
    } else {
        let url = config.postgres.url.clone();
        let tls = postgres_tls.clone();
        tokio::spawn(wait_for_schema(url, tls, schema_current));
    }

    let listener =
        std::net::TcpListener::bind((config.node.bind_host.as_str(), config.node.http_port))?;
    let http_addr = listener.local_addr()?;
    let http_url =
        base_url(&config.node.advertised_url).unwrap_or_else(|| advertised_url(http_addr));

    // History reads get a pool and a breaker of their own: no number of
    // readers can hold the sink's connections or open the sink's breaker.
    let history_pool = build_pool(
        &PostgresConfig {
            pool_size: HISTORY_POOL_SIZE,
            ..config.postgres.clone()
        },
        postgres_tls.clone(),
        config.leadership_loss_bound(),
    );
    let pool = build_pool(
        &config.postgres,
        postgres_tls,
        config.leadership_loss_bound(),
    );
    let postgres_breaker = DependencyBreaker::new("postgres", &config.circuit_breaker);
    let history_breaker = DependencyBreaker::new("postgres_history", &config.circuit_breaker);
    let redis_breaker = DependencyBreaker::new("redis", &config.circuit_breaker);
    breaker_metrics::register(
        &registry,
        &[
            postgres_breaker.clone(),
            history_breaker.clone(),
            redis_breaker.clone(),
        ],
    );
    let history = SinkStore::new(
        history_pool,
        history_breaker,
        &config.cluster,
        &config.kafka.topic,
        &instance_id,
    );
    let store = SinkStore::new(
        pool,
        postgres_breaker,
        &config.cluster,
        &config.kafka.topic,
        &instance_id,
    );
    let redis = GuardedRedis::new(
        redis_store::connect_lazily(&config.redis)?,
        redis_breaker.clone(),
    );
    let reader = PartitionReader::new(&config.kafka, &format!("understudy-{}", config.cluster))?;
    if let Err(error) = reader.partitions().await {
        tracing::warn!(%error, "kafka not reachable yet; the reader will retry when leading");
    }
    let consumer_settings = ConsumerSettings {
        reader,
        topic: config.kafka.topic.clone(),
        instance_id: instance_id.clone(),
        batch_max_events: config.node.batch_max_events,
        batch_max_bytes: config.node.batch_max_bytes,
        batch_linger: Duration::from_millis(config.node.batch_linger_ms),
        limits: EventLimits::from(&config.gateway),
        metrics: metrics.clone(),
    };
    let identity = NodeIdentity {
        instance_id: instance_id.clone(),
        cluster: config.cluster.clone(),
        state_max_age_ms: config.node.state_max_age_ms,
        metrics: metrics.clone(),
    };
    let me = MemberInfo {
        instance_id: instance_id.clone(),
        http_url: http_url.clone(),
    };
    let sink_store = store.clone();
    let presence_client = if config.node.detect_leader_crash {
        Some(presence::client()?)
    } else {
        None
    };
    let coordinator =
        NodeCoordinator::start(identity, Box::new(consumer_settings), |coordinator| {
            let sink = {
                let metrics = metrics.clone();
                Supervisor::start(move |_| SinkActor::new(sink_store, metrics))
            };
            let snapshots = {
                let store = SnapshotStore::new(redis.clone(), &config.cluster);
                let instance_id = instance_id.clone();
                let topic = config.kafka.topic.clone();
                let interval = Duration::from_millis(config.node.snapshot_interval_ms);
                Supervisor::start(move |_| {
                    StateSnapshotActor::new(store, instance_id, topic, interval)
                })
            };
            let election = {
                let setup = CampaignSetup {
                    zookeeper: config.zookeeper.clone(),
                    cluster: config.cluster.clone(),
                    me,
                    events: ElectionEvents::to(&coordinator),
                    metrics: metrics.clone(),
                    schema,
                    presence: presence_client,
                };
                Supervisor::start(move |_| ElectionActor::new(setup.clone()))
            };
            let heartbeat = {
                let store = HeartbeatStore::new(redis, &config.cluster);
                let instance_id = instance_id.clone();
                let node = config.node.clone();
                let peers = HeartbeatPeers {
                    observed: coordinator.clone().recipient(),
                    lease: coordinator.clone().recipient(),
                    confirm: election.clone().recipient(),
                    force_takeover: election.clone().recipient(),
                };
                Supervisor::start(move |_| {
                    HeartbeatActor::new(store, instance_id, node, peers.clone())
                })
            };
            CoordinatorPeers {
                election: ElectionOrders::to(&election),
                heartbeat: HeartbeatOrders::to(&heartbeat),
                sink: SinkOrders::to(&sink),
                snapshots: SnapshotOrders::to(&snapshots),
            }
        });

    let state = web::Data::new(NodeState {
        coordinator: coordinator.clone(),
        redis_breaker,
        sink_breaker: store.breaker().clone(),
        history,
        admin_token: config.node.admin_token.clone(),
    });
    let metrics_on_main = config.node.metrics_bind.is_empty();
    let metrics_server = if metrics_on_main {
        None
    } else {
        Some(metrics_endpoint::serve_alone(
            &config.node.metrics_bind,
            registry.clone(),
        )?)
    };
    if let Some(metrics_server) = metrics_server {
        // Ends with the process: the main server's exit returns from here.
        actix_web::rt::spawn(metrics_server);
    }
    let (stopping, stopping_seen) = watch::channel(false);
    let presence = web::Data::new(Presence {
        instance_id: instance_id.clone(),
        stopping: stopping_seen,
        held: std::sync::Arc::new(tokio::sync::Semaphore::new(presence_stream::MAX_HELD)),
    });
    let registry = web::Data::new(registry);
    let server = HttpServer::new(move || {
        let app = App::new()
            .app_data(state.clone())
            .app_data(presence.clone())
            .app_data(registry.clone())
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|error, _| ApiError::InvalidParameter(error.to_string()).into()),
            )
            .configure(api::routes);
        if metrics_on_main {
            app.route("/metrics", web::get().to(metrics_endpoint::metrics))
        } else {
            app
        }
    })
    .disable_signals()
    .workers(1)
    .listen(listener)?
    .run();
    tracing::info!(%instance_id, %http_url, "node listening");
    println!("understudy node {instance_id} listening on {http_url}");

    let handle = server.handle();
    actix::spawn(async move {
        wait_for_termination().await;
        tracing::info!("termination requested; leaving gracefully");
        let _ = coordinator.send(Shutdown).await;
        // Handed over: presence streams end, so the server stops at once.
        stopping.send_replace(true);
        handle.stop(true).await;
    });
    server.await?;
    tracing::info!("node stopped");
    Ok(())
}

/// Applies pending migrations, waiting (with backoff) for PostgreSQL to answer:
/// a node that cannot reach its database must not join the election.
async fn apply_migrations(url: &str, tls: Option<MakeRustlsConnect>) {
    let applied = (|| migrations::migrate(url, tls.clone(), MigrationStep::UpAll))
        .retry(dependency_backoff())
        .notify(|error, delay| tracing::warn!(%error, ?delay, "migrations failed; retrying"))
        .await;
    if let Ok(versions) = applied {
        if !versions.is_empty() {
            tracing::info!(?versions, "applied migrations");
        }
    }
}

/// Waits, polling with backoff, until every migration this binary knows is
/// applied (by `understudy migrate up`), then opens the gate to the election.
async fn wait_for_schema(
    url: String,
    tls: Option<MakeRustlsConnect>,
    schema_current: watch::Sender<bool>,
) {
    let mut delays = dependency_backoff().build();
    loop {
        let waiting = match migrations::pending(&url, tls.clone()).await {
            Ok(0) => {
                tracing::info!("schema current; joining the election");
                schema_current.send_replace(true);
                return;
            }
            Ok(count) => format!("{count} migrations pending"),
            Err(error) => error.to_string(),
        };
        tracing::warn!(
            reason = %waiting,
            "schema not current; serving status but not joining the election until `understudy migrate up` has run"
        );
        // The backoff never runs out (`without_max_times`).
        tokio::time::sleep(delays.next().unwrap_or(Duration::from_secs(1))).await;
    }
}

/// The URL other processes use to reach this node.
fn advertised_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

async fn wait_for_termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl+C stops the node");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
