//! Owns one child process of a local cluster, for the drills, the benchmarks
//! and the black-box tests alike: an `understudy` gateway or node started with
//! its environment, its log in a file, its address scraped from the "listening
//! on" line it prints, killed (and resumed first, if paused) when dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::lab::drill::DrillError;

/// How long a process may take to announce its address.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`ClusterProcess::wait_for_log`] waits.
const LOG_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of the log quoted when a process does not start.
const LOG_TAIL_LINES: usize = 40;

/// One child process and where it listens.
pub struct ClusterProcess {
    child: Child,
    /// Base URL it announced, e.g. `http://127.0.0.1:41234`.
    pub base_url: String,
    /// Its standard error, where it logs.
    pub log_path: PathBuf,
}

impl ClusterProcess {
    /// Starts `executable args` with `env` added to this process's
    /// environment, logging to `log`, inside the cgroup of `cgroup_procs` when
    /// given; waits for its "listening on" line.
    pub fn start(
        executable: &Path,
        args: &[&str],
        env: &[(String, String)],
        log: &Path,
        cgroup_procs: Option<&Path>,
    ) -> Result<Self, DrillError> {
        let mut command = match cgroup_procs {
            // The shell joins the cgroup and then becomes the process (same
            // pid), so not one of its sockets is opened outside it.
            Some(procs) => {
                let mut command = Command::new("sh");
                command
                    .args(["-c", "echo $$ > \"$1\" && shift && exec \"$@\"", "sh"])
                    .arg(procs)
                    .arg(executable);
                command
            }
            None => Command::new(executable),
        };
        let mut child = command
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| DrillError::Timeout("child has no stdout".into()))?;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining after the announcement so the child never blocks
            // on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once(" listening on ") {
                    let _ = sender.send(url.trim().to_owned());
                }
            }
        });
        match receiver.recv_timeout(START_TIMEOUT) {
            Ok(base_url) => Ok(Self {
                child,
                base_url,
                log_path: log.to_owned(),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(DrillError::Timeout(format!(
                    "{args:?} did not announce its address; the end of {}:\n{}",
                    log.display(),
                    log_tail(log)
                )))
            }
        }
    }

    /// Process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX))
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Waits until `needle` appears in the log (up to 30 s); the error names
    /// `what` was awaited.
    pub async fn wait_for_log(&self, needle: &str, what: &str) -> Result<(), DrillError> {
        let deadline = Instant::now() + LOG_TIMEOUT;
        while Instant::now() < deadline {
            if std::fs::read_to_string(&self.log_path).is_ok_and(|log| log.contains(needle)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(DrillError::Timeout(format!(
            "{what}: `{needle}` not in {}",
            self.log_path.display()
        )))
    }

    /// Resident memory of the process, in KiB (from `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The exit status, once the process has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for ClusterProcess {
    fn drop(&mut self) {
        let _ = kill(self.pid(), Signal::SIGCONT);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of the log at `path`.
fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}
