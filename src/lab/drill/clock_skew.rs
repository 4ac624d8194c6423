//! Owns running a node with its wall clock skewed, as NTP drift would leave a
//! machine: libfaketime shifts `gettimeofday`/`clock_gettime(REALTIME)` and
//! leaves the monotonic clock alone. Used by the chaos drill (a standby
//! restarted with a skewed clock) and by the clock-skew liveness test.
//!
//! libfaketime alone is not enough: glibc's C11 `cnd_timedwait`, which
//! librdkafka times its waits with, bypasses libfaketime's translation of
//! deadlines (see `faketime_cnd_timedwait.c`), so a small shim built with the
//! system's C compiler is preloaded before it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};

use crate::lab::drill::DrillError;

/// Where Debian's `faketime` package puts the preload library
/// (`scripts/bootstrap` installs it).
pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The shim's source, compiled where it is needed.
const SHIM_SOURCE: &str = include_str!("faketime_cnd_timedwait.c");

/// What a process needs to run with a skewed wall clock.
#[derive(Debug, Clone)]
pub struct ClockSkew {
    shim: PathBuf,
}

impl ClockSkew {
    /// Builds the shim into `dir` with `cc`; fails with what to install when
    /// libfaketime or a C compiler is missing.
    pub fn prepare(dir: &Path) -> Result<Self, DrillError> {
        if !Path::new(FAKETIME_LIB).exists() {
            return Err(DrillError::Fault(format!(
                "{FAKETIME_LIB} is missing: scripts/bootstrap installs the faketime package"
            )));
        }
        std::fs::create_dir_all(dir)?;
        let source = dir.join("faketime_cnd_timedwait.c");
        std::fs::write(&source, SHIM_SOURCE)?;
        let shim = dir.join("faketime_cnd_timedwait.so");
        let built = Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&shim)
            .arg(&source)
            .arg("-lpthread")
            .status()
            .map_err(|error| {
                DrillError::Fault(format!(
                    "running cc ({error}): scripts/bootstrap installs build-essential"
                ))
            })?;
        if !built.success() {
            return Err(DrillError::Fault(format!(
                "cc could not build {}",
                source.display()
            )));
        }
        Ok(Self { shim })
    }

    /// The environment that runs a process `seconds` ahead of the real wall
    /// clock (behind when negative); the monotonic clock stays true.
    pub fn env(&self, seconds: i64) -> Vec<(String, String)> {
        vec![
            (
                "LD_PRELOAD".to_owned(),
                format!("{} {FAKETIME_LIB}", self.shim.display()),
            ),
            ("FAKETIME".to_owned(), format!("{seconds:+}s")),
            ("FAKETIME_DONT_FAKE_MONOTONIC".to_owned(), "1".to_owned()),
        ]
    }
}

/// The nodes a drill started with a skewed clock, by instance id, and by how
/// much: what such a node wrote with its own clock (`failover_events`'
/// `detected_at` and `recovered_at`) is put back on the real clock before a
/// fault window or a detection time is judged by it.
#[derive(Debug, Clone, Default)]
pub struct SkewedClocks(HashMap<String, i64>);

impl SkewedClocks {
    /// Records that `instance_id` runs `seconds` ahead (behind when negative).
    pub fn record(&mut self, instance_id: String, seconds: i64) {
        self.0.insert(instance_id, seconds);
    }

    /// `at`, written by `instance_id` with its own clock, on the real clock.
    pub fn real_time(&self, instance_id: &str, at: DateTime<Utc>) -> DateTime<Utc> {
        at - chrono::Duration::seconds(self.0.get(instance_id).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skewed_node_s_times_are_put_back_on_the_real_clock_and_others_kept() {
        let mut clocks = SkewedClocks::default();
        clocks.record("ahead".to_owned(), 3600);
        clocks.record("behind".to_owned(), -3);
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).expect("a time");
        assert_eq!(
            clocks.real_time("ahead", at).timestamp(),
            1_700_000_000 - 3600
        );
        assert_eq!(clocks.real_time("behind", at).timestamp(), 1_700_000_003);
        assert_eq!(clocks.real_time("true", at), at);
    }
}
