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
