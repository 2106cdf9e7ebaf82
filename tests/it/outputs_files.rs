//! The output files in the shapes pandas and numpy load as they are (the Python test loads them
//! with pandas and numpy in CI; these hold the same rules in `cargo test`).

use crate::train::{fresh_folder, run_train_tiny};
use wafersim::report::npz::{read_npz, NpyArray, NpyData};

/// A CSV file as (header, rows of cells), split on commas (no field here holds one).
fn csv(path: &std::path::Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .map(|l| l.split(',').map(String::from).collect());
    (lines.next().unwrap(), lines.collect())
}

#[test]
fn ops_csv_names_the_pass_and_says_why_an_op_has_no_tile() {
    let out = fresh_folder("outputs-ops");
    let (code, _, err) = run_train_tiny(&out, &["--quiet"]);
    assert_eq!(code, 0, "{err}");
    let (header, rows) = csv(&out.join("ops.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert!(
        !header.iter().any(|h| h == "pass"),
        "a Python keyword: {header:?}"
    );
    let (pass, format, tile) = (col("op_pass"), col("weight_format"), col("tile"));
    let numbers = [col("tile_rows"), col("tile_split_k"), col("tile_split_n")];
    let mut passes: Vec<&str> = rows.iter().map(|r| r[pass].as_str()).collect();
    passes.sort();
    passes.dedup();
    assert_eq!(passes, ["dgrad", "forward", "update", "wgrad"]);
    for row in &rows {
        assert!(
            ["sparse", "dense", "none"].contains(&row[format].as_str()),
            "{row:?}"
        );
        let parts: Vec<&str> = row[tile].split('x').collect();
        if parts.len() == 3 {
            let given: Vec<&str> = numbers.iter().map(|&i| row[i].as_str()).collect();
            assert_eq!(given, parts, "{row:?}");
        } else {
            let why = if row[pass] == "update" {
                "off_wafer"
            } else {
                "elementwise"
            };
            assert_eq!(row[tile], why, "{row:?}");
            assert!(numbers.iter().all(|&i| row[i].is_empty()), "{row:?}");
        }
        // Every other cell holds a value: FLOPs as floats, the rest as integers or words.
        let filled = (0..row.len()).filter(|i| !numbers.contains(i));
        assert!(filled.clone().all(|i| !row[i].is_empty()), "{row:?}");
        let flops: f64 = row[col("flops_dense")].parse().unwrap();
        assert!(
            row[col("flops_dense")].contains('.') && flops >= 0.0,
            "{row:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn train_counters_are_an_npz_of_uint64_grids_named_by_run() {
    let out = fresh_folder("outputs-npz");
    let (code, _, err) = run_train_tiny(&out, &["--quiet", "--sparsity", "0.5"]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(out.join("counters.npz")).unwrap();
    assert!(
        bytes.starts_with(b"PK\x03\x04"),
        "a zip, as numpy.savez writes"
    );
    let arrays = read_npz(&bytes).unwrap();
    let names: Vec<&str> = arrays.keys().map(String::as_str).collect();
    for name in [
        "dense_busy_cycles",
        "dense_sram_bytes",
        "s0.5_busy_cycles",
        "s0.5_sram_bytes",
        "runs",
        "sparsity",
        "step_cycles",
        "schema_version",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    // mini: 16 x 16 PEs.
    let NpyArray {
        shape,
        data: NpyData::U64(busy),
    } = &arrays["s0.5_busy_cycles"]
    else {
        panic!("not uint64");
    };
    assert_eq!(shape, &[16, 16]);
    let NpyData::U64(steps) = &arrays["step_cycles"].data else {
        panic!("not uint64")
    };
    assert!(busy.iter().all(|&b| b <= steps[1]) && busy.iter().any(|&b| b > 0));
    assert_eq!(
        arrays["runs"].data,
        NpyData::Text(vec!["dense".into(), "s0.5".into()])
    );
    // The same run gives the same bytes.
    let again = fresh_folder("outputs-npz-again");
    let (code, _, err) = run_train_tiny(&again, &["--quiet", "--sparsity", "0.5"]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(again.join("counters.npz")).unwrap() == bytes);
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&again);
}

#[test]
fn sweep_csv_says_none_for_no_overrides_and_writes_flops_as_floats() {
    let spec = crate::common::temp_file(
        "outputs-sweep.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.5]\n",
    );
    let out = fresh_folder("outputs-sweep");
    let dir = out.to_str().unwrap();
    let (code, _, err) =
        crate::common::run_cli(&["sweep", spec.to_str().unwrap(), "--out", dir, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = crate::common::run_cli(&["merge", dir, "--quiet"]);
    assert_eq!(code, 0, "{err}");
    let (header, rows) = csv(&out.join("sweep.csv"));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row[col("overrides")], "none", "{row:?}");
        let flops = &row[col("pretrain_flops_executed")];
        assert!(
            flops.contains('.') && flops.parse::<f64>().unwrap() > 0.0,
            "{flops}"
        );
        assert!(row.iter().all(|cell| !cell.is_empty()), "{row:?}");
    }
    let _ = std::fs::remove_dir_all(&out);
}
