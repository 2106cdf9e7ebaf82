//! The engine: values, conservation, physics, deadlocks, errors, determinism.

use wafersim::engine::kernels::gemm::{run_gemm, GemmConfig, GemmForm, GemmRun};
use wafersim::spec::{load_fabric, FabricSpec};

fn mini() -> FabricSpec {
    load_fabric("mini").unwrap()
}

fn gemm(
    t: usize,
    k: usize,
    n: usize,
    sparsity: f64,
    region: (u32, u32),
    split: Option<(u32, u32)>,
) -> GemmConfig {
    GemmConfig {
        pattern: wafersim::sparsity::Pattern::Random,
        t,
        k,
        n,
        sparsity,
        region,
        split,
        seed: 3,
        form: GemmForm::Forward,
        values: true,
    }
}

/// Largest |engine − direct| over Y; f32 accumulation in a different order than the f64
/// reference, over at most K terms of magnitude < 1, stays far below 1e-4.
fn max_error(run: &GemmRun) -> f32 {
    let reference = run.values.as_ref().unwrap().reference_product(&run.plan);
    let y = run.y.as_ref().unwrap();
    y.iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

#[test]
fn gemm_values_equal_the_direct_product_dense_and_sparse_every_split() {
    let fabric = mini();
    for sparsity in [0.0, 0.5, 0.75] {
        for split in [(1, 4), (2, 2), (4, 1)] {
            let run = run_gemm(&fabric, &gemm(12, 16, 8, sparsity, (3, 4), Some(split))).unwrap();
            let err = max_error(&run);
            assert!(
                err < 1e-4,
                "sparsity {sparsity} split {split:?}: max error {err}"
            );
            assert!(run.y.as_ref().unwrap().iter().any(|&v| v != 0.0));
        }
    }
    // One or two tokens per PE row: a column's partial sums fit one wavelet, a block of 1.
    for t in [3, 6] {
        let run = run_gemm(&fabric, &gemm(t, 16, 8, 0.5, (3, 4), Some((4, 1)))).unwrap();
        assert!(max_error(&run) < 1e-4, "t {t}");
    }
}

/// `kernel gemm --values` reports the product against the direct product and its f32 rounding
/// bound, for every form; a product off by one rounding-sized step more is caught.
#[test]
fn kernel_values_report_the_distance_from_the_direct_product() {
    for form in ["forward", "dgrad", "wgrad"] {
        let args = [
            "kernel",
            "gemm",
            "--t",
            "48",
            "--k",
            "32",
            "--n",
            "24",
            "--fabric",
            "mini",
            "--region",
            "4x4",
            "--sparsity",
            "0.5",
            "--form",
            form,
        ];
        let json = crate::common::run_json(&[&args[..], &["--values"]].concat());
        let v = &json["values"];
        assert_eq!(v["within_f32_rounding"], true, "{form}: {v}");
        let elements = if form == "wgrad" { 32 * 24 } else { 48 * 24 };
        let elements = if form == "dgrad" { 48 * 32 } else { elements };
        assert_eq!(v["elements"], elements, "{form}");
        let error = v["max_abs_error"].as_f64().unwrap();
        assert!(error > 0.0 && error < 1e-4, "{form}: {error}");
        assert!(v["max_error_to_bound"].as_f64().unwrap() <= 1.0);
        assert!(v["max_abs_value"].as_f64().unwrap() > 0.1);
        let timing_only = crate::common::run_json(&args);
        assert!(timing_only.get("values").is_none(), "{form}");
        assert_eq!(json["cycles"], timing_only["cycles"], "{form}");
    }

    let mut run = gemm(12, 16, 8, 0.5, (3, 4), None);
    run.seed = 5;
    let mut run = run_gemm(&mini(), &run).unwrap();
    assert!(run.check_values().unwrap().within_f32_rounding);
    // An element nudged by 1e-4 (beyond any rounding of 16 terms below 1) is caught.
    run.y.as_mut().unwrap()[7] += 1e-4;
    let check = run.check_values().unwrap();
    assert!(!check.within_f32_rounding);
    assert!(check.max_error_to_bound > 1.0);
    assert!((check.max_abs_error - 1e-4).abs() < 1e-5, "{check:?}");
    // A NaN is beyond any bound, whatever the other elements.
    run.y.as_mut().unwrap()[7] = f32::NAN;
    let check = run.check_values().unwrap();
    assert!(
        !check.within_f32_rounding && check.max_abs_error.is_nan(),
        "{check:?}"
    );
}

#[test]
fn kernel_command_prints_the_design_fields() {
    let json = crate::common::run_json(&[
        "kernel",
        "--fabric",
        "mini",
        "gemm",
        "--t",
        "64",
        "--k",
        "64",
        "--n",
        "16",
        "--sparsity",
        "0.5",
        "--region",
        "4x4",
    ]);
    for field in [
        "version",
        "seed",
        "fabric",
        "kernel",
        "t",
        "k",
        "n",
        "sparsity",
        "region",
        "split",
        "cycles",
        "seconds",
        "flops_dense",
        "flops_executed",
        "fmac_ops",
        "wavelets_sent",
        "wavelets_received",
        "wavelet_hops",
        "pe_utilization_mean",
        "pe_utilization_max",
        "sram_bytes_max",
        "host_seconds",
        "pe_cycles_per_host_second",
        "wavelet_hops_per_host_second",
        "breakdown",
    ] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    assert_eq!(crate::common::exact(&json, "flops_dense"), 2 * 64 * 64 * 16);
    assert_eq!(
        crate::common::exact(&json, "flops_executed"),
        2 * 512 * 64,
        "512 of 1024 weights kept, each an FMAC over all T = 64 tokens"
    );
}

#[test]
fn bad_kernel_flags_exit_2_naming_the_flag() {
    for (args, needle) in [
        (
            vec![
                "kernel", "gemm", "--t", "64", "--k", "64", "--n", "64", "--region", "995x10",
            ],
            "1 rows and 0 columns too many",
        ),
        (
            vec![
                "kernel", "gemm", "--t", "64", "--k", "64", "--n", "64", "--region", "4by4",
            ],
            "--region",
        ),
        (
            vec![
                "kernel", "gemm", "--t", "64", "--k", "64", "--n", "64", "--region", "4x4",
                "--split", "3x2",
            ],
            "--split",
        ),
        (
            vec![
                "kernel",
                "gemm",
                "--t",
                "64",
                "--k",
                "64",
                "--n",
                "64",
                "--sparsity",
                "1.5",
            ],
            "--sparsity",
        ),
        (
            vec![
                "kernel",
                "reduce",
                "--pes",
                "8",
                "--wavelets",
                "4",
                "--algo",
                "ring",
            ],
            "ring",
        ),
        (
            vec!["kernel", "allreduce", "--pes", "8", "--wavelets", "0"],
            "--wavelets",
        ),
        (
            vec![
                "kernel",
                "reduce",
                "--pes",
                "8",
                "--wavelets",
                "4",
                "--counters",
                "no-such-folder/c.bin",
            ],
            "--counters no-such-folder/c.bin: cannot write there (its folder no-such-folder does not exist)",
        ),
        (
            vec![
                "kernel",
                "reduce",
                "--pes",
                "8",
                "--wavelets",
                "4",
                "--trace",
                "no-such-folder/t.json",
            ],
            "--trace no-such-folder/t.json",
        ),
        (
            vec![
                "step",
                "gpt-tiny",
                "--fabric",
                "mini",
                "--trace",
                "no-such-folder/t.json",
            ],
            "--trace no-such-folder/t.json",
        ),
    ] {
        let (code, _, err) = crate::common::run_cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// The validate check of a shape, by kernel and shape text.
fn validate_check(json: &serde_json::Value, kernel: &str, shape: &str) -> serde_json::Value {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kernel"] == kernel && c["shape"].as_str().unwrap().starts_with(shape))
        .unwrap_or_else(|| panic!("no check {kernel} {shape}"))
        .clone()
}

#[test]
fn fidelity_model_gives_the_cost_model_that_validate_checks_against_the_engine() {
    let validation = crate::common::run_json(&["validate"]);
    let gemm = [
        "kernel",
        "gemm",
        "--t",
        "256",
        "--k",
        "512",
        "--n",
        "128",
        "--sparsity",
        "0.75",
        "--region",
        "8x8",
    ];
    let wavelet = crate::common::run_json(&gemm);
    let model = crate::common::run_json(&[&gemm[..], &["--fidelity", "model"]].concat());
    let check = validate_check(
        &validation,
        "gemm forward",
        "t 256 k 512 n 128 s 0.75 region 8x8",
    );
    assert_eq!(wavelet["fidelity"], "wavelet");
    assert_eq!(model["fidelity"], "model");
    assert_eq!(model["cycles"], check["model_cycles"]);
    assert_eq!(wavelet["cycles"], check["engine_cycles"]);
    for field in [
        "flops_dense",
        "flops_executed",
        "fmac_ops",
        "nonzeros",
        "split",
        "sram_bytes_max",
    ] {
        assert_eq!(model[field], wavelet[field], "{field}");
    }
    // What only the engine counts is left out, not made up.
    for field in ["wavelets_sent", "wavelet_hops", "events", "breakdown"] {
        assert!(model.get(field).is_none(), "{field}");
    }
    let parts = &model["model_breakdown"];
    let sum: u64 = [
        "compute_cycles",
        "imbalance_cycles",
        "reduction_cycles",
        "overhead_cycles",
    ]
    .iter()
    .map(|k| parts[*k].as_u64().unwrap())
    .sum();
    assert_eq!(sum, model["cycles"].as_u64().unwrap());
    let utilization = model["pe_utilization_mean"].as_f64().unwrap();
    assert!(utilization > 0.5 && utilization <= 1.0, "{utilization}");

    let reduce = ["kernel", "reduce", "--pes", "16", "--wavelets", "256"];
    let model = crate::common::run_json(&[&reduce[..], &["--fidelity", "model"]].concat());
    let check = validate_check(&validation, "reduce chain", "pes 16 wavelets 256");
    assert_eq!(model["cycles"], check["model_cycles"]);

    // The backward forms: dgrad on the transposed mask, wgrad at the non-zeros.
    for (form, t, k, n, s, region, shape) in [
        (
            "dgrad",
            "512",
            "256",
            "256",
            "0.5",
            "16x16",
            "t 512 k 256 n 256 s 0.5 region 16x16",
        ),
        (
            "wgrad",
            "256",
            "256",
            "128",
            "0.75",
            "8x8",
            "t 256 k 256 n 128 s 0.75 region 8x8",
        ),
    ] {
        let model = crate::common::run_json(&[
            "kernel",
            "gemm",
            "--t",
            t,
            "--k",
            k,
            "--n",
            n,
            "--sparsity",
            s,
            "--region",
            region,
            "--form",
            form,
            "--fidelity",
            "model",
        ]);
        let check = validate_check(&validation, &format!("gemm {form}"), shape);
        assert_eq!(model["cycles"], check["model_cycles"], "{form}");
    }
}

#[test]
fn fidelity_model_runs_a_full_wafer_gemm_the_engine_refuses() {
    let args = [
        "kernel",
        "gemm",
        "--t",
        "200000",
        "--k",
        "8192",
        "--n",
        "8192",
        "--sparsity",
        "0.75",
        "--region",
        "994x750",
    ];
    let (code, _, err) = crate::common::run_cli(&args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--fidelity model"), "{err}");
    let json = crate::common::run_json(&[&args[..], &["--fidelity", "model"]].concat());
    assert_eq!(json["region"], "994x750");
    assert_eq!(
        crate::common::exact(&json, "flops_dense"),
        2u128 * 200_000 * 8192 * 8192
    );
    assert_eq!(json["fmac_ops"], 200_000u64 * 8192 * 8192 / 4);
    let cycles = json["cycles"].as_u64().unwrap();
    // At least the FMACs spread over every PE at 4 per cycle.
    assert!(
        cycles >= 200_000 * 8192 * 8192 / 4 / (994 * 750) / 4,
        "{cycles}"
    );
}

#[test]
fn fidelity_model_refuses_what_it_cannot_give() {
    let gemm = [
        "kernel", "gemm", "--t", "64", "--k", "64", "--n", "64", "--region", "4x4",
    ];
    for (extra, needle) in [
        (
            vec!["--heatmap", "x.png"],
            "--heatmap needs --fidelity wavelet",
        ),
        (
            vec!["--counters", "x.npz"],
            "--counters needs --fidelity wavelet",
        ),
        (
            vec!["--trace", "x.json"],
            "--trace needs --fidelity wavelet",
        ),
        (vec!["--values"], "--values needs --fidelity wavelet"),
    ] {
        let args = [&gemm[..], &["--fidelity", "model"], &extra[..]].concat();
        let (code, _, err) = crate::common::run_cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _, err) = crate::common::run_cli(&[
        "kernel",
        "broadcast",
        "--region",
        "4x4",
        "--wavelets",
        "8",
        "--fidelity",
        "model",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("region broadcast runs on the wavelet-level engine only"),
        "{err}"
    );
    // What the engine refuses, the model refuses the same way; sizes never overflow.
    for (args, needle) in [
        (
            vec!["reduce", "--pes", "8", "--wavelets", "4", "--algo", "ring"],
            "ring",
        ),
        (
            vec![
                "broadcast",
                "--pes",
                "8",
                "--wavelets",
                "4",
                "--algo",
                "tree",
            ],
            "--algo",
        ),
        (
            vec!["reduce", "--pes", "8", "--wavelets", "100000000"],
            "--wavelets",
        ),
        (
            vec![
                "allreduce",
                "--pes",
                "8",
                "--wavelets",
                "18446744073709551615",
            ],
            "--wavelets",
        ),
        (
            vec![
                "gemm",
                "--t",
                "32",
                "--k",
                "2",
                "--n",
                "18446744073709551615",
                "--region",
                "1x1",
            ],
            "multiply-adds",
        ),
    ] {
        for fidelity in ["wavelet", "model"] {
            let args = [&["kernel"], &args[..], &["--fidelity", fidelity]].concat();
            let (code, _, err) = crate::common::run_cli(&args);
            assert_eq!(code, 2, "{args:?}: {err}");
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }
    // One PE moves nothing; the model says so, as the engine does.
    for kind in ["reduce", "allreduce", "broadcast"] {
        let args = ["kernel", kind, "--pes", "1", "--wavelets", "16"];
        let engine = crate::common::run_json(&args);
        let model = crate::common::run_json(&[&args[..], &["--fidelity", "model"]].concat());
        assert_eq!(engine["cycles"], 0, "{kind}");
        assert_eq!(model["cycles"], 0, "{kind}");
        assert_eq!(model["sram_bytes_max"], engine["sram_bytes_max"], "{kind}");
        assert!(model.get("pe_cycles_per_host_second").is_none(), "{kind}");
    }
}

#[test]
fn a_tile_that_does_not_fit_names_the_pe_tensors_and_bytes_over() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/fabric/mini.toml"))
        .unwrap()
        .replace("sram_bytes = 49_152", "sram_bytes = 8_192")
        .replace("code_reserve_bytes = 6_144", "code_reserve_bytes = 1_024");
    let path = crate::common::temp_file("small-sram.toml", &text);
    let fabric = path.to_str().unwrap();
    // T_r = 64, K_c = 64 (one K-group forced): X tile 8192 B + accumulators 256 B + 1024 B.
    let (code, _, err) = crate::common::run_cli(&[
        "kernel", "--fabric", fabric, "gemm", "--t", "256", "--k", "64", "--n", "8", "--region",
        "4x1",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("X tile 64x64 = 8192 B"), "{err}");
    assert!(err.contains("9472 B, 1280 B over"), "{err}");
}

mod physics {
    use super::*;
    use wafersim::engine::{self, ports, Kernel, Mesh, Port, Program, RunLimits, TaskIo, Work};

    /// Records when each wavelet reaches a core; tasks cost nothing.
    #[derive(Default)]
    struct Recorder {
        arrivals: Vec<(u32, u8, u64)>,
    }

    impl Kernel for Recorder {
        fn on_wavelet(
            &mut self,
            pe: u32,
            color: u8,
            _data: u64,
            now: u64,
            _io: &mut TaskIo,
        ) -> Option<Work> {
            self.arrivals.push((pe, color, now));
            Some(Work::default())
        }
        fn expected(&self) -> Vec<(u32, u8)> {
            Vec::new()
        }
    }

    /// A row of `p` PEs with `colors` colors, color 0 routed east from PE 0's core to PE p − 1's.
    fn east_route(p: u32, colors: u8) -> Program {
        let mesh = Mesh { rows: 1, cols: p };
        let mut program = Program::new(mesh, colors);
        program.routes.set(0, 0, Port::Ramp.bit(), Port::E.bit());
        for pe in 1..p - 1 {
            program.routes.set(pe, 0, Port::W.bit(), Port::E.bit());
        }
        program
            .routes
            .set(p - 1, 0, Port::W.bit(), Port::Ramp.bit());
        program
    }

    /// A row of `p` PEs: color 0 goes east from PE 0 to PE p − 1's core.
    fn east_line(p: u32, wavelets: usize) -> Program {
        let mut program = east_route(p, 1);
        program.initial_sends.push((0, 0, vec![7; wavelets]));
        program
    }

    #[test]
    fn one_wavelet_across_h_hops_arrives_after_h_hops_plus_the_ramp() {
        for (hop, ramp) in [(1, 2), (2, 3), (3, 0)] {
            let mut fabric = mini();
            fabric.router.hop_latency_cycles = hop;
            fabric.router.ramp_latency_cycles = ramp;
            for h in [1u64, 5, 15] {
                let mut rec = Recorder::default();
                let out = engine::run(
                    &fabric,
                    &east_line(h as u32 + 1, 1),
                    &mut rec,
                    RunLimits::default(),
                )
                .unwrap();
                assert_eq!(
                    rec.arrivals,
                    vec![(h as u32, 0, h * hop + ramp)],
                    "hop {hop} ramp {ramp} h {h}"
                );
                assert_eq!(out.wavelet_hops, h);
                assert_eq!((out.wavelets_sent, out.wavelets_received), (1, 1));
            }
        }
    }

    #[test]
    fn a_stream_moves_one_wavelet_per_cycle_per_link() {
        let fabric = mini();
        let mut rec = Recorder::default();
        engine::run(&fabric, &east_line(6, 100), &mut rec, RunLimits::default()).unwrap();
        let times: Vec<u64> = rec.arrivals.iter().map(|a| a.2).collect();
        let first = 5 + 2;
        assert_eq!(times, (first..first + 100).collect::<Vec<_>>());
    }

    /// PE 0 sends a block of `len` wavelets on color 0 when a wavelet of color 1 reaches its
    /// core; blocks and wavelets are recorded where they land, a block's task streams it.
    struct BlockSender {
        len: u16,
        blocks: Vec<(u32, u8, u64, u16)>,
        arrivals: Vec<(u32, u8, u64)>,
    }

    impl Kernel for BlockSender {
        fn on_wavelet(
            &mut self,
            pe: u32,
            color: u8,
            _data: u64,
            now: u64,
            io: &mut TaskIo,
        ) -> Option<Work> {
            if pe == 0 && color == 1 {
                io.send_block(0, 7, self.len, None);
            } else {
                self.arrivals.push((pe, color, now));
            }
            Some(Work::default())
        }
        fn on_block(
            &mut self,
            pe: u32,
            color: u8,
            data: u64,
            count: u16,
            now: u64,
            _io: &mut TaskIo,
        ) -> Option<Work> {
            assert_eq!(data, 7, "a block keeps its tag");
            self.blocks.push((pe, color, now, count));
            Some(Work {
                reduction_cycles: count as u64,
                ..Work::default()
            })
        }
        fn expected(&self) -> Vec<(u32, u8)> {
            Vec::new()
        }
    }

    /// A row of `p` PEs; a wavelet from the west edge on color 1 triggers PE 0's block, which
    /// goes east on color 0 to PE p − 1's core.
    fn block_line(p: u32, colors: u8) -> Program {
        let mut program = east_route(p, colors);
        program.routes.set(0, 1, Port::W.bit(), Port::Ramp.bit());
        program.edge_streams.push(engine::EdgeStream {
            pe: 0,
            color: 1,
            port: Port::W,
            wavelets: vec![0],
        });
        program
    }

    #[test]
    fn a_block_crosses_h_hops_like_a_stream_and_counts_every_wavelet() {
        let fabric = mini();
        let (hop, ramp) = (
            fabric.router.hop_latency_cycles,
            fabric.router.ramp_latency_cycles,
        );
        let mut kernel = BlockSender {
            len: 100,
            blocks: Vec::new(),
            arrivals: Vec::new(),
        };
        let out = engine::run(
            &fabric,
            &block_line(6, 2),
            &mut kernel,
            RunLimits::default(),
        )
        .unwrap();
        // The trigger reaches PE 0's core at `ramp`; the block leaves then, crosses 5 hops.
        assert_eq!(kernel.blocks, vec![(5, 0, ramp + 5 * hop + ramp, 100)]);
        assert_eq!(out.wavelet_hops, 5 * 100);
        assert_eq!((out.wavelets_sent, out.wavelets_received), (101, 101));
        assert_eq!(out.counters.pes[5].reduction_cycles, 100);
        assert_eq!(out.counters.pes[5].wavelets_out[Port::Ramp as usize], 100);
        // The block's last wavelet lands 99 cycles after its first; the run lasts until then.
        assert!(out.cycles >= ramp + 5 * hop + ramp + 99, "{}", out.cycles);
    }

    #[test]
    fn a_block_holds_every_link_it_crosses_for_its_length() {
        // PE 1's core streams 40 wavelets of color 2 east over the link PE 1 → PE 2 that the
        // block from PE 0 also crosses; no wavelet of color 2 may cross while the block does.
        let fabric = mini();
        let mut program = block_line(3, 3);
        program.routes.set(1, 2, Port::Ramp.bit(), Port::E.bit());
        program.routes.set(2, 2, Port::W.bit(), Port::Ramp.bit());
        program.initial_sends.push((1, 2, vec![0; 40]));
        let mut kernel = BlockSender {
            len: 30,
            blocks: Vec::new(),
            arrivals: Vec::new(),
        };
        let out = engine::run(&fabric, &program, &mut kernel, RunLimits::default()).unwrap();
        let (_, _, first, len) = kernel.blocks[0];
        let during: Vec<u64> = kernel
            .arrivals
            .iter()
            .filter(|a| a.1 == 2 && (first..first + len as u64).contains(&a.2))
            .map(|a| a.2)
            .collect();
        assert!(
            during.is_empty(),
            "color 2 crossed during the block: {during:?}"
        );
        let color2 = || kernel.arrivals.iter().filter(|a| a.1 == 2);
        assert!(color2().any(|a| a.2 < first), "the stream started first");
        assert!(color2().any(|a| a.2 >= first + len as u64), "and waited");
        assert_eq!(kernel.arrivals.iter().filter(|a| a.1 == 2).count(), 40);
        // 70 wavelets over one link: at least 70 cycles, and not much more.
        let last = kernel.arrivals.iter().map(|a| a.2).max().unwrap();
        assert!((70..90).contains(&last), "{last}");
        assert_eq!(out.counters.pes[1].wavelets_out[Port::E as usize], 70);
    }

    #[test]
    fn two_colors_sharing_a_link_each_get_half_of_it() {
        // PE 0 sends color 0 east through PE 1; PE 1 sends color 1 east; both cross the
        // link PE 1 → PE 2 and end at PE 2's core.
        let fabric = mini();
        let mesh = Mesh { rows: 1, cols: 3 };
        let mut program = Program::new(mesh, 2);
        program.routes.set(0, 0, Port::Ramp.bit(), Port::E.bit());
        program.routes.set(1, 0, Port::W.bit(), Port::E.bit());
        program.routes.set(2, 0, Port::W.bit(), Port::Ramp.bit());
        program.routes.set(1, 1, Port::Ramp.bit(), Port::E.bit());
        program.routes.set(2, 1, Port::W.bit(), Port::Ramp.bit());
        let b = 200;
        program.initial_sends.push((0, 0, vec![0; b]));
        program.initial_sends.push((1, 1, vec![0; b]));
        let mut rec = Recorder::default();
        let out = engine::run(&fabric, &program, &mut rec, RunLimits::default()).unwrap();
        // 400 wavelets through one link at one per cycle.
        let last = rec.arrivals.iter().map(|a| a.2).max().unwrap();
        assert!((400..410).contains(&last), "last arrival at {last}");
        // In every window of 20 cycles while both stream, each color gets 10 ± 1 of them.
        for window in (20..380).step_by(20) {
            for color in [0, 1] {
                let got = rec
                    .arrivals
                    .iter()
                    .filter(|a| a.1 == color && (window..window + 20).contains(&a.2))
                    .count();
                assert!(
                    (9..=11).contains(&got),
                    "color {color} got {got} of cycles {window}..+20"
                );
            }
        }
        assert_eq!(out.counters.pes[1].wavelets_out[Port::E as usize], 400);
        assert_eq!(out.counters.pes[2].wavelets_in[Port::W as usize], 400);
        assert_eq!(out.counters.pes[1].wavelets_in[Port::W as usize], 200);
        assert_eq!(
            out.counters.pes[1].wavelets_in[Port::Ramp as usize],
            200,
            "sent by its core"
        );
        assert_eq!(
            out.counters.pes[2].wavelets_out[Port::Ramp as usize],
            400,
            "delivered to its core"
        );
        let _ = ports(&[Port::E]);
    }

    /// When a wavelet of color 2 reaches PE 0's core, its task (100 cycles) sends, in the order
    /// given, a plain wavelet on color 0 (ready when the task ends) and a block of 10 on color 1
    /// (ready one cycle after it starts); both share PE 0's ramp into its router and go east to
    /// PE 1's core, which records what arrives when.
    struct RampSharer {
        block_first: bool,
        arrivals: Vec<(u8, u64)>,
    }

    impl Kernel for RampSharer {
        fn on_wavelet(
            &mut self,
            pe: u32,
            color: u8,
            _data: u64,
            now: u64,
            io: &mut TaskIo,
        ) -> Option<Work> {
            if pe == 1 {
                self.arrivals.push((color, now));
                return Some(Work::default());
            }
            if self.block_first {
                io.send_block(1, 0, 10, Some(1));
                io.send(0, 0);
            } else {
                io.send(0, 0);
                io.send_block(1, 0, 10, Some(1));
            }
            Some(Work {
                overhead_cycles: 100,
                ..Work::default()
            })
        }
        fn on_block(
            &mut self,
            _pe: u32,
            color: u8,
            _data: u64,
            count: u16,
            now: u64,
            _io: &mut TaskIo,
        ) -> Option<Work> {
            self.arrivals.push((color, now));
            Some(Work {
                reduction_cycles: count as u64,
                ..Work::default()
            })
        }
        fn expected(&self) -> Vec<(u32, u8)> {
            Vec::new()
        }
    }

    #[test]
    fn a_send_ready_later_does_not_hold_the_ramp_for_one_ready_earlier() {
        let fabric = mini();
        let (hop, ramp) = (
            fabric.router.hop_latency_cycles,
            fabric.router.ramp_latency_cycles,
        );
        let mesh = Mesh { rows: 1, cols: 2 };
        let mut program = Program::new(mesh, 3);
        for color in [0, 1] {
            program
                .routes
                .set(0, color, Port::Ramp.bit(), Port::E.bit());
            program
                .routes
                .set(1, color, Port::W.bit(), Port::Ramp.bit());
        }
        program.routes.set(0, 2, Port::W.bit(), Port::Ramp.bit());
        program.edge_streams.push(engine::EdgeStream {
            pe: 0,
            color: 2,
            port: Port::W,
            wavelets: vec![0],
        });
        // The trigger reaches PE 0's core at `ramp`; the block leaves a cycle later, the
        // wavelet when the task ends, 90 cycles after the block has gone.
        let start = ramp;
        let expected = vec![(1, start + 1 + hop + ramp), (0, start + 100 + hop + ramp)];
        for block_first in [true, false] {
            let mut kernel = RampSharer {
                block_first,
                arrivals: Vec::new(),
            };
            engine::run(&fabric, &program, &mut kernel, RunLimits::default()).unwrap();
            assert_eq!(
                kernel.arrivals, expected,
                "block pushed first: {block_first}"
            );
        }
    }

    /// Four PEs in a 2 × 2 square whose routes for color 0 form a cycle with no exit; every
    /// PE's core sends `wavelets` into it.
    fn route_cycle(wavelets: usize) -> Program {
        let mesh = Mesh { rows: 2, cols: 2 };
        let mut program = Program::new(mesh, 1);
        program
            .routes
            .set(0, 0, ports(&[Port::Ramp, Port::S]), Port::E.bit());
        program
            .routes
            .set(1, 0, ports(&[Port::Ramp, Port::W]), Port::S.bit());
        program
            .routes
            .set(3, 0, ports(&[Port::Ramp, Port::N]), Port::W.bit());
        program
            .routes
            .set(2, 0, ports(&[Port::Ramp, Port::E]), Port::N.bit());
        for pe in 0..4 {
            program.initial_sends.push((pe, 0, vec![1; wavelets]));
        }
        program
    }

    #[test]
    fn a_route_loop_is_refused_with_its_pes_and_color() {
        // Wavelets entering it would circle forever (reaching cores on the way, so no timeout
        // would see them stuck), or fill it and deadlock.
        let err = refused(&mini(), &route_cycle(10));
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string().contains(
                "the route of color 0 loops through PE (0, 0) → PE (0, 1) → PE (1, 1) → \
                 PE (1, 0) → PE (0, 0)"
            ),
            "{err}"
        );
    }

    /// A core that never takes a wavelet of `color`.
    struct Refuser {
        color: u8,
    }

    impl Kernel for Refuser {
        fn on_wavelet(
            &mut self,
            _pe: u32,
            color: u8,
            _data: u64,
            _now: u64,
            _io: &mut TaskIo,
        ) -> Option<Work> {
            (color != self.color).then(Work::default)
        }
        fn expected(&self) -> Vec<(u32, u8)> {
            Vec::new()
        }
    }

    /// Every task lasts `cycles`.
    struct Slow {
        cycles: u64,
    }

    impl Kernel for Slow {
        fn on_wavelet(
            &mut self,
            _pe: u32,
            _color: u8,
            _data: u64,
            _now: u64,
            _io: &mut TaskIo,
        ) -> Option<Work> {
            Some(Work {
                fmac_cycles: self.cycles,
                ..Work::default()
            })
        }
        fn expected(&self) -> Vec<(u32, u8)> {
            Vec::new()
        }
    }

    #[test]
    fn a_task_longer_than_the_progress_timeout_is_no_livelock() {
        let limits = RunLimits {
            progress_timeout_cycles: 10,
            ..RunLimits::default()
        };
        let out = engine::run(&mini(), &east_line(2, 3), &mut Slow { cycles: 50 }, limits)
            .expect("three 50-cycle tasks are progress");
        assert!(out.cycles >= 150, "{}", out.cycles);
    }

    #[test]
    fn a_deadlock_is_reported_with_its_stuck_pes_and_colors() {
        // PE 3 never takes its wavelets: its core queue, the buffers on the way and PE 0's
        // send queue fill, and nothing can move.
        let err = engine::run(
            &mini(),
            &east_line(4, 30),
            &mut Refuser { color: 0 },
            RunLimits::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.exit_code(), 1);
        assert!(text.contains("deadlock"), "{text}");
        for stuck in [
            "PE (0, 3) color 0: 4 wavelets waiting for a task",
            "PE (0, 3) color 0: 4 wavelets in the router buffer",
            "PE (0, 2) color 0: 4 wavelets in the router buffer",
            "PE (0, 1) color 0: 4 wavelets in the router buffer",
            "PE (0, 0) color 0: 4 wavelets in the router buffer",
            "PE (0, 0) color 0: 10 wavelets of its core sends not sent",
        ] {
            assert!(text.contains(stuck), "{stuck} missing from: {text}");
        }
    }

    /// The error `program` stops with before its first cycle.
    fn refused(fabric: &FabricSpec, program: &Program) -> wafersim::error::Error {
        engine::run(
            fabric,
            program,
            &mut Recorder::default(),
            RunLimits::default(),
        )
        .unwrap_err()
    }

    #[test]
    fn a_route_into_a_pe_that_does_not_accept_it_is_refused_before_running() {
        let mut program = east_line(3, 1);
        program.routes.inputs[1] = Port::N.bit(); // PE 1, color 0: from the north only
        let err = refused(&mini(), &program);
        assert!(
            err.to_string().contains("PE (0, 0) sends E to PE (0, 1)"),
            "{err}"
        );
    }

    #[test]
    fn a_route_naming_a_port_that_does_not_exist_is_refused_before_running() {
        let mut program = east_line(3, 1);
        program.routes.outputs[1] |= 1 << 6; // PE 1, color 0: a sixth "port"
        let err = refused(&mini(), &program);
        assert!(
            err.to_string().contains("PE (0, 1) names ports beyond"),
            "{err}"
        );
    }

    /// Takes every wavelet in a task of 3 cycles, noting (cycle, data) at PE 0.
    #[derive(Default)]
    struct Taker(Vec<(u64, u64)>);

    impl Kernel for Taker {
        fn on_wavelet(
            &mut self,
            pe: u32,
            _color: u8,
            data: u64,
            now: u64,
            _io: &mut TaskIo,
        ) -> Option<Work> {
            if pe == 0 {
                self.0.push((now, data));
            }
            Some(Work {
                overhead_cycles: 3,
                ..Work::default()
            })
        }
        fn expected(&self) -> Vec<(u32, u8)> {
            Vec::new()
        }
    }

    #[test]
    fn a_full_buffer_wakes_an_edge_stream_at_its_routes_first_input_from_outside_the_mesh() {
        // PE (0, 0) takes color 0 from N (off the mesh, no stream), S (PE (1, 0)'s core) and W
        // (an edge stream), into a buffer of 1. When it pops, the stream (woken at N, the first
        // input from outside) goes before the core below: one of its wavelets, then the stream.
        let mut fabric = mini();
        fabric.router.color_buffer_depth_wavelets = 1;
        let mut program = Program::new(Mesh { rows: 2, cols: 1 }, 1);
        let inputs = ports(&[Port::N, Port::S, Port::W]);
        program.routes.set(0, 0, inputs, Port::Ramp.bit());
        program.routes.set(1, 0, Port::Ramp.bit(), Port::N.bit());
        program.edge_streams.push(engine::EdgeStream {
            pe: 0,
            color: 0,
            port: Port::W,
            wavelets: (100..106).collect(),
        });
        program.initial_sends.push((1, 0, (200..206).collect()));
        let mut taker = Taker::default();
        let out = engine::run(&fabric, &program, &mut taker, RunLimits::default()).unwrap();
        let order: Vec<u64> = taker.0.iter().map(|&(_, data)| data).collect();
        assert_eq!(
            order,
            [100, 200, 101, 102, 103, 104, 105, 201, 202, 203, 204, 205]
        );
        assert_eq!(out.cycles, 38);
        assert_eq!(
            (
                out.counters.pes[0].stall_cycles,
                out.counters.pes[1].stall_cycles
            ),
            (35, 49)
        );
    }

    #[test]
    fn a_core_sending_on_a_color_that_does_not_take_the_ramp_is_an_error() {
        let mut program = Program::new(Mesh { rows: 1, cols: 1 }, 1);
        program.routes.set(0, 0, Port::W.bit(), Port::Ramp.bit());
        program.initial_sends.push((0, 0, vec![1, 2, 3]));
        let err = refused(&mini(), &program);
        assert!(
            err.to_string().contains(
                "PE (0, 0) sends on color 0, whose route there takes nothing from the ramp"
            ),
            "{err}"
        );
    }

    #[test]
    fn two_edge_streams_into_one_buffer_are_refused() {
        let mut program = Program::new(Mesh { rows: 1, cols: 1 }, 1);
        program
            .routes
            .set(0, 0, ports(&[Port::N, Port::W]), Port::Ramp.bit());
        for port in [Port::N, Port::W] {
            program.edge_streams.push(engine::EdgeStream {
                pe: 0,
                color: 0,
                port,
                wavelets: vec![1],
            });
        }
        let err = refused(&mini(), &program);
        assert!(
            err.to_string()
                .contains("two edge streams feed color 0 at PE (0, 0)"),
            "{err}"
        );
    }

    #[test]
    fn a_kernel_with_more_than_32_colors_is_refused_even_where_the_fabric_has_them() {
        // A core keeps its ready colors in 32 bits.
        let mut fabric = mini();
        fabric.router.colors = 64;
        fabric.router.colors_reserved = 0;
        let err = refused(&fabric, &Program::new(Mesh { rows: 1, cols: 3 }, 33));
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("at most 32 colors, not 33"),
            "{err}"
        );
    }
}

mod conservation {
    use super::*;
    use wafersim::engine::kernels::collective::{
        contribution, run_collective, Algo, Collective, CollectiveConfig,
    };
    use wafersim::engine::kernels::gemm::partial_sums_per_wavelet;
    use wafersim::sparsity::split_range;

    #[test]
    fn every_fmac_is_a_received_nonzero_times_the_local_vector_exactly() {
        let fabric = mini();
        for (sparsity, split) in [(0.75, None), (0.5, Some((4, 2))), (0.0, Some((2, 4)))] {
            let mut cfg = gemm(96, 64, 32, sparsity, (4, 8), split);
            cfg.values = false;
            let run = run_gemm(&fabric, &cfg).unwrap();
            let plan = &run.plan;
            let per_column = plan.nonzeros_per_pe_column();
            let mut total = 0;
            for (pe, counters) in run.output.counters.pes.iter().enumerate() {
                let (r, c) = (pe / 8, pe % 8);
                let t_r = split_range(96, 4, r).len() as u64;
                let nonzeros = per_column.total(c);
                assert_eq!(counters.fmac_ops, nonzeros * t_r, "PE ({r}, {c})");
                total += nonzeros * t_r;
            }
            assert_eq!(run.output.counters.total().fmac_ops, total);
            assert_eq!(total, plan.mask.nonzeros() * 96);
            // Weight wavelets: per PE column, its non-zeros (dense: pairs) plus one control per
            // output column, delivered to all 4 rows; partial sums: W_r per output column per row
            // per non-head K-group, each delivered once.
            let streamed: u64 = (0..8)
                .map(|c| {
                    let k_c = split_range(64, plan.ck as usize, c % plan.ck as usize).len() as u64;
                    per_column
                        .column(c)
                        .iter()
                        .map(|&nz| if plan.dense { k_c.div_ceil(2) } else { u64::from(nz) } + 1)
                        .sum::<u64>()
                })
                .sum();
            let w_r = (96 / 4u64).div_ceil(partial_sums_per_wavelet(&fabric) as u64);
            let psums = 4 * (plan.ck as u64 - 1) * plan.cn as u64 * (32 / plan.cn as u64) * w_r;
            assert_eq!(run.output.wavelets_sent, streamed + psums, "{sparsity}");
            assert_eq!(
                run.output.wavelets_received,
                4 * streamed + psums,
                "{sparsity}"
            );
            assert_eq!(run.output.wavelet_hops, 3 * streamed + psums, "{sparsity}");
        }
    }

    fn collective(
        collective: Collective,
        algo: Algo,
        p: u32,
        b: u64,
    ) -> wafersim::engine::kernels::collective::CollectiveRun {
        let cfg = CollectiveConfig {
            collective,
            rows: 1,
            cols: p,
            wavelets: b,
            algo,
            values: true,
            seed: 0,
        };
        run_collective(&mini(), &cfg).unwrap()
    }

    fn sums(p: u32, b: u64) -> Vec<f32> {
        (0..b)
            .map(|i| (0..p).map(|pe| contribution(pe, i)).sum())
            .collect()
    }

    fn short_broadcast(b: u64) -> CollectiveConfig {
        CollectiveConfig {
            collective: Collective::Broadcast,
            rows: 1,
            cols: 2,
            wavelets: b,
            algo: Algo::Chain,
            values: true,
            seed: 0,
        }
    }

    #[test]
    fn reductions_give_the_exact_sums_and_move_the_counted_wavelets() {
        let (p, b) = (13, 40);
        let chain = collective(Collective::Reduce, Algo::Chain, p, b);
        assert_eq!(chain.results[12], sums(p, b));
        // A vector of one element is a block of 1, and values index 1 are not zero.
        for b in [1, 2] {
            let short = collective(Collective::Reduce, Algo::Chain, p, b);
            assert_eq!(short.results[12], sums(p, b), "b {b}");
            let mut cfg = short_broadcast(b);
            cfg.cols = p;
            let run = run_collective(&mini(), &cfg).unwrap();
            let expected: Vec<f32> = (0..b).map(|i| contribution(0, i)).collect();
            assert!(run.results[1..].iter().all(|r| *r == expected), "b {b}");
        }
        assert_eq!(
            (chain.output.wavelets_sent, chain.output.wavelets_received),
            (12 * b, 12 * b)
        );
        assert_eq!(chain.output.wavelet_hops, 12 * b);
        let tree = collective(Collective::Reduce, Algo::Tree, p, b);
        assert_eq!(tree.results[0], sums(p, b));
        assert_eq!(
            tree.output.wavelets_received,
            12 * b,
            "one vector per non-root PE"
        );
        // Each PE i > 0 sends 2^lowbit(i) hops: 1·6 + 2·3 + 4·2 + 8·1 for P = 13.
        assert_eq!(tree.output.wavelet_hops, (6 + 6 + 8 + 8) * b);
        for algo in [Algo::Chain, Algo::Tree, Algo::Ring] {
            let all = collective(Collective::Allreduce, algo, p, b);
            for pe in 0..p as usize {
                assert_eq!(all.results[pe], sums(p, b), "{algo:?} PE {pe}");
            }
        }
        let ring = collective(Collective::Allreduce, Algo::Ring, p, b);
        // Each PE receives every chunk but its own in reduce-scatter and all but one in all-gather.
        assert_eq!(ring.output.wavelets_received, 2 * (p as u64 - 1) * b);
    }

    #[test]
    fn broadcast_reaches_every_pe_once_over_one_link_each() {
        let cfg = CollectiveConfig {
            collective: Collective::Broadcast,
            rows: 5,
            cols: 7,
            wavelets: 9,
            algo: Algo::Chain,
            values: true,
            seed: 0,
        };
        let run = run_collective(&mini(), &cfg).unwrap();
        let expected: Vec<f32> = (0..9).map(|i| contribution(0, i)).collect();
        assert!(run.results[1..].iter().all(|r| *r == expected));
        assert_eq!(run.output.wavelets_sent, 9);
        assert_eq!(run.output.wavelets_received, 34 * 9);
        assert_eq!(run.output.wavelet_hops, 34 * 9);
    }
}

mod speedup {
    use super::*;

    fn cycles(
        t: usize,
        k: usize,
        n: usize,
        sparsity: f64,
        region: (u32, u32),
        split: Option<(u32, u32)>,
    ) -> u64 {
        let mut cfg = gemm(t, k, n, sparsity, region, split);
        cfg.values = false;
        run_gemm(&mini(), &cfg).unwrap().output.cycles
    }

    #[test]
    fn sparse_speedup_approaches_the_flop_ratio_only_when_compute_bound() {
        let s = 0.75;
        // Compute-bound: T_r = 256 tokens per PE (64 FMAC cycles per non-zero), K_c = 64.
        let dense = cycles(1024, 256, 64, 0.0, (4, 4), None);
        let sparse = cycles(1024, 256, 64, s, (4, 4), None);
        let compute_bound = dense as f64 / sparse as f64;
        // Reduction-bound: T_r = 64, sixteen K-groups of K_c = 2: half a non-zero per output
        // column per PE against 32 partial-sum wavelets to add.
        let dense_r = cycles(256, 32, 64, 0.0, (4, 16), Some((16, 1)));
        let sparse_r = cycles(256, 32, 64, s, (4, 16), Some((16, 1)));
        let reduction_bound = dense_r as f64 / sparse_r as f64;
        println!("compute-bound: {dense} / {sparse} = {compute_bound:.2}; reduction-bound: {dense_r} / {sparse_r} = {reduction_bound:.2}");
        // Measured 3.37: below 1/(1 − s) = 4 by the index decode (71 against 67 cycles per
        // value), the partial sums and the imbalance of a random mask.
        assert!(
            compute_bound > 3.2 && compute_bound < 4.0,
            "{compute_bound}"
        );
        // Measured 1.31: the partial sums do not shrink with sparsity.
        assert!(reduction_bound < 1.5, "{reduction_bound}");
    }
}

#[test]
fn the_same_seed_gives_identical_counters() {
    let fabric = mini();
    let mut cfg = gemm(128, 128, 64, 0.75, (8, 8), None);
    cfg.values = false;
    let a = run_gemm(&fabric, &cfg).unwrap();
    let b = run_gemm(&fabric, &cfg).unwrap();
    assert_eq!(a.output.counters, b.output.counters);
    assert_eq!(a.output.cycles, b.output.cycles);
    let with_values = run_gemm(
        &fabric,
        &GemmConfig {
            pattern: wafersim::sparsity::Pattern::Random,
            values: true,
            ..cfg.clone()
        },
    )
    .unwrap();
    assert_eq!(
        with_values.output.counters, a.output.counters,
        "values do not change timing"
    );
    cfg.seed += 1;
    let c = run_gemm(&fabric, &cfg).unwrap();
    assert_ne!(
        a.output.counters, c.output.counters,
        "another mask, other counters"
    );
}

#[test]
fn backward_forms_equal_their_direct_products() {
    use wafersim::engine::kernels::wgrad::reference_wgrad;
    let fabric = mini();
    for (sparsity, split) in [(0.0, (2, 2)), (0.75, (4, 1)), (0.5, (1, 4))] {
        let mut cfg = gemm(12, 16, 8, sparsity, (3, 4), Some(split));
        cfg.form = GemmForm::Dgrad;
        let run = run_gemm(&fabric, &cfg).unwrap();
        assert_eq!((run.plan.k_in, run.plan.n_out), (8, 16), "dX = dY · Wᵀ");
        assert!(max_error(&run) < 1e-4, "dgrad {sparsity} {split:?}");
        cfg.form = GemmForm::Wgrad;
        let run = run_gemm(&fabric, &cfg).unwrap();
        let reference = reference_wgrad(&run.plan, run.values.as_ref().unwrap());
        let dw = run.y.as_ref().unwrap();
        let err = dw
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "wgrad {sparsity} {split:?}: {err}");
        // Computed only at the non-zeros: one dot product over T per kept weight.
        assert_eq!(
            run.output.counters.total().fmac_ops,
            run.plan.mask.nonzeros() * 12
        );
        let kept = (0..16 * 8)
            .filter(|&i| run.plan.mask.get(i / 8, i % 8))
            .count();
        assert_eq!(dw.iter().filter(|v| **v != 0.0).count(), kept);
    }
}

/// The busy cycles of every PE, by kind, are exactly what the documented timing structure of
/// `engine::kernels::gemm` says (`GemmPlan::predicted_work`, what a cost model builds on); the
/// kernel's cycles sit just above the slowest PE's work.
#[test]
fn gemm_busy_cycles_follow_the_documented_structure_exactly() {
    let fabric = mini();
    for (sparsity, split) in [(0.75, (4, 2)), (0.0, (2, 4)), (0.5, (8, 1))] {
        let mut cfg = gemm(100, 96, 40, sparsity, (4, 8), Some(split));
        cfg.values = false;
        let run = run_gemm(&fabric, &cfg).unwrap();
        let predicted = run.plan.predicted_work(&fabric);
        let nonzeros = run.plan.nonzeros_per_pe_column();
        for (pe, (got, want)) in run.output.counters.pes.iter().zip(&predicted).enumerate() {
            let at = format!("PE ({}, {}) at sparsity {sparsity}", pe / 8, pe % 8);
            assert_eq!(got.fmac_cycles, want.fmac_cycles, "{at}");
            assert_eq!(got.overhead_cycles, want.overhead_cycles, "{at}");
            assert_eq!(got.reduction_cycles, want.reduction_cycles, "{at}");
            assert_eq!(got.fmac_ops, want.fmac_ops, "{at}");
            // One task per weight wavelet and per control wavelet, and one per column's
            // partial-sum block (not one per partial-sum wavelet).
            let column = pe % 8;
            let j = column % run.plan.ck as usize;
            let columns = nonzeros.column(column).len() as u64;
            let wavelets = if run.plan.dense {
                let k_c = wafersim::sparsity::split_range(run.plan.k_in, run.plan.ck as usize, j);
                columns * k_c.len().div_ceil(2) as u64
            } else {
                nonzeros.total(column)
            };
            let blocks = if j > 0 { columns } else { 0 };
            assert_eq!(got.tasks, wavelets + columns + blocks, "{at}");
        }
        let slowest = predicted.iter().map(|w| w.total_cycles()).max().unwrap();
        let cycles = run.output.cycles;
        println!("sparsity {sparsity} split {split:?}: {cycles} cycles, slowest PE busy {slowest}");
        // Fill and drain: measured 0.1% to 6% above the slowest PE on these small shapes.
        assert!(
            cycles >= slowest && cycles * 10 <= slowest * 11,
            "{cycles} against {slowest}"
        );
    }
}

#[test]
fn kernel_counters_are_saved_as_npz_and_read_back() {
    let path = crate::common::temp_file("counters.npz", "");
    let json = crate::common::run_json(&[
        "kernel",
        "--fabric",
        "mini",
        "--counters",
        path.to_str().unwrap(),
        "allreduce",
        "--pes",
        "8",
        "--wavelets",
        "32",
        "--algo",
        "ring",
    ]);
    let counters = wafersim::report::read_kernel_counters(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        (counters.rows, counters.cols, counters.pes.len()),
        (1, 8, 8)
    );
    assert_eq!(json["cycles"], counters.cycles);
    assert_eq!(counters.busy_fraction_grid().len(), 8);
    let received: u64 = counters.pes.iter().map(|c| c.wavelets_out[4]).sum();
    assert_eq!(
        json["wavelets_received"], received,
        "ramp-out counts every delivery"
    );
}

/// A damaged kernel counters file is refused by `plot` with its name and exit 2, whatever byte
/// is damaged: never a panic, never a picture of counters no run gave.
#[test]
fn damaged_kernel_counters_are_refused_by_plot() {
    use wafersim::report::npz::{npz_bytes, read_npz, NpyArray, NpyData};
    use wafersim::report::{kernel_counters_npz, read_kernel_counters};
    let path = crate::common::temp_file("damaged-counters.npz", "");
    let picture = path.with_extension("png");
    let (code, _, err) = crate::common::run_cli(&[
        "kernel",
        "--fabric",
        "mini",
        "--counters",
        path.to_str().unwrap(),
        "gemm",
        "--t",
        "16",
        "--k",
        "32",
        "--n",
        "16",
        "--sparsity",
        "0.5",
        "--region",
        "2x2",
    ]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&path).unwrap();
    let plot = |file: &std::path::Path| {
        crate::common::run_cli(&[
            "plot",
            "heatmap",
            file.to_str().unwrap(),
            "-o",
            picture.to_str().unwrap(),
        ])
    };
    assert_eq!(plot(&path).0, 0);
    let (code, _, err) = crate::common::run_cli(&[
        "plot",
        "heatmap",
        path.to_str().unwrap(),
        "-o",
        picture.to_str().unwrap(),
        "--run",
        "0.5",
    ]);
    assert_eq!(code, 2, "a kernel's counters hold one run: {err}");
    assert!(err.contains("--run 0.5"), "{err}");

    // Counters no run gives: a PE whose busy cycles overflow a u64 or exceed the run, a grid of
    // the wrong size.
    let counters = read_kernel_counters(&bytes).unwrap();
    // One array of the file replaced, as a script editing it with numpy would.
    let with = |name: &str, array: NpyArray| {
        let mut arrays = read_npz(&bytes).unwrap();
        arrays.insert(name.to_string(), array);
        npz_bytes(&arrays.into_iter().collect::<Vec<_>>()).unwrap()
    };
    let mut fmac: Vec<u64> = counters.pes.iter().map(|c| c.fmac_cycles).collect();
    fmac[2] = u64::MAX;
    let mut too_busy = counters.clone();
    too_busy.pes[3].overhead_cycles += counters.cycles;
    let wrong_size = NpyArray::u64s(vec![2, 3], vec![0; 6]);
    for (what, edited, says) in [
        (
            "overflowing",
            with("fmac_cycles", NpyArray::u64s(vec![2, 2], fmac)),
            "PE (1, 0) is busy more than 2^64 cycles",
        ),
        (
            "too busy",
            kernel_counters_npz(&too_busy).unwrap(),
            "PE (1, 1) is busy",
        ),
        ("wrong size", with("tasks", wrong_size), "array tasks"),
        (
            "not counts",
            with(
                "sram_bytes",
                NpyArray {
                    shape: vec![2, 2],
                    data: NpyData::F64(vec![0.5; 4]),
                },
            ),
            "array sram_bytes",
        ),
        (
            "garbage",
            [bytes.as_slice(), b"tail"].concat(),
            "bytes after the zip directory",
        ),
        (
            "truncated",
            bytes[..bytes.len() - 1].to_vec(),
            "no zip directory",
        ),
    ] {
        let bad = path.with_extension(what.replace(' ', "-"));
        std::fs::write(&bad, edited).unwrap();
        let (code, stdout, err) = plot(&bad);
        assert_eq!(code, 2, "{what}: {err}");
        assert!(stdout.is_empty());
        assert!(err.contains(bad.to_str().unwrap()), "{what}: {err}");
        assert!(err.contains(says), "{what}: {err}");
    }

    // Every byte set to each of a few values: read back or refused, and what is read back
    // draws without a panic.
    for i in 0..bytes.len() {
        for value in [0x00, 0x01, 0x7f, 0x80, 0xff] {
            let mut edited = bytes.clone();
            edited[i] = value;
            if let Ok(counters) = read_kernel_counters(&edited) {
                let fractions = counters.busy_fraction_grid();
                assert!(fractions.iter().all(|f| (0.0..=1.0).contains(f)));
            }
        }
    }
}
/// Closed forms of the pipelined chain and the line broadcast, for cost models: a chain step
/// costs hop + ramp + activation + 1 add, then one wavelet per cycle streams behind it.
#[test]
fn chain_reduce_and_broadcast_times_have_closed_forms() {
    use wafersim::engine::kernels::collective::{
        run_collective, Algo, Collective, CollectiveConfig,
    };
    let fabric = mini();
    let (hop, ramp, a) = (
        fabric.router.hop_latency_cycles,
        fabric.router.ramp_latency_cycles,
        fabric.pe.task_activation_cycles,
    );
    for (p, b) in [(2u64, 1u64), (8, 64), (16, 256), (13, 5)] {
        let cycles = |collective| {
            let cfg = CollectiveConfig {
                collective,
                rows: 1,
                cols: p as u32,
                wavelets: b,
                algo: Algo::Chain,
                values: false,
                seed: 0,
            };
            run_collective(&fabric, &cfg).unwrap().output.cycles
        };
        assert_eq!(
            cycles(Collective::Reduce),
            (p - 1) * (hop + ramp + a + 1) + b - 1,
            "P {p} B {b}"
        );
        assert_eq!(
            cycles(Collective::Broadcast),
            (p - 1) * hop + ramp + a + b,
            "P {p} B {b}"
        );
    }
}

#[test]
fn collectives_along_a_column_match_those_along_a_row() {
    use wafersim::engine::kernels::collective::{
        contribution, run_collective, Collective, CollectiveConfig,
    };
    let (p, b) = (11u32, 24u64);
    let sums: Vec<f32> = (0..b)
        .map(|i| (0..p).map(|pe| contribution(pe, i)).sum())
        .collect();
    for (collective, algo) in crate::common::COLLECTIVES {
        let run = |rows, cols| {
            let cfg = CollectiveConfig {
                collective,
                rows,
                cols,
                wavelets: b,
                algo,
                values: true,
                seed: 0,
            };
            run_collective(&mini(), &cfg).unwrap()
        };
        let (row, column) = (run(1, p), run(p, 1));
        assert_eq!(
            row.output.cycles, column.output.cycles,
            "{collective:?} {algo:?}"
        );
        assert_eq!(row.results, column.results, "{collective:?} {algo:?}");
        if collective == Collective::Allreduce {
            assert!(column.results.iter().all(|r| *r == sums), "{algo:?}");
        }
    }
}
