//! Owns a node's HTTP API: `GET /api/failover/status` (the seed's `isLeader` and
//! more), `GET /api/failover/history`, `POST /api/failover/stepdown`, `/healthz`
//! and `/readyz`.

use actix::Addr;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::actors::node_coordinator::{GetFailoverStatus, NodeCoordinator, StepDown};
use crate::circuit_breaker::DependencyBreaker;
use crate::postgres::sink_store::SinkStore;
use crate::telemetry::registry::MetricsRegistry;
use crate::web::api_error::ApiError;

/// What every node handler shares.
pub struct NodeState {
    /// The node's coordinator.
    pub coordinator: Addr<NodeCoordinator>,
    /// Reader of the failover history (and its PostgreSQL breaker).
    pub store: SinkStore,
    /// The breaker in front of Redis.
    pub redis_breaker: DependencyBreaker,
    /// What `/metrics` serves.
    pub metrics: MetricsRegistry,
}

/// Mounts the node's routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/failover/status", web::get().to(status))
        .route("/api/failover/history", web::get().to(history))
        .route("/api/failover/stepdown", web::post().to(step_down))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .default_service(web::to(|| async { Err::<String, _>(ApiError::NotFound) }));
}

async fn status(state: web::Data<NodeState>) -> Result<HttpResponse, ApiError> {
    let status = state
        .coordinator
        .send(GetFailoverStatus)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let dependencies = json!({
        "zookeeper": {"connected": status.zookeeper_connected},
        "postgres": breaker_view(state.store.breaker()),
        "redis": breaker_view(&state.redis_breaker),
    });
    let mut body =
        serde_json::to_value(&status).map_err(|error| ApiError::Internal(error.to_string()))?;
    body["dependencies"] = dependencies;
    Ok(HttpResponse::Ok().json(body))
}

/// A breaker as the status answers show it.
pub fn breaker_view(breaker: &DependencyBreaker) -> serde_json::Value {
    json!({"circuit": breaker.state(), "rejectedCalls": breaker.rejected()})
}

/// Query of `GET /api/failover/history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Most records returned (1..=1000, default 50).
    pub limit: Option<i64>,
}

async fn history(
    state: web::Data<NodeState>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::InvalidParameter(
            "limit must be between 1 and 1000".to_owned(),
        ));
    }
    let records = state
        .store
        .failover_history(limit)
        .await
        .map_err(|error| ApiError::DependencyUnavailable(error.to_string()))?;
    Ok(HttpResponse::Ok().json(records))
}

async fn step_down(state: web::Data<NodeState>) -> Result<HttpResponse, ApiError> {
    let epoch = state
        .coordinator
        .send(StepDown)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .map_err(|_| ApiError::NotLeader)?;
    Ok(HttpResponse::Ok().json(json!({ "steppedDown": true, "epoch": epoch })))
}

async fn metrics(state: web::Data<NodeState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.encode())
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "UP" }))
}

async fn readyz(state: web::Data<NodeState>) -> Result<HttpResponse, ApiError> {
    let status = state
        .coordinator
        .send(GetFailoverStatus)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let body = json!({ "status": if status.zookeeper_connected { "UP" } else { "DOWN" }, "role": status.role });
    Ok(if status.zookeeper_connected {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}
