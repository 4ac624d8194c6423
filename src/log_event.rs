//! Owns the log event: what a client may send, the rules it must meet, and the
//! validated form that travels through Kafka into PostgreSQL.
//!
//! The same rules run twice: in the gateway (bad input gets a 4xx) and in the node
//! when it decodes a Kafka record (a record that breaks them is dead-lettered), so a
//! record written straight into the topic by someone else can never poison the sink.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Severity of a log event, from a fixed set; parsed case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Finest-grained diagnostics.
    Trace,
    /// Diagnostics for developers.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// A failed operation.
    Error,
    /// The emitting process cannot go on.
    Fatal,
}

impl Level {
    /// Every level, in increasing severity.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    /// The canonical upper-case name stored in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warn => "WARN",
            Level::Error => "ERROR",
            Level::Fatal => "FATAL",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = EventError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| EventError::UnknownLevel(text.chars().take(32).collect()))
    }
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// `level` is not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL.
    #[error("unknown level `{0}`; expected one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL")]
    UnknownLevel(String),
    /// A required text field is empty or only white space.
    #[error("`{0}` must not be empty")]
    Empty(&'static str),
    /// A text field is longer than its limit.
    #[error("`{field}` is {actual} bytes; the limit is {limit}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length in bytes.
        actual: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A string holds a NUL character, which PostgreSQL text and jsonb cannot store.
    #[error("`{0}` contains a NUL character, which cannot be stored")]
    NulCharacter(&'static str),
    /// The nil UUID is reserved: it would collide across every client that sends it.
    #[error("`messageId` must not be the nil UUID")]
    NilMessageId,
    /// A timestamp outside the years PostgreSQL and RFC 3339 can both hold.
    #[error("`{0}` must lie between 0001-01-01 and 9999-12-31 (UTC)")]
    TimestampOutOfRange(&'static str),
}

/// Limits an event must fit; from the gateway configuration, shared by nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// Longest `message`, in bytes.
    pub max_message_bytes: usize,
    /// Longest `source`, in bytes.
    pub max_source_bytes: usize,
    /// Largest `attributes`, in bytes of JSON.
    pub max_attributes_bytes: usize,
}

impl From<&crate::config::GatewayConfig> for EventLimits {
    fn from(gateway: &crate::config::GatewayConfig) -> Self {
        Self {
            max_message_bytes: gateway.max_message_bytes,
            max_source_bytes: gateway.max_source_bytes,
            max_attributes_bytes: gateway.max_attributes_bytes,
        }
    }
}

/// An event as a client sends it to `POST /api/logs`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[serde(deny_unknown_fields)]
pub struct LogEventRequest {
    /// Severity name, any case.
    pub level: String,
    /// The log line.
    pub message: String,
    /// Who emitted it; also the Kafka key, so one source keeps its order.
    pub source: String,
    /// The client's id for the event; a retry with the same id is stored once.
    /// The snake_case `message_id` is accepted too, as earlier builds spelt it.
    #[serde(default, alias = "message_id")]
    pub message_id: Option<Uuid>,
    /// When the event happened; the gateway's clock when absent.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// Free-form structured context.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
}

/// A validated event: the record value in Kafka and a row in `log_events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEvent {
    /// Unique id: the client's, or a UUIDv7 assigned by the gateway.
    pub message_id: Uuid,
    /// Severity.
    pub level: Level,
    /// The log line.
    pub message: String,
    /// Who emitted it.
    pub source: String,
    /// When the event happened.
    pub timestamp: DateTime<Utc>,
    /// When the gateway accepted it.
    pub received_at: DateTime<Utc>,
    /// Structured context (an empty object when none was sent).
    pub attributes: Map<String, Value>,
}

impl LogEventRequest {
    /// Checks every rule and returns the event to publish.
    pub fn validate(
        self,
        limits: &EventLimits,
        received_at: DateTime<Utc>,
    ) -> Result<LogEvent, EventError> {
        let level = Level::from_str(self.level.trim())?;
        check_text("message", &self.message, limits.max_message_bytes)?;
        check_text("source", &self.source, limits.max_source_bytes)?;
        let attributes = self.attributes.unwrap_or_default();
        check_attributes(&attributes, limits.max_attributes_bytes)?;
        if let Some(timestamp) = &self.timestamp {
            check_timestamp("timestamp", timestamp)?;
        }
        let message_id = match self.message_id {
            Some(id) if id.is_nil() => return Err(EventError::NilMessageId),
            Some(id) => id,
            None => Uuid::now_v7(),
        };
        Ok(LogEvent {
            message_id,
            level,
            message: self.message,
            source: self.source,
            timestamp: self.timestamp.unwrap_or(received_at),
            received_at,
            attributes,
        })
    }
}

