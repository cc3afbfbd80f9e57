//! Waiting without sleeping: [`eventually`] polls a condition with a deadline, and
//! [`join_all`] runs concurrent clients on the current task. A distributed system reaches its
//! state asynchronously, so tests wait for conditions, never for fixed times.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Polls `check` until it returns `Ok(Some(value))` or `timeout` passes.
///
/// # Errors
/// The deadline passed; the last check's error (or "condition not met") is reported with
/// `what`. An error from an earlier check is not: it would name a state already gone (a
/// refused connection while a node restarted) instead of why the condition is still false.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => last = String::from("condition not met"),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs futures concurrently on the current task until all finish.
pub async fn join_all<F: std::future::Future<Output = ()>>(futures: impl IntoIterator<Item = F>) {
    let mut pending: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in &mut pending {
            if let Some(future) = slot {
                if future.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    all_done = false;
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
