//! Owns the gateway's probes and scrape endpoint: `/healthz` (the process serves
//! HTTP), `/readyz` (it can accept events: the broker answered and the topic
//! exists) and `/metrics`.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::web::gateway::GatewayState;

/// `GET /healthz`: liveness; answers as long as the process serves requests.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "UP" }))
}

/// `GET /metrics`: every instrument in the Prometheus text format.
pub async fn metrics(state: web::Data<GatewayState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.registry.encode())
}

/// `GET /readyz`: 200 when events can be accepted, 503 with the reason otherwise.
pub async fn readyz(state: web::Data<GatewayState>) -> HttpResponse {
    let broker = state.broker.latest();
    if broker.ready {
        HttpResponse::Ok().json(json!({ "status": "UP", "broker": broker }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "DOWN", "broker": broker }))
    }
}
