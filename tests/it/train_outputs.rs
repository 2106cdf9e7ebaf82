//! What train leaves in its folder: its own files, listed in a manifest; a rerun removes only
//! files wafersim wrote there, never a user's.

use std::path::Path;

use crate::train::{fresh_folder, run_train_tiny};

fn names(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A user's `.notes.tmp-keep` and `heatmap-utilization-mine.png` survive two runs; a temporary
/// a killed run left and the heatmaps of a sparsity the rerun drops are removed.
#[test]
fn a_rerun_removes_only_what_wafersim_wrote() {
    let out = fresh_folder("own-files");
    let user_files = [".notes.tmp-keep", "heatmap-utilization-mine.png"];
    for name in user_files {
        std::fs::write(out.join(name), "mine").unwrap();
    }
    let (code, _, err) = run_train_tiny(&out, &["--sparsity", "0.5"]);
    assert_eq!(code, 0, "{err}");
    let killed = ".report.json.wafersim-tmp-4000000-7";
    std::fs::write(out.join(killed), "half").unwrap();
    let (code, _, err) = run_train_tiny(&out, &["--sparsity", "0.75"]);
    assert_eq!(code, 0, "{err}");
    for name in user_files {
        assert_eq!(
            std::fs::read_to_string(out.join(name)).unwrap(),
            "mine",
            "{name}"
        );
    }
    let all = names(&out);
    assert!(!all.contains(&killed.to_string()), "{all:?}");
    assert!(
        !all.iter().any(|n| n.contains("s0.5.")),
        "the dropped run's heatmaps: {all:?}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("wafersim-manifest.json")).unwrap())
            .unwrap();
    let mut listed: Vec<String> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    listed.push("wafersim-manifest.json".into());
    listed.extend(user_files.iter().map(|n| n.to_string()));
    listed.sort();
    assert_eq!(
        listed, all,
        "the manifest lists every file of train's, and only those"
    );
}
