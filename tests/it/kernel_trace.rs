//! `kernel --trace`: a timeline over the run's simulated time, held to the strict reader of
//! `trace.rs`, whose phase slices add up exactly to the run's counters, and which changes no
//! figure of the run.

use crate::common::{run_json, temp_file};
use crate::trace::{assert_nested_or_apart, slices};

/// Runs `kernel ARGS --trace` and `kernel ARGS --json` (with and without the trace); returns
/// the trace and the report, having checked the two reports give the same figures.
fn traced(name: &str, args: &[&str]) -> (serde_json::Value, serde_json::Value) {
    let path = temp_file(&format!("kernel-trace-{name}.json"), "");
    let path = path.to_str().unwrap();
    let with_trace = [args, &["--trace", path]].concat();
    let report = run_json(&with_trace);
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // Watching a run changes none of its figures (only the host's time differs).
    let without = run_json(args);
    let simulated = |r: &serde_json::Value| {
        let mut r = r.clone();
        let map = r.as_object_mut().unwrap();
        for host in [
            "host_seconds",
            "pe_cycles_per_host_second",
            "wavelet_hops_per_host_second",
        ] {
            map.remove(host);
        }
        r
    };
    assert_eq!(simulated(&report), simulated(&without), "{name}");
    (trace, report)
}

/// Nanoseconds of `cycles` at wse2's 1.1 GHz, rounded as the trace rounds.
fn ns(cycles: u64) -> u64 {
    ((u128::from(cycles) * 1_000_000_000 + 550_000_000) / 1_100_000_000) as u64
}

/// The counter events: whole nanoseconds, in time order per series, at most one a bucket
/// (512) and one at the end, non-negative values, no more PEs busy than the mesh has.
fn check_counters(trace: &serde_json::Value, pes: f64) -> usize {
    let counters: Vec<&serde_json::Value> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "C")
        .collect();
    for name in ["PEs busy", "wavelets per cycle"] {
        let series: Vec<_> = counters.iter().filter(|e| e["name"] == name).collect();
        assert!(
            series.len() >= 2 && series.len() <= 513,
            "{name}: {}",
            series.len()
        );
        let mut last = 0.0;
        for event in &series {
            let ts = event["ts"].as_f64().unwrap();
            let whole = (ts * 1000.0 - (ts * 1000.0).round()).abs() < 1e-6;
            assert!(whole && ts >= last, "{name}: ts {ts} after {last}");
            last = ts;
            let values = event["args"].as_object().unwrap();
            assert!(values.values().all(|v| v.as_f64().unwrap() >= 0.0));
            if name == "PEs busy" {
                let busy: f64 = values.values().map(|v| v.as_f64().unwrap()).sum();
                assert!(busy <= pes + 1e-9, "{busy} PEs busy of {pes}");
            }
        }
    }
    counters.len()
}

/// The phase slices: whole nanoseconds, nested or apart; on each track (the whole mesh's,
/// then one per band of PE rows) one after another from 0 to the run's end, their exact counts
/// adding up to the report's, the whole mesh's track alone and the bands' together; returns
/// the whole mesh's phase names in order.
fn check_phases(trace: &serde_json::Value, report: &serde_json::Value) -> Vec<String> {
    let slices = slices(trace);
    assert_nested_or_apart(&slices);
    let cycles = report["cycles"].as_u64().unwrap();
    let tracks: std::collections::BTreeSet<u64> = slices.iter().map(|s| s.0).collect();
    for tid in &tracks {
        let mut at = 0;
        for (_, start, end, name) in slices.iter().filter(|s| s.0 == *tid) {
            assert_eq!(
                *start, at,
                "track {tid}: {name} starts where the phase before ends"
            );
            at = *end;
        }
        assert_eq!(
            at,
            ns(cycles),
            "track {tid}: the phases end where the run does"
        );
    }
    let phases: Vec<&serde_json::Value> = trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .collect();
    let sum = |key: &str, bands: bool| -> u64 {
        phases
            .iter()
            .filter(|p| (p["tid"] != 1) == bands)
            .map(|p| p["args"][key].as_u64().unwrap())
            .sum()
    };
    let breakdown = &report["breakdown"];
    let band_tracks = tracks.len() as u64 - 1;
    for (arg, figure) in [
        ("cycles", &report["cycles"]),
        ("fmac_pe_cycles", &breakdown["fmac_cycles"]),
        ("overhead_pe_cycles", &breakdown["overhead_cycles"]),
        ("reduction_pe_cycles", &breakdown["reduction_cycles"]),
        ("wavelet_hops", &report["wavelet_hops"]),
        ("wavelets_delivered", &report["wavelets_received"]),
    ] {
        let figure = figure.as_u64().unwrap();
        assert_eq!(sum(arg, false), figure, "{arg}");
        // Every band's track spans the run: their cycles add up to the run's once per band;
        // a one-row mesh has no bands.
        let expected = match (arg, band_tracks) {
            (_, 0) => 0,
            ("cycles", _) => figure * band_tracks,
            _ => figure,
        };
        assert_eq!(sum(arg, true), expected, "{arg} over the bands");
    }
    slices
        .into_iter()
        .filter(|s| s.0 == 1)
        .map(|s| s.3)
        .collect()
}

