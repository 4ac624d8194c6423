//! `scripts/infra` on a machine where something else already serves a port
//! (a system service that a package installation started, say): it refuses
//! with the listener named, unless told to use what is there.

use std::net::TcpListener;
use std::process::{Command, Output};

/// `scripts/infra COMMAND redis` on a Redis of its own: `state` and `port`;
/// `use_existing` lets it take over a listener already on the port.
fn infra_redis(state: &std::path::Path, port: u16, command: &str, use_existing: bool) -> Output {
    Command::new("bash")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/infra"),
            command,
            "redis",
        ])
        .env("UNDERSTUDY_INFRA_DIR", state)
        .env("INFRA_REDIS_PORT", port.to_string())
        .env("INFRA_USE_EXISTING", if use_existing { "1" } else { "0" })
        .env_remove("INFRA_STARTED_LOG")
        .output()
        .expect("run scripts/infra")
}

fn infra_up_redis(port: u16, use_existing: bool) -> Output {
    let state = tempfile::tempdir().expect("tempdir");
    infra_redis(state.path(), port, "up", use_existing)
}

#[test]
fn a_port_held_by_another_process_is_refused_with_its_name_unless_asked_to_use_it() {
    let squatter = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = squatter.local_addr().expect("addr").port();

    let refused = infra_up_redis(port, false);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} is taken")) && stderr.contains("INFRA_REDIS_PORT"),
        "{stderr}"
    );
    // The listener is this test process.
    let me = std::env::current_exe().expect("exe");
    let name = me.file_name().expect("name").to_string_lossy();
    assert!(stderr.contains(&name[..name.len().min(15)]), "{stderr}");

    let used = infra_up_redis(port, true);
    let stderr = String::from_utf8_lossy(&used.stderr);
    assert!(used.status.success(), "{stderr}");
    assert!(stderr.contains("using it"), "{stderr}");
}

/// Stops the test's Redis however the test ends: its pidfile goes with the
/// temporary directory, and nothing else would stop it.
struct StopsRedis<'a> {
    state: &'a std::path::Path,
    port: u16,
}

impl Drop for StopsRedis<'_> {
    fn drop(&mut self) {
        infra_redis(self.state, self.port, "down", false);
    }
}

/// Redis keeps ACL users in memory only: a Redis that `scripts/infra` starts
/// again (after an outage drill, or `down` then `up`), or finds running
/// without the user, must get the secure setup's user back, or every node
/// run with `.infra/secure.env` is refused and its leader can never write a
/// heartbeat.
#[test]
fn a_restarted_redis_gets_the_secure_user_back() {
    let state = tempfile::tempdir().expect("tempdir");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let _stops = StopsRedis {
        state: state.path(),
        port,
    };
    let infra = |command: &str| {
        let output = infra_redis(state.path(), port, command, false);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // redis-cli goes on as the default user when AUTH fails, saying so on
    // stderr: a PONG alone proves nothing.
    let ping_as_the_user = || {
        let output = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "--user", "understudy"])
            .args(["--pass", "restart-test", "--no-auth-warning", "ping"])
            .output()
            .expect("redis-cli");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        format!("{} {}", stdout.trim(), stderr.trim())
            .trim()
            .to_owned()
    };

    // Started before the secure setup existed, then found running.
    infra("up");
    std::fs::write(
        state.path().join("secure.env"),
        format!("UNDERSTUDY_REDIS__URL=redis://understudy:restart-test@127.0.0.1:{port}\n"),
    )
    .expect("secure.env");
    infra("up");
    let found_running = ping_as_the_user();
    // Restarted, as an outage drill does.
    infra("down");
    infra("up");
    let restarted = ping_as_the_user();
    assert_eq!(found_running, "PONG");
    assert_eq!(restarted, "PONG");
}
