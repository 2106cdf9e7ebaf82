//! `wafersim bench` and `wafersim compare`: a suite's cases run through the calls their commands
//! make, their figures saved as a baseline, and two baselines compared.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::error::{ContextKind, ContextValue};
use clap::Parser;
use rayon::prelude::*;

use super::args::{BenchArgs, CompareArgs};
use super::{Args, Command, Common};
use crate::bench::baseline::{COMMIT, SCHEMA_VERSION};
use crate::bench::suite::{case_origin, key_of};
use crate::bench::{
    compare as compare_baselines, flatten, is_host_figure, parse_tolerance, render_markdown,
    render_table, Baseline, Case, CaseFigures, Comparison, FigureMap, HostCase, HostFigures, Suite,
};
use crate::error::{Error, Result};
use crate::report::{check_output_folder, create_folder, write_atomic, Table};
use crate::spec::{read_fabric, read_model};

/// A case ready to run: its command line parsed as the command line parses it, and the SHA-256
/// of its specs.
struct Ready<'a> {
    case: &'a Case,
    origin: String,
    args: Args,
    model_sha256: Option<String>,
    fabric_sha256: String,
}

/// What one case gave: its report's figures, the host's apart.
struct CaseRun {
    figures: CaseFigures,
    host: HostCase,
}

/// Runs the suite's cases (in parallel, results in suite order) and writes the baseline if
/// `--save` asks; returns the table, or the baseline itself with `--json`.
pub fn bench(args: &BenchArgs, common: &Common) -> Result<String> {
    let started = Instant::now();
    if let Some(seed) = common.seed {
        return Err(Error::Input(format!(
            "--seed {seed}: a suite's cases take the suite's seed ({}: `seed = N`, default 1), \
             not --seed",
            args.suite
        )));
    }
    let suite = Suite::read(&args.suite)?;
    let target = match &args.save {
        Some(name) => Some(saved_path(name, args.out.as_deref())?),
        None => None,
    };
    // Every case is parsed and its specs read before any runs: bad input fails at once.
    let ready = suite
        .cases
        .iter()
        .enumerate()
        .map(|(i, case)| prepare(&suite, i, case))
        .collect::<Result<Vec<_>>>()?;
    // Collected in suite order before errors are looked at, so a failing suite names its first
    // failing case, whichever thread finished first.
    let runs: Vec<Result<CaseRun>> = ready.par_iter().map(|r| run_case(&suite, r)).collect();
    let runs = runs.into_iter().collect::<Result<Vec<_>>>()?;
    let baseline = Baseline {
        schema_version: SCHEMA_VERSION,
        suite: suite.name.clone(),
        wafersim_version: crate::VERSION.to_string(),
        wafersim_commit: COMMIT.to_string(),
        timing_model_version: crate::TIMING_MODEL_VERSION,
        seed: suite.seed,
        skip_fields: suite.skip_fields.clone(),
        host: HostFigures {
            host_seconds: started.elapsed().as_secs_f64(),
            cases: runs.iter().map(|r| r.host.clone()).collect(),
        },
        cases: runs.into_iter().map(|r| r.figures).collect(),
    };
    let json = baseline.to_json()?;
    if let Some(path) = &target {
        create_folder(path.parent().unwrap_or(Path::new(".")))?;
        write_atomic(path, json.as_bytes())?;
    }
    if common.json {
        Ok(json)
    } else if common.quiet {
        Ok(String::new())
    } else {
        Ok(bench_table(&baseline, target.as_deref()))
    }
}

/// Where `--save NAME` writes: `NAME.json` in `out` (or the current folder), refused before any
/// work if NAME is not a plain name or the folder cannot take a file.
fn saved_path(name: &str, out: Option<&Path>) -> Result<PathBuf> {
    crate::spec::Checker { origin: "--save" }
        .name("NAME", name)
        .map_err(|e| Error::Input(format!("{e} (--save NAME writes NAME.json)")))?;
    let folder = out.unwrap_or(Path::new("."));
    let path = folder.join(format!("{name}.json"));
    if folder.is_dir() {
        crate::report::check_output_file("--save", &path)?;
    } else {
        check_output_folder("--out", folder)?;
    }
    Ok(path)
}

/// Case `index` parsed by the command line's own parser, its specs read: an error names the
/// suite, the case and the key.
fn prepare<'a>(suite: &Suite, index: usize, case: &'a Case) -> Result<Ready<'a>> {
    let origin = case_origin(&suite.origin, index, &case.name);
    let args = Args::try_parse_from(&case.argv).map_err(|e| clap_error(&origin, case, e))?;
    let in_case = |e: Error| within(&origin, e);
    let model_sha256 = match &case.model {
        Some(model) => {
            let text = read_model(model).map_err(in_case)?;
            text.model().map_err(in_case)?;
            Some(text.provenance.sha256)
        }
        None => None,
    };
    let fabric = read_fabric(&case.fabric).map_err(in_case)?;
    fabric.fabric().map_err(in_case)?;
    Ok(Ready {
        case,
        origin,
        args,
        model_sha256,
        fabric_sha256: fabric.provenance.sha256,
    })
}

