//! Owns why a leadership ended: one closed set of reasons, logged by the
//! coordinator when it stands down and asserted by the election's unit tests.

use std::fmt;

/// Why this node no longer leads an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Our member znode is gone (ZooKeeper said so when asked).
    MemberGone,
    /// Our member znode's watch fired and it could not be watched again: a
    /// standby forced a takeover, or the session expired.
    MemberDeleted,
    /// The coordinator asked to resign.
    SteppedDown,
    /// A higher epoch was claimed above the database fence; the same node leads on.
    Superseded,
    /// The database fence refused our epoch and no higher one could be claimed.
    ReclaimFailed,
    /// A heartbeat was refused and ZooKeeper says our member znode is gone.
    HeartbeatRefusedMemberGone,
    /// A heartbeat was refused and ZooKeeper did not answer in time.
    HeartbeatRefusedUnconfirmed,
    /// A heartbeat was refused while we led on without a session.
    HeartbeatRefusedWithoutSession,
    /// ZooKeeper returned and another member leads.
    AnotherLeadsAfterReturn,
    /// The node is shutting down.
    ShuttingDown,
}

impl Revocation {
    /// The logged text.
    pub fn as_str(self) -> &'static str {
        match self {
            Revocation::MemberGone => "member znode is gone",
            Revocation::MemberDeleted => "member znode deleted (forced takeover or session expiry)",
            Revocation::SteppedDown => "stepped down",
            Revocation::Superseded => "epoch superseded by reclaim",
            Revocation::ReclaimFailed => "could not reclaim an epoch",
            Revocation::HeartbeatRefusedMemberGone => {
                "heartbeat refused and our member znode is gone"
            }
            Revocation::HeartbeatRefusedUnconfirmed => {
                "heartbeat refused and zookeeper cannot confirm our leadership"
            }
            Revocation::HeartbeatRefusedWithoutSession => {
                "heartbeat refused while leading without a session"
            }
            Revocation::AnotherLeadsAfterReturn => "another member leads after zookeeper returned",
            Revocation::ShuttingDown => "node shutting down",
        }
    }
}

impl fmt::Display for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
