//! Owns the leadership epoch: a number that only grows, claimed in ZooKeeper by
//! each new leader and carried on every leadership-bound message and write.
//!
//! Handlers drop messages of an older epoch, but what makes that safe is the
//! database fence (`leader_fence`), which refuses any commit of an older epoch
//! once a newer leader raised it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A leadership epoch. Epoch 0 means "never led".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(pub i64);

impl Epoch {
    /// The epoch before any leader.
    pub const ZERO: Epoch = Epoch(0);

    /// The epoch a new leader claims after this one; `None` past the last.
    pub fn next(self) -> Option<Epoch> {
        self.0.checked_add(1).map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
