//! Per-client rate limits: token buckets keyed by client IP (every request) and by user (every
//! authenticated request), answered with `429 Too Many Requests` and `Retry-After`.
//!
//! Why our own ~100 lines rather than a crate: the gateway needs two keyed limiters with a hard
//! bound on memory (a flood of spoofed or distinct clients must not grow the map without limit)
//! and a `Retry-After` computed from the bucket, which is all this is. Limits are per gateway
//! process: with N gateways behind a balancer a client gets at most N times the rate, which is
//! the usual trade-off for stateless edges (documented in docs/operations.md).
//!
//! A bucket holds up to `burst` tokens and refills at `per_second`; a request takes one. Buckets
//! that are full again carry no information, so when the map reaches its bound those are dropped
//! first; if every bucket is still draining, the oldest-touched half goes.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most buckets one limiter keeps.
pub const BUCKETS_MAX: usize = 100_000;

/// A rate: `per_second` sustained, bursts up to `burst`. `per_second == 0` disables the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests allowed at once from a full bucket.
    pub burst: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A keyed token-bucket limiter.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter for `rate`.
    pub fn new(rate: Rate) -> Self {
        Limiter { rate, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes a token for `key` at `now`; `Err(wait)` when there is none, `wait` being how long
    /// until one is available.
    ///
    /// # Errors
    /// The bucket is empty.
    pub fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.rate.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(key) {
            self.evict(&mut buckets, now);
        }
        let bucket =
            buckets.entry(key.clone()).or_insert(Bucket { tokens: self.rate.burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate.per_second))
        }
    }

    /// [`Limiter::check_at`] now.
    ///
    /// # Errors
    /// The bucket is empty.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn evict(&self, buckets: &mut HashMap<K, Bucket>, now: Instant) {
        let rate = self.rate;
        buckets.retain(|_, b| {
            b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate.per_second
                < rate.burst
        });
        if buckets.len() >= BUCKETS_MAX / 2 {
            let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            buckets.retain(|_, b| b.at > cutoff);
        }
    }

    /// Buckets held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whole seconds to put in `Retry-After` for a wait (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = Limiter::new(Rate { per_second: 2.0, burst: 3.0 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&"a", t0).is_ok());
        }
        let wait = limiter.check_at(&"a", t0).expect_err("bucket empty");
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        assert_eq!(retry_after_secs(wait), 1);
        // Another key is independent.
        assert!(limiter.check_at(&"b", t0).is_ok());
        // Half a second refills one token.
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check_at(&"a", t1).is_ok());
        assert!(limiter.check_at(&"a", t1).is_err());
    }

    #[test]
    fn a_zero_rate_disables_the_limit() {
        let limiter = Limiter::new(Rate { per_second: 0.0, burst: 0.0 });
        for _ in 0..1000 {
            assert!(limiter.check(&1u32).is_ok());
        }
        assert!(limiter.is_empty(), "a disabled limiter keeps no buckets");
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let limiter = Limiter::new(Rate { per_second: 1.0, burst: 5.0 });
        let t0 = Instant::now();
        for key in 0..(BUCKETS_MAX as u64 + 10) {
            assert!(limiter.check_at(&key, t0).is_ok());
        }
        assert!(limiter.len() <= BUCKETS_MAX, "{}", limiter.len());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }
}
