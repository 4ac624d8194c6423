//! Owns why a node came to lead: one closed set of reasons, each with the text
//! stored in `failover_events.reason`, shown in the status API and used as the
//! `reason` label of `failover_events_total`, and the kind an alert tells apart.

use std::fmt;

use serde::{Serialize, Serializer};

/// Why this node's leadership began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeoverReason {
    /// Nobody led before this node in its session: a cluster starting.
    InitialElection,
    /// This node lost leadership and won it back as a fresh member.
    Rejoined,
    /// The leader's member znode went away (it stepped down, crashed or its
    /// session expired) and this node was next.
    LeaderDeparted,
    /// This node's predecessor went away and it found itself first.
    PredecessorDeparted,
    /// This node deleted a hung leader's member znode after its heartbeat went stale.
    ForcedTakeover,
    /// This node saw the leader's process die: its address refused a connection.
    LeaderProcessGone,
}

/// Whether a leadership change replaced a working leader, for alerts that must
/// not page on a cluster starting or a node rejoining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeoverKind {
    /// The first leader of a session: no leader was lost.
    Initial,
    /// The same node leads again after losing leadership.
    Rejoin,
    /// Another node's leadership ended and this node took over.
    Failover,
}

impl TakeoverReason {
    /// Every reason, for exporting each series from the start.
    pub const ALL: [TakeoverReason; 6] = [
        TakeoverReason::InitialElection,
        TakeoverReason::Rejoined,
        TakeoverReason::LeaderDeparted,
        TakeoverReason::PredecessorDeparted,
        TakeoverReason::ForcedTakeover,
        TakeoverReason::LeaderProcessGone,
    ];

    /// The stored and displayed text (stable: history rows and dashboards use it).
    pub fn as_str(self) -> &'static str {
        match self {
            TakeoverReason::InitialElection => "initial election",
            TakeoverReason::Rejoined => "rejoined after losing leadership",
            TakeoverReason::LeaderDeparted => "leader departed",
            TakeoverReason::PredecessorDeparted => "predecessor departed",
            TakeoverReason::ForcedTakeover => "forced takeover: leader heartbeat stale",
            TakeoverReason::LeaderProcessGone => "leader process gone: connection refused",
        }
    }

    /// Whether this reason replaced a working leader.
    pub fn kind(self) -> TakeoverKind {
        match self {
            TakeoverReason::InitialElection => TakeoverKind::Initial,
            TakeoverReason::Rejoined => TakeoverKind::Rejoin,
            TakeoverReason::LeaderDeparted
            | TakeoverReason::PredecessorDeparted
            | TakeoverReason::ForcedTakeover
            | TakeoverReason::LeaderProcessGone => TakeoverKind::Failover,
        }
    }
}

impl TakeoverKind {
    /// The `kind` label of `failover_events_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            TakeoverKind::Initial => "initial",
            TakeoverKind::Rejoin => "rejoin",
            TakeoverKind::Failover => "failover",
        }
    }
}

impl fmt::Display for TakeoverReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for TakeoverReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lost_leader_counts_as_a_failover() {
        let failovers: Vec<_> = TakeoverReason::ALL
            .into_iter()
            .filter(|reason| reason.kind() == TakeoverKind::Failover)
            .collect();
        assert_eq!(
            failovers,
            [
                TakeoverReason::LeaderDeparted,
                TakeoverReason::PredecessorDeparted,
                TakeoverReason::ForcedTakeover,
                TakeoverReason::LeaderProcessGone,
            ]
        );
    }

    #[test]
    fn every_reason_has_its_own_text() {
        let mut texts: Vec<_> = TakeoverReason::ALL.iter().map(|r| r.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), TakeoverReason::ALL.len());
    }
}
