//! The speedup curve and the "where the gap goes" waterfall, from a train report.

use std::path::PathBuf;

use wafersim::report::plot::{waterfall, Waterfall};
use wafersim::schedule::{run_recipe, speedup_curve, CURVE_SPARSITIES};
use wafersim::spec::{load_fabric, load_model};

use crate::common::{run_cli, svg_texts};

fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-pictures-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary folder");
    dir
}

#[test]
fn the_speedup_curve_samples_every_level_and_keeps_the_runs_figures() {
    let model = load_model("gpt-tiny").unwrap();
    let fabric = load_fabric("mini").unwrap();
    let runs = run_recipe(&model, &fabric, &[0.5, 0.75]).unwrap();
    let curve = speedup_curve(&model, &fabric, &runs, 1).unwrap();
    let levels: Vec<f64> = curve.iter().map(|p| p.sparsity).collect();
    // 0, the runs' 0.5 and 0.75, and every sample level (0.5 is one of them).
    let mut expected = vec![0.0, 0.75];
    expected.extend(CURVE_SPARSITIES);
    expected.sort_by(f64::total_cmp);
    assert_eq!(levels, expected);
    for run in &runs {
        let point = curve.iter().find(|p| p.sparsity == run.sparsity).unwrap();
        assert_eq!(
            point.pretrain_simulated_speedup,
            run.phases[0].simulated_speedup
        );
        assert_eq!(
            point.pretrain_theoretical_speedup,
            run.phases[0].theoretical_speedup
        );
        assert_eq!(point.total_simulated_speedup, run.total.simulated_speedup);
        assert_eq!(
            point.total_theoretical_speedup,
            run.total.theoretical_speedup
        );
    }
    // A sampled point is the pre-training run at that sparsity: the same as a recipe run there.
    let at = run_recipe(&model, &fabric, &[0.3]).unwrap();
    let point = curve.iter().find(|p| p.sparsity == 0.3).unwrap();
    assert_eq!(point.total_simulated_speedup, at[1].total.simulated_speedup);
    assert_eq!(
        point.pretrain_theoretical_speedup,
        at[1].phases[0].theoretical_speedup
    );
    // More sparsity never costs FLOPs.
    assert!(curve
        .windows(2)
        .all(|w| w[0].pretrain_theoretical_speedup <= w[1].pretrain_theoretical_speedup));
}

#[test]
fn the_gap_waterfall_runs_from_the_ideal_to_the_simulated_speedup() {
    let dir = folder("gap");
    let golden = include_str!("../../traces/golden/train-gpt-tiny-mini.json");
    let report: serde_json::Value = serde_json::from_str(golden).unwrap();
    let input = dir.join("report.json");
    std::fs::write(&input, golden).unwrap();
    let output = dir.join("gap.svg");
    let args = [
        "plot",
        "gap",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ];
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 0, "{err}");
    let texts = svg_texts(&output);
    for run in report["runs"].as_array().unwrap().iter().skip(1) {
        let s = run["run_sparsity"].as_f64().unwrap();
        let theory = run["total"]["theoretical_speedup"].as_f64().unwrap();
        let simulated = run["total"]["simulated_speedup"].as_f64().unwrap();
        let title =
            format!("s = {s}: the FLOPs promise {theory:.2}x, the wafer gives {simulated:.2}x");
        assert!(texts.contains(&title), "{title}: {texts:?}");
        // The ideal bar, Amdahl's step and the closing bar carry their figures.
        for figure in [
            format!("{:.2}x", 1.0 / (1.0 - s)),
            format!("{:+.2}", theory - 1.0 / (1.0 - s)),
            format!("{simulated:.2}x"),
        ] {
            assert!(texts.contains(&figure), "{figure}: {texts:?}");
        }
    }
    for label in ["ideal 1/(1-s)", "Amdahl", "simulated"] {
        assert!(texts.iter().any(|t| t == label), "{label}: {texts:?}");
    }
    // A report with the dense run alone has no gap to draw: refused, nothing written.
    let mut dense = report.clone();
    dense["runs"].as_array_mut().unwrap().truncate(1);
    dense["speedup_curve"] = serde_json::json!([report["speedup_curve"][0]]);
    std::fs::write(&input, dense.to_string()).unwrap();
    let none = dir.join("none.png");
    let args = [
        "plot",
        "gap",
        input.to_str().unwrap(),
        "-o",
        none.to_str().unwrap(),
    ];
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no sparse run"), "{err}");
    assert!(!none.exists());
}

#[test]
fn a_waterfall_refuses_what_it_cannot_draw() {
    let dir = folder("waterfall");
    let panel = Waterfall {
        title: "t".into(),
        y_label: "y".into(),
        base: 1.0,
        start: ("ideal".into(), 2.0),
        steps: vec![("a".into(), f64::INFINITY)],
        end: ("end".into(), 1.5),
    };
    let path = dir.join("w.png");
    assert_eq!(waterfall("t", &[panel], &path).unwrap_err().exit_code(), 2);
    assert_eq!(waterfall("t", &[], &path).unwrap_err().exit_code(), 2);
    assert!(!path.exists());
}

#[test]
fn train_draws_difference_and_headroom_maps_and_plot_takes_a_scale() {
    let dir = folder("heatmaps");
    let out = dir.join("run");
    let args = [
        "train",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    let (code, _, err) = run_cli(&args);
    assert_eq!(code, 0, "{err}");
    for name in [
        "heatmap-difference-s0.5.png",
        "heatmap-difference-s0.75.svg",
        "heatmap-sram.svg",
        "gap.svg",
        "speedup.svg",
    ] {
        assert!(out.join(name).exists(), "{name}");
    }
    assert!(!out.join("heatmap-difference-dense.png").exists());
    // The difference map is symmetric around 0 (white), the headroom map starts at 0 free.
    let difference = svg_texts(&out.join("heatmap-difference-s0.75.svg"));
    assert!(
        difference.iter().any(|t| t == "0.0" || t == "0.00"),
        "{difference:?}"
    );
    assert!(difference
        .iter()
        .any(|t| t == "busy fraction, sparse less dense"));
    let sram = svg_texts(&out.join("heatmap-sram.svg"));
    assert!(
        sram.iter().any(|t| t.starts_with("SRAM bytes free of ")),
        "{sram:?}"
    );
    let counters = out.join("counters.npz");
    let plot = |extra: &[&str], picture: &str| {
        let picture = dir.join(picture);
        let mut args = vec!["plot", "heatmap", counters.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-o", picture.to_str().unwrap()]);
        let (code, _, err) = run_cli(&args);
        (code, err, picture)
    };
    // Auto: the colour bar runs from the picture's own lowest to highest busy fraction.
    let (code, err, auto) = plot(&["--scale", "auto", "--run", "0.75"], "auto.svg");
    assert_eq!(code, 0, "{err}");
    let (code, err, fixed) = plot(&["--run", "0.75"], "fixed.svg");
    assert_eq!(code, 0, "{err}");
    assert!(svg_texts(&fixed).iter().any(|t| t == "1.0"));
    assert_ne!(svg_texts(&auto), svg_texts(&fixed));
    // The dense run has no difference from itself: refused, nothing drawn.
    let (code, err, none) = plot(&["--kind", "difference", "--run", "dense"], "none.png");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("difference"), "{err}");
    assert!(!none.exists());
}
