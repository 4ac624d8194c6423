//! Owns the election's decisions: a state machine that does no I/O.
//!
//! The election's driver feeds it what happened ([`Input`]: a
//! ZooKeeper answer, a watch that fired, a command from the coordinator, a
//! timer), stamped with when it happened ([`Now`]), and performs what comes
//! back ([`Effect`]: a ZooKeeper request, a message to the coordinator, a
//! wait). Requests are answered one at a time: every request effect is
//! answered by exactly one input before anything else is fed, so the phase
//! says which answer is due. When no request is outstanding,
//! [`ElectionMachine::waiting`] says what the driver waits for.
//!
//! raft-rs is the model (`step` and `Ready`): the decisions live here with a
//! unit test per transition, the ZooKeeper client in a thin loop.

use std::fmt::Debug;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::revocation::Revocation;
use crate::node::election::epoch::Epoch;
use crate::node::election::named_leader::NamedLeader;
use crate::node::election::session::MemberInfo;
use crate::node::election::takeover_reason::TakeoverReason;

/// The first wait before a new ZooKeeper session.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait before a new ZooKeeper session.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A session that lived this long resets the wait: it failed, but not at once.
pub const RECONNECT_BACKOFF_RESET: Duration = Duration::from_secs(30);
/// Reopens in a row that did not complete a round (our member watched as
/// leader, or a follower's watches set) before a new session is opened: a
/// failure that repeats on a reopened session is not the network's.
pub const REOPENS_WITHOUT_PROGRESS: u32 = 3;

/// When an input happened, on the monotonic clock (leases, backoff) and the
/// wall clock (the detection time a failover record carries).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// This node's monotonic clock.
    pub instant: Instant,
    /// This node's wall clock.
    pub wall: DateTime<Utc>,
}

impl Now {
    /// The current time on both clocks.
    pub fn current() -> Self {
        Self {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }
}

/// What the coordinator asks of the election; `Q` carries the answer to a
/// [`Command::Confirm`].
#[derive(Debug)]
pub enum Command<Q> {
    /// Give up leadership and join again at the back of the line.
    Resign,
    /// The leader `instance_id` is hung: delete its member if it still leads.
    ForceTakeover {
        /// The instance whose heartbeat went stale.
        instance_id: String,
    },
    /// Claim an epoch above `floor`, the epoch the database fence holds.
    ReclaimAbove(Epoch),
    /// Does this node still lead under `epoch`? (Its heartbeat was refused.)
    Confirm {
        /// The epoch asked about.
        epoch: Epoch,
        /// Where the answer goes.
        reply: Q,
    },
    /// Delete our member and stop campaigning.
    Leave,
}

/// Where our member stands, as read from ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// Our member znode is not among the members.
    Absent,
    /// Our member has the lowest sequence.
    Leader,
    /// Another member leads.
    Follower(Following),
}

/// Whom a follower watches, and who leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Following {
    /// The member just before ours.
    pub predecessor: String,
    /// The member that leads.
    pub leader_member: String,
    /// What the leader's member published; `None` when unreadable.
    pub leader: Option<MemberInfo>,
}

/// Why our member znode is confirmed.
#[derive(Debug, PartialEq, Eq)]
pub enum Confirmation<Q> {
    /// The periodic proof that the session lives, sent at `sent`.
    Lease {
        /// When the request left.
        sent: Instant,
    },
    /// The coordinator's [`Command::Confirm`].
    Question(Q),
}

/// Why a member znode is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Ours, on resignation.
    Resign,
    /// Ours from an abandoned session, which still outranks us.
    StaleOwnMember,
    /// The leader's: it is hung or its process is gone.
    Takeover,
    /// Ours, on leaving.
    Leave,
}

/// A ZooKeeper request that can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// [`Effect::Join`].
    Join,
    /// [`Effect::Observe`].
    Observe,
    /// [`Effect::ClaimEpoch`].
    Claim,
    /// [`Effect::TakeOver`].
    TakeOver,
    /// [`Effect::WatchOwnMember`].
    WatchOwnMember,
    /// [`Effect::WatchFollowing`].
    WatchFollowing,
}

/// What happened.
#[derive(Debug)]
pub enum Input<Q> {
    /// PostgreSQL's schema is current: the node may campaign.
    SchemaCurrent,
    /// A session is open; the server granted `negotiated` as its timeout.
    Connected {
        /// The session timeout the server granted.
        negotiated: Duration,
    },
    /// No session could be opened (or reopened): no server answered.
    ConnectFailed,
    /// The session that ended on our side is open again: the server still
    /// held it, and with it our member. It granted `negotiated`.
    Resumed {
        /// The session timeout the server granted.
        negotiated: Duration,
    },
    /// A server answered that the session that ended is gone (expired).
    ResumeRefused,
    /// The backoff wait ended.
    BackoffElapsed,
    /// Our member znode was created.
    Joined {
        /// Its child name.
        member: String,
    },
    /// The members were read.
    Observed(Observation),
    /// An epoch was claimed; the request left at `sent`.
    EpochClaimed {
        /// The claimed epoch.
        epoch: Epoch,
        /// When the claim left (the lease counts from then).
        sent: Instant,
    },
    /// A claim was refused: our member znode is gone.
    NotMember,
    /// A takeover was refused: our member or the one to delete is gone.
    TakeoverRefused,
    /// A watch on our member znode is set.
    OwnMemberWatched,
    /// Our member znode is gone (found when setting its watch).
    OwnMemberGone,
    /// The watch on our member znode fired.
    OwnMemberChanged,
    /// A follower's watches are set; the epoch znode holds `epoch` (`None`:
    /// not an epoch).
    FollowWatchesSet {
        /// The current epoch, when the znode holds one.
        epoch: Option<Epoch>,
    },
    /// Our predecessor's member znode is gone.
    PredecessorGone,
    /// The leader's member znode or the epoch changed.
    LeaderChanged,
    /// The leader's process is proven gone (its address refused us).
    LeaderProcessGone,
    /// ZooKeeper answered a confirmation; `None` when it did not in time.
    Confirmed {
        /// Why it was asked.
        purpose: Confirmation<Q>,
        /// Whether our member exists.
        answer: Option<bool>,
    },
    /// A member znode was deleted (`ok`) or could not be.
    Deleted {
        /// Why it was deleted.
        purpose: Deletion,
        /// Whether it is gone.
        ok: bool,
        /// Whether this request deleted it (not: it was gone already).
        by_us: bool,
    },
    /// A request failed.
    Failed(Request),
    /// The session ended: expired (on the server's word, or the client's
    /// when no server answered for 7/5 of its timeout), closed or refused.
    SessionEnded,
    /// Time to prove the session alive again (a third of its timeout).
    ConfirmDue,
    /// The coordinator asked something.
    Command(Command<Q>),
    /// The coordinator is gone.
    CommandsClosed,
}

/// Leadership granted, as the coordinator is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The claimed epoch.
    pub epoch: Epoch,
    /// Why this node leads.
    pub reason: TakeoverReason,
    /// When the previous leader's loss was detected.
    pub detected_at: DateTime<Utc>,
    /// The previous leader, when known.
    pub previous_leader: Option<String>,
    /// Until when ZooKeeper vouched for the session: the claim's send time
    /// plus the negotiated session timeout.
    pub lease_until: Instant,
}

/// What the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Effect<Q> {
    /// Open a session; answer [`Input::Connected`] or [`Input::ConnectFailed`].
    Connect,
    /// Reopen the session that ended; answer [`Input::Resumed`],
    /// [`Input::ResumeRefused`] or [`Input::ConnectFailed`].
    Resume,
    /// Drop the session: an attached one closes, and its ephemeral members go
    /// with it; a reopened (detached) one lives until the server expires it.
    CloseSession,
    /// Wait this long, then answer [`Input::BackoffElapsed`].
    Sleep(Duration),
    /// Create our member; answer [`Input::Joined`].
    Join,
    /// Read the members; answer [`Input::Observed`].
    Observe {
        /// Our member.
        member: String,
    },
    /// Claim the epoch after both the stored one and `floor`, if `member`
    /// still exists; answer [`Input::EpochClaimed`] or [`Input::NotMember`].
    ClaimEpoch {
        /// Our member.
        member: String,
        /// The epoch to claim above.
        floor: Epoch,
    },
    /// Delete `leader_member`, the member just before ours, and claim the
    /// epoch after both the stored one and `floor`, in one multi-op that
    /// also checks `member` exists; answer [`Input::EpochClaimed`],
    /// [`Input::TakeoverRefused`] or a failure.
    TakeOver {
        /// Our member.
        member: String,
        /// The member taken over from.
        leader_member: String,
        /// The epoch to claim above.
        floor: Epoch,
    },
    /// Watch our member; answer [`Input::OwnMemberWatched`] or
    /// [`Input::OwnMemberGone`], and [`Input::OwnMemberChanged`] when it fires.
    WatchOwnMember {
        /// Our member.
        member: String,
    },
    /// Watch our predecessor, the leader's member (when it is not our
    /// predecessor) and the epoch; also the leader's process when it is
    /// `next_in_line`'s. Answer [`Input::FollowWatchesSet`],
    /// [`Input::PredecessorGone`] or [`Input::LeaderChanged`].
    WatchFollowing {
        /// The member just before ours.
        predecessor: String,
        /// The leader's member, when not our predecessor.
        leader_member: Option<String>,
        /// The leader, when we are next in line: hold its presence.
        next_in_line: Option<MemberInfo>,
    },
    /// Ask ZooKeeper, within a bound, whether `member` exists; answer [`Input::Confirmed`].
    Confirm {
        /// The member.
        member: String,
        /// Why.
        purpose: Confirmation<Q>,
    },
    /// Delete a member znode; answer [`Input::Deleted`].
    Delete {
        /// The member.
        member: String,
        /// Why.
        purpose: Deletion,
    },
    /// Tell the coordinator it leads.
    Grant(Grant),
    /// Tell the coordinator it no longer leads `epoch`.
    Revoke {
        /// The epoch that ended.
        epoch: Epoch,
        /// Why.
        why: Revocation,
    },
    /// Tell the coordinator ZooKeeper vouched for its leadership until `valid_until`.
    ConfirmLease {
        /// The epoch led.
        epoch: Epoch,
        /// When the proving request left.
        sent: Instant,
        /// Its send time plus the negotiated session timeout.
        valid_until: Instant,
    },
    /// Tell the coordinator who leads (`None`: nobody known).
    ObserveLeader(Option<NamedLeader>),
    /// Answer a [`Command::Confirm`].
    Answer {
        /// Where the answer goes.
        reply: Q,
        /// The answer.
        yes: bool,
    },
    /// Count a forced takeover (`forced_takeovers_total`).
    CountForcedTakeover,
    /// Stop campaigning; tell whoever asked us to leave.
    Stop,
}

