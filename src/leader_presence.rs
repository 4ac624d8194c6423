//! Owns how a standby learns, in milliseconds, that the leader's *process*
//! died, without waiting for its ZooKeeper session to expire.
//!
//! A standby holds `GET /api/failover/presence` open to the leader's advertised
//! URL ([`crate::web::presence_stream`]); the answer opens with the leader's
//! instance id and never ends while the leader runs. When a process dies (a
//! SIGKILL, an OOM kill, a panic with abort), its kernel closes its sockets at
//! once, so the answer ends; and a host that is up while nothing listens on the
//! port *refuses* the next connection. That refusal, after the leader's own
//! answer was seen on this address, is the only thing that counts as proof:
//!
//! - A timeout never counts (a dead host, a network split, a paused process:
//!   those stay with the session timeout and the heartbeat rule).
//! - A refusal before the leader's own instance id was read never counts: a
//!   wrong `node.advertised_url` must not make every leader look dead.
//! - Another process answering on the address does not count: the leader may
//!   have been restarted on the same port; its old session ends by itself.
//!
//! A wrong verdict cannot commit anything twice: acting on it deletes that
//! leader's member znode; its successor claims a higher epoch and takes the
//! database fence before it consumes, and every commit of the old leader is
//! refused by that fence in the same transaction as the rows.
//!
//! False positives, and what they cost (one needless, safe failover each): a
//! proxy or load balancer between nodes that refuses connections while the
//! leader lives (turn this off: `node.detect_leader_crash = false`); a leader
//! whose HTTP listener closed while its actors still run (it loses leadership;
//! the fence keeps its last commits out).

use std::time::Duration;

use futures::StreamExt;

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

/// How one attempt to hold the leader's presence answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The connection was refused: nothing listens on the address.
    Refused,
    /// The leader's own answer was read, then it ended (closed or reset).
    Ended,
    /// Another process answered on the address.
    SomeoneElse,
    /// Anything else: a timeout, an error status, silence, a broken answer.
    Failed,
}

/// What the watcher knows and does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The leader's process is gone.
    Gone,
    /// Try again at once (the answer ended: the next connection is the probe).
    Again,
    /// Try again after a pause.
    Later,
}

/// The decision, apart from any I/O. `armed` says whether the leader's own
/// answer was ever read on this address (a refusal proves nothing otherwise).
pub fn judge(armed: bool, attempt: Attempt) -> Verdict {
    match attempt {
        Attempt::Refused if armed => Verdict::Gone,
        Attempt::Ended => Verdict::Again,
        Attempt::Refused | Attempt::SomeoneElse | Attempt::Failed => Verdict::Later,
    }
}

/// Resolves once the process of the leader `instance_id`, reachable at
/// `url`, is proven gone; never otherwise.
pub async fn process_gone(client: &reqwest::Client, url: &str, instance_id: &str) {
    let presence = format!("{}/api/failover/presence", url.trim_end_matches('/'));
    let mut armed = false;
    let mut pause = RETRY_MIN;
    // `pause` grows from RETRY_MIN for cold attempts and from PROBE_RETRY_MIN
    // right after an answer ended, doubling up to RETRY_MAX either way.
    loop {
        let attempt = hold(client, &presence, instance_id, &mut armed).await;
        match judge(armed, attempt) {
            Verdict::Gone => return,
            Verdict::Again => pause = PROBE_RETRY_MIN,
            Verdict::Later => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
        }
        if attempt == Attempt::SomeoneElse {
            armed = false;
        }
    }
}

/// Opens the presence answer and holds it until it ends; sets `armed` once the
/// leader's own instance id is read.
async fn hold(
    client: &reqwest::Client,
    presence: &str,
    instance_id: &str,
    armed: &mut bool,
) -> Attempt {
    let response = match client.get(presence).send().await {
        Ok(response) => response,
        Err(error) if refused(&error) => return Attempt::Refused,
        Err(_) => return Attempt::Failed,
    };
    if !response.status().is_success() {
        return Attempt::Failed;
    }
    let mut body = response.bytes_stream();
    let mut first_line = Vec::new();
    loop {
        let chunk = match tokio::time::timeout(SILENCE_LIMIT, body.next()).await {
            Err(_silent) => return Attempt::Failed,
            Ok(None | Some(Err(_))) if *armed => return Attempt::Ended,
            Ok(None | Some(Err(_))) => return Attempt::Failed,
            Ok(Some(Ok(chunk))) => chunk,
        };
        if *armed {
            continue;
        }
        first_line.extend_from_slice(&chunk);
        if let Some(end) = first_line.iter().position(|&byte| byte == b'\n') {
            if &first_line[..end] != instance_id.as_bytes() {
                return Attempt::SomeoneElse;
            }
            *armed = true;
        } else if first_line.len() > FIRST_LINE_MAX {
            return Attempt::SomeoneElse;
        }
    }
}

/// Whether a request failed because the connection was refused (and not,
/// say, timed out or reset).
fn refused(error: &reqwest::Error) -> bool {
    if !error.is_connect() {
        return false;
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = cause {
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        cause = inner.source();
    }
    false
}

/// The client a standby holds presence answers with: bounded connects, no
/// overall timeout (the answer is meant to last), no pooled connections (each
/// attempt is a fresh connection: the probe).
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .tcp_nodelay(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_after_the_leaders_own_answer_means_its_process_is_gone() {
        assert_eq!(judge(true, Attempt::Refused), Verdict::Gone);
    }

    #[test]
    fn a_refusal_before_the_leader_ever_answered_proves_nothing() {
        // A wrong advertised URL refuses too: it must not make leaders look dead.
        assert_eq!(judge(false, Attempt::Refused), Verdict::Later);
    }

    #[test]
    fn timeouts_and_errors_never_count_as_death() {
        for armed in [false, true] {
            assert_eq!(judge(armed, Attempt::Failed), Verdict::Later);
        }
    }

    #[test]
    fn another_process_on_the_address_is_not_the_leader_dying() {
        assert_eq!(judge(true, Attempt::SomeoneElse), Verdict::Later);
    }

    #[test]
    fn an_ended_answer_is_followed_at_once_by_the_probe() {
        assert_eq!(judge(true, Attempt::Ended), Verdict::Again);
    }
}
