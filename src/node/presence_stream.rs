//! Owns `GET /api/failover/presence`: a response that never ends while this
//! node's process lives. It opens with the node's instance id, then sends a
//! newline every second. Standbys hold it open to the leader: when the
//! leader's process dies, its kernel closes the connection at once, and a
//! reconnection is refused, which tells a standby the process is gone
//! (`crate::node::election::presence`). It ends when the node stops gracefully, after
//! its hand-over, with a last `stopping` line, so a stopping node never holds
//! its HTTP server open and its standby knows the end is a hand-over. At most
//! [`MAX_HELD`] answers are held at once; more get 503 `overloaded`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use futures::stream::{self, StreamExt};
use tokio::sync::{watch, Semaphore};

use crate::shared::http::api_error::ApiError;

/// How often the stream proves itself alive: it also lets the server notice
/// a standby that went away and free its connection.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// The last line of a stopping node's answer: its end is a hand-over, not a
/// death, and the standby must not probe it.
pub const STOPPING_LINE: &[u8] = b"stopping\n";

/// Most answers held at once: one per standby is the need; every answer holds
/// a connection, so a stranger opening thousands must not exhaust the
/// node's file descriptors.
pub const MAX_HELD: usize = 16;

/// What the presence endpoint needs.
pub struct Presence {
    /// This node's instance id, the stream's first line.
    pub instance_id: String,
    /// Becomes true when the node has handed over and is about to stop.
    pub stopping: watch::Receiver<bool>,
    /// Answers that may be held at once ([`MAX_HELD`]).
    pub held: Arc<Semaphore>,
}

/// `GET /api/failover/presence`.
#[utoipa::path(
    get,
    path = "/api/failover/presence",
    tag = "node",
    responses(
        (status = 200, description = "text/plain, never ending while the node runs: its instance id, then a newline every second", body = String),
        (status = 503, description = "The node is stopping, or holds as many presence answers as it may (`overloaded`)", body = crate::shared::http::api_error::ErrorBody),
    )
)]
pub async fn presence(presence: web::Data<Presence>) -> Result<HttpResponse, ApiError> {
    if *presence.stopping.borrow() {
        return Err(ApiError::DependencyUnavailable(
            "the node is stopping".to_owned(),
        ));
    }
    let Ok(permit) = Arc::clone(&presence.held).try_acquire_owned() else {
        return Err(ApiError::Overloaded);
    };
    let first = Bytes::from(format!("{}\n", presence.instance_id));
    let mut ticks = tokio::time::interval(KEEPALIVE);
    ticks.reset();
    // The permit travels with the stream: released when the answer ends.
    let keepalives = stream::unfold(
        (ticks, presence.stopping.clone(), Some(permit)),
        |(mut ticks, mut stopping, permit)| async move {
            permit.as_ref()?;
            let stopped = tokio::select! {
                _ = ticks.tick() => false,
                _ = stopping.wait_for(|stopping| *stopping) => true,
            };
            if stopped {
                Some((Bytes::from_static(STOPPING_LINE), (ticks, stopping, None)))
            } else {
                Some((Bytes::from_static(b"\n"), (ticks, stopping, permit)))
            }
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
