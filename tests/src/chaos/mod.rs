//! The chaos harness behind `marquee-chaos`: a Docker compose cluster of our own image,
//! concurrent clients recording a history, nemeses injecting faults, and a checker.
//!
//! - [`history`]: the recorded operations (JSON lines).
//! - [`checker`]: invariants checked against the history and the final state.
//! - [`linearizable`]: the complete per-seat linearizability search the checker runs.
//! - [`docker`]: the compose cluster and the faults, through the `docker` CLI.
//! - [`workload`]: the clients and the final read.

pub mod checker;
pub mod docker;
pub mod history;
pub mod linearizable;
pub mod workload;
