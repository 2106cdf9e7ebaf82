//! The whole-wafer side's own speed: a mapped and timed step (mapper search included), the full
//! `train` schedule, and the MediSwift sweep's points.
//!
//! Run with `cargo bench --bench pipeline`. Budgets: a step of mediswift-xl on wse2, strategy
//! search included, in ≤ 50 ms; `train` on its defaults in ≤ 2 s (pictures included; this bench
//! times the simulation, `wafersim train --json` reports `host_seconds` for the whole command).
//! The mapper remembers timed GEMM tiles and tree all-reduces per thread, so after the first
//! iteration a step finds every problem already timed, as the steps of a `train` or a sweep do
//! after their first; a cold step is one process: `wafersim step mediswift-xl --quiet` timed
//! whole (44 ms median on a 2-core machine when this was written, against 20.7 ms here).

use criterion::{criterion_group, criterion_main, Criterion};
use wafersim::graph::StepConfig;
use wafersim::map::MapOptions;
use wafersim::schedule::{run_recipe, run_step};
use wafersim::spec::{load_fabric, load_model, Phase};

fn step(c: &mut Criterion) {
    let model = load_model("mediswift-xl").expect("built-in model");
    let fabric = load_fabric("wse2").expect("built-in fabric");
    let mut group = c.benchmark_group("step");
    for sparsity in [0.0, 0.75] {
        let config = StepConfig::for_phase(&model, Phase::Pretrain, sparsity);
        group.bench_function(format!("mediswift-xl wse2 pretrain s={sparsity}"), |b| {
            b.iter(|| run_step(&model, &fabric, config, MapOptions::default()).expect("a plan"))
        });
    }
    group.finish();
}

fn train(c: &mut Criterion) {
    let model = load_model("mediswift-xl").expect("built-in model");
    let fabric = load_fabric("wse2").expect("built-in fabric");
    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    group.bench_function("mediswift-xl wse2 dense+0.5+0.75", |b| {
        b.iter(|| run_recipe(&model, &fabric, &[0.5, 0.75]).expect("a recipe"))
    });
    group.finish();
}

criterion_group!(benches, step, train);
criterion_main!(benches);
