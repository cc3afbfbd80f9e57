//! Scenario tests as specifications. Starting a cluster costs seconds and the integration
//! tests run one at a time (`.config/nextest.toml`), so a test file does not start a cluster
//! per behaviour: one test fn starts what its scenario needs and then runs a sequence of
//! behaviour functions, each named for the behaviour it specifies
//! (`async fn a_second_review_edits_the_first(c: &Catalog)`). [`behaviour!`](crate::behaviour!)
//! runs one of them and, should it fail, names it in the test's output, so a failure reads as
//! the sentence that no longer holds rather than as a line number in a long test.

use std::future::Future;

/// Runs one behaviour of a scenario; if it panics, prints `behaviour failed: {name}` before
/// the panic unwinds further (and before the cluster prints its process logs).
pub async fn behaviour<T>(name: &str, step: impl Future<Output = T>) -> T {
    /// Reports the behaviour when dropped during a panic.
    struct Running<'a>(&'a str);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!("behaviour failed: {}", self.0);
            }
        }
    }
    eprintln!("behaviour: {name}");
    let running = Running(name);
    let output = step.await;
    drop(running);
    output
}

/// `behaviour!(a_second_review_edits_the_first(&c)).await` runs the behaviour function with
/// [`behaviour`], naming it by the function's name.
#[macro_export]
macro_rules! behaviour {
    ($step:ident ( $($arg:expr),* $(,)? )) => {
        $crate::spec::behaviour(stringify!($step), $step($($arg),*))
    };
}
