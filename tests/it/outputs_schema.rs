//! The JSON Schemas of the reports: published in docs/schema/, pinned to the report types, and
//! the schema_version every report carries. (The Python test validates every report against
//! its schema.)

use crate::common::{bless_requested, run_cli, run_json};

/// docs/schema/NAME.schema.json is what `wafersim schema NAME` derives from the report types
/// now: a field added, renamed or retyped without re-publishing the schemas fails here.
/// `WAFERSIM_BLESS=1` (scripts/bless) rewrites them.
#[test]
fn golden_json_schemas_are_the_published_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema");
    let names = wafersim::cli::schema_names();
    assert_eq!(names.len(), 12);
    for name in &names {
        let text = wafersim::cli::schema_text(name).unwrap();
        let path = dir.join(format!("{name}.schema.json"));
        if bless_requested() {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let published = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; publish it with scripts/bless", path.display()));
        assert!(
            published == text,
            "{} differs from `wafersim schema {name}`: re-publish with scripts/bless and list the \
             change in CHANGELOG (bump report::SCHEMA_VERSION if a field changed)",
            path.display()
        );
        let (code, out, err) = run_cli(&["schema", name]);
        assert_eq!((code, out.as_str()), (0, text.as_str()), "{err}");
    }
    let listed: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed.len(),
        names.len(),
        "docs/schema holds only the published schemas"
    );
}

#[test]
fn every_schema_describes_its_report_with_the_renamed_fields() {
    let schema: serde_json::Value =
        serde_json::from_str(&wafersim::cli::schema_text("train").unwrap()).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(required.contains(&"schema_version"), "{required:?}");
    let phase = &schema["$defs"]["TrainPhase"]["properties"];
    assert_eq!(phase["flops_dense"]["type"], "number");
    assert_eq!(phase["flops_dense_exact"]["$ref"], "#/$defs/ExactCount");
    let breakdown = &schema["$defs"]["Breakdown"]["properties"];
    assert!(breakdown.get("io_cycles").is_some() && breakdown.get("io").is_none());
    assert!(schema["$defs"]["TrainRun"]["properties"]
        .get("run_sparsity")
        .is_some());
}

#[test]
fn the_schema_command_lists_refuses_and_writes() {
    let names = run_json(&["schema"]);
    assert_eq!(names.as_array().unwrap().len(), 12);
    let (code, _, err) = run_cli(&["schema", "nonsense"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("schema nonsense") && err.contains("sweep-point"),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("wafersim-schemas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, _, err) = run_cli(&["schema", "train", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(!dir.exists(), "nothing written before the refusal");
    let (code, _, err) = run_cli(&["schema", "--quiet", "--out", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let step = std::fs::read_to_string(dir.join("step.schema.json")).unwrap();
    assert_eq!(step, wafersim::cli::schema_text("step").unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every report says which field names it uses.
#[test]
fn every_json_report_carries_the_schema_version() {
    let version = u64::from(wafersim::report::SCHEMA_VERSION);
    assert_eq!(
        version, 2,
        "bumped for the renames of CHANGELOG's schema version 2"
    );
    for args in [
        &["step", "gpt-tiny", "--fabric", "mini"][..],
        &["flops", "gpt-tiny"],
        &["inspect", "gpt-tiny", "--fabric", "mini"],
        &["inspect", "mini"],
        &[
            "kernel",
            "--fabric",
            "mini",
            "reduce",
            "--pes",
            "4",
            "--wavelets",
            "2",
        ],
    ] {
        assert_eq!(run_json(args)["schema_version"], version, "{args:?}");
    }
}
