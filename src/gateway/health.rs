//! Owns the gateway's probes: `/healthz` (the process serves HTTP) and
//! `/readyz` (it can accept events: the broker answered and the topic exists).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::gateway::process::GatewayState;

/// `GET /healthz`: liveness; answers as long as the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, description = "The process serves HTTP", body = Object)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "UP" }))
}

/// `GET /readyz`: 200 when events can be accepted, 503 with the reason otherwise.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "probes",
    responses(
        (status = 200, description = "The broker answers and the topic exists", body = Object),
        (status = 503, description = "Events cannot be accepted; the broker's state says why", body = Object),
    )
)]
pub async fn readyz(state: web::Data<GatewayState>) -> HttpResponse {
    let broker = state.broker.latest();
    if broker.ready {
        HttpResponse::Ok().json(json!({ "status": "UP", "broker": broker }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "DOWN", "broker": broker }))
    }
}
