//! A benchmark suite: a TOML list of `train`, `step` and `kernel` cases, each turned into the
//! command line it stands for, so that a case takes exactly the flags, defaults and checks of
//! its command.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::spec::{is_builtin_fabric, is_builtin_model, parse_toml};

/// The longest case name: a table column, not a paragraph.
const CASE_NAME_MAX_CHARS: usize = 80;

/// A suite as its TOML file gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// The suite's name, recorded in its baselines.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The seed of every case (`--seed`).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Report fields left out of every case's figures, as dotted paths: a path and everything
    /// under it (`ops` leaves out a step's per-op figures).
    #[serde(default)]
    pub skip_fields: Vec<String>,
    #[serde(rename = "case")]
    pub cases: Vec<CaseSpec>,
}

fn default_seed() -> u64 {
    1
}

/// What a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseCommand {
    Train,
    Step,
    Kernel,
}

impl CaseCommand {
    pub fn name(self) -> &'static str {
        match self {
            CaseCommand::Train => "train",
            CaseCommand::Step => "step",
            CaseCommand::Kernel => "kernel",
        }
    }
}

/// A sparsity: one for `step` and `kernel`, one or a list for `train`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sparsity {
    One(f64),
    Many(Vec<f64>),
}

/// One case: its command and that command's flags, each key named as the flag is (`head_dim`
/// is `--head-dim`); a key its command does not take is refused, as the command line refuses
/// the flag.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    pub name: String,
    pub command: CaseCommand,
    /// `train` and `step`: a built-in model or a path (from the suite's folder).
    pub model: Option<String>,
    /// A built-in fabric or a path (from the suite's folder).
    pub fabric: Option<String>,
    /// `kernel`: which one (gemm, attention, reduce, allreduce, broadcast, layernorm, ...).
    pub kernel: Option<String>,
    pub sparsity: Option<Sparsity>,
    pub phase: Option<String>,
    pub systems: Option<u64>,
    pub microbatch: Option<u64>,
    pub activations: Option<String>,
    pub fidelity: Option<String>,
    pub t: Option<u64>,
    pub k: Option<u64>,
    pub n: Option<u64>,
    pub region: Option<String>,
    pub split: Option<String>,
    pub form: Option<String>,
    pub pes: Option<u64>,
    pub wavelets: Option<u64>,
    pub algo: Option<String>,
    pub axis: Option<String>,
    pub seq: Option<u64>,
    pub head_dim: Option<u64>,
    pub products: Option<u64>,
    pub pass: Option<String>,
    pub op: Option<String>,
    pub rows: Option<u64>,
    pub cols: Option<u64>,
}

/// A case resolved into its command line.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub command: CaseCommand,
    /// The command line as the suite writes it (paths as given), without `wafersim`: what a
    /// baseline records and a user can rerun from the suite's folder.
    pub command_line: Vec<String>,
    /// The same with paths taken from the suite's folder, `--seed` and `--quiet`: what runs.
    pub argv: Vec<String>,
    /// The model and fabric as run: a built-in name or a path.
    pub model: Option<String>,
    pub fabric: String,
}

/// A suite read and checked: its cases resolved into command lines.
#[derive(Debug, Clone)]
pub struct Suite {
    /// What messages call the suite file.
    pub origin: String,
    pub name: String,
    pub seed: u64,
    pub skip_fields: Vec<String>,
    pub cases: Vec<Case>,
}

impl Suite {
    /// Reads and checks the suite at `path`: an unreadable file, an unknown or missing key, a
    /// bad value or a repeated case name is bad input naming the file, the case and the key.
    pub fn read(path: &str) -> Result<Suite> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Input(format!(
                "benchmark suite {path}: cannot read it ({e}); give a suite TOML file"
            ))
        })?;
        let file: SuiteFile = parse_toml(path, &text)?;
        let checker = crate::spec::Checker { origin: path };
        checker.name("name", &file.name)?;
        if file.cases.is_empty() {
            return Err(Error::Input(format!(
                "{path}: no [[case]]: a suite lists at least one case"
            )));
        }
        let folder = Path::new(path).parent().unwrap_or(Path::new(""));
        let mut cases: Vec<Case> = Vec::new();
        for (i, spec) in file.cases.iter().enumerate() {
            let case = resolve_case(path, folder, i, spec, file.seed)?;
            if cases.iter().any(|c| c.name == case.name) {
                return Err(Error::Input(format!(
                    "{path}: case {} `name` = {:?}: another case has this name; each case \
                     needs its own",
                    i + 1,
                    case.name
                )));
            }
            cases.push(case);
        }
        Ok(Suite {
            origin: path.to_string(),
            name: file.name,
            seed: file.seed,
            skip_fields: file.skip_fields,
            cases,
        })
    }
}

/// What messages call case `index` (0-based) of the suite at `origin`.
pub fn case_origin(origin: &str, index: usize, name: &str) -> String {
    format!("{origin}: case {} ({name:?})", index + 1)
}

