//! Owns how a standby learns, in milliseconds, that the leader's *process*
//! died, without waiting for its ZooKeeper session to expire.
//!
//! A standby holds `GET /api/failover/presence` open to the leader's advertised
//! URL ([`crate::node::presence_stream`]); the answer opens with the leader's
//! instance id and never ends while the leader runs. When a process dies (a
//! SIGKILL, an OOM kill, a panic with abort), its kernel closes its sockets at
//! once, so the answer ends; and a host that is up while nothing listens on the
//! port *refuses* the next connection. That refusal, after the leader's own
//! answer was seen on this address, is the only thing that counts as proof:
//!
//! - Only a refusal of the exact socket address the leader's answer came
//!   from, probed right after that answer ended, counts (a name that resolves
//!   to several addresses cannot turn a timeout on one into a refusal on
//!   another).
//! - A timeout never counts (a dead host, a network split, a paused process:
//!   those stay with the session timeout and the heartbeat rule), nor does
//!   silence: a held answer silent for 5 s is dropped and the probe disarmed.
//! - A refusal before the leader's own instance id was read never counts: a
//!   wrong `node.advertised_url` must not make every leader look dead.
//! - A stopping leader says so (its last line) and is not probed: a graceful
//!   hand-over is left to ZooKeeper, and recorded as one.
//! - Another process answering on the address does not count: the leader may
//!   have been restarted on the same port; its old session ends by itself.
//! - No proxy and no redirect: the answer comes from the leader's own address.
//!
//! A wrong verdict cannot commit anything twice: acting on it deletes that
//! leader's member znode; its successor claims a higher epoch and takes the
//! database fence before it consumes, and every commit of the old leader is
//! refused by that fence in the same transaction as the rows.
//!
//! False positives, and what they cost (one needless, safe failover each): a
//! firewall between nodes that rejects with a TCP reset (at the TCP level,
//! exactly what a dead process looks like); a proxy or load balancer between
//! nodes that refuses while the leader lives (turn this off:
//! `node.detect_leader_crash = false`); a leader whose HTTP listener closed
//! while its actors still run (it loses leadership; the fence keeps its last
//! commits out).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::net::TcpStream;

use crate::node::presence_stream::STOPPING_LINE;

/// Upper bound on opening the connection: a silent address is a timeout,
/// never a refusal.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A held answer silent this long (the leader sends a newline every second)
/// is dropped and opened again; silence is never taken for death.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// The first pause before trying again after a failed attempt.
const RETRY_MIN: Duration = Duration::from_millis(100);
/// The first pause when the leader's answer has just ended: a dying process
/// may close the held connection a moment before its listening socket, so
/// the first probe can be reset rather than refused (measured: detection took
/// one `RETRY_MIN`, ~105 ms, at every SIGKILL before this).
const PROBE_RETRY_MIN: Duration = Duration::from_millis(5);
/// The longest pause between attempts.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Most bytes read while looking for the instance id on the first line.
const FIRST_LINE_MAX: usize = 512;
/// How long after a clean end a refusal of the leader's address still counts.
const PROBE_WINDOW: Duration = Duration::from_secs(1);
/// An answer that lasted this long ended for a reason worth probing at once.
const LASTED: Duration = Duration::from_secs(2);

/// How one attempt to hold the leader's presence answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The leader's own answer was read from `peer`, then the connection
    /// ended (closed or reset) without the stopping line.
    Ended {
        /// The socket address the answer came from: the probe's target.
        peer: SocketAddr,
        /// Whether the answer lasted long enough to reconnect at once.
        lasted: bool,
    },
    /// The leader said it is stopping (a graceful hand-over follows).
    Stopping,
    /// Another process answered on the address.
    SomeoneElse,
    /// Anything else: a refusal before any answer, a timeout, an error
    /// status, silence, a broken answer.
    Failed,
}

/// What the probe of a peer whose answer just ended found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Nothing listens on the peer's address: the connection was refused.
    Refused,
    /// Something accepted the connection.
    Accepted,
    /// A timeout or another error: proves nothing.
    Unknown,
}

/// The decision, apart from any I/O: only a refusal of the very address the
/// leader's own answer came from, within `PROBE_WINDOW` of that answer's
/// clean end, means the leader's process is gone. `since_end` is how long ago
/// the last clean end was (none since the last stop, silence or stranger).
pub fn gone(since_end: Option<Duration>, probe: Probe) -> bool {
    probe == Probe::Refused && since_end.is_some_and(|age| age <= PROBE_WINDOW)
}

