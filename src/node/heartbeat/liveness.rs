//! Owns the rule that judges, from a standby, whether the leader ZooKeeper
//! names is alive: a decision without I/O, fed what the standby observed and
//! when, on the standby's own monotonic clock.
//!
//! The leader's heartbeat counts as progress only when its value changes while
//! it names that leader at the epoch ZooKeeper granted. The heartbeat's own
//! timestamp is never compared with this node's clock: two machines' clocks
//! disagree (NTP drift, a skewed VM), and a wall-clock rule once forced a
//! healthy leader out of a standby whose clock ran 3 s ahead. client-go's
//! leader election judges the same way ("observes timestamps captured
//! locally"). A value ZooKeeper never granted (a forged epoch, another
//! instance's record) is not progress, and neither is silence: a leader named
//! for longer than the timeout without a heartbeat of its own is missed, even
//! if it was never the first leader this node saw.
//!
//! What a standby cannot observe it does not judge: after Redis could not be
//! read, the clock restarts at the first successful read, so a Redis outage or
//! restart costs the leader no takeover.
//!
//! A takeover that brings no progress is probably not the leader's fault: a
//! Redis that serves reads but refuses writes (out of memory, a read-only
//! replica) makes every leader look hung (measured: 9 forced takeovers in 15 s).
//! Each takeover in a row after which no leader's heartbeat moved doubles the
//! staleness required for the next (up to 64 times), so such a Redis costs a
//! few takeovers, not a churn; any progress resets it.

use std::time::{Duration, Instant};

use crate::node::election::named_leader::NamedLeader;
use crate::node::heartbeat::record::HeartbeatRecord;

/// The judge's verdict on one reading of the heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to judge: no leader is named, or this node leads.
    NotJudged,
    /// The leader made progress within the timeout.
    Alive {
        /// Time since its last progress, on this node's clock.
        since_progress: Duration,
    },
    /// No progress for longer than the timeout; not yet enough misses.
    Missed {
        /// Consecutive misses so far.
        misses: u32,
        /// Time since its last progress, on this node's clock.
        since_progress: Duration,
    },
    /// Enough consecutive misses: force the takeover of this instance.
    Hung {
        /// The instance to replace.
        instance_id: String,
        /// Time since its last progress, on this node's clock.
        since_progress: Duration,
    },
}

/// The standby's judge of the leader's liveness.
#[derive(Debug, Clone)]
pub struct LeaderLiveness {
    me: String,
    timeout: Duration,
    misses_before_takeover: u32,
    leader: Option<NamedLeader>,
    /// When the named leader last showed progress (was named, or its
    /// heartbeat changed), or when observing resumed after a failed read.
    last_progress: Option<Instant>,
    last_value: Option<HeartbeatRecord>,
    read_failed: bool,
    misses: u32,
    /// Hung verdicts since the last progress of any leader.
    fruitless_takeovers: u32,
}

/// Most doublings of the staleness after fruitless takeovers.
const MAX_BACKOFF_DOUBLINGS: u32 = 6;

impl LeaderLiveness {
    /// A judge for the node `me`: a leader is hung after
    /// `misses_before_takeover` consecutive readings more than `timeout` after
    /// its last progress.
    pub fn new(me: impl Into<String>, timeout: Duration, misses_before_takeover: u32) -> Self {
        Self {
            me: me.into(),
            timeout,
            misses_before_takeover: misses_before_takeover.max(1),
            leader: None,
            last_progress: None,
            last_value: None,
            read_failed: false,
            misses: 0,
            fruitless_takeovers: 0,
        }
    }

    /// The staleness that counts as a miss now.
    fn timeout(&self) -> Duration {
        self.timeout
            .saturating_mul(1 << self.fruitless_takeovers.min(MAX_BACKOFF_DOUBLINGS))
    }

    /// ZooKeeper names `leader` (or nobody) at `now`. A different leader, or
    /// the same one at a new epoch, starts a new judgement.
    pub fn leader_named(&mut self, leader: Option<NamedLeader>, now: Instant) {
        if self.leader == leader {
            return;
        }
        self.leader = leader;
        self.last_progress = Some(now);
        self.last_value = None;
        self.misses = 0;
    }

    /// Redis could not be read: nothing was observed, so nothing is judged.
    pub fn read_failed(&mut self) {
        self.read_failed = true;
    }

