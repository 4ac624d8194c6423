//! Owns cutting one drill node off the network on a single machine. Every node
//! of a drill runs in a cgroup (v2) of its own from its first instruction, so
//! every socket it opens carries that cgroup; an iptables rule in `OUTPUT`
//! matching the cgroup then drops what the node sends — to ZooKeeper's port
//! only, or to everything. Established connections stall exactly as they do
//! behind a real partition (no RST, no FIN), which a signal cannot imitate.
//! Needs root, a cgroup2 mount and `iptables`; without them the cut scenarios
//! say so and the others run unaffected.

use std::path::PathBuf;
use std::process::Command;

use crate::lab::drill::DrillError;

/// What a cut drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Only traffic to ZooKeeper (its TCP port).
    Zookeeper {
        /// ZooKeeper's client port.
        port: u16,
    },
    /// Everything the node sends: ZooKeeper, Kafka, Redis, PostgreSQL, HTTP answers.
    Everything,
}

/// The cgroups of one drill's nodes and the iptables rules in force.
pub struct NetworkCuts {
    /// This drill's cgroup directory (absolute).
    directory: PathBuf,
    /// The same, relative to the cgroup2 mount (what `-m cgroup --path` takes).
    relative: String,
    /// Rules inserted and not yet removed, as iptables match arguments.
    active: Vec<Vec<String>>,
}

impl NetworkCuts {
    /// Creates the drill's cgroup under the cgroup2 mount, if this machine can
    /// cut nodes off; `None` when it cannot (not root, no cgroup2, no iptables).
    pub fn prepare(drill: &str) -> Option<Self> {
        let mount = cgroup2_mount()?;
        let iptables_works = Command::new("iptables")
            .args(["-w", "-S", "OUTPUT"])
            .output()
            .is_ok_and(|output| output.status.success());
        if !iptables_works {
            return None;
        }
        let relative = format!("understudy-{drill}");
        let directory = mount.join(&relative);
        std::fs::create_dir_all(&directory).ok()?;
        Some(Self {
            directory,
            relative,
            active: Vec::new(),
        })
    }

    /// The `cgroup.procs` file a node in `slot` must write its pid to before it
    /// opens a socket.
    pub fn procs_file(&self, slot: usize) -> Result<PathBuf, DrillError> {
        let directory = self.directory.join(format!("node-{slot}"));
        std::fs::create_dir_all(&directory)?;
        Ok(directory.join("cgroup.procs"))
    }

    /// Drops what the node in `slot` sends, as `cut` says.
    pub fn cut(&mut self, slot: usize, cut: Cut) -> Result<(), DrillError> {
        let rule = self.rule(slot, cut);
        iptables("-I", &rule)?;
        self.active.push(rule);
        Ok(())
    }

    /// Removes every rule of the node in `slot`.
    pub fn heal(&mut self, slot: usize) -> Result<(), DrillError> {
        let path = self.slot_path(slot);
        let (theirs, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|rule| rule.contains(&path));
        self.active = others;
        for rule in theirs {
            iptables("-D", &rule)?;
        }
        Ok(())
    }

    fn slot_path(&self, slot: usize) -> String {
        format!("{}/node-{slot}", self.relative)
    }

    fn rule(&self, slot: usize, cut: Cut) -> Vec<String> {
        let mut rule = vec![
            "-m".to_owned(),
            "cgroup".to_owned(),
            "--path".to_owned(),
            self.slot_path(slot),
        ];
        if let Cut::Zookeeper { port } = cut {
            rule.extend(["-p", "tcp", "--dport"].map(str::to_owned));
            rule.push(port.to_string());
        }
        rule.extend(["-j", "DROP"].map(str::to_owned));
        rule
    }
}

impl Drop for NetworkCuts {
    fn drop(&mut self) {
        for rule in std::mem::take(&mut self.active) {
            let _ = iptables("-D", &rule);
        }
        // The nodes are gone by now (the cluster drops them first); an empty
        // cgroup is removed with rmdir, never with remove_dir_all.
        if let Ok(entries) = std::fs::read_dir(&self.directory) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&self.directory);
    }
}

fn iptables(action: &str, rule: &[String]) -> Result<(), DrillError> {
    let output = Command::new("iptables")
        .args(["-w", action, "OUTPUT"])
        .args(rule)
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DrillError::Fault(format!(
            "iptables {action} OUTPUT {}: {}",
            rule.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Where cgroup2 is mounted (`/sys/fs/cgroup` on a pure v2 system,
/// `/sys/fs/cgroup/unified` on a hybrid one).
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mount_of_type(&mounts, "cgroup2")
}

fn mount_of_type(mounts: &str, kind: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, point, fs) = (fields.next()?, fields.next()?, fields.next()?);
        (fs == kind).then(|| PathBuf::from(point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_of_a_hybrid_system() {
        let mounts = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            mount_of_type(mounts, "cgroup2"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(mount_of_type("proc /proc proc rw 0 0\n", "cgroup2"), None);
    }

    #[test]
    fn a_zookeeper_cut_drops_only_its_port_and_everything_drops_all() {
        let cuts = NetworkCuts {
            directory: PathBuf::from("/nonexistent"),
            relative: "understudy-d".to_owned(),
            active: Vec::new(),
        };
        assert_eq!(
            cuts.rule(1, Cut::Zookeeper { port: 2181 }).join(" "),
            "-m cgroup --path understudy-d/node-1 -p tcp --dport 2181 -j DROP"
        );
        assert_eq!(
            cuts.rule(0, Cut::Everything).join(" "),
            "-m cgroup --path understudy-d/node-0 -j DROP"
        );
    }
}