fn resolve_case(
    origin: &str,
    folder: &Path,
    index: usize,
    spec: &CaseSpec,
    seed: u64,
) -> Result<Case> {
    let at = case_origin(origin, index, &spec.name);
    check_case_name(&at, &spec.name)?;
    check_keys(&at, spec)?;
    let kernel = spec.command == CaseCommand::Kernel;
    let fabric = spec.fabric.clone().unwrap_or_else(|| "wse2".to_string());
    let model = (!kernel).then(|| {
        spec.model
            .clone()
            .unwrap_or_else(|| "mediswift-xl".to_string())
    });
    let line = |model: Option<&String>, fabric: &str| {
        let mut line = vec![spec.command.name().to_string()];
        line.extend(spec.kernel.clone());
        line.extend(model.cloned());
        line.extend(flags(spec, fabric).into_iter().flat_map(|(f, v)| [f, v]));
        line
    };
    let command_line = line(model.as_ref(), &fabric);
    let model_path = model.map(|m| crate::sweep::entry_path(folder, &m, is_builtin_model));
    let fabric_path = crate::sweep::entry_path(folder, &fabric, is_builtin_fabric);
    let mut argv: Vec<String> = ["wafersim", "--quiet", "--seed", &seed.to_string()]
        .map(String::from)
        .to_vec();
    argv.extend(line(model_path.as_ref(), &fabric_path));
    Ok(Case {
        name: spec.name.clone(),
        command: spec.command,
        command_line,
        argv,
        model: model_path,
        fabric: fabric_path,
    })
}

/// Refuses what the command line could not tell apart: a model for a kernel, a kernel for
/// anything else, and a text value that would be read as a flag.
fn check_keys(at: &str, spec: &CaseSpec) -> Result<()> {
    let kernel = spec.command == CaseCommand::Kernel;
    let refuse = |key: &str, why: &str| Err(Error::Input(format!("{at}: key `{key}`: {why}")));
    match (kernel, &spec.model, &spec.kernel) {
        (true, Some(_), _) => return refuse("model", "a kernel case has no model; drop it"),
        (true, _, None) => {
            return refuse(
                "kernel",
                "missing: which kernel (gemm, attention, reduce, ...)",
            )
        }
        (false, _, Some(_)) => {
            return refuse(
                "kernel",
                "only a `command = \"kernel\"` case names a kernel",
            )
        }
        _ => {}
    }
    // A text value is an argument of the command line: one starting with '-' would be read
    // as a flag (`model = "--json"` would run the default model).
    let texts = [
        ("model", &spec.model),
        ("fabric", &spec.fabric),
        ("kernel", &spec.kernel),
    ];
    let flag_texts = flags(spec, "").into_iter();
    for (key, value) in texts
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), v.clone())))
        .chain(flag_texts.map(|(flag, v)| (key_of(&flag), v)))
    {
        if value.starts_with('-') && value.parse::<f64>().is_err() {
            return refuse(&key, &format!("{value:?} starts with '-': not a value"));
        }
    }
    Ok(())
}

/// A case's name is a table cell and a Markdown cell: letters, digits and `. _ - / + =`.
fn check_case_name(at: &str, name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-/+=".contains(c);
    if name.is_empty() || name.len() > CASE_NAME_MAX_CHARS || !name.chars().all(allowed) {
        return Err(Error::Input(format!(
            "{at}: key `name` = {name:?} is not allowed: must be 1 to {CASE_NAME_MAX_CHARS} of \
             the letters A-Z a-z, digits 0-9 and '.', '_', '-', '/', '+', '='"
        )));
    }
    Ok(())
}

/// The flags a case's keys stand for, in a fixed order (the fabric first, always given).
fn flags(spec: &CaseSpec, fabric: &str) -> Vec<(String, String)> {
    let sparsity = spec.sparsity.as_ref().map(|s| match s {
        Sparsity::One(v) => v.to_string(),
        Sparsity::Many(vs) => vs.iter().map(f64::to_string).collect::<Vec<_>>().join(","),
    });
    let number = |v: Option<u64>| v.map(|v| v.to_string());
    let keyed: [(&str, Option<String>); 24] = [
        ("fabric", Some(fabric.to_string())),
        ("phase", spec.phase.clone()),
        ("sparsity", sparsity),
        ("systems", number(spec.systems)),
        ("microbatch", number(spec.microbatch)),
        ("activations", spec.activations.clone()),
        ("fidelity", spec.fidelity.clone()),
        ("t", number(spec.t)),
        ("k", number(spec.k)),
        ("n", number(spec.n)),
        ("seq", number(spec.seq)),
        ("head_dim", number(spec.head_dim)),
        ("products", number(spec.products)),
        ("rows", number(spec.rows)),
        ("cols", number(spec.cols)),
        ("pes", number(spec.pes)),
        ("wavelets", number(spec.wavelets)),
        ("region", spec.region.clone()),
        ("split", spec.split.clone()),
        ("form", spec.form.clone()),
        ("pass", spec.pass.clone()),
        ("op", spec.op.clone()),
        ("algo", spec.algo.clone()),
        ("axis", spec.axis.clone()),
    ];
    keyed
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (flag_of(key), v)))
        .collect()
}

/// The command-line flag a case key stands for: `head_dim` is `--head-dim`.
pub fn flag_of(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// The case key a command-line flag stands for: `--head-dim <HEAD_DIM>` is `head_dim`,
/// `[MODEL]` is `model`.
pub fn key_of(flag: &str) -> String {
    let flag = flag.split_whitespace().next().unwrap_or(flag);
    let bare = flag
        .trim_start_matches('-')
        .trim_matches(['[', ']', '<', '>']);
    bare.to_ascii_lowercase().replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_flags_map_both_ways() {
        assert_eq!(flag_of("head_dim"), "--head-dim");
        assert_eq!(key_of("--head-dim <HEAD_DIM>"), "head_dim");
        assert_eq!(key_of("[MODEL]"), "model");
        assert_eq!(key_of("--t"), "t");
    }
}
