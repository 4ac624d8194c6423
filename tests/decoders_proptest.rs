//! Property tests of everything that decodes what another process wrote:
//! event requests from clients, event records from Kafka (anyone with access
//! to the topic may write them), and heartbeats from Redis. Whatever the bytes,
//! decoding gives a value or an error, never a panic; and what we encode, we
//! decode back unchanged.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
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

proptest! {
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
        if let Ok(request) = serde_json::from_value::<LogEventRequest>(value) {
            if let Ok(event) = request.validate(&LIMITS, Utc::now()) {
                prop_assert!(event.check(&LIMITS).is_ok(), "validated events pass the node's check");
            }
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
