//! Owns `ConsumerState`, the seed's migratable state: what the leader consumes,
//! how far it committed, which events were in flight, how many it processed, and
//! under which epoch, plus a typed extension for application state.
//!
//! The leader writes it to Redis after commits; a new leader reads it beside
//! its takeover transaction, checks its age, and reconciles it with PostgreSQL,
//! which wins every disagreement: the snapshot is advisory, the database is the truth.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::node::election::epoch::Epoch;

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

/// Most entries of each collection in [`CustomState`].
pub const MAX_CUSTOM_ENTRIES: usize = 64;
/// Longest key, value or operation in [`CustomState`], in bytes.
pub const MAX_CUSTOM_TEXT_BYTES: usize = 1024;

impl CustomState {
    /// Whether every collection and text is within its bound.
    pub fn within_bounds(&self) -> bool {
        self.metadata.len() <= MAX_CUSTOM_ENTRIES
            && self.pending_operations.len() <= MAX_CUSTOM_ENTRIES
            && self
                .metadata
                .iter()
                .all(|(key, value)| key.len().max(value.len()) <= MAX_CUSTOM_TEXT_BYTES)
            && self
                .pending_operations
                .iter()
                .all(|operation| operation.len() <= MAX_CUSTOM_TEXT_BYTES)
    }
}

/// Why a snapshot read at takeover is not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotDoubt {
    /// It describes another topic.
    #[error("the snapshot describes another topic")]
    OtherTopic,
    /// Its epoch is not older than the one taking over: no earlier leader wrote it.
    #[error("the snapshot's epoch is not before {0}")]
    EpochNotBefore(Epoch),
    /// It claims more processed events than offsets were ever committed.
    #[error("the snapshot claims more processed events than the {committed} offsets committed")]
    ProcessedBeyondOffsets {
        /// Sum of the committed next offsets.
        committed: u64,
    },
    /// Its application state exceeds the bounds.
    #[error("the snapshot's custom state exceeds its bounds")]
    CustomStateTooLarge,
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

    /// Checks what can be checked of a snapshot read from Redis, where anyone
    /// with access may have written: the topic is ours, the epoch precedes
    /// the one taking over, the processed total does not exceed the offsets
    /// PostgreSQL committed (every processed event consumed one), and the
    /// application state fits its bounds. A snapshot that fails is ignored:
    /// it is advisory, PostgreSQL holds the truth.
    pub fn doubt(
        &self,
        topic: &str,
        taking_over: Epoch,
        stored_offsets: &BTreeMap<i32, i64>,
    ) -> Option<SnapshotDoubt> {
        let committed = stored_offsets.values().fold(0_u64, |sum, next| {
            sum.saturating_add(u64::try_from(*next).unwrap_or(0))
        });
        if self.topic != topic {
            Some(SnapshotDoubt::OtherTopic)
        } else if self.epoch >= taking_over {
            Some(SnapshotDoubt::EpochNotBefore(taking_over))
        } else if self.processed_total > committed {
            Some(SnapshotDoubt::ProcessedBeyondOffsets { committed })
        } else if !self.custom.within_bounds() {
            Some(SnapshotDoubt::CustomStateTooLarge)
        } else {
            None
        }
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
    fn a_forged_snapshot_is_doubted_and_a_plausible_one_is_not() {
        let database: BTreeMap<i32, i64> = [(0, 30), (1, 20)].into_iter().collect();
        let honest = state(&[(0, 30), (1, 20)], 0);
        assert_eq!(honest.doubt("t", Epoch(4), &database), None);
        let mut forged = honest.clone();
        forged.processed_total = u64::MAX;
        assert_eq!(
            forged.doubt("t", Epoch(4), &database),
            Some(SnapshotDoubt::ProcessedBeyondOffsets { committed: 50 })
        );
        assert_eq!(
            honest.doubt("t", Epoch(3), &database),
            Some(SnapshotDoubt::EpochNotBefore(Epoch(3)))
        );
        assert_eq!(
            honest.doubt("other", Epoch(4), &database),
            Some(SnapshotDoubt::OtherTopic)
        );
        let mut bloated = honest;
        bloated
            .custom
            .metadata
            .insert("k".into(), "v".repeat(MAX_CUSTOM_TEXT_BYTES + 1));
        assert_eq!(
            bloated.doubt("t", Epoch(4), &database),
            Some(SnapshotDoubt::CustomStateTooLarge)
        );
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