/// Resolves once the process of the leader `instance_id`, reachable at
/// `url`, is proven gone; never otherwise.
pub async fn process_gone(client: &reqwest::Client, url: &str, instance_id: &str) {
    let presence = format!("{}/api/failover/presence", url.trim_end_matches('/'));
    let mut pause = RETRY_MIN;
    // The leader's address and when its answer last ended cleanly: a dying
    // process may close the held connection a moment before its listening
    // socket, so the first probe can still be accepted; the refusal that
    // follows within the window counts.
    let mut last_end: Option<(SocketAddr, Instant)> = None;
    let mut short_answers = 0_u32;
    loop {
        let attempt = hold(client, &presence, instance_id).await;
        match attempt {
            Attempt::Ended { peer, .. } => last_end = Some((peer, Instant::now())),
            Attempt::Failed => {}
            Attempt::Stopping | Attempt::SomeoneElse => last_end = None,
        }
        if let Some((peer, ended_at)) = last_end {
            if ended_at.elapsed() <= PROBE_WINDOW
                && gone(Some(ended_at.elapsed()), probe(peer).await)
            {
                return;
            }
        }
        // Right after an end, try again within milliseconds: the refusal may
        // be a moment away. A peer whose answers keep ending early backs off
        // (it must not make this a busy loop); so does everything else.
        let probing = last_end.is_some_and(|(_, at)| at.elapsed() <= PROBE_WINDOW);
        pause = match attempt {
            Attempt::Ended { lasted: true, .. } => {
                short_answers = 0;
                PROBE_RETRY_MIN
            }
            Attempt::Ended { lasted: false, .. } => {
                short_answers = (short_answers + 1).min(10);
                (PROBE_RETRY_MIN * 2_u32.pow(short_answers)).min(RETRY_MAX)
            }
            _ if probing && short_answers == 0 => PROBE_RETRY_MIN,
            _ => (pause * 2).clamp(RETRY_MIN, RETRY_MAX),
        };
        tokio::time::sleep(pause).await;
    }
}

/// One fresh TCP connection to exactly `peer` (not the name, which may
/// resolve to other addresses): refused, accepted, or unknown.
async fn probe(peer: SocketAddr) -> Probe {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
        Ok(Ok(_)) => Probe::Accepted,
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => Probe::Refused,
        _ => Probe::Unknown,
    }
}

/// Opens the presence answer and holds it until it ends.
async fn hold(client: &reqwest::Client, presence: &str, instance_id: &str) -> Attempt {
    let response = match tokio::time::timeout(SILENCE_LIMIT, client.get(presence).send()).await {
        Ok(Ok(response)) => response,
        _ => return Attempt::Failed,
    };
    if !response.status().is_success() {
        return Attempt::Failed;
    }
    let Some(peer) = response.remote_addr() else {
        return Attempt::Failed;
    };
    let opened = Instant::now();
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let mut armed = false;
    loop {
        let chunk = match tokio::time::timeout(SILENCE_LIMIT, body.next()).await {
            Err(_silent) => return Attempt::Failed,
            Ok(None | Some(Err(_))) if armed => {
                return Attempt::Ended {
                    peer,
                    lasted: opened.elapsed() >= LASTED,
                }
            }
            Ok(None | Some(Err(_))) => return Attempt::Failed,
            Ok(Some(Ok(chunk))) => chunk,
        };
        if armed {
            if chunk
                .windows(STOPPING_LINE.len())
                .any(|window| window == STOPPING_LINE)
            {
                return Attempt::Stopping;
            }
            continue;
        }
        received.extend_from_slice(&chunk);
        if let Some(end) = received.iter().position(|&byte| byte == b'\n') {
            if &received[..end] != instance_id.as_bytes() {
                return Attempt::SomeoneElse;
            }
            armed = true;
        } else if received.len() > FIRST_LINE_MAX {
            return Attempt::SomeoneElse;
        }
    }
}

/// The client a standby holds presence answers with: bounded connects, no
/// overall timeout (the answer is meant to last), no pooled connections (each
/// attempt is a fresh connection: the probe).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    // No proxy (its refusal is not the leader's) and no redirect (the
    // answer must come from the leader's own address).
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_right_after_the_leaders_own_answer_ended_means_its_process_is_gone() {
        assert!(gone(Some(Duration::from_millis(3)), Probe::Refused));
        // The listener may close a moment after the held connection.
        assert!(gone(Some(Duration::from_millis(400)), Probe::Refused));
    }

    #[test]
    fn an_address_that_still_accepts_or_says_nothing_proves_nothing() {
        assert!(!gone(Some(Duration::ZERO), Probe::Accepted));
        assert!(!gone(Some(Duration::ZERO), Probe::Unknown));
    }

    #[test]
    fn a_refusal_without_a_recent_clean_end_is_never_death() {
        // Before any answer (a wrong advertised URL), after silence (a
        // firewall that drops, or rejects with ICMP), after a stopping
        // leader's goodbye, or after another process answered.
        assert!(!gone(None, Probe::Refused));
        assert!(!gone(
            Some(PROBE_WINDOW + Duration::from_millis(1)),
            Probe::Refused
        ));
    }
}