/// What the driver waits for when no request is outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The schema to be current (and commands).
    Schema,
    /// The backoff sleep (and commands).
    Backoff,
    /// Our member's watch, the session's end, the lease tick (and commands).
    Leading,
    /// The follower's watches, the leader's presence, the session's end (and commands).
    Following,
    /// A request's answer: nothing to wait for.
    Answer,
    /// Nothing ever again.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    AwaitingSchema,
    Backoff,
    Connecting,
    /// Reopening the session that ended, in which we were `member`.
    Resuming {
        member: String,
    },
    /// The session reopened; reading where `member` stands. If it still
    /// leads, the epoch held meanwhile is led on.
    Resumed {
        member: String,
    },
    Joining,
    /// Joined as `member`, between two answers (observing, deleting).
    Member {
        member: String,
    },
    Claiming {
        member: String,
    },
    /// Deleting the member before ours and claiming, in one request.
    TakingOver {
        member: String,
    },
    Leading {
        member: String,
        epoch: Epoch,
        /// A watch on our member was set once: later failures to set it
        /// mean it was deleted, not that the first request failed.
        watched: bool,
    },
    Following {
        member: String,
        predecessor: String,
        leader_member: String,
        /// The leader's instance id, when its member is readable.
        leader: Option<String>,
    },
    /// Deleting our member to leave; revoke `epoch` once done.
    Leaving {
        epoch: Option<Epoch>,
    },
    Stopped,
}

/// Why the next leader will lead, and since when its predecessor is gone.
#[derive(Debug, Clone)]
struct Succession {
    reason: TakeoverReason,
    detected_at: DateTime<Utc>,
    previous_leader: Option<String>,
}

/// This node's election, as decisions.
#[derive(Debug, Clone)]
pub struct ElectionMachine {
    instance_id: String,
    phase: Phase,
    /// An epoch we lead under while our ZooKeeper session is gone: given up
    /// when the next session finds another member first, replaced when it
    /// finds us first.
    held: Option<Epoch>,
    /// The member `held` was led under: only that member may lead on under
    /// it (a newer member of ours may find itself first after another node
    /// claimed and left).
    held_member: Option<String>,
    succession: Succession,
    /// Our member in a session we did not mean to give up: it ended by
    /// itself, or a request on it failed. Often the client gave it up (no
    /// server answered for 7/5 of its timeout), which is its guess, not the
    /// server's word: the next session tries to reopen it first, and a
    /// restarted server counts each session's timeout afresh, so it often
    /// still lives. (A session the server expired costs one refused try; one
    /// the driver cannot reopen safely, none.)
    resumable: Option<String>,
    /// The database fence's epoch, when a takeover found it above the epoch
    /// held without a session: the next claim goes above it (a resumed
    /// session must not lead on under the fenced epoch).
    reclaim_above: Option<Epoch>,
    /// Sessions reopened since a round last completed.
    reopens: u32,
    backoff: Duration,
    connected_at: Option<Instant>,
    negotiated: Duration,
}

impl ElectionMachine {
    /// The election of `instance_id`, waiting for the schema; `now` stamps
    /// the initial election's detection time.
    pub fn new(instance_id: String, now: Now) -> Self {
        Self {
            instance_id,
            phase: Phase::AwaitingSchema,
            held: None,
            held_member: None,
            succession: Succession {
                reason: TakeoverReason::InitialElection,
                detected_at: now.wall,
                previous_leader: None,
            },
            resumable: None,
            reclaim_above: None,
            reopens: 0,
            backoff: RECONNECT_BACKOFF_MIN,
            connected_at: None,
            negotiated: Duration::ZERO,
        }
    }

    /// The driver died and a new one starts: its session is gone, so an
    /// epoch it led under is held (revoked if the next session finds another
    /// leader), and the campaign begins again.
    /// What it saw before is no longer a reason: a node that led has lost
    /// leadership, and one that followed starts a fresh campaign.
    pub fn restart(&mut self, now: Now) {
        if let Phase::Leading { epoch, .. } = self.phase {
            self.held = Some(epoch);
            self.held_member = None;
            self.lost_leadership(now);
        } else {
            self.succession.reason = TakeoverReason::InitialElection;
            self.succession.detected_at = now.wall;
        }
        // The old driver's session went with it.
        self.resumable = None;
        self.reclaim_above = None;
        self.backoff = RECONNECT_BACKOFF_MIN;
        self.connected_at = None;
        self.phase = Phase::AwaitingSchema;
    }

    /// What the driver waits for when no request is outstanding.
    pub fn waiting(&self) -> Wait {
        match self.phase {
            Phase::AwaitingSchema => Wait::Schema,
            Phase::Backoff => Wait::Backoff,
            Phase::Leading { .. } => Wait::Leading,
            Phase::Following { .. } => Wait::Following,
            Phase::Stopped => Wait::Stopped,
            Phase::Connecting
            | Phase::Resuming { .. }
            | Phase::Resumed { .. }
            | Phase::Joining
            | Phase::Member { .. }
            | Phase::Claiming { .. }
            | Phase::TakingOver { .. }
            | Phase::Leaving { .. } => Wait::Answer,
        }
    }

    /// The negotiated session timeout of the current (or last) session.
    pub fn session_timeout(&self) -> Duration {
        self.negotiated
    }

    /// Feeds one input; returns what to do, in order.
    pub fn step<Q: Debug>(&mut self, input: Input<Q>, now: Now) -> Vec<Effect<Q>> {
        let mut out = Vec::new();
        // A copy, so that a panic midway leaves the phase as it was (and a
        // restart still knows the epoch it led under).
        let phase = self.phase.clone();
        self.phase = match input {
            Input::Command(command) => self.command(phase, command, now, &mut out),
            Input::CommandsClosed => self.stop(&mut out),
            input => self.event(phase, input, now, &mut out),
        };
        out
    }

    fn event<Q: Debug>(
        &mut self,
        phase: Phase,
        input: Input<Q>,
        now: Now,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        match (phase, input) {
            (Phase::Stopped, _) => Phase::Stopped,
            (Phase::AwaitingSchema, Input::SchemaCurrent) => {
                // A node may wait hours for its schema: the initial
                // election's clock starts when it may campaign.
                if self.succession.reason == TakeoverReason::InitialElection {
                    self.succession.detected_at = now.wall;
                }
                out.push(Effect::Connect);
                Phase::Connecting
            }
            (Phase::Backoff, Input::BackoffElapsed) => match self.resumable.take() {
                Some(member) => {
                    out.push(Effect::Resume);
                    Phase::Resuming { member }
                }
                None => {
                    out.push(Effect::Connect);
                    Phase::Connecting
                }
            },
            (Phase::Connecting, Input::Connected { negotiated }) => {
                self.reopens = 0;
                self.connected_at = Some(now.instant);
                self.negotiated = negotiated;
                join(out)
            }
            (Phase::Connecting, Input::ConnectFailed) => self.back_off(out),
            (Phase::Resuming { member }, Input::Resumed { negotiated }) => {
                tracing::info!(%member, "zookeeper kept our session: reopened it");
                self.reopens += 1;
                self.connected_at = Some(now.instant);
                self.negotiated = negotiated;
                out.push(Effect::Observe {
                    member: member.clone(),
                });
                Phase::Resumed { member }
            }
            (Phase::Resuming { .. }, Input::ResumeRefused) => {
                tracing::info!("the session cannot be reopened (expired, or closed when dropped); opening a new one");
                out.push(Effect::Connect);
                Phase::Connecting
            }
            (Phase::Resuming { member }, Input::ConnectFailed) => {
                self.resumable = Some(member);
                // A server keeps the session one timeout after it last heard
                // from us, or after it restarted: try often enough within it.
                self.back_off_within(self.negotiated / 4, out)
            }
            (Phase::Resumed { member }, Input::Observed(Observation::Leader)) => {
                let leads_on = self.reclaim_above.is_none()
                    && self.held_member.as_deref() == Some(member.as_str());
                match self.held.filter(|_| leads_on) {
                    Some(epoch) => {
                        self.held = None;
                        self.lead_on_held(member, epoch, out)
                    }
                    None => self.observed(member, Observation::Leader, out),
                }
            }
            (Phase::Resumed { member }, Input::Observed(observation)) => {
                self.observed(member, observation, out)
            }
            (Phase::Joining, Input::Joined { member }) => observe(member, out),
            (Phase::Member { member }, Input::Observed(observation)) => {
                self.observed(member, observation, out)
            }
            (
                Phase::Member { member },
                Input::Deleted {
                    purpose: Deletion::StaleOwnMember,
                    ok: true,
                    ..
                },
            ) => observe(member, out),
            (
                Phase::Member { .. },
                Input::Deleted {
                    purpose: Deletion::Resign,
                    ok: true,
                    ..
                },
            ) => join(out),
            (Phase::Claiming { .. }, Input::NotMember) => join(out),
            (Phase::Claiming { member }, Input::EpochClaimed { epoch, sent }) => {
                self.acquired(member, epoch, sent, out)
            }
            (Phase::TakingOver { member }, Input::EpochClaimed { epoch, sent }) => {
                out.push(Effect::CountForcedTakeover);
                self.reclaim_above = None;
                self.acquired(member, epoch, sent, out)
            }
            // Someone else decided first (the leader's session expired, or
            // another standby forced it out), or we are no longer a member:
            // a fresh read of the members says which.
            (Phase::TakingOver { member }, Input::TakeoverRefused) => observe(member, out),
            (phase @ Phase::Leading { .. }, input) => self.leading(phase, input, now, out),
            (phase @ Phase::Following { .. }, input) => self.following(phase, input, now, out),
            (
                Phase::Leaving { epoch },
                Input::Deleted {
                    purpose: Deletion::Leave,
                    ..
                },
            ) => {
                if let Some(epoch) = epoch {
                    revoke(epoch, Revocation::ShuttingDown, out);
                }
                self.stop(out)
            }
            (phase, input) => self.unexpected(phase, input, now, out),
        }
    }

