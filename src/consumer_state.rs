//! Owns `ConsumerState`, the seed's migratable state: what the leader consumes,
//! how far it committed, which events were in flight, how many it processed, and
//! under which epoch, plus a typed extension for application state.
//!
//! The leader writes it to Redis after commits; a new leader reads it first
//! because it is fast, checks its age, and reconciles it with PostgreSQL, which
//! wins every disagreement: the snapshot is advisory, the database is the truth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::epoch::Epoch;

/// How long an in-flight id is remembered (the seed's 5-minute TTL).
pub const IN_FLIGHT_TTL_MS: i64 = 5 * 60 * 1000;

/// An event id handed to the sink and not yet known to be committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlightId {
    /// The event.
    pub message_id: Uuid,
    /// When this entry stops meaning anything, ms since the Unix epoch.
    pub expires_at_ms: i64,
}

/// Application state that travels with leadership (the seed's extension point).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomState {
    /// Free-form key/value metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Operations the leader had started and a successor should finish.
    #[serde(default)]
    pub pending_operations: Vec<String>,
}

/// The state snapshot stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerState {
    /// Node that wrote the snapshot.
    pub instance_id: String,
    /// Its leadership epoch.
    pub epoch: Epoch,
    /// Topic consumed.
    pub topic: String,
    /// Partitions assigned.
    pub partitions: Vec<i32>,
    /// Next offset to read per partition (what was committed).
    pub offsets: BTreeMap<i32, i64>,
    /// Ids in flight when the snapshot was taken.
    pub in_flight: Vec<InFlightId>,
    /// Events committed by this cluster so far, as the writer counted them.
    pub processed_total: u64,
    /// Application extension.
    #[serde(default)]
    pub custom: CustomState,
    /// When the snapshot was written, ms since the Unix epoch.
    pub updated_at_ms: i64,
}

/// A partition where the snapshot and PostgreSQL disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetMismatch {
    /// The partition.
    pub partition: i32,
    /// What the snapshot says (`None`: absent from it).
    pub snapshot: Option<i64>,
    /// What PostgreSQL says (`None`: never committed).
    pub database: Option<i64>,
}

impl ConsumerState {
    /// Whether the snapshot is young enough to trust at `now_ms`.
    pub fn is_fresh(&self, now_ms: i64, max_age_ms: u64) -> bool {
        let age = now_ms.saturating_sub(self.updated_at_ms);
        age >= 0 && u64::try_from(age).is_ok_and(|age| age <= max_age_ms)
    }

    /// Drops in-flight ids whose TTL passed.
    pub fn prune_in_flight(&mut self, now_ms: i64) {
        self.in_flight.retain(|entry| entry.expires_at_ms > now_ms);
    }

    /// Every partition on which the snapshot disagrees with the database's offsets.
    pub fn mismatches(&self, database: &BTreeMap<i32, i64>) -> Vec<OffsetMismatch> {
        let partitions: std::collections::BTreeSet<i32> = self
            .offsets
            .keys()
            .chain(database.keys())
            .copied()
            .collect();
        partitions
            .into_iter()
            .filter_map(|partition| {
                let snapshot = self.offsets.get(&partition).copied();
                let stored = database.get(&partition).copied();
                (snapshot != stored).then_some(OffsetMismatch {
                    partition,
                    snapshot,
                    database: stored,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(offsets: &[(i32, i64)], updated_at_ms: i64) -> ConsumerState {
        ConsumerState {
            instance_id: "a".into(),
            epoch: Epoch(3),
            topic: "t".into(),
            partitions: vec![0, 1, 2],
            offsets: offsets.iter().copied().collect(),
            in_flight: vec![
                InFlightId {
                    message_id: Uuid::now_v7(),
                    expires_at_ms: 10,
                },
                InFlightId {
                    message_id: Uuid::now_v7(),
                    expires_at_ms: 1_000,
                },
            ],
            processed_total: 42,
            custom: CustomState::default(),
            updated_at_ms,
        }
    }

    #[test]
    fn freshness_follows_the_configured_age() {
        let snapshot = state(&[], 10_000);
        assert!(snapshot.is_fresh(40_000, 30_000));
        assert!(!snapshot.is_fresh(40_001, 30_000));
        assert!(
            !snapshot.is_fresh(9_000, 30_000),
            "a snapshot from the future is not trusted"
        );
    }

    #[test]
    fn expired_in_flight_ids_are_pruned() {
        let mut snapshot = state(&[], 0);
        snapshot.prune_in_flight(500);
        assert_eq!(snapshot.in_flight.len(), 1);
    }

    #[test]
    fn reconciliation_reports_every_disagreement() {
        let snapshot = state(&[(0, 10), (1, 5)], 0);
        let database: BTreeMap<i32, i64> = [(0, 10), (1, 7), (2, 1)].into_iter().collect();
        let mismatches = snapshot.mismatches(&database);
        assert_eq!(
            mismatches,
            vec![
                OffsetMismatch {
                    partition: 1,
                    snapshot: Some(5),
                    database: Some(7)
                },
                OffsetMismatch {
                    partition: 2,
                    snapshot: None,
                    database: Some(1)
                },
            ]
        );
    }

    #[test]
    fn the_snapshot_round_trips_as_json() {
        let snapshot = state(&[(0, 1)], 5);
        let text = serde_json::to_string(&snapshot).expect("encodes");
        assert!(text.contains("\"processedTotal\":42"));
        assert_eq!(
            serde_json::from_str::<ConsumerState>(&text).expect("decodes"),
            snapshot
        );
    }
}
