//! Built-in fabrics and models: the TOML files of `fabric/` and `models/`, embedded in the binary
//! so that `wafersim train` works from any folder. A name that is not built in is read as a path.

use std::path::Path;

use super::{parse_toml, FabricSpec, ModelSpec};
use crate::error::{Error, Result};

const FABRICS: &[(&str, &str)] = &[
    ("wse2", include_str!("../../fabric/wse2.toml")),
    ("wse3", include_str!("../../fabric/wse3.toml")),
    ("mini", include_str!("../../fabric/mini.toml")),
];

const MODELS: &[(&str, &str)] = &[
    (
        "mediswift-med",
        include_str!("../../models/mediswift-med.toml"),
    ),
    (
        "mediswift-large",
        include_str!("../../models/mediswift-large.toml"),
    ),
    (
        "mediswift-xl",
        include_str!("../../models/mediswift-xl.toml"),
    ),
    ("gpt-tiny", include_str!("../../models/gpt-tiny.toml")),
];

/// Names and TOML texts of the built-in fabrics.
pub fn builtin_fabrics() -> &'static [(&'static str, &'static str)] {
    FABRICS
}

/// Names and TOML texts of the built-in models.
pub fn builtin_models() -> &'static [(&'static str, &'static str)] {
    MODELS
}

/// Loads a fabric by built-in name or path, parsed and validated.
pub fn load_fabric(name_or_path: &str) -> Result<FabricSpec> {
    let (origin, text) = resolve("fabric", name_or_path, FABRICS)?;
    let spec: FabricSpec = parse_toml(&origin, &text)?;
    spec.validate(&origin)?;
    Ok(spec)
}

/// Loads a model by built-in name or path, parsed and validated.
pub fn load_model(name_or_path: &str) -> Result<ModelSpec> {
    let (origin, text) = resolve("model", name_or_path, MODELS)?;
    let spec: ModelSpec = parse_toml(&origin, &text)?;
    spec.validate(&origin)?;
    Ok(spec)
}

/// The TOML text of a model (built-in name or path) and what messages call it, unparsed: for
/// tools that edit a model before loading it, like a sweep's overrides.
pub fn model_text(name_or_path: &str) -> Result<(String, String)> {
    resolve("model", name_or_path, MODELS)
}

/// Finds the text of a spec: a built-in name first, then a file path. Returns (origin, text),
/// where origin is what messages call the file.
fn resolve(kind: &str, name_or_path: &str, builtins: &[(&str, &str)]) -> Result<(String, String)> {
    if let Some((name, text)) = builtins.iter().find(|(name, _)| *name == name_or_path) {
        let folder = if kind == "fabric" { "fabric" } else { "models" };
        return Ok((format!("{folder}/{name}.toml (built-in)"), text.to_string()));
    }
    let path = Path::new(name_or_path);
    let names: Vec<&str> = builtins.iter().map(|(n, _)| *n).collect();
    let looks_like_path = name_or_path.ends_with(".toml") || name_or_path.contains(['/', '\\']);
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((name_or_path.to_string(), text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !looks_like_path => {
            Err(Error::input(format!(
                "unknown {kind} '{name_or_path}': not a built-in {kind} ({}) and no such file",
                names.join(", ")
            )))
        }
        Err(e) => Err(Error::input(format!(
            "{kind} file '{name_or_path}': cannot be read: {e} (built-in {kind}s: {})",
            names.join(", ")
        ))),
    }
}
