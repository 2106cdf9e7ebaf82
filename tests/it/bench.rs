//! `wafersim bench` and `wafersim compare`: baselines of every figure a suite's cases report,
//! what moved between two, and the shipped MediSwift baseline against a fresh bench.

use std::path::{Path, PathBuf};

use wafersim::bench::{Baseline, Figure};

use crate::common::{bless_requested, run_cli, temp_file};

/// A suite small enough to run in a moment: a step, a train and a kernel on gpt-tiny and mini.
const SMALL_SUITE: &str = r#"
name = "small"
skip_fields = ["ops"]

[[case]]
name = "step/gpt-tiny/s0.5"
command = "step"
model = "gpt-tiny"
fabric = "mini"
sparsity = 0.5

[[case]]
name = "train/gpt-tiny"
command = "train"
model = "gpt-tiny"
fabric = "mini"
sparsity = [0.5]

[[case]]
name = "kernel/allreduce"
command = "kernel"
kernel = "allreduce"
fabric = "mini"
pes = 8
wavelets = 16
algo = "tree"
"#;

/// A fresh folder for one test's files.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-bench-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary folder");
    dir
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Benches `suite` into `dir/NAME.json` and returns its path.
fn bench(suite: &Path, dir: &Path, name: &str) -> PathBuf {
    let (code, _, err) = run_cli(&[
        "bench",
        text(suite),
        "--save",
        name,
        "--out",
        text(dir),
        "--quiet",
    ]);
    assert_eq!(code, 0, "bench failed: {err}");
    dir.join(format!("{name}.json"))
}

/// The small suite benched once into `dir/base.json`.
fn small_baseline(dir: &Path) -> PathBuf {
    let suite = dir.join("small.toml");
    std::fs::write(&suite, SMALL_SUITE).expect("suite written");
    bench(&suite, dir, "base")
}

/// Writes `base` changed by `edit` to `dir/new.json`.
fn edited(base: &Path, dir: &Path, edit: impl FnOnce(&mut Baseline)) -> PathBuf {
    let mut baseline = Baseline::read("BASE", text(base)).expect("a baseline");
    edit(&mut baseline);
    let path = dir.join("new.json");
    std::fs::write(&path, baseline.to_json().unwrap()).expect("baseline written");
    path
}

fn compare(base: &Path, new: &Path, extra: &[&str]) -> (u8, String, String) {
    let mut args = vec!["compare", text(base), text(new)];
    args.extend_from_slice(extra);
    run_cli(&args)
}

/// Adds `by` to the integer figure `field` of case `case`.
fn bump(baseline: &mut Baseline, case: &str, field: &str, by: i128) {
    let case = baseline.cases.iter_mut().find(|c| c.name == case).unwrap();
    let figure = case.figures.0.iter_mut().find(|(p, _)| p == field).unwrap();
    let Figure::Int(v) = figure.1 else {
        panic!("{field} is an integer figure")
    };
    figure.1 = Figure::Int(v + by);
}

