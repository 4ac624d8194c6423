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
//! Handles [`Resign`], [`ForceTakeover`], [`ReclaimEpochAbove`] and [`Leave`].
//! ZooKeeper being down only delays: the task reconnects with backoff, and an
//! existing leader keeps working meanwhile (the database fence keeps it safe).

use std::time::Duration;

use actix::prelude::*;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use zookeeper_client::SessionState;

use crate::actors::node_coordinator::{
    LeaderObserved, LeadershipGranted, LeadershipRevoked, NodeCoordinator, ZooKeeperConnectivity,
};
use crate::config::ZookeeperConfig;
use crate::election_order::{standing, Standing};
use crate::epoch::Epoch;
use crate::telemetry::node_metrics::NodeMetrics;
use crate::zookeeper::election_client::{ElectionError, ElectionSession, MemberInfo};

/// Give up leadership (delete our member znode) and join again at the back.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resign;

/// Delete the leader's member znode if the leader is `instance_id`: it is
/// connected to ZooKeeper but its heartbeat is stale (hung).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForceTakeover {
    /// The instance whose heartbeat went stale.
    pub instance_id: String,
}

/// Claim a new epoch above `floor`: the database fence holds `floor`, which
/// ZooKeeper's epoch znode has not reached (its data was lost).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReclaimEpochAbove {
    /// The epoch the fence holds.
    pub floor: Epoch,
}

/// Delete our member znode and close the session; answers when done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

enum Command {
    Resign,
    ForceTakeover(String),
    ReclaimAbove(Epoch),
    Leave(oneshot::Sender<()>),
}

