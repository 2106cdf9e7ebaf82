//! A faster machine never maps to a slower plan: raising one of the fabric's throughput keys —
//! SIMD lanes, clock, wafer I/O bandwidth, SRAM per PE — never makes a step take longer, in
//! seconds. (A step that got slower with more lanes, wse2 4 -> 16 lanes, found this: the tile
//! search's candidates depended on the lane count.)

use proptest::prelude::*;
use wafersim::graph::StepConfig;
use wafersim::map::MapOptions;
use wafersim::schedule::{run_step, StepResult};
use wafersim::spec::{load_fabric, load_model, FabricSpec, Phase};

/// The fabric's throughput keys.
#[derive(Debug, Clone, Copy)]
enum Key {
    Lanes,
    Clock,
    WaferIo,
    Sram,
}

/// A fabric from a built-in one with the throughput keys given.
fn fabric_with(
    name: &str,
    lanes: u64,
    clock_hz: u64,
    io_scale: f64,
    sram_bytes: u64,
) -> FabricSpec {
    let mut fabric = load_fabric(name).unwrap();
    fabric.pe.simd_fp16_lanes = lanes;
    fabric.clock.clock_hz = clock_hz;
    let io = fabric.io.wafer_io_bits_per_second as f64 * io_scale;
    fabric.io.wafer_io_bits_per_second = io.round() as u64;
    fabric.pe.sram_bytes = sram_bytes;
    fabric
}

/// `fabric` with `key` raised by `percent` more than 100% of itself (lanes and SRAM at least by
/// one).
fn raised(fabric: &FabricSpec, key: Key, percent: u64) -> FabricSpec {
    let mut f = fabric.clone();
    let up = |x: u64| (x + x * percent / 100).max(x + 1);
    match key {
        Key::Lanes => f.pe.simd_fp16_lanes = up(f.pe.simd_fp16_lanes),
        Key::Clock => f.clock.clock_hz = up(f.clock.clock_hz),
        Key::WaferIo => f.io.wafer_io_bits_per_second = up(f.io.wafer_io_bits_per_second),
        Key::Sram => f.pe.sram_bytes = up(f.pe.sram_bytes),
    }
    f
}

fn step(model: &str, fabric: &FabricSpec, phase: Phase, sparsity: f64) -> Option<StepResult> {
    let model = load_model(model).unwrap();
    fabric.validate("the test's fabric").unwrap();
    let config = StepConfig::for_phase(&model, phase, sparsity);
    run_step(&model, fabric, config, MapOptions::default()).ok()
}

/// Weight and gradient streams through the wafer's edge over the step.
fn streams(step: &StepResult) -> u128 {
    step.plan
        .groups
        .iter()
        .map(|g| {
            let per = g
                .ops
                .iter()
                .map(|op| u64::from(op.io_in_cycles > 0) + u64::from(op.io_out_cycles > 0));
            (g.repeat * per.sum::<u64>()) as u128
        })
        .sum()
}

/// The faster fabric's step takes no longer than the slower's, in seconds. Only a faster clock
/// gets a margin: a stream's cycles are rounded up to whole cycles, so each stream of the
/// slower plan may end up to one (faster) cycle later.
fn check(model: &str, slow: &FabricSpec, fast: &FabricSpec, phase: Phase, sparsity: f64) {
    let Some(before) = step(model, slow, phase, sparsity) else {
        return;
    };
    let after = step(model, fast, phase, sparsity)
        .unwrap_or_else(|| panic!("{model}: the faster fabric maps no plan: {fast:?}"));
    let (c_slow, c_fast) = (slow.clock.clock_hz as u128, fast.clock.clock_hz as u128);
    // cycles_fast / c_fast <= cycles_slow / c_slow + margin / c_fast, in integers.
    let margin = if c_fast == c_slow {
        0
    } else {
        streams(&before)
    };
    assert!(
        after.cycles as u128 * c_slow <= before.cycles as u128 * c_fast + margin * c_slow,
        "{model} {phase:?} s={sparsity}: {} cycles at {} Hz, then {} cycles at {} Hz\n\
         slow {:?}\nfast {:?}",
        before.cycles,
        c_slow,
        after.cycles,
        c_fast,
        slow.pe,
        fast.pe
    );
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        Just(Key::Lanes),
        Just(Key::Clock),
        Just(Key::WaferIo),
        Just(Key::Sram)
    ]
}

fn phase() -> impl Strategy<Value = (Phase, f64)> {
    prop_oneof![
        Just((Phase::Pretrain, 0.0)),
        Just((Phase::Pretrain, 0.5)),
        Just((Phase::Pretrain, 0.75)),
        Just((Phase::Finetune, 0.0)),
        Just((Phase::Softprompt, 0.0)),
    ]
}

/// gpt-tiny on the small fabric, and a full-wafer step: mediswift-xl on wse2.
fn case() -> impl Strategy<Value = (&'static str, &'static str)> {
    prop_oneof![Just(("gpt-tiny", "mini")), Just(("mediswift-xl", "wse2"))]
}

proptest! {
    // Two steps a case, a few seconds in all in a release build.
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_faster_fabric_never_runs_a_step_slower(
        (model, fabric) in case(),
        lanes in 1u64..=32,
        clock_mhz in 500u64..=2_000,
        io_scale in 0.1f64..10.0,
        sram_kb in 16u64..=96,
        key in key(),
        percent in 0u64..=300,
        (phase, sparsity) in phase(),
    ) {
        let slow = fabric_with(fabric, lanes, clock_mhz * 1_000_000, io_scale, sram_kb * 1024);
        check(model, &slow, &raised(&slow, key, percent), phase, sparsity);
    }
}

/// The case that found it: wse2's dense mediswift-xl step with 4, 8 and 16 lanes.
#[test]
fn more_lanes_never_slow_the_xl_step() {
    let mut previous: Option<u64> = None;
    for lanes in [4, 8, 16] {
        let fabric = fabric_with("wse2", lanes, 1_100_000_000, 1.0, 49_152);
        let cycles = step("mediswift-xl", &fabric, Phase::Pretrain, 0.0)
            .unwrap()
            .cycles;
        if let Some(previous) = previous {
            assert!(cycles <= previous, "{lanes} lanes: {cycles} > {previous}");
        }
        previous = Some(cycles);
    }
}
