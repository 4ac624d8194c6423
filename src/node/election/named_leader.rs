//! Owns who leads as ZooKeeper names it: the instance whose member is first,
//! and the epoch the epoch znode holds. The election reports it; the
//! heartbeat judges that leader, and the coordinator shows it.

use crate::node::election::epoch::Epoch;

/// The leader as ZooKeeper names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedLeader {
    /// Its instance id.
    pub instance_id: String,
    /// The epoch the epoch znode holds: the one it was granted.
    pub epoch: Epoch,
}
