//! Owns the choice of the end-to-end benchmark's next offered rate: doubling
//! from a start until a rate does not hold, then halving the gap between the
//! highest rate that held and the lowest that did not. The highest steady
//! rate is then known to within a fraction of the last doubling, not only to
//! a factor of two (with doubling alone, a pipeline that holds 11,000 events/s
//! reports 8,000).

/// Offered rates are multiples of this (the load generator sends batches of
/// 100 events).
const GRANULARITY: u32 = 100;

/// Where the search stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSearch {
    next: Option<u32>,
    highest_held: Option<u32>,
    lowest_failed: Option<u32>,
    doublings_left: usize,
    refinements_left: usize,
}

impl RateSearch {
    /// Starts at `start` events/s; at most `doublings` rates on the way up,
    /// then at most `refinements` rates between the last that held and the
    /// first that did not.
    pub fn new(start: u32, doublings: usize, refinements: usize) -> Self {
        Self {
            next: (doublings > 0).then_some(start),
            highest_held: None,
            lowest_failed: None,
            doublings_left: doublings,
            refinements_left: refinements,
        }
    }

    /// The rate to offer next; none when the search is over.
    pub fn next(&self) -> Option<u32> {
        self.next
    }

    /// Records whether `rate` held and picks the next rate.
    pub fn record(&mut self, rate: u32, held: bool) {
        if held {
            self.highest_held = Some(self.highest_held.map_or(rate, |h| h.max(rate)));
        } else {
            self.lowest_failed = Some(self.lowest_failed.map_or(rate, |f| f.min(rate)));
        }
        self.next = match self.lowest_failed {
            None => {
                self.doublings_left = self.doublings_left.saturating_sub(1);
                (self.doublings_left > 0).then(|| rate.saturating_mul(2))
            }
            Some(failed) => {
                let held = self.highest_held.unwrap_or(0);
                let middle = (held + failed.saturating_sub(held) / 2) / GRANULARITY * GRANULARITY;
                if self.refinements_left == 0 || middle <= held || middle >= failed {
                    None
                } else {
                    self.refinements_left -= 1;
                    Some(middle)
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Offers rates to a pipeline that holds up to `capacity` and returns them.
    fn offered(capacity: u32, mut search: RateSearch) -> Vec<u32> {
        let mut rates = Vec::new();
        while let Some(rate) = search.next() {
            rates.push(rate);
            search.record(rate, rate <= capacity);
        }
        rates
    }

    #[test]
    fn doubles_until_a_rate_fails_then_halves_the_gap() {
        assert_eq!(
            offered(11_000, RateSearch::new(1_000, 7, 3)),
            [1_000, 2_000, 4_000, 8_000, 16_000, 12_000, 10_000, 11_000]
        );
    }

    #[test]
    fn a_first_rate_that_fails_is_searched_below() {
        assert_eq!(
            offered(300, RateSearch::new(1_000, 7, 3)),
            [1_000, 500, 200, 300]
        );
    }

    #[test]
    fn stops_at_the_doubling_bound_when_nothing_fails() {
        assert_eq!(
            offered(u32::MAX, RateSearch::new(1_000, 3, 3)),
            [1_000, 2_000, 4_000]
        );
    }

    #[test]
    fn stops_when_the_gap_is_one_granule() {
        assert_eq!(offered(150, RateSearch::new(100, 7, 5)), [100, 200]);
    }
}
