//! Runs the `understudy-lab drill` command in a test and reads its report.

use std::process::Command;

use serde_json::Value;

/// Runs `understudy-lab drill` with a short settle at 100 events/s, `extra`
/// arguments and `env` (which the cluster's processes inherit); its report.
pub fn drill(scenario: &str, cycles: usize, extra: &[&str], env: &[(&str, &str)]) -> Value {
    let out = tempfile::tempdir().expect("tempdir");
    let output = Command::new(env!("CARGO_BIN_EXE_understudy-lab"))
        .args([
            "drill",
            "--scenario",
            scenario,
            "--cycles",
            &cycles.to_string(),
            "--rate",
            "100",
            "--settle",
            "500ms",
            "--out",
        ])
        .arg(out.path())
        .args(extra)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the drill");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "drill {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{stdout}");
    let svg = std::fs::read_to_string(out.path().join("timeline.svg")).expect("timeline");
    assert!(svg.contains("<polyline"), "the picture has a rate line");
    let report = std::fs::read_to_string(out.path().join("report.json")).expect("report");
    serde_json::from_str(&report).expect("report JSON")
}

/// Nothing lost, nothing duplicated, no stale commit, `faults` injected.
pub fn assert_exactly_once(report: &Value, faults: u64) {
    assert_eq!(report["faults"], faults, "{report}");
    assert_clean_verdict(report);
}

/// Asserts nothing was lost, duplicated, unexplained or committed by a stale
/// epoch, over a drill that acknowledged a fair number of events.
pub fn assert_clean_verdict(report: &Value) {
    assert_eq!(report["verdict"]["lost"], 0, "{report}");
    assert_eq!(report["verdict"]["duplicated"], 0, "{report}");
    assert_eq!(report["verdict"]["unexpected"], 0, "{report}");
    assert!(report["verdict"]["acknowledged"]
        .as_u64()
        .is_some_and(|n| n > 100));
    for summary in report["summary"].as_object().expect("summary").values() {
        assert_eq!(summary["stale_commits"], 0, "{report}");
    }
}
