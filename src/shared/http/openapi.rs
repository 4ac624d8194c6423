//! Owns the OpenAPI 3 descriptions of the gateway's and the node's HTTP APIs,
//! generated from the handlers' annotations (utoipa) and served by each
//! process at `GET /api/openapi.json`.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::gateway::log_ingest::{Accepted, BatchItemResult, BatchResponse};
use crate::gateway::{health, log_ingest, system_status};
use crate::log_event::LogEventRequest;
use crate::node::api as node_api;
use crate::node::presence_stream;
use crate::node::status::NodeStatus;
use crate::shared::http::api_error::ErrorBody;
use crate::shared::http::metrics_endpoint;

/// The gateway's API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Understudy gateway",
        description = "Publishes log events to Kafka; 2xx only once the broker acknowledged them."
    ),
    paths(
        log_ingest::publish_one,
        log_ingest::publish_batch,
        system_status::system_status,
        health::healthz,
        health::readyz,
        metrics_endpoint::metrics,
        gateway_openapi,
    ),
    components(schemas(LogEventRequest, Accepted, BatchItemResult, BatchResponse, ErrorBody))
)]
pub struct GatewayApi;

/// A node's API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Understudy node", description = "Failover status, history and hand-over of one consumer node."),
    paths(
        node_api::status,
        node_api::history,
        node_api::step_down,
        node_api::healthz,
        node_api::readyz,
        presence_stream::presence,
        metrics_endpoint::metrics,
        node_openapi,
    ),
    components(schemas(ErrorBody, NodeStatus)),
    modifiers(&AdminToken)
)]
pub struct NodeApi;

/// Declares the bearer token that admin endpoints require.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "admin_token",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

/// `GET /api/openapi.json` of the gateway.
#[utoipa::path(get, path = "/api/openapi.json", tag = "probes", responses((status = 200, description = "This document", body = Object)))]
pub async fn gateway_openapi() -> HttpResponse {
    HttpResponse::Ok().json(GatewayApi::openapi())
}

/// `GET /api/openapi.json` of a node.
#[utoipa::path(get, path = "/api/openapi.json", tag = "probes", responses((status = 200, description = "This document", body = Object)))]
pub async fn node_openapi() -> HttpResponse {
    HttpResponse::Ok().json(NodeApi::openapi())
}
