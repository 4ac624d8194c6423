//! Owns reading a request body safely: the media type is checked first, the
//! declared length is checked before a byte is read, and the stream is cut off
//! at the limit, so an oversized body costs at most `limit` bytes of memory.

use std::time::Duration;

use actix_web::http::header;
use actix_web::web::{BytesMut, Payload};
use actix_web::HttpRequest;
use futures::StreamExt;

use crate::web::api_error::ApiError;

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

/// Collects the body, refusing anything over `limit` bytes.
pub async fn read_limited(
    request: &HttpRequest,
    mut payload: Payload,
    limit: usize,
    deadline: Duration,
) -> Result<BytesMut, ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
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
    Ok(body)
}
