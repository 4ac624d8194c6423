//! ElectionActor: this node's part in the ZooKeeper election.
//!
//! One campaign task per actor: connect a session, create an ephemeral
//! sequential member znode, and then either lead (lowest sequence: claim the next
//! epoch with one multi-op, send `LeadershipGranted`) or watch only the member
//! just before ours. Leadership ends (`LeadershipRevoked`) when our member znode
//! is deleted (a standby forced a takeover, or the session expired), when the
//! session expires, when the database fence refuses a commit, or when asked to
//! resign; a leader merely disconnected from ZooKeeper leads on; the node
//! then joins again as a fresh member, at the back of the line.
//!
//! Every member knows the current leader at all times: a follower watches its
//! predecessor (the election order, no herd effect), the leader's member and
//! the epoch znode (who leads, under which epoch), and reports each change as
//! [`LeaderObserved`]. The leader proves its session alive every third of a
//! session timeout ([`LeaseConfirmed`]): leadership as the node reports it is a
//! lease on its own monotonic clock, never a memory.
//!
//! Handles [`Resign`], [`ForceTakeover`], [`ReclaimEpochAbove`],
//! [`ConfirmLeadership`] and [`Leave`].
//! ZooKeeper being down only delays: the task reconnects with backoff, and an
//! existing leader keeps working meanwhile (the database fence keeps it safe).

use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch};
use zookeeper_client::SessionState;

use crate::actors::messages::{
    ConfirmLeadership, ElectionEvents, ForceTakeover, LeaderObserved, LeadershipGranted,
    LeadershipRevoked, LeaseConfirmed, LeaseWitness, Leave, ReclaimEpochAbove, Resign,
    ZooKeeperConnectivity,
};
use crate::config::ZookeeperConfig;
use crate::election_order::{standing, Standing};
use crate::epoch::Epoch;
use crate::leader_liveness::NamedLeader;
use crate::leader_presence;
use crate::takeover_reason::TakeoverReason;
use crate::telemetry::node_metrics::NodeMetrics;
use crate::zookeeper::election_client::{ElectionError, ElectionSession, MemberInfo};

enum Command {
    Resign,
    ForceTakeover(String),
    ReclaimAbove(Epoch),
    Confirm(Epoch, oneshot::Sender<bool>),
    Leave(oneshot::Sender<()>),
}

/// The actor: forwards commands to its campaign task.
pub struct ElectionActor {
    zookeeper: ZookeeperConfig,
    cluster: String,
    me: MemberInfo,
    events: ElectionEvents,
    metrics: NodeMetrics,
    /// True once PostgreSQL's schema is current: a node joins no election
    /// before it could store what it would consume.
    schema: watch::Receiver<bool>,
    /// Holds the leader's presence answer (`None`: `node.detect_leader_crash` off).
    presence: Option<reqwest::Client>,
    commands: Option<mpsc::UnboundedSender<Command>>,
    /// Set by [`Leave`]: the campaign's end is then expected, not restarted.
    leaving: bool,
}

impl ElectionActor {
    /// An election in `cluster` for the node described by `me`.
    pub fn new(
        zookeeper: ZookeeperConfig,
        cluster: String,
        me: MemberInfo,
        events: ElectionEvents,
        metrics: NodeMetrics,
        schema: watch::Receiver<bool>,
        presence: Option<reqwest::Client>,
    ) -> Self {
        Self {
            zookeeper,
            cluster,
            me,
            events,
            metrics,
            schema,
            presence,
            commands: None,
            leaving: false,
        }
    }

    fn command(&self, command: Command) {
        if let Some(commands) = &self.commands {
            let _ = commands.send(command);
        }
    }
}

