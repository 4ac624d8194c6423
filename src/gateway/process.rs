//! Owns the gateway process: its shared state, its routes and its server.
//!
//! The gateway is stateless apart from the producer: it validates, publishes and
//! answers. On SIGTERM or Ctrl+C it stops accepting connections, lets in-flight
//! requests finish (each bounded by `kafka.message_timeout_ms`) and flushes the
//! producer before exiting.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix_web::dev::Service;
use futures::FutureExt;

use actix_web::{web, App, HttpServer};

use crate::config::{Config, KafkaConfig};
use crate::gateway::metrics::GatewayMetrics;
use crate::gateway::node_directory::NodeDirectory;
use crate::gateway::rate_limit::ClientRateLimiter;
use crate::gateway::request_body::BodyBudget;
use crate::gateway::{health, log_ingest, system_status};
use crate::log_event::{EventLimits, LogEvent};
use crate::shared::circuit_breaker::DependencyBreaker;
use crate::shared::http::api_error::ApiError;
use crate::shared::http::{metrics_endpoint, openapi};
use crate::shared::kafka::broker_probe::BrokerProbe;
use crate::shared::kafka::producer::{EventProducer, PublishError, RecordPosition};
use crate::shared::telemetry::breaker_metrics;
use crate::shared::telemetry::registry::{MetricsError, MetricsRegistry};

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The Kafka producer could not be created (bad settings).
    #[error("could not create the kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
    /// The HTTP client for node status could not be built.
    #[error("could not create the http client: {0}")]
    HttpClient(#[from] reqwest::Error),
    /// The metrics pipeline could not be built.
    #[error("{0}")]
    Metrics(#[from] MetricsError),
    /// The port could not be bound or the server failed.
    #[error("http server error: {0}")]
    Server(#[from] std::io::Error),
}

/// What every gateway handler shares.
pub struct GatewayState {
    /// The publisher of events.
    pub producer: EventProducer,
    /// Limits each event must fit.
    pub limits: EventLimits,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Most events in one batch.
    pub max_batch_events: usize,
    /// The latest broker health.
    pub broker: BrokerProbe,
    /// Kafka settings, for reporting.
    pub kafka: KafkaConfig,
    /// Nodes aggregated by the status endpoint.
    pub nodes: NodeDirectory,
    /// Time allowed for each node's status.
    pub node_status_timeout: Duration,
    /// Client for node status calls.
    pub http: reqwest::Client,
    /// When the gateway started.
    pub started_at: Instant,
    /// Instruments.
    pub metrics: GatewayMetrics,
    /// Per-client limit on publishing requests (none when disabled).
    pub rate_limiter: Option<ClientRateLimiter>,
    /// Longest a client may take to send a request body.
    pub client_request_timeout: Duration,
    /// The bytes of request bodies held at once.
    pub body_budget: BodyBudget,
}

impl GatewayState {
    /// Takes one request from the caller's bucket (429 when empty).
    pub fn admit(&self, request: &actix_web::HttpRequest) -> Result<(), ApiError> {
        match (&self.rate_limiter, request.peer_addr()) {
            (Some(limiter), Some(peer)) => limiter.check(peer.ip()),
            _ => Ok(()),
        }
    }

    /// Publishes one event, timing the broker's acknowledgement.
    pub async fn publish(&self, event: &LogEvent) -> Result<RecordPosition, PublishError> {
        let started = Instant::now();
        let result = self.producer.publish(event).await;
        self.metrics.produced(started.elapsed(), result.is_ok());
        result
    }
}

/// Mounts the gateway's routes; shared by the server and in-process tests.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/logs", web::post().to(log_ingest::publish_one))
        .route("/api/logs/batch", web::post().to(log_ingest::publish_batch))
        .route(
            "/api/system/status",
            web::get().to(system_status::system_status),
        )
        .route("/api/openapi.json", web::get().to(openapi::gateway_openapi))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .default_service(web::to(|| async { Err::<String, _>(ApiError::NotFound) }));
}

/// Runs the gateway until SIGTERM or Ctrl+C.
pub async fn run(config: Config) -> Result<(), GatewayError> {
    let registry = MetricsRegistry::new()?;
    let metrics = GatewayMetrics::new(&registry);
    let kafka_breaker = DependencyBreaker::new("kafka", &config.circuit_breaker);
    breaker_metrics::register(&registry, std::slice::from_ref(&kafka_breaker));
    let producer = EventProducer::new(&config.kafka, kafka_breaker)?;
    let broker = BrokerProbe::spawn(
        config.kafka.clone(),
        Duration::from_millis(config.gateway.broker_probe_interval_ms),
        metrics.clone(),
    );
    let state = web::Data::new(GatewayState {
        producer: producer.clone(),
        limits: EventLimits::from(&config.gateway),
        max_body_bytes: config.gateway.max_body_bytes,
        max_batch_events: config.gateway.max_batch_events,
        broker,
        kafka: config.kafka.clone(),
        nodes: NodeDirectory::from_config(&config),
        node_status_timeout: Duration::from_millis(config.gateway.node_status_timeout_ms),
        // Node status calls follow no redirect: a node answers at its own
        // address or not at all.
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        started_at: Instant::now(),
        metrics: metrics.clone(),
        rate_limiter: ClientRateLimiter::new(
            config.gateway.rate_limit_per_second,
            config.gateway.rate_limit_burst,
        ),
        client_request_timeout: Duration::from_millis(config.gateway.client_request_timeout_ms),
        body_budget: BodyBudget::new(config.gateway.max_inflight_body_bytes),
    });
    let forgetful = state.clone();
    actix_web::rt::spawn(async move {
        let mut every_minute = actix_web::rt::time::interval(Duration::from_secs(60));
        loop {
            every_minute.tick().await;
            if let Some(limiter) = &forgetful.rate_limiter {
                limiter.forget_idle_clients();
            }
        }
    });
    let metrics_on_main = config.gateway.metrics_bind.is_empty();
    let metrics_server = if metrics_on_main {
        None
    } else {
        Some(metrics_endpoint::serve_alone(
            &config.gateway.metrics_bind,
            registry.clone(),
        )?)
    };
    if let Some(metrics_server) = metrics_server {
        // Ends with the process: the main server's exit returns from here.
        actix_web::rt::spawn(metrics_server);
    }
    let registry = web::Data::new(registry);
    let drain = Duration::from_millis(config.kafka.message_timeout_ms) + Duration::from_secs(1);
    let server = HttpServer::new(move || {
        let metrics = metrics.clone();
        let app = App::new()
            .app_data(state.clone())
            .app_data(registry.clone())
            .wrap_fn(move |request, service| {
                let metrics = metrics.clone();
                service.call(request).map(move |response| {
                    if let Ok(response) = &response {
                        // The matched pattern, never the raw path: bounded label values.
                        let route = response.request().match_pattern();
                        metrics.request(
                            route.as_deref().unwrap_or("unmatched"),
                            response.status().as_u16(),
                        );
                    }
                    response
                })
            })
            .configure(routes);
        if metrics_on_main {
            app.route("/metrics", web::get().to(metrics_endpoint::metrics))
        } else {
            app
        }
    })
    .client_request_timeout(Duration::from_millis(
        config.gateway.client_request_timeout_ms,
    ))
    .shutdown_timeout(drain.as_secs())
    .bind((config.gateway.bind_host.as_str(), config.gateway.http_port))?;
    for addr in server.addrs() {
        announce(addr);
    }
    server.run().await?;
    if let Err(error) = producer.flush(drain) {
        tracing::warn!(%error, "producer flush at shutdown did not complete");
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// Prints the bound address on stdout: scripts and tests read it to find the port.
fn announce(addr: SocketAddr) {
    tracing::info!(%addr, "gateway listening");
    println!("understudy gateway listening on http://{addr}");
}
