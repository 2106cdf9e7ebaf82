//! Specs: the fabric, the model and its training recipe, read from TOML.
//!
//! Architecture Invariant: specs are plain data. Parsing rejects unknown and missing keys
//! (`deny_unknown_fields`), and `validate()` rejects values outside their allowed range with a
//! message naming the file, the key, the value and what is allowed. Nothing downstream re-checks.

mod builtin;
mod fabric;
mod model;
mod validate;

pub use builtin::{builtin_fabrics, builtin_models, load_fabric, load_model};
pub use fabric::{ClockSpec, FabricSpec, GeometrySpec, IoSpec, PeSpec, RouterSpec};
pub use model::{
    Architecture, FinetuneSpec, ModelSpec, Phase, PretrainSpec, Recipe, SoftpromptSpec, WeightKind,
};
pub use validate::Checker;

use crate::error::{Error, Result};

/// Parses a spec of type `T` from TOML text; `origin` names the file in messages.
pub fn parse_toml<T: serde::de::DeserializeOwned>(origin: &str, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| {
        // toml's message carries the line, the column and the offending key; keep it on one line.
        let message = e.message().trim().to_string();
        let place = e
            .span()
            .map(|span| {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!(" (line {line})")
            })
            .unwrap_or_default();
        Error::input(format!("{origin}{place}: {message}"))
    })
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