impl LogEvent {
    /// Decodes a Kafka record value and re-checks the rules; the error is the
    /// dead-letter reason.
    pub fn decode(payload: Option<&[u8]>, limits: &EventLimits) -> Result<LogEvent, String> {
        let bytes = payload.ok_or_else(|| "record has no value".to_owned())?;
        let event: LogEvent =
            serde_json::from_slice(bytes).map_err(|error| format!("not a valid event: {error}"))?;
        event
            .check(limits)
            .map_err(|error| format!("invalid event: {error}"))?;
        Ok(event)
    }

    /// Re-checks the rules on an event decoded from Kafka, where anyone may have written.
    pub fn check(&self, limits: &EventLimits) -> Result<(), EventError> {
        if self.message_id.is_nil() {
            return Err(EventError::NilMessageId);
        }
        check_text("message", &self.message, limits.max_message_bytes)?;
        check_text("source", &self.source, limits.max_source_bytes)?;
        check_timestamp("timestamp", &self.timestamp)?;
        check_timestamp("received_at", &self.received_at)?;
        check_attributes(&self.attributes, limits.max_attributes_bytes)
    }
}

/// Refuses a timestamp PostgreSQL would refuse: `timestamptz` ends at 4713 BC,
/// and an event the database refuses must be refused at the door, not found
/// by the sink (a year-5000-BC timestamp once wedged every commit after it).
/// Four-digit years are also what RFC 3339 can write back to a client.
fn check_timestamp(field: &'static str, timestamp: &DateTime<Utc>) -> Result<(), EventError> {
    if (1..=9999).contains(&timestamp.year()) {
        Ok(())
    } else {
        Err(EventError::TimestampOutOfRange(field))
    }
}

fn check_text(field: &'static str, value: &str, limit: usize) -> Result<(), EventError> {
    if value.trim().is_empty() {
        return Err(EventError::Empty(field));
    }
    if value.len() > limit {
        return Err(EventError::TooLong {
            field,
            actual: value.len(),
            limit,
        });
    }
    if value.contains('\0') {
        return Err(EventError::NulCharacter(field));
    }
    Ok(())
}

fn check_attributes(attributes: &Map<String, Value>, limit: usize) -> Result<(), EventError> {
    let mut counted = ByteCount(0);
    let encoded_len =
        serde_json::to_writer(&mut counted, attributes).map_or(usize::MAX, |()| counted.0);
    if encoded_len > limit {
        return Err(EventError::TooLong {
            field: "attributes",
            actual: encoded_len,
            limit,
        });
    }
    if map_has_nul(attributes) {
        return Err(EventError::NulCharacter("attributes"));
    }
    Ok(())
}

/// Counts the bytes written to it: an encoded length without keeping the
/// encoding (every event's attributes are measured, at the gateway and again
/// at the node).
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn map_has_nul(map: &Map<String, Value>) -> bool {
    map.iter()
        .any(|(key, value)| key.contains('\0') || value_has_nul(value))
}

