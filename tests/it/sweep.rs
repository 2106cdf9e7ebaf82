//! Sweeps: resumable, shardable, parallel, and byte-identical however they are run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use proptest::prelude::*;

use crate::common::{run_cli, temp_file};

fn fresh_folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A gpt-tiny sweep on the mini fabric with `seeds` seeds × 4 sparsities.
fn tiny_spec(name: &str, seeds: u64) -> PathBuf {
    let seeds: Vec<String> = (1..=seeds).map(|s| s.to_string()).collect();
    temp_file(
        name,
        &format!(
            "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.25, 0.5, 0.75]\nseeds = [{}]\n",
            seeds.join(", ")
        ),
    )
}

fn sweep(spec: &Path, out: &Path, extra: &[&str]) {
    let mut args = vec![
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 0, "{err}");
}

pub fn merged_csv(out: &Path, spec: &Path) -> Vec<u8> {
    let (code, _, err) = run_cli(&[
        "merge",
        out.to_str().unwrap(),
        "--expect",
        spec.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    std::fs::read(out.join("sweep.csv")).unwrap()
}

/// merge's printed table: each figure under its heading.
#[test]
fn merge_prints_each_figure_under_its_heading() {
    let spec = temp_file(
        "merge-table.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.75]\n",
    );
    let out = fresh_folder("merge-table");
    sweep(&spec, &out, &[]);
    let (code, table, err) = run_cli(&["merge", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    let header = &rows[0];
    let csv = String::from_utf8(std::fs::read(out.join("sweep.csv")).unwrap()).unwrap();
    let csv_header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let sparse = csv.lines().nth(2).unwrap().split(',').collect::<Vec<_>>();
    let csv_figure = |name: &str| {
        let i = csv_header.iter().position(|h| *h == name).unwrap();
        format!("{:.2}x", sparse[i].parse::<f64>().unwrap())
    };
    // rows[1] is the rule; rows[3] the sparse point (the overrides cell is empty).
    let row = &rows[3];
    assert_eq!(row.len() + 1, header.len(), "{table}");
    let cell = |heading: &str| {
        let i = header.iter().position(|h| *h == heading).unwrap();
        row[i - 1]
    };
    assert_eq!(row[0], "gpt-tiny");
    assert_eq!(cell("sparsity"), "0.75", "{table}");
    assert_eq!(cell("seed"), "1", "{table}");
    for (heading, column) in [
        ("pretrain theory", "pretrain_theoretical_speedup"),
        ("pretrain simulated", "pretrain_simulated_speedup"),
        ("total theory", "total_theoretical_speedup"),
        ("total simulated", "total_simulated_speedup"),
    ] {
        assert_eq!(cell(heading), csv_figure(column), "{heading}\n{table}");
    }
}

#[test]
fn jobs_and_shards_give_byte_identical_tables() {
    let spec = tiny_spec("jobs.toml", 3);
    let one = fresh_folder("jobs1");
    sweep(&spec, &one, &["--jobs", "1"]);
    let two = fresh_folder("jobs2");
    sweep(&spec, &two, &["--jobs", "2"]);
    let sharded = fresh_folder("shards");
    sweep(&spec, &sharded, &["--shard", "1/2"]);
    // One shard alone is not the whole sweep.
    let (code, _, err) = run_cli(&[
        "merge",
        sharded.to_str().unwrap(),
        "--expect",
        spec.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("of the 12 points") && err.contains("missing"),
        "{err}"
    );
    sweep(&spec, &sharded, &["--shard", "2/2"]);
    let reference = merged_csv(&one, &spec);
    assert_eq!(
        reference.iter().filter(|&&b| b == b'\n').count(),
        13,
        "header + 12 points"
    );
    assert_eq!(merged_csv(&two, &spec), reference);
    assert_eq!(merged_csv(&sharded, &spec), reference);
}

#[test]
fn a_killed_sweep_resumes_and_merges_as_if_never_interrupted() {
    let spec = tiny_spec("kill.toml", 100);
    let reference_folder = fresh_folder("uninterrupted");
    sweep(&spec, &reference_folder, &["--jobs", "2"]);
    let reference = merged_csv(&reference_folder, &spec);

    let out = fresh_folder("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_wafersim"))
        .args([
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            "1",
            "--quiet",
        ])
        .spawn()
        .unwrap();
    // Wait until some points exist, then SIGKILL mid-run.
    let points = out.join("points");
    let count = || std::fs::read_dir(&points).map_or(0, |d| d.count());
    for _ in 0..400 {
        if count() >= 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finished = count();
    assert!(
        finished > 0 && finished < 400,
        "killed mid-run with {finished} points written"
    );
    // Every point written is whole: merge reads each (it refuses corrupt ones), without --expect.
    let (code, _, err) = run_cli(&["merge", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{err}");
    // Rerun: the finished points are kept, the rest run.
    let (code, stdout, err) = run_cli(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let outcome: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let skipped = outcome["outcome"]["points_reused"].as_u64().unwrap();
    assert!(
        skipped as usize >= finished.saturating_sub(1),
        "{skipped} skipped, {finished} were there"
    );
    assert_eq!(merged_csv(&out, &spec), reference, "byte for byte");
}

#[test]
fn corrupt_foreign_or_misplaced_points_are_refused_by_name() {
    let spec = tiny_spec("corrupt.toml", 1);
    let out = fresh_folder("corrupt");
    sweep(&spec, &out, &[]);
    let points = out.join("points");
    let first = std::fs::read_dir(&points)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&first).unwrap();
    let check = |edit: &dyn Fn(&Path), expect: &str| {
        edit(&first);
        let (code, _, err) = run_cli(&["merge", out.to_str().unwrap()]);
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains(first.file_name().unwrap().to_str().unwrap()) && err.contains(expect),
            "{err}"
        );
        std::fs::write(&first, &text).unwrap();
    };
    check(
        &|p| std::fs::write(p, &text[..text.len() / 2]).unwrap(),
        "not a point file",
    );
    check(
        &|p| std::fs::write(p, text.replace("\"version\": \"", "\"version\": \"0.0.0-")).unwrap(),
        "made by wafersim",
    );
    check(
        &|p| std::fs::write(p, text.replace("\"seed\": 1", "\"seed\": 2")).unwrap(),
        "stored once, under its key",
    );
    // A point of an earlier wafersim's field names (before schema_version 2).
    check(
        &|p| std::fs::write(p, text.replace("\"schema_version\": 2,", "")).unwrap(),
        "schema_version missing (an earlier wafersim)",
    );
    let (code, _, _) = run_cli(&["merge", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "restored");
    let (code, _, err) = run_cli(&["merge", "/no/such/sweep"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/sweep/points"), "{err}");
}

#[test]
fn grids_over_the_limits_are_refused_up_front_with_the_figure() {
    let spec = temp_file(
        "huge.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.5]\nseeds = [1, 2, 3]\n\
         [overrides]\n\"recipe.pretrain.batch_sequences\" = [1, 2, 4, 8]\n[limits]\nmax_points = 20\n",
    );
    let (code, _, err) = run_cli(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        fresh_folder("huge").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("24 points") && err.contains("limits.max_points") && err.contains("20"),
        "{err}"
    );
    let spec = temp_file(
        "memory.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0]\n[limits]\nmax_memory_bytes = 100000000\n",
    );
    let (code, _, err) = run_cli(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        fresh_folder("memory").to_str().unwrap(),
        "--jobs",
        "4",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("4 jobs need about 256 MiB") && err.contains("limits.max_memory_bytes"),
        "{err}"
    );
    // Without --jobs, as many as the limit holds: one point of 64 MiB in 95 MiB.
    let out = fresh_folder("memory-default");
    let (code, stdout, err) = run_cli(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["jobs"], 1);
}

#[test]
fn overrides_apply_to_the_recipe_and_bad_ones_are_named() {
    let spec = temp_file(
        "override.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.75]\n\
         [overrides]\n\"recipe.pretrain.batch_sequences\" = [4, 8]\n",
    );
    let out = fresh_folder("override");
    sweep(&spec, &out, &[]);
    let csv = String::from_utf8(merged_csv(&out, &spec)).unwrap();
    let overrides: Vec<String> = csv::Reader::from_reader(csv.as_bytes())
        .records()
        .map(|r| r.unwrap()[4].to_string())
        .collect();
    assert_eq!(
        overrides,
        [
            "recipe.pretrain.batch_sequences=4",
            "recipe.pretrain.batch_sequences=8"
        ],
        "{csv}"
    );
    for (key, expect) in [
        ("recipe.pretrain.batch_size", "no key `batch_size`"),
        ("recipe.nothing.tokens", "no table `nothing`"),
        ("pretrain.tokens", "start with `architecture.` or `recipe.`"),
    ] {
        let spec = temp_file(
            "bad-override.toml",
            &format!("models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n[overrides]\n\"{key}\" = [4]\n"),
        );
        let (code, _, err) = run_cli(&[
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            fresh_folder("bad").to_str().unwrap(),
        ]);
        assert_eq!(code, 2, "{key}");
        assert!(
            err.contains("bad-override.toml") && err.contains(expect),
            "{key}: {err}"
        );
    }
    let spec = temp_file(
        "bad-value.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n[overrides]\n\"recipe.pretrain.batch_sequences\" = [0]\n",
    );
    let (code, _, err) = run_cli(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        fresh_folder("bad").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("recipe.pretrain.batch_sequences") && err.contains("bad-value.toml"),
        "{err}"
    );
}

const SWEEP: &str =
    "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.5]\nseeds = [1]\n\
                     [overrides]\n\"recipe.finetune.epochs\" = [1]\n[limits]\nmax_points = 100\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Mutated sweep specs and flags: never a panic; exit 0 or 2 with a message naming the file or flag.
    #[test]
    fn mutated_sweep_specs_and_flags_never_panic(
        line in 0usize..20, value in "[-0-9a-z.\"\\[\\]]{0,10}", shard in "[-0-9/a]{0,5}", jobs in "[-0-9a]{0,4}"
    ) {
        let mut lines: Vec<String> = SWEEP.lines().map(str::to_string).collect();
        let i = line % lines.len();
        if let Some((key, _)) = lines[i].clone().split_once('=') {
            lines[i] = format!("{key}= {value}");
        }
        let spec = temp_file(&format!("prop-sweep-{line}.toml"), &lines.join("\n"));
        let out = fresh_folder(&format!("prop-{line}"));
        for extra in [vec![], vec!["--shard", shard.as_str()], vec!["--jobs", jobs.as_str()]] {
            let mut args = vec!["sweep", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "--quiet"];
            args.extend(extra);
            let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let result = std::panic::catch_unwind(|| {
                let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
                run_cli(&refs)
            });
            let (code, _, err) = result.unwrap_or_else(|_| panic!("panic on {owned:?}"));
            prop_assert!(code == 0 || code == 2, "exit {} on {:?}: {}", code, owned, err);
            if code == 2 {
                prop_assert!(!err.trim().is_empty());
            }
        }
    }
}

/// A sweep's seeds are its spec's: a --seed, which it would not use, is refused.
#[test]
fn a_sweep_refuses_seed_and_names_the_spec_key() {
    let spec = tiny_spec("seed-flag.toml", 1);
    let out = fresh_folder("seed-flag");
    let (code, _, err) = run_cli(&[
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--seed",
        "7",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--seed 7") && err.contains("`seeds = [...]`"),
        "{err}"
    );
    assert!(!out.exists(), "nothing ran");
    sweep(&spec, &out, &[]);
    let (code, _, err) = run_cli(&["merge", out.to_str().unwrap(), "--seed", "7"]);
    assert_eq!(code, 2, "{err}");
    // Without it, both reports list the seeds the points ran.
    let json = crate::common::run_json(&["merge", out.to_str().unwrap()]);
    assert_eq!(json["seeds"], serde_json::json!([1]));
    assert!(json.get("seed").is_none());
}

#[test]
fn a_sweep_outside_a_terminal_logs_its_progress_in_lines() {
    // Under Slurm (stderr a log file) a progress bar is noise and nothing at all is worse: a
    // line at most every 30 s and one when the last point is done; --quiet prints none.
    let spec = crate::common::temp_file(
        "progress.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.5]\n",
    );
    for (quiet, expected) in [(false, 1), (true, 0)] {
        let out =
            std::env::temp_dir().join(format!("wafersim-progress-{}-{quiet}", std::process::id()));
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wafersim"));
        command.args([
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        if quiet {
            command.arg("--quiet");
        }
        let output = command.output().unwrap();
        assert!(output.status.success());
        let err = String::from_utf8(output.stderr).unwrap();
        let lines = err
            .lines()
            .filter(|l| l.ends_with(" s") && l.contains("2/2 points"));
        assert_eq!(lines.count(), expected, "quiet {quiet}: {err}");
    }
}