    /// The heartbeat key held `stored` at `now` (`None`: no key).
    pub fn heartbeat_read(&mut self, stored: Option<HeartbeatRecord>, now: Instant) -> Verdict {
        let Some(leader) = &self.leader else {
            return Verdict::NotJudged;
        };
        if leader.instance_id == self.me {
            return Verdict::NotJudged;
        }
        let of_leader = stored.filter(|record| {
            record.instance_id == leader.instance_id && record.epoch == leader.epoch
        });
        if std::mem::take(&mut self.read_failed) {
            self.last_progress = Some(now);
            self.misses = 0;
        }
        if of_leader.is_some() && of_leader != self.last_value {
            // The first value seen of a newly named leader may be an old one
            // (it never wrote since): only a change after that is progress
            // that proves takeovers work again.
            if self.last_value.is_some() {
                self.fruitless_takeovers = 0;
            }
            self.last_value = of_leader;
            self.last_progress = Some(now);
        }
        let since_progress = now.saturating_duration_since(*self.last_progress.get_or_insert(now));
        if since_progress <= self.timeout() {
            self.misses = 0;
            return Verdict::Alive { since_progress };
        }
        self.misses += 1;
        if self.misses < self.misses_before_takeover {
            return Verdict::Missed {
                misses: self.misses,
                since_progress,
            };
        }
        self.misses = 0;
        self.fruitless_takeovers = self.fruitless_takeovers.saturating_add(1);
        Verdict::Hung {
            instance_id: leader.instance_id.clone(),
            since_progress,
        }
    }

