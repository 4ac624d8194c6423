//! Owns the drill report: percentiles per scenario, the printed table and the
//! JSON document.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lab::drill::scenario::{CycleResult, Scenario};
use crate::lab::drill::verify::Verdict;

/// p50, p95, p99 and max of a set of durations.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: i64,
    /// 95th percentile.
    pub p95: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Maximum.
    pub max: i64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `values` (all zero when empty).
    pub fn of(values: &[i64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        let rank = |p: f64| -> i64 {
            if sorted.is_empty() {
                return 0;
            }
            let index = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            sorted[index]
        };
        Self {
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

/// One scenario's summary.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSummary {
    /// Cycles run.
    pub cycles: usize,
    /// Fault to detection, ms (cycles that moved leadership; none otherwise).
    pub detection_ms: Option<Percentiles>,
    /// Fault to the successor leading (epoch claimed, fence raised), ms
    /// (cycles that moved leadership; none otherwise).
    pub leading_ms: Option<Percentiles>,
    /// Fault to the successor's first commit, ms.
    pub rto_ms: Percentiles,
    /// Leadership changes, summed.
    pub failovers: i64,
    /// Events committed while a dependency was down, summed (outages only).
    pub committed_during_outage: Option<i64>,
    /// Stale-epoch commits, summed.
    pub stale_commits: i64,
}

/// Resident memory of the processes, sampled under load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryReport {
    /// The leader.
    pub leader_rss_kib: Option<u64>,
    /// Each standby.
    pub standby_rss_kib: Vec<u64>,
    /// The gateway.
    pub gateway_rss_kib: Option<u64>,
}

/// The whole drill.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    /// What was asked for.
    pub scenario: Scenario,
    /// Seed of a mixed drill.
    pub seed: Option<u64>,
    /// Faults injected.
    pub faults: usize,
    /// Leadership changes nobody caused (steady-state false failovers).
    pub false_failovers: i64,
    /// When each of them happened (the new leader's start), to find it in
    /// the logs and the timeline.
    pub false_failover_changes: Vec<DateTime<Utc>>,
    /// Per scenario.
    pub summary: BTreeMap<String, ScenarioSummary>,
    /// Exactly-once verdict over the whole run.
    pub verdict: Verdict,
    /// Resident memory under load at the end of the drill, KiB.
    pub memory: MemoryReport,
    /// Every cycle.
    pub cycles: Vec<CycleResult>,
}

impl DrillReport {
    /// Builds the report from the cycles and the final verdict.
    pub fn new(
        scenario: Scenario,
        seed: Option<u64>,
        cycles: Vec<CycleResult>,
        verdict: Verdict,
        false_failover_changes: Vec<DateTime<Utc>>,
        memory: MemoryReport,
    ) -> Self {
        let mut by_scenario: BTreeMap<String, Vec<&CycleResult>> = BTreeMap::new();
        for cycle in &cycles {
            by_scenario
                .entry(cycle.scenario.name())
                .or_default()
                .push(cycle);
        }
        let summary = by_scenario
            .into_iter()
            .map(|(name, cycles)| {
                let detection: Vec<i64> = cycles.iter().filter_map(|c| c.detection_ms).collect();
                let leading: Vec<i64> = cycles.iter().filter_map(|c| c.leading_ms).collect();
                let rto: Vec<i64> = cycles.iter().map(|c| c.rto_ms).collect();
                (
                    name,
                    ScenarioSummary {
                        cycles: cycles.len(),
                        detection_ms: (!detection.is_empty()).then(|| Percentiles::of(&detection)),
                        leading_ms: (!leading.is_empty()).then(|| Percentiles::of(&leading)),
                        rto_ms: Percentiles::of(&rto),
                        failovers: cycles.iter().map(|c| c.failovers).sum(),
                        committed_during_outage: cycles
                            .iter()
                            .filter_map(|c| c.committed_during_outage)
                            .reduce(|a, b| a + b),
                        stale_commits: cycles.iter().map(|c| c.stale_commits).sum(),
                    },
                )
            })
            .collect();
        Self {
            scenario,
            seed,
            faults: cycles.iter().map(CycleResult::faults).sum(),
            false_failovers: i64::try_from(false_failover_changes.len()).unwrap_or(i64::MAX),
            false_failover_changes,
            summary,
            verdict,
            memory,
            cycles,
        }
    }