/// The actor: forwards commands to its campaign task.
pub struct ElectionActor {
    zookeeper: ZookeeperConfig,
    cluster: String,
    me: MemberInfo,
    coordinator: Addr<NodeCoordinator>,
    metrics: NodeMetrics,
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
        coordinator: Addr<NodeCoordinator>,
        metrics: NodeMetrics,
    ) -> Self {
        Self {
            zookeeper,
            cluster,
            me,
            coordinator,
            metrics,
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
            coordinator: self.coordinator.clone(),
            metrics: self.metrics.clone(),
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
    coordinator: Addr<NodeCoordinator>,
    metrics: NodeMetrics,
    commands: mpsc::UnboundedReceiver<Command>,
}

/// Why the next leader will lead, and since when its predecessor is gone.
struct Succession {
    reason: String,
    detected_at: chrono::DateTime<Utc>,
    previous_leader: Option<String>,
}

impl Campaign {
    async fn run(mut self) {
        let session_timeout = Duration::from_millis(self.zookeeper.session_timeout_ms);
        let mut backoff = Duration::from_millis(100);
        let mut succession = Succession {
            reason: "initial election".to_owned(),
            detected_at: Utc::now(),
            previous_leader: None,
        };
        loop {
            let session = match ElectionSession::connect(
                &self.zookeeper.connect,
                &self.zookeeper.digest_auth,
                session_timeout,
                &self.zookeeper.root,
                &self.cluster,
            )
            .await
            {
                Ok(session) => session,
                Err(error) => {
                    tracing::warn!(%error, ?backoff, "cannot reach zookeeper; retrying");
                    self.coordinator
                        .do_send(ZooKeeperConnectivity { connected: false });
                    if self.wait_or_stop(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            self.coordinator
                .do_send(ZooKeeperConnectivity { connected: true });
            let next = self.campaign_in(&session, &mut succession).await;
            drop(session);
            self.coordinator
                .do_send(ZooKeeperConnectivity { connected: false });
            if matches!(next, Next::Stop) {
                return;
            }
        }
    }

    /// Campaigns within one session until it must be replaced or the node leaves.
    async fn campaign_in(
        &mut self,
        session: &ElectionSession,
        succession: &mut Succession,
    ) -> Next {
        let session_timeout = Duration::from_millis(self.zookeeper.session_timeout_ms);
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
                        self.lead(session, &member, succession, &mut state).await
                    }
                    Ok(Observation::Follower { leader, .. })
                        if leader.info.as_ref().map(|info| &info.instance_id)
                            == Some(&self.me.instance_id) =>
                    {
                        // Our own member from an abandoned session, not yet
                        // expired by the server: it must not outrank us.
                        if let Err(error) = session.delete_member(&leader.member).await {
                            tracing::warn!(%error, "could not delete our stale member znode");
                            return Next::Reconnect;
                        }
                        Next::Recheck
                    }
                    Ok(Observation::Follower { .. }) if self.held.is_some() => {
                        if let Some(held) = self.held.take() {
                            self.revoke(held, "another member leads after zookeeper returned");
                        }
                        Next::Recheck
                    }
                    Ok(Observation::Follower {
                        predecessor,
                        leader,
                    }) => {
                        self.follow(
                            session,
                            &member,
                            &predecessor,
                            leader,
                            succession,
                            &mut state,
                            session_timeout,
                        )
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
            } => Observation::Follower {
                leader: LeaderMember {
                    info: session.member_info(&leader).await?,
                    member: leader,
                },
                predecessor,
            },
        })
    }

    async fn lead(
        &mut self,
        session: &ElectionSession,
        member: &str,
        succession: &mut Succession,
        state: &mut zookeeper_client::StateWatcher,
    ) -> Next {
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
        self.coordinator.do_send(LeaderObserved {
            instance_id: Some(self.me.instance_id.clone()),
        });
        self.coordinator.do_send(LeadershipGranted {
            epoch,
            reason: succession.reason.clone(),
            detected_at: succession.detected_at,
            previous_leader: succession.previous_leader.clone(),
        });
        'watch: loop {
            let own = match session.watch_member(member).await {
                Ok(Some(watch)) => watch,
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
            let own_changed = own.changed();
            tokio::pin!(own_changed);
            loop {
                tokio::select! {
                    _ = &mut own_changed => {
                        if session.state().is_terminated() {
                            return self.hold(epoch);
                        }
                        if matches!(session.watch_member(member).await, Ok(Some(_))) {
                            continue 'watch;
                        }
                        self.revoke(epoch, "member znode deleted (forced takeover or session expiry)");
                        *succession = Succession {
                            reason: "rejoined after losing leadership".to_owned(),
                            detected_at: Utc::now(),
                            previous_leader: Some(self.me.instance_id.clone()),
                        };
                        return Next::Rejoin;
                    }
                    changed = state.changed() => {
                        if changed.is_terminated() {
                            return self.hold(epoch);
                        }
                        // Disconnected is not lost: ZooKeeper may be restarting, and
                        // if the session did expire, a successor's fence in
                        // PostgreSQL refuses our next commit and we step down then.
                        let connected = matches!(
                            changed,
                            SessionState::SyncConnected | SessionState::ConnectedReadOnly
                        );
                        if !connected {
                            tracing::warn!(%epoch, "zookeeper disconnected; leading on under the database fence");
                        }
                        self.coordinator.do_send(ZooKeeperConnectivity { connected });
                        continue;
                    }
                    command = self.commands.recv() => match command {
                        Some(Command::Resign) => {
                            if let Err(error) = session.delete_member(member).await {
                                tracing::warn!(%error, "could not delete our member znode");
                                self.revoke(epoch, "stepped down");
                                return Next::Reconnect;
                            }
                            self.revoke(epoch, "stepped down");
                            return Next::Rejoin;
                        }
                        Some(Command::ReclaimAbove(floor)) => {
                            match session.claim_epoch(member, floor).await {
                                Ok(claimed) => {
                                    tracing::info!(%claimed, %floor, "reclaimed an epoch above the database fence");
                                    self.revoke(epoch, "epoch superseded by reclaim");
                                    epoch = claimed;
                                    self.coordinator.do_send(LeadershipGranted {
                                        epoch,
                                        reason: succession.reason.clone(),
                                        detected_at: succession.detected_at,
                                        previous_leader: succession.previous_leader.clone(),
                                    });
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "could not reclaim an epoch");
                                    self.revoke(epoch, "could not reclaim an epoch");
                                    return Next::Rejoin;
                                }
                            }
                        }
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
                break;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn follow(
        &mut self,
        session: &ElectionSession,
        member: &str,
        predecessor: &str,
        leader: LeaderMember,
        succession: &mut Succession,
        state: &mut zookeeper_client::StateWatcher,
        session_timeout: Duration,
    ) -> Next {
        let leader_instance = leader.info.as_ref().map(|info| info.instance_id.clone());
        self.coordinator.do_send(LeaderObserved {
            instance_id: leader_instance.clone(),
        });
        if leader_instance.is_some() {
            succession.previous_leader = leader_instance.clone();
        }
        let departed = |succession: &mut Succession| {
            succession.detected_at = Utc::now();
            succession.reason = if predecessor == leader.member {
                "leader departed".to_owned()
            } else {
                "predecessor departed".to_owned()
            };
        };
        let watch = match session.watch_member(predecessor).await {
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
        tokio::select! {
            _ = watch.changed() => {
                departed(succession);
                Next::Recheck
            }
            () = session_lost(state, session_timeout) => Next::Reconnect,
            command = self.commands.recv() => match command {
                Some(Command::ForceTakeover(stale)) => {
                    if leader_instance.as_deref() == Some(stale.as_str()) {
                        tracing::warn!(leader = %stale, member = %leader.member, "forcing a takeover from a hung leader");
                        match session.delete_member(&leader.member).await {
                            Ok(()) => self.metrics.forced_takeover(),
                            Err(error) => tracing::warn!(%error, "could not delete the hung leader's member znode"),
                        }
                        succession.reason = "forced takeover: leader heartbeat stale".to_owned();
                        succession.detected_at = Utc::now();
                    }
                    Next::Recheck
                }
                Some(Command::Leave(done)) => {
                    let _ = session.delete_member(member).await;
                    let _ = done.send(());
                    Next::Stop
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
        self.coordinator.do_send(LeadershipRevoked {
            epoch,
            reason: reason.to_owned(),
        });
    }

    /// Sleeps for `delay`; true when told to leave meanwhile.
    async fn wait_or_stop(&mut self, delay: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(delay) => false,
            command = self.commands.recv() => match command {
                Some(Command::Leave(done)) => {
                    let _ = done.send(());
                    true
                }
                Some(_) => false,
                None => true,
            },
        }
    }
}

enum Observation {
    Absent,
    Leader,
    Follower {
        predecessor: String,
        leader: LeaderMember,
    },
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
                            SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                                return true
                            }
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
