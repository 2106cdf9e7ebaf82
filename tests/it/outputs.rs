//! Every input checked before the first file is written, and every output writable before any
//! work: bad input leaves the output folder as it was.

use std::path::{Path, PathBuf};

use crate::common::{run_cli, temp_file};

/// A fresh path for one test's output folder (not created).
fn fresh_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-outputs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// mini.toml with its region `width` x `height` PEs, named `name`, as a file.
fn fabric_of(name: &str, width: u64, height: u64) -> PathBuf {
    let mut text =
        include_str!("../../fabric/mini.toml").replace("\"mini\"", &format!("\"{name}\""));
    for (key, value) in [("region_width_pes", width), ("region_height_pes", height)] {
        assert!(
            text.contains(&format!("{key} = 16 ")),
            "mini.toml has no `{key} = 16 `"
        );
        text = text.replace(&format!("{key} = 16 "), &format!("{key} = {value} "));
    }
    temp_file(&format!("{name}.toml"), &text)
}

/// `train gpt-tiny --out OUT` with `extra` flags: (exit code, stderr).
fn train_tiny(out: &Path, extra: &[&str]) -> (u8, String) {
    let mut args = vec![
        "train",
        "gpt-tiny",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = run_cli(&args);
    (code, err)
}

#[test]
fn sparsities_whose_run_names_collide_are_refused_before_any_file() {
    // 1e-300 wrote four files, then failed on a 300-character heatmap name ("File name too
    // long"). Names keep 6 decimals; sparsities they cannot tell apart are refused.
    for (sparsities, named, like) in [
        ("1e-300", "dense", "0"),
        ("0.5,0.5000001", "s0.5", "0.5"),
        ("0.75,0.0000004", "dense", "0"),
    ] {
        let out = fresh_path("names");
        let (code, err) = train_tiny(&out, &["--fabric", "mini", "--sparsity", sparsities]);
        assert_eq!(code, 2, "{sparsities}: {err}");
        assert!(
            err.contains("--sparsity: sparsity")
                && err.contains(&format!("would be named {named} like the run at {like}")),
            "{sparsities}: {err}"
        );
        assert!(!out.exists(), "{sparsities}: {} was created", out.display());
    }
    assert_eq!(wafersim::report::run_name(0.75), "s0.75");
    assert_eq!(wafersim::report::run_name(0.1 + 0.2), "s0.3");
    assert_eq!(wafersim::report::run_name(0.999_999_7), "s1");
}

#[test]
fn a_fabric_wider_than_4096_pes_draws_its_heatmaps() {
    // It wrote four files, then failed on the heatmap ("heatmap grid 5000 × 16: each side must
    // be 1 to 4096", naming no key). A PNG now averages blocks of PEs beyond 4096 a side.
    let fabric = fabric_of("wide", 5000, 16);
    let out = fresh_path("wide");
    let (code, err) = train_tiny(&out, &["--fabric", fabric.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for name in [
        "heatmap-sram.png",
        "heatmap-utilization-dense.png",
        "speedup.png",
    ] {
        assert!(out.join(name).is_file(), "{name}");
    }
}

#[test]
fn a_fabric_too_large_for_its_per_pe_figures_is_refused_naming_its_keys() {
    // 65536 x 65536 PEs aborted on allocation in train after writing three files. The spec
    // bounds a region at 2^24 PEs, and the per-PE figures of all runs are bounded before the
    // folder is touched, for train and for step --heatmap.
    let fabric = fabric_of("huge", 65536, 65536);
    let path = fabric.to_str().unwrap();
    let out = fresh_path("huge");
    let (code, err) = train_tiny(&out, &["--fabric", path]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("key `geometry.region_width_pes` = 65536")
            && err.contains("a region of at most 16777216 PEs"),
        "{err}"
    );
    assert!(!out.exists());
    let picture = out.with_extension("png");
    let (code, _, err) = run_cli(&[
        "step",
        "gpt-tiny",
        "--fabric",
        path,
        "--heatmap",
        picture.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("geometry.region_width_pes"), "{err}");
    assert!(!picture.exists());
    // Within the spec's bound, seven runs' per-PE figures still pass the memory allowed.
    let fabric = fabric_of("large", 4096, 4096);
    let path = fabric.to_str().unwrap();
    let sparsities = "0.1,0.2,0.3,0.4,0.5,0.6";
    let (code, err) = train_tiny(&out, &["--fabric", path, "--sparsity", sparsities]);
    assert_eq!(code, 2, "{err}");
    let expected = format!(
        "{path}: geometry.region_width_pes x geometry.region_height_pes = 4096 x 4096 PEs: the \
         per-PE figures of 7 run(s) would take 4.8 GiB, more than the 4 GiB allowed; give a \
         region of at most 13944699 PEs"
    );
    assert!(err.contains(&expected), "{err}");
    assert!(!out.exists());
}

#[test]
fn merging_a_sweep_without_points_writes_nothing() {
    // It wrote sweep.csv (a header alone), then exited 2 on the chart.
    let out = fresh_path("empty-sweep");
    std::fs::create_dir_all(out.join("points")).unwrap();
    let (code, _, err) = run_cli(&["merge", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holds no points"), "{err}");
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["points"]);
}