/// Runs one case through its command's calls and flattens its report.
fn run_case(suite: &Suite, ready: &Ready) -> Result<CaseRun> {
    let started = Instant::now();
    let in_case = |e: Error| within(&ready.origin, e);
    let json = match &ready.args.command {
        Command::Train(train) => {
            super::train::train_report(train, ready.args.common.seed())
                .map_err(in_case)?
                .0
        }
        Command::Step(step) => to_json(
            &super::step_report(step, &ready.args.common, &Default::default()).map_err(in_case)?,
        )?,
        Command::Kernel(kernel) => {
            to_json(&super::kernel::execute(kernel, &ready.args.common).map_err(in_case)?)?
        }
        _ => unreachable!("a suite's cases are train, step or kernel (CaseCommand)"),
    };
    let flat = flatten(&json, &suite.skip_fields)
        .map_err(|e| Error::Simulation(format!("{}: the report is not JSON: {e}", ready.origin)))?;
    let (host, simulated): (Vec<_>, Vec<_>) =
        flat.into_iter().partition(|(path, _)| is_host_figure(path));
    let mut host = FigureMap(host);
    host.0.push((
        "bench.host_seconds".to_string(),
        crate::bench::Figure::Float(started.elapsed().as_secs_f64()),
    ));
    Ok(CaseRun {
        figures: CaseFigures {
            name: ready.case.name.clone(),
            command: ready.case.command_line.join(" "),
            model_sha256: ready.model_sha256.clone(),
            fabric_sha256: ready.fabric_sha256.clone(),
            figures: FigureMap(simulated),
        },
        host: HostCase {
            name: ready.case.name.clone(),
            figures: host,
        },
    })
}

fn to_json<T: serde::Serialize>(report: &T) -> Result<String> {
    serde_json::to_string(report)
        .map_err(|e| Error::Simulation(format!("cannot encode the report as JSON: {e}")))
}

/// `e` with the case it happened in named first.
fn within(origin: &str, e: Error) -> Error {
    match e {
        Error::Input(m) => Error::Input(format!("{origin}: {m}")),
        Error::Simulation(m) => Error::Simulation(format!("{origin}: {m}")),
        io => io,
    }
}

/// A case's command line refused by the parser, told as the suite's key: the flag `--head-dim`
/// is the key `head_dim`, the kernel's name the key `kernel`.
fn clap_error(origin: &str, case: &Case, e: clap::Error) -> Error {
    // The message up to clap's usage lines, on one line.
    let rendered = e.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let joined = lines.join(" ");
    let message = joined.strip_prefix("error: ").unwrap_or(&joined);
    let key = match (
        e.get(ContextKind::InvalidSubcommand),
        e.get(ContextKind::InvalidArg),
    ) {
        (Some(_), _) => Some("kernel".to_string()),
        (_, Some(ContextValue::String(flag))) => Some(key_of(flag)),
        (_, Some(ContextValue::Strings(flags))) => Some(
            flags
                .iter()
                .map(|f| key_of(f))
                .collect::<Vec<_>>()
                .join("`, `"),
        ),
        _ => None,
    };
    let help = format!(
        "the keys of a case are the flags of `wafersim {}` (see its --help), `head_dim` for \
         --head-dim",
        case.command_line[..1 + usize::from(case.command.name() == "kernel")].join(" ")
    );
    match key {
        Some(key) => Error::Input(format!("{origin}: key `{key}`: {message}; {help}")),
        None => Error::Input(format!("{origin}: {message}; {help}")),
    }
}

/// The cases run, their figure counts and host times, and where the baseline went.
fn bench_table(baseline: &Baseline, target: Option<&Path>) -> String {
    let mut table = Table::new(["case", "command", "figures", "cycles", "host s"]).left_aligned(2);
    for (case, host) in baseline.cases.iter().zip(&baseline.host.cases) {
        let cycles = case.figures.get("cycles").map(|f| f.to_string());
        let seconds = host.figures.get("bench.host_seconds").map(|f| f.as_f64());
        table.row([
            case.name.clone(),
            case.command.clone(),
            case.figures.0.len().to_string(),
            cycles.unwrap_or_else(|| "-".to_string()),
            format!("{:.2}", seconds.unwrap_or(0.0)),
        ]);
    }
    let figures: usize = baseline.cases.iter().map(|c| c.figures.0.len()).sum();
    let wrote = match target {
        Some(path) => format!("wrote {}", path.display()),
        None => "nothing written (--save NAME writes a baseline)".to_string(),
    };
    format!(
        "wafersim bench: suite {} ({} cases, seed {})\n\n{}\n{figures} figures; {wrote} in {:.2} s\n",
        baseline.suite,
        baseline.cases.len(),
        baseline.seed,
        table.render(),
        baseline.host.host_seconds
    )
}

/// Reads both baselines and compares them; returns what to print and the comparison (whose
/// `passed` decides the exit code).
pub fn compare(args: &CompareArgs, common: &Common) -> Result<(String, Comparison)> {
    if let Some(seed) = common.seed {
        return Err(Error::Input(format!(
            "--seed {seed}: compare runs nothing; each baseline records its suite's seed"
        )));
    }
    let tolerance = parse_tolerance(&args.tolerance)?;
    if common.json && args.markdown {
        return Err(Error::Input(
            "--markdown and --json: give one (the comparison as Markdown, or as JSON)".into(),
        ));
    }
    let base = Baseline::read("BASE", &args.base)?;
    let new = Baseline::read("NEW", &args.new)?;
    let comparison = compare_baselines((&args.base, &base), (&args.new, &new), tolerance);
    let text = if common.json {
        let mut text = serde_json::to_string_pretty(&comparison)
            .map_err(|e| Error::Simulation(format!("cannot encode the comparison as JSON: {e}")))?;
        text.push('\n');
        text
    } else if common.quiet {
        String::new()
    } else if args.markdown {
        render_markdown(&comparison)
    } else {
        render_table(&comparison)
    };
    Ok((text, comparison))
}
