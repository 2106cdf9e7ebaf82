//! Pictures through the public API: files written, decoded and measured.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use wafersim::report::plot::{heatmap, line_chart, Grid, HeatmapStyle, LineChart, Series};

/// A fresh, empty folder for one test's pictures.
fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-plot-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary folder");
    dir
}

/// Decodes a PNG file into (width, height, RGB pixels).
fn decode(path: &Path) -> (usize, usize, Vec<[u8; 3]>) {
    let file = std::fs::File::open(path).expect("the PNG was written");
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .expect("a PNG header");
    let mut bytes = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut bytes).expect("PNG data");
    assert_eq!(frame.color_type, png::ColorType::Rgb);
    let pixels = bytes[..frame.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (frame.width as usize, frame.height as usize, pixels)
}

/// Colours by how many pixels have them, most frequent first.
fn colour_counts(pixels: &[[u8; 3]]) -> Vec<([u8; 3], usize)> {
    let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
    for &p in pixels {
        *counts.entry(p).or_default() += 1;
    }
    let mut counts: Vec<_> = counts.into_iter().collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts
}

fn luminance([r, g, b]: [u8; 3]) -> f64 {
    0.2126 * f64::from(r) + 0.7152 * f64::from(g) + 0.0722 * f64::from(b)
}

fn text_of(svg: &str) -> String {
    let document = roxmltree::Document::parse(svg).expect("the SVG parses as XML");
    document
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n")
}

const TITLE: &str = "PE utilisation — mediswift-xl on wse2, pretrain, sparsity 0.75";

/// The full WSE-2 fabric: left half 0.2 busy, right half 0.8.
fn halves() -> Grid {
    let (w, h) = (750, 994);
    let values = (0..w * h)
        .map(|i| if i % w < w / 2 { 0.2 } else { 0.8 })
        .collect();
    Grid::new(w, h, values).unwrap()
}

#[test]
fn full_wafer_png_has_a_pixel_per_pe_and_two_uniform_halves() {
    let dir = folder("halves-png");
    let path = dir.join("utilisation.png");
    let style = HeatmapStyle::new(TITLE, "busy fraction", 0.0, 1.0);
    heatmap(&halves(), &style, &path).unwrap();

    let (width, height, pixels) = decode(&path);
    assert!(width >= 750 && height >= 994, "{width} × {height}");
    // Axes, title and colour bar fit around the cells without a wasteful canvas.
    assert!(
        width < 750 + 400 && height < 994 + 250,
        "{width} × {height}"
    );
    // Not white: the two most frequent colours are the halves, each at least 375 × 994 pixels
    // (the colour bar may use them too), so each half is one uniform colour.
    let counts: Vec<_> = colour_counts(&pixels)
        .into_iter()
        .filter(|(c, _)| *c != [255, 255, 255])
        .collect();
    let (dark, bright) = (counts[0], counts[1]);
    assert!(dark.1 >= 375 * 994 && bright.1 >= 375 * 994, "{counts:?}");
    assert!(
        counts[2].1 < 375 * 994 / 10,
        "a third colour covers {}",
        counts[2].1
    );
    // viridis rises in luminance: 0.2 is the darker half.
    let (dark, bright) = if luminance(dark.0) < luminance(bright.0) {
        (dark, bright)
    } else {
        (bright, dark)
    };
    assert!(
        luminance(bright.0) - luminance(dark.0) > 60.0,
        "{dark:?} {bright:?}"
    );
    // The left half is the dark one: sample the middle row at a quarter and three quarters of
    // the dark-or-bright run.
    let row = &pixels[height / 2 * width..(height / 2 + 1) * width];
    let first = row
        .iter()
        .position(|&p| p == dark.0 || p == bright.0)
        .unwrap();
    assert_eq!(row[first], dark.0);
    assert_eq!(row[first + 374], dark.0);
    assert_eq!(row[first + 375], bright.0);
    assert_eq!(row[first + 749], bright.0);
    // Atomic write: nothing but the picture in the folder.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("utilisation.png")]);
}

