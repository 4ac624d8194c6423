//! Owns the I/O of one election campaign: performs the [`ElectionMachine`]'s
//! effects with an [`ElectionSession`] and the coordinator's recipients, and
//! turns ZooKeeper's answers, its watches, timers and the coordinator's
//! commands into the machine's inputs. It decides nothing.
//!
//! The campaign runs on the multi-threaded runtime so ZooKeeper pings never
//! wait on this node's actors.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::select_all;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Interval, MissedTickBehavior, Sleep};
use zookeeper_client::{
    Error as ZkError, EventType, SessionInfo, SessionState, StateWatcher, WatchedEvent,
};

use super::machine::{
    Command, Effect, ElectionMachine, Following, Input, Now, Observation, Request, Wait,
};
use crate::config::ZookeeperConfig;
use crate::node::election::order::{standing, Standing};
use crate::node::election::presence;
use crate::node::election::session::{ElectionError, ElectionSession, MemberInfo};
use crate::node::messages::{
    ElectionEvents, LeaderObserved, LeadershipGranted, LeadershipRevoked, LeaseConfirmed,
    LeaseWitness, ZooKeeperConnectivity,
};
use crate::node::metrics::NodeMetrics;

/// Where the answer to a [`Command::Confirm`] goes.
pub(super) type Reply = oneshot::Sender<bool>;

/// What the actor hands its campaign.
pub(super) enum Order {
    /// A command for the machine.
    Command(Command<Reply>),
    /// Leave the election; answered once the member is gone.
    Leave(oneshot::Sender<()>),
}

/// A watch or check that ends in one input.
type Pending = Pin<Box<dyn Future<Output = Input<Reply>> + Send>>;

/// What a campaign needs to know and whom it tells: the same for every
/// campaign of one node.
#[derive(Clone)]
pub struct CampaignSetup {
    /// Where ZooKeeper is, and how to reach it.
    pub zookeeper: ZookeeperConfig,
    /// The cluster whose election this is.
    pub cluster: String,
    /// What our member znode publishes.
    pub me: MemberInfo,
    /// Where leadership news goes.
    pub events: ElectionEvents,
    /// Where forced takeovers are counted.
    pub metrics: NodeMetrics,
    /// True once PostgreSQL's schema is current: a node joins no election
    /// before it could store what it would consume.
    pub schema: watch::Receiver<bool>,
    /// Holds the leader's presence answer (`None`: `node.detect_leader_crash` off).
    pub presence: Option<reqwest::Client>,
}

/// One ZooKeeper campaign: the machine, and the I/O it asks for.
pub(super) struct Driver {
    /// Shared with the actor, so a restarted campaign remembers what it held.
    pub(super) machine: Arc<Mutex<ElectionMachine>>,
    pub(super) setup: CampaignSetup,
    pub(super) orders: mpsc::UnboundedReceiver<Order>,
}

/// A session and the task reporting its connectivity.
struct LiveSession {
    session: ElectionSession,
    state: StateWatcher,
    reporter: JoinHandle<()>,
    /// The campaign saw it end (a watch can tell before the client's state).
    ended: bool,
}

impl Drop for LiveSession {
    fn drop(&mut self) {
        self.reporter.abort();
    }
}

/// What the machine's waits are made of; replaced as it moves on.
#[derive(Default)]
struct Waits {
    backoff: Option<Pin<Box<Sleep>>>,
    own_member: Option<Pending>,
    confirm: Option<Interval>,
    following: Vec<Pending>,
}

/// Everything the campaign holds besides the machine and its orders.
struct Io {
    session: Option<LiveSession>,
    /// What reopens the last session closed, for [`Effect::Resume`]: kept
    /// until a server answers a reopen, or a new session is opened.
    to_reopen: Option<SessionInfo>,
    waits: Waits,
    leavers: Vec<oneshot::Sender<()>>,
}