impl Actor for ElectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.commands = Some(sender);
        let campaign = Campaign {
            held: None,
            zookeeper: self.zookeeper.clone(),
            cluster: self.cluster.clone(),
            me: self.me.clone(),
            events: self.events.clone(),
            metrics: self.metrics.clone(),
            schema: self.schema.clone(),
            presence: self.presence.clone(),
            commands: receiver,
        };
        // The campaign runs on the multi-threaded runtime so ZooKeeper pings never
        // wait on this node's actors. If it ever ends, the supervisor restarts us.
        let task = tokio::spawn(campaign.run());
        ctx.spawn(
            async move {
                if let Err(error) = task.await {
                    tracing::error!(%error, "election campaign ended abnormally");
                }
            }
            .into_actor(self)
            .map(|(), actor, ctx| {
                if !actor.leaving {
                    ctx.stop();
                }
            }),
        );
    }
}

impl Supervised for ElectionActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        tracing::warn!("election actor restarting with a fresh session");
        self.commands = None;
    }
}

impl Handler<Resign> for ElectionActor {
    type Result = ();
    fn handle(&mut self, _message: Resign, _ctx: &mut Context<Self>) {
        self.command(Command::Resign);
    }
}

impl Handler<ForceTakeover> for ElectionActor {
    type Result = ();
    fn handle(&mut self, message: ForceTakeover, _ctx: &mut Context<Self>) {
        self.command(Command::ForceTakeover(message.instance_id));
    }
}

impl Handler<ReclaimEpochAbove> for ElectionActor {
    type Result = ();
    fn handle(&mut self, message: ReclaimEpochAbove, _ctx: &mut Context<Self>) {
        self.command(Command::ReclaimAbove(message.floor));
    }
}

impl Handler<ConfirmLeadership> for ElectionActor {
    type Result = ResponseFuture<bool>;
    fn handle(&mut self, message: ConfirmLeadership, _ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.command(Command::Confirm(message.epoch, reply));
        Box::pin(async move { answer.await.unwrap_or(false) })
    }
}

impl Handler<Leave> for ElectionActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _message: Leave, _ctx: &mut Context<Self>) -> Self::Result {
        self.leaving = true;
        let (done, left) = oneshot::channel();
        self.command(Command::Leave(done));
        Box::pin(async move {
            let _ = left.await;
        })
    }
}

/// What ends one stretch of leading or waiting.
enum Next {
    /// Look at the members again (same session, same member).
    Recheck,
    /// Join again with a new member znode (same session).
    Rejoin,
    /// Drop the session and connect a new one.
    Reconnect,
    /// Stop campaigning for good.
    Stop,
}

struct Campaign {
    /// An epoch we lead under while our ZooKeeper session is gone (ZooKeeper
    /// down or unreachable): given up when the next session finds another
    /// member first, replaced when it finds us first.
    held: Option<Epoch>,
    zookeeper: ZookeeperConfig,
    cluster: String,
    me: MemberInfo,
    events: ElectionEvents,
    metrics: NodeMetrics,
    schema: watch::Receiver<bool>,
    presence: Option<reqwest::Client>,
    commands: mpsc::UnboundedReceiver<Command>,
}

/// Why the next leader will lead, and since when its predecessor is gone.
struct Succession {
    reason: TakeoverReason,
    detected_at: chrono::DateTime<Utc>,
    previous_leader: Option<String>,
}

impl Campaign {
    /// Waits until the schema is current; false when asked to leave meanwhile.
    async fn schema_current(&mut self) -> bool {
        loop {
            tokio::select! {
                current = self.schema.wait_for(|current| *current) => return current.is_ok(),
                command = self.commands.recv() => match command {
                    Some(Command::Leave(done)) => {
                        let _ = done.send(());
                        return false;
                    }
                    // Not a member: nothing to confirm, resign or take over.
                    Some(Command::Confirm(_, answer)) => {
                        let _ = answer.send(false);
                    }
                    Some(_) => {}
                    None => return false,
                },
            }
        }
    }