    fn leading<Q: Debug>(
        &mut self,
        phase: Phase,
        input: Input<Q>,
        now: Now,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        let Phase::Leading {
            member,
            epoch,
            watched,
        } = &phase
        else {
            return self.unexpected(phase, input, now, out);
        };
        let (member, epoch, watched) = (member.clone(), *epoch, *watched);
        match input {
            Input::OwnMemberWatched | Input::OwnMemberChanged => {
                self.reopens = 0;
                if matches!(input, Input::OwnMemberChanged) {
                    out.push(Effect::WatchOwnMember {
                        member: member.clone(),
                    });
                }
                Phase::Leading {
                    member,
                    epoch,
                    watched: true,
                }
            }
            Input::OwnMemberGone if !watched => {
                self.end_leadership(epoch, Revocation::MemberGone, now, out)
            }
            Input::OwnMemberGone | Input::Failed(Request::WatchOwnMember) if watched => {
                self.end_leadership(epoch, Revocation::MemberDeleted, now, out)
            }
            // The first watch could not even be set: ZooKeeper is unreachable,
            // not proven to have deleted us. Lead on under the database fence,
            // and keep the member if the session can be reopened.
            Input::Failed(Request::WatchOwnMember) | Input::SessionEnded => {
                self.hold(epoch, &member, now);
                self.reconnect_keeping(member, now, out)
            }
            Input::ConfirmDue => {
                out.push(Effect::Confirm {
                    member,
                    purpose: Confirmation::Lease { sent: now.instant },
                });
                phase
            }
            Input::Confirmed {
                purpose: Confirmation::Lease { sent },
                answer,
            } => match answer {
                Some(true) => {
                    out.push(Effect::ConfirmLease {
                        epoch,
                        sent,
                        valid_until: sent + self.negotiated,
                    });
                    phase
                }
                Some(false) => self.end_leadership(epoch, Revocation::MemberGone, now, out),
                None => {
                    tracing::debug!(%epoch, "zookeeper did not confirm the session in time");
                    phase
                }
            },
            Input::Confirmed {
                purpose: Confirmation::Question(reply),
                answer,
            } => {
                out.push(Effect::Answer {
                    reply,
                    yes: answer == Some(true),
                });
                match answer {
                    Some(true) => phase,
                    Some(false) => {
                        self.end_leadership(epoch, Revocation::HeartbeatRefusedMemberGone, now, out)
                    }
                    // ZooKeeper cannot vouch for us: step down, and drop the
                    // session rather than delete the member over a connection
                    // that does not answer (a reopened, detached session then
                    // keeps the member until the server expires it).
                    None => {
                        revoke(epoch, Revocation::HeartbeatRefusedUnconfirmed, out);
                        self.lost_leadership(now);
                        self.reconnect(now, out)
                    }
                }
            }
            Input::EpochClaimed {
                epoch: claimed,
                sent,
            } => {
                tracing::info!(%claimed, previous = %epoch, "reclaimed an epoch above the database fence");
                revoke(epoch, Revocation::Superseded, out);
                // The same node leads on: no failover.
                self.succession.reason = TakeoverReason::Rejoined;
                self.grant(claimed, sent, out);
                Phase::Leading {
                    member,
                    epoch: claimed,
                    watched,
                }
            }
            Input::NotMember | Input::Failed(Request::Claim) => {
                self.end_leadership(epoch, Revocation::ReclaimFailed, now, out)
            }
            input => self.unexpected(phase, input, now, out),
        }
    }

    fn following<Q: Debug>(
        &mut self,
        phase: Phase,
        input: Input<Q>,
        now: Now,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        let Phase::Following {
            member,
            predecessor,
            leader_member,
            leader,
        } = &phase
        else {
            return self.unexpected(phase, input, now, out);
        };
        match input {
            Input::FollowWatchesSet { epoch } => {
                self.reopens = 0;
                out.push(Effect::ObserveLeader(
                    leader
                        .clone()
                        .zip(epoch)
                        .map(|(instance_id, epoch)| NamedLeader { instance_id, epoch }),
                ));
                phase
            }
            Input::PredecessorGone => {
                self.succession.detected_at = now.wall;
                self.succession.reason = if predecessor == leader_member {
                    TakeoverReason::LeaderDeparted
                } else {
                    TakeoverReason::PredecessorDeparted
                };
                observe(member.clone(), out)
            }
            Input::LeaderChanged => observe(member.clone(), out),
            Input::LeaderProcessGone => {
                tracing::warn!(?leader, %leader_member, "the leader's process is gone (its address refused us); forcing the takeover");
                self.force_takeover(
                    TakeoverReason::LeaderProcessGone,
                    member,
                    predecessor,
                    leader_member,
                    now,
                    out,
                )
                .unwrap_or(phase)
            }
            // Counted once per leader forced out: by the node whose request
            // deleted its member, not by every standby that judged it.
            Input::Deleted {
                purpose: Deletion::Takeover,
                ok,
                by_us,
            } => {
                if ok && by_us {
                    out.push(Effect::CountForcedTakeover);
                }
                observe(member.clone(), out)
            }
            Input::SessionEnded => self.reconnect_keeping(member.clone(), now, out),
            input => self.unexpected(phase, input, now, out),
        }
    }

    fn command<Q: Debug>(
        &mut self,
        phase: Phase,
        command: Command<Q>,
        now: Now,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        match (&phase, command) {
            (Phase::Stopped, _) => phase,
            (Phase::Leading { member, epoch, .. }, Command::Resign) => {
                revoke(*epoch, Revocation::SteppedDown, out);
                self.lost_leadership(now);
                out.push(Effect::Delete {
                    member: member.clone(),
                    purpose: Deletion::Resign,
                });
                Phase::Member {
                    member: member.clone(),
                }
            }
            (Phase::Leading { member, .. }, Command::ReclaimAbove(floor)) => {
                out.push(Effect::ClaimEpoch {
                    member: member.clone(),
                    floor,
                });
                phase
            }
            (
                Phase::Leading { member, epoch, .. },
                Command::Confirm {
                    epoch: claimed,
                    reply,
                },
            ) => {
                if claimed == *epoch {
                    out.push(Effect::Confirm {
                        member: member.clone(),
                        purpose: Confirmation::Question(reply),
                    });
                } else {
                    out.push(Effect::Answer { reply, yes: false });
                }
                phase
            }
            (Phase::Leading { member, epoch, .. }, Command::Leave) => {
                out.push(Effect::Delete {
                    member: member.clone(),
                    purpose: Deletion::Leave,
                });
                Phase::Leaving {
                    epoch: Some(*epoch),
                }
            }
            (
                Phase::Following {
                    member,
                    predecessor,
                    leader: Some(leader),
                    leader_member,
                },
                Command::ForceTakeover { instance_id },
            ) if *leader == instance_id => {
                tracing::warn!(leader = %instance_id, member = %leader_member, "forcing a takeover from a hung leader");
                self.force_takeover(
                    TakeoverReason::ForcedTakeover,
                    member,
                    predecessor,
                    leader_member,
                    now,
                    out,
                )
                .unwrap_or(phase)
            }
            (Phase::Following { member, .. }, Command::Leave) => {
                out.push(Effect::Delete {
                    member: member.clone(),
                    purpose: Deletion::Leave,
                });
                Phase::Leaving { epoch: None }
            }
            // A follower's watches are re-armed after any other command: the
            // leader may have changed while it was answered.
            (Phase::Following { member, .. }, command) => {
                if let Command::Confirm { epoch, reply } = command {
                    self.refuse_confirmation(epoch, reply, out);
                }
                observe(member.clone(), out)
            }
            (_, Command::Leave) => self.stop(out),
            (_, Command::Confirm { epoch, reply }) => {
                self.refuse_confirmation(epoch, reply, out);
                phase
            }
            // Without a session, the coordinator's word still counts for the
            // epoch held: the next session must not lead on under it.
            (_, Command::Resign) if self.held.is_some() => {
                if let Some(held) = self.held.take() {
                    revoke(held, Revocation::SteppedDown, out);
                }
                self.resumable = None;
                phase
            }
            (_, Command::ReclaimAbove(floor)) if self.held.is_some() => {
                self.reclaim_above = self.reclaim_above.max(Some(floor));
                phase
            }
            (_, Command::Resign | Command::ReclaimAbove(_) | Command::ForceTakeover { .. }) => {
                phase
            }
        }
    }

    /// Forces the leader `leader_member` out for `reason`. The next in line
    /// deletes it and claims in one request, and is then taking over (the
    /// phase returned): members are sequential, so none can appear before
    /// ours, and with the leader gone ours is first. Any other follower
    /// deletes it, counts the deletion and reads the members again (its
    /// predecessor is still ahead of it), following meanwhile (`None`).
    fn force_takeover<Q>(
        &mut self,
        reason: TakeoverReason,
        member: &str,
        predecessor: &str,
        leader_member: &str,
        now: Now,
        out: &mut Vec<Effect<Q>>,
    ) -> Option<Phase> {
        self.succession.reason = reason;
        self.succession.detected_at = now.wall;
        if predecessor == leader_member {
            out.push(Effect::TakeOver {
                member: member.to_owned(),
                leader_member: leader_member.to_owned(),
                floor: self.reclaim_above.unwrap_or(Epoch::ZERO),
            });
            return Some(Phase::TakingOver {
                member: member.to_owned(),
            });
        }
        out.push(Effect::Delete {
            member: leader_member.to_owned(),
            purpose: Deletion::Takeover,
        });
        None
    }

    /// `member` claimed `epoch` (the claim left at `sent`): it leads.
    fn acquired<Q>(
        &mut self,
        member: String,
        epoch: Epoch,
        sent: Instant,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        self.held = None;
        tracing::info!(%epoch, %member, reason = %self.succession.reason, "acquired leadership");
        self.grant(epoch, sent, out);
        out.push(Effect::WatchOwnMember {
            member: member.clone(),
        });
        Phase::Leading {
            member,
            epoch,
            watched: false,
        }
    }

    /// Decides what a read of the members means for our member.
    fn observed<Q>(
        &mut self,
        member: String,
        observation: Observation,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        match observation {
            Observation::Absent => join(out),
            Observation::Leader => {
                out.push(Effect::ClaimEpoch {
                    member: member.clone(),
                    floor: self.reclaim_above.take().unwrap_or(Epoch::ZERO),
                });
                Phase::Claiming { member }
            }
            Observation::Follower(following)
                if following.leader.as_ref().map(|info| &info.instance_id)
                    == Some(&self.instance_id) =>
            {
                // Our own member from an abandoned session, not yet expired
                // by the server: it must not outrank us.
                out.push(Effect::Delete {
                    member: following.leader_member,
                    purpose: Deletion::StaleOwnMember,
                });
                Phase::Member { member }
            }
            Observation::Follower(_) if self.held.is_some() => {
                if let Some(held) = self.held.take() {
                    revoke(held, Revocation::AnotherLeadsAfterReturn, out);
                }
                observe(member, out)
            }
            Observation::Follower(Following {
                predecessor,
                leader_member,
                leader,
            }) => {
                let instance = leader.as_ref().map(|info| info.instance_id.clone());
                if instance.is_some() {
                    self.succession.previous_leader = instance.clone();
                }
                // Only the next in line holds the leader's presence: it is the
                // one to take over, so one connection per leader.
                let next_in_line = if predecessor == leader_member {
                    leader
                } else {
                    None
                };
                out.push(Effect::WatchFollowing {
                    predecessor: predecessor.clone(),
                    leader_member: (leader_member != predecessor).then(|| leader_member.clone()),
                    next_in_line,
                });
                Phase::Following {
                    member,
                    predecessor,
                    leader_member,
                    leader: instance,
                }
            }
        }
    }

    /// Answers a [`Command::Confirm`] when this node does not lead: no. If
    /// the question is about the epoch held without a session, that
    /// leadership ends now (its heartbeat was refused: a newer leader exists).
    fn refuse_confirmation<Q>(&mut self, claimed: Epoch, reply: Q, out: &mut Vec<Effect<Q>>) {
        out.push(Effect::Answer { reply, yes: false });
        if self.held == Some(claimed) {
            self.held = None;
            revoke(claimed, Revocation::HeartbeatRefusedWithoutSession, out);
        }
    }

    fn grant<Q>(&self, epoch: Epoch, sent: Instant, out: &mut Vec<Effect<Q>>) {
        out.push(Effect::ObserveLeader(Some(NamedLeader {
            instance_id: self.instance_id.clone(),
            epoch,
        })));
        out.push(Effect::Grant(Grant {
            epoch,
            reason: self.succession.reason,
            detected_at: self.succession.detected_at,
            previous_leader: self.succession.previous_leader.clone(),
            // What ZooKeeper granted, not what was asked: a server clamps the
            // session to its own bounds, and a lease on the asked value would
            // outlive the real session.
            lease_until: sent + self.negotiated,
        }));
    }

