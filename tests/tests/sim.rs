//! The deterministic simulator (docs/reliability.md, "Deterministic simulation"): seeds pass
//! under faults, a seed replays exactly, and a planted bug is caught and replays.
//! (`scripts/test` runs many more seeds through `scripts/simulate`.)

use tests::sim::{run_seed, SimConfig};

#[test]
fn seeds_under_faults_keep_every_invariant() {
    let cfg = SimConfig::default();
    for seed in 1..=5 {
        let report = run_seed(seed, &cfg).expect("runtime");
        assert!(report.error.is_none(), "seed {seed}: {:?}", report.error);
        assert!(
            report.verdict.valid(),
            "seed {seed}: {:#?}",
            report.verdict.anomalies.iter().take(3).collect::<Vec<_>>()
        );
        let counts = &report.verdict.counts;
        assert!(counts.get("hold:ok").copied().unwrap_or(0) > 10, "seed {seed}: {counts:?}");
        assert!(counts.get("book:ok").copied().unwrap_or(0) > 0, "seed {seed}: {counts:?}");
        assert!(!report.verdict.faults.is_empty(), "seed {seed}: no fault injected");
    }
}

#[test]
fn a_seed_replays_exactly() {
    let cfg = SimConfig::default();
    let first = run_seed(11, &cfg).expect("runtime");
    let second = run_seed(11, &cfg).expect("runtime");
    assert_eq!(first.verdict.faults, second.verdict.faults);
    assert_eq!(first.verdict.counts, second.verdict.counts);
    assert_eq!(first.trace, second.trace, "same seed, same history and final state");
    let other = run_seed(12, &cfg).expect("runtime");
    assert_ne!(first.trace, other.trace, "another seed is another run");
}

#[test]
fn a_planted_bug_is_caught_and_replays() {
    let cfg = SimConfig { plant_bug: true, ..SimConfig::default() };
    let caught = (1..=20).find_map(|seed| {
        let report = run_seed(seed, &cfg).expect("runtime");
        (!report.verdict.valid()).then_some((seed, report))
    });
    let (seed, report) = caught.expect("the planted bug is caught within 20 seeds");
    let kinds: Vec<&str> = report.verdict.anomalies.iter().map(|a| a.kind.as_str()).collect();
    assert!(
        kinds.iter().any(|k| ["double-hold", "not-linearizable", "invariant"].contains(k)),
        "seed {seed}: {kinds:?}"
    );
    let again = run_seed(seed, &cfg).expect("runtime");
    assert_eq!(again.trace, report.trace, "the failing seed replays exactly");
    assert!(!again.verdict.valid());
    // Without the bug the same seed passes: the anomaly is the bug's, not the simulator's.
    let clean = run_seed(seed, &SimConfig::default()).expect("runtime");
    assert!(clean.passed(), "seed {seed} without the bug: {:?}", clean.verdict.anomalies);
}
