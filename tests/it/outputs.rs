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
        ("1e-300", "1e-300 would be named dense", "0"),
        ("0.5,0.5000001", "0.5000001 would be named s0.5", "0.5"),
        ("0.75,0.0000004", "0.0000004 would be named dense", "0"),
    ] {
        let out = fresh_path("names");
        let (code, err) = train_tiny(&out, &["--fabric", "mini", "--sparsity", sparsities]);
        assert_eq!(code, 2, "{sparsities}: {err}");
        assert!(
            err.contains(&format!(
                "--sparsity: sparsity {named} like the run at {like}"
            )),
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
fn a_run_refused_by_its_plan_leaves_no_folder_behind() {
    // mediswift-xl cannot fit a 4 x 4 wafer: train exited 2 and left the empty folders
    // it had made for --out.
    let fabric = fabric_of("four", 4, 4);
    let root = fresh_path("refused-plan");
    let out = root.join("nested").join("run");
    let args = [
        "train",
        "mediswift-xl",
        "--fabric",
        fabric.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("B over its 49152 B"), "{err}");
    assert!(!root.exists(), "{} was left behind", root.display());
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

/// A file name longer than any file system takes (255 bytes): unwritable even for root, where a
/// read-only folder is still writable.
fn too_long(dir: &Path, extension: &str) -> PathBuf {
    dir.join(format!("{}.{extension}", "x".repeat(300)))
}

/// Runs `args` and requires a refusal before any work: exit 2, nothing on stdout, and a message
/// starting with `flag` and the path it gives.
fn refused_naming(args: &[&str], flag: &str, path: &Path) -> String {
    let (code, out, err) = run_cli(args);
    assert_eq!(code, 2, "{args:?}: {err}");
    assert!(out.is_empty(), "{args:?}: {out}");
    let named = format!("wafersim: error: {flag} {}", path.display());
    assert!(err.starts_with(&named), "{args:?}: {err}");
    err
}

const TRAIN: [&str; 4] = ["train", "gpt-tiny", "--fabric", "mini"];
const STEP: [&str; 4] = ["step", "gpt-tiny", "--fabric", "mini"];
const GEMM: [&str; 12] = [
    "kernel", "gemm", "--t", "8", "--k", "8", "--n", "8", "--fabric", "mini", "--region", "2x2",
];

#[test]
fn output_files_that_cannot_be_written_are_refused_naming_the_flag_before_any_work() {
    // Each failed after the work: step --trace, kernel --counters and --trace with exit 1,
    // step and kernel --heatmap with exit 2; plot -o named the path but not the flag.
    let dir = fresh_path("long-names");
    std::fs::create_dir_all(&dir).unwrap();
    let (json, png) = (too_long(&dir, "json"), too_long(&dir, "png"));
    let step = |flag: &'static str, path: &Path| {
        let args = [
            "step",
            "gpt-tiny",
            "--fabric",
            "mini",
            flag,
            path.to_str().unwrap(),
        ];
        refused_naming(&args, flag, path)
    };
    let err = step("--trace", &json);
    assert!(err.contains("cannot write there") && err.contains(&dir.display().to_string()));
    step("--heatmap", &png);
    step("--heatmap", &dir.join("step.txt"));
    for (flag, path) in [
        ("--counters", &json),
        ("--trace", &json),
        ("--heatmap", &png),
    ] {
        let mut args = GEMM.to_vec();
        args.extend([flag, path.to_str().unwrap()]);
        refused_naming(&args, flag, path);
    }
    // Not a regular file: the atomic write would rename a file over it (as root, over
    // /dev/null). A socket stands for every such path here.
    let socket = dir.join("socket.json");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let err = step("--trace", &socket);
    assert!(err.contains("not a file"), "{err}");
    assert!(
        socket.exists() && !socket.is_file(),
        "the socket is left as it was"
    );
    std::fs::remove_file(&socket).unwrap();
    let report = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/traces/golden/train-gpt-tiny-mini.json"
    );
    let args = ["plot", "speedup", report, "-o", png.to_str().unwrap()];
    refused_naming(&args, "-o", &png);
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(names.is_empty(), "{names:?} left behind");
}

#[test]
fn output_folders_that_cannot_be_written_are_refused_naming_the_flag() {
    // A folder name too long: train --out and sweep --out failed creating it (exit 1).
    let dir = fresh_path("long-folders");
    std::fs::create_dir_all(&dir).unwrap();
    let long = dir.join("x".repeat(300)).join("run");
    let out = long.to_str().unwrap();
    refused_naming(
        &["train", "gpt-tiny", "--fabric", "mini", "--out", out],
        "--out",
        &long,
    );
    let spec = temp_file(
        "one-point.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n",
    );
    let args = ["sweep", spec.to_str().unwrap(), "--out", out];
    refused_naming(&args, "--out", &long);
    // A file where the folder would go, and a folder that cannot take a file (read-only).
    let file = temp_file("not-a-folder", "x");
    let under = file.join("run");
    let args = [
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--out",
        under.to_str().unwrap(),
    ];
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--out") && err.contains("not a folder"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing created"
    );
}