    async fn run(mut self) {
        if !self.schema_current().await {
            return;
        }
        let session_timeout = self.session_timeout();
        let mut backoff = RECONNECT_BACKOFF_MIN;
        let mut succession = Succession {
            reason: TakeoverReason::InitialElection,
            detected_at: Utc::now(),
            previous_leader: None,
        };
        loop {
            let session =
                match ElectionSession::connect(&self.zookeeper, session_timeout, &self.cluster)
                    .await
                {
                    Ok(session) => session,
                    Err(error) => {
                        tracing::warn!(%error, ?backoff, "cannot reach zookeeper; retrying");
                        self.events
                            .connectivity
                            .do_send(ZooKeeperConnectivity { connected: false });
                        if self.wait_or_stop(backoff).await {
                            return;
                        }
                        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                        continue;
                    }
                };
            let connected_at = Instant::now();
            self.events
                .connectivity
                .do_send(ZooKeeperConnectivity { connected: true });
            // Every change of the session's state, whether the node leads,
            // follows or is between the two: a disconnection that the session
            // survives must end with `zookeeper_connected` back at 1.
            let reporter = tokio::spawn(report_connectivity(
                session.state_watcher(),
                self.events.connectivity.clone(),
            ));
            let next = self.campaign_in(&session, &mut succession).await;
            reporter.abort();
            drop(session);
            self.events
                .connectivity
                .do_send(ZooKeeperConnectivity { connected: false });
            self.events
                .observed
                .do_send(LeaderObserved { leader: None });
            if matches!(next, Next::Stop) {
                return;
            }
            // Every reconnect waits: a session that keeps failing at once (a
            // foreign znode, a refused operation) must not open thousands of
            // sessions against a shared server. Only a session that lived
            // long resets the wait.
            if connected_at.elapsed() > RECONNECT_BACKOFF_RESET {
                backoff = RECONNECT_BACKOFF_MIN;
            }
            if self.wait_or_stop(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        }
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.zookeeper.session_timeout_ms)
    }

    /// Longest wait for one ZooKeeper answer inside the lead loop: a request
    /// parked while the client is disconnected must not blind the loop to its
    /// commands and watches (measured: 19.7 s with a cut-off server).
    fn request_bound(session: &ElectionSession) -> Duration {
        (session.negotiated_timeout() / 3).max(Duration::from_millis(100))
    }

    /// Whether ZooKeeper confirms, within [`Campaign::request_bound`], that
    /// `member` exists; `None` when it did not answer in time or failed.
    async fn confirmed(session: &ElectionSession, member: &str) -> Option<bool> {
        tokio::time::timeout(Self::request_bound(session), session.confirm_member(member))
            .await
            .ok()?
            .ok()
    }

    /// Answers a [`ConfirmLeadership`] when this campaign does not lead: no.
    /// If the question is about the epoch held without a session, that
    /// leadership ends now (its heartbeat was refused: a newer leader exists).
    fn refuse_confirmation(&mut self, claimed: Epoch, reply: oneshot::Sender<bool>) {
        let _ = reply.send(false);
        if self.held == Some(claimed) {
            self.held = None;
            self.revoke(claimed, "heartbeat refused while leading without a session");
        }
    }