#[test]
fn a_baseline_compared_with_itself_moves_nothing() {
    let dir = folder("itself");
    let base = small_baseline(&dir);
    let (code, out, err) = compare(&base, &base, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no figure moved"), "{out}");
    let json = crate::common::run_json(&["compare", text(&base), text(&base)]);
    assert_eq!(json["passed"], true);
    assert_eq!(json["moved"].as_array().unwrap().len(), 0);
    // Every figure of every case was compared, and each case gave some.
    let baseline = Baseline::read("BASE", text(&base)).unwrap();
    let counts: Vec<usize> = baseline.cases.iter().map(|c| c.figures.0.len()).collect();
    assert!(counts.iter().all(|&n| n > 10), "{counts:?}");
    assert_eq!(
        json["figures_compared"].as_u64().unwrap() as usize,
        counts.iter().sum::<usize>()
    );
}

#[test]
fn one_cycle_beyond_the_tolerance_fails_naming_case_and_field() {
    let dir = folder("one-cycle");
    let base = small_baseline(&dir);
    let new = edited(&base, &dir, |b| bump(b, "kernel/allreduce", "cycles", 1));
    let (code, out, err) = compare(&base, &new, &["--tolerance", "0%"]);
    assert_eq!(code, 1, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("kernel/allreduce") && l.contains(" cycles "))
        .unwrap_or_else(|| panic!("no row for the moved figure:\n{out}"));
    assert!(row.contains("BEYOND"), "{row}");
    assert!(err.contains("1 figure(s) moved beyond"), "{err}");
    // The same change in Markdown, for a pull request.
    let (code, md, _) = compare(&base, &new, &["--tolerance", "0%", "--markdown"]);
    assert_eq!(code, 1);
    assert!(
        md.contains("| `kernel/allreduce` | `cycles` |") && md.contains("**beyond**"),
        "{md}"
    );
}

#[test]
fn a_change_within_the_tolerance_passes_and_is_shown() {
    let dir = folder("within");
    let base = small_baseline(&dir);
    let b = Baseline::read("BASE", text(&base)).unwrap();
    let step = &b.cases[0];
    let Some(Figure::Int(cycles)) = step.figures.get("cycles") else {
        panic!("a step reports its cycles")
    };
    // One part in 1,000 of the step's cycles: within 0.5%, beyond 0.05%.
    let by = (cycles / 1000).max(1);
    let new = edited(&base, &dir, |b| bump(b, "step/gpt-tiny/s0.5", "cycles", by));
    let (code, out, err) = compare(&base, &new, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("within"), "{out}");
    let (code, _, _) = compare(&base, &new, &["--tolerance", "0.05%"]);
    assert_eq!(code, 1);
}

#[test]
fn a_case_or_figure_in_one_baseline_only_fails_and_is_named() {
    let dir = folder("missing");
    let base = small_baseline(&dir);
    let new = edited(&base, &dir, |b| {
        b.cases.retain(|c| c.name != "train/gpt-tiny")
    });
    let (code, out, _) = compare(&base, &new, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("case train/gpt-tiny: in base only, missing from new"),
        "{out}"
    );
    // The other way round, and a single figure.
    let (code, out, _) = compare(&new, &base, &[]);
    assert_eq!(code, 1);
    assert!(out.contains("case train/gpt-tiny: in new only"), "{out}");
    let new = edited(&base, &dir, |b| {
        b.cases[2].figures.0.retain(|(p, _)| p != "cycles")
    });
    let (code, out, _) = compare(&base, &new, &[]);
    assert_eq!(code, 1);
    assert!(
        out.contains("case kernel/allreduce: figure cycles in base only"),
        "{out}"
    );
}

#[test]
fn host_figures_are_shown_and_never_fail() {
    let dir = folder("host");
    let base = small_baseline(&dir);
    let new = edited(&base, &dir, |b| {
        for case in &mut b.host.cases {
            for (_, figure) in &mut case.figures.0 {
                *figure = Figure::Float(figure.as_f64() * 100.0 + 1.0);
            }
        }
        b.host.cases[0].figures.0.clear();
    });
    let (code, out, err) = compare(&base, &new, &["--tolerance", "0%"]);
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.starts_with("kernel/allreduce") && l.contains("wavelet_hops_per_host_second"))
        .unwrap_or_else(|| panic!("the host figure is shown:\n{out}"));
    assert!(row.trim_end().ends_with("host"), "{row}");
    // The host's figures are kept apart from the simulated machine's.
    let b = Baseline::read("BASE", text(&base)).unwrap();
    for case in &b.cases {
        for (path, _) in &case.figures.0 {
            assert!(!wafersim::bench::is_host_figure(path), "{path}");
        }
    }
    assert!(b.host.cases[2].figures.get("events").is_some());
}

#[test]
fn two_benches_on_different_thread_counts_differ_only_in_host_figures() {
    let dir = folder("determinism");
    let first = small_baseline(&dir);
    let suite = dir.join("small.toml");
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let second = pool.install(|| bench(&suite, &dir, "second"));
    let simulated = |path: &Path| {
        let text = std::fs::read_to_string(path).unwrap();
        let (simulated, host) = text
            .split_once("\n  \"host\": {")
            .expect("the host section comes last");
        assert!(host.contains("\"host_seconds\""));
        simulated.to_string()
    };
    assert_eq!(simulated(&first), simulated(&second));
}

