//! Owns ZooKeeper: the election session, member znodes and the epoch znode.

pub mod election_client;
