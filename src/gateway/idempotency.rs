//! Owns the `Idempotency-Key` header of the ingest endpoints: a client that
//! cannot keep the `messageId` of a request it may retry sends a key instead,
//! and the gateway derives each event's id from the topic, the key, the
//! event's content and how many identical events came before it in the same
//! request (UUIDv5). A retry of the request with the same key carries the same
//! ids, and the sink stores each once; resending only the failed items of a
//! batch does not make them collide with stored ones (their content differs),
//! a different event under the same key gets an id of its own, and three
//! identical lines in one batch are three events. A `messageId` in the body
//! wins over the key. Ids are unique across the whole database, so the topic
//! is part of the name.

use std::collections::HashMap;

use actix_web::HttpRequest;
use uuid::Uuid;

use crate::log_event::LogEventRequest;
use crate::shared::http::api_error::ApiError;

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

    /// Gives every event of one request sent to `topic` under this key that
    /// has no `messageId` its derived id.
    pub fn assign_ids<'a>(
        &self,
        topic: &str,
        events: impl IntoIterator<Item = &'a mut LogEventRequest>,
    ) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for event in events {
            if event.message_id.is_some() {
                continue;
            }
            let content = content_of(event);
            let occurrence = seen.entry(content.clone()).or_default();
            let name = format!("{topic}\n{}\n{occurrence}\n{content}", self.0);
            *occurrence += 1;
            event.message_id = Some(Uuid::new_v5(&NAMESPACE, name.as_bytes()));
        }
    }
}

/// The event's content as one text: serde_json's maps are ordered by key, so
/// the same event always encodes the same, however the client ordered it.
fn content_of(event: &LogEventRequest) -> String {
    serde_json::to_string(&(
        &event.level,
        &event.message,
        &event.source,
        &event.timestamp,
        &event.attributes,
    ))
    .unwrap_or_default()
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

    fn ids(key: &IdempotencyKey, topic: &str, bodies: &[serde_json::Value]) -> Vec<Uuid> {
        let mut events: Vec<LogEventRequest> = bodies.iter().cloned().map(event).collect();
        key.assign_ids(topic, events.iter_mut());
        events
            .iter()
            .map(|e| e.message_id.expect("an id"))
            .collect()
    }

    #[test]
    fn a_retry_gets_the_same_ids_and_other_events_other_ids() {
        let key = key_of("order-42-attempt").expect("valid").expect("present");
        let a = serde_json::json!({"level":"INFO","message":"charged","source":"billing","attributes":{"x":1,"y":2}});
        let reordered = serde_json::json!({"attributes":{"y":2,"x":1},"source":"billing","message":"charged","level":"INFO"});
        let b = serde_json::json!({"level":"WARN","message":"refunded","source":"billing"});
        let first = ids(&key, "t", &[a.clone(), b.clone()]);
        assert_eq!(first, ids(&key, "t", &[reordered, b.clone()]));
        assert_ne!(first[0], first[1]);
        // Resending only the second item: it keeps its id, not the first's.
        assert_eq!(ids(&key, "t", &[b])[0], first[1]);
        assert_ne!(ids(&key, "u", std::slice::from_ref(&a))[0], first[0]);
        assert_eq!(first[0].get_version_num(), 5);
        // Identical lines in one request are distinct events.
        let same = ids(&key, "t", &[a.clone(), a.clone(), a]);
        assert_eq!(same[0], first[0]);
        assert!(same[0] != same[1] && same[1] != same[2] && same[0] != same[2]);
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