    /// Time since the named leader's last progress at `now`, if one is named.
    pub fn since_progress(&self, now: Instant) -> Option<Duration> {
        self.leader.as_ref()?;
        Some(now.saturating_duration_since(self.last_progress?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::election::epoch::Epoch;

    const TIMEOUT: Duration = Duration::from_millis(1000);
    const CHECK: Duration = Duration::from_millis(250);

    fn leader(id: &str, epoch: i64) -> Option<NamedLeader> {
        Some(NamedLeader {
            instance_id: id.into(),
            epoch: Epoch(epoch),
        })
    }

    fn beat(timestamp_ms: i64, epoch: i64, id: &str) -> Option<HeartbeatRecord> {
        Some(HeartbeatRecord {
            timestamp_ms,
            epoch: Epoch(epoch),
            instance_id: id.into(),
        })
    }

    /// Reads `value` every CHECK from `start` for `checks` readings; returns the last verdict.
    fn read_for(
        judge: &mut LeaderLiveness,
        start: Instant,
        checks: u32,
        value: impl Fn(u32) -> Option<HeartbeatRecord>,
    ) -> (Instant, Verdict) {
        let mut now = start;
        let mut verdict = Verdict::NotJudged;
        for check in 0..checks {
            now = start + CHECK * check;
            verdict = judge.heartbeat_read(value(check), now);
            if matches!(verdict, Verdict::Hung { .. }) {
                break;
            }
        }
        (now, verdict)
    }

    #[test]
    fn a_leader_whose_heartbeat_keeps_changing_is_alive_whatever_its_timestamps_say() {
        let mut judge = LeaderLiveness::new("b", TIMEOUT, 3);
        let start = Instant::now();
        judge.leader_named(leader("a", 4), start);
        // Timestamps an hour behind this node's clock: skew, not staleness.
        let (_, verdict) = read_for(&mut judge, start, 40, |check| {
            beat(i64::from(check) - 3_600_000, 4, "a")
        });
        assert!(matches!(verdict, Verdict::Alive { .. }), "{verdict:?}");
    }

    #[test]
    fn a_heartbeat_that_stops_changing_is_missed_then_hung_after_the_timeout() {
        let mut judge = LeaderLiveness::new("b", TIMEOUT, 3);
        let start = Instant::now();
        judge.leader_named(leader("a", 4), start);
        // Written far in the future by a skewed leader, then frozen.
        let (now, verdict) = read_for(&mut judge, start, 20, |_| beat(i64::MAX, 4, "a"));
        assert_eq!(
            verdict,
            Verdict::Hung {
                instance_id: "a".into(),
                since_progress: now - start,
            }
        );
        assert!(now - start > TIMEOUT);
        assert!(now - start <= TIMEOUT + CHECK * 3);
    }

    #[test]
    fn a_named_leader_that_never_writes_its_own_heartbeat_is_missed() {
        let mut judge = LeaderLiveness::new("c", TIMEOUT, 3);
        let start = Instant::now();
        judge.leader_named(leader("a", 4), start);
        let (after_a, _) = read_for(&mut judge, start, 10, |check| {
            beat(i64::from(check), 4, "a")
        });
        // b takes over (epoch 5) and hangs at once: the key still holds a's record.
        judge.leader_named(leader("b", 5), after_a);
        let (now, verdict) = read_for(&mut judge, after_a, 20, |_| beat(9, 4, "a"));
        assert!(matches!(verdict, Verdict::Hung { ref instance_id, .. } if instance_id == "b"));
        assert!(now - after_a <= TIMEOUT + CHECK * 3);
    }

    #[test]
    fn a_forged_epoch_or_instance_is_not_progress() {
        let mut judge = LeaderLiveness::new("b", TIMEOUT, 3);
        let start = Instant::now();
        judge.leader_named(leader("a", 4), start);
        let (_, verdict) = read_for(&mut judge, start, 20, |check| {
            if check % 2 == 0 {
                beat(i64::from(check), 999_999_999, "a")
            } else {
                beat(i64::from(check), 4, "b")
            }
        });
        assert!(matches!(verdict, Verdict::Hung { .. }), "{verdict:?}");
    }

    #[test]
    fn a_failed_read_restarts_the_clock_instead_of_counting_the_outage() {
        let mut judge = LeaderLiveness::new("b", TIMEOUT, 3);
        let start = Instant::now();
        judge.leader_named(leader("a", 4), start);
        assert!(matches!(
            judge.heartbeat_read(beat(1, 4, "a"), start),
            Verdict::Alive { .. }
        ));
        judge.read_failed();
        // Redis returns empty (restarted) 5 s later: the leader gets a full timeout.
        let back = start + Duration::from_secs(5);
        assert!(matches!(
            judge.heartbeat_read(None, back),
            Verdict::Alive { .. }
        ));
        assert!(matches!(
            judge.heartbeat_read(beat(2, 4, "a"), back + CHECK),
            Verdict::Alive { .. }
        ));
    }

    #[test]
    fn this_node_never_judges_itself_nor_a_cluster_without_leader() {
        let mut judge = LeaderLiveness::new("a", TIMEOUT, 3);
        let start = Instant::now();
        assert_eq!(judge.heartbeat_read(None, start), Verdict::NotJudged);
        judge.leader_named(leader("a", 1), start);
        assert_eq!(
            judge.heartbeat_read(None, start + TIMEOUT * 10),
            Verdict::NotJudged
        );
    }

    #[test]
    fn takeovers_that_bring_no_progress_back_off_and_progress_resets_them() {
        // Redis refuses writes but serves reads: no leader ever writes.
        let mut judge = LeaderLiveness::new("z", TIMEOUT, 3);
        let mut now = Instant::now();
        let mut hung_after = Vec::new();
        for (epoch, leader_id) in ["a", "b", "c"].iter().enumerate() {
            judge.leader_named(leader(leader_id, epoch as i64 + 1), now);
            let (at, verdict) = read_for(&mut judge, now, 400, |_| beat(1, 0, "old"));
            assert!(matches!(verdict, Verdict::Hung { .. }), "{verdict:?}");
            hung_after.push(at - now);
            now = at;
        }
        assert!(hung_after[1] >= TIMEOUT * 2, "{hung_after:?}");
        assert!(hung_after[2] >= TIMEOUT * 4, "{hung_after:?}");
        // A leader whose heartbeat moves resets the backoff.
        judge.leader_named(leader("d", 9), now);
        let (after, _) = read_for(&mut judge, now, 8, |check| beat(i64::from(check), 9, "d"));
        let (hung_at, verdict) = read_for(&mut judge, after, 400, |_| beat(7, 9, "d"));
        assert!(matches!(verdict, Verdict::Hung { .. }), "{verdict:?}");
        assert!(
            hung_at - after <= TIMEOUT + CHECK * 3,
            "{:?}",
            hung_at - after
        );
    }

    #[test]
    fn a_new_epoch_of_the_same_leader_starts_a_new_judgement() {
        let mut judge = LeaderLiveness::new("b", TIMEOUT, 3);
        let start = Instant::now();
        judge.leader_named(leader("a", 4), start);
        let (now, verdict) = read_for(&mut judge, start, 6, |_| beat(1, 4, "a"));
        assert!(matches!(verdict, Verdict::Missed { .. }), "{verdict:?}");
        judge.leader_named(leader("a", 5), now);
        assert!(matches!(
            judge.heartbeat_read(beat(1, 4, "a"), now + CHECK),
            Verdict::Alive { .. }
        ));
        assert_eq!(judge.since_progress(now + CHECK), Some(CHECK));
    }
}
