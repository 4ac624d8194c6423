//! Owns per-client rate limiting of the gateway's publishing routes: a token
//! bucket per client address (governor's keyed GCRA limiter), refilled at
//! `gateway.rate_limit_per_second` with room for `gateway.rate_limit_burst`.
//! An empty bucket is a 429 with `Retry-After`. The client is the TCP peer:
//! `X-Forwarded-For` can be forged by anyone, so it is not trusted here (a
//! proxy in front should do its own limiting).

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::shared::http::api_error::ApiError;

/// Buckets per client address.
pub struct ClientRateLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl ClientRateLimiter {
    /// A limiter of `per_second` requests per client with bursts of `burst`;
    /// `None` (no limit) when `per_second` is 0.
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        })
    }

    /// Takes one request from `client`'s bucket, or says when to come back.
    pub fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        self.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::TooManyRequests {
                retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    /// Drops the buckets of clients that are full again, so addresses seen
    /// once do not accumulate.
    pub fn forget_idle_clients(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_burst_is_told_when_to_come_back_and_others_are_not() {
        let limiter = ClientRateLimiter::new(1, 3).expect("enabled");
        let greedy: IpAddr = "10.0.0.1".parse().expect("ip");
        let polite: IpAddr = "10.0.0.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(limiter.check(greedy).is_ok());
        }
        match limiter.check(greedy) {
            Err(ApiError::TooManyRequests { retry_after_s }) => assert_eq!(retry_after_s, 1),
            other => panic!("expected a 429, got {other:?}"),
        }
        assert!(limiter.check(polite).is_ok());
    }

    #[test]
    fn zero_disables_the_limit() {
        assert!(ClientRateLimiter::new(0, 10).is_none());
    }
}