#[test]
fn heatmaps_with_one_range_share_one_colour_scale() {
    // The same value gets the same colour in two pictures with the same (vmin, vmax), whatever
    // else each grid holds.
    let dir = folder("shared-scale");
    let style = HeatmapStyle::new("SRAM use", "SRAM bytes", 0.0, 49_152.0);
    let flat = Grid::new(8, 8, vec![24_576.0; 64]).unwrap();
    let mut peaked_values = vec![24_576.0; 64];
    peaked_values[0] = 49_152.0;
    let peaked = Grid::new(8, 8, peaked_values).unwrap();
    heatmap(&flat, &style, &dir.join("flat.png")).unwrap();
    heatmap(&peaked, &style, &dir.join("peaked.png")).unwrap();
    let most_common = |name: &str| colour_counts(&decode(&dir.join(name)).2)[0];
    let (flat_colour, flat_count) = most_common("flat.png");
    let (peaked_colour, peaked_count) = most_common("peaked.png");
    assert_eq!(flat_colour, peaked_colour);
    // 8 × 8 PEs of 100 × 100 pixels; one PE fewer in the peaked grid.
    assert!(flat_count >= 64 * 10_000, "{flat_count}");
    assert_eq!(flat_count - peaked_count, 10_000);
}

#[test]
fn full_wafer_svg_is_small_tiled_xml_with_its_labels() {
    let dir = folder("halves-svg");
    let path = dir.join("utilisation.svg");
    let style = HeatmapStyle::new(TITLE, "busy fraction", 0.0, 1.0);
    heatmap(&halves(), &style, &path).unwrap();

    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.len() < 1_000_000, "{} bytes", svg.len());
    let text = text_of(&svg);
    for label in [
        TITLE,
        "PE column (x)",
        "PE row (y)",
        "busy fraction",
        "0.0",
        "1.0",
        "700",
        "900",
    ] {
        assert!(
            text.lines().any(|l| l == label),
            "no text {label:?} in {text}"
        );
    }
    // 10 × 10 PE tiles: 75 × 100 of them, plus the colour bar's strips and the frames.
    let rects = svg.matches("<rect").count();
    assert!((7_500..7_500 + 200).contains(&rects), "{rects} rectangles");
}

#[test]
fn speedup_chart_png_and_svg() {
    let dir = folder("speedup");
    let sparsities = [0.0, 0.5, 0.75, 0.9];
    let curve = |f: fn(f64) -> f64| sparsities.iter().map(|&s| (s, f(s))).collect::<Vec<_>>();
    let mut chart = LineChart::new("Speedup over dense", "sparsity", "speedup over dense (×)");
    chart.series = vec![
        Series::new("theoretical, pretrain", curve(|s| 1.0 / (1.0 - 0.9 * s))),
        Series::new("simulated, pretrain", curve(|s| 1.0 / (1.0 - 0.7 * s))),
        Series::new("theoretical, total", curve(|s| 1.0 / (1.0 - 0.8 * s))),
        Series::new("simulated, total", curve(|s| 1.0 / (1.0 - 0.6 * s))),
    ];
    chart.reference = Some(Series::ideal_speedup(0.9));
    line_chart(&chart, &dir.join("speedup.png")).unwrap();
    line_chart(&chart, &dir.join("speedup.svg")).unwrap();

    let (width, height, pixels) = decode(&dir.join("speedup.png"));
    assert_eq!((width, height), (960, 640));
    // Each series' colour (Okabe–Ito blue, vermillion, green, purple) is drawn in its line.
    let counts: HashMap<_, _> = colour_counts(&pixels).into_iter().collect();
    for colour in [[0, 114, 178], [213, 94, 0], [0, 158, 115], [204, 121, 167]] {
        let drawn = counts.get(&colour).copied().unwrap_or(0);
        assert!(drawn > 200, "{colour:?}: {drawn} pixels");
    }
    let text = text_of(&std::fs::read_to_string(dir.join("speedup.svg")).unwrap());
    for label in [
        "Speedup over dense",
        "sparsity",
        "simulated, total",
        "ideal, 1/(1 − s)",
        "0.9",
    ] {
        assert!(
            text.lines().any(|l| l == label),
            "no text {label:?} in {text}"
        );
    }
}

