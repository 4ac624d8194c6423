//! Owns the `Idempotency-Key` header of the ingest endpoints: a client that
//! cannot keep the `message_id` of a request it may retry sends a key instead,
//! and the gateway derives the event's id from it (UUIDv5 of the topic, the
//! key and the event's `source`; in a batch, of the item's index too). A retry
//! with the same key therefore carries the same id, and the sink stores it
//! once. A `message_id` in the body wins over the key. Ids are unique across
//! the whole database, so the topic is part of the name: the same key sent to
//! two clusters' gateways names two events.

use actix_web::HttpRequest;
use uuid::Uuid;

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

    /// The id of the event from `source` sent to `topic` under this key, at
    /// `index` of a batch.
    pub fn message_id(&self, topic: &str, source: &str, index: Option<usize>) -> Uuid {
        let name = match index {
            Some(index) => format!("{topic}\n{}\n{source}\n{index}", self.0),
            None => format!("{topic}\n{}\n{source}", self.0),
        };
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

    #[test]
    fn the_same_key_and_source_give_the_same_id() {
        let key = key_of("order-42-attempt").expect("valid").expect("present");
        let id = |topic, source, index| key.message_id(topic, source, index);
        assert_eq!(id("t", "app", None), id("t", "app", None));
        assert_ne!(id("t", "app", None), id("t", "other", None));
        assert_ne!(id("t", "app", None), id("u", "app", None));
        assert_ne!(id("t", "app", Some(0)), id("t", "app", Some(1)));
        assert_eq!(id("t", "app", None).get_version_num(), 5);
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
