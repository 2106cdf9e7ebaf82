//! Draws sample pictures with made-up data and prints how long the full-wafer PNG took:
//! `cargo run --release --example plot_samples -- OUT_DIR`.

use std::path::Path;
use std::time::Instant;

use wafersim::report::plot::{heatmap, line_chart, Grid, HeatmapStyle, LineChart, Series};

/// A utilisation-like pattern: layer regions in horizontal bands, a busier centre, and ripples.
fn wafer_pattern(width: usize, height: usize) -> Vec<f64> {
    let mut values = Vec::with_capacity(width * height);
    for y in 0..height {
        for x in 0..width {
            let band = ((y * 8 / height) as f64 * 0.07) + 0.3;
            let dx = x as f64 / width as f64 - 0.5;
            let dy = y as f64 / height as f64 - 0.5;
            let centre = 0.35 * (-(dx * dx + dy * dy) * 6.0).exp();
            let ripple = 0.05 * ((x as f64 * 0.31).sin() * (y as f64 * 0.17).cos());
            values.push((band + centre + ripple).clamp(0.0, 1.0));
        }
    }
    values
}

fn main() -> wafersim::Result<()> {
    let out = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("wafersim-plots"));
    let out = Path::new(&out);
    std::fs::create_dir_all(out).map_err(|source| wafersim::Error::Io {
        path: out.display().to_string(),
        source,
    })?;

    let (w, h) = (750, 994);
    let wafer = Grid::new(w, h, wafer_pattern(w, h))?;
    let style = HeatmapStyle::new(
        "PE utilisation — mediswift-xl on wse2, pretrain, sparsity 0.75",
        "busy fraction",
        0.0,
        1.0,
    );
    for extension in ["png", "svg"] {
        // Several runs: the first pays for font registration; the machine may be shared.
        let mut ms: Vec<f64> = (0..10)
            .map(|_| {
                let start = Instant::now();
                heatmap(
                    &wafer,
                    &style,
                    &out.join(format!("utilisation.{extension}")),
                )?;
                Ok(start.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<wafersim::Result<_>>()?;
        let first = ms[0];
        ms.sort_by(f64::total_cmp);
        println!(
            "750 × 994 heatmap {extension}: first {first:.1} ms, min {:.1} ms, median {:.1} ms",
            ms[0], ms[5]
        );
    }

    let sram: Vec<f64> = wafer_pattern(w, h)
        .iter()
        .map(|v| (v * 49_152.0).round())
        .collect();
    let sram_style = HeatmapStyle::new(
        "SRAM use — mediswift-xl on wse2",
        "SRAM bytes",
        0.0,
        49_152.0,
    );
    heatmap(&Grid::new(w, h, sram)?, &sram_style, &out.join("sram.png"))?;

    let (mw, mh) = (16, 12);
    let mini = Grid::new(
        mw,
        mh,
        (0..mw * mh).map(|i| (i % mw) as f64 / mw as f64).collect(),
    )?;
    let mini_style = HeatmapStyle::new(
        "PE utilisation — gpt-tiny on mini",
        "busy fraction",
        0.0,
        1.0,
    );
    heatmap(&mini, &mini_style, &out.join("mini.png"))?;
    heatmap(&mini, &mini_style, &out.join("mini.svg"))?;

    // A narrow region with a long title (the canvas widens) and data below vmin and above vmax.
    let (nw, nh) = (24, 300);
    let narrow: Vec<f64> = (0..nw * nh)
        .map(|i| (i / nw) as f64 / nh as f64 * 1.2 - 0.1)
        .collect();
    let narrow_style = HeatmapStyle::new(
        "Router stalls — one GEMM column of mediswift-xl, wavelet fidelity",
        "stall fraction",
        0.0,
        0.87,
    );
    heatmap(
        &Grid::new(nw, nh, narrow)?,
        &narrow_style,
        &out.join("narrow.png"),
    )?;

    let sparsities = [0.0, 0.25, 0.5, 0.625, 0.75, 0.8125, 0.875, 0.9];
    let curve = |f: &dyn Fn(f64) -> f64| sparsities.iter().map(|&s| (s, f(s))).collect::<Vec<_>>();
    let mut chart = LineChart::new(
        "Speedup over dense — mediswift-xl on wse2",
        "sparsity (fraction of weights zero)",
        "speedup over dense (×)",
    );
    chart.series = vec![
        Series::new("theoretical, pretrain", curve(&|s| 1.0 / (1.0 - 0.9 * s))),
        Series::new("simulated, pretrain", curve(&|s| 1.0 / (1.0 - 0.75 * s))),
        Series::new("theoretical, total", curve(&|s| 1.0 / (1.0 - 0.8 * s))),
        Series::new("simulated, total", curve(&|s| 1.0 / (1.0 - 0.6 * s))),
    ];
    chart.reference = Some(Series::ideal_speedup(0.9));
    line_chart(&chart, &out.join("speedup.png"))?;
    line_chart(&chart, &out.join("speedup.svg"))?;
    println!("pictures in {}", out.display());
    Ok(())
}