/// The names of the tracks of phases: the whole mesh's, then each band's.
fn track_names(trace: &serde_json::Value) -> Vec<String> {
    trace["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_layernorm_trace_shows_its_pass_all_reduce_and_second_pass_in_time() {
    let args = [
        "kernel",
        "layernorm",
        "--rows",
        "512",
        "--cols",
        "256",
        "--region",
        "16x16",
    ];
    let (trace, report) = traced("layernorm", &args);
    // The same run gives the same trace, byte for byte.
    let again = temp_file("kernel-trace-layernorm-again.json", "");
    run_json(&[&args[..], &["--trace", again.to_str().unwrap()]].concat());
    // `traced` wrote the first beside it.
    let first = again.with_file_name("kernel-trace-layernorm.json");
    assert_eq!(
        std::fs::read(first).unwrap(),
        std::fs::read(&again).unwrap()
    );
    check_counters(&trace, 256.0);
    let phases = check_phases(&trace, &report);
    // A pass over the elements, the row all-reduce of the statistics, the second pass.
    let first = |prefix: &str| phases.iter().position(|p| p.starts_with(prefix)).unwrap();
    let last_compute = phases
        .iter()
        .rposition(|p| p.starts_with("compute"))
        .unwrap();
    assert_eq!(first("compute"), 0, "{phases:?}");
    assert!(
        first("reduction") > 0 && first("reduction") < last_compute,
        "{phases:?}"
    );
    // A track per PE row of the 16 (fewer than 32 rows: a band each).
    let names = track_names(&trace);
    assert_eq!(names.len(), 17, "{names:?}");
    assert_eq!(names[1], "PE rows 0-0: phases");
    assert_eq!(names[16], "PE rows 15-15: phases");
}

#[test]
fn kernel_traces_of_every_kind_add_up_to_their_runs() {
    for (name, args, pes) in [
        (
            "gemm-wgrad",
            vec![
                "kernel",
                "gemm",
                "--t",
                "256",
                "--k",
                "128",
                "--n",
                "128",
                "--sparsity",
                "0.75",
                "--form",
                "wgrad",
                "--region",
                "8x8",
            ],
            64.0,
        ),
        ("gemm-forward", crate::kernel_progress::GEMM.to_vec(), 256.0),
        // Two engine runs (scores, then A·V) on one timeline, one after the other.
        (
            "attention",
            vec![
                "kernel",
                "attention",
                "--seq",
                "64",
                "--head-dim",
                "32",
                "--products",
                "4",
                "--region",
                "8x8",
            ],
            64.0,
        ),
        (
            "allreduce-tree",
            vec![
                "kernel",
                "allreduce",
                "--pes",
                "16",
                "--wavelets",
                "256",
                "--algo",
                "tree",
            ],
            16.0,
        ),
        (
            "broadcast-region",
            vec!["kernel", "broadcast", "--region", "8x8", "--wavelets", "64"],
            64.0,
        ),
    ] {
        let (trace, report) = traced(name, &args);
        let counters = check_counters(&trace, pes);
        check_phases(&trace, &report);
        // A bucket is at least 16 cycles: a short run has one per 16 cycles, a long one at
        // most 512 (two series, and each one more at the end).
        let cycles = report["cycles"].as_u64().unwrap();
        let buckets = cycles.div_ceil(16).min(512) as usize;
        assert!(
            counters <= 2 * (buckets + 1),
            "{name}: {counters} counter events"
        );
    }
}

#[test]
fn a_long_kernel_is_cut_into_at_most_512_buckets() {
    // 193 k cycles: buckets of 512 cycles (256 would make 756).
    let args = [
        "kernel",
        "gemm",
        "--t",
        "1024",
        "--k",
        "1024",
        "--n",
        "1024",
        "--sparsity",
        "0.75",
        "--region",
        "32x32",
    ];
    let path = temp_file("kernel-trace-long.json", "");
    let path = path.to_str().unwrap();
    let report = run_json(&[&args[..], &["--trace", path]].concat());
    let trace: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cycles = report["cycles"].as_u64().unwrap();
    let width = cycles.div_ceil(512).next_power_of_two();
    let counters = check_counters(&trace, 1024.0);
    assert_eq!(counters, 2 * (cycles.div_ceil(width) as usize + 1));
    let phases = check_phases(&trace, &report);
    let title = trace["traceEvents"][1]["args"]["name"].as_str().unwrap();
    assert!(title.ends_with(&format!("per {width} cycles")), "{title}");
    // 32 rows in 32 bands of one row.
    assert_eq!(track_names(&trace).len(), 1 + 32);
    // The GEMM computes with most PEs busy, and drains with most idle at the end.
    assert_eq!(phases.first().unwrap(), "compute");
    assert_eq!(phases.last().unwrap(), "compute, most PEs idle");
}

#[test]
fn the_buckets_of_a_watched_run_add_up_to_its_counters_and_the_run_is_unchanged() {
    use wafersim::engine::kernels::gemm::{run_gemm, run_gemm_with, GemmConfig, GemmForm};
    use wafersim::engine::{Timeline, Watch};
    let fabric = wafersim::spec::load_fabric("wse2").unwrap();
    for form in [GemmForm::Forward, GemmForm::Dgrad, GemmForm::Wgrad] {
        let cfg = GemmConfig {
            pattern: wafersim::sparsity::Pattern::Random,
            t: 256,
            k: 128,
            n: 128,
            sparsity: 0.5,
            region: (8, 8),
            split: None,
            seed: 3,
            form,
            values: false,
        };
        let mut ticks = Vec::new();
        let mut tick = |cycle: u64| ticks.push(cycle);
        let mut watch = Watch {
            timeline: Some(Timeline::new()),
            progress: Some(&mut tick),
            ..Watch::default()
        };
        let watched = run_gemm_with(&fabric, &cfg, &mut watch).unwrap().output;
        let timeline = watch.timeline.take().unwrap();
        let plain = run_gemm(&fabric, &cfg).unwrap().output;
        assert_eq!(watched.counters, plain.counters, "{form:?}");
        assert_eq!(
            (watched.cycles, watched.events, watched.wavelet_hops),
            (plain.cycles, plain.events, plain.wavelet_hops)
        );
        // Bucket by bucket, nothing lost: the sums are the run's counters.
        let total = timeline.total();
        let counters = watched.counters.total();
        assert_eq!(total.fmac_cycles, counters.fmac_cycles, "{form:?}");
        assert_eq!(total.overhead_cycles, counters.overhead_cycles, "{form:?}");
        assert_eq!(
            total.reduction_cycles, counters.reduction_cycles,
            "{form:?}"
        );
        assert_eq!(total.wavelet_hops, watched.wavelet_hops, "{form:?}");
        assert_eq!(
            total.wavelets_delivered, watched.wavelets_received,
            "{form:?}"
        );
        assert_eq!(timeline.cycles(), watched.cycles);
        // No bucket holds more busy cycles than its PEs had, nor more hops than its links.
        let width = timeline.bucket_cycles();
        let links = 4 * 64;
        for bucket in timeline.buckets() {
            assert!(bucket.busy_cycles() <= 64 * width, "{bucket:?}");
            assert!(bucket.wavelet_hops <= links * width, "{bucket:?}");
        }
        // The hook saw the cycle reached grow, once per 65,536 events.
        assert_eq!(ticks.len() as u64, watched.events / 65_536, "{form:?}");
        assert!(ticks.windows(2).all(|w| w[0] <= w[1]));
    }
}
