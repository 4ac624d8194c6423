//! Owns the `Idempotency-Key` header of the ingest endpoints: a client that
//! cannot keep the `message_id` of a request it may retry sends a key instead,
//! and the gateway derives each event's id from the topic, the key and the
//! event's content (UUIDv5). A retry of the same event with the same key
//! carries the same id, and the sink stores it once, whatever its position in
//! a batch (resending only the failed items of a batch must not make them
//! collide with stored ones); a different event under the same key gets an id
//! of its own, so reusing a key never hides an event behind a 202. A
//! `message_id` in the body wins over the key. Ids are unique across the whole
//! database, so the topic is part of the name.

use actix_web::HttpRequest;
use uuid::Uuid;

use crate::log_event::LogEventRequest;
use crate::web::api_error::ApiError;

/// The header's name.
pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// Longest key accepted, in bytes.
const MAX_KEY_BYTES: usize = 255;

/// The namespace of every derived id: ids derived here never collide with
/// another system's UUIDv5 of the same text.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f0e_9a4c_5d3b_4e21_9c8a_1b2f_3d4e_5a6b);

/// A client's idempotency key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of `request`, if it has one; a malformed key is a 400.
    pub fn of(request: &HttpRequest) -> Result<Option<Self>, ApiError> {
        let Some(value) = request.headers().get(IDEMPOTENCY_KEY_HEADER) else {
            return Ok(None);
        };
        let bytes = value.as_bytes();
        if bytes.is_empty()
            || bytes.len() > MAX_KEY_BYTES
            || !bytes.iter().all(u8::is_ascii_graphic)
        {
            return Err(ApiError::InvalidParameter(format!(
                "`{IDEMPOTENCY_KEY_HEADER}` must be 1 to {MAX_KEY_BYTES} visible ASCII characters"
            )));
        }
        Ok(Some(Self(String::from_utf8_lossy(bytes).into_owned())))
    }

    /// The id of `event` sent to `topic` under this key: the same event gets
    /// the same id, another event another one.
    pub fn message_id(&self, topic: &str, event: &LogEventRequest) -> Uuid {
        // serde_json's maps are ordered by key, so the same event always
        // encodes to the same text, however the client ordered its fields.
        let content = serde_json::to_string(&(
            &event.level,
            &event.message,
            &event.source,
            &event.timestamp,
            &event.attributes,
        ))
        .unwrap_or_default();
        let name = format!("{topic}\n{}\n{content}", self.0);
        Uuid::new_v5(&NAMESPACE, name.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn key_of(value: &str) -> Result<Option<IdempotencyKey>, ApiError> {
        IdempotencyKey::of(
            &TestRequest::default()
                .insert_header((IDEMPOTENCY_KEY_HEADER, value))
                .to_http_request(),
        )
    }

    fn event(body: serde_json::Value) -> LogEventRequest {
        serde_json::from_value(body).expect("an event request")
    }

    #[test]
    fn the_same_event_under_the_same_key_gets_the_same_id_wherever_it_stands() {
        let key = key_of("order-42-attempt").expect("valid").expect("present");
        let a = event(
            serde_json::json!({"level":"INFO","message":"charged","source":"billing","attributes":{"x":1,"y":2}}),
        );
        let reordered = event(
            serde_json::json!({"attributes":{"y":2,"x":1},"source":"billing","message":"charged","level":"INFO"}),
        );
        let other =
            event(serde_json::json!({"level":"WARN","message":"refunded","source":"billing"}));
        assert_eq!(key.message_id("t", &a), key.message_id("t", &reordered));
        assert_ne!(key.message_id("t", &a), key.message_id("t", &other));
        assert_ne!(key.message_id("t", &a), key.message_id("u", &a));
        assert_eq!(key.message_id("t", &a).get_version_num(), 5);
    }

    #[test]
    fn malformed_keys_are_refused_and_absent_ones_are_none() {
        assert!(key_of("").is_err());
        assert!(key_of("with space").is_err());
        assert!(key_of(&"k".repeat(256)).is_err());
        assert_eq!(
            IdempotencyKey::of(&TestRequest::default().to_http_request()).expect("no header"),
            None
        );
    }
}