impl Driver {
    /// Runs the campaign until the machine stops.
    pub(super) async fn run(mut self) {
        let mut io = Io {
            session: None,
            to_reopen: None,
            waits: Waits::default(),
            leavers: Vec::new(),
        };
        let mut effects = VecDeque::new();
        loop {
            while let Some(effect) = effects.pop_front() {
                if matches!(effect, Effect::Stop) {
                    io.session = None;
                    for leaver in io.leavers.drain(..) {
                        let _ = leaver.send(());
                    }
                    return;
                }
                if let Some(answer) = self.perform(effect, &mut io).await {
                    effects.extend(self.step(answer));
                }
            }
            let input = self.wait(&mut io).await;
            if matches!(input, Input::SessionEnded) {
                if let Some(live) = io.session.as_mut() {
                    live.ended = true;
                }
            }
            effects.extend(self.step(input));
        }
    }

    fn step(&self, input: Input<Reply>) -> Vec<Effect<Reply>> {
        self.machine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .step(input, Now::current())
    }

    fn waiting(&self) -> (Wait, Duration) {
        let machine = self.machine.lock().unwrap_or_else(PoisonError::into_inner);
        (machine.waiting(), machine.session_timeout())
    }

    /// The lease tick: one for as long as this session leads, so a reclaim
    /// keeps it; a fresh one ticks at once.
    fn lease_tick(confirm: &mut Option<Interval>, session_timeout: Duration) -> &mut Interval {
        confirm.get_or_insert_with(|| {
            let mut confirm =
                tokio::time::interval((session_timeout / 3).max(Duration::from_millis(1)));
            confirm.set_missed_tick_behavior(MissedTickBehavior::Delay);
            confirm
        })
    }

    /// Waits for what the machine waits for, or a command.
    async fn wait(&mut self, io: &mut Io) -> Input<Reply> {
        let (waiting, session_timeout) = self.waiting();
        let orders = &mut self.orders;
        let leavers = &mut io.leavers;
        match waiting {
            Wait::Schema => tokio::select! {
                current = self.setup.schema.wait_for(|current| *current) => match current {
                    Ok(_) => Input::SchemaCurrent,
                    Err(_) => Input::CommandsClosed,
                },
                order = next_order(orders, leavers) => order,
            },
            Wait::Backoff => {
                let backoff = io.waits.backoff.as_mut();
                tokio::select! {
                    () = optional(backoff) => Input::BackoffElapsed,
                    order = next_order(orders, leavers) => order,
                }
            }
            Wait::Leading => loop {
                let Some(live) = io.session.as_mut() else {
                    return Input::SessionEnded;
                };
                let Waits {
                    own_member,
                    confirm,
                    ..
                } = &mut io.waits;
                let confirm = Self::lease_tick(confirm, session_timeout);
                tokio::select! {
                    input = optional(own_member.as_mut()) => {
                        *own_member = None;
                        return input;
                    }
                    changed = live.state.changed() => {
                        if changed.is_terminated() {
                            return Input::SessionEnded;
                        }
                        // Disconnected is not lost: ZooKeeper may be
                        // restarting, and if the session did expire, a
                        // successor's fence in PostgreSQL refuses our next
                        // commit and we step down then. The lease runs out
                        // meanwhile, so the node stops saying it leads.
                        if !connected(changed) {
                            tracing::warn!("zookeeper disconnected; leading on under the database fence");
                        }
                    }
                    _ = confirm.tick() => return Input::ConfirmDue,
                    order = next_order(orders, leavers) => return order,
                }
            },
            Wait::Following => {
                let Some(live) = io.session.as_mut() else {
                    return Input::SessionEnded;
                };
                let watches = std::mem::take(&mut io.waits.following);
                let current = live.session.state();
                tokio::select! {
                    input = first_of(watches) => input,
                    () = session_ended(&mut live.state, current) => Input::SessionEnded,
                    order = next_order(orders, leavers) => order,
                }
            }
            Wait::Answer => {
                tracing::error!(
                    "the election expects an answer no request will give; starting over"
                );
                Input::SessionEnded
            }
            Wait::Stopped => Input::CommandsClosed,
        }
    }

