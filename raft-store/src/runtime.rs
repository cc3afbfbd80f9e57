//! openraft's async runtime for Marquee's groups: tokio, exactly as openraft's own
//! `TokioRuntime`, except for the random numbers openraft draws (its randomized election
//! timeouts). In a node they come from the operating system, as before; on a thread where the
//! deterministic simulator has called [`seed_thread`], from a generator seeded with the run's
//! seed, so that a simulated run replays exactly (docs/reliability.md, "Deterministic
//! simulation").

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};
use rand08::rngs::StdRng;
use rand08::{RngCore, SeedableRng};

thread_local! {
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes openraft's random draws on this thread come from a generator seeded with `seed`
/// (`None` returns them to the operating system's randomness).
pub fn seed_thread(seed: Option<u64>) {
    SEEDED.with(|rng| *rng.borrow_mut() = seed.map(StdRng::seed_from_u64));
}

/// The random source openraft draws from: the thread's seeded generator if it has one.
#[derive(Debug)]
pub struct RaftRng(Option<rand08::rngs::ThreadRng>);

impl RaftRng {
    fn with<T>(&mut self, f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
        if let Some(os) = self.0.as_mut() {
            return f(os);
        }
        SEEDED.with(|rng| match rng.borrow_mut().as_mut() {
            Some(seeded) => f(seeded),
            None => f(&mut rand08::thread_rng()),
        })
    }
}

impl RngCore for RaftRng {
    fn next_u32(&mut self) -> u32 {
        self.with(|rng| rng.next_u32())
    }

    fn next_u64(&mut self) -> u64 {
        self.with(|rng| rng.next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.with(|rng| rng.fill_bytes(dest));
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand08::Error> {
        self.with(|rng| rng.try_fill_bytes(dest))
    }
}

/// tokio, with [`RaftRng`] as openraft's random source.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MarqueeRuntime;

type Tokio = TokioRuntime;

impl AsyncRuntime for MarqueeRuntime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = RaftRng;
    type OneshotSender<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <Tokio as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        let seeded = SEEDED.with(|rng| rng.borrow().is_some());
        RaftRng(if seeded { None } else { Some(rand08::thread_rng()) })
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        Tokio::oneshot()
    }
}