#[test]
fn a_bad_path_or_extension_is_an_input_error_and_writes_nothing() {
    let dir = folder("bad-paths");
    let grid = Grid::new(2, 2, vec![0.0; 4]).unwrap();
    let style = HeatmapStyle::new("t", "v", 0.0, 1.0);
    let mut chart = LineChart::new("t", "x", "y");
    chart.series.push(Series::new("a", vec![(0.0, 1.0)]));
    let jpg = dir.join("map.jpg");
    let missing = dir.join("no-such-folder").join("map.png");
    for path in [&jpg, &missing] {
        for error in [
            heatmap(&grid, &style, path).unwrap_err(),
            line_chart(&chart, path).unwrap_err(),
        ] {
            assert_eq!(error.exit_code(), 2, "{error}");
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(
                message.contains("png") && message.contains("svg"),
                "{message}"
            );
        }
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn plot_speedup_refuses_reports_no_run_could_have_written() {
    // A sparsity of 5, a speedup of -5 or 1e300, another version: all were drawn. Each is now
    // refused naming the file and the field, and nothing is drawn; a real report still draws.
    let dir = folder("forged-reports");
    let golden = include_str!("../../traces/golden/train-gpt-tiny-mini.json");
    let report: serde_json::Value = serde_json::from_str(golden).unwrap();
    let picture = dir.join("speedup.png");
    let plot = |name: &str, report: &serde_json::Value| {
        let input = dir.join(name);
        std::fs::write(&input, report.to_string()).unwrap();
        let args = [
            "plot",
            "speedup",
            input.to_str().unwrap(),
            "-o",
            picture.to_str().unwrap(),
        ];
        let (code, _, err) = crate::common::run_cli(&args);
        (code, err, input)
    };
    let (code, err, _) = plot("real.json", &report);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_file(&picture).unwrap();
    type Forgery = fn(&mut serde_json::Value);
    let forgeries: [(&str, Forgery); 13] = [
        ("speedup_curve[3].pretrain_simulated_speedup", |r| {
            r["speedup_curve"][3]["pretrain_simulated_speedup"] = (-5.0).into()
        }),
        ("speedup_curve[2].total_theoretical_speedup", |r| {
            r["speedup_curve"][2]["total_theoretical_speedup"] = 1e3.into()
        }),
        ("speedup_curve[1].sparsity", |r| {
            r["speedup_curve"][1]["sparsity"] = 0.0.into()
        }),
        ("runs[1].run_sparsity", |r| {
            r["runs"][1]["run_sparsity"] = 5.into()
        }),
        ("runs[1].phases[0].simulated_speedup", |r| {
            r["runs"][1]["phases"][0]["simulated_speedup"] = (-5.0).into()
        }),
        ("runs[2].total.theoretical_speedup", |r| {
            r["runs"][2]["total"]["theoretical_speedup"] = 1e300.into()
        }),
        ("version", |r| r["version"] = "0.0.1".into()),
        ("runs[0].run_sparsity", |r| {
            r["runs"][0]["run_sparsity"] = 0.5.into()
        }),
        ("runs[2].run_sparsity", |r| {
            r["runs"][2]["run_sparsity"] = 0.5.into()
        }),
        // A report of the field names before schema version 2 (or after a later one).
        ("schema_version", |r| r["schema_version"] = 1.into()),
        ("cycles", |r| r["runs"][1]["total"]["cycles"] = (-3).into()),
        ("runs[1].phases[0].seconds", |r| {
            r["runs"][1]["phases"][0]["seconds"] = (-1.0).into()
        }),
        ("runs[2].total.pe_utilization_mean", |r| {
            r["runs"][2]["total"]["pe_utilization_mean"] = 2.0.into()
        }),
    ];
    for (field, forge) in forgeries {
        let mut forged = report.clone();
        forge(&mut forged);
        let (code, err, input) = plot("forged.json", &forged);
        assert_eq!(code, 2, "{field}: {err}");
        assert!(
            err.contains(&input.display().to_string()) && err.contains(field),
            "{field}: {err}"
        );
        assert!(!picture.exists(), "{field}: drawn");
    }
}

#[test]
fn plot_heatmap_refuses_counters_of_runs_train_never_makes() {
    // A run at sparsity 5 (or NaN, or a second dense run) was drawn, titled "sparsity 5".
    let dir = folder("forged-counters");
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
    let (code, _, err) = crate::common::run_cli(&args);
    assert_eq!(code, 0, "{err}");
    let real = out.join("counters.npz");
    let file = wafersim::report::CountersFile::read(&real).unwrap();
    let picture = dir.join("map.png");
    for (run, sparsity) in [(1, 5.0), (1, f64::NAN), (1, 0.0), (0, 0.5), (2, 0.5)] {
        let mut forged = file.clone();
        forged.runs[run].sparsity = sparsity;
        let path = dir.join("forged.npz");
        forged.write(&path).unwrap();
        let args = [
            "plot",
            "heatmap",
            path.to_str().unwrap(),
            "-o",
            picture.to_str().unwrap(),
        ];
        let (code, _, err) = crate::common::run_cli(&args);
        assert_eq!(code, 2, "run {run} at {sparsity}: {err}");
        assert!(err.contains(path.to_str().unwrap()), "{err}");
        assert!(!picture.exists());
    }
}
