//! Property tests of everything that decodes what another process wrote:
//! event requests from clients, event records from Kafka (anyone with access
//! to the topic may write them), and heartbeats from Redis. Whatever the bytes,
//! decoding gives a value or an error, never a panic; and what we encode, we
//! decode back unchanged.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use serde_json::{Map, Value};

use std::time::{Duration, Instant};
use understudy::node::election::epoch::Epoch;

use understudy::log_event::{EventLimits, Level, LogEvent, LogEventRequest};
use understudy::node::election::named_leader::NamedLeader;
use understudy::node::heartbeat::liveness::{LeaderLiveness, Verdict};
use understudy::node::heartbeat::record::HeartbeatRecord;

const LIMITS: EventLimits = EventLimits {
    max_message_bytes: 4096,
    max_source_bytes: 128,
    max_attributes_bytes: 4096,
};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn event() -> impl Strategy<Value = LogEvent> {
    (
        prop::sample::select(Level::ALL.to_vec()),
        "[^\u{0}]{1,64}",
        "[a-z0-9-]{1,32}",
        0_i64..4_102_444_800_000,
        prop::collection::btree_map("[a-z]{1,8}", json_value(), 0..4),
    )
        .prop_map(|(level, message, source, millis, attributes)| {
            let at = Utc
                .timestamp_millis_opt(millis)
                .single()
                .unwrap_or_else(Utc::now);
            LogEvent {
                message_id: uuid::Uuid::now_v7(),
                level,
                message,
                source,
                timestamp: at,
                received_at: at,
                attributes: attributes.into_iter().collect::<Map<String, Value>>(),
            }
        })
}

/// A request body shaped like an event: mostly valid, with each field now
/// and then wrong in the ways clients get it wrong (a level in odd case or
/// unknown, a NUL, an oversized text, an id or a timestamp that is not one).
fn event_request() -> impl Strategy<Value = Value> {
    let level = prop_oneof![
        8 => prop::sample::select(vec!["info", "WARN", "Error", " debug ", "TRACE", "fatal"])
            .prop_map(str::to_owned),
        1 => ".{0,8}",
    ];
    let text = |max: usize| {
        prop_oneof![
            8 => "[^\u{0}]{1,48}",
            1 => Just("x".repeat(max + 1)),
            1 => ".{0,8}\u{0}.{0,8}",
        ]
    };
    let message_id = prop::option::of(prop_oneof![
        4 => Just(uuid::Uuid::now_v7().to_string()),
        1 => "[0-9a-f-]{0,36}",
    ]);
    let timestamp = prop::option::of(prop_oneof![
        4 => (0_i64..253_402_300_799).prop_map(|seconds| {
            Utc.timestamp_opt(seconds, 0)
                .single()
                .map(|at| at.to_rfc3339())
                .unwrap_or_default()
        }),
        1 => Just("+10000-01-01T00:00:00Z".to_owned()),
        1 => ".{0,12}",
    ]);
    let attributes = prop::option::of(prop_oneof![
        4 => prop::collection::btree_map("[a-z]{1,8}", json_value(), 0..4)
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        1 => json_value(),
    ]);
    (
        level,
        text(LIMITS.max_message_bytes),
        text(LIMITS.max_source_bytes),
        message_id,
        timestamp,
        attributes,
    )
        .prop_map(
            |(level, message, source, message_id, timestamp, attributes)| {
                let mut body = Map::new();
                body.insert("level".into(), Value::String(level));
                body.insert("message".into(), Value::String(message));
                body.insert("source".into(), Value::String(source));
                if let Some(id) = message_id {
                    body.insert("messageId".into(), Value::String(id));
                }
                if let Some(at) = timestamp {
                    body.insert("timestamp".into(), Value::String(at));
                }
                if let Some(attributes) = attributes {
                    body.insert("attributes".into(), attributes);
                }
                Value::Object(body)
            },
        )
}

/// What the gateway makes of `body`: the event it would publish, if any.
fn accepted(body: Value) -> Option<LogEvent> {
    serde_json::from_value::<LogEventRequest>(body)
        .ok()?
        .validate(&LIMITS, Utc::now())
        .ok()
}

/// The property below is only worth its runs if most bodies are accepted.
#[test]
fn most_event_shaped_bodies_are_accepted() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = event_request();
    let runs = 1_000;
    let valid = (0..runs)
        .filter(|_| {
            let body = strategy.new_tree(&mut runner).expect("a body").current();
            accepted(body).is_some()
        })
        .count();
    assert!(
        valid * 4 >= runs,
        "only {valid} of {runs} generated bodies were valid events"
    );
}

proptest! {
    #[test]
    fn what_the_gateway_accepts_passes_the_nodes_check_and_round_trips(body in event_request()) {
        if let Some(event) = accepted(body) {
            prop_assert!(event.check(&LIMITS).is_ok(), "validated events pass the node's check");
            let bytes = serde_json::to_vec(&event).expect("encode");
            prop_assert_eq!(LogEvent::decode(Some(&bytes), &LIMITS).expect("decodes"), event);
        }
    }

    #[test]
    fn any_bytes_from_kafka_decode_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = LogEvent::decode(Some(&bytes), &LIMITS);
    }

    #[test]
    fn any_json_from_kafka_decodes_or_fails_cleanly(value in json_value()) {
        let bytes = serde_json::to_vec(&value).expect("encode");
        let _ = LogEvent::decode(Some(&bytes), &LIMITS);
    }

    #[test]
    fn what_the_gateway_publishes_the_node_decodes_unchanged(event in event()) {
        let bytes = serde_json::to_vec(&event).expect("encode");
        let decoded = LogEvent::decode(Some(&bytes), &LIMITS);
        if event.check(&LIMITS).is_ok() {
            prop_assert_eq!(decoded.expect("a valid event decodes"), event);
        } else {
            prop_assert!(decoded.is_err());
        }
    }

    #[test]
    fn any_request_body_is_validated_or_refused_never_panics(value in json_value()) {
        if let Some(event) = accepted(value) {
            prop_assert!(event.check(&LIMITS).is_ok(), "validated events pass the node's check");
        }
    }

    #[test]
    fn no_heartbeat_value_that_stops_changing_delays_a_takeover(text in "[0-9:a-z-]{0,24}|.{0,64}") {
        // Whatever a writer (or a forger) leaves in the key, once it stops
        // changing the leader is called hung within the timeout and the misses.
        let stored = text.parse::<HeartbeatRecord>().ok();
        let mut judge = LeaderLiveness::new("b", Duration::from_millis(1000), 3);
        let start = Instant::now();
        judge.leader_named(Some(NamedLeader { instance_id: "a".into(), epoch: Epoch(1) }), start);
        let hung_at = (0..40_u32)
            .map(|check| start + Duration::from_millis(250) * check)
            .find(|now| matches!(judge.heartbeat_read(stored.clone(), *now), Verdict::Hung { .. }));
        let hung_after = hung_at.map(|at| at - start);
        prop_assert!(
            hung_after.is_some_and(|after| after <= Duration::from_millis(1750)),
            "{text:?} delayed the takeover: {hung_after:?}"
        );
    }

    #[test]
    fn a_heartbeat_round_trips(timestamp in any::<i64>(), epoch in any::<i64>(), instance in "[^\u{0}]{1,32}") {
        let record = HeartbeatRecord { timestamp_ms: timestamp, epoch: Epoch(epoch), instance_id: instance };
        prop_assert_eq!(record.to_string().parse::<HeartbeatRecord>(), Ok(record));
    }
}
