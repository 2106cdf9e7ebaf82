//! Heatmap band labels: the rows and columns a full-wafer step's GEMM tiles leave, named from
//! the plan (the step's own ops and tiles), in SVG text a reader (and this test) can find.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::{run_cli, run_json, svg_texts};

fn folder(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-bands-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary folder");
    dir
}

/// Every text of an SVG, its lines joined by spaces (a wrapped label reads as one).
fn svg_text(path: &Path) -> String {
    svg_texts(path).join(" ")
}

/// "rows 0–936", "row 993": how a label names PEs `start..end`.
fn range(axis: &str, start: u64, end: u64) -> String {
    match end - start {
        1 => format!("{} {start}", axis.trim_end_matches('s')),
        _ => format!("{axis} {start}–{}", end - 1),
    }
}

/// The GEMM ops of a `step --json` that sit on a tile from the region's corner (attention
/// spreads over the region): (name without its layer, tile rows, tile columns).
fn tiled_ops(step: &serde_json::Value) -> Vec<(String, u64, u64)> {
    let ops = step["ops"].as_array().expect("ops");
    ops.iter()
        .filter(|op| !op["kind"].as_str().unwrap().starts_with("attn_"))
        .filter_map(|op| {
            let rows = op["tile_rows"].as_u64()?;
            let columns = op["tile_split_k"].as_u64()? * op["tile_split_n"].as_u64()?;
            let name = op["name"].as_str().unwrap();
            let short = match name.split_once('.') {
                Some((layer, rest)) if layer.starts_with("layer") => rest,
                _ => name,
            };
            Some((short.to_string(), rows, columns))
        })
        .collect()
}

#[test]
fn a_full_wafer_step_heatmap_labels_the_bands_its_tiles_leave() {
    let dir = folder("step");
    let svg = dir.join("step.svg");
    // Microbatches of one size: a step's op rows carry its first group's tiles, and a partial
    // last group (fewer tokens, shorter tiles) would cut bands the rows do not show.
    let step = run_json(&[
        "step",
        "mediswift-xl",
        "--sparsity",
        "0.75",
        "--microbatch",
        "32",
        "--heatmap",
        svg.to_str().unwrap(),
    ]);
    let fabric = run_json(&["inspect", "wse2"]);
    let geometry = &fabric["spec"]["geometry"];
    let height = geometry["region_height_pes"].as_u64().unwrap();
    let width = geometry["region_width_pes"].as_u64().unwrap();
    let ops = tiled_ops(&step);
    let text = svg_text(&svg);

    // Rows: cut where a tile ends; the first band holds every tile, the last none.
    let row_cuts: BTreeSet<u64> = ops.iter().map(|o| o.1).collect();
    let row_cuts: Vec<u64> = row_cuts.into_iter().collect();
    assert!(
        row_cuts.len() >= 2,
        "tiles of several heights: {row_cuts:?}"
    );
    let first = format!("{}: every GEMM tile", range("rows", 0, row_cuts[0]));
    assert!(text.contains(&first), "{first:?} in {text}");
    for pair in row_cuts.windows(2) {
        let label = range("rows", pair[0], pair[1]);
        assert!(text.contains(&format!("{label}: GEMM tiles")), "{label}");
    }
    let last = *row_cuts.last().unwrap();
    assert!(last < height, "the tiles leave rows free");
    let idle = format!("{}: no GEMM tile", range("rows", last, height));
    assert!(text.contains(&idle), "{idle:?} in {text}");
    // The shortest tiles are the LM head's, and the band below them says it lacks them.
    let shortest: BTreeSet<&str> = ops
        .iter()
        .filter(|o| o.1 == row_cuts[0])
        .map(|o| o.0.split('.').next().unwrap())
        .collect();
    assert_eq!(shortest, BTreeSet::from(["lm_head"]));
    let without = format!(
        "{}: GEMM tiles but lm_head",
        range("rows", row_cuts[0], row_cuts[1])
    );
    assert!(text.contains(&without), "{without:?} in {text}");

    // Columns: the same, the widest tiles (K over the whole row: the LM head's dgrad and the
    // GEMMs whose operand copies cost more than a wider reduction) alone at the edge.
    let column_cuts: BTreeSet<u64> = ops.iter().map(|o| o.2.min(width)).collect();
    let column_cuts: Vec<u64> = column_cuts.into_iter().collect();
    let first = format!("{}: every GEMM tile", range("columns", 0, column_cuts[0]));
    assert!(text.contains(&first), "{first:?} in {text}");
    let widest: BTreeSet<&str> = ops
        .iter()
        .filter(|o| o.2 == *column_cuts.last().unwrap())
        .map(|o| o.0.as_str())
        .collect();
    assert!(widest.contains("lm_head.dgrad"), "{widest:?}");
    let n = column_cuts.len();
    let edge = format!(
        "{}: GEMM tiles of ",
        range("columns", column_cuts[n - 2], column_cuts[n - 1])
    );
    let at = text
        .find(&edge)
        .unwrap_or_else(|| panic!("{edge:?} in {text}"));
    let label = &text[at + edge.len()..];
    let label = &label[..label.find(" only").expect("the edge band says only")];
    let named: BTreeSet<&str> = label.split(", ").collect();
    assert_eq!(named, widest, "{label}");
}

