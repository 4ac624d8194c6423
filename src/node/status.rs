//! Owns what a node answers at `GET /api/failover/status`, as one typed value:
//! built by the coordinator and the node's HTTP handler, served as JSON, and
//! read back by the gateway's system status and by the drills' harness. The
//! seed's `isLeader` keeps its name; every field is camelCase, as the seed's
//! status was. The black-box tests read the same answer as raw JSON on
//! purpose, as any client would, and one of them also reads it as this type.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::node::sink::store::FailoverRecord;
use crate::shared::circuit_breaker::BreakerState;

/// What a node does, as its status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeRole {
    /// Leads and consumes, and its lease is current: `isLeader` is true.
    Leader,
    /// Consumes under the fence, but its lease has run out (ZooKeeper or the
    /// heartbeat has not vouched for it in time): `isLeader` is false.
    Unconfirmed,
    /// Won the election; raising the fence and positioning the consumer.
    TakingOver,
    /// Stands by.
    Standby,
}

/// The coordinator's part of the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverStatus {
    /// This node's instance id.
    pub instance_id: String,
    /// Cluster name.
    pub cluster: String,
    /// The seed's flag: this node leads and consumes, provably.
    pub is_leader: bool,
    /// What this node does.
    pub role: NodeRole,
    /// This node's current (or last) epoch.
    pub epoch: Option<i64>,
    /// Who ZooKeeper names as leader.
    pub leader_id: Option<String>,
    /// Whether the ZooKeeper session is up.
    pub zookeeper_connected: bool,
    /// Age of the leader heartbeat last seen, ms.
    pub heartbeat_age_ms: Option<i64>,
    /// What this node consumes and has committed.
    pub state: StateSummary,
    /// Snapshot/database disagreements seen at takeovers.
    pub reconciliation_mismatches: u64,
    /// The last takeover by this node.
    pub last_failover: Option<FailoverView>,
}

/// Consumption state in the status answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateSummary {
    /// Partitions consumed.
    pub partitions: Vec<i32>,
    /// Next offset per partition (JSON object keys are strings).
    #[serde(deserialize_with = "partition_keys")]
    #[schema(value_type = BTreeMap<String, i64>)]
    pub offsets: BTreeMap<i32, i64>,
    /// Events committed (continued from the snapshot at takeover).
    pub processed_total: u64,
    /// Dead letters committed by this node.
    pub dead_lettered_total: u64,
}

/// A takeover as the status reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverView {
    /// The stored record.
    #[serde(flatten)]
    pub record: FailoverRecord,
    /// When the new leader's first commit landed.
    pub first_commit_at: Option<DateTime<Utc>>,
    /// `first_commit_at - detected_at`.
    pub first_commit_ms: Option<i64>,
}

/// The whole answer: the coordinator's status and the node's dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The coordinator's part.
    #[serde(flatten)]
    pub failover: FailoverStatus,
    /// Each dependency as this node sees it.
    pub dependencies: NodeDependencies,
}

/// The dependencies in the status answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeDependencies {
    /// The ZooKeeper session.
    pub zookeeper: SessionView,
    /// The breaker in front of the sink's PostgreSQL pool.
    pub postgres: BreakerView,
    /// The breaker in front of the history reads' own pool.
    pub postgres_history: BreakerView,
    /// The breaker in front of Redis.
    pub redis: BreakerView,
}

/// A session-based dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// Whether the session is up.
    pub connected: bool,
}

/// A circuit breaker in a status answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    /// Where it stands.
    pub circuit: BreakerState,
    /// Calls refused without being tried, since start.
    pub rejected_calls: u64,
}

/// Reads a map keyed by partition from JSON, whose keys are strings. Serde
/// reads them as numbers when the map is read directly, but not inside a
/// flattened struct ([`NodeStatus`] flattens [`FailoverStatus`]), which buffers
/// keys as strings.
fn partition_keys<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<i32, i64>, D::Error> {
    BTreeMap::<String, i64>::deserialize(deserializer)?
        .into_iter()
        .map(|(partition, offset)| {
            partition
                .parse()
                .map(|partition| (partition, offset))
                .map_err(|_| D::Error::custom(format!("`{partition}` is not a partition")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_keeps_the_seed_s_field_names_and_reads_back_as_it_was() {
        let status = NodeStatus {
            failover: FailoverStatus {
                instance_id: "node-a".to_owned(),
                cluster: "c".to_owned(),
                is_leader: true,
                role: NodeRole::Leader,
                epoch: Some(7),
                leader_id: Some("node-a".to_owned()),
                zookeeper_connected: true,
                heartbeat_age_ms: Some(12),
                state: StateSummary {
                    partitions: vec![0, 1],
                    offsets: BTreeMap::from([(0, 41), (1, 9)]),
                    processed_total: 50,
                    dead_lettered_total: 1,
                },
                reconciliation_mismatches: 0,
                last_failover: None,
            },
            dependencies: NodeDependencies {
                zookeeper: SessionView { connected: true },
                postgres: BreakerView {
                    circuit: BreakerState::Closed,
                    rejected_calls: 0,
                },
                postgres_history: BreakerView {
                    circuit: BreakerState::HalfOpen,
                    rejected_calls: 2,
                },
                redis: BreakerView {
                    circuit: BreakerState::Open,
                    rejected_calls: 3,
                },
            },
        };
        let json = serde_json::to_value(&status).expect("serializes");
        assert_eq!(json["isLeader"], true);
        assert_eq!(json["role"], "LEADER");
        assert_eq!(json["state"]["offsets"]["0"], 41);
        assert_eq!(
            json["dependencies"]["postgresHistory"]["circuit"],
            "half_open"
        );
        assert_eq!(json["dependencies"]["redis"]["rejectedCalls"], 3);
        let back: NodeStatus = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, status);
    }

    #[test]
    fn every_role_has_the_name_operators_see() {
        let names: Vec<String> = [
            NodeRole::Leader,
            NodeRole::Unconfirmed,
            NodeRole::TakingOver,
            NodeRole::Standby,
        ]
        .iter()
        .map(|role| {
            serde_json::to_value(role)
                .expect("a name")
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
        assert_eq!(names, ["LEADER", "UNCONFIRMED", "TAKING_OVER", "STANDBY"]);
    }
}
