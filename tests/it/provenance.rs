//! Reports say where each spec came from and hash its contents; train's folder alone reproduces
//! its run, and a copy of a built-in never writes into the built-in's folder.

use std::path::Path;
use std::process::Command;

use crate::common::run_json;
use crate::train::fresh_folder;

fn report(folder: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(folder.join("report.json")).unwrap()).unwrap()
}

fn is_sha256(value: &serde_json::Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `train <folder>/model.toml --fabric <folder>/fabric.toml` gives the figures of the run that
/// wrote the folder, from files that are byte copies of what it read.
#[test]
fn train_s_folder_alone_reproduces_its_run() {
    let first = fresh_folder("provenance-first");
    run_json(&[
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--out",
        first.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(first.join("model.toml")).unwrap(),
        include_str!("../../models/gpt-tiny.toml")
    );
    assert_eq!(
        std::fs::read_to_string(first.join("fabric.toml")).unwrap(),
        include_str!("../../fabric/mini.toml")
    );
    let second = fresh_folder("provenance-second");
    let model = first.join("model.toml");
    let fabric = first.join("fabric.toml");
    run_json(&[
        "train",
        model.to_str().unwrap(),
        "--fabric",
        fabric.to_str().unwrap(),
        "--out",
        second.to_str().unwrap(),
    ]);
    let (a, b) = (report(&first), report(&second));
    assert_eq!(a["model_source"], "builtin");
    assert_eq!(a["fabric_source"], "builtin");
    assert_eq!(b["model_source"], model.to_str().unwrap());
    assert_eq!(b["fabric_source"], fabric.to_str().unwrap());
    for key in ["model_sha256", "fabric_sha256"] {
        assert!(is_sha256(&a[key]), "{key}: {}", a[key]);
        assert_eq!(a[key], b[key], "{key}");
    }
    for key in ["model", "fabric", "seed", "runs", "masked_flops_share"] {
        assert_eq!(a[key], b[key], "{key}");
    }
}

/// A copy of a built-in model that keeps its name gets a folder of its own (name + hash), and
/// its report says it came from the file.
#[test]
fn a_copy_of_a_built_in_keeping_its_name_does_not_take_its_folder() {
    let cwd = fresh_folder("provenance-copy");
    let copy = include_str!("../../models/gpt-tiny.toml").replace(
        "batch_sequences = 8          # [A] 8 x 128",
        "batch_sequences = 4 # 4 x 128",
    );
    std::fs::write(cwd.join("copy.toml"), &copy).unwrap();
    let train = |model: &str| {
        let status = Command::new(env!("CARGO_BIN_EXE_wafersim"))
            .args(["train", model, "--fabric", "mini", "--quiet"])
            .current_dir(&cwd)
            .status()
            .unwrap();
        assert!(status.success(), "train {model}");
    };
    train("gpt-tiny");
    let builtin = cwd.join("wafersim-out/gpt-tiny-mini");
    let before = std::fs::read(builtin.join("report.json")).unwrap();
    train("copy.toml");
    assert_eq!(std::fs::read(builtin.join("report.json")).unwrap(), before);
    let folders: Vec<String> = std::fs::read_dir(cwd.join("wafersim-out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "gpt-tiny-mini")
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let copied = report(&cwd.join("wafersim-out").join(&folders[0]));
    assert_eq!(copied["model"], "gpt-tiny");
    assert_eq!(copied["model_source"], "copy.toml");
    let hash = copied["model_sha256"].as_str().unwrap();
    assert_eq!(folders[0], format!("gpt-tiny+{}-mini", &hash[..8]));
    assert_ne!(
        copied["runs"],
        report(&builtin)["runs"],
        "the copy's batch differs"
    );
}

/// step's report records its sources too.
#[test]
fn step_records_where_its_specs_came_from() {
    let json = run_json(&["step", "gpt-tiny", "--fabric", "mini"]);
    assert_eq!(json["model_source"], "builtin");
    assert_eq!(json["fabric_source"], "builtin");
    assert!(is_sha256(&json["model_sha256"]) && is_sha256(&json["fabric_sha256"]));
}
