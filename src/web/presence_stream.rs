//! Owns `GET /api/failover/presence`: a response that never ends while this
//! node's process lives. It opens with the node's instance id, then sends a
//! newline every second. Standbys hold it open to the leader: when the
//! leader's process dies, its kernel closes the connection at once, and a
//! reconnection is refused, which tells a standby the process is gone
//! (`crate::leader_presence`). It ends when the node stops gracefully, after
//! its hand-over, so a stopping node never holds its HTTP server open.

use std::convert::Infallible;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures::stream::{self, StreamExt};
use tokio::sync::watch;

use crate::web::api_error::ApiError;

/// How often the stream proves itself alive: it also lets the server notice
/// a standby that went away and free its connection.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// What the presence endpoint needs.
pub struct Presence {
    /// This node's instance id, the stream's first line.
    pub instance_id: String,
    /// Becomes true when the node has handed over and is about to stop.
    pub stopping: watch::Receiver<bool>,
}

/// `GET /api/failover/presence`.
#[utoipa::path(
    get,
    path = "/api/failover/presence",
    tag = "node",
    responses(
        (status = 200, description = "text/plain, never ending while the node runs: its instance id, then a newline every second", body = String),
        (status = 503, description = "The node is stopping", body = crate::web::api_error::ErrorBody),
    )
)]
pub async fn presence(presence: web::Data<Presence>) -> Result<HttpResponse, ApiError> {
    if *presence.stopping.borrow() {
        return Err(ApiError::DependencyUnavailable(
            "the node is stopping".to_owned(),
        ));
    }
    let first = Bytes::from(format!("{}\n", presence.instance_id));
    let mut ticks = tokio::time::interval(KEEPALIVE);
    ticks.reset();
    let keepalives = stream::unfold(
        (ticks, presence.stopping.clone()),
        |(mut ticks, mut stopping)| async move {
            let stopped = tokio::select! {
                _ = ticks.tick() => false,
                _ = stopping.wait_for(|stopping| *stopping) => true,
            };
            (!stopped).then(|| (Bytes::from_static(b"\n"), (ticks, stopping)))
        },
    );
    let body = stream::once(async move { first })
        .chain(keepalives)
        .map(Ok::<_, Infallible>);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .streaming(body))
}
