//! Two baselines compared: every figure that moved, whether beyond the tolerance, and every case
//! or figure one of them lacks.

use serde::Serialize;

use super::baseline::{Baseline, FigureMap};
use super::flatten::Figure;
use crate::error::{Error, Result};

/// The default tolerance: a relative change of 0.5%.
pub const DEFAULT_TOLERANCE: &str = "0.5%";

/// Parses a tolerance written as a percentage (`0.5%`, `0%`), into a ratio (0.005). A bare
/// number is refused: `0.5` could mean 0.5% or 50%.
pub fn parse_tolerance(text: &str) -> Result<f64> {
    let bad = |why: &str| {
        Error::Input(format!(
            "--tolerance '{text}': {why}; give a relative tolerance as a percentage of at \
             least 0, e.g. 0.5% (0% means figures must match exactly)"
        ))
    };
    let Some(number) = text.trim().strip_suffix('%') else {
        return Err(bad("not a percentage (no % sign)"));
    };
    let percent: f64 = number.trim().parse().map_err(|_| bad("not a number"))?;
    if !percent.is_finite() || percent < 0.0 {
        return Err(bad("negative or not finite"));
    }
    Ok(percent / 100.0)
}

/// Which file a case, a figure or a spec hash comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Base,
    New,
}

/// A figure that differs between the two baselines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    pub case: String,
    pub field: String,
    pub old: Figure,
    pub new: Figure,
    /// (new − old) / |old| in percent; none when old is 0.
    pub change_percent: Option<f64>,
    /// A host figure: shown, never compared.
    pub host: bool,
    pub beyond_tolerance: bool,
}

/// A case, or a figure of a case present in both, that only one baseline has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Missing {
    pub case: String,
    /// None: the whole case.
    pub field: Option<String>,
    /// The baseline that lacks it.
    pub missing_from: Side,
}

/// A case whose model or fabric file changed (by its SHA-256): not a failure in itself, the
/// figures say what it moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpecChanged {
    pub case: String,
    pub spec: &'static str,
    pub old_sha256: String,
    pub new_sha256: String,
}

/// A case whose command line differs between the baselines (the suite was edited): its figures
/// are another run's, so the note comes with them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandChanged {
    pub case: String,
    pub old: String,
    pub new: String,
}

/// Where a baseline came from, for the header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    pub file: String,
    pub suite: String,
    pub wafersim_version: String,
    pub wafersim_commit: String,
    pub timing_model_version: u32,
    pub host_seconds: f64,
}

impl Origin {
    fn of(file: &str, baseline: &Baseline) -> Origin {
        Origin {
            file: file.to_string(),
            suite: baseline.suite.clone(),
            wafersim_version: baseline.wafersim_version.clone(),
            wafersim_commit: baseline.wafersim_commit.clone(),
            timing_model_version: baseline.timing_model_version,
            host_seconds: baseline.host.host_seconds,
        }
    }
}

/// The `compare --json` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub version: &'static str,
    pub base: Origin,
    pub new: Origin,
    pub tolerance_percent: f64,
    /// Figures of the simulated machine found in both baselines.
    pub figures_compared: usize,
    pub figures_beyond_tolerance: usize,
    /// Whether nothing fails: no figure beyond the tolerance, nothing missing.
    pub passed: bool,
    pub moved: Vec<Moved>,
    pub missing: Vec<Missing>,
    pub specs_changed: Vec<SpecChanged>,
    pub commands_changed: Vec<CommandChanged>,
}

