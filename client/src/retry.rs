//! Bounded retries: one policy type and one backoff for every caller of the cluster.
//!
//! The gateway retries a call for about ten seconds with jittered exponential backoff (an
//! election takes one to two); `marqueectl` paces its steps evenly; a node that bootstraps or
//! joins waits minutes for peers started by hand. They differ only in numbers, so each is a
//! [`RetryPolicy`] constant and all of them pause through [`Backoff`]. [`retry`] repeats a
//! whole step (cancellable) for callers whose step is more than one call.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (at least one is always made).
    pub attempts_max: u32,
    /// Time after which no new attempt starts (`None`: attempts alone bound it).
    pub budget: Option<Duration>,
    /// First pause.
    pub pause_min: Duration,
    /// Longest pause; pauses double from `pause_min` up to it.
    pub pause_max: Duration,
    /// Adds up to half the pause at random, so clients retrying together spread out.
    pub jitter: bool,
    /// Timeout of one attempt.
    pub call_timeout: Duration,
    /// Retry a proposal without a request id after an unknown outcome (timeout, connection
    /// lost mid-call). Only for callers whose every command is idempotent by itself.
    pub retry_unknown: bool,
}

impl RetryPolicy {
    /// The gateway's calls: 12 attempts within 10 s (an election with margin), 20 ms doubling
    /// to 1 s, jittered; 6 s per attempt.
    pub const CALLS: RetryPolicy = RetryPolicy {
        attempts_max: 12,
        budget: Some(Duration::from_secs(10)),
        pause_min: Duration::from_millis(20),
        pause_max: Duration::from_millis(1000),
        jitter: true,
        call_timeout: Duration::from_secs(6),
        retry_unknown: false,
    };

    /// A fixed pause between at most `attempts_max` attempts, no time budget.
    pub const fn paced(attempts_max: u32, pause: Duration) -> RetryPolicy {
        RetryPolicy {
            attempts_max,
            budget: None,
            pause_min: pause,
            pause_max: pause,
            jitter: false,
            call_timeout: RetryPolicy::CALLS.call_timeout,
            retry_unknown: false,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::CALLS
    }
}

/// The attempts and pauses of one retried operation under a [`RetryPolicy`].
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    started: Instant,
    attempts: u32,
    pause: Duration,
}

impl Backoff {
    /// Starts counting now.
    pub fn new(policy: RetryPolicy) -> Backoff {
        Backoff { policy, started: Instant::now(), attempts: 0, pause: policy.pause_min }
    }

    /// Counts an attempt: `Some(n)` (1-based) if the policy allows one more, else `None`.
    pub fn attempt(&mut self) -> Option<u32> {
        let over_budget = self.policy.budget.is_some_and(|b| self.started.elapsed() > b);
        if self.attempts >= self.policy.attempts_max.max(1) || (self.attempts > 0 && over_budget) {
            return None;
        }
        self.attempts += 1;
        Some(self.attempts)
    }

    /// The next pause (with jitter), growing the one after it.
    pub fn next_pause(&mut self) -> Duration {
        let base = self.pause;
        let jitter = if self.policy.jitter {
            let half = u64::try_from(base.as_millis() / 2).unwrap_or(u64::MAX);
            Duration::from_millis(rand::rng().random_range(0..=half))
        } else {
            Duration::ZERO
        };
        self.pause = (base * 2).min(self.policy.pause_max).max(self.policy.pause_min);
        base + jitter
    }

    /// Sleeps the next pause.
    pub async fn pause(&mut self) {
        tokio::time::sleep(self.next_pause()).await;
    }

    /// Sleeps the next pause; `false` if `cancel` fired first.
    pub async fn pause_or_cancel(&mut self, cancel: &CancellationToken) -> bool {
        let pause = self.next_pause();
        tokio::select! {
            () = cancel.cancelled() => false,
            () = tokio::time::sleep(pause) => true,
        }
    }
}

/// Why [`retry`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum RetryError<E> {
    /// The cancellation token fired.
    #[error("{what}: cancelled")]
    Cancelled {
        /// The step.
        what: String,
    },
    /// Every attempt failed; the last error.
    #[error("{what}: gave up after {attempts} attempts: {last}")]
    Exhausted {
        /// The step.
        what: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: E,
    },
}

/// Runs `step` until it succeeds, the policy runs out, or `cancel` fires; logs every 20th
/// failure (the first included) at info.
///
/// # Errors
/// [`RetryError::Cancelled`] or [`RetryError::Exhausted`] with the last error.
pub async fn retry<T, E, F, Fut>(
    policy: RetryPolicy,
    cancel: &CancellationToken,
    what: &str,
    mut step: F,
) -> Result<T, RetryError<E>>
where
    E: Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy);
    let mut last = None;
    while let Some(attempt) = backoff.attempt() {
        if attempt > 1 && !backoff.pause_or_cancel(cancel).await {
            return Err(RetryError::Cancelled { what: what.to_owned() });
        }
        if cancel.is_cancelled() {
            return Err(RetryError::Cancelled { what: what.to_owned() });
        }
        match step().await {
            Ok(value) => return Ok(value),
            Err(e) => {
                if attempt % 20 == 1 {
                    tracing::info!(attempt, error = %e, "{what}: retrying");
                }
                last = Some((attempt, e));
            }
        }
    }
    match last {
        Some((attempts, last)) => {
            Err(RetryError::Exhausted { what: what.to_owned(), attempts, last })
        }
        None => Err(RetryError::Cancelled { what: what.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_and_counts_attempts() {
        let policy = RetryPolicy { jitter: false, ..RetryPolicy::CALLS };
        let mut backoff = Backoff::new(policy);
        let pauses: Vec<u128> = (0..8).map(|_| backoff.next_pause().as_millis()).collect();
        assert_eq!(pauses, [20, 40, 80, 160, 320, 640, 1000, 1000]);
        let mut backoff = Backoff::new(RetryPolicy::paced(3, Duration::from_millis(5)));
        assert_eq!(
            std::iter::from_fn(|| backoff.attempt()).collect::<Vec<_>>(),
            [1, 2, 3],
            "bounded by attempts"
        );
        assert_eq!(backoff.next_pause(), Duration::from_millis(5));
        assert_eq!(backoff.next_pause(), Duration::from_millis(5));
    }

    #[tokio::test]
    async fn retry_stops_on_success_exhaustion_or_cancellation() {
        let cancel = CancellationToken::new();
        let policy = RetryPolicy::paced(4, Duration::from_millis(1));
        let mut calls = 0;
        let ok = retry(policy, &cancel, "step", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err("not yet")
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(ok.ok(), Some(3));
        let failed = retry(policy, &cancel, "step", || async { Err::<(), _>("down") }).await;
        assert!(matches!(failed, Err(RetryError::Exhausted { attempts: 4, last: "down", .. })));
        cancel.cancel();
        let cancelled = retry(policy, &cancel, "step", || async { Err::<(), _>("down") }).await;
        assert!(matches!(cancelled, Err(RetryError::Cancelled { .. })));
    }
}
