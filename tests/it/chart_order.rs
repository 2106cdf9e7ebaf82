//! Charts a reader reads in order: the gap waterfall's panels by sparsity, whatever order
//! `--sparsity` gave (and `plot heatmap`'s default, the sparsest run), and a merged sweep's
//! legend with its overrides shortened, one entry per model and override (the title says which
//! line is theory and which simulation).

use std::path::PathBuf;

use crate::common::{run_cli, run_sweep, svg_texts};

fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-order-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary folder");
    dir
}

#[test]
fn sparsities_given_out_of_order_draw_in_order() {
    let out = folder("gap");
    let args = [
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--sparsity",
        "0.75,0.5",
    ];
    let mut args = args.to_vec();
    args.extend(["--quiet", "--out", out.to_str().unwrap()]);
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 0, "{err}");
    let titles: Vec<String> = svg_texts(&out.join("gap.svg"))
        .into_iter()
        .filter(|t| t.starts_with("s = "))
        .collect();
    assert_eq!(titles.len(), 2, "{titles:?}");
    assert!(titles[0].starts_with("s = 0.5:"), "{titles:?}");
    assert!(titles[1].starts_with("s = 0.75:"), "{titles:?}");
    // plot heatmap's default run is the sparsest, not the last given (0.5 here).
    let picture = out.join("default.svg");
    let (code, _, err) = run_cli(&[
        "plot",
        "heatmap",
        out.join("counters.npz").to_str().unwrap(),
        "-o",
        picture.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let title = svg_texts(&picture).remove(0);
    assert!(title.ends_with("sparsity 0.75"), "{title}");
}

#[test]
fn a_merged_sweep_legend_names_each_model_and_override_once_and_shortly() {
    let dir = folder("merge");
    let spec = dir.join("io.toml");
    std::fs::write(
        &spec,
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.0, 0.5]\n\n\
         [overrides]\n\"fabric.io.wafer_io_bits_per_second\" = [19_315_895_372, 38_631_790_744]\n",
    )
    .unwrap();
    let out = dir.join("out");
    let (code, _, err) = run_sweep(&spec, &out);
    assert_eq!(code, 0, "{err}");
    let picture = out.join("speedup.svg");
    let (code, _, err) = run_cli(&[
        "merge",
        out.to_str().unwrap(),
        "--quiet",
        "--expect",
        spec.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let png = out.join("speedup-vs-sparsity.png");
    assert!(png.exists());
    // The same chart as SVG, for its text: merge draws it with draw_sweep_speedup.
    let points = wafersim::sweep::read_points(&out, None).expect("the points read back");
    wafersim::report::draw_sweep_speedup(&points, &picture).unwrap();
    let legend: Vec<String> = svg_texts(&picture)
        .into_iter()
        .filter(|t| t.starts_with("gpt-tiny"))
        .collect();
    assert_eq!(
        legend,
        [
            "gpt-tiny, wafer_io_bits_per_second=1.9315895372e10",
            "gpt-tiny, wafer_io_bits_per_second=3.8631790744e10",
        ]
    );
}
