//! `scripts/infra` on a machine where something else already serves a port
//! (a system service that a package installation started, say): it refuses
//! with the listener named, unless told to use what is there.

use std::net::TcpListener;
use std::process::{Command, Output};

fn infra_up_redis(port: u16, use_existing: bool) -> Output {
    let state = tempfile::tempdir().expect("tempdir");
    Command::new("bash")
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/infra"),
            "up",
            "redis",
        ])
        .env("UNDERSTUDY_INFRA_DIR", state.path())
        .env("INFRA_REDIS_PORT", port.to_string())
        .env("INFRA_USE_EXISTING", if use_existing { "1" } else { "0" })
        .output()
        .expect("run scripts/infra")
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
