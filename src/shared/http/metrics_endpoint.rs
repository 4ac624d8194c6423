//! Owns `GET /metrics` (the Prometheus text format) and, when `metrics_bind`
//! is set, a listener of its own that serves only it — so the scrape port can
//! stay on an internal network while the API is exposed.

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};

use crate::shared::http::api_error::ApiError;
use crate::shared::telemetry::registry::MetricsRegistry;

/// `GET /metrics`: every instrument of this process.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "Prometheus text format (on `metrics_bind` instead, when set)", content_type = "text/plain", body = String))
)]
pub async fn metrics(registry: web::Data<MetricsRegistry>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(registry.encode())
}

/// Starts a server on `bind` that answers `/metrics` and nothing else.
pub fn serve_alone(bind: &str, registry: MetricsRegistry) -> std::io::Result<Server> {
    let registry = web::Data::new(registry);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(registry.clone())
            .route("/metrics", web::get().to(metrics))
            .default_service(web::to(|| async { Err::<String, _>(ApiError::NotFound) }))
    })
    .disable_signals()
    .workers(1)
    .bind(bind)?;
    tracing::info!(bind, "metrics served on their own listener");
    Ok(server.run())
}
