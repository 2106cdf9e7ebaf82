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
//!
//! `masks_file`: `train` on masks read from a folder of `.npy` files, all 144 sparse weights of
//! mediswift-xl (1.2 G entries, a quarter kept), reading included (budget ≤ 10 s, ≤ 4 GB). The
//! folder is written once to `target/bench-masks/` (1.2 GB) and kept for later runs and for
//! timing the command line: `wafersim train mediswift-xl --masks target/bench-masks/mediswift-xl`.

use criterion::{criterion_group, criterion_main, Criterion};
use wafersim::graph::StepConfig;
use wafersim::map::MapOptions;
use wafersim::schedule::{run_recipe, run_step};
use wafersim::spec::{load_fabric, load_model, Phase, WeightKind};

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

/// The bench's mask folder for mediswift-xl: each entry kept with probability 1/4 (a xorshift
/// stream, one per weight), one `|b1` `.npy` file per weight, written unless already there.
fn masks_folder() -> std::path::PathBuf {
    let model = load_model("mediswift-xl").expect("built-in model");
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-masks/mediswift-xl");
    let done = dir.join("complete");
    if done.exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("a folder in target/");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for layer in 0..model.architecture.layers {
        for kind in WeightKind::ALL {
            let (k, n) = kind.shape(&model.architecture);
            let mut header =
                format!("{{'descr': '|b1', 'fortran_order': False, 'shape': ({k}, {n}), }}");
            while (10 + header.len() + 1) % 64 != 0 {
                header.push(' ');
            }
            header.push('\n');
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
            bytes.extend_from_slice(header.as_bytes());
            bytes.extend((0..k * n).map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                u8::from(seed >> 62 == 0)
            }));
            let name = format!("layer{layer}.{}.npy", kind.name());
            std::fs::write(dir.join(name), bytes).expect("a mask file");
        }
    }
    std::fs::write(&done, b"").expect("a marker");
    dir
}

fn masks_file(c: &mut Criterion) {
    let dir = masks_folder();
    let path = dir.to_str().expect("a UTF-8 path").to_string();
    let fabric = load_fabric("wse2").expect("built-in fabric");
    let mut group = c.benchmark_group("masks_file");
    group.sample_size(10);
    group.bench_function("mediswift-xl wse2 train, 144 masks from .npy", |b| {
        b.iter(|| {
            let mut model = load_model("mediswift-xl").expect("built-in model");
            let masks = wafersim::masks::MaskSet::read(&path, &model).expect("masks");
            let sparsity = masks.sparsity();
            model.recipe.masks = Some(std::sync::Arc::new(masks));
            run_recipe(&model, &fabric, &[sparsity]).expect("a recipe")
        })
    });
    group.finish();
}

criterion_group!(benches, step, train, masks_file);
criterion_main!(benches);
