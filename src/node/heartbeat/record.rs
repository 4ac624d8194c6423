//! Owns the seed's heartbeat format, `{timestamp_ms}:{epoch}:{instance_id}`
//! (for example `1706876543210:5:abc-123-def`). The timestamp is for people;
//! whether a heartbeat is stale is judged on the reader's own clock
//! ([`crate::node::heartbeat::liveness`]).

use std::fmt;
use std::str::FromStr;

use crate::node::election::epoch::Epoch;

/// One heartbeat as stored in Redis under `leader:heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRecord {
    /// When the leader wrote it, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The writer's leadership epoch.
    pub epoch: Epoch,
    /// The writer's instance id (may itself contain ':').
    pub instance_id: String,
}

/// Why a stored heartbeat could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatParseError {
    /// The value does not have three `:`-separated parts.
    #[error("heartbeat `{0}` is not `timestamp:epoch:instance`")]
    Shape(String),
    /// The timestamp or epoch is not an integer.
    #[error("heartbeat `{0}` has a non-numeric timestamp or epoch")]
    Number(String),
}

impl fmt::Display for HeartbeatRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.timestamp_ms, self.epoch, self.instance_id
        )
    }
}

impl FromStr for HeartbeatRecord {
    type Err = HeartbeatParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.splitn(3, ':');
        let (Some(timestamp), Some(epoch), Some(instance_id)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(HeartbeatParseError::Shape(text.to_owned()));
        };
        if instance_id.is_empty() {
            return Err(HeartbeatParseError::Shape(text.to_owned()));
        }
        let number = |part: &str| {
            part.parse::<i64>()
                .map_err(|_| HeartbeatParseError::Number(text.to_owned()))
        };
        Ok(HeartbeatRecord {
            timestamp_ms: number(timestamp)?,
            epoch: Epoch(number(epoch)?),
            instance_id: instance_id.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_round_trips() {
        let record: HeartbeatRecord = "1706876543210:5:abc-123-def".parse().expect("parses");
        assert_eq!(record.timestamp_ms, 1_706_876_543_210);
        assert_eq!(record.epoch, Epoch(5));
        assert_eq!(record.instance_id, "abc-123-def");
        assert_eq!(record.to_string(), "1706876543210:5:abc-123-def");
    }

    #[test]
    fn an_instance_id_may_contain_colons() {
        let record: HeartbeatRecord = "1:2:host:8081".parse().expect("parses");
        assert_eq!(record.instance_id, "host:8081");
    }

    #[test]
    fn malformed_heartbeats_are_errors_not_panics() {
        for text in [
            "",
            "1",
            "1:2",
            "1:2:",
            "x:2:a",
            "1:y:a",
            "99999999999999999999:1:a",
        ] {
            assert!(text.parse::<HeartbeatRecord>().is_err(), "{text:?}");
        }
    }
}
