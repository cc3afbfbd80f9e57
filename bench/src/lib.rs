//! The benchmark's parts, shared by `marquee-bench` (the gateway) and `marquee-peer-bench`
//! (PostgreSQL and Redis running the same journeys): the workload, the measurements, the audit
//! and the report are written once against [`backend::Backend`], so a side-by-side compares
//! systems, not two harnesses.

pub mod api;
pub mod audit;
pub mod backend;
pub mod config;
pub mod cpu;
pub mod peers;
pub mod report;
pub mod runner;
pub mod shows;
pub mod stats;
pub mod workload;

/// The load generator's async runtime: `worker_threads` tokio workers (0 = one per CPU).
///
/// # Errors
/// The runtime could not start (no threads or file descriptors left).
pub fn runtime(worker_threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if worker_threads > 0 {
        builder.worker_threads(worker_threads);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_has_the_workers_asked_for() {
        assert_eq!(super::runtime(1).unwrap().metrics().num_workers(), 1);
        assert_eq!(super::runtime(3).unwrap().metrics().num_workers(), 3);
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(super::runtime(0).unwrap().metrics().num_workers(), cpus, "0: one per CPU");
    }
}
