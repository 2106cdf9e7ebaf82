//! The library's entry point for programs other than the command line (the Python module
//! `wafersim` is one): a command line's words in, the report the command prints with `--json`
//! out, computed by the very functions the command line calls, so the two cannot drift.
//!
//! ```
//! let args = wafersim::api::parse(["wafersim", "flops", "gpt-tiny", "--sparsity", "0.5"]).unwrap();
//! let output = wafersim::api::run(&args, &wafersim::api::Specs::default()).unwrap();
//! let report: serde_json::Value = serde_json::from_str(output.json()).unwrap();
//! assert_eq!(report["model"], "gpt-tiny");
//! ```
//!
//! Differences from the command line, each because a program asked, not a person: `train`
//! writes no file unless the arguments give `--out` (then exactly the command's files); a
//! report whose bound fails (`validate`) or whose figures moved (`compare`) is returned with
//! `passed` false instead of exiting 1; a model or fabric may be given as text ([`Specs`]).
//!
//! Architecture Invariant: nothing here simulates or builds a report; every arm calls what the
//! command's arm in `cli` calls.

use std::ffi::OsString;

use clap::Parser;

use crate::cli::{Args, Command, Trained};
use crate::error::{Error, Result};
use crate::spec::{read_fabric, read_model, SpecText};

/// A model or fabric given as TOML text instead of a name or path (a Python dict, say).
#[derive(Debug, Clone)]
pub struct InlineSpec {
    /// What messages and the report's `model_source` / `fabric_source` call it; the command
    /// line's MODEL or `--fabric` argument must say the same, so that messages naming the
    /// argument name this.
    pub origin: String,
    pub text: String,
}

impl InlineSpec {
    /// A spec from a JSON object (nested objects are TOML tables), as TOML text; refused, naming
    /// `origin`, if it is not an object or holds what TOML cannot (a null).
    pub fn from_json(origin: &str, json: &str) -> Result<InlineSpec> {
        let refuse = |why: String| {
            Error::Input(format!(
                "{origin}: not a spec: {why} (give a dict of the TOML file's tables and keys)"
            ))
        };
        let table: toml::Table = serde_json::from_str(json).map_err(|e| refuse(e.to_string()))?;
        let text = toml::to_string(&table).map_err(|e| refuse(e.to_string()))?;
        Ok(InlineSpec {
            origin: origin.to_string(),
            text,
        })
    }

    fn spec_text(&self) -> SpecText {
        SpecText::inline(&self.origin, self.text.clone())
    }
}

/// The specs given as text, which replace the model and fabric the arguments name; none by
/// default (the command line's case).
#[derive(Debug, Clone, Default)]
pub struct Specs {
    pub model: Option<InlineSpec>,
    pub fabric: Option<InlineSpec>,
}

impl Specs {
    /// The model and fabric texts: each given one, else the built-in or file `model` and
    /// `fabric` name.
    pub fn read(&self, model: &str, fabric: &str) -> Result<(SpecText, SpecText)> {
        let model = match &self.model {
            Some(inline) => inline.spec_text(),
            None => read_model(model)?,
        };
        let fabric = match &self.fabric {
            Some(inline) => inline.spec_text(),
            None => read_fabric(fabric)?,
        };
        Ok((model, fabric))
    }

    /// Refuses specs given as text to a command that reads no model (`what` says which).
    fn refuse_model(&self, what: &str) -> Result<()> {
        match &self.model {
            Some(m) => Err(Error::Input(format!("{}: {what} takes no model", m.origin))),
            None => Ok(()),
        }
    }

    /// Refuses specs given as text to a command that reads its fabric by name or path only.
    fn refuse_inline(&self, what: &str) -> Result<()> {
        self.refuse_model(what)?;
        match &self.fabric {
            Some(f) => Err(Error::Input(format!(
                "{}: {what} takes its fabric by built-in name or path, not as a dict",
                f.origin
            ))),
            None => Ok(()),
        }
    }
}

/// What a command gave.
pub enum Output {
    /// `train`: the run, whose report, CSVs and counters are read without writing a file.
    Train(Box<Trained>),
    /// Any other command: the JSON document it prints with `--json`.
    Report(String),
}

impl Output {
    /// The report as JSON: for `train`, report.json byte for byte.
    pub fn json(&self) -> &str {
        match self {
            Output::Train(trained) => &trained.report_json,
            Output::Report(json) => json,
        }
    }
}

/// Parses a command line (program name first) as `wafersim` does; a refusal is an
/// [`Error::Input`] holding the parser's message (its first paragraph, without "error: ").
pub fn parse(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> Result<Args> {
    Args::try_parse_from(args).map_err(|e| {
        let rendered = e.render().to_string();
        let first = rendered.split("\n\n").next().unwrap_or(&rendered).trim();
        Error::Input(first.strip_prefix("error: ").unwrap_or(first).to_string())
    })
}

/// Runs the command `args` parsed to, as its JSON report: `train`, `step`, `flops`, `kernel`,
/// `validate`, `compare` and `bench`. Tables are never rendered; files are written only where
/// the arguments ask (`train --out`, `step --heatmap`, `kernel --counters`, `bench --save`).
pub fn run(args: &Args, specs: &Specs) -> Result<Output> {
    // Every command renders its JSON document, never a table.
    let common = &crate::cli::Common {
        json: true,
        quiet: true,
        seed: args.common.seed,
    };
    let json = match &args.command {
        Command::Train(train) => {
            let inputs = crate::cli::train::TrainInputs::read(train, specs)?;
            let trained = match train.out {
                Some(_) => crate::cli::train::train_into(train, inputs, common.seed())?.0,
                None => Trained::simulate(inputs, train.systems, common.seed())?,
            };
            return Ok(Output::Train(Box::new(trained)));
        }
        Command::Step(step) => {
            let report = crate::cli::step_report(step, common, specs)?;
            crate::cli::render(common, &report, String::new)?
        }
        Command::Flops(flops) => {
            let report = crate::cli::flops_report(flops, common, specs)?;
            crate::cli::render(common, &report, String::new)?
        }
        Command::Kernel(kernel) => {
            specs.refuse_inline("kernel")?;
            let report = crate::cli::kernel::execute(kernel, common)?;
            crate::cli::render(common, &report, String::new)?
        }
        Command::Validate(validate) => {
            specs.refuse_inline("validate")?;
            crate::cli::validate_command(validate, common)?.0
        }
        Command::Compare(compare) => {
            specs.refuse_inline("compare")?;
            crate::cli::bench::compare(compare, common)?.0
        }
        Command::Bench(bench) => {
            specs.refuse_inline("bench")?;
            crate::cli::bench::bench(bench, common)?
        }
        other => {
            return Err(Error::Input(format!(
                "{}: not one of the library's commands (train, step, flops, kernel, validate, \
                 compare, bench); run it with the wafersim command",
                command_name(other)
            )))
        }
    };
    Ok(Output::Report(json))
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Train(_) => "train",
        Command::Flops(_) => "flops",
        Command::Inspect(_) => "inspect",
        Command::Step(_) => "step",
        Command::Kernel(_) => "kernel",
        Command::Sweep(_) => "sweep",
        Command::Merge(_) => "merge",
        Command::Validate(_) => "validate",
        Command::Plot(_) => "plot",
        Command::Bench(_) => "bench",
        Command::Compare(_) => "compare",
        Command::Schema(_) => "schema",
    }
}