    /// The reopened session's member still leads: lead on under `epoch`,
    /// held meanwhile, without a new claim (no takeover, no new fence). Nobody
    /// claimed since: a member claims only while it is first, a forced
    /// takeover deletes the leader's member first, and ours, older than any
    /// member that could have been first, lived on in the same session. The
    /// read that found it first follows a successful `sync` (a reopen fails
    /// without one), ZooKeeper's own recipe level of freshness, which is not
    /// linearizable: a server that lost its leader right after the sync could
    /// still serve an older view. The database fence guards the commits
    /// should that ever happen; the lease would be wrong until the next
    /// confirmation fails.
    fn lead_on_held<Q>(&mut self, member: String, epoch: Epoch, out: &mut Vec<Effect<Q>>) -> Phase {
        tracing::info!(%epoch, %member, "leading on: zookeeper kept our session and member");
        out.push(Effect::ObserveLeader(Some(NamedLeader {
            instance_id: self.instance_id.clone(),
            epoch,
        })));
        out.push(Effect::WatchOwnMember {
            member: member.clone(),
        });
        Phase::Leading {
            member,
            epoch,
            watched: false,
        }
    }

    /// Leadership of `epoch` ends for `why`; the node joins again as a fresh
    /// member, at the back of the line.
    fn end_leadership<Q>(
        &mut self,
        epoch: Epoch,
        why: Revocation,
        now: Now,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        revoke(epoch, why, out);
        self.lost_leadership(now);
        join(out)
    }

    /// Our session is gone while leading `member`: lead on under `epoch`
    /// (the database fence refuses it once a successor takes over) until the
    /// next session decides.
    fn hold(&mut self, epoch: Epoch, member: &str, now: Now) {
        tracing::warn!(%epoch, "zookeeper session lost while leading; leading on under the database fence until a new session decides");
        self.held = Some(epoch);
        self.held_member = Some(member.to_owned());
        self.lost_leadership(now);
    }

    /// Whatever ended it, leadership was lost now: if this node wins again,
    /// it rejoined, and nobody failed over.
    fn lost_leadership(&mut self, now: Now) {
        self.succession = Succession {
            reason: TakeoverReason::Rejoined,
            detected_at: now.wall,
            previous_leader: Some(self.instance_id.clone()),
        };
    }

    /// Drops the session and waits before the next one. Every reconnect
    /// waits: a session that keeps failing at once (a foreign znode, a
    /// refused operation) must not open thousands of sessions against a
    /// shared server. Only a session that lived long resets the wait.
    fn reconnect<Q>(&mut self, now: Now, out: &mut Vec<Effect<Q>>) -> Phase {
        self.drop_session(now, out);
        self.back_off(out)
    }

    /// Drops the session but keeps `member`: the next session reopens this
    /// one if the driver can, soon enough that a server still holds it
    /// (within a quarter of its timeout). After [`REOPENS_WITHOUT_PROGRESS`]
    /// reopens that completed no round, a new session instead.
    fn reconnect_keeping<Q>(
        &mut self,
        member: String,
        now: Now,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        if self.reopens >= REOPENS_WITHOUT_PROGRESS {
            tracing::warn!(%member, reopens = self.reopens, "reopened sessions keep failing; opening a new one");
            self.reopens = 0;
            return self.reconnect(now, out);
        }
        self.drop_session(now, out);
        self.resumable = Some(member);
        self.back_off_within(self.negotiated / 4, out)
    }

    fn drop_session<Q>(&mut self, now: Now, out: &mut Vec<Effect<Q>>) {
        if self
            .connected_at
            .take()
            .is_some_and(|at| now.instant.saturating_duration_since(at) > RECONNECT_BACKOFF_RESET)
        {
            self.backoff = RECONNECT_BACKOFF_MIN;
        }
        self.resumable = None;
        out.push(Effect::CloseSession);
        out.push(Effect::ObserveLeader(None));
    }

    fn back_off<Q>(&mut self, out: &mut Vec<Effect<Q>>) -> Phase {
        self.back_off_within(RECONNECT_BACKOFF_MAX, out)
    }

    /// Waits the current backoff, at most `longest` (never below the first
    /// wait), and doubles it for the next time.
    fn back_off_within<Q>(&mut self, longest: Duration, out: &mut Vec<Effect<Q>>) -> Phase {
        out.push(Effect::Sleep(
            self.backoff.min(longest).max(RECONNECT_BACKOFF_MIN),
        ));
        self.backoff = (self.backoff * 2).min(RECONNECT_BACKOFF_MAX);
        Phase::Backoff
    }

    fn stop<Q>(&mut self, out: &mut Vec<Effect<Q>>) -> Phase {
        if self.connected_at.take().is_some() {
            out.push(Effect::CloseSession);
            out.push(Effect::ObserveLeader(None));
        }
        out.push(Effect::Stop);
        Phase::Stopped
    }

    /// An answer the phase did not ask for (the driver and the machine
    /// disagree about the session: start a fresh one), or a failed request
    /// (keep our member if the session can be reopened).
    fn unexpected<Q: Debug>(
        &mut self,
        phase: Phase,
        input: Input<Q>,
        now: Now,
        out: &mut Vec<Effect<Q>>,
    ) -> Phase {
        if !matches!(input, Input::Failed(_) | Input::Deleted { ok: false, .. }) {
            tracing::error!(
                ?phase,
                ?input,
                "election input the phase did not expect; reconnecting"
            );
        }
        // A failed request leaves the session alive as far as we know: the
        // next one reopens it if the driver can (it cannot once it dropped a
        // live session it would close), so our member keeps its place.
        let kept = match (&phase, &input) {
            (
                Phase::Leading { member, .. }
                | Phase::Following { member, .. }
                | Phase::TakingOver { member }
                | Phase::Member { member }
                | Phase::Resumed { member },
                Input::Failed(_),
            ) => Some(member.clone()),
            _ => None,
        };
        if let Phase::Leading { epoch, member, .. } = &phase {
            self.hold(*epoch, member, now);
        }
        match (phase, kept) {
            (Phase::Connecting, _) => self.back_off(out),
            (_, Some(member)) => self.reconnect_keeping(member, now, out),
            (_, None) => self.reconnect(now, out),
        }
    }
}

fn join<Q>(out: &mut Vec<Effect<Q>>) -> Phase {
    out.push(Effect::Join);
    Phase::Joining
}

fn observe<Q>(member: String, out: &mut Vec<Effect<Q>>) -> Phase {
    out.push(Effect::Observe {
        member: member.clone(),
    });
    Phase::Member { member }
}