    /// Campaigns within one session until it must be replaced or the node leaves.
    async fn campaign_in(
        &mut self,
        session: &ElectionSession,
        succession: &mut Succession,
    ) -> Next {
        let mut state = session.state_watcher();
        'member: loop {
            let member = match session.join(&self.me).await {
                Ok(member) => member,
                Err(error) => {
                    tracing::warn!(%error, "could not join the election");
                    return Next::Reconnect;
                }
            };
            tracing::info!(%member, "joined the election");
            loop {
                let step = match self.observe(session, &member).await {
                    Err(error) => {
                        tracing::warn!(%error, "election read failed");
                        return Next::Reconnect;
                    }
                    Ok(Observation::Absent) => Next::Rejoin,
                    Ok(Observation::Leader) => {
                        let next = self.lead(session, &member, succession, &mut state).await;
                        // Whatever ended it, leadership was lost now: if this
                        // node wins again, it rejoined, and nobody failed over.
                        *succession = Succession {
                            reason: TakeoverReason::Rejoined,
                            detected_at: Utc::now(),
                            previous_leader: Some(self.me.instance_id.clone()),
                        };
                        next
                    }
                    Ok(Observation::Follower(following))
                        if following.leader.info.as_ref().map(|info| &info.instance_id)
                            == Some(&self.me.instance_id) =>
                    {
                        // Our own member from an abandoned session, not yet
                        // expired by the server: it must not outrank us.
                        if let Err(error) = session.delete_member(&following.leader.member).await {
                            tracing::warn!(%error, "could not delete our stale member znode");
                            return Next::Reconnect;
                        }
                        Next::Recheck
                    }
                    Ok(Observation::Follower(_)) if self.held.is_some() => {
                        if let Some(held) = self.held.take() {
                            self.revoke(held, "another member leads after zookeeper returned");
                        }
                        Next::Recheck
                    }
                    Ok(Observation::Follower(following)) => {
                        self.follow(session, &member, following, succession, &mut state)
                            .await
                    }
                };
                match step {
                    Next::Recheck => continue,
                    Next::Rejoin => continue 'member,
                    other => return other,
                }
            }
        }
    }

    async fn observe(
        &self,
        session: &ElectionSession,
        member: &str,
    ) -> Result<Observation, ElectionError> {
        let children = session.children().await?;
        Ok(match standing(member, &children) {
            Standing::Absent => Observation::Absent,
            Standing::Leader => Observation::Leader,
            Standing::Follower {
                predecessor,
                leader,
            } => Observation::Follower(Following {
                leader: LeaderMember {
                    info: session.member_info(&leader).await?,
                    member: leader,
                },
                predecessor,
            }),
        })
    }

    async fn lead(
        &mut self,
        session: &ElectionSession,
        member: &str,
        succession: &mut Succession,
        state: &mut zookeeper_client::StateWatcher,
    ) -> Next {
        // What ZooKeeper granted, not what was asked: a server clamps the
        // session to its own bounds, and a lease on the asked value would
        // outlive the real session.
        let session_timeout = session.negotiated_timeout();
        let claim_sent = Instant::now();
        let mut epoch = match session.claim_epoch(member, Epoch::ZERO).await {
            Ok(epoch) => epoch,
            Err(ElectionError::NotMember) => return Next::Rejoin,
            Err(error) => {
                tracing::warn!(%error, "could not claim an epoch");
                return Next::Reconnect;
            }
        };
        self.held = None;
        tracing::info!(%epoch, %member, reason = %succession.reason, "acquired leadership");
        self.grant(epoch, succession, claim_sent + session_timeout);
        let mut own_changed = match session.watch_member(member).await {
            Ok(Some(watch)) => Box::pin(watch.changed()),
            Ok(None) => {
                self.revoke(epoch, "member znode is gone");
                return Next::Rejoin;
            }
            Err(error) => {
                tracing::warn!(%error, %epoch, "could not watch our member znode; leading on under the database fence");
                self.held = Some(epoch);
                return Next::Reconnect;
            }
        };
        let mut confirm = tokio::time::interval(session_timeout / 3);
        confirm.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut own_changed => {
                    if session.state().is_terminated() {
                        return self.hold(epoch);
                    }
                    match session.watch_member(member).await {
                        // A data change or a reconnect: still ours.
                        Ok(Some(watch)) => own_changed = Box::pin(watch.changed()),
                        _ => {
                            self.revoke(epoch, "member znode deleted (forced takeover or session expiry)");
                            return Next::Rejoin;
                        }
                    }
                }
                changed = state.changed() => {
                    if changed.is_terminated() {
                        return self.hold(epoch);
                    }
                    // Disconnected is not lost: ZooKeeper may be restarting, and
                    // if the session did expire, a successor's fence in
                    // PostgreSQL refuses our next commit and we step down then.
                    // The lease runs out meanwhile, so the node stops saying
                    // it leads.
                    if !connected(changed) {
                        tracing::warn!(%epoch, "zookeeper disconnected; leading on under the database fence");
                    }
                }
                _ = confirm.tick() => {
                    let sent = Instant::now();
                    match Self::confirmed(session, member).await {
                        Some(true) => self.events.lease.do_send(LeaseConfirmed {
                            epoch,
                            sent,
                            valid_until: sent + session_timeout,
                            witness: LeaseWitness::ZooKeeper,
                        }),
                        Some(false) => {
                            self.revoke(epoch, "member znode is gone");
                            return Next::Rejoin;
                        }
                        None => tracing::debug!(%epoch, "zookeeper did not confirm the session in time"),
                    }
                }
                command = self.commands.recv() => match command {
                    Some(Command::Resign) => {
                        self.revoke(epoch, "stepped down");
                        return match session.delete_member(member).await {
                            Ok(()) => Next::Rejoin,
                            Err(error) => {
                                tracing::warn!(%error, "could not delete our member znode");
                                Next::Reconnect
                            }
                        };
                    }
                    Some(Command::ReclaimAbove(floor)) => {
                        let claim_sent = Instant::now();
                        match session.claim_epoch(member, floor).await {
                            Ok(claimed) => {
                                tracing::info!(%claimed, %floor, "reclaimed an epoch above the database fence");
                                self.revoke(epoch, "epoch superseded by reclaim");
                                epoch = claimed;
                                // The same node leads on: no failover.
                                succession.reason = TakeoverReason::Rejoined;
                                self.grant(epoch, succession, claim_sent + session_timeout);
                            }
                            Err(error) => {
                                tracing::warn!(%error, "could not reclaim an epoch");
                                self.revoke(epoch, "could not reclaim an epoch");
                                return Next::Rejoin;
                            }
                        }
                    }
                    Some(Command::Confirm(claimed, reply)) if claimed != epoch => {
                        let _ = reply.send(false);
                    }
                    Some(Command::Confirm(_, reply)) => match Self::confirmed(session, member).await {
                        Some(true) => {
                            let _ = reply.send(true);
                        }
                        Some(false) => {
                            let _ = reply.send(false);
                            self.revoke(epoch, "heartbeat refused and our member znode is gone");
                            return Next::Rejoin;
                        }
                        None => {
                            // ZooKeeper cannot vouch for us: step down, and
                            // close the session rather than delete the member
                            // over a connection that does not answer.
                            let _ = reply.send(false);
                            self.revoke(epoch, "heartbeat refused and zookeeper cannot confirm our leadership");
                            return Next::Reconnect;
                        }
                    },
                    Some(Command::ForceTakeover(_)) => {}
                    Some(Command::Leave(done)) => {
                        let _ = session.delete_member(member).await;
                        self.revoke(epoch, "node shutting down");
                        let _ = done.send(());
                        return Next::Stop;
                    }
                    None => return Next::Stop,
                },
            }
        }
    }

    /// Tells the coordinator it leads under `epoch`, proven until `lease_until`.
    fn grant(&self, epoch: Epoch, succession: &Succession, lease_until: Instant) {
        self.events.observed.do_send(LeaderObserved {
            leader: Some(NamedLeader {
                instance_id: self.me.instance_id.clone(),
                epoch,
            }),
        });
        self.events.granted.do_send(LeadershipGranted {
            epoch,
            reason: succession.reason,
            detected_at: succession.detected_at,
            previous_leader: succession.previous_leader.clone(),
            lease_until,
        });
    }

    async fn follow(
        &mut self,
        session: &ElectionSession,
        member: &str,
        following: Following,
        succession: &mut Succession,
        state: &mut zookeeper_client::StateWatcher,
    ) -> Next {
        let Following {
            predecessor,
            leader,
        } = following;
        let leader_instance = leader.info.as_ref().map(|info| info.instance_id.clone());
        if leader_instance.is_some() {
            succession.previous_leader = leader_instance.clone();
        }
        let departed = |succession: &mut Succession| {
            succession.detected_at = Utc::now();
            succession.reason = if predecessor == leader.member {
                TakeoverReason::LeaderDeparted
            } else {
                TakeoverReason::PredecessorDeparted
            };
        };
        let predecessor_watch = match session.watch_member(&predecessor).await {
            Ok(Some(watch)) => watch,
            // Gone before the watch was set: a departure all the same.
            Ok(None) => {
                departed(succession);
                return Next::Recheck;
            }
            Err(error) => {
                tracing::warn!(%error, "could not watch our predecessor");
                return Next::Reconnect;
            }
        };
        // Who leads, beyond our predecessor: a second watch, so that a leader
        // that is not our predecessor is still known (and judged) by us.
        let leader_watch = if leader.member == predecessor {
            None
        } else {
            match session.watch_member(&leader.member).await {
                Ok(Some(watch)) => Some(watch),
                Ok(None) => return Next::Recheck,
                Err(error) => {
                    tracing::warn!(%error, "could not watch the leader");
                    return Next::Reconnect;
                }
            }
        };
        let (epoch, epoch_watch) = match session.watch_epoch().await {
            Ok((epoch, watch)) => (Some(epoch), Some(watch)),
            Err(ElectionError::MalformedEpoch(text)) => {
                tracing::error!(stored = %text, "the epoch znode holds no epoch; the leader cannot be judged");
                (None, None)
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the epoch");
                return Next::Reconnect;
            }
        };
        // Only the next in line holds the leader's presence: it is the one to
        // take over, so one connection per leader, and the takeover's reason
        // is the one it saw.
        let next_in_line = (predecessor == leader.member)
            .then_some(leader.info.as_ref())
            .flatten();
        self.events.observed.do_send(LeaderObserved {
            leader: leader_instance
                .clone()
                .zip(epoch)
                .map(|(instance_id, epoch)| NamedLeader { instance_id, epoch }),
        });
        tokio::select! {
            _ = predecessor_watch.changed() => {
                departed(succession);
                Next::Recheck
            }
            () = changed_or_pending(leader_watch) => Next::Recheck,
            () = changed_or_pending(epoch_watch) => Next::Recheck,
            () = leader_process_gone(self.presence.as_ref(), next_in_line) => {
                // Detected now: the delete's round trip is part of the recovery.
                succession.reason = TakeoverReason::LeaderProcessGone;
                succession.detected_at = Utc::now();
                tracing::warn!(leader = ?leader_instance, member = %leader.member, "the leader's process is gone (its address refused us); forcing the takeover");
                match session.delete_member(&leader.member).await {
                    Ok(()) => self.metrics.forced_takeover(),
                    Err(error) => tracing::warn!(%error, "could not delete the dead leader's member znode"),
                }
                Next::Recheck
            }
            () = session_lost(state, session.negotiated_timeout()) => Next::Reconnect,
            command = self.commands.recv() => match command {
                Some(Command::ForceTakeover(stale)) => {
                    if leader_instance.as_deref() == Some(stale.as_str()) {
                        tracing::warn!(leader = %stale, member = %leader.member, "forcing a takeover from a hung leader");
                        match session.delete_member(&leader.member).await {
                            Ok(()) => self.metrics.forced_takeover(),
                            Err(error) => tracing::warn!(%error, "could not delete the hung leader's member znode"),
                        }
                        succession.reason = TakeoverReason::ForcedTakeover;
                        succession.detected_at = Utc::now();
                    }
                    Next::Recheck
                }
                Some(Command::Leave(done)) => {
                    let _ = session.delete_member(member).await;
                    let _ = done.send(());
                    Next::Stop
                }
                Some(Command::Confirm(claimed, reply)) => {
                    self.refuse_confirmation(claimed, reply);
                    Next::Recheck
                }
                Some(Command::Resign | Command::ReclaimAbove(_)) => Next::Recheck,
                None => Next::Stop,
            },
        }
    }

    /// Our session expired while leading: lead on under `epoch` (the database
    /// fence refuses it once a successor takes over) and campaign again.
    fn hold(&mut self, epoch: Epoch) -> Next {
        tracing::warn!(%epoch, "zookeeper session expired while leading; leading on under the database fence until a new session decides");
        self.held = Some(epoch);
        Next::Reconnect
    }

    fn revoke(&self, epoch: Epoch, reason: &str) {
        tracing::warn!(%epoch, reason, "leadership revoked");
        self.events.revoked.do_send(LeadershipRevoked {
            epoch,
            reason: reason.to_owned(),
        });
    }

    /// Sleeps for `delay`; true when told to leave meanwhile.
    async fn wait_or_stop(&mut self, delay: Duration) -> bool {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return false,
                command = self.commands.recv() => match command {
                    Some(Command::Leave(done)) => {
                        let _ = done.send(());
                        return true;
                    }
                    Some(Command::Confirm(claimed, reply)) => {
                        self.refuse_confirmation(claimed, reply);
                    }
                    Some(_) => {}
                    None => return true,
                },
            }
        }
    }
}

