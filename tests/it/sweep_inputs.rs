//! Sweeps key each point by what produced it: a point is reused only when its model and fabric
//! files, overrides, seed and timing model are the same; a grid never holds one point twice.

use std::path::{Path, PathBuf};

use crate::common::{run_cli, run_json};

/// A fresh folder holding `files` (name, text), for a spec and the models it names.
fn folder_with(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wafersim-sweep-inputs-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

const TINY: &str = include_str!("../../models/gpt-tiny.toml");

/// The pre-training batch line of gpt-tiny.toml, which the tests edit.
const BATCH: &str = "batch_sequences = 8          # [A] 8 x 128";

fn sweep_json(spec: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "sweep",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_json(&args)
}

fn merged_csv(out: &Path, spec: &Path) -> String {
    String::from_utf8(crate::sweep::merged_csv(out, spec)).unwrap()
}

/// Editing a model file between two sweeps into one folder reruns its points, which give the
/// figures of a fresh sweep; the model path is taken from the spec's folder, not the working one.
#[test]
fn an_edited_model_file_reruns_its_points_with_fresh_figures() {
    let spec_text = "models = [\"tiny.toml\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.75]\n";
    let dir = folder_with("edit", &[("tiny.toml", TINY), ("grid.toml", spec_text)]);
    let spec = dir.join("grid.toml");
    let out = dir.join("out");
    let first = sweep_json(&spec, &out, &[]);
    assert_eq!(first["outcome"]["points_run"], 2, "{first}");
    let before = merged_csv(&out, &spec);
    let again = sweep_json(&spec, &out, &[]);
    assert_eq!(again["outcome"]["points_reused"], 2, "{again}");
    assert_eq!(again["outcome"]["points"][0]["status"], "reused");

    let edited = TINY.replace(BATCH, "batch_sequences = 2          # [A] 2 x 128");
    assert_ne!(edited, TINY, "the test edits the pre-training batch");
    std::fs::write(dir.join("tiny.toml"), &edited).unwrap();
    let second = sweep_json(&spec, &out, &["--jobs", "1"]);
    assert_eq!(second["outcome"]["points_run"], 2, "{second}");
    assert_eq!(second["outcome"]["points_reused"], 0, "{second}");
    assert_eq!(second["outcome"]["points_replaced"], 2, "{second}");
    let after = merged_csv(&out, &spec);
    assert_ne!(after, before, "the batch moved the figures");

    let fresh_dir = folder_with("fresh", &[("tiny.toml", &edited), ("grid.toml", spec_text)]);
    let fresh_out = fresh_dir.join("out");
    sweep_json(&fresh_dir.join("grid.toml"), &fresh_out, &[]);
    assert_eq!(after, merged_csv(&fresh_out, &fresh_dir.join("grid.toml")));
    assert_eq!(
        std::fs::read_dir(out.join("points")).unwrap().count(),
        2,
        "the replaced points are gone"
    );
}

/// A point file of another timing model or another model content is not reused, and merge
/// without --expect refuses two files of one grid point.
#[test]
fn merge_refuses_two_files_of_one_point() {
    let spec_text = "models = [\"tiny.toml\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n";
    let dir = folder_with("twice", &[("tiny.toml", TINY), ("grid.toml", spec_text)]);
    let spec = dir.join("grid.toml");
    let out = dir.join("out");
    sweep_json(&spec, &out, &[]);
    let points = out.join("points");
    let kept = std::fs::read_dir(&points)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let saved = std::fs::read_to_string(&kept).unwrap();
    std::fs::write(
        dir.join("tiny.toml"),
        TINY.replace(BATCH, "batch_sequences = 4          # [A] 4 x 128"),
    )
    .unwrap();
    sweep_json(&spec, &out, &[]);
    std::fs::write(&kept, saved).unwrap();
    let (code, _, err) = run_cli(&["merge", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is also in"), "{err}");
}

/// A value listed twice under one key would make one point twice (two jobs writing one file):
/// refused with exit 2 naming the key and the value, before any file is written, however many
/// jobs run.
#[test]
fn repeated_grid_values_are_refused_by_key_and_value() {
    let base = "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n";
    for (edit, key, value) in [
        ("sparsities = [0.5, 0.5]", "sparsities", "0.5"),
        ("sparsities = [0.0, -0.0]", "sparsities", "0 twice"),
        (
            "models = [\"gpt-tiny\", \"gpt-tiny\"]",
            "models",
            "gpt-tiny",
        ),
        ("fabrics = [\"mini\", \"mini\"]", "fabrics", "mini"),
        ("seeds = [3, 3]", "seeds", "3"),
        (
            "[overrides]\n\"recipe.pretrain.batch_sequences\" = [8, 8]",
            "overrides.\"recipe.pretrain.batch_sequences\"",
            "8",
        ),
    ] {
        let line_key = edit.split(" = ").next().unwrap();
        let text = if base.contains(line_key) {
            base.lines()
                .map(|l| if l.starts_with(line_key) { edit } else { l })
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            format!("{base}{edit}\n")
        };
        let dir = folder_with("repeat", &[("grid.toml", &text)]);
        let spec = dir.join("grid.toml");
        for jobs in [&[][..], &["--jobs", "1"][..]] {
            let out = dir.join("out");
            let mut args = vec![
                "sweep",
                spec.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(jobs);
            let (code, _, err) = run_cli(&args);
            assert_eq!(code, 2, "{edit} {jobs:?}: {err}");
            assert!(
                err.contains("grid.toml") && err.contains(&format!("key `{key}` lists {value}")),
                "{edit}: {err}"
            );
            assert!(!out.exists(), "{edit}: refused before any file");
        }
    }
}

/// --jobs beyond what a machine could run is refused naming the flag (it overflowed the memory
/// estimate and panicked).
#[test]
fn jobs_beyond_the_bound_are_refused_naming_the_flag() {
    let dir = folder_with(
        "jobs",
        &[(
            "grid.toml",
            "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n",
        )],
    );
    for jobs in ["18446744073709551615", "1025", "0"] {
        let out = dir.join("out");
        let (code, _, err) = run_cli(&[
            "sweep",
            dir.join("grid.toml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--jobs",
            jobs,
        ]);
        assert_eq!(code, 2, "--jobs {jobs}: {err}");
        assert!(
            err.contains(&format!("--jobs {jobs} is not allowed: give 1 to 1024")),
            "{err}"
        );
        assert!(!out.exists(), "refused before any file");
    }
}

/// A model path holding a comma and a quote stays one field of sweep.csv: every row has the
/// header's columns, and the model reads back as the spec names it.
#[test]
fn a_model_path_with_a_comma_and_a_quote_keeps_sweep_csv_columns() {
    let name = "tiny, \"v2\".toml";
    let spec_text =
        "models = ['tiny, \"v2\".toml']\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.5]\n";
    let dir = folder_with("comma", &[(name, TINY), ("grid.toml", spec_text)]);
    let spec = dir.join("grid.toml");
    let out = dir.join("out");
    sweep_json(&spec, &out, &[]);
    let text = merged_csv(&out, &spec);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    assert_eq!(header.len(), 17, "{text}");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    let column = |row: &csv::StringRecord, name: &str| {
        row[header.iter().position(|h| h == name).unwrap()].to_string()
    };
    for (row, sparsity) in rows.iter().zip(["0.0", "0.5"]) {
        assert_eq!(row.len(), header.len(), "{text}");
        assert_eq!(column(row, "model"), name);
        assert_eq!(column(row, "fabric"), "mini");
        assert_eq!(column(row, "sparsity"), sparsity);
        assert_eq!(column(row, "seed"), "1");
        assert!(column(row, "pretrain_io_cycles").parse::<u64>().unwrap() > 0);
    }
}

/// merge on a sweep folder without points is refused before sweep.csv is written.
#[test]
fn merge_of_no_points_is_refused_before_writing() {
    let dir = folder_with("no-points", &[]);
    std::fs::create_dir_all(dir.join("points")).unwrap();
    let (code, _, err) = run_cli(&["merge", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds no points"), "{err}");
    assert!(!dir.join("sweep.csv").exists(), "nothing written");
}
