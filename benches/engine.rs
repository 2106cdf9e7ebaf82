//! The simulator's own speed: the reference sparse GEMM and a full-wafer broadcast.
//!
//! Run with `cargo bench --bench engine`. Each iteration is a whole kernel (seconds), so the
//! sample count is the minimum criterion takes; the figures that matter (wavelet-hops and
//! PE-cycles per host second) are printed once per bench from the run's own counters.

use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use wafersim::engine::kernels::collective::{run_collective, Algo, Collective, CollectiveConfig};
use wafersim::engine::kernels::gemm::{run_gemm, GemmConfig, GemmForm};
use wafersim::engine::RunOutput;
use wafersim::spec::load_fabric;

fn report(name: &str, output: &RunOutput, seconds: f64) {
    let pes = output.counters.pes.len() as f64;
    println!(
        "{name}: {} cycles, {} wavelet-hops, {} events in {seconds:.3} s: {:.3e} wavelet-hops/s, {:.3e} PE-cycles/s",
        output.cycles,
        output.wavelet_hops,
        output.events,
        output.wavelet_hops as f64 / seconds,
        output.cycles as f64 * pes / seconds
    );
}

fn reference_gemm(c: &mut Criterion) {
    let fabric = load_fabric("wse2").expect("built-in fabric");
    let cfg = GemmConfig {
        pattern: wafersim::sparsity::Pattern::Random,
        t: 4096,
        k: 1024,
        n: 1024,
        sparsity: 0.75,
        region: (32, 32),
        split: None,
        seed: 1,
        form: GemmForm::Forward,
        values: false,
    };
    let start = Instant::now();
    let run = run_gemm(&fabric, &cfg).expect("reference kernel runs");
    report(
        "gemm 4096x1024x1024 s=0.75 on 32x32",
        &run.output,
        start.elapsed().as_secs_f64(),
    );
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.bench_function("gemm_t4096_k1024_n1024_s075_32x32", |b| {
        b.iter(|| {
            run_gemm(&fabric, &cfg)
                .expect("reference kernel runs")
                .output
                .cycles
        })
    });
    group.finish();
}

fn full_wafer_broadcast(c: &mut Criterion) {
    let fabric = load_fabric("wse2").expect("built-in fabric");
    let cfg = CollectiveConfig {
        collective: Collective::Broadcast,
        rows: fabric.geometry.region_height_pes as u32,
        cols: fabric.geometry.region_width_pes as u32,
        wavelets: 16,
        algo: Algo::Chain,
        values: false,
        seed: 0,
    };
    let start = Instant::now();
    let run = run_collective(&fabric, &cfg).expect("broadcast runs");
    report(
        "broadcast of 16 wavelets over 994x750",
        &run.output,
        start.elapsed().as_secs_f64(),
    );
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.bench_function("broadcast_16_wavelets_994x750", |b| {
        b.iter(|| {
            run_collective(&fabric, &cfg)
                .expect("broadcast runs")
                .output
                .cycles
        })
    });
    group.finish();
}

criterion_group!(benches, reference_gemm, full_wafer_broadcast);
criterion_main!(benches);