    /// Performs one effect; returns the answer of a request.
    async fn perform(&mut self, effect: Effect<Reply>, io: &mut Io) -> Option<Input<Reply>> {
        // These begin a new round (or session): what the last one waited on
        // is dropped, so no watch outlives the round, or the session, it was set in.
        if matches!(
            effect,
            Effect::Connect
                | Effect::Resume
                | Effect::CloseSession
                | Effect::Sleep(_)
                | Effect::Join
                | Effect::Observe { .. }
                | Effect::TakeOver { .. }
        ) {
            io.waits = Waits::default();
        }
        match effect {
            Effect::Connect => {
                io.to_reopen = None;
                Some(self.connect(io, None).await)
            }
            // Nothing to reopen (the session dropped was live and would be
            // closed, or there was none): a new one is what is left.
            Effect::Resume => Some(match io.to_reopen.clone() {
                Some(ended) => self.connect(io, Some(ended)).await,
                None => Input::ResumeRefused,
            }),
            Effect::CloseSession => {
                io.to_reopen = io
                    .session
                    .take()
                    .and_then(|live| live.session.reopenable(live.ended));
                self.setup
                    .events
                    .connectivity
                    .do_send(ZooKeeperConnectivity { connected: false });
                None
            }
            Effect::Sleep(delay) => {
                io.waits.backoff = Some(Box::pin(tokio::time::sleep(delay)));
                None
            }
            Effect::Join => {
                let session = &io.session.as_ref()?.session;
                Some(match session.join(&self.setup.me).await {
                    Ok(member) => {
                        tracing::info!(%member, "joined the election");
                        Input::Joined { member }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not join the election");
                        Input::Failed(Request::Join)
                    }
                })
            }
            Effect::Observe { member } => {
                let session = &io.session.as_ref()?.session;
                Some(match observe(session, &member).await {
                    Ok(observation) => Input::Observed(observation),
                    Err(error) => {
                        tracing::warn!(%error, "election read failed");
                        Input::Failed(Request::Observe)
                    }
                })
            }
            Effect::ClaimEpoch { member, floor } => {
                let session = &io.session.as_ref()?.session;
                let sent = Instant::now();
                Some(match session.claim_epoch(&member, floor, None).await {
                    Ok(epoch) => Input::EpochClaimed { epoch, sent },
                    Err(ElectionError::NotMember) => Input::NotMember,
                    Err(error) => {
                        tracing::warn!(%error, %floor, "could not claim an epoch");
                        Input::Failed(Request::Claim)
                    }
                })
            }
            Effect::TakeOver {
                member,
                leader_member,
                floor,
            } => {
                let session = &io.session.as_ref()?.session;
                let sent = Instant::now();
                Some(
                    match session
                        .claim_epoch(&member, floor, Some(&leader_member))
                        .await
                    {
                        Ok(epoch) => Input::EpochClaimed { epoch, sent },
                        Err(ElectionError::NotMember | ElectionError::ReplacedMemberGone) => {
                            tracing::info!(%leader_member, "the takeover found its member or the leader's gone; reading the members again");
                            Input::TakeoverRefused
                        }
                        Err(error) => {
                            tracing::warn!(%error, %leader_member, "could not take over");
                            Input::Failed(Request::TakeOver)
                        }
                    },
                )
            }
            Effect::WatchOwnMember { member } => {
                let session = &io.session.as_ref()?.session;
                Some(match session.watch_member(&member).await {
                    Ok(Some(watch)) => {
                        io.waits.own_member = Some(Box::pin(async move {
                            fired(watch.changed().await, Input::OwnMemberChanged)
                        }));
                        Input::OwnMemberWatched
                    }
                    Ok(None) => Input::OwnMemberGone,
                    Err(error) => {
                        tracing::warn!(%error, "could not watch our member znode");
                        Input::Failed(Request::WatchOwnMember)
                    }
                })
            }
            Effect::WatchFollowing {
                predecessor,
                leader_member,
                next_in_line,
            } => {
                let session = &io.session.as_ref()?.session;
                let (answer, watches) = self
                    .watch_following(
                        session,
                        &predecessor,
                        leader_member.as_deref(),
                        next_in_line,
                    )
                    .await;
                io.waits.following = watches;
                Some(answer)
            }
            Effect::Confirm { member, purpose } => {
                let answer = match io.session.as_ref() {
                    Some(live) => confirmed(&live.session, &member).await,
                    None => None,
                };
                Some(Input::Confirmed { purpose, answer })
            }
            Effect::Delete { member, purpose } => {
                let (ok, by_us) = match io.session.as_ref() {
                    Some(live) => match live.session.delete_member(&member).await {
                        Ok(deleted) => (true, deleted),
                        Err(error) => {
                            tracing::warn!(%error, %member, ?purpose, "could not delete a member znode");
                            (false, false)
                        }
                    },
                    None => (false, false),
                };
                Some(Input::Deleted { purpose, ok, by_us })
            }
            Effect::Grant(grant) => {
                self.setup.events.granted.do_send(LeadershipGranted {
                    epoch: grant.epoch,
                    reason: grant.reason,
                    detected_at: grant.detected_at,
                    previous_leader: grant.previous_leader,
                    lease_until: grant.lease_until,
                });
                None
            }
            Effect::Revoke { epoch, why } => {
                self.setup
                    .events
                    .revoked
                    .do_send(LeadershipRevoked { epoch, reason: why });
                None
            }
            Effect::ConfirmLease {
                epoch,
                sent,
                valid_until,
            } => {
                self.setup.events.lease.do_send(LeaseConfirmed {
                    epoch,
                    sent,
                    valid_until,
                    witness: LeaseWitness::ZooKeeper,
                });
                None
            }
            Effect::ObserveLeader(leader) => {
                self.setup
                    .events
                    .observed
                    .do_send(LeaderObserved { leader });
                None
            }
            Effect::Answer { reply, yes } => {
                let _ = reply.send(yes);
                None
            }
            Effect::CountForcedTakeover => {
                self.setup.metrics.forced_takeover();
                None
            }
            Effect::Stop => None,
        }
    }