    /// Whether the drill proved the promise: nothing lost, duplicated or
    /// unexplained, no stale commit, no leadership change without a fault,
    /// and every outage happened as measured.
    pub fn passed(&self) -> bool {
        self.verdict.is_exactly_once()
            && self.summary.values().all(|s| s.stale_commits == 0)
            && self.false_failovers == 0
            && self.cycles.iter().all(|c| c.outage_verified != Some(false))
            && self.wedged() == 0
    }

    /// Cycles after which an acknowledged event stayed unstored past the bound.
    pub fn wedged(&self) -> usize {
        self.cycles
            .iter()
            .filter(|c| c.wedged == Some(true))
            .count()
    }

    /// The table printed at the end of a drill.
    pub fn table(&self) -> String {
        let mut text = format!(
            "{:<17} {:>6} | {:>28} | {:>14} | {:>28} | {:>9} {:>8} {:>5}\n{:<17} {:>6} | {:>6} {:>6} {:>6} {:>7} | {:>6} {:>7} | {:>6} {:>6} {:>6} {:>7} | {:>9} {:>8} {:>5}\n",
            "scenario", "cycles", "detection ms", "leading ms", "RTO ms", "failovers", "during", "stale",
            "", "", "p50", "p95", "p99", "max", "p50", "max", "p50", "p95", "p99", "max", "", "outage", ""
        );
        for (name, s) in &self.summary {
            text.push_str(&format!(
                "{:<17} {:>6} | {:>6} {:>6} {:>6} {:>7} | {:>6} {:>7} | {:>6} {:>6} {:>6} {:>7} | {:>9} {:>8} {:>5}\n",
                name,
                s.cycles,
                shown(s.detection_ms.map(|d| d.p50)),
                shown(s.detection_ms.map(|d| d.p95)),
                shown(s.detection_ms.map(|d| d.p99)),
                shown(s.detection_ms.map(|d| d.max)),
                shown(s.leading_ms.map(|d| d.p50)),
                shown(s.leading_ms.map(|d| d.max)),
                s.rto_ms.p50,
                s.rto_ms.p95,
                s.rto_ms.p99,
                s.rto_ms.max,
                s.failovers,
                shown(s.committed_during_outage),
                s.stale_commits
            ));
        }
        text.push_str(
            "leading: fault -> the successor's epoch claimed and fence raised; RTO: leader faults, fault -> the successor's first commit; outages, the service back -> the first commit after it\n",
        );
        text.push_str(&format!(
            "faults {} | acknowledged {} | lost {} | duplicated {} | unexpected {} | false failovers {} | wedged {}\n",
            self.faults,
            self.verdict.acknowledged,
            self.verdict.lost,
            self.verdict.duplicated,
            self.verdict.unexpected,
            self.false_failovers,
            self.wedged()
        ));
        for change in &self.false_failover_changes {
            text.push_str(&format!(
                "false failover: a leader started at {change}, outside every fault's window or beyond its allowance\n"
            ));
        }
        text.push_str(&format!(
            "RSS under load: leader {} KiB, standbys {:?} KiB, gateway {} KiB\n",
            self.memory.leader_rss_kib.unwrap_or(0),
            self.memory.standby_rss_kib,
            self.memory.gateway_rss_kib.unwrap_or(0)
        ));
        text
    }
}

/// A number, or `-` where there is none.
fn shown(value: Option<i64>) -> String {
    value.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(
            Percentiles::of(&values),
            Percentiles {
                p50: 50,
                p95: 95,
                p99: 99,
                max: 100
            }
        );
        assert_eq!(
            Percentiles::of(&[7]),
            Percentiles {
                p50: 7,
                p95: 7,
                p99: 7,
                max: 7
            }
        );
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }
}
