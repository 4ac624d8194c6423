//! ElectionActor: this node's part in the ZooKeeper election.
//!
//! Members are ephemeral sequential znodes; the lowest leads (claims the next
//! epoch with one multi-op, sends `LeadershipGranted`), every other watches
//! the member just before its own. Leadership ends (`LeadershipRevoked`) when
//! our member znode is deleted (a standby forced a takeover, or the session
//! expired), when the session is lost, when the database fence refuses a
//! commit, or when asked to resign; a leader merely disconnected from
//! ZooKeeper leads on. A session the client gave up, or on which a request
//! failed, is reopened first: the server decides whether it (and our member,
//! with its place in line) lives; only a session it refuses is replaced by a
//! new one, which joins again at the back of the line.
//!
//! Every member knows the current leader at all times ([`LeaderObserved`](crate::node::messages::LeaderObserved)),
//! and the leader proves its session alive every third of a session timeout
//! ([`LeaseConfirmed`](crate::node::messages::LeaseConfirmed)): leadership as the node reports it is a lease on its
//! own monotonic clock, never a memory.
//!
//! - [`machine`]: every decision, as a state machine that does no I/O.
//! - `driver`: performs its effects; feeds it ZooKeeper's answers, watches and timers.
//! - [`session`]: the ZooKeeper session, member znodes, epoch claims, ACLs.
//! - [`order`]: who leads among the members, whom each watches.
//! - [`epoch`]: the leadership epoch carried on every leadership-bound write.
//! - [`named_leader`]: who leads as ZooKeeper names it.
//! - [`presence`]: how a standby sees the leader's process die, in milliseconds.
//! - [`takeover_reason`], `revocation` ([`Revocation`]): why a leadership began, and why it ended.
//!
//! The actor handles [`Resign`], [`ForceTakeover`], [`ReclaimEpochAbove`],
//! [`ConfirmLeadership`] and [`Leave`] by handing them to its campaign. The
//! machine outlives a campaign that dies: the supervisor restarts the actor,
//! and the new campaign still knows the epoch the old one led under.

mod driver;
pub mod epoch;
pub(crate) mod machine;
pub mod named_leader;
pub(crate) mod order;
pub(crate) mod presence;
mod revocation;
pub(crate) mod session;
pub(crate) mod takeover_reason;

use std::sync::{Arc, Mutex, PoisonError};

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

pub use self::driver::CampaignSetup;
use self::driver::{Driver, Order};
use self::machine::{Command, ElectionMachine, Now};
pub use self::revocation::Revocation;
use crate::node::messages::{ConfirmLeadership, ForceTakeover, Leave, ReclaimEpochAbove, Resign};

/// The actor: hands commands to its campaign.
pub struct ElectionActor {
    setup: CampaignSetup,
    machine: Arc<Mutex<ElectionMachine>>,
    orders: Option<mpsc::UnboundedSender<Order>>,
    /// Set by [`Leave`]: the campaign's end is then expected, not restarted.
    leaving: bool,
}

impl ElectionActor {
    /// The election `setup` describes, waiting for the schema.
    pub fn new(setup: CampaignSetup) -> Self {
        let machine = ElectionMachine::new(setup.me.instance_id.clone(), Now::current());
        Self {
            setup,
            machine: Arc::new(Mutex::new(machine)),
            orders: None,
            leaving: false,
        }
    }

    fn order(&self, order: Order) {
        if let Some(orders) = &self.orders {
            let _ = orders.send(order);
        }
    }
}

impl Actor for ElectionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.orders = Some(sender);
        let driver = Driver {
            machine: self.machine.clone(),
            setup: self.setup.clone(),
            orders: receiver,
        };
        // On the multi-threaded runtime, so ZooKeeper pings never wait on
        // this node's actors. If the campaign ever ends, the supervisor
        // restarts us.
        let task = tokio::spawn(driver.run());
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
        self.orders = None;
        self.machine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .restart(Now::current());
    }
}

impl Handler<Resign> for ElectionActor {
    type Result = ();
    fn handle(&mut self, _message: Resign, _ctx: &mut Context<Self>) {
        self.order(Order::Command(Command::Resign));
    }
}

impl Handler<ForceTakeover> for ElectionActor {
    type Result = ();
    fn handle(&mut self, message: ForceTakeover, _ctx: &mut Context<Self>) {
        self.order(Order::Command(Command::ForceTakeover {
            instance_id: message.instance_id,
        }));
    }
}

impl Handler<ReclaimEpochAbove> for ElectionActor {
    type Result = ();
    fn handle(&mut self, message: ReclaimEpochAbove, _ctx: &mut Context<Self>) {
        self.order(Order::Command(Command::ReclaimAbove(message.floor)));
    }
}

impl Handler<ConfirmLeadership> for ElectionActor {
    type Result = ResponseFuture<bool>;
    fn handle(&mut self, message: ConfirmLeadership, _ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.order(Order::Command(Command::Confirm {
            epoch: message.epoch,
            reply,
        }));
        Box::pin(async move { answer.await.unwrap_or(false) })
    }
}

impl Handler<Leave> for ElectionActor {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _message: Leave, _ctx: &mut Context<Self>) -> Self::Result {
        self.leaving = true;
        let (done, left) = oneshot::channel();
        self.order(Order::Leave(done));
        Box::pin(async move {
            let _ = left.await;
        })
    }
}
