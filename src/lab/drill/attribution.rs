//! Owns the false-failover count: every leadership change of a drill is
//! attributed to the fault window it falls in, or counted as false.
//!
//! A window runs from its fault to the moment the cycle found the cluster
//! settled (plus a grace for a change that lands just after), and allows as
//! many changes as its fault may cause. A change outside every window, and
//! every change beyond a window's allowance, is a false failover: totals
//! compared per run would let a missing change in one cycle hide a spurious one
//! in another.

use chrono::{DateTime, Duration, Utc};

/// How long after a cycle settled a change still belongs to it.
pub const GRACE: Duration = Duration::seconds(2);

/// The stretch of a drill in which one fault may change leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWindow {
    /// When the fault was injected.
    pub start: DateTime<Utc>,
    /// When the cycle found the cluster settled.
    pub end: DateTime<Utc>,
    /// Leadership changes the fault may cause.
    pub allowed: i64,
}

/// The leadership changes among `changes` (each new leader's start, the
/// initial election excluded) that no window explains: outside every window,
/// or beyond their window's allowance (the later ones).
pub fn false_failovers(changes: &[DateTime<Utc>], windows: &[FaultWindow]) -> Vec<DateTime<Utc>> {
    let mut used = vec![0_i64; windows.len()];
    let mut unexplained = Vec::new();
    for change in changes {
        // The latest fault before the change, if its window (with grace)
        // still covers it: windows of faults close together overlap.
        match windows
            .iter()
            .rposition(|window| window.start <= *change)
            .filter(|index| *change <= windows[*index].end + GRACE)
        {
            Some(index) if used[index] < windows[index].allowed => used[index] += 1,
            _ => unexplained.push(*change),
        }
    }
    unexplained
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_700_000_000 + seconds, 0).expect("a time")
    }

    fn window(start: i64, end: i64, allowed: i64) -> FaultWindow {
        FaultWindow {
            start: at(start),
            end: at(end),
            allowed,
        }
    }

    #[test]
    fn changes_inside_their_windows_are_not_false() {
        let windows = [window(10, 12, 1), window(20, 23, 2)];
        assert_eq!(
            false_failovers(&[at(11), at(21), at(22)], &windows).len(),
            0
        );
    }

    #[test]
    fn a_change_in_steady_state_is_false_even_when_another_window_fell_short() {
        // The old check compared totals: 2 changes against 1 + 1 expected.
        let windows = [window(10, 12, 1), window(20, 23, 1)];
        assert_eq!(false_failovers(&[at(11), at(16)], &windows).len(), 1);
    }

    #[test]
    fn changes_beyond_a_window_allowance_are_false() {
        let windows = [window(10, 12, 0)];
        assert_eq!(false_failovers(&[at(11), at(12)], &windows).len(), 2);
    }

    #[test]
    fn a_change_belongs_to_the_latest_fault_when_windows_overlap() {
        // The second fault comes within the first one's grace.
        let windows = [window(10, 11, 1), window(12, 13, 1)];
        assert_eq!(false_failovers(&[at(11), at(12)], &windows).len(), 0);
    }

    #[test]
    fn a_change_just_after_settling_belongs_to_the_window() {
        let windows = [window(10, 12, 1)];
        assert_eq!(false_failovers(&[at(13)], &windows).len(), 0);
        assert_eq!(false_failovers(&[at(15)], &windows).len(), 1);
    }
}
