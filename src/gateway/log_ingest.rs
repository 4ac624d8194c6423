//! Owns the gateway's ingest endpoints: `POST /api/logs` (one event) and
//! `POST /api/logs/batch` (a JSON array or NDJSON).
//!
//! An event is answered 202 only after the broker acknowledged its record; a
//! batch reports each item on its own, so one bad line never costs the others.
//! A batch is split lazily and counting stops past `gateway.max_batch_events`:
//! items are borrowed slices of the body, never a tree of values, so a 4 MiB
//! array of two million tiny items costs what its first thousand cost.
//! A 503 that may have stored the event carries its `messageId`, and an
//! `Idempotency-Key` header gives a retry the same id ([`IdempotencyKey`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use futures::future::join_all;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::gateway::idempotency::IdempotencyKey;
use crate::gateway::process::GatewayState;
use crate::gateway::request_body::{body_format, read_limited, BodyFormat};
use crate::log_event::{LogEvent, LogEventRequest};
use crate::shared::http::api_error::{ApiError, ErrorBody};

/// The answer to an accepted event: where its record landed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// The event's id (the client's, or the one the gateway assigned).
    pub message_id: Uuid,
    /// The same id under its snake_case key, for clients written before the
    /// answers became camelCase: a client that keeps ids to retry with must
    /// not lose them to a renamed key. Deprecated; removed in a later release.
    #[serde(rename = "message_id")]
    #[schema(deprecated)]
    pub legacy_message_id: Uuid,
    /// Kafka partition.
    pub partition: i32,
    /// Kafka offset.
    pub offset: i64,
}

/// One item's outcome in a batch answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItemResult {
    /// Position of the item in the request, from 0.
    pub index: usize,
    /// HTTP-style status of the item: 202, 400, 422 or 503.
    pub status: u16,
    /// Where it landed, when accepted.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<Accepted>,
    /// Why not, when refused.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The answer to a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// Items the broker acknowledged.
    pub accepted: usize,
    /// Items refused.
    pub rejected: usize,
    /// Every item, in request order.
    pub results: Vec<BatchItemResult>,
}

/// `POST /api/logs`: validates one event, publishes it, answers 202 with its position.
#[utoipa::path(
    post,
    path = "/api/logs",
    tag = "gateway",
    request_body(content = LogEventRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "In Kafka (acknowledged by the broker)", body = Accepted),
        (status = 400, description = "Malformed JSON or body", body = ErrorBody),
        (status = 408, description = "Body not received in time", body = ErrorBody),
        (status = 413, description = "Body over `gateway.max_body_bytes`", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 422, description = "Not a valid event", body = ErrorBody),
        (status = 429, description = "Rate limit exceeded (see Retry-After)", body = ErrorBody),
        (status = 503, description = "Broker unavailable or circuit open (see Retry-After)", body = ErrorBody),
    )
)]
#[tracing::instrument(name = "gateway.publish", skip_all)]
pub async fn publish_one(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.admit(&request)?;
    body_format(&request, &[BodyFormat::Json], "application/json")?;
    let body = read_limited(
        &request,
        payload,
        state.max_body_bytes,
        state.client_request_timeout,
        &state.body_budget,
    )
    .await?;
    let key = IdempotencyKey::of(&request)?;
    let mut event_request: LogEventRequest =
        serde_json::from_slice(&body).map_err(|error| ApiError::from_json(&error))?;
    if let Some(key) = &key {
        key.assign_ids(&state.kafka.topic, [&mut event_request]);
    }
    let event = event_request.validate(&state.limits, Utc::now())?;
    Ok(HttpResponse::Accepted().json(publish(&state, &event).await?))
}

/// Publishes `event`; a failure says whether a retry must reuse its id.
async fn publish(state: &GatewayState, event: &LogEvent) -> Result<Accepted, ApiError> {
    let position = state
        .publish(event)
        .await
        .map_err(|error| ApiError::publish_failed(&error, event.message_id))?;
    Ok(Accepted {
        message_id: event.message_id,
        legacy_message_id: event.message_id,
        partition: position.partition,
        offset: position.offset,
    })
}