#[test]
fn train_flops_beyond_u64_are_kept_exact() {
    let dir = folder("exact");
    let suite = temp_file(
        "xl-train.toml",
        "name = \"xl\"\n[[case]]\nname = \"train\"\ncommand = \"train\"\nmodel = \"mediswift-xl\"\n",
    );
    let path = bench(&suite, &dir, "xl");
    let baseline = Baseline::read("BASE", text(&path)).unwrap();
    let flops = baseline.cases[0]
        .figures
        .get("runs.0.total.flops_dense_exact");
    let Some(Figure::Int(flops)) = flops else {
        panic!("the dense recipe's FLOPs are an integer: {flops:?}")
    };
    assert!(flops > u64::MAX as i128, "{flops}");
    // The report's own figure, digit for digit.
    let (_, report, _) = run_cli(&["train", "--out", text(&dir.join("train")), "--json"]);
    assert!(
        report.contains(&format!("\"flops_dense_exact\": \"{flops}\",")),
        "{flops}"
    );
}

#[test]
fn bad_suites_are_refused_naming_file_case_and_key() {
    let dir = folder("bad-suite");
    let cases = [
        ("heatmap = \"x.png\"", "unknown field `heatmap`"),
        ("sparsity = 1.5", "key `sparsity`"),
        ("t = 4", "key `t`"),
        ("kernel = \"gemm\"", "key `kernel`"),
        ("model = \"no-such-model\"", "no-such-model"),
        ("phase = \"warmup\"", "key `phase`"),
        ("command = \"sweep\"", "unknown variant `sweep`"),
        (
            "model = \"--json\"",
            "key `model`: \"--json\" starts with '-'",
        ),
        ("region = \"-h\"", "key `region`"),
    ];
    for (i, (line, expected)) in cases.iter().enumerate() {
        let command = match line.starts_with("command") {
            true => "",
            false => "command = \"step\"\n",
        };
        let suite = temp_file(
            &format!("bad-{i}.toml"),
            &format!("name = \"bad\"\n[[case]]\nname = \"one\"\n{line}\n{command}"),
        );
        let (code, out, err) =
            run_cli(&["bench", text(&suite), "--save", "x", "--out", text(&dir)]);
        assert_eq!(code, 2, "{line}: {out}{err}");
        assert!(err.contains(text(&suite)), "{line}: {err}");
        assert!(err.contains(expected), "{line}: {err}");
        if !expected.starts_with("unknown") {
            assert!(err.contains("case 1 (\"one\")"), "{line}: {err}");
        }
        assert!(!dir.join("x.json").exists(), "{line}: a file was written");
    }
    let twice = temp_file(
        "twice.toml",
        "name = \"t\"\n[[case]]\nname = \"a\"\ncommand = \"kernel\"\nkernel = \"reduce\"\npes \
         = 4\nwavelets = 4\n[[case]]\nname = \"a\"\ncommand = \"step\"\n",
    );
    let (code, _, err) = run_cli(&["bench", text(&twice)]);
    assert_eq!(code, 2);
    assert!(err.contains("case 2 `name` = \"a\": another case"), "{err}");
    let (code, _, err) = run_cli(&["bench", text(&dir.join("none.toml"))]);
    assert_eq!(code, 2);
    assert!(err.contains("none.toml: cannot read it"), "{err}");
    let good = dir.join("good.toml");
    std::fs::write(&good, SMALL_SUITE).unwrap();
    let (code, _, err) = run_cli(&["bench", text(&good), "--save", "../up"]);
    assert_eq!(code, 2);
    assert!(err.contains("--save"), "{err}");
    // The suite's seed is the cases' seed: --seed would be ignored.
    let (code, _, err) = run_cli(&["bench", text(&good), "--seed", "7"]);
    assert_eq!(code, 2);
    assert!(err.contains("--seed 7"), "{err}");
}

