//! `kernel`'s progress on stderr outside a terminal: a line at most every 30 s (here every
//! update: `WAFERSIM_PROGRESS_SECONDS=0`, the variable tests set) and one when the run is done;
//! nothing with `--quiet`; a bad interval refused before any file is written.

/// A GEMM of about 1.2 M events (18 progress updates) and 48,620 cycles (also traced by
/// `kernel_trace`).
pub(crate) const GEMM: [&str; 12] = [
    "kernel",
    "gemm",
    "--t",
    "512",
    "--k",
    "256",
    "--n",
    "256",
    "--sparsity",
    "0.5",
    "--region",
    "16x16",
];

/// Runs the binary with `extra` flags and the line interval `seconds` (unset: `None`), stderr
/// piped: (exit code, stdout, stderr).
fn run_piped(extra: &[&str], seconds: Option<&str>) -> (i32, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wafersim"));
    command.args(GEMM).args(extra);
    command.env_remove("WAFERSIM_PROGRESS_SECONDS");
    if let Some(seconds) = seconds {
        command.env("WAFERSIM_PROGRESS_SECONDS", seconds);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The cycle a progress line names: `wafersim kernel gemm: cycle 12,345 of about ...`.
fn cycle_of(line: &str) -> u64 {
    let rest = line.split("cycle ").nth(1).unwrap();
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .collect();
    number.replace(',', "").parse().unwrap()
}

#[test]
fn a_kernel_outside_a_terminal_logs_cycles_reached_and_when_it_is_done() {
    let (code, out, err) = run_piped(&["--json"], Some("0"));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let cycles = report["cycles"].as_u64().unwrap();
    let lines: Vec<&str> = err.lines().collect();
    let (done, ticks) = lines.split_last().unwrap();
    // A line per 65,536 events, each further on, against the cost model's cycles.
    assert!(ticks.len() >= 10, "{err}");
    let reached: Vec<u64> = ticks.iter().map(|l| cycle_of(l)).collect();
    assert!(reached.windows(2).all(|w| w[0] < w[1]), "{reached:?}");
    assert!(*reached.last().unwrap() <= cycles);
    let model = crate::common::run_json(&[&GEMM[..], &["--fidelity", "model"]].concat());
    let estimate = wafersim::report::thousands(model["cycles"].as_u64().unwrap().into());
    for line in ticks {
        assert!(line.starts_with("wafersim kernel gemm: cycle "), "{line}");
        assert!(line.contains(&format!(" of about {estimate} (")), "{line}");
        assert!(line.ends_with(" s"), "{line}");
    }
    let expected = format!(
        "wafersim kernel gemm: done, {} cycles, ",
        wafersim::report::thousands(cycles.into())
    );
    assert!(
        done.starts_with(&expected) && done.ends_with(" s"),
        "{done}"
    );
}

#[test]
fn a_short_kernel_logs_one_line_at_30_s_and_none_quiet() {
    let (code, _, err) = run_piped(&[], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("wafersim kernel gemm: done, 48,620 cycles, "),
        "{err}"
    );
    let (code, out, err) = run_piped(&["--quiet"], Some("0"));
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
}

#[test]
fn a_bad_line_interval_is_refused_before_anything_is_written() {
    let trace = std::env::temp_dir().join(format!("wafersim-progress-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&trace);
    let (code, _, err) = run_piped(&["--trace", trace.to_str().unwrap()], Some("soon"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("WAFERSIM_PROGRESS_SECONDS=\"soon\": expected whole seconds"),
        "{err}"
    );
    assert!(!trace.exists());
}