#[test]
fn a_step_whose_tiles_cover_the_region_draws_no_band_labels() {
    // gpt-tiny on mini: every GEMM tile spans the 16 x 16 PEs, one band a side, nothing to say.
    let dir = folder("tiny");
    let svg = dir.join("tiny.svg");
    let step = run_json(&[
        "step",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--heatmap",
        svg.to_str().unwrap(),
    ]);
    assert!(tiled_ops(&step).iter().all(|o| o.1 == 16 && o.2 == 16));
    let text = svg_text(&svg);
    assert!(
        !text.contains("rows 0") && !text.contains("columns 0"),
        "{text}"
    );
}

#[test]
fn train_labels_the_sram_bands_and_plot_redraws_them_byte_for_byte() {
    let dir = folder("train");
    let out = dir.join("xl");
    let (code, _, err) = run_cli(&["train", "--quiet", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // The dense pre-training step's microbatch tokens spread over the PE rows: the first
    // `tokens % rows` rows keep one token more.
    let step = run_json(&["step", "mediswift-xl"]);
    let tokens = step["microbatch_sequences"].as_u64().unwrap() * step["seq_len"].as_u64().unwrap();
    let rows = 994;
    let (each, cut) = (tokens / rows, tokens % rows);
    let text = svg_text(&out.join("heatmap-sram.svg"));
    for label in [
        format!(
            "{}: {} tokens' activations",
            range("rows", 0, cut),
            each + 1
        ),
        format!("{}: {each} tokens' activations", range("rows", cut, rows)),
    ] {
        assert!(text.contains(&label), "{label:?} in {text}");
    }
    // The labels travel in counters.npz: plot draws what train drew.
    for (kind, run, drawn) in [
        ("sram", "dense", "heatmap-sram"),
        ("utilization", "0.75", "heatmap-utilization-s0.75"),
        ("difference", "0.5", "heatmap-difference-s0.5"),
    ] {
        for extension in ["png", "svg"] {
            let redrawn = dir.join(format!("{drawn}.{extension}"));
            let (code, _, err) = run_cli(&[
                "plot",
                "heatmap",
                out.join("counters.npz").to_str().unwrap(),
                "--kind",
                kind,
                "--run",
                run,
                "-o",
                redrawn.to_str().unwrap(),
            ]);
            assert_eq!(code, 0, "{err}");
            let original = std::fs::read(out.join(format!("{drawn}.{extension}"))).unwrap();
            assert!(
                std::fs::read(&redrawn).unwrap() == original,
                "{drawn}.{extension}"
            );
        }
    }
    let utilization = svg_text(&out.join("heatmap-utilization-s0.75.svg"));
    assert!(utilization.contains("every GEMM tile"), "{utilization}");
}