    /// Opens a session, or reopens `ended`.
    async fn connect(&self, io: &mut Io, ended: Option<SessionInfo>) -> Input<Reply> {
        let (zookeeper, cluster) = (&self.setup.zookeeper, &self.setup.cluster);
        let session_timeout = Duration::from_millis(zookeeper.session_timeout_ms);
        let resuming = ended.is_some();
        let opened = match ended {
            Some(ended) => {
                ElectionSession::reopen(zookeeper, session_timeout, cluster, ended).await
            }
            None => ElectionSession::connect(zookeeper, session_timeout, cluster).await,
        };
        match opened {
            Ok(session) => {
                self.setup
                    .events
                    .connectivity
                    .do_send(ZooKeeperConnectivity { connected: true });
                // Every change of the session's state, whether the node
                // leads, follows or is between the two: a disconnection that
                // the session survives must end with `zookeeper_connected`
                // back at 1.
                let reporter = tokio::spawn(report_connectivity(
                    session.state_watcher(),
                    self.setup.events.connectivity.clone(),
                ));
                let negotiated = session.negotiated_timeout();
                io.session = Some(LiveSession {
                    state: session.state_watcher(),
                    session,
                    reporter,
                    ended: false,
                });
                io.to_reopen = None;
                if resuming {
                    Input::Resumed { negotiated }
                } else {
                    Input::Connected { negotiated }
                }
            }
            // A server answered: the session is gone, or we may not have it.
            Err(ElectionError::ZooKeeper(
                ZkError::SessionExpired | ZkError::SessionMoved | ZkError::AuthFailed,
            )) if resuming => {
                io.to_reopen = None;
                Input::ResumeRefused
            }
            Err(error) => {
                tracing::warn!(%error, "cannot reach zookeeper; retrying");
                self.setup
                    .events
                    .connectivity
                    .do_send(ZooKeeperConnectivity { connected: false });
                Input::ConnectFailed
            }
        }
    }

