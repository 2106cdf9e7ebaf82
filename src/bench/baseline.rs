//! A baseline: every figure of every case of a suite, as `wafersim bench --save` writes it and
//! `wafersim compare` reads it.
//!
//! The figures of the simulated machine come first and depend only on the suite, the specs and
//! wafersim's timing model; the host's (the simulator's own speed and work) are kept apart in
//! `host`, so two benches of one suite on one commit are byte-identical but for `host`.

use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::flatten::{Fields, Figure};
use crate::error::{Error, Result};

/// The version of the baseline format: bumped when a field of the file is added, renamed or
/// removed, so that `compare` refuses a file it would misread.
pub const SCHEMA_VERSION: u32 = 1;

/// The git commit wafersim was built from, or "unknown" (set by `build.rs`).
pub const COMMIT: &str = env!("WAFERSIM_COMMIT");

/// A baseline file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    pub schema_version: u32,
    pub suite: String,
    pub wafersim_version: String,
    pub wafersim_commit: String,
    pub timing_model_version: u32,
    pub seed: u64,
    /// The suite's `skip_fields`: report fields left out of the figures.
    pub skip_fields: Vec<String>,
    pub cases: Vec<CaseFigures>,
    pub host: HostFigures,
}

/// One case's figures of the simulated machine.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFigures {
    pub name: String,
    /// The command line the case stands for (`wafersim` left out), paths as the suite gives them.
    pub command: String,
    /// SHA-256 of the model file's bytes (none for a kernel).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub model_sha256: Option<String>,
    pub fabric_sha256: String,
    pub figures: FigureMap,
}

/// Figures of the host: never compared, only shown.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostFigures {
    /// The whole bench, wall-clock.
    pub host_seconds: f64,
    pub cases: Vec<HostCase>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCase {
    pub name: String,
    pub figures: FigureMap,
}

/// Dotted paths to figures, in report order: a JSON object in the file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FigureMap(pub Vec<(String, Figure)>);

impl FigureMap {
    pub fn get(&self, path: &str) -> Option<Figure> {
        self.0.iter().find(|(p, _)| p == path).map(|&(_, f)| f)
    }
}

impl Serialize for FigureMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (path, figure) in &self.0 {
            map.serialize_entry(path, figure)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FigureMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Fields(fields) = Fields::deserialize(deserializer)?;
        let mut figures: Vec<(String, Figure)> = Vec::with_capacity(fields.len());
        for (path, raw) in fields {
            let figure = Figure::parse(raw.get()).ok_or_else(|| {
                serde::de::Error::custom(format!("figure `{path}` = {} is not a number", raw.get()))
            })?;
            if figures.iter().any(|(p, _)| *p == path) {
                return Err(serde::de::Error::custom(format!(
                    "figure `{path}` is given twice"
                )));
            }
            figures.push((path, figure));
        }
        Ok(FigureMap(figures))
    }
}

impl Baseline {
    /// The baseline as its file holds it: pretty JSON, newline-terminated.
    pub fn to_json(&self) -> Result<String> {
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::Simulation(format!("cannot encode the baseline as JSON: {e}")))?;
        text.push('\n');
        Ok(text)
    }

    /// Reads the baseline at `path` (`flag` names it in messages): an unreadable file, another
    /// `schema_version` or a malformed document is bad input naming the file.
    pub fn read(flag: &str, path: &str) -> Result<Baseline> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Input(format!(
                "{flag} {path}: cannot read it ({e}); give a baseline that `wafersim bench \
                 --save` wrote"
            ))
        })?;
        Baseline::parse(flag, path, &text)
    }

    pub fn parse(flag: &str, path: &str, text: &str) -> Result<Baseline> {
        let bad = |why: String| Error::Input(format!("{flag} {path}: not a baseline: {why}"));
        #[derive(serde::Deserialize)]
        struct Version {
            schema_version: Option<serde_json::Value>,
        }
        let version: Version = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        match version.schema_version {
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) => {
                return Err(Error::Input(format!(
                    "{flag} {path}: `schema_version` = {v}, but this wafersim reads baselines \
                     of schema_version {SCHEMA_VERSION}; save it again with this wafersim \
                     (`wafersim bench SUITE --save NAME`)"
                )))
            }
            None => return Err(bad("no `schema_version` field".to_string())),
        }
        serde_json::from_str(text).map_err(|e| bad(e.to_string()))
    }
}

/// Whether the figure at `path` measures the host, not the simulated machine: its time
/// (`host_seconds`), rates per host second, and the engine's event count, which work on the
/// simulator changes without changing a simulated figure.
pub fn is_host_figure(path: &str) -> bool {
    let field = path.rsplit('.').next().unwrap_or(path);
    field == "host_seconds" || field.ends_with("_per_host_second") || field == "events"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_figures_are_named_by_their_last_field() {
        assert!(is_host_figure("host_seconds"));
        assert!(is_host_figure("runs.0.wavelet_hops_per_host_second"));
        assert!(is_host_figure("events"));
        assert!(!is_host_figure("host_seconds_total.cycles"));
        assert!(!is_host_figure("cycles"));
    }
}
