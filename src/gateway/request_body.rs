//! Owns reading a request body safely: the media type is checked first, the
//! declared length is checked before a byte is read, and the stream is cut off
//! at the limit, so an oversized body costs at most `limit` bytes of memory.
//! Every body also takes its share of one budget for the whole gateway
//! ([`BodyBudget`]) before it is read and keeps it until the request is
//! answered: sixteen 4 MiB batches at once cost the budget, not 16 × 4 MiB
//! plus their parsing.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{BytesMut, Payload};
use actix_web::HttpRequest;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::shared::http::api_error::ApiError;

/// The media types the ingest endpoints read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`.
    Json,
    /// `application/x-ndjson` (one JSON document per line).
    Ndjson,
}

/// Reads the `Content-Type` and returns the format, if it is one of `accepted`.
pub fn body_format(
    request: &HttpRequest,
    accepted: &[BodyFormat],
    expected: &'static str,
) -> Result<BodyFormat, ApiError> {
    let essence = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    let format = match essence.as_deref() {
        Some("application/json") => Some(BodyFormat::Json),
        Some("application/x-ndjson" | "application/ndjson") => Some(BodyFormat::Ndjson),
        _ => None,
    };
    format
        .filter(|format| accepted.contains(format))
        .ok_or(ApiError::UnsupportedMediaType { expected })
}

/// The bytes of request bodies the gateway holds at once, in KiB permits.
#[derive(Clone)]
pub struct BodyBudget(Arc<Semaphore>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(Semaphore::new(bytes.div_ceil(1024))))
    }
}

/// A request body and its share of the [`BodyBudget`], returned when dropped.
pub struct LimitedBody {
    /// The body.
    pub bytes: BytesMut,
    _share: OwnedSemaphorePermit,
}

impl std::ops::Deref for LimitedBody {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Collects the body, refusing anything over `limit` bytes, if its share of
/// `budget` is free now (503 `overloaded` otherwise).
pub async fn read_limited(
    request: &HttpRequest,
    mut payload: Payload,
    limit: usize,
    deadline: Duration,
    budget: &BodyBudget,
) -> Result<LimitedBody, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    // No waiting for budget: a queue would put every small request behind a
    // large one, and let a few slow uploads stall all ingest for a client
    // timeout; a 503 with Retry-After is the honest back-pressure.
    let share = u32::try_from(declared.unwrap_or(limit).div_ceil(1024)).unwrap_or(u32::MAX);
    let share = Arc::clone(&budget.0)
        .try_acquire_many_owned(share)
        .map_err(|_| ApiError::Overloaded)?;
    let mut body = BytesMut::with_capacity(declared.unwrap_or(0));
    let reading = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| ApiError::BodyRead(error.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(())
    };
    // A client that trickles its body (slowloris) holds a connection and a
    // buffer; it gets a 408 instead of holding them for ever.
    tokio::time::timeout(deadline, reading)
        .await
        .map_err(|_| ApiError::RequestTimeout(deadline))??;
    Ok(LimitedBody {
        bytes: body,
        _share: share,
    })
}
