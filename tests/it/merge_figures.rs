//! `merge` refuses point files whose figures no run could have produced, as `plot speedup`
//! refuses such a `report.json`, before it writes anything.

use std::path::{Path, PathBuf};

use crate::common::{run_cli, run_sweep, temp_file};

/// A fresh sweep of gpt-tiny on mini at sparsities 0 and 0.5; returns its folder and the file of
/// the sparse point.
fn swept(name: &str) -> (PathBuf, PathBuf) {
    let spec = temp_file(
        &format!("{name}.toml"),
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.5]\n",
    );
    let out = std::env::temp_dir().join(format!("wafersim-merge-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let (code, _, err) = run_sweep(&spec, &out);
    assert_eq!(code, 0, "{err}");
    let sparse = std::fs::read_dir(out.join("points"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| read(p)["point"]["sparsity"] == 0.5)
        .expect("the sparse point's file");
    (out, sparse)
}

fn read(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn merge_refuses_impossible_figures_by_file_and_field_before_writing() {
    let (out, sparse) = swept("impossible");
    let original = read(&sparse);
    let edits: [(&str, &str, serde_json::Value); 6] = [
        ("pretrain", "simulated_speedup", serde_json::json!(-5.0)),
        ("total", "simulated_speedup", serde_json::json!(1e300)),
        ("pretrain", "seconds", serde_json::json!(-1.0)),
        ("pretrain", "flops_executed", serde_json::json!(0)),
        ("total", "theoretical_speedup", serde_json::json!(7.5)),
        ("pretrain", "pe_utilization_mean", serde_json::json!(2.0)),
    ];
    for (phase, field, value) in edits {
        let mut edited = original.clone();
        edited[phase][field] = value.clone();
        std::fs::write(&sparse, serde_json::to_string_pretty(&edited).unwrap()).unwrap();
        let (code, _, err) = run_cli(&["merge", out.to_str().unwrap(), "--quiet"]);
        assert_eq!(code, 2, "{phase}.{field} = {value}: {err}");
        let name = sparse.file_name().unwrap().to_str().unwrap();
        assert!(
            err.contains(name) && err.contains(&format!("{phase}.{field}")),
            "{phase}.{field} = {value} not named: {err}"
        );
        assert!(
            !out.join("sweep.csv").exists() && !out.join("speedup-vs-sparsity.png").exists(),
            "{phase}.{field} = {value}: merge wrote before refusing"
        );
    }
    std::fs::write(&sparse, serde_json::to_string_pretty(&original).unwrap()).unwrap();
    let (code, _, err) = run_cli(&["merge", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "the point as the sweep wrote it merges: {err}");
}
