//! The main job: `train` on its defaults and on the small golden case.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{assert_golden, bless_mode, run_cli};

/// A fresh empty folder for one test's output.
pub fn fresh_folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `train gpt-tiny --fabric mini --out OUT` with `extra` flags: (exit code, stdout, stderr).
pub fn run_train_tiny(out: &Path, extra: &[&str]) -> (u8, String, String) {
    let mut args = vec![
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_cli(&args)
}

/// `plot heatmap COUNTERS -o PICTURE`: (exit code, stdout, stderr).
fn plot_heatmap(counters: &Path, picture: &Path) -> (u8, String, String) {
    run_cli(&[
        "plot",
        "heatmap",
        counters.to_str().unwrap(),
        "-o",
        picture.to_str().unwrap(),
    ])
}

fn train_tiny(out: &Path) -> String {
    let (code, stdout, err) = run_train_tiny(out, &[]);
    assert_eq!(code, 0, "{err}");
    stdout
}

/// The golden report: any change to simulated throughput shows here and must be accepted on
/// purpose (`common::assert_golden` says how).
#[test]
fn the_gpt_tiny_report_matches_the_golden_file() {
    let out = fresh_folder("golden");
    train_tiny(&out);
    let report = std::fs::read_to_string(out.join("report.json")).unwrap();
    assert_golden("train-gpt-tiny-mini.json", &report);
}

#[test]
fn only_wafersim_bless_1_rewrites_golden_files() {
    // Any value used to bless (`is_some`), so `WAFERSIM_BLESS=0` passed every golden test.
    use std::ffi::OsStr;
    assert_eq!(bless_mode(None), Ok(false));
    assert_eq!(bless_mode(Some(OsStr::new("1"))), Ok(true));
    for value in ["0", "", "true", "yes", " 1"] {
        let err = bless_mode(Some(OsStr::new(value))).unwrap_err();
        assert!(err.contains("set it to 1"), "{value:?}: {err}");
    }
}

#[test]
fn ci_refuses_to_run_with_wafersim_bless_set() {
    // CI would otherwise rewrite the golden files and pass whatever they held. The refusal
    // comes first, before any command: with a PATH that finds nothing (so that, unfixed, this
    // test cannot start the CI it tests) the script still exits 2 saying why; before, it
    // failed on the first command it could not find.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run");
    for value in ["0", "1", ""] {
        let out = Command::new("/bin/bash")
            .arg(&script)
            .env_clear()
            .env("PATH", "/nonexistent")
            .env("WAFERSIM_BLESS", value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "WAFERSIM_BLESS={value:?}: {err}"
        );
        assert!(err.contains("WAFERSIM_BLESS"), "{err}");
    }
}

#[test]
fn the_table_the_json_and_the_csv_agree() {
    let out = fresh_folder("agree");
    let table = train_tiny(&out);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let csv = std::fs::read_to_string(out.join("phases.csv")).unwrap();
    let mut csv_rows = csv.lines().skip(1);
    let mut rows_checked = 0;
    for run in report["runs"].as_array().unwrap() {
        let label = if run["run_sparsity"] == 0.0 {
            "dense".to_string()
        } else {
            format!("s={}", run["run_sparsity"])
        };
        let phases = run["phases"]
            .as_array()
            .unwrap()
            .iter()
            .chain(std::iter::once(&run["total"]));
        for phase in phases {
            let name = phase["phase"].as_str().unwrap();
            let line = table
                .lines()
                .find(|l| l.split_whitespace().take(2).eq([label.as_str(), name]))
                .unwrap_or_else(|| panic!("no table row for {label} {name}"));
            let cells: Vec<&str> = line.split_whitespace().collect();
            let theory = format!("{:.2}x", phase["theoretical_speedup"].as_f64().unwrap());
            let simulated = format!("{:.2}x", phase["simulated_speedup"].as_f64().unwrap());
            let util = format!(
                "{:.1}%",
                100.0 * phase["pe_utilization_mean"].as_f64().unwrap()
            );
            // Of peak: executed FLOPs over the time at the fabric's fp16 peak (one system).
            let peak = report["peak_flops_per_second"].as_f64().unwrap();
            let of_peak = format!(
                "{:.1}%",
                100.0 * phase["flops_executed"].as_f64().unwrap()
                    / (phase["seconds"].as_f64().unwrap() * peak)
            );
            assert_eq!(
                &cells[cells.len() - 4..],
                [
                    theory.as_str(),
                    simulated.as_str(),
                    util.as_str(),
                    of_peak.as_str()
                ],
                "{line}"
            );
            let csv_row: Vec<&str> = csv_rows.next().unwrap().split(',').collect();
            assert_eq!(csv_row[1], name);
            for (column, key) in [(3, "tokens"), (4, "steps"), (8, "cycles")] {
                assert_eq!(
                    csv_row[column],
                    phase[key].to_string(),
                    "{label} {name} {key}"
                );
            }
            // FLOPs are floats in every CSV, the nearest doubles the JSON numbers are too.
            for (column, key) in [
                (5, "flops_dense"),
                (6, "flops_executed"),
                (7, "flops_optimizer"),
                (9, "seconds"),
                (10, "theoretical_speedup"),
                (11, "simulated_speedup"),
            ] {
                let value: f64 = csv_row[column].parse().unwrap();
                assert_eq!(value, phase[key].as_f64().unwrap(), "{label} {name} {key}");
            }
            rows_checked += 1;
        }
    }
    assert_eq!(
        rows_checked,
        3 * 4,
        "three runs of three phases and a total"
    );
}

#[test]
fn train_runs_on_its_defaults_from_any_folder_and_leaves_no_temporary_files() {
    let folder = fresh_folder("defaults");
    let status = Command::new(env!("CARGO_BIN_EXE_wafersim"))
        .args(["train", "--quiet"])
        .current_dir(&folder)
        .status()
        .unwrap();
    assert!(status.success());
    let out = folder.join("wafersim-out/mediswift-xl-wse2");
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "no temporary files: {names:?}"
    );
    for name in ["ops.csv", "phases.csv", "report.json"] {
        assert!(names.contains(&name.to_string()), "{name} in {names:?}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["model"], "mediswift-xl");
    assert_eq!(report["fabric"], "wse2");
    let sparsities: Vec<f64> = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_sparsity"].as_f64().unwrap())
        .collect();
    assert_eq!(sparsities, [0.0, 0.5, 0.75]);
    check_pictures(&out);
}

/// Decodes a PNG into (width, height, RGB bytes).
fn decode_png(path: &Path) -> (usize, usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    buffer.truncate(info.buffer_size());
    (info.width as usize, info.height as usize, buffer)
}

/// The pictures of the default run: full resolution, varying where utilisation varies and
/// uniform where it is uniform, SVGs that parse, a speedup chart.
fn check_pictures(out: &Path) {
    let counters = wafersim::report::CountersFile::read(&out.join("counters.npz")).unwrap();
    for run in &counters.runs {
        let name = wafersim::report::run_name(run.sparsity);
        let (width, height, rgb) = decode_png(&out.join(format!("heatmap-utilization-{name}.png")));
        let grid = &run.busy_cycles;
        // At least a title band of 56 px above the plot (more with the column bands' labels)
        // and 76 px of axis below it; at least a pixel per PE.
        let plot_h = height - 56 - 76;
        assert!(width >= 750 && plot_h >= 994, "{name}: {width} x {height}");
        let cell = plot_h / grid.height as usize;
        let top = height - 76 - cell * grid.height as usize;
        let pixel = |x: usize, y: usize| &rgb[(y * width + x) * 3..(y * width + x) * 3 + 3];
        // The plot's left edge: the first column, on the plot's first row, that is not white.
        let y0 = top + cell / 2;
        let x0 = (0..width)
            .find(|&x| pixel(x, y0) != [255, 255, 255])
            .unwrap();
        let at = |col: u64, row: u64| {
            pixel(
                x0 + col as usize * cell + cell / 2,
                top + row as usize * cell + cell / 2,
            )
        };
        // Row 0 and the last row differ in busy cycles (a GEMM tile leaves the bottom rows idle),
        // and so do their pixels; along row 0 the middle columns share one colour.
        let last = grid.height - 1;
        assert_ne!(
            grid.value(0, 300),
            grid.value(last, 300),
            "{name}: the picture has structure to show"
        );
        assert_ne!(
            at(300, 0),
            at(300, last),
            "{name}: pixels vary where utilisation varies"
        );
        // The dense run has no random mask: its tile's columns are exactly alike.
        if run.sparsity == 0.0 {
            for col in (200..500).step_by(50) {
                assert_eq!(grid.value(0, col), grid.value(0, 300));
                assert_eq!(
                    at(col, 0),
                    at(300, 0),
                    "{name}: uniform where utilisation is uniform"
                );
            }
        }
        let svg =
            std::fs::read_to_string(out.join(format!("heatmap-utilization-{name}.svg"))).unwrap();
        let document = roxmltree::Document::parse(&svg).expect("the SVG parses");
        assert!(document
            .descendants()
            .any(|n| n.text().is_some_and(|t| t.contains("PE utilisation"))));
    }
    let (width, height, _) = decode_png(&out.join("heatmap-sram.png"));
    assert!(width >= 750 && height >= 994 + 132);
    let (width, height, _) = decode_png(&out.join("speedup.png"));
    assert!(width >= 600 && height >= 400, "{width} x {height}");
}

#[test]
fn the_same_inputs_give_byte_identical_files() {
    let (a, b) = (fresh_folder("same-a"), fresh_folder("same-b"));
    train_tiny(&a);
    train_tiny(&b);
    for name in ["report.json", "phases.csv", "ops.csv"] {
        assert_eq!(
            std::fs::read(a.join(name)).unwrap(),
            std::fs::read(b.join(name)).unwrap(),
            "{name}"
        );
    }
}

#[test]
fn an_interrupted_run_leaves_no_half_written_file() {
    for delay_ms in [20u64, 120, 250, 400] {
        let folder = fresh_folder(&format!("interrupt-{delay_ms}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_wafersim"))
            .args(["train", "--quiet", "--out", "out"])
            .current_dir(&folder)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let status = child.wait().unwrap();
        let out = folder.join("out");
        let Ok(entries) = std::fs::read_dir(&out) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                !name.starts_with('.'),
                "a temporary file was left: {name} (exit {status:?})"
            );
            let bytes = std::fs::read(&path).unwrap();
            match path.extension().and_then(|e| e.to_str()) {
                Some("json") => {
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                Some("png") => {
                    decode_png(&path);
                }
                Some("svg") => {
                    roxmltree::Document::parse(std::str::from_utf8(&bytes).unwrap()).unwrap();
                }
                Some("csv") => assert!(bytes.ends_with(b"\n"), "{name} is whole"),
                Some("toml") => {
                    toml::from_str::<toml::Table>(std::str::from_utf8(&bytes).unwrap())
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                Some("npz") => {
                    wafersim::report::CountersFile::read(&path).unwrap();
                }
                _ => panic!("unexpected file {name}"),
            }
        }
    }
}

/// A sparsity so high that a weight matrix keeps no non-zero still gives counters that plot
/// reads (a mask without non-zeros once made a column's spread infinite: busy cycles 2^64 - 1).
#[test]
fn counters_of_a_nearly_empty_mask_are_plotted() {
    let out = fresh_folder("nearly-empty");
    let (code, _, err) = run_train_tiny(&out, &["--sparsity", "0.99999"]);
    assert_eq!(code, 0, "{err}");
    let counters = out.join("counters.npz");
    let file = wafersim::report::CountersFile::read(&counters).unwrap();
    for run in &file.runs {
        assert!(run.busy_cycles.values.iter().all(|&v| v <= run.step_cycles));
    }
    let picture = out.join("again.png");
    let (code, _, err) = plot_heatmap(&counters, &picture);
    assert_eq!(code, 0, "{err}");
}

/// A second run into a folder a run is writing is refused, naming the folder, instead of mixing
/// the two runs' files; once the first ends, the folder is free again.
#[test]
fn a_folder_another_run_is_writing_is_refused() {
    let out = fresh_folder("locked");
    let held = wafersim::report::lock_folder(&out).unwrap();
    let (code, stdout, err) = run_train_tiny(&out, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(stdout.is_empty());
    assert!(err.contains(out.to_str().unwrap()), "{err}");
    assert!(err.contains("another wafersim run"), "{err}");
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "nothing written"
    );
    drop(held);
    train_tiny(&out);
}

/// A rerun into the same folder with fewer sparsities leaves no heatmap of the runs it does not
/// have (they would not match its report.json), and nothing that is not train's.
#[test]
fn a_rerun_removes_the_heatmaps_of_runs_it_does_not_have() {
    let out = fresh_folder("rerun");
    train_tiny(&out);
    let names = |out: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("heatmap-utilization-"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&out),
        [
            "heatmap-utilization-dense.png",
            "heatmap-utilization-dense.svg",
            "heatmap-utilization-s0.5.png",
            "heatmap-utilization-s0.5.svg",
            "heatmap-utilization-s0.75.png",
            "heatmap-utilization-s0.75.svg",
        ]
    );
    let notes = out.join("my-notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    let (code, _, err) = run_train_tiny(&out, &["--sparsity", "0.75"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        names(&out),
        [
            "heatmap-utilization-dense.png",
            "heatmap-utilization-dense.svg",
            "heatmap-utilization-s0.75.png",
            "heatmap-utilization-s0.75.svg",
        ]
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
}

#[test]
fn corrupt_or_truncated_counters_are_refused_by_plot() {
    let out = fresh_folder("corrupt-counters");
    train_tiny(&out);
    let path = out.join("counters.npz");
    let bytes = std::fs::read(&path).unwrap();
    let picture = out.join("redrawn.png");
    let (code, _, err) = plot_heatmap(&path, &picture);
    assert_eq!(code, 0, "{err}");
    for (what, edited) in [
        ("truncated", bytes[..bytes.len() / 3].to_vec()),
        ("empty", Vec::new()),
        (
            "wrong magic",
            [b"NOTCOUNT".as_slice(), &bytes[8..]].concat(),
        ),
        ("garbage", [bytes.as_slice(), b"tail"].concat()),
    ] {
        let bad = out.join(format!("{}.npz", what.replace(' ', "-")));
        std::fs::write(&bad, edited).unwrap();
        let (code, stdout, err) = plot_heatmap(&bad, &picture);
        assert_eq!(code, 2, "{what}: {err}");
        assert!(stdout.is_empty());
        assert!(
            err.contains(bad.to_str().unwrap()),
            "{what}: the message names the file: {err}"
        );
    }
}

#[test]
fn train_json_carries_whole_recipe_flops_beyond_u64() {
    let out = fresh_folder("json-xl");
    let (code, stdout, err) = run_cli(&["train", "--json", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // 2.18e20 FLOPs: more than u64 holds. The stdout document is report.json plus host figures.
    assert!(
        stdout.contains("\"flops_dense_exact\": \"218398343022573550592\""),
        "exact integer FLOPs"
    );
    // Beside it, the nearest double: a number every JSON reader (pandas included) can load.
    assert!(
        stdout.contains("\"flops_dense\": 2.1839834302257355e+20"),
        "FLOPs as a number"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(report["host_seconds"].as_f64().unwrap() > 0.0);
    let file = std::fs::read_to_string(out.join("report.json")).unwrap();
    let body = file.trim_end().strip_suffix('}').unwrap();
    assert!(
        stdout.starts_with(body.trim_end()),
        "same fields, same order as report.json"
    );
}
