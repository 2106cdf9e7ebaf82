//! Built-in fabrics and models: the TOML files of `fabric/` and `models/`, embedded in the binary
//! so that `wafersim train` works from any folder. A name that is not built in is read as a path.

use std::path::Path;

use serde::{Deserialize, Serialize};

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

/// Where a spec came from and a hash of the exact bytes read, as reports record it: two runs
/// with the same provenance read the same file, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// `builtin` for a spec embedded in the binary, else the path as given.
    pub source: String,
    /// SHA-256 of the TOML text read, 64 lowercase hex digits.
    pub sha256: String,
}

impl Provenance {
    pub fn is_builtin(&self) -> bool {
        self.source == BUILTIN
    }
}

/// What [`Provenance::source`] says for a spec embedded in the binary.
pub const BUILTIN: &str = "builtin";

/// A spec's TOML text as read, before parsing: what reports hash and `train` copies.
#[derive(Debug, Clone)]
pub struct SpecText {
    /// What messages call the file.
    pub origin: String,
    pub text: String,
    pub provenance: Provenance,
}

impl SpecText {
    /// The text as a fabric, parsed and validated.
    pub fn fabric(&self) -> Result<FabricSpec> {
        let spec: FabricSpec = parse_toml(&self.origin, &self.text)?;
        spec.validate(&self.origin)?;
        Ok(spec)
    }

    /// The text as a model, parsed and validated.
    pub fn model(&self) -> Result<ModelSpec> {
        let spec: ModelSpec = parse_toml(&self.origin, &self.text)?;
        spec.validate(&self.origin)?;
        Ok(spec)
    }

    /// A spec given as TOML text by a program rather than read from a file (the Python API's
    /// dicts): `origin` is what messages and the report's `*_source` call it.
    pub fn inline(origin: &str, text: String) -> SpecText {
        SpecText {
            origin: origin.to_string(),
            provenance: Provenance {
                source: origin.to_string(),
                sha256: sha256_hex(text.as_bytes()),
            },
            text,
        }
    }

    /// The name a default output folder uses for this spec: a built-in's name, or for a file the
    /// name it gives plus `+` and 8 hex digits of its hash. `+` is not allowed in a name, so a
    /// copy of a built-in that keeps its name never gets the built-in's folder, and two files
    /// with one name but different contents get two folders.
    pub fn folder_name(&self, name: &str) -> String {
        if self.provenance.is_builtin() {
            name.to_string()
        } else {
            format!("{name}+{}", &self.provenance.sha256[..8])
        }
    }
}

/// Where a run's model and fabric came from, as the train and step reports record them: two
/// reports with the same hashes were simulated from the same files, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SpecSources {
    /// `builtin`, or the model file's path as given.
    pub model_source: String,
    pub model_sha256: String,
    /// `builtin`, or the fabric file's path as given.
    pub fabric_source: String,
    pub fabric_sha256: String,
}

impl SpecSources {
    pub fn of(model: &SpecText, fabric: &SpecText) -> SpecSources {
        SpecSources {
            model_source: model.provenance.source.clone(),
            model_sha256: model.provenance.sha256.clone(),
            fabric_source: fabric.provenance.source.clone(),
            fabric_sha256: fabric.provenance.sha256.clone(),
        }
    }
}

/// SHA-256 of `bytes` as 64 lowercase hex digits: the stable content hash of specs and points.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

/// The SHA-256 of everything `reader` gives, read through a buffer (a file need not be held).
pub fn sha256_hex_of(mut reader: impl std::io::Read) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return Ok(hex(&hasher.finalize())),
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a fabric by built-in name or path, unparsed.
pub fn read_fabric(name_or_path: &str) -> Result<SpecText> {
    resolve("fabric", name_or_path, FABRICS)
}

/// Reads a model by built-in name or path, unparsed: for tools that edit a model before loading
/// it, like a sweep's overrides, and for reports that record where it came from.
pub fn read_model(name_or_path: &str) -> Result<SpecText> {
    resolve("model", name_or_path, MODELS)
}

/// Whether `name` is a built-in model's name (which a sweep spec keeps as a name, not a path).
pub fn is_builtin_model(name: &str) -> bool {
    MODELS.iter().any(|(n, _)| *n == name)
}

/// Whether `name` is a built-in fabric's name.
pub fn is_builtin_fabric(name: &str) -> bool {
    FABRICS.iter().any(|(n, _)| *n == name)
}

/// Loads a fabric by built-in name or path, parsed and validated.
pub fn load_fabric(name_or_path: &str) -> Result<FabricSpec> {
    read_fabric(name_or_path)?.fabric()
}

/// Loads a model by built-in name or path, parsed and validated.
pub fn load_model(name_or_path: &str) -> Result<ModelSpec> {
    read_model(name_or_path)?.model()
}

/// Finds the text of a spec: a built-in name first, then a file path.
fn resolve(kind: &str, name_or_path: &str, builtins: &[(&str, &str)]) -> Result<SpecText> {
    if let Some((name, text)) = builtins.iter().find(|(name, _)| *name == name_or_path) {
        let folder = if kind == "fabric" { "fabric" } else { "models" };
        return Ok(SpecText {
            origin: format!("{folder}/{name}.toml (built-in)"),
            text: text.to_string(),
            provenance: Provenance {
                source: BUILTIN.to_string(),
                sha256: sha256_hex(text.as_bytes()),
            },
        });
    }
    let path = Path::new(name_or_path);
    let names: Vec<&str> = builtins.iter().map(|(n, _)| *n).collect();
    let looks_like_path = name_or_path.ends_with(".toml") || name_or_path.contains(['/', '\\']);
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(SpecText {
            origin: name_or_path.to_string(),
            provenance: Provenance {
                source: name_or_path.to_string(),
                sha256: sha256_hex(text.as_bytes()),
            },
            text,
        }),
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