#[test]
fn bad_baselines_and_tolerances_are_refused() {
    let dir = folder("bad-baseline");
    let base = small_baseline(&dir);
    for tolerance in ["-1%", "abc", "0.5", "nan%"] {
        let (code, _, err) = compare(&base, &base, &["--tolerance", tolerance]);
        assert_eq!(code, 2, "{tolerance}");
        assert!(err.contains(&format!("--tolerance '{tolerance}'")), "{err}");
    }
    let newer = dir.join("newer.json");
    let text_of = std::fs::read_to_string(&base).unwrap();
    std::fs::write(
        &newer,
        text_of.replace("\"schema_version\": 1,", "\"schema_version\": 2,"),
    )
    .unwrap();
    let (code, _, err) = compare(&base, &newer, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("`schema_version` = 2"), "{err}");
    let (code, _, err) = compare(&base, &dir.join("absent.json"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("absent.json: cannot read it"), "{err}");
    let not_json = temp_file("not-a-baseline.json", "{\"schema_version\": 1}");
    let (code, _, err) = compare(&not_json, &base, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("not a baseline"), "{err}");
}

/// The shipped baseline of the shipped suite equals a fresh bench in every figure of the
/// simulated machine, exactly: a change that moves one fails here with the comparison table.
/// `scripts/bless` (WAFERSIM_BLESS=1) re-saves it when it does not.
#[test]
fn golden_shipped_bench_baseline_matches_a_fresh_bench() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = root.join("traces/bench/mediswift.json");
    let dir = folder("shipped");
    let fresh = bench(
        &root.join("benches/suites/mediswift.toml"),
        &dir,
        "mediswift",
    );
    let (code, out, err) = compare(&shipped, &fresh, &["--tolerance", "0%"]);
    // Everything but the figures, the host's and the commit: suite, cases, commands, spec
    // hashes, versions.
    let same_inputs = {
        let strip = |path: &Path| {
            let mut b = Baseline::read("BASE", text(path)).expect("a baseline");
            b.host = Default::default();
            b.wafersim_commit = String::new();
            b.cases.iter_mut().for_each(|c| c.figures.0.clear());
            b
        };
        strip(&shipped) == strip(&fresh)
    };
    if code == 0 && same_inputs {
        return;
    }
    if bless_requested() {
        std::fs::copy(&fresh, &shipped).expect("baseline re-saved");
        return;
    }
    panic!(
        "traces/bench/mediswift.json differs from a fresh bench of benches/suites/mediswift.toml \
         (figures exit {code}; cases, commands, hashes and versions the same: {same_inputs}):\n\
         {out}{err}\nIf the change is intended, run scripts/bless and explain the diff in the \
         commit"
    );
}

#[test]
fn a_changed_spec_file_or_command_is_named_without_failing() {
    let dir = folder("spec-changed");
    let base = small_baseline(&dir);
    let new = edited(&base, &dir, |b| {
        b.cases[2].fabric_sha256 = "0".repeat(64);
        b.cases[0].command += " --systems 1";
    });
    let (code, out, err) = compare(&base, &new, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("kernel/allreduce: the fabric file changed (sha256 "),
        "{out}"
    );
    assert!(
        out.contains("step/gpt-tiny/s0.5: the command changed (") && out.contains(" --systems 1)"),
        "{out}"
    );
}

/// Every kind of case, small: a line of it is mutated by the property test below.
const MUTATED_SUITE: &str = r#"name = "mutated"
seed = 1
skip_fields = ["ops"]
[[case]]
name = "step"
command = "step"
model = "gpt-tiny"
fabric = "mini"
phase = "finetune"
sparsity = 0.5
systems = 1
microbatch = 2
[[case]]
name = "train"
command = "train"
model = "gpt-tiny"
fabric = "mini"
sparsity = [0.5]
[[case]]
name = "gemm"
command = "kernel"
kernel = "gemm"
fabric = "mini"
t = 64
k = 32
n = 32
sparsity = 0.5
region = "4x4"
form = "dgrad"
[[case]]
name = "allreduce"
command = "kernel"
kernel = "allreduce"
fabric = "mini"
pes = 8
wavelets = 16
algo = "ring"
"#;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Mutated suites: never a panic; exit 0, or 2 with a message naming the suite file.
    #[test]
    fn mutated_suites_never_panic(line in 0usize..40, value in "[-0-9a-z.\"\\[\\]x]{0,10}") {
        let mut lines: Vec<String> = MUTATED_SUITE.lines().map(str::to_string).collect();
        let i = line % lines.len();
        if let Some((key, _)) = lines[i].clone().split_once('=') {
            lines[i] = format!("{key}= {value}");
        }
        let suite = temp_file(&format!("prop-suite-{line}.toml"), &lines.join("\n"));
        let (code, _, err) = run_cli(&["bench", text(&suite), "--quiet"]);
        proptest::prop_assert!(code == 0 || code == 2, "exit {code}: {err}\n{}", lines[i]);
        if code == 2 {
            proptest::prop_assert!(err.contains(text(&suite)), "{err}");
        }
    }
}