/// `POST /api/logs/batch`: every item validated and published on its own.
///
/// Answers 202 when all were accepted, 207 when some were, and otherwise the
/// status shared by the failures (503 if any failed at the broker).
#[utoipa::path(
    post,
    path = "/api/logs/batch",
    tag = "gateway",
    request_body(
        content = Vec<LogEventRequest>,
        description = "A JSON array, or one event per line as application/x-ndjson",
        content_type = "application/json"
    ),
    responses(
        (status = 202, description = "Every item accepted", body = BatchResponse),
        (status = 207, description = "Some items accepted; each item has its own status", body = BatchResponse),
        (status = 400, description = "Malformed body or empty batch", body = ErrorBody),
        (status = 413, description = "Body or item count over the limit", body = ErrorBody),
        (status = 422, description = "No item was a valid event", body = BatchResponse),
        (status = 429, description = "Rate limit exceeded (see Retry-After)", body = ErrorBody),
        (status = 503, description = "Broker unavailable for every item", body = BatchResponse),
    )
)]
#[tracing::instrument(name = "gateway.publish_batch", skip_all)]
pub async fn publish_batch(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    state.admit(&request)?;
    let format = body_format(
        &request,
        &[BodyFormat::Json, BodyFormat::Ndjson],
        "application/json (an array) or application/x-ndjson",
    )?;
    let body = read_limited(
        &request,
        payload,
        state.max_body_bytes,
        state.client_request_timeout,
        &state.body_budget,
    )
    .await?;
    let key = IdempotencyKey::of(&request)?;
    let mut items = split_batch(&body, format, state.max_batch_events)?;
    if items.is_empty() {
        return Err(ApiError::EmptyBatch);
    }
    if let Some(key) = &key {
        key.assign_ids(&state.kafka.topic, items.iter_mut().flatten());
    }
    let received_at = Utc::now();
    let outcomes = join_all(items.into_iter().map(|item| {
        let state = state.clone();
        async move {
            let event = item?.validate(&state.limits, received_at)?;
            publish(&state, &event).await
        }
    }))
    .await;

    let mut response = BatchResponse {
        accepted: 0,
        rejected: 0,
        results: Vec::with_capacity(outcomes.len()),
    };
    let mut broker_failed = false;
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let result = match outcome {
            Ok(accepted) => {
                response.accepted += 1;
                BatchItemResult {
                    index,
                    status: StatusCode::ACCEPTED.as_u16(),
                    accepted: Some(accepted),
                    error: None,
                }
            }
            Err(error) => {
                response.rejected += 1;
                broker_failed |= matches!(error, ApiError::BrokerUnavailable { .. });
                BatchItemResult {
                    index,
                    status: actix_web::ResponseError::status_code(&error).as_u16(),
                    accepted: None,
                    error: Some(ErrorBody::from(&error)),
                }
            }
        };
        response.results.push(result);
    }
    let status = if response.rejected == 0 {
        StatusCode::ACCEPTED
    } else if response.accepted > 0 {
        StatusCode::MULTI_STATUS
    } else if broker_failed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok(HttpResponse::build(status).json(response))
}

/// Splits a batch body into per-item parse results, at most `max_items` of
/// them; only a body that is not a batch at all (not an array, not UTF-8
/// lines) or holds more items fails as a whole.
fn split_batch(
    body: &[u8],
    format: BodyFormat,
    max_items: usize,
) -> Result<Vec<Result<LogEventRequest, ApiError>>, ApiError> {
    let too_large = ApiError::BatchTooLarge { limit: max_items };
    match format {
        BodyFormat::Json => {
            let overflowed = std::cell::Cell::new(false);
            let mut deserializer = serde_json::Deserializer::from_slice(body);
            let items = BoundedItems {
                max_items,
                overflowed: &overflowed,
            }
            .deserialize(&mut deserializer)
            .and_then(|items| deserializer.end().map(|()| items));
            let items = match items {
                Ok(items) => items,
                Err(_) if overflowed.get() => return Err(too_large),
                Err(error) => {
                    return Err(match error.classify() {
                        serde_json::error::Category::Data => ApiError::MalformedJson(format!(
                            "a batch must be a JSON array of events: {error}"
                        )),
                        _ => ApiError::from_json(&error),
                    })
                }
            };
            Ok(items
                .into_iter()
                .map(|item| {
                    serde_json::from_str(item.get()).map_err(|error| ApiError::from_json(&error))
                })
                .collect())
        }
        BodyFormat::Ndjson => {
            let mut items = Vec::new();
            for line in body
                .split(|byte| *byte == b'\n')
                .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            {
                if items.len() == max_items {
                    return Err(too_large);
                }
                items.push(
                    serde_json::from_slice(line).map_err(|error| ApiError::from_json(&error)),
                );
            }
            Ok(items)
        }
    }
}

/// Reads a JSON array as borrowed raw items, refusing (and flagging) the
/// `max_items + 1`-th before it is parsed.
struct BoundedItems<'flag> {
    max_items: usize,
    overflowed: &'flag std::cell::Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BoundedItems<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedItems<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(self.max_items.min(64));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            if items.len() == self.max_items {
                self.overflowed.set(true);
                return Err(serde::de::Error::custom("too many items"));
            }
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_fail_one_by_one_and_blank_lines_are_skipped() {
        let body = b"{\"level\":\"INFO\",\"message\":\"a\",\"source\":\"s\"}\n\n{oops\n";
        let items = split_batch(body, BodyFormat::Ndjson, 10).expect("a batch");
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(matches!(items[1], Err(ApiError::MalformedJson(_))));
    }

    #[test]
    fn a_json_batch_must_be_an_array() {
        let error =
            split_batch(b"{\"level\":\"INFO\"}", BodyFormat::Json, 10).expect_err("not an array");
        assert_eq!(error.code(), "malformed_json");
        let items = split_batch(b"[{\"level\":1}]", BodyFormat::Json, 10).expect("an array");
        assert!(matches!(items[0], Err(ApiError::InvalidEvent(_))));
    }

    #[test]
    fn counting_stops_past_the_limit_in_either_format() {
        let mut array = b"[".to_vec();
        array.extend(std::iter::repeat_n(&b"0,"[..], 2_000_000).flatten());
        array.extend(b"0]");
        assert!(matches!(
            split_batch(&array, BodyFormat::Json, 1000),
            Err(ApiError::BatchTooLarge { limit: 1000 })
        ));
        let lines = b"0\n".repeat(1_300_000);
        assert!(matches!(
            split_batch(&lines, BodyFormat::Ndjson, 1000),
            Err(ApiError::BatchTooLarge { limit: 1000 })
        ));
        let exactly = format!("[{}0]", "0,".repeat(999));
        let items = split_batch(exactly.as_bytes(), BodyFormat::Json, 1000).expect("at the limit");
        assert_eq!(items.len(), 1000);
    }
}