    /// Sets a follower's watches: its predecessor, the leader's member when
    /// it is not the predecessor (so a leader that is not our predecessor is
    /// still known, and judged, by us), the epoch, and the leader's process
    /// when we are next in line.
    async fn watch_following(
        &self,
        session: &ElectionSession,
        predecessor: &str,
        leader_member: Option<&str>,
        next_in_line: Option<MemberInfo>,
    ) -> (Input<Reply>, Vec<Pending>) {
        let mut watches: Vec<Pending> = Vec::new();
        match session.watch_member(predecessor).await {
            Ok(Some(watch)) => watches.push(Box::pin(async move {
                fired(watch.changed().await, Input::PredecessorGone)
            })),
            // Gone before the watch was set: a departure all the same.
            Ok(None) => return (Input::PredecessorGone, Vec::new()),
            Err(error) => {
                tracing::warn!(%error, "could not watch our predecessor");
                return (Input::Failed(Request::WatchFollowing), Vec::new());
            }
        }
        if let Some(leader_member) = leader_member {
            match session.watch_member(leader_member).await {
                Ok(Some(watch)) => watches.push(Box::pin(async move {
                    fired(watch.changed().await, Input::LeaderChanged)
                })),
                Ok(None) => return (Input::LeaderChanged, Vec::new()),
                Err(error) => {
                    tracing::warn!(%error, "could not watch the leader");
                    return (Input::Failed(Request::WatchFollowing), Vec::new());
                }
            }
        }
        let epoch = match session.watch_epoch().await {
            Ok((epoch, watch)) => {
                watches.push(Box::pin(async move {
                    fired(watch.changed().await, Input::LeaderChanged)
                }));
                Some(epoch)
            }
            Err(ElectionError::MalformedEpoch(text)) => {
                tracing::error!(stored = %text, "the epoch znode holds no epoch; the leader cannot be judged");
                None
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the epoch");
                return (Input::Failed(Request::WatchFollowing), Vec::new());
            }
        };
        if let (Some(client), Some(leader)) = (self.setup.presence.clone(), next_in_line) {
            watches.push(Box::pin(async move {
                presence::process_gone(&client, &leader.http_url, &leader.instance_id).await;
                Input::LeaderProcessGone
            }));
        }
        (Input::FollowWatchesSet { epoch }, watches)
    }
}

/// The next order as an input; a leaver is remembered until the campaign stops.
async fn next_order(
    orders: &mut mpsc::UnboundedReceiver<Order>,
    leavers: &mut Vec<oneshot::Sender<()>>,
) -> Input<Reply> {
    match orders.recv().await {
        Some(Order::Command(command)) => Input::Command(command),
        Some(Order::Leave(done)) => {
            leavers.push(done);
            Input::Command(Command::Leave)
        }
        None => Input::CommandsClosed,
    }
}

/// Reads the members and where ours stands among them.
async fn observe(session: &ElectionSession, member: &str) -> Result<Observation, ElectionError> {
    let children = session.children().await?;
    Ok(match standing(member, &children) {
        Standing::Absent => Observation::Absent,
        Standing::Leader => Observation::Leader,
        Standing::Follower {
            predecessor,
            leader,
        } => Observation::Follower(Following {
            leader: session.member_info(&leader).await?,
            leader_member: leader,
            predecessor,
        }),
    })
}

/// Whether ZooKeeper confirms, within a third of the session timeout, that
/// `member` exists; `None` when it did not answer in time or failed. A
/// request parked while the client is disconnected must not blind the
/// campaign to its commands and watches (measured: 19.7 s with a cut-off
/// server).
async fn confirmed(session: &ElectionSession, member: &str) -> Option<bool> {
    let bound = (session.negotiated_timeout() / 3).max(Duration::from_millis(100));
    tokio::time::timeout(bound, session.confirm_member(member))
        .await
        .ok()?
        .ok()
}

/// Resolves when `future` does; never when there is none.
async fn optional<F: Future + Unpin>(future: Option<&mut F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// The first of `watches` to resolve; never when there are none.
async fn first_of(watches: Vec<Pending>) -> Input<Reply> {
    if watches.is_empty() {
        return std::future::pending().await;
    }
    select_all(watches).await.0
}

/// What a fired watch means: `input`, unless it fired because the session
/// ended (the client tells its watches before it publishes its state).
fn fired(event: WatchedEvent, input: Input<Reply>) -> Input<Reply> {
    if event.event_type == EventType::Session && event.session_state.is_terminated() {
        Input::SessionEnded
    } else {
        input
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
    mut state: StateWatcher,
    connectivity: actix::Recipient<ZooKeeperConnectivity>,
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

/// Resolves when the session is gone for good: expired, closed or refused.
/// A disconnection is not: the client reconnects by itself, and gives the
/// session up (as expired) only when no server answered for 7/5 of its
/// timeout, which the next session then tries to reopen. `current` is its
/// state when the wait began.
async fn session_ended(state: &mut StateWatcher, current: SessionState) {
    if current.is_terminated() {
        return;
    }
    while !state.changed().await.is_terminated() {}
}
