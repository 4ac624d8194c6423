//! Owns a node's HTTP API: `GET /api/failover/status` (the seed's `isLeader` and
//! more), `GET /api/failover/history`, `POST /api/failover/stepdown`,
//! `GET /api/failover/presence` ([`presence_stream`]), `/healthz` and `/readyz`.

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::node::coordinator::NodeCoordinator;
use crate::node::messages::{GetFailoverStatus, StepDown};
use crate::node::presence_stream;
use crate::node::sink::store::SinkStore;
use crate::node::status::{BreakerView, NodeDependencies, NodeStatus, SessionView};
use crate::shared::circuit_breaker::DependencyBreaker;
use crate::shared::http::api_error::{ApiError, ErrorBody};
use crate::shared::http::openapi;

/// What every node handler shares.
pub struct NodeState {
    /// The node's coordinator.
    pub coordinator: Addr<NodeCoordinator>,
    /// The breaker in front of the sink's PostgreSQL connections.
    pub sink_breaker: DependencyBreaker,
    /// Reader of the failover history, on a pool and breaker of its own.
    pub history: SinkStore,
    /// The breaker in front of Redis.
    pub redis_breaker: DependencyBreaker,
    /// What admin endpoints require as a bearer token (empty: disabled).
    pub admin_token: String,
}

/// Mounts the node's routes.
pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/failover/status", web::get().to(status))
        .route("/api/failover/history", web::get().to(history))
        .route("/api/failover/stepdown", web::post().to(step_down))
        .route(
            "/api/failover/presence",
            web::get().to(presence_stream::presence),
        )
        .route("/api/openapi.json", web::get().to(openapi::node_openapi))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .default_service(web::to(|| async { Err::<String, _>(ApiError::NotFound) }));
}

/// `GET /api/failover/status`.
#[utoipa::path(
    get,
    path = "/api/failover/status",
    tag = "node",
    responses((status = 200, description = "The seed's isLeader, role, epoch, leader, heartbeat age, consumption state, last failover, and each dependency (ZooKeeper session; circuit breakers of the sink's PostgreSQL pool, of the history reads' own pool, and of Redis)", body = NodeStatus))
)]
pub async fn status(state: web::Data<NodeState>) -> Result<HttpResponse, ApiError> {
    let failover = state
        .coordinator
        .send(GetFailoverStatus)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?;
    let dependencies = NodeDependencies {
        zookeeper: SessionView {
            connected: failover.zookeeper_connected,
        },
        postgres: breaker_view(&state.sink_breaker),
        postgres_history: breaker_view(state.history.breaker()),
        redis: breaker_view(&state.redis_breaker),
    };
    Ok(HttpResponse::Ok().json(NodeStatus {
        failover,
        dependencies,
    }))
}

/// A breaker as the status answer shows it.
fn breaker_view(breaker: &DependencyBreaker) -> BreakerView {
    BreakerView {
        circuit: breaker.state(),
        rejected_calls: breaker.rejected(),
    }
}

/// Query of `GET /api/failover/history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Most records returned (1..=1000, default 50).
    pub limit: Option<i64>,
}

/// `GET /api/failover/history`.
#[utoipa::path(
    get,
    path = "/api/failover/history",
    tag = "node",
    params(("limit" = Option<i64>, Query, description = "Most records, 1..=1000 (default 50)")),
    responses(
        (status = 200, description = "Leadership changes, newest first", body = Object),
        (status = 400, description = "limit out of range", body = ErrorBody),
        (status = 503, description = "PostgreSQL unavailable", body = ErrorBody),
    )
)]
pub async fn history(
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
        .history
        .failover_history(limit)
        .await
        .map_err(|error| {
            // PostgreSQL's own words stay in the log: they name tables,
            // roles and hosts that a client has no business seeing.
            tracing::warn!(%error, "could not read the failover history");
            ApiError::DependencyUnavailable("the failover history cannot be read now".to_owned())
        })?;
    Ok(HttpResponse::Ok().json(records))
}

/// `POST /api/failover/stepdown`: an admin endpoint.
#[utoipa::path(
    post,
    path = "/api/failover/stepdown",
    tag = "node",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "This leader resigned; a standby takes over", body = Object),
        (status = 401, description = "No or wrong bearer token", body = ErrorBody),
        (status = 403, description = "No admin token is configured (`node.admin_token`)", body = ErrorBody),
        (status = 409, description = "This node is not the leader", body = ErrorBody),
    )
)]
pub async fn step_down(
    state: web::Data<NodeState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    authorize_admin(&state.admin_token, &request)?;
    let epoch = state
        .coordinator
        .send(StepDown)
        .await
        .map_err(|error| ApiError::Internal(error.to_string()))?
        .map_err(|_| ApiError::NotLeader)?;
    Ok(HttpResponse::Ok().json(json!({ "steppedDown": true, "epoch": epoch })))
}

/// Admits a request that carries `Authorization: Bearer <token>` with the
/// configured token, compared in constant time.
fn authorize_admin(token: &str, request: &HttpRequest) -> Result<(), ApiError> {
    if token.is_empty() {
        return Err(ApiError::AdminDisabled);
    }
    let presented = request
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// `GET /healthz` of a node.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, description = "The process serves HTTP", body = Object)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "UP" }))
}

/// `GET /readyz` of a node: ready while its ZooKeeper session is up.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "Connected to ZooKeeper (leader or standby)", body = Object),
        (status = 503, description = "No ZooKeeper session", body = Object),
    )
)]
pub async fn readyz(state: web::Data<NodeState>) -> Result<HttpResponse, ApiError> {
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
