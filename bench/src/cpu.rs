//! CPU time of the processes under test during the measured window, from `/proc` (Linux).
//!
//! Throughput alone hides where the time goes; CPU microseconds per hold, split by process
//! (bench, gateway, each node), is what a capacity model is built from (docs/capacity.md). The
//! bench samples `utime + stime` of each process named by `--cpu-pids` and of itself when the
//! measured window opens and when it closes.

use std::collections::BTreeMap;

use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` times (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// One process's CPU time at one moment, seconds.
fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces), which ends at the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_S)
}

/// Parses `--cpu-pids` (`name=pid,...`) and adds the bench itself.
///
/// # Errors
/// An entry that is not `name=pid`.
pub fn targets(spec: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut targets = vec![("bench".to_owned(), "self".to_owned())];
    for entry in spec.iter().filter(|e| !e.is_empty()) {
        let (name, pid) = entry
            .split_once('=')
            .filter(|(_, pid)| pid.parse::<u32>().is_ok())
            .ok_or_else(|| anyhow::anyhow!("--cpu-pids entry {entry:?} is not name=pid"))?;
        targets.push((name.to_owned(), pid.to_owned()));
    }
    Ok(targets)
}

/// CPU seconds of every target now, summed over the processes that share a name (a server
/// made of many processes, e.g. PostgreSQL's backends); a process that is gone is left out.
pub fn sample(targets: &[(String, String)]) -> BTreeMap<String, f64> {
    let mut seconds = BTreeMap::new();
    for (name, pid) in targets {
        if let Some(s) = cpu_seconds(pid) {
            *seconds.entry(name.clone()).or_insert(0.0) += s;
        }
    }
    seconds
}

/// CPU a process used in the window.
#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    /// The name given in `--cpu-pids` (`bench` for this process).
    pub process: String,
    /// CPU seconds (user + system) in the measured window.
    pub cpu_s: f64,
    /// Share of one core over the window, percent.
    pub core_pct: f64,
    /// CPU microseconds per successful hold.
    pub us_per_hold: f64,
}

/// Differences between two samples, per process and in total.
pub fn report(
    start: &BTreeMap<String, f64>,
    end: &BTreeMap<String, f64>,
    targets: &[(String, String)],
    window_s: f64,
    holds: u64,
) -> Vec<CpuReport> {
    let mut names: Vec<&String> = Vec::new();
    for (name, _) in targets {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut rows: Vec<CpuReport> = names
        .into_iter()
        .filter_map(|name| {
            let cpu_s = end.get(name)? - start.get(name)?;
            Some(CpuReport {
                process: name.clone(),
                cpu_s,
                core_pct: if window_s > 0.0 { 100.0 * cpu_s / window_s } else { 0.0 },
                us_per_hold: if holds > 0 { cpu_s * 1e6 / holds as f64 } else { 0.0 },
            })
        })
        .collect();
    if rows.len() > 1 {
        let cpu_s: f64 = rows.iter().map(|r| r.cpu_s).sum();
        rows.push(CpuReport {
            process: "total".into(),
            cpu_s,
            core_pct: if window_s > 0.0 { 100.0 * cpu_s / window_s } else { 0.0 },
            us_per_hold: if holds > 0 { cpu_s * 1e6 / holds as f64 } else { 0.0 },
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_is_read_and_grows() {
        let me = format!("twice={}", std::process::id());
        let targets = targets(&["parent=1".into(), me.clone(), me]).unwrap();
        let before = sample(&targets);
        assert!(before.contains_key("parent"), "pid 1 is readable");
        // Spin until the kernel has charged this process at least two ticks (bounded).
        let started = std::time::Instant::now();
        let mut x = 0u64;
        let after = loop {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let now = sample(&targets);
            if now["bench"] >= before["bench"] + 0.02 {
                break now;
            }
            assert!(started.elapsed().as_secs() < 20, "CPU time never grew");
        };
        assert!((before["twice"] - 2.0 * before["bench"]).abs() < 0.05, "same-name pids add up");
        let rows = report(&before, &after, &targets, 1.0, 10);
        let names: Vec<&str> = rows.iter().map(|r| r.process.as_str()).collect();
        assert_eq!(names, ["bench", "parent", "twice", "total"]);
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(targets(&["node1".into()]).is_err());
        assert!(targets(&["node1=abc".into()]).is_err());
    }
}