fn value_has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(value_has_nul),
        Value::Object(map) => map_has_nul(map),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LIMITS: EventLimits = EventLimits {
        max_message_bytes: 16,
        max_source_bytes: 8,
        max_attributes_bytes: 64,
    };

    fn request(body: Value) -> LogEventRequest {
        serde_json::from_value(body).expect("request parses")
    }

    fn validate(body: Value) -> Result<LogEvent, EventError> {
        request(body).validate(&LIMITS, Utc::now())
    }

    #[test]
    fn the_seed_body_is_accepted_and_gets_a_v7_id() {
        let event =
            validate(json!({"level":"INFO","message":"hello","source":"test"})).expect("valid");
        assert_eq!(event.level, Level::Info);
        assert_eq!(event.message_id.get_version_num(), 7);
        assert_eq!(event.timestamp, event.received_at);
        assert!(event.attributes.is_empty());
    }

    #[test]
    fn levels_are_case_insensitive_from_a_fixed_set() {
        assert_eq!("warn".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("Fatal".parse::<Level>(), Ok(Level::Fatal));
        assert!(matches!(
            "NOTICE".parse::<Level>(),
            Err(EventError::UnknownLevel(_))
        ));
    }

    #[test]
    fn a_client_message_id_is_kept_and_nil_is_refused() {
        let id = Uuid::now_v7();
        let event = validate(json!({"level":"info","message":"m","source":"s","message_id":id}))
            .expect("valid");
        assert_eq!(event.message_id, id);
        assert_eq!(
            validate(json!({"level":"info","message":"m","source":"s","message_id":Uuid::nil()})),
            Err(EventError::NilMessageId)
        );
    }

    #[test]
    fn empty_long_and_nul_text_is_refused() {
        assert_eq!(
            validate(json!({"level":"info","message":"  ","source":"s"})),
            Err(EventError::Empty("message"))
        );
        assert!(matches!(
            validate(json!({"level":"info","message":"m","source":"far-too-long"})),
            Err(EventError::TooLong {
                field: "source",
                ..
            })
        ));
        assert_eq!(
            validate(json!({"level":"info","message":"a\u{0}b","source":"s"})),
            Err(EventError::NulCharacter("message"))
        );
        assert_eq!(
            validate(
                json!({"level":"info","message":"m","source":"s","attributes":{"k":["x\u{0}"]}})
            ),
            Err(EventError::NulCharacter("attributes"))
        );
        assert!(matches!(
            validate(
                json!({"level":"info","message":"m","source":"s","attributes":{"k":"x".repeat(100)}})
            ),
            Err(EventError::TooLong {
                field: "attributes",
                ..
            })
        ));
    }

    #[test]
    fn timestamps_postgresql_cannot_store_are_refused() {
        assert_eq!(
            validate(
                json!({"level":"INFO","message":"m","source":"s","timestamp":"-5000-01-01T00:00:00Z"})
            ),
            Err(EventError::TimestampOutOfRange("timestamp"))
        );
        assert_eq!(
            validate(
                json!({"level":"INFO","message":"m","source":"s","timestamp":"+10000-01-01T00:00:00Z"})
            ),
            Err(EventError::TimestampOutOfRange("timestamp"))
        );
        for edge in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"] {
            assert!(
                validate(json!({"level":"INFO","message":"m","source":"s","timestamp":edge}))
                    .is_ok(),
                "{edge}"
            );
        }
        let mut event =
            validate(json!({"level":"INFO","message":"m","source":"s"})).expect("valid");
        event.received_at = "-0001-06-01T00:00:00Z".parse().expect("a proleptic date");
        assert_eq!(
            event.check(&LIMITS),
            Err(EventError::TimestampOutOfRange("received_at"))
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let parsed = serde_json::from_value::<LogEventRequest>(
            json!({"level":"INFO","message":"m","source":"s","extra":1}),
        );
        assert!(parsed.is_err());
    }

    #[test]
    fn poison_records_decode_to_a_reason_never_a_panic() {
        assert_eq!(
            LogEvent::decode(None, &LIMITS),
            Err("record has no value".to_owned())
        );
        for bytes in [&b"\xff\xfe"[..], b"{}", b"[1,2]", b"{\"message_id\":1}"] {
            let reason = LogEvent::decode(Some(bytes), &LIMITS).expect_err("poison");
            assert!(reason.starts_with("not a valid event"), "{reason}");
        }
        let mut event =
            validate(json!({"level":"INFO","message":"m","source":"s"})).expect("valid");
        event.message = "x".repeat(100);
        let bytes = serde_json::to_vec(&event).expect("encodes");
        let reason = LogEvent::decode(Some(&bytes), &LIMITS).expect_err("too long");
        assert!(reason.starts_with("invalid event"), "{reason}");
    }

    #[test]
    fn the_wire_form_round_trips_and_is_rechecked() {
        let event =
            validate(json!({"level":"ERROR","message":"m","source":"s","attributes":{"a":1}}))
                .expect("valid");
        let bytes = serde_json::to_vec(&event).expect("encodes");
        let decoded: LogEvent = serde_json::from_slice(&bytes).expect("decodes");
        assert_eq!(decoded, event);
        assert_eq!(decoded.check(&LIMITS), Ok(()));
        let mut tampered = decoded;
        tampered.source = String::new();
        assert_eq!(tampered.check(&LIMITS), Err(EventError::Empty("source")));
    }
}
