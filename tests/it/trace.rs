//! `trace.json` as a strict reader takes it: whole nanoseconds, slices on a track nested or
//! apart (never overlapping), every microbatch of the step on the timeline.

use crate::common::{run_cli, run_json, temp_file};

/// A slice: track, start and end in whole nanoseconds, name.
pub(crate) type Slice = (u64, u64, u64, String);

/// The complete events ('X') of a trace, times checked to be whole nanoseconds.
pub(crate) fn slices(trace: &serde_json::Value) -> Vec<Slice> {
    let ns = |v: &serde_json::Value, what: &str| {
        let us = v
            .as_f64()
            .unwrap_or_else(|| panic!("{what}: {v} is not a number"));
        let ns = us * 1000.0;
        assert!(
            ns >= 0.0 && (ns - ns.round()).abs() < 1e-6,
            "{what}: {v} us is not whole ns"
        );
        ns.round() as u64
    };
    trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| {
            let name = e["name"].as_str().unwrap().to_string();
            let start = ns(&e["ts"], &name);
            let end = start + ns(&e["dur"], &name);
            (e["tid"].as_u64().unwrap(), start, end, name)
        })
        .collect()
}

/// Slices on each track either nest or come one after another: what Perfetto's importer keeps.
pub(crate) fn assert_nested_or_apart(slices: &[Slice]) {
    let mut sorted = slices.to_vec();
    sorted.sort_by_key(|(tid, start, end, _)| (*tid, *start, std::cmp::Reverse(*end)));
    let mut open: Vec<&Slice> = Vec::new();
    for slice in &sorted {
        while open
            .last()
            .is_some_and(|top| top.0 != slice.0 || top.2 <= slice.1)
        {
            open.pop();
        }
        if let Some(top) = open.last() {
            assert!(
                slice.2 <= top.2,
                "{slice:?} starts inside {top:?} and ends after it"
            );
        }
        open.push(slice);
    }
}

#[test]
fn the_step_trace_is_whole_nanoseconds_nested_and_covers_the_step() {
    let out = temp_file("strict-trace.json", "");
    let path = out.to_str().unwrap();
    let (code, _, err) = run_cli(&[
        "step",
        "mediswift-xl",
        "--sparsity",
        "0.75",
        "--trace",
        path,
    ]);
    assert_eq!(code, 0, "{err}");
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let slices = slices(&trace);
    assert_nested_or_apart(&slices);
    let report = run_json(&["step", "mediswift-xl", "--sparsity", "0.75"]);
    let microbatches = report["microbatches"].as_u64().unwrap();
    let cycles = report["cycles"].as_u64().unwrap();
    // The fabric track ends where the step does (1.1 GHz: cycles / 1.1 ns, rounded).
    let end = slices
        .iter()
        .filter(|s| s.0 == 1)
        .map(|s| s.2)
        .max()
        .unwrap();
    let ns = (u128::from(cycles) * 1_000_000_000 + 550_000_000) / 1_100_000_000;
    assert_eq!(u128::from(end), ns);
    // Every microbatch after the first is a slice of its own, with its layers inside.
    let named = |prefix: &str| slices.iter().filter(|s| s.3.starts_with(prefix)).count() as u64;
    assert_eq!(named("microbatch "), microbatches - 1);
    assert!(named("layer 23 backward") >= microbatches - 1);
}
