//! Test harness: starts real `marquee-node` and `marquee-gateway` processes (and, on request, a
//! `marquee-payments` service the gateways charge through) on loopback ports in a temporary
//! directory, and kills them all when dropped.
//!
//! The binaries are the ones cargo built next to the test executable (`cargo build --workspace
//! --bins` first; the README's test command does this). Nothing here sleeps to wait for a
//! condition: [`eventually`] polls with a deadline.
//!
//! The modules follow the roles a test needs, and everything a test uses is re-exported here:
//! - [`processes`]: binaries, ports and the child processes;
//! - [`cluster`]: a [`Cluster`]'s lifecycle and membership operations;
//! - [`client`]: talking to the gateway, the payment service and the nodes;
//! - [`fixtures`]: accounts, the test movie and theater, shows;
//! - [`audit`](mod@audit): the end-of-test booking invariants;
//! - [`wait`]: polling with deadlines and concurrent clients;
//! - [`spec`]: naming the behaviour a step of a scenario test specifies;
//! - [`chaos`]: the `marquee-chaos` tool's workload, history and checker;
//! - [`sim`]: the deterministic whole-cluster simulator (`marquee-sim`), checked by the same
//!   checker.

pub mod audit;
pub mod chaos;
pub mod client;
pub mod cluster;
pub mod fixtures;
pub mod load;
pub mod processes;
pub mod sim;
pub mod spec;
pub mod wait;

pub use audit::audit;
pub use client::{raw_request, seat_list, seat_states, User};
pub use cluster::{Cluster, Options, ADMIN_EMAIL, ADMIN_PASSWORD};
pub use fixtures::{create_show_via, rand_u64, row_label, test_movie, test_theater, USER_PASSWORD};
pub use processes::{
    bin_dir, free_port, known_args, previous_release_dir, Gateway, Node, JWT_SECRET,
};
pub use spec::behaviour;
pub use wait::{eventually, join_all};
