//! Owns the mapping from everything an HTTP handler can fail with to a status code
//! and a JSON body `{"error": <stable code>, "detail": <human text>}`.
//!
//! Clients branch on `error`; `detail` is for people and may change.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use uuid::Uuid;

use crate::log_event::EventError;
use crate::shared::kafka::producer::PublishError;

/// Every failure an HTTP handler reports.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request's `Content-Type` is not one the endpoint reads.
    #[error("content type must be {expected}")]
    UnsupportedMediaType {
        /// The accepted media types.
        expected: &'static str,
    },
    /// The body is larger than `gateway.max_body_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A batch holds more events than `gateway.max_batch_events` (counting
    /// stops there: the rest of the body is never parsed).
    #[error("batch holds more than {limit} events")]
    BatchTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// A batch holds no events.
    #[error("batch holds no events")]
    EmptyBatch,
    /// The body is not JSON (or not UTF-8).
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The JSON is well-formed but is not a valid event.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// The body could not be read from the connection.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// The client took longer than allowed to send its body.
    #[error("the request body did not arrive within {0:?}")]
    RequestTimeout(std::time::Duration),
    /// The broker did not acknowledge the event. With a `message_id` the
    /// outcome is unknown (the record may have been written before a timeout):
    /// a retry must reuse that id, which the sink stores once. Without one,
    /// nothing was sent.
    #[error("event not accepted, the broker is unavailable: {reason}")]
    BrokerUnavailable {
        /// What failed.
        reason: String,
        /// The event's id, when it may have been stored.
        message_id: Option<Uuid>,
    },
    /// No route matches the path.
    #[error("no such endpoint")]
    NotFound,
    /// A query parameter is out of range or malformed.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// A leader-only action reached a standby.
    #[error("this node is not the leader")]
    NotLeader,
    /// A dependency (PostgreSQL, Redis, ZooKeeper) did not answer.
    #[error("a dependency is unavailable: {0}")]
    DependencyUnavailable(String),
    /// The client sent more requests than its rate allows.
    #[error("rate limit exceeded; retry in {retry_after_s} s")]
    TooManyRequests {
        /// Seconds until a request would be allowed again (the `Retry-After` header).
        retry_after_s: u64,
    },
    /// An admin endpoint was called without the configured token.
    #[error("this endpoint needs `Authorization: Bearer <admin token>`")]
    Unauthorized,
    /// An admin endpoint was called but no admin token is configured.
    #[error("admin endpoints are disabled: no admin token is configured")]
    AdminDisabled,
    /// Too many request bodies are held at once (`gateway.max_inflight_body_bytes`).
    #[error("the gateway is busy reading other requests; retry shortly")]
    Overloaded,
    /// An actor of this process did not answer (it is restarting or stopping).
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The stable machine-readable code clients branch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::UnsupportedMediaType { .. } => "unsupported_media_type",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::BatchTooLarge { .. } => "batch_too_large",
            ApiError::EmptyBatch => "empty_batch",
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::InvalidEvent(_) => "invalid_event",
            ApiError::BodyRead(_) => "body_read_failed",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::BrokerUnavailable { .. } => "broker_unavailable",
            ApiError::NotFound => "not_found",
            ApiError::InvalidParameter(_) => "invalid_parameter",
            ApiError::NotLeader => "not_leader",
            ApiError::DependencyUnavailable(_) => "dependency_unavailable",
            ApiError::TooManyRequests { .. } => "rate_limited",
            ApiError::Unauthorized => "unauthorized",
            ApiError::AdminDisabled => "admin_disabled",
            ApiError::Overloaded => "overloaded",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// Classifies a serde_json failure: bad syntax versus a valid document of the wrong shape.
    pub fn from_json(error: &serde_json::Error) -> Self {
        match error.classify() {
            serde_json::error::Category::Data => ApiError::InvalidEvent(error.to_string()),
            serde_json::error::Category::Io
            | serde_json::error::Category::Syntax
            | serde_json::error::Category::Eof => ApiError::MalformedJson(error.to_string()),
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Stable code.
    pub error: &'static str,
    /// Human-readable explanation.
    pub detail: String,
    /// `unknown` when the event may have been stored although the request
    /// failed: retry with `messageId`, and it is stored once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    /// The id to retry with, when the outcome is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
    /// The same id under its snake_case key, for clients written before the
    /// answers became camelCase: one that looked for `message_id` and found
    /// nothing would retry without it and store the event twice.
    /// Deprecated; removed in a later release.
    #[serde(rename = "message_id", skip_serializing_if = "Option::is_none")]
    #[schema(deprecated)]
    pub legacy_message_id: Option<Uuid>,
}

impl From<&ApiError> for ErrorBody {
    fn from(error: &ApiError) -> Self {
        let message_id = match error {
            ApiError::BrokerUnavailable { message_id, .. } => *message_id,
            _ => None,
        };
        ErrorBody {
            error: error.code(),
            detail: error.to_string(),
            outcome: message_id.map(|_| "unknown"),
            message_id,
            legacy_message_id: message_id,
        }
    }
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        ApiError::InvalidEvent(error.to_string())
    }
}

impl ApiError {
    /// The answer to a failed publish of the event `message_id`: an open
    /// breaker sent nothing; anything else may have reached the broker.
    pub fn publish_failed(error: &PublishError, message_id: Uuid) -> Self {
        ApiError::BrokerUnavailable {
            reason: error.to_string(),
            message_id: match error {
                PublishError::CircuitOpen | PublishError::Encode(_) => None,
                PublishError::Unacknowledged(_) => Some(message_id),
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } | ApiError::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::EmptyBatch | ApiError::MalformedJson(_) | ApiError::BodyRead(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::InvalidEvent(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::BrokerUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            ApiError::NotLeader => StatusCode::CONFLICT,
            ApiError::DependencyUnavailable(_) | ApiError::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::AdminDisabled => StatusCode::FORBIDDEN,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        // Clients and load balancers back off by these instead of hammering.
        match self {
            ApiError::TooManyRequests { retry_after_s } => {
                response.insert_header(("Retry-After", retry_after_s.to_string()));
            }
            ApiError::BrokerUnavailable { .. }
            | ApiError::DependencyUnavailable(_)
            | ApiError::Overloaded => {
                response.insert_header(("Retry-After", "1"));
            }
            ApiError::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            _ => {}
        }
        response.json(ErrorBody::from(self))
    }
}