fn revoke<Q>(epoch: Epoch, why: Revocation, out: &mut Vec<Effect<Q>>) {
    tracing::warn!(%epoch, %why, "leadership revoked");
    out.push(Effect::Revoke { epoch, why });
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use proptest::prelude::*;

    use super::*;

    /// The reply token of a question: its name.
    type Q = &'static str;

    const SESSION: Duration = Duration::from_millis(400);

    struct Harness {
        machine: ElectionMachine,
        base: Instant,
        wall: DateTime<Utc>,
        elapsed: Duration,
    }

    impl Harness {
        fn new() -> Self {
            let base = Instant::now();
            let wall = Utc::now();
            Self {
                machine: ElectionMachine::new(
                    "a".into(),
                    Now {
                        instant: base,
                        wall,
                    },
                ),
                base,
                wall,
                elapsed: Duration::ZERO,
            }
        }

        fn now(&self) -> Now {
            Now {
                instant: self.base + self.elapsed,
                wall: self.wall + chrono::Duration::from_std(self.elapsed).unwrap_or_default(),
            }
        }

        fn advance(&mut self, by: Duration) {
            self.elapsed += by;
        }

        /// One step, checked for the driver's contract: at most one request,
        /// and last; with none, something to wait for.
        fn step(&mut self, input: Input<Q>) -> Vec<Effect<Q>> {
            let effects = self.machine.step(input, self.now());
            let requests: Vec<usize> = effects
                .iter()
                .enumerate()
                .filter(|(_, effect)| is_request(effect))
                .map(|(index, _)| index)
                .collect();
            assert!(requests.len() <= 1, "more than one request: {effects:?}");
            if let Some(&index) = requests.first() {
                assert_eq!(
                    index,
                    effects.len() - 1,
                    "a request is not last: {effects:?}"
                );
            } else {
                assert_ne!(
                    self.machine.waiting(),
                    Wait::Answer,
                    "waits for an answer nobody was asked for: {effects:?}"
                );
            }
            effects
        }

        /// Schema current, connected, joined as `member`.
        fn joined(&mut self, member: &str) {
            self.step(Input::SchemaCurrent);
            self.step(Input::Connected {
                negotiated: SESSION,
            });
            self.step(Input::Joined {
                member: member.into(),
            });
        }

        /// Leads as member-1 under `epoch`, its member watched.
        fn leading(&mut self, epoch: i64) {
            self.joined("member-1");
            self.step(Input::Observed(Observation::Leader));
            self.step(Input::EpochClaimed {
                epoch: Epoch(epoch),
                sent: self.now().instant,
            });
            assert_eq!(self.step(Input::OwnMemberWatched), []);
        }

        /// Follows `b` (member-0) as member-2 behind `predecessor`.
        fn following(&mut self, predecessor: &str) -> Vec<Effect<Q>> {
            self.joined("member-2");
            self.step(Input::Observed(Observation::Follower(following_b(
                predecessor,
            ))))
        }

        /// Follows as [`Harness::following`], its watches set under epoch 5.
        fn watching(&mut self, predecessor: &str) {
            self.following(predecessor);
            self.step(Input::FollowWatchesSet {
                epoch: Some(Epoch(5)),
            });
        }

        /// The backoff after a session ended on our side ran out, and the
        /// server still held the session.
        fn reopened(&mut self) {
            assert_eq!(self.step(Input::BackoffElapsed), [Effect::Resume]);
            self.step(Input::Resumed {
                negotiated: SESSION,
            });
        }

        fn held_and_reconnected(&mut self, epoch: i64) {
            self.leading(epoch);
            self.step(Input::SessionEnded);
            assert_eq!(self.step(Input::BackoffElapsed), [Effect::Resume]);
            assert_eq!(self.step(Input::ResumeRefused), [Effect::Connect]);
            self.step(Input::Connected {
                negotiated: SESSION,
            });
            self.step(Input::Joined {
                member: "member-5".into(),
            });
        }

        /// ZooKeeper confirms the lease asked for at `sent`: it is extended
        /// for `epoch` by one session from then.
        fn assert_lease_confirmed(&mut self, epoch: i64, sent: Instant) {
            assert_eq!(
                self.step(Input::Confirmed {
                    purpose: Confirmation::Lease { sent },
                    answer: Some(true)
                }),
                [Effect::ConfirmLease {
                    epoch: Epoch(epoch),
                    sent,
                    valid_until: sent + SESSION
                }]
            );
        }

        fn grant(&mut self, epoch: i64) -> Grant {
            let effects = self.step(Input::EpochClaimed {
                epoch: Epoch(epoch),
                sent: self.now().instant,
            });
            effects
                .into_iter()
                .find_map(|effect| match effect {
                    Effect::Grant(grant) => Some(grant),
                    _ => None,
                })
                .expect("a grant")
        }
    }

    fn is_request<R>(effect: &Effect<R>) -> bool {
        matches!(
            effect,
            Effect::Connect
                | Effect::Resume
                | Effect::Join
                | Effect::Observe { .. }
                | Effect::ClaimEpoch { .. }
                | Effect::TakeOver { .. }
                | Effect::WatchOwnMember { .. }
                | Effect::WatchFollowing { .. }
                | Effect::Confirm { .. }
                | Effect::Delete { .. }
        )
    }

    fn info(instance: &str) -> MemberInfo {
        MemberInfo {
            instance_id: instance.into(),
            http_url: format!("http://{instance}:8080"),
        }
    }

    fn following_b(predecessor: &str) -> Following {
        Following {
            predecessor: predecessor.into(),
            leader_member: "member-0".into(),
            leader: Some(info("b")),
        }
    }

    fn observe(member: &str) -> Effect<Q> {
        Effect::Observe {
            member: member.into(),
        }
    }

    fn reconnect(backoff_ms: u64) -> Vec<Effect<Q>> {
        vec![
            Effect::CloseSession,
            Effect::ObserveLeader(None),
            Effect::Sleep(Duration::from_millis(backoff_ms)),
        ]
    }

    fn named(instance: &str, epoch: i64) -> Option<NamedLeader> {
        Some(NamedLeader {
            instance_id: instance.into(),
            epoch: Epoch(epoch),
        })
    }

    #[test]
    fn a_node_joins_no_election_before_the_schema_is_current() {
        let mut node = Harness::new();
        assert_eq!(node.machine.waiting(), Wait::Schema);
        assert_eq!(
            node.step(Input::Command(Command::Confirm {
                epoch: Epoch(1),
                reply: "q"
            })),
            [Effect::Answer {
                reply: "q",
                yes: false
            }]
        );
        assert_eq!(node.step(Input::Command(Command::Resign)), []);
        assert_eq!(node.step(Input::SchemaCurrent), [Effect::Connect]);
    }

    #[test]
    fn the_initial_elections_clock_starts_when_the_schema_is_current() {
        let mut node = Harness::new();
        node.advance(Duration::from_secs(3600));
        let ready = node.now().wall;
        node.joined("member-1");
        node.step(Input::Observed(Observation::Leader));
        assert_eq!(node.grant(1).detected_at, ready);
    }

    #[test]
    fn a_restarted_follower_starts_a_fresh_campaign_without_its_old_reason_or_backoff() {
        let mut node = Harness::new();
        node.following("member-1");
        node.step(Input::PredecessorGone);
        node.step(Input::Failed(Request::Observe));
        node.step(Input::BackoffElapsed);
        node.step(Input::ConnectFailed);
        node.advance(Duration::from_secs(60));
        node.machine.restart(node.now());
        let restarted = node.now().wall;
        node.step(Input::SchemaCurrent);
        assert_eq!(
            node.step(Input::ConnectFailed),
            [Effect::Sleep(RECONNECT_BACKOFF_MIN)]
        );
        node.step(Input::BackoffElapsed);
        node.step(Input::Connected {
            negotiated: SESSION,
        });
        node.step(Input::Joined {
            member: "member-7".into(),
        });
        node.step(Input::Observed(Observation::Leader));
        let grant = node.grant(2);
        assert_eq!(grant.reason, TakeoverReason::InitialElection);
        assert!(grant.detected_at >= restarted);
    }

    #[test]
    fn leaving_before_the_schema_is_current_stops_at_once() {
        let mut node = Harness::new();
        assert_eq!(node.step(Input::Command(Command::Leave)), [Effect::Stop]);
        assert_eq!(node.machine.waiting(), Wait::Stopped);
        assert_eq!(node.step(Input::SchemaCurrent), []);
    }

    #[test]
    fn an_unreachable_zookeeper_is_retried_with_a_backoff_doubling_to_five_seconds() {
        let mut node = Harness::new();
        node.step(Input::SchemaCurrent);
        let mut sleeps = Vec::new();
        for _ in 0..8 {
            match node.step(Input::ConnectFailed).as_slice() {
                [Effect::Sleep(delay)] => sleeps.push(delay.as_millis()),
                other => panic!("expected one sleep, got {other:?}"),
            }
            assert_eq!(node.step(Input::BackoffElapsed), [Effect::Connect]);
        }
        assert_eq!(sleeps, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
    }

    #[test]
    fn a_session_that_fails_at_once_keeps_backing_off_and_one_that_lived_long_starts_over() {
        let mut node = Harness::new();
        node.joined("member-1");
        assert_eq!(node.step(Input::Failed(Request::Observe)), reconnect(100));
        // A failed read keeps the member, if the driver can reopen the session.
        assert_eq!(node.step(Input::BackoffElapsed), [Effect::Resume]);
        assert_eq!(node.step(Input::ResumeRefused), [Effect::Connect]);
        node.step(Input::Connected {
            negotiated: SESSION,
        });
        assert_eq!(node.step(Input::Failed(Request::Join)), reconnect(200));
        node.step(Input::BackoffElapsed);
        node.step(Input::Connected {
            negotiated: SESSION,
        });
        node.advance(RECONNECT_BACKOFF_RESET + Duration::from_secs(1));
        assert_eq!(node.step(Input::Failed(Request::Join)), reconnect(100));
    }

    #[test]
    fn the_first_member_claims_an_epoch_and_leads_on_a_lease_counted_from_the_claims_send() {
        let mut node = Harness::new();
        node.joined("member-1");
        assert_eq!(
            node.step(Input::Observed(Observation::Leader)),
            [Effect::ClaimEpoch {
                member: "member-1".into(),
                floor: Epoch::ZERO
            }]
        );
        let sent = node.now().instant;
        node.advance(Duration::from_millis(30));
        let effects = node.step(Input::EpochClaimed {
            epoch: Epoch(7),
            sent,
        });
        assert_eq!(
            effects,
            [
                Effect::ObserveLeader(named("a", 7)),
                Effect::Grant(Grant {
                    epoch: Epoch(7),
                    reason: TakeoverReason::InitialElection,
                    detected_at: node.wall,
                    previous_leader: None,
                    lease_until: sent + SESSION,
                }),
                Effect::WatchOwnMember {
                    member: "member-1".into()
                },
            ]
        );
        assert_eq!(node.machine.waiting(), Wait::Leading);
    }

    #[test]
    fn a_member_that_vanished_before_its_claim_joins_again_and_has_lost_no_leadership() {
        let mut node = Harness::new();
        node.joined("member-1");
        node.step(Input::Observed(Observation::Leader));
        assert_eq!(node.step(Input::NotMember), [Effect::Join]);
        node.step(Input::Joined {
            member: "member-3".into(),
        });
        node.step(Input::Observed(Observation::Leader));
        assert_eq!(node.grant(1).reason, TakeoverReason::InitialElection);
    }

    #[test]
    fn each_confirmation_extends_the_lease_from_its_send_time() {
        let mut node = Harness::new();
        node.leading(7);
        node.advance(Duration::from_millis(133));
        let sent = node.now().instant;
        assert_eq!(
            node.step(Input::ConfirmDue),
            [Effect::Confirm {
                member: "member-1".into(),
                purpose: Confirmation::Lease { sent }
            }]
        );
        node.advance(Duration::from_millis(20));
        node.assert_lease_confirmed(7, sent);
    }

    #[test]
    fn an_unanswered_confirmation_lets_the_lease_run_out_without_revoking() {
        let mut node = Harness::new();
        node.leading(7);
        let sent = node.now().instant;
        node.step(Input::ConfirmDue);
        assert_eq!(
            node.step(Input::Confirmed {
                purpose: Confirmation::Lease { sent },
                answer: None
            }),
            []
        );
        assert_eq!(node.machine.waiting(), Wait::Leading);
    }

    #[test]
    fn a_confirmation_that_finds_our_member_gone_ends_leadership() {
        let mut node = Harness::new();
        node.leading(7);
        let sent = node.now().instant;
        node.step(Input::ConfirmDue);
        assert_eq!(
            node.step(Input::Confirmed {
                purpose: Confirmation::Lease { sent },
                answer: Some(false)
            }),
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::MemberGone
                },
                Effect::Join
            ]
        );
    }

    #[test]
    fn a_leader_whose_member_was_deleted_revokes_and_wins_again_only_as_rejoined() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(
            node.step(Input::OwnMemberChanged),
            [Effect::WatchOwnMember {
                member: "member-1".into()
            }]
        );
        node.advance(Duration::from_millis(5));
        let lost_at = node.now().wall;
        assert_eq!(
            node.step(Input::OwnMemberGone),
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::MemberDeleted
                },
                Effect::Join
            ]
        );
        node.step(Input::Joined {
            member: "member-4".into(),
        });
        node.step(Input::Observed(Observation::Leader));
        let grant = node.grant(8);
        assert_eq!(grant.reason, TakeoverReason::Rejoined);
        assert_eq!(grant.previous_leader.as_deref(), Some("a"));
        assert_eq!(grant.detected_at, lost_at);
    }

    #[test]
    fn a_watch_that_cannot_be_set_again_after_firing_revokes() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::OwnMemberChanged);
        assert_eq!(
            node.step(Input::Failed(Request::WatchOwnMember)),
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::MemberDeleted
                },
                Effect::Join
            ]
        );
    }

    #[test]
    fn a_first_watch_that_cannot_be_set_holds_the_epoch_and_reconnects() {
        let mut node = Harness::new();
        node.joined("member-1");
        node.step(Input::Observed(Observation::Leader));
        node.grant(7);
        assert_eq!(
            node.step(Input::Failed(Request::WatchOwnMember)),
            reconnect(100)
        );
        assert_eq!(node.machine.held, Some(Epoch(7)));
    }

    #[test]
    fn a_member_gone_when_first_watched_ends_leadership() {
        let mut node = Harness::new();
        node.joined("member-1");
        node.step(Input::Observed(Observation::Leader));
        node.grant(7);
        assert_eq!(
            node.step(Input::OwnMemberGone),
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::MemberGone
                },
                Effect::Join
            ]
        );
    }

    #[test]
    fn a_leader_that_loses_its_session_leads_on_and_holds_its_epoch() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(node.step(Input::SessionEnded), reconnect(100));
        assert_eq!(node.machine.held, Some(Epoch(7)));
        assert_eq!(node.machine.waiting(), Wait::Backoff);
    }

    #[test]
    fn a_held_epoch_ends_when_the_next_session_finds_another_leader() {
        let mut node = Harness::new();
        node.held_and_reconnected(7);
        assert_eq!(
            node.step(Input::Observed(Observation::Follower(following_b(
                "member-0"
            )))),
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::AnotherLeadsAfterReturn
                },
                observe("member-5"),
            ]
        );
        assert_eq!(node.machine.held, None);
    }

    #[test]
    fn a_held_epoch_is_replaced_when_the_next_session_finds_us_first() {
        let mut node = Harness::new();
        node.held_and_reconnected(7);
        node.step(Input::Observed(Observation::Leader));
        let effects = node.step(Input::EpochClaimed {
            epoch: Epoch(8),
            sent: node.now().instant,
        });
        assert!(
            !effects
                .iter()
                .any(|effect| matches!(effect, Effect::Revoke { .. })),
            "the newer grant supersedes: {effects:?}"
        );
        assert_eq!(node.machine.held, None);
    }

    #[test]
    fn a_refused_heartbeat_of_the_held_epoch_ends_it() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        assert_eq!(
            node.step(Input::Command(Command::Confirm {
                epoch: Epoch(6),
                reply: "old"
            })),
            [Effect::Answer {
                reply: "old",
                yes: false
            }]
        );
        assert_eq!(
            node.step(Input::Command(Command::Confirm {
                epoch: Epoch(7),
                reply: "held"
            })),
            [
                Effect::Answer {
                    reply: "held",
                    yes: false
                },
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::HeartbeatRefusedWithoutSession
                },
            ]
        );
        assert_eq!(node.machine.held, None);
    }

    #[test]
    fn a_question_about_another_epoch_is_refused_without_asking_zookeeper() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(
            node.step(Input::Command(Command::Confirm {
                epoch: Epoch(6),
                reply: "q"
            })),
            [Effect::Answer {
                reply: "q",
                yes: false
            }]
        );
    }

    #[test]
    fn a_question_zookeeper_vouches_for_is_answered_yes_and_leadership_goes_on() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(
            node.step(Input::Command(Command::Confirm {
                epoch: Epoch(7),
                reply: "q"
            })),
            [Effect::Confirm {
                member: "member-1".into(),
                purpose: Confirmation::Question("q")
            }]
        );
        assert_eq!(
            node.step(Input::Confirmed {
                purpose: Confirmation::Question("q"),
                answer: Some(true)
            }),
            [Effect::Answer {
                reply: "q",
                yes: true
            }]
        );
        assert_eq!(node.machine.waiting(), Wait::Leading);
    }

    #[test]
    fn a_question_zookeeper_denies_ends_leadership() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::Command(Command::Confirm {
            epoch: Epoch(7),
            reply: "q",
        }));
        assert_eq!(
            node.step(Input::Confirmed {
                purpose: Confirmation::Question("q"),
                answer: Some(false)
            }),
            [
                Effect::Answer {
                    reply: "q",
                    yes: false
                },
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::HeartbeatRefusedMemberGone
                },
                Effect::Join,
            ]
        );
    }

    #[test]
    fn a_question_zookeeper_cannot_answer_ends_leadership_and_the_session() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::Command(Command::Confirm {
            epoch: Epoch(7),
            reply: "q",
        }));
        let mut expected = vec![
            Effect::Answer {
                reply: "q",
                yes: false,
            },
            Effect::Revoke {
                epoch: Epoch(7),
                why: Revocation::HeartbeatRefusedUnconfirmed,
            },
        ];
        expected.extend(reconnect(100));
        assert_eq!(
            node.step(Input::Confirmed {
                purpose: Confirmation::Question("q"),
                answer: None
            }),
            expected
        );
        assert_eq!(node.machine.held, None);
    }

    #[test]
    fn resigning_revokes_deletes_our_member_and_joins_again() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(
            node.step(Input::Command(Command::Resign)),
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::SteppedDown
                },
                Effect::Delete {
                    member: "member-1".into(),
                    purpose: Deletion::Resign
                },
            ]
        );
        assert_eq!(
            node.step(Input::Deleted {
                purpose: Deletion::Resign,
                ok: true,
                by_us: true
            }),
            [Effect::Join]
        );
    }

    #[test]
    fn a_resignation_whose_delete_fails_closes_the_session_instead() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::Command(Command::Resign));
        assert_eq!(
            node.step(Input::Deleted {
                purpose: Deletion::Resign,
                ok: false,
                by_us: false
            }),
            reconnect(100)
        );
        assert_eq!(node.machine.held, None);
    }

    #[test]
    fn a_reclaim_supersedes_the_epoch_and_counts_no_failover() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(
            node.step(Input::Command(Command::ReclaimAbove(Epoch(20)))),
            [Effect::ClaimEpoch {
                member: "member-1".into(),
                floor: Epoch(20)
            }]
        );
        let sent = node.now().instant;
        let effects = node.step(Input::EpochClaimed {
            epoch: Epoch(21),
            sent,
        });
        assert_eq!(
            effects[..2],
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::Superseded
                },
                Effect::ObserveLeader(named("a", 21)),
            ]
        );
        assert!(matches!(
            &effects[2],
            Effect::Grant(Grant { epoch: Epoch(21), reason: TakeoverReason::Rejoined, lease_until, .. })
                if *lease_until == sent + SESSION
        ));
        assert_eq!(node.machine.waiting(), Wait::Leading);
    }

    #[test]
    fn a_reclaim_that_fails_ends_leadership() {
        for failure in [Input::NotMember, Input::Failed(Request::Claim)] {
            let mut node = Harness::new();
            node.leading(7);
            node.step(Input::Command(Command::ReclaimAbove(Epoch(20))));
            assert_eq!(
                node.step(failure),
                [
                    Effect::Revoke {
                        epoch: Epoch(7),
                        why: Revocation::ReclaimFailed
                    },
                    Effect::Join
                ]
            );
        }
    }

    #[test]
    fn a_leader_ignores_a_takeover_aimed_at_it() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(
            node.step(Input::Command(Command::ForceTakeover {
                instance_id: "a".into()
            })),
            []
        );
        assert_eq!(node.machine.waiting(), Wait::Leading);
    }

    #[test]
    fn a_follower_watches_its_predecessor_and_the_leader_and_reports_who_leads() {
        let mut node = Harness::new();
        assert_eq!(
            node.following("member-1"),
            [Effect::WatchFollowing {
                predecessor: "member-1".into(),
                leader_member: Some("member-0".into()),
                next_in_line: None,
            }]
        );
        assert_eq!(
            node.step(Input::FollowWatchesSet {
                epoch: Some(Epoch(5))
            }),
            [Effect::ObserveLeader(named("b", 5))]
        );
        assert_eq!(node.machine.waiting(), Wait::Following);
    }

    #[test]
    fn an_unreadable_epoch_names_no_leader() {
        let mut node = Harness::new();
        node.following("member-0");
        assert_eq!(
            node.step(Input::FollowWatchesSet { epoch: None }),
            [Effect::ObserveLeader(None)]
        );
    }

    #[test]
    fn only_the_next_in_line_holds_the_leaders_presence() {
        let mut node = Harness::new();
        assert_eq!(
            node.following("member-0"),
            [Effect::WatchFollowing {
                predecessor: "member-0".into(),
                leader_member: None,
                next_in_line: Some(info("b")),
            }]
        );
    }

    #[test]
    fn when_the_leader_departs_the_next_in_line_leads_saying_so() {
        let mut node = Harness::new();
        node.watching("member-0");
        node.advance(Duration::from_millis(40));
        let departed = node.now().wall;
        assert_eq!(node.step(Input::PredecessorGone), [observe("member-2")]);
        node.advance(Duration::from_millis(3));
        node.step(Input::Observed(Observation::Leader));
        let grant = node.grant(6);
        assert_eq!(grant.reason, TakeoverReason::LeaderDeparted);
        assert_eq!(grant.detected_at, departed);
        assert_eq!(grant.previous_leader.as_deref(), Some("b"));
    }

    #[test]
    fn when_a_predecessor_that_did_not_lead_departs_the_reason_says_so() {
        let mut node = Harness::new();
        node.following("member-1");
        node.step(Input::PredecessorGone);
        node.step(Input::Observed(Observation::Leader));
        assert_eq!(node.grant(6).reason, TakeoverReason::PredecessorDeparted);
    }

    #[test]
    fn a_change_of_leader_or_epoch_makes_a_follower_look_again() {
        let mut node = Harness::new();
        node.watching("member-1");
        assert_eq!(node.step(Input::LeaderChanged), [observe("member-2")]);
    }

    #[test]
    fn a_hung_leader_named_by_the_heartbeat_is_forced_out() {
        let mut node = Harness::new();
        node.watching("member-1");
        assert_eq!(
            node.step(Input::Command(Command::ForceTakeover {
                instance_id: "b".into()
            })),
            [Effect::Delete {
                member: "member-0".into(),
                purpose: Deletion::Takeover
            }]
        );
        assert_eq!(
            node.step(Input::Deleted {
                purpose: Deletion::Takeover,
                ok: true,
                by_us: true
            }),
            [Effect::CountForcedTakeover, observe("member-2")]
        );
        node.step(Input::Observed(Observation::Leader));
        assert_eq!(node.grant(6).reason, TakeoverReason::ForcedTakeover);
    }

    #[test]
    fn a_hung_leader_another_standby_already_deleted_is_not_counted_again() {
        let mut node = Harness::new();
        node.watching("member-1");
        node.step(Input::Command(Command::ForceTakeover {
            instance_id: "b".into(),
        }));
        assert_eq!(
            node.step(Input::Deleted {
                purpose: Deletion::Takeover,
                ok: true,
                by_us: false,
            }),
            [observe("member-2")]
        );
    }

    #[test]
    fn a_takeover_aimed_at_a_leader_that_changed_meanwhile_only_looks_again() {
        let mut node = Harness::new();
        node.watching("member-1");
        assert_eq!(
            node.step(Input::Command(Command::ForceTakeover {
                instance_id: "c".into()
            })),
            [observe("member-2")]
        );
    }

    fn take_over_from_b() -> Effect<Q> {
        Effect::TakeOver {
            member: "member-2".into(),
            leader_member: "member-0".into(),
            floor: Epoch::ZERO,
        }
    }

    #[test]
    fn a_dead_leader_process_is_forced_out_by_the_next_in_line_in_one_request() {
        let mut node = Harness::new();
        node.watching("member-0");
        node.advance(Duration::from_millis(30));
        let refused = node.now().wall;
        assert_eq!(node.step(Input::LeaderProcessGone), [take_over_from_b()]);
        node.advance(Duration::from_millis(5));
        let sent = node.now().instant;
        let effects = node.step(Input::EpochClaimed {
            epoch: Epoch(6),
            sent,
        });
        assert_eq!(effects[0], Effect::CountForcedTakeover);
        assert_eq!(
            effects.last(),
            Some(&Effect::WatchOwnMember {
                member: "member-2".into()
            })
        );
        let Some(Effect::Grant(grant)) = effects.iter().find(|e| matches!(e, Effect::Grant(_)))
        else {
            panic!("no grant: {effects:?}");
        };
        assert_eq!(grant.epoch, Epoch(6));
        assert_eq!(grant.reason, TakeoverReason::LeaderProcessGone);
        assert_eq!(grant.detected_at, refused);
        assert_eq!(grant.previous_leader.as_deref(), Some("b"));
        assert_eq!(grant.lease_until, sent + SESSION);
    }

    #[test]
    fn a_hung_leader_just_ahead_of_us_is_forced_out_in_one_request() {
        let mut node = Harness::new();
        node.watching("member-0");
        assert_eq!(
            node.step(Input::Command(Command::ForceTakeover {
                instance_id: "b".into()
            })),
            [take_over_from_b()]
        );
        assert_eq!(node.grant(6).reason, TakeoverReason::ForcedTakeover);
    }

    #[test]
    fn a_refused_takeover_counts_nothing_and_reads_the_members_again() {
        let mut node = Harness::new();
        node.watching("member-0");
        node.step(Input::LeaderProcessGone);
        assert_eq!(
            node.step(Input::TakeoverRefused),
            [observe("member-2")],
            "the leader's member expired meanwhile, or ours is gone"
        );
        node.step(Input::Observed(Observation::Leader));
        let grant = node.grant(6);
        assert_eq!(grant.reason, TakeoverReason::LeaderProcessGone);
    }

    #[test]
    fn a_takeover_that_fails_reopens_the_session_keeping_our_place() {
        let mut node = Harness::new();
        node.watching("member-0");
        node.step(Input::LeaderProcessGone);
        assert_eq!(node.step(Input::Failed(Request::TakeOver)), reconnect(100));
        node.reopened();
        assert_eq!(
            node.machine.waiting(),
            Wait::Answer,
            "reads where member-2 stands"
        );
    }

    #[test]
    fn a_takeover_claims_above_a_fence_learnt_while_an_epoch_was_held() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        node.step(Input::Command(Command::ReclaimAbove(Epoch(9))));
        node.step(Input::BackoffElapsed);
        node.step(Input::ResumeRefused);
        node.step(Input::Connected {
            negotiated: SESSION,
        });
        node.step(Input::Joined {
            member: "member-2".into(),
        });
        node.step(Input::Observed(Observation::Follower(following_b(
            "member-0",
        ))));
        node.step(Input::Observed(Observation::Follower(following_b(
            "member-0",
        ))));
        node.step(Input::FollowWatchesSet {
            epoch: Some(Epoch(10)),
        });
        assert_eq!(
            node.step(Input::LeaderProcessGone),
            [Effect::TakeOver {
                member: "member-2".into(),
                leader_member: "member-0".into(),
                floor: Epoch(9),
            }]
        );
    }

    #[test]
    fn our_own_member_from_an_abandoned_session_is_deleted_not_followed() {
        let mut node = Harness::new();
        node.joined("member-2");
        let stale = Following {
            predecessor: "member-0".into(),
            leader_member: "member-0".into(),
            leader: Some(info("a")),
        };
        assert_eq!(
            node.step(Input::Observed(Observation::Follower(stale.clone()))),
            [Effect::Delete {
                member: "member-0".into(),
                purpose: Deletion::StaleOwnMember
            }]
        );
        assert_eq!(
            node.step(Input::Deleted {
                purpose: Deletion::StaleOwnMember,
                ok: true,
                by_us: true
            }),
            [observe("member-2")]
        );
        node.step(Input::Observed(Observation::Follower(stale)));
        assert_eq!(
            node.step(Input::Deleted {
                purpose: Deletion::StaleOwnMember,
                ok: false,
                by_us: false
            }),
            reconnect(100)
        );
    }

    #[test]
    fn a_follower_that_loses_its_session_reconnects() {
        let mut node = Harness::new();
        node.watching("member-1");
        assert_eq!(node.step(Input::SessionEnded), reconnect(100));
    }

    #[test]
    fn any_other_command_makes_a_follower_look_again() {
        let mut node = Harness::new();
        node.watching("member-1");
        assert_eq!(
            node.step(Input::Command(Command::Resign)),
            [observe("member-2")]
        );
        node.step(Input::Observed(Observation::Follower(following_b(
            "member-1",
        ))));
        node.step(Input::FollowWatchesSet {
            epoch: Some(Epoch(5)),
        });
        assert_eq!(
            node.step(Input::Command(Command::Confirm {
                epoch: Epoch(5),
                reply: "q"
            })),
            [
                Effect::Answer {
                    reply: "q",
                    yes: false
                },
                observe("member-2")
            ]
        );
    }

    #[test]
    fn leaving_while_leading_deletes_our_member_then_revokes_and_stops() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(
            node.step(Input::Command(Command::Leave)),
            [Effect::Delete {
                member: "member-1".into(),
                purpose: Deletion::Leave
            }]
        );
        assert_eq!(
            node.step(Input::Deleted {
                purpose: Deletion::Leave,
                ok: false,
                by_us: false
            }),
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::ShuttingDown
                },
                Effect::CloseSession,
                Effect::ObserveLeader(None),
                Effect::Stop,
            ]
        );
        assert_eq!(node.machine.waiting(), Wait::Stopped);
        assert_eq!(node.step(Input::SessionEnded), []);
    }

    #[test]
    fn leaving_while_following_deletes_our_member_and_stops() {
        let mut node = Harness::new();
        node.watching("member-1");
        node.step(Input::Command(Command::Leave));
        assert_eq!(
            node.step(Input::Deleted {
                purpose: Deletion::Leave,
                ok: true,
                by_us: true
            }),
            [
                Effect::CloseSession,
                Effect::ObserveLeader(None),
                Effect::Stop
            ]
        );
    }

    #[test]
    fn a_gone_coordinator_stops_the_campaign() {
        let mut node = Harness::new();
        node.leading(7);
        assert_eq!(
            node.step(Input::CommandsClosed),
            [
                Effect::CloseSession,
                Effect::ObserveLeader(None),
                Effect::Stop
            ]
        );
    }

    #[test]
    fn a_restarted_campaign_holds_the_epoch_its_predecessor_led_under() {
        let mut node = Harness::new();
        node.leading(7);
        node.machine.restart(node.now());
        assert_eq!(node.machine.waiting(), Wait::Schema);
        assert_eq!(node.machine.held, Some(Epoch(7)));
        node.joined("member-6");
        assert_eq!(
            node.step(Input::Observed(Observation::Follower(following_b(
                "member-0"
            ))))[0],
            Effect::Revoke {
                epoch: Epoch(7),
                why: Revocation::AnotherLeadsAfterReturn
            }
        );
    }

    #[test]
    fn an_answer_nobody_asked_for_starts_a_fresh_session_and_a_leader_holds_its_epoch() {
        let mut node = Harness::new();
        node.watching("member-1");
        assert_eq!(node.step(Input::OwnMemberWatched), reconnect(100));

        let mut leader = Harness::new();
        leader.leading(7);
        assert_eq!(leader.step(Input::PredecessorGone), reconnect(100));
        assert_eq!(leader.machine.held, Some(Epoch(7)));
    }

    #[test]
    fn a_leader_whose_session_ended_on_its_side_reopens_it_and_leads_on_without_a_claim() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        assert_eq!(node.step(Input::BackoffElapsed), [Effect::Resume]);
        assert_eq!(
            node.step(Input::Resumed {
                negotiated: SESSION
            }),
            [observe("member-1")]
        );
        assert_eq!(
            node.step(Input::Observed(Observation::Leader)),
            [
                Effect::ObserveLeader(named("a", 7)),
                Effect::WatchOwnMember {
                    member: "member-1".into()
                },
            ]
        );
        assert_eq!(node.machine.held, None);
        assert_eq!(node.step(Input::OwnMemberWatched), []);
        assert_eq!(node.machine.waiting(), Wait::Leading);
        let sent = node.now().instant;
        node.step(Input::ConfirmDue);
        node.assert_lease_confirmed(7, sent);
    }

    #[test]
    fn a_reopened_session_whose_member_no_longer_leads_gives_the_held_epoch_up() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        node.reopened();
        assert_eq!(
            node.step(Input::Observed(Observation::Follower(following_b(
                "member-0"
            )))),
            [
                Effect::Revoke {
                    epoch: Epoch(7),
                    why: Revocation::AnotherLeadsAfterReturn
                },
                observe("member-1"),
            ]
        );
    }

    #[test]
    fn a_reopened_session_without_a_held_epoch_claims_as_any_first_member() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        // Its heartbeat was refused meanwhile: the held epoch is over.
        node.step(Input::Command(Command::Confirm {
            epoch: Epoch(7),
            reply: "held",
        }));
        node.reopened();
        assert_eq!(
            node.step(Input::Observed(Observation::Leader)),
            [Effect::ClaimEpoch {
                member: "member-1".into(),
                floor: Epoch::ZERO
            }]
        );
    }

    #[test]
    fn a_resignation_without_a_session_ends_the_held_epoch_and_the_session_is_not_reopened() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        assert_eq!(
            node.step(Input::Command(Command::Resign)),
            [Effect::Revoke {
                epoch: Epoch(7),
                why: Revocation::SteppedDown
            }]
        );
        assert_eq!(node.step(Input::BackoffElapsed), [Effect::Connect]);
    }

    #[test]
    fn a_fenced_takeover_without_a_session_makes_the_reopened_leader_claim_above_the_fence() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        assert_eq!(
            node.step(Input::Command(Command::ReclaimAbove(Epoch(9)))),
            []
        );
        node.reopened();
        assert_eq!(
            node.step(Input::Observed(Observation::Leader)),
            [Effect::ClaimEpoch {
                member: "member-1".into(),
                floor: Epoch(9)
            }]
        );
        assert_eq!(node.grant(10).epoch, Epoch(10));
        assert_eq!(node.machine.held, None);
    }

    #[test]
    fn a_request_failing_on_a_reopened_session_reopens_it_again() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        node.reopened();
        // Within a quarter of the session, whatever the backoff grew to: the
        // server holds the session one timeout after it last heard from us.
        assert_eq!(node.step(Input::Failed(Request::Observe)), reconnect(100));
        node.reopened();
        node.step(Input::Observed(Observation::Leader));
        // Led on under the held epoch; its first watch fails: held again,
        // and the same session is tried once more.
        assert_eq!(
            node.step(Input::Failed(Request::WatchOwnMember)),
            reconnect(100)
        );
        assert_eq!(node.machine.held, Some(Epoch(7)));
        node.reopened();
        // A third reopen that completes no round: the failure is not the
        // network's, so a new session follows, after the grown backoff.
        assert_eq!(node.step(Input::Failed(Request::Observe)), reconnect(800));
        assert_eq!(node.step(Input::BackoffElapsed), [Effect::Connect]);
    }

    #[test]
    fn only_the_member_an_epoch_was_held_under_leads_on_under_it() {
        let mut node = Harness::new();
        node.held_and_reconnected(7);
        // The new session's member (member-5) fails a read and is reopened:
        // finding itself first (the other leader left meanwhile) it claims a
        // new epoch rather than lead on under the one member-1 held.
        node.step(Input::Failed(Request::Observe));
        node.reopened();
        assert_eq!(
            node.step(Input::Observed(Observation::Leader)),
            [Effect::ClaimEpoch {
                member: "member-5".into(),
                floor: Epoch::ZERO
            }]
        );
    }

    #[test]
    fn a_follower_whose_session_ended_on_its_side_keeps_its_place_in_line() {
        let mut node = Harness::new();
        node.watching("member-1");
        assert_eq!(node.step(Input::SessionEnded), reconnect(100));
        assert_eq!(node.step(Input::BackoffElapsed), [Effect::Resume]);
        assert_eq!(
            node.step(Input::Resumed {
                negotiated: SESSION
            }),
            [observe("member-2")]
        );
        assert!(matches!(
            node.step(Input::Observed(Observation::Follower(following_b(
                "member-1"
            ))))
            .as_slice(),
            [Effect::WatchFollowing { .. }]
        ));
    }

    #[test]
    fn a_resume_no_server_answers_is_tried_again_within_a_quarter_of_the_session() {
        let mut node = Harness::new();
        node.leading(7);
        node.step(Input::SessionEnded);
        let mut waits = Vec::new();
        for _ in 0..6 {
            assert_eq!(node.step(Input::BackoffElapsed), [Effect::Resume]);
            match node.step(Input::ConnectFailed).as_slice() {
                [Effect::Sleep(wait)] => waits.push(*wait),
                other => panic!("expected a wait: {other:?}"),
            }
        }
        assert!(waits.iter().all(|wait| *wait <= SESSION / 4), "{waits:?}");
        assert_eq!(node.step(Input::BackoffElapsed), [Effect::Resume]);
        assert_eq!(node.step(Input::ResumeRefused), [Effect::Connect]);
    }

    #[test]
    fn a_session_the_node_closed_itself_is_never_reopened() {
        let mut node = Harness::new();
        node.leading(7);
        // ZooKeeper could not vouch for a refused heartbeat: the node steps
        // down and gives its member up, so it must not take it back.
        node.step(Input::Command(Command::Confirm {
            epoch: Epoch(7),
            reply: "refused",
        }));
        node.step(Input::Confirmed {
            purpose: Confirmation::Question("refused"),
            answer: None,
        });
        assert_eq!(node.step(Input::BackoffElapsed), [Effect::Connect]);

        let mut restarted = Harness::new();
        restarted.watching("member-1");
        restarted.step(Input::SessionEnded);
        restarted.machine.restart(restarted.now());
        assert_eq!(restarted.step(Input::SchemaCurrent), [Effect::Connect]);
    }

    /// A random ZooKeeper, coordinator and clock: answers each request
    /// plausibly, and fires a random event or command when nothing is asked.
    struct World<'a> {
        choices: &'a [u8],
        next: usize,
        member: u32,
        epoch: i64,
    }

    impl World<'_> {
        fn pick(&mut self, options: u8) -> u8 {
            let choice = self.choices.get(self.next).copied().unwrap_or(0);
            self.next += 1;
            choice % options
        }

        fn answer(&mut self, request: Effect<u32>) -> Input<u32> {
            match request {
                Effect::Connect => match self.pick(4) {
                    0 => Input::ConnectFailed,
                    _ => Input::Connected {
                        negotiated: SESSION,
                    },
                },
                Effect::Resume => match self.pick(3) {
                    0 => Input::ConnectFailed,
                    1 => Input::ResumeRefused,
                    _ => Input::Resumed {
                        negotiated: SESSION,
                    },
                },
                Effect::Join => match self.pick(6) {
                    0 => Input::Failed(Request::Join),
                    _ => {
                        self.member += 1;
                        Input::Joined {
                            member: format!("member-{}", self.member),
                        }
                    }
                },
                Effect::Observe { .. } => match self.pick(8) {
                    0 => Input::Failed(Request::Observe),
                    1 => Input::Observed(Observation::Absent),
                    2 | 3 => Input::Observed(Observation::Leader),
                    4 => Input::Observed(Observation::Follower(Following {
                        predecessor: "member-0".into(),
                        leader_member: "member-0".into(),
                        leader: Some(info("a")),
                    })),
                    5 => Input::Observed(Observation::Follower(following_b("member-0"))),
                    _ => Input::Observed(Observation::Follower(following_b("member-9"))),
                },
                Effect::ClaimEpoch { floor, .. } => match self.pick(6) {
                    0 => Input::NotMember,
                    1 => Input::Failed(Request::Claim),
                    _ => {
                        // ZooKeeper's epochs only grow, and past the floor.
                        self.epoch = self.epoch.max(floor.0) + 1;
                        Input::EpochClaimed {
                            epoch: Epoch(self.epoch),
                            sent: Instant::now(),
                        }
                    }
                },
                Effect::TakeOver { floor, .. } => match self.pick(5) {
                    0 => Input::TakeoverRefused,
                    1 => Input::Failed(Request::TakeOver),
                    _ => {
                        self.epoch = self.epoch.max(floor.0) + 1;
                        Input::EpochClaimed {
                            epoch: Epoch(self.epoch),
                            sent: Instant::now(),
                        }
                    }
                },
                Effect::WatchOwnMember { .. } => match self.pick(6) {
                    0 => Input::OwnMemberGone,
                    1 => Input::Failed(Request::WatchOwnMember),
                    _ => Input::OwnMemberWatched,
                },
                Effect::WatchFollowing { .. } => match self.pick(6) {
                    0 => Input::PredecessorGone,
                    1 => Input::LeaderChanged,
                    2 => Input::Failed(Request::WatchFollowing),
                    3 => Input::FollowWatchesSet { epoch: None },
                    _ => Input::FollowWatchesSet {
                        epoch: Some(Epoch(self.epoch)),
                    },
                },
                Effect::Confirm { purpose, .. } => Input::Confirmed {
                    purpose,
                    answer: match self.pick(4) {
                        0 => None,
                        1 => Some(false),
                        _ => Some(true),
                    },
                },
                Effect::Delete { purpose, .. } => {
                    let ok = self.pick(3) != 0;
                    Input::Deleted {
                        purpose,
                        ok,
                        by_us: ok && self.pick(2) == 0,
                    }
                }
                other => panic!("not a request: {other:?}"),
            }
        }

        fn event(&mut self, waiting: Wait, token: u32) -> Input<u32> {
            let command = match self.pick(12) {
                0 => Command::Resign,
                1 => Command::ForceTakeover {
                    instance_id: "b".into(),
                },
                2 => Command::ReclaimAbove(Epoch(self.epoch + 3)),
                3 | 4 => Command::Confirm {
                    epoch: Epoch(self.epoch - i64::from(self.pick(2))),
                    reply: token,
                },
                5 if self.pick(8) == 0 => Command::Leave,
                _ => {
                    return match (waiting, self.pick(4)) {
                        (Wait::Schema, _) => Input::SchemaCurrent,
                        (Wait::Backoff, _) => Input::BackoffElapsed,
                        (Wait::Leading, 0) => Input::OwnMemberChanged,
                        (Wait::Leading, 1) => Input::SessionEnded,
                        (Wait::Leading, _) => Input::ConfirmDue,
                        (Wait::Following, 0) => Input::PredecessorGone,
                        (Wait::Following, 1) => Input::LeaderChanged,
                        (Wait::Following, 2) => Input::LeaderProcessGone,
                        (Wait::Following, _) => Input::SessionEnded,
                        (Wait::Answer | Wait::Stopped, _) => Input::CommandsClosed,
                    }
                }
            };
            Input::Command(command)
        }
    }

    proptest! {
        /// Whatever ZooKeeper, the coordinator and driver crashes do: the driver's contract
        /// holds, every question is answered once, grants only grow, an
        /// epoch is revoked at most once and only after its grant, a
        /// lease is only ever confirmed for the epoch the node leads, only
        /// the next in line takes over in one request, and a forced
        /// takeover is counted only when this node's request removed the
        /// leader's member.
        #[test]
        fn the_election_keeps_its_promises_whatever_happens(
            choices in proptest::collection::vec(any::<u8>(), 1..600)
        ) {
            let mut world = World { choices: &choices, next: 0, member: 0, epoch: 0 };
            let start = Now::current();
            let mut machine = ElectionMachine::new("a".into(), start);
            let mut granted: Vec<Epoch> = Vec::new();
            let mut revoked: HashSet<Epoch> = HashSet::new();
            let mut leading: Option<Epoch> = None;
            let mut questions: BTreeSet<u32> = BTreeSet::new();
            let mut token = 0;
            let mut pending = None;
            let mut next_in_line: Option<String> = None;
            while world.next < choices.len() {
                // The driver dies now and then, between requests; the
                // supervisor restarts it on the same machine.
                if pending.is_none() && world.pick(24) == 0 {
                    machine.restart(Now::current());
                    continue;
                }
                let (input, may_count) = match pending.take() {
                    Some(request) => {
                        let takeover = matches!(request, Effect::TakeOver { .. });
                        let answer = world.answer(request);
                        // A forced takeover is counted only when this node's
                        // request removed the leader's member.
                        let removed = matches!(
                            answer,
                            Input::Deleted { purpose: Deletion::Takeover, ok: true, by_us: true }
                        ) || (takeover && matches!(answer, Input::EpochClaimed { .. }));
                        (answer, removed)
                    }
                    None => {
                        token += 1;
                        let input = world.event(machine.waiting(), token);
                        if let Input::Command(Command::Confirm { reply, .. }) = &input {
                            questions.insert(*reply);
                        }
                        (input, false)
                    }
                };
                let effects = machine.step(input, Now::current());
                let count = effects.iter().filter(|effect| is_request(effect)).count();
                prop_assert!(count <= 1, "{:?}", effects);
                for effect in effects {
                    match effect {
                        Effect::Grant(grant) => {
                            prop_assert!(granted.last().is_none_or(|last| grant.epoch > *last));
                            granted.push(grant.epoch);
                            leading = Some(grant.epoch);
                        }
                        Effect::Revoke { epoch, .. } => {
                            prop_assert!(granted.contains(&epoch));
                            prop_assert!(revoked.insert(epoch), "revoked twice: {}", epoch);
                            if leading == Some(epoch) {
                                leading = None;
                            }
                        }
                        Effect::ConfirmLease { epoch, .. } => prop_assert_eq!(leading, Some(epoch)),
                        Effect::Answer { reply, .. } => {
                            prop_assert!(questions.remove(&reply), "answered twice: {}", reply);
                        }
                        request @ Effect::Delete { purpose: Deletion::Takeover, .. } => {
                            if let Effect::Delete { member, .. } = &request {
                                prop_assert_eq!(member, "member-0");
                            }
                            pending = Some(request);
                        }
                        Effect::CountForcedTakeover => prop_assert!(may_count, "counted without removing a member"),
                        // Only the next in line takes over in one request:
                        // the last watches it set were on the leader, as
                        // its predecessor.
                        request @ Effect::TakeOver { .. } => {
                            if let Effect::TakeOver { leader_member, .. } = &request {
                                prop_assert_eq!(Some(leader_member.as_str()), next_in_line.as_deref());
                            }
                            pending = Some(request);
                        }
                        request @ Effect::WatchFollowing { .. } => {
                            if let Effect::WatchFollowing { predecessor, leader_member, .. } = &request {
                                next_in_line = leader_member.is_none().then(|| predecessor.clone());
                            }
                            pending = Some(request);
                        }
                        Effect::Stop => prop_assert_eq!(machine.waiting(), Wait::Stopped),
                        request if is_request(&request) => pending = Some(request),
                        _ => {}
                    }
                }
                if pending.is_none() {
                    prop_assert!(questions.is_empty(), "unanswered: {:?}", questions);
                    prop_assert_ne!(machine.waiting(), Wait::Answer);
                }
                if machine.waiting() == Wait::Stopped {
                    break;
                }
            }
        }
    }
}
