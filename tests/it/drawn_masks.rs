//! Random masks at full scale priced by per-PE counts drawn from the seed (issue 17, item 3):
//! the seed moves a random mask's figures and replays them, whatever the thread count; a
//! structured pattern's do not move; drawn counts price as a file of random masks does.

use crate::common::{run_cli, run_json};
use crate::train::fresh_folder;

/// `step gpt-tiny --fabric mini --json` with `extra` flags, host timings left out.
fn tiny_step(extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["step", "gpt-tiny", "--fabric", "mini"];
    args.extend_from_slice(extra);
    let mut v = run_json(&args);
    v.as_object_mut().unwrap().remove("host_seconds");
    v
}

fn cycles(v: &serde_json::Value) -> u64 {
    v["cycles"].as_u64().unwrap()
}

#[test]
fn a_random_masks_figures_move_with_the_seed_and_replay_from_it() {
    let one = tiny_step(&["--sparsity", "0.75", "--seed", "1"]);
    assert_eq!(one, tiny_step(&["--sparsity", "0.75", "--seed", "1"]));
    let seeds: Vec<u64> = (1..=4)
        .map(|seed| {
            cycles(&tiny_step(&[
                "--sparsity",
                "0.75",
                "--seed",
                &seed.to_string(),
            ]))
        })
        .collect();
    let distinct: std::collections::BTreeSet<u64> = seeds.iter().copied().collect();
    assert!(distinct.len() >= 3, "seeds 1-4 give {seeds:?}");
    // By as much as one draw of 12 weights moves a step: well under a tenth.
    let (low, high) = (*distinct.first().unwrap(), *distinct.last().unwrap());
    assert!(high as f64 / low as f64 - 1.0 < 0.1, "{seeds:?}");
    // On one thread as on two.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let alone = pool.install(|| tiny_step(&["--sparsity", "0.75", "--seed", "1"]));
    assert_eq!(alone, one);
    // N:M keeps N of every M: no draw, the seed changes nothing.
    let nm = |seed: &str| cycles(&tiny_step(&["--mask", "2:4", "--seed", seed]));
    assert_eq!(nm("1"), nm("2"));
}

/// gpt-tiny at 75%: a file of random masks (each weight drawn entry by entry) and counts drawn
/// from a seed are two draws of one distribution, and price a pre-training step alike (within
/// 3%); the dense run is the same to the cycle.
#[test]
fn drawn_counts_price_as_a_file_of_random_masks_does() {
    let out = fresh_folder("drawn-vs-file");
    let masks = out.join("masks.safetensors");
    crate::mask_files::write_tiny_random_masks(&masks);
    let report = |name: &str, flags: &[&str]| {
        let dir = out.join(name);
        let mut args = vec!["train", "gpt-tiny", "--fabric", "mini", "--quiet", "--out"];
        args.push(dir.to_str().unwrap());
        args.extend_from_slice(flags);
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, 0, "{err}");
        let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let file = report("file", &["--masks", masks.to_str().unwrap()]);
    let drawn = report("drawn", &["--sparsity", "0.75"]);
    let pretrain = |r: &serde_json::Value, run: usize| {
        r["runs"][run]["phases"][0]["cycles"].as_u64().unwrap() as f64
    };
    assert_eq!(pretrain(&file, 0), pretrain(&drawn, 0));
    let apart = pretrain(&drawn, 1) / pretrain(&file, 1) - 1.0;
    assert!(
        apart.abs() < 0.03,
        "drawn {} file {}",
        pretrain(&drawn, 1),
        pretrain(&file, 1)
    );
    std::fs::remove_dir_all(&out).unwrap();
}

/// A sweep over seeds reports how far one draw moves the answer: `merge` writes
/// `seed-spread.csv` (and `seed_spread` in its JSON) for the points that differ in their seed
/// alone, and removes an earlier one when no point has a second seed.
#[test]
fn merge_reports_the_spread_over_seeds() {
    let out = fresh_folder("seed-spread");
    let spec = |seeds: &str| {
        crate::common::temp_file(
            &format!("seed-spread-{}.toml", seeds.len()),
            &format!(
                "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.75]\nseeds = [{seeds}]\n"
            ),
        )
    };
    let three = out.join("three");
    let (code, _, err) = crate::common::run_sweep(&spec("1, 2, 3"), &three);
    assert_eq!(code, 0, "{err}");
    let merged = run_json(&["merge", three.to_str().unwrap()]);
    let spread = &merged["seed_spread"];
    assert_eq!(spread.as_array().unwrap().len(), 1, "{merged}");
    assert_eq!(spread[0]["seeds"], 3);
    assert_eq!(spread[0]["sparsity"], 0.75);
    let (low, high) = (
        spread[0]["total_simulated_speedup_min"].as_f64().unwrap(),
        spread[0]["total_simulated_speedup_max"].as_f64().unwrap(),
    );
    assert!(low < high && high / low < 1.01, "{spread}");
    let csv = std::fs::read_to_string(three.join("seed-spread.csv")).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    // One seed: nothing to spread, and the earlier file goes.
    std::fs::remove_dir_all(three.join("points")).unwrap();
    let (code, _, err) = crate::common::run_sweep(&spec("1"), &three);
    assert_eq!(code, 0, "{err}");
    let merged = run_json(&["merge", three.to_str().unwrap()]);
    assert_eq!(merged["seed_spread"].as_array().unwrap().len(), 0);
    assert!(!three.join("seed-spread.csv").exists());
    std::fs::remove_dir_all(&out).unwrap();
}