/// The first wait before a new ZooKeeper session.
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait before a new ZooKeeper session.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A session that lived this long resets the wait: it failed, but not at once.
const RECONNECT_BACKOFF_RESET: Duration = Duration::from_secs(30);

/// Resolves when the leader's process is proven gone ([`leader_presence`]);
/// never when the check is off or the leader's address is unknown.
async fn leader_process_gone(client: Option<&reqwest::Client>, leader: Option<&MemberInfo>) {
    match (client, leader) {
        (Some(client), Some(leader)) => {
            leader_presence::process_gone(client, &leader.http_url, &leader.instance_id).await;
        }
        _ => std::future::pending().await,
    }
}

/// Whether a session in `state` can serve requests.
fn connected(state: SessionState) -> bool {
    matches!(
        state,
        SessionState::SyncConnected | SessionState::ConnectedReadOnly
    )
}

/// Tells the coordinator every change of the session's state, until the
/// session ends.
async fn report_connectivity(
    mut state: zookeeper_client::StateWatcher,
    connectivity: Recipient<ZooKeeperConnectivity>,
) {
    loop {
        let changed = state.changed().await;
        connectivity.do_send(ZooKeeperConnectivity {
            connected: connected(changed),
        });
        if changed.is_terminated() {
            return;
        }
    }
}

/// Resolves when `watch` fires; never when there is none.
async fn changed_or_pending(watch: Option<zookeeper_client::OneshotWatcher>) {
    match watch {
        Some(watch) => {
            watch.changed().await;
        }
        None => std::future::pending().await,
    }
}

enum Observation {
    Absent,
    Leader,
    Follower(Following),
}

/// Where a follower stands: whom it watches, and who leads.
struct Following {
    predecessor: String,
    leader: LeaderMember,
}

struct LeaderMember {
    member: String,
    info: Option<MemberInfo>,
}

/// Resolves when the session is gone for good: expired or closed, or
/// disconnected for longer than its timeout (by then the server has expired it
/// and another member may lead).
async fn session_lost(state: &mut zookeeper_client::StateWatcher, session_timeout: Duration) {
    loop {
        match state.changed().await {
            SessionState::Disconnected => {
                let reconnected = tokio::time::timeout(session_timeout, async {
                    loop {
                        match state.changed().await {
                            up if connected(up) => return true,
                            terminal if terminal.is_terminated() => return false,
                            _ => {}
                        }
                    }
                })
                .await;
                if reconnected != Ok(true) {
                    return;
                }
            }
            terminal if terminal.is_terminated() => return,
            _ => {}
        }
    }
}
