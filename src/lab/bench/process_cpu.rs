//! Owns reading a process's CPU time (user + system, all its threads) from
//! `/proc/<pid>/stat`. CPU seconds per million events survive a noisy, shared
//! machine better than events per wall-clock second: a process that waits for
//! a busy broker spends little CPU doing so.

use nix::unistd::{sysconf, Pid, SysconfVar};

/// CPU seconds `pid` has used so far (`None` once it is gone, or off Linux).
pub fn cpu_seconds(pid: Pid) -> Option<f64> {
    read(&format!("/proc/{pid}/stat"))
}

/// CPU seconds this process has used so far.
pub fn own_cpu_seconds() -> Option<f64> {
    read("/proc/self/stat")
}

/// CPU seconds spent per million events, given the CPU seconds read before
/// and after `events` were handled.
pub fn per_million(before: Option<f64>, after: Option<f64>, events: u64) -> Option<f64> {
    let spent = after? - before?;
    (events > 0).then(|| spent * 1e6 / events as f64)
}

fn read(path: &str) -> Option<f64> {
    let ticks_per_second = sysconf(SysconfVar::CLK_TCK).ok().flatten()?;
    let ticks = busy_ticks(&std::fs::read_to_string(path).ok()?)?;
    Some(ticks as f64 / ticks_per_second as f64)
}

/// `utime + stime` of a `/proc/<pid>/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn busy_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_and_system_ticks_are_read_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 1200 0 0 0 731 269 0 0 20 0 9 0 100 0 0";
        assert_eq!(busy_ticks(stat), Some(1000));
    }

    #[test]
    fn a_truncated_line_reads_as_nothing() {
        assert_eq!(busy_ticks("4242 (node) S 1 2 3"), None);
        assert_eq!(busy_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        assert!(own_cpu_seconds().is_some_and(|seconds| seconds >= 0.0));
    }

    #[test]
    fn per_million_scales_and_refuses_missing_readings() {
        assert_eq!(per_million(Some(1.0), Some(3.0), 2_000_000), Some(1.0));
        assert_eq!(per_million(None, Some(3.0), 10), None);
        assert_eq!(per_million(Some(1.0), Some(3.0), 0), None);
    }
}