/// A folder no file can be created in, for as long as it lives: read-only by its mode, or, for
/// root (whom modes do not stop), immutable (`chattr +i`, on file systems that have it).
struct ReadOnlyFolder(PathBuf);

impl ReadOnlyFolder {
    /// `None` where neither works (root on a file system without `chattr`).
    fn new(name: &str) -> Option<Self> {
        let dir = fresh_path(name);
        std::fs::create_dir_all(&dir).unwrap();
        Self::of(dir)
    }

    /// `dir`, which exists, made read-only.
    fn of(dir: PathBuf) -> Option<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        let folder = ReadOnlyFolder(dir);
        if !folder.writable() {
            return Some(folder);
        }
        let chattr = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&folder.0)
            .output();
        (chattr.is_ok_and(|o| o.status.success()) && !folder.writable()).then_some(folder)
    }

    fn writable(&self) -> bool {
        let probe = self.0.join("probe");
        let created = std::fs::write(&probe, "x").is_ok();
        let _ = std::fs::remove_file(&probe);
        created
    }
}

impl Drop for ReadOnlyFolder {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .output();
        let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_read_only_output_folder_is_refused_naming_the_flag_before_any_work() {
    // train --out and sweep --out into a read-only folder failed with exit 1 after the work,
    // as did merge, whose folder takes sweep.csv.
    let Some(folder) = ReadOnlyFolder::new("read-only") else {
        eprintln!("skipped: no read-only folder can be made here (root without chattr +i)");
        return;
    };
    let spec = temp_file(
        "one-point-ro.toml",
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.5]\n",
    );
    let sweep = ["sweep", spec.to_str().unwrap()];
    let (nested, trace) = (folder.0.join("run"), folder.0.join("t.json"));
    // merge writes sweep.csv into its sweep's folder.
    let swept = fresh_path("read-only-sweep");
    let (code, _, err) =
        run_cli(&[&sweep[..], &["--quiet", "--out", swept.to_str().unwrap()]].concat());
    assert_eq!(code, 0, "{err}");
    let swept = ReadOnlyFolder::of(swept).expect("made read-only like the first");
    let merge = ["merge"];
    for (command, flag, path) in [
        (&merge[..], "merge DIR", &swept.0),
        (&TRAIN[..], "--out", &folder.0),
        (&sweep[..], "--out", &folder.0),
        (&TRAIN[..], "--out", &nested),
        (&STEP[..], "--trace", &trace),
        (&GEMM[..], "--counters", &trace),
    ] {
        let path_flag: &[&str] = if flag == "merge DIR" { &[] } else { &[flag] };
        let args = [command, path_flag, &[path.to_str().unwrap()]].concat();
        let err = refused_naming(&args, flag, path);
        assert!(err.contains("cannot write there"), "{err}");
    }
}

#[test]
fn two_output_flags_on_one_file_are_refused() {
    // --counters same --trace same wrote the counters, then the trace over them.
    let dir = fresh_path("same-file");
    std::fs::create_dir_all(&dir).unwrap();
    let same = dir.join("same.png");
    let same = same.to_str().unwrap();
    let other_spelling = dir.join(".").join("same.png");
    let other_spelling = other_spelling.to_str().unwrap();
    for (command, first, second, second_path) in [
        (&GEMM[..], "--counters", "--trace", same),
        (&GEMM[..], "--heatmap", "--trace", other_spelling),
        (&STEP[..], "--heatmap", "--trace", same),
    ] {
        let mut args = command.to_vec();
        args.extend([first, same, second, second_path]);
        let (code, _, err) = run_cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.contains(&format!("{first} and {second} both name")),
            "{err}"
        );
    }
    let written = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(written, 0, "nothing written");
}
