//! Specs: the fabric, the model and its training recipe, read from TOML.
//!
//! Architecture Invariant: specs are plain data. Parsing rejects unknown and missing keys
//! (`deny_unknown_fields`), and `validate()` rejects values outside their allowed range with a
//! message naming the file, the key, the value and what is allowed. Nothing downstream re-checks.

mod builtin;
mod dynamic;
mod fabric;
mod model;
mod validate;

pub use builtin::{
    builtin_fabrics, builtin_models, is_builtin_fabric, is_builtin_model, load_fabric, load_model,
    read_fabric, read_model, sha256_hex, sha256_hex_of, Provenance, SpecSources, SpecText, BUILTIN,
};
pub use dynamic::{
    check_fraction, DynamicMethod, DynamicSpec, DEFAULT_DROP_FRACTION, DEFAULT_END_FRACTION,
    DEFAULT_UPDATE_EVERY, MAX_MASK_UPDATES, MAX_UPDATE_EVERY,
};
pub use fabric::{
    ClockSpec, ClusterSpec, FabricSpec, GeometrySpec, IoSpec, Packing, PeSpec, RouterSpec,
};
pub use model::{
    Architecture, FinetuneSpec, Levels, ModelSpec, Phase, PretrainSpec, Recipe, SoftpromptSpec,
    WeightKind, PATTERN_SPARSITY_TOLERANCE,
};
/// The bounds a model's shape is held to, for other files that carry a shape (hardware cases).
pub(crate) use model::{MAX_BATCH, MAX_LAYERS, MAX_SEQ, MAX_WIDTH};
pub use validate::Checker;

use crate::error::{Error, Result};

/// Parses a spec of type `T` from TOML text; `origin` names the file in messages.
pub fn parse_toml<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim().replace('\n', " ");
        let place = e
            .span()
            .map(|span| describe_place(text, span.start))
            .unwrap_or_default();
        // A key the spec no longer has: say why, not only that it is unknown.
        let removed = fabric::REMOVED_KEYS.iter().find(|(key, _)| {
            message.starts_with("unknown field") && place.contains(&format!("key `{key}`"))
        });
        match removed {
            Some((key, why)) => Error::input(format!(
                "{origin}{place}: `{key}` is no longer a key ({why}): delete the line"
            )),
            None => Error::input(format!("{origin}{place}: {message}")),
        }
    })
}

/// " (line 9, key `architecture.layers`)": where in `text` the byte `offset` is, and the dotted
/// key of its line when it has one, so that a message names the key as the file spells it.
fn describe_place(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let line_number = text[..offset].matches('\n').count() + 1;
    let line = text.lines().nth(line_number - 1).unwrap_or_default();
    let before: Vec<&str> = text.lines().take(line_number).collect();
    let table = before.iter().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && !l.contains('='))
            .then(|| l.trim_matches(['[', ']', ' ']).to_string())
    });
    match line.split_once('=') {
        Some((key, _)) if !line.trim_start().starts_with('#') => {
            let key = key.trim();
            let dotted = match table {
                Some(t) if !t.is_empty() => format!("{t}.{key}"),
                _ => key.to_string(),
            };
            format!(" (line {line_number}, key `{dotted}`)")
        }
        _ => format!(" (line {line_number})"),
    }
}

/// A sparsity must lie in [0, 1): 1.0 would leave no weights at all.
pub fn check_sparsity(origin: &str, value: f64) -> Result<f64> {
    if value.is_finite() && (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(Error::input(format!(
            "{origin}: sparsity {value} is not allowed: it must be in [0, 1), e.g. 0.5 or 0.75"
        )))
    }
}

/// The runs a study of `sparsities` makes: dense first, then each sparsity above 0 once, in the
/// order given (a 0 is the dense run; a repeat would only redo a run and overwrite its files).
pub fn sparsity_levels(sparsities: &[f64]) -> Vec<f64> {
    let mut levels = vec![0.0];
    for &s in sparsities {
        if !levels.contains(&s) {
            levels.push(s);
        }
    }
    levels
}