/// Compares `new` against `base` (each with the file it was read from) at `tolerance`, a ratio:
/// a figure fails when |new − old| > tolerance × |old| (a change from 0 always).
pub fn compare(base: (&str, &Baseline), new: (&str, &Baseline), tolerance: f64) -> Comparison {
    let (base_file, base) = base;
    let (new_file, new) = new;
    let mut comparison = Comparison {
        version: crate::VERSION,
        base: Origin::of(base_file, base),
        new: Origin::of(new_file, new),
        tolerance_percent: tolerance * 100.0,
        figures_compared: 0,
        figures_beyond_tolerance: 0,
        passed: true,
        moved: Vec::new(),
        missing: Vec::new(),
        specs_changed: Vec::new(),
        commands_changed: Vec::new(),
    };
    for old_case in &base.cases {
        let Some(new_case) = new.cases.iter().find(|c| c.name == old_case.name) else {
            comparison.missing.push(Missing {
                case: old_case.name.clone(),
                field: None,
                missing_from: Side::New,
            });
            continue;
        };
        let host = |b: &Baseline| {
            b.host
                .cases
                .iter()
                .find(|c| c.name == old_case.name)
                .map(|c| c.figures.clone())
                .unwrap_or_default()
        };
        let case = &old_case.name;
        if old_case.command != new_case.command {
            comparison.commands_changed.push(CommandChanged {
                case: case.clone(),
                old: old_case.command.clone(),
                new: new_case.command.clone(),
            });
        }
        comparison.figures_compared += compare_figures(
            &mut comparison,
            case,
            (&old_case.figures, &new_case.figures),
            (false, tolerance),
        );
        compare_figures(
            &mut comparison,
            case,
            (&host(base), &host(new)),
            (true, 0.0),
        );
        let hashes = [
            ("model", &old_case.model_sha256, &new_case.model_sha256),
            (
                "fabric",
                &Some(old_case.fabric_sha256.clone()),
                &Some(new_case.fabric_sha256.clone()),
            ),
        ];
        for (spec, old, new) in hashes {
            if old != new {
                comparison.specs_changed.push(SpecChanged {
                    case: case.clone(),
                    spec,
                    old_sha256: old.clone().unwrap_or_default(),
                    new_sha256: new.clone().unwrap_or_default(),
                });
            }
        }
    }
    for new_case in &new.cases {
        if !base.cases.iter().any(|c| c.name == new_case.name) {
            comparison.missing.push(Missing {
                case: new_case.name.clone(),
                field: None,
                missing_from: Side::Base,
            });
        }
    }
    comparison.figures_beyond_tolerance = comparison
        .moved
        .iter()
        .filter(|m| m.beyond_tolerance)
        .count();
    // A host figure one side lacks (a report that gained a timing) fails nothing.
    let missing_compared = comparison.missing.iter().any(|m| {
        !m.field
            .as_deref()
            .is_some_and(super::baseline::is_host_figure)
    });
    comparison.passed = comparison.figures_beyond_tolerance == 0 && !missing_compared;
    comparison
}

/// Adds the moved and missing figures of one case's `(old, new)` maps; `(host, tolerance)`: host
/// figures are shown and never beyond the tolerance. Returns how many figures both have.
fn compare_figures(
    comparison: &mut Comparison,
    case: &str,
    (old, new): (&FigureMap, &FigureMap),
    (host, tolerance): (bool, f64),
) -> usize {
    let mut both = 0;
    for (field, old_figure) in &old.0 {
        let Some(new_figure) = new.get(field) else {
            comparison.missing.push(Missing {
                case: case.to_string(),
                field: Some(field.clone()),
                missing_from: Side::New,
            });
            continue;
        };
        both += 1;
        let change = old_figure.relative_change(new_figure);
        if change == 0.0 {
            continue;
        }
        let falls = match (*old_figure, new_figure) {
            (Figure::Int(a), Figure::Int(b)) => b < a,
            (a, b) => b.as_f64() < a.as_f64(),
        };
        comparison.moved.push(Moved {
            case: case.to_string(),
            field: field.clone(),
            old: *old_figure,
            new: new_figure,
            change_percent: change.is_finite().then(|| {
                if falls {
                    -100.0 * change
                } else {
                    100.0 * change
                }
            }),
            host,
            beyond_tolerance: !host && change > tolerance,
        });
    }
    for (field, _) in &new.0 {
        if old.get(field).is_none() {
            comparison.missing.push(Missing {
                case: case.to_string(),
                field: Some(field.clone()),
                missing_from: Side::Base,
            });
        }
    }
    both
}
