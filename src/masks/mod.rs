//! Masks read from files (`--masks PATH`): one boolean or 0/1 tensor per sparse weight, in a
//! safetensors file or a folder of `.npy` files, named as a PyTorch state dict names them.
//!
//! Three naming schemes are understood (each tensor's name may carry a `module.` or `model.`
//! prefix and ends in `.weight`, `.weight_mask` — what `torch.nn.utils.prune` names a mask — or
//! `.mask`, or nothing):
//!
//! | wafersim weight | wafersim name        | Hugging Face GPT-2 (`Conv1D`, `[in, out]`)      | Cerebras Model Zoo (`nn.Linear`, `[out, in]`)                     |
//! |-----------------|----------------------|-------------------------------------------------|-------------------------------------------------------------------|
//! | `q`, `k`, `v`   | `layer{L}.q` …       | `transformer.h.{L}.attn.c_attn` `[d, 3d]`: columns `0..d` Q, `d..2d` K, `2d..3d` V | `transformer_decoder.layers.{L}.self_attn.proj_{q,k,v}_dense_layer` |
//! | `attn_out`      | `layer{L}.attn_out`  | `transformer.h.{L}.attn.c_proj`                 | `transformer_decoder.layers.{L}.self_attn.proj_output_dense_layer` |
//! | `ffn_up`        | `layer{L}.ffn_up`    | `transformer.h.{L}.mlp.c_fc`                    | `transformer_decoder.layers.{L}.ffn.ffn.0.linear_layer`           |
//! | `ffn_down`      | `layer{L}.ffn_down`  | `transformer.h.{L}.mlp.c_proj`                  | `transformer_decoder.layers.{L}.ffn.ffn.1.linear_layer`           |
//!
//! wafersim's own names and Hugging Face's are `[in, out]` (inputs × outputs, wafersim's
//! `K × N`); Model Zoo's are `nn.Linear` weights, `[out, in]`, and are transposed on reading. The
//! fused `c_attn` splits along its outputs as the Model Zoo's own converter does
//! (`torch.chunk` into Q, K, V; Cerebras/modelzoo@a0c0616,
//! `src/cerebras/modelzoo/tools/checkpoint_converters/gpt2_hf_cs.py`). Tensors of other names
//! (embeddings, biases, LayerNorms, the LM head) are not masks and are skipped.
//!
//! Architecture Invariant: everything a file can get wrong is refused here, naming the file and
//! the tensor; what leaves this module is a mask per sparse weight of the model, of its shape.

mod tensor;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::sparsity::{Mask, PeColumnCounts};
use crate::spec::{ModelSpec, WeightKind};
use rayon::prelude::*;
use tensor::{Layout, Tensor};

/// Counts a cost model asked for: (layer, weight, transposed, C_k, C_n).
type CountsKey = (u64, WeightKind, bool, usize, usize);
/// Per-PE counts taken, by what was asked.
type CountsMemo = Mutex<HashMap<CountsKey, Arc<PeColumnCounts>>>;
/// Masks transposed, by (layer, weight).
type TransposesMemo = Mutex<HashMap<(u64, WeightKind), Arc<Mask>>>;

/// A mask per sparse weight of a model, read from a file.
pub struct MaskSet {
    /// The path as the user gave it.
    pub source: String,
    /// SHA-256 of the file (a folder: of each `.npy` file's name and SHA-256, in name order).
    pub sha256: String,
    /// `[K inputs × N outputs]`, by (layer, weight).
    masks: Arc<BTreeMap<(u64, WeightKind), Mask>>,
    /// Per-PE counts already taken, kept for the set's life: a plan prices the same tiles more
    /// than once, and a phase plans its last, smaller batch on the same tiles.
    counts: Arc<CountsMemo>,
    /// The masks' transposes, as [`MaskSet::counts`] took them.
    transposes: Arc<TransposesMemo>,
    /// Whether the cost models price GEMMs by the masks' counts ([`MaskSet::counts`]); the
    /// mapper's search does not ([`MaskSet::unpriced`]).
    priced: bool,
}

impl std::fmt::Debug for MaskSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskSet")
            .field("source", &self.source)
            .field("sha256", &self.sha256)
            .field("weights", &self.masks.len())
            .finish()
    }
}

/// Two mask sets are one when their files are.
impl PartialEq for MaskSet {
    fn eq(&self, other: &Self) -> bool {
        self.sha256 == other.sha256
    }
}

impl MaskSet {
    /// Reads `path` (a `.safetensors` file or a folder of `.npy` files) for `model`: a mask for
    /// every weight its recipe sparsifies in every layer, of that weight's shape, each entry
    /// zero or one. Refused, naming the file and tensor: a missing weight, a wrong shape or
    /// dtype, another value, a weight twice, a layer the model does not have, a mask on a weight
    /// the recipe keeps dense.
    pub fn read(path: &str, model: &ModelSpec) -> Result<MaskSet> {
        let p = Path::new(path);
        let (tensors, sha256) = if p.is_dir() {
            tensor::read_npy_folder(path)?
        } else if p.is_file() {
            tensor::read_safetensors(path)?
        } else {
            return Err(Error::Input(format!(
                "{path}: no such file or folder (a .safetensors file or a folder of .npy \
                 files, one 0/1 tensor per sparse weight)"
            )));
        };
        Self::from_tensors(path, sha256, tensors, model)
    }

    /// The masks of `tensors` (named as in the module docs) for `model`, checked as [`read`].
    fn from_tensors(
        path: &str,
        sha256: String,
        tensors: Vec<Tensor>,
        model: &ModelSpec,
    ) -> Result<MaskSet> {
        let arch = &model.architecture;
        let sparse = &model.recipe.sparse_weights;
        let mut masks = BTreeMap::new();
        // Which tensor each weight came from, for a duplicate's error.
        let mut origin: BTreeMap<(u64, WeightKind), String> = BTreeMap::new();
        // The masks to build: tensor, weight, shape and where the weight's entries are.
        let mut jobs = Vec::new();
        for tensor in &tensors {
            let Some(name) = WeightName::parse(&tensor.name) else {
                continue;
            };
            let at =
                |what: String| Error::Input(format!("{path}: tensor `{}`: {what}", tensor.name));
            if name.layer >= arch.layers {
                return Err(at(format!(
                    "layer {} but {} has {} layers (0 to {})",
                    name.layer,
                    model.name,
                    arch.layers,
                    arch.layers - 1
                )));
            }
            let parts = name.parts();
            let (k, n) = parts[0].shape(arch);
            let expected = name.scheme.shape(parts.len() as u64, k, n);
            if tensor.shape != expected {
                return Err(at(format!(
                    "shape {:?}, but {}'s {} is {:?} ({})",
                    tensor.shape,
                    model.name,
                    parts
                        .iter()
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                    expected,
                    name.scheme.layout()
                )));
            }
            for (i, &kind) in parts.iter().enumerate() {
                if !sparse.contains(&kind) {
                    return Err(at(format!(
                        "a mask for layer {} {}, which {}'s recipe keeps dense (its \
                         `recipe.sparse_weights`: {})",
                        name.layer,
                        kind.name(),
                        model.name,
                        sparse
                            .iter()
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                if let Some(first) = origin.insert((name.layer, kind), tensor.name.clone()) {
                    return Err(at(format!(
                        "layer {} {} is masked twice (also by `{first}`)",
                        name.layer,
                        kind.name()
                    )));
                }
                let layout = match name.scheme {
                    Scheme::Wafersim | Scheme::HuggingFace => Layout::Rows {
                        offset: i * n as usize,
                    },
                    Scheme::ModelZoo => Layout::Transposed,
                };
                jobs.push((tensor, (name.layer, kind), (k as usize, n as usize), layout));
            }
        }
        // Every tensor checked: now their masks, in parallel (each packs one tensor's bytes);
        // the first refusal in file order is the one reported.
        let built: Vec<_> = jobs
            .par_iter()
            .map(|(tensor, _, (k, n), layout)| tensor.mask(*k, *n, *layout))
            .collect();
        for ((tensor, weight, _, _), mask) in jobs.iter().zip(built) {
            let mask = mask.map_err(|what| {
                Error::Input(format!("{path}: tensor `{}`: {what}", tensor.name))
            })?;
            masks.insert(*weight, mask);
        }
        for layer in 0..arch.layers {
            for &kind in sparse {
                if !masks.contains_key(&(layer, kind)) {
                    let scheme = origin
                        .values()
                        .find_map(|t| WeightName::parse(t))
                        .map_or(Scheme::Wafersim, |n| n.scheme);
                    return Err(Error::Input(format!(
                        "{path}: no mask for layer {layer} {} of {} (tensor `{}`; {} tensors \
                         read, {} of them masks)",
                        kind.name(),
                        model.name,
                        scheme.name_of(layer, kind),
                        tensors.len(),
                        origin.len()
                    )));
                }
            }
        }
        Ok(MaskSet {
            source: path.to_string(),
            sha256,
            masks: Arc::new(masks),
            counts: Arc::default(),
            transposes: Arc::default(),
            priced: true,
        })
    }

    /// The masks at `path` for `model` (named `model_name`), refused as no run could use them:
    /// a recipe that masks no weight, masks that drop every weight or keep every one. `named`:
    /// how the user gave the path, for errors (`--masks PATH`, a sweep spec's key).
    pub fn read_for(
        model: &ModelSpec,
        model_name: &str,
        named: &str,
        path: &str,
    ) -> Result<MaskSet> {
        if model.recipe.sparse_weights.is_empty() {
            return Err(Error::Input(format!(
                "{named}: {model_name}'s recipe masks no weight (`recipe.sparse_weights` is empty)"
            )));
        }
        let masks = MaskSet::read(path, model).map_err(|e| match e {
            // The file's own errors (each starts with the path), named as the user gave it.
            Error::Input(why) => {
                let why = why.strip_prefix(&format!("{path}: ")).unwrap_or(&why);
                Error::Input(format!("{named}: {why}"))
            }
            e => e,
        })?;
        if masks.nonzeros() == 0 {
            return Err(Error::Input(format!(
                "{named}: every mask drops every weight (sparsity 1); a sparsity is below 1"
            )));
        }
        if masks.nonzeros() == masks.elements() {
            return Err(Error::Input(format!(
                "{named}: every mask keeps every weight (sparsity 0); run dense without masks"
            )));
        }
        Ok(masks)
    }

    /// Puts the masks in `model`'s recipe: they replace its pattern and levels.
    pub fn install(self: Arc<Self>, model: &mut ModelSpec) {
        model.recipe.pattern = crate::sparsity::Pattern::Random;
        model.recipe.levels = crate::spec::Levels::Uniform;
        model.recipe.masks = Some(self);
    }

    /// The same masks, for counting non-zeros only: [`MaskSet::counts`] gives none. What the
    /// mapper searches candidate plans with (pricing every layer's GEMMs by counts on every
    /// candidate's tiles would take minutes and gigabytes at full scale).
    pub fn unpriced(&self) -> MaskSet {
        MaskSet {
            source: self.source.clone(),
            sha256: self.sha256.clone(),
            masks: Arc::clone(&self.masks),
            counts: Arc::clone(&self.counts),
            transposes: Arc::clone(&self.transposes),
            priced: false,
        }
    }

    /// The same masks (and transposes) with counts of their own: what one run of a sweep takes,
    /// so that the counts its tiles took go with it.
    pub fn for_run(&self) -> MaskSet {
        MaskSet {
            source: self.source.clone(),
            sha256: self.sha256.clone(),
            masks: Arc::clone(&self.masks),
            counts: Arc::default(),
            transposes: Arc::clone(&self.transposes),
            priced: self.priced,
        }
    }

    /// Whether GEMMs on these masks are priced by their per-PE counts.
    pub fn priced(&self) -> bool {
        self.priced
    }

    /// The mask of `layer`'s `kind` weight, `K × N`.
    pub fn get(&self, layer: u64, kind: WeightKind) -> Option<&Mask> {
        self.masks.get(&(layer, kind))
    }

    /// Masked weights.
    pub fn len(&self) -> usize {
        self.masks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.masks.is_empty()
    }

    /// Kept entries over all masks.
    pub fn nonzeros(&self) -> u64 {
        self.masks.values().map(Mask::nonzeros).sum()
    }

    /// Entries over all masks.
    pub fn elements(&self) -> u64 {
        self.masks
            .values()
            .map(|m| (m.rows() * m.cols()) as u64)
            .sum()
    }

    /// The masks' mean sparsity: 1 − kept entries ÷ entries, over all of them.
    pub fn sparsity(&self) -> f64 {
        1.0 - self.nonzeros() as f64 / self.elements().max(1) as f64
    }

    /// [`Mask::pe_column_counts`] of `layer`'s `kind` weight, remembered; `None` when unpriced.
    pub fn counts(
        &self,
        layer: u64,
        kind: WeightKind,
        transposed: bool,
        (c_k, c_n): (usize, usize),
    ) -> Option<Arc<PeColumnCounts>> {
        if !self.priced {
            return None;
        }
        let mask = self.get(layer, kind)?;
        let key = (layer, kind, transposed, c_k, c_n);
        if let Some(known) = self.counts.lock().expect("not poisoned").get(&key) {
            return Some(Arc::clone(known));
        }
        let counts = Arc::new(match transposed {
            true => mask.pe_column_counts(true, c_k, c_n),
            // The forward stream's output lines are the weight's columns: counted as the rows of
            // its transpose, taken once per weight (a weight's forward is priced on more than
            // one tile, and again for a phase's last batch).
            false => {
                let known = self
                    .transposes
                    .lock()
                    .expect("not poisoned")
                    .get(&(layer, kind))
                    .cloned();
                let t = known.unwrap_or_else(|| {
                    let t = Arc::new(mask.transposed());
                    let mut memo = self.transposes.lock().expect("not poisoned");
                    Arc::clone(memo.entry((layer, kind)).or_insert(t))
                });
                t.pe_column_counts(true, c_k, c_n)
            }
        });
        let mut memo = self.counts.lock().expect("not poisoned");
        Some(Arc::clone(memo.entry(key).or_insert(counts)))
    }
}

/// How a file names and lays out its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `layer{L}.{q,k,v,attn_out,ffn_up,ffn_down}`, `[in, out]`.
    Wafersim,
    /// Hugging Face GPT-2: `Conv1D` weights, `[in, out]`; Q, K and V fused in `c_attn`.
    HuggingFace,
    /// Cerebras Model Zoo GPT-2/GPT-3: `nn.Linear` weights, `[out, in]`.
    ModelZoo,
}

impl Scheme {
    /// The tensor shape of `parts` weights of `k × n` fused along their outputs.
    fn shape(self, parts: u64, k: u64, n: u64) -> Vec<usize> {
        match self {
            Scheme::Wafersim | Scheme::HuggingFace => vec![k as usize, (parts * n) as usize],
            Scheme::ModelZoo => vec![n as usize, k as usize],
        }
    }

    fn layout(self) -> &'static str {
        match self {
            Scheme::Wafersim => "[inputs, outputs]",
            Scheme::HuggingFace => "Hugging Face Conv1D, [inputs, outputs]",
            Scheme::ModelZoo => "Model Zoo nn.Linear, [outputs, inputs]",
        }
    }

    /// The tensor that holds `layer`'s `kind` weight.
    fn name_of(self, layer: u64, kind: WeightKind) -> String {
        match self {
            Scheme::Wafersim => format!("layer{layer}.{}", kind.name()),
            Scheme::HuggingFace => {
                let module = match kind {
                    WeightKind::Q | WeightKind::K | WeightKind::V => "attn.c_attn",
                    WeightKind::AttnOut => "attn.c_proj",
                    WeightKind::FfnUp => "mlp.c_fc",
                    WeightKind::FfnDown => "mlp.c_proj",
                };
                format!("transformer.h.{layer}.{module}.weight")
            }
            Scheme::ModelZoo => {
                let module = match kind {
                    WeightKind::Q => "self_attn.proj_q_dense_layer",
                    WeightKind::K => "self_attn.proj_k_dense_layer",
                    WeightKind::V => "self_attn.proj_v_dense_layer",
                    WeightKind::AttnOut => "self_attn.proj_output_dense_layer",
                    WeightKind::FfnUp => "ffn.ffn.0.linear_layer",
                    WeightKind::FfnDown => "ffn.ffn.1.linear_layer",
                };
                format!("transformer_decoder.layers.{layer}.{module}.weight")
            }
        }
    }
}

/// A tensor name resolved to the weight (or, for `c_attn`, the weights) it masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WeightName {
    scheme: Scheme,
    layer: u64,
    /// `None`: Hugging Face's fused `c_attn` (Q, K, V).
    kind: Option<WeightKind>,
}

impl WeightName {
    /// `None` for a name that masks no transformer weight (embeddings, biases, LayerNorms, …).
    fn parse(name: &str) -> Option<WeightName> {
        let mut rest = name;
        for suffix in [".weight_mask", ".weight", ".mask"] {
            if let Some(stem) = rest.strip_suffix(suffix) {
                rest = stem;
                break;
            }
        }
        for prefix in ["module.", "model."] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        let parts: Vec<&str> = rest.split('.').collect();
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let named = |scheme, layer, kind| {
            Some(WeightName {
                scheme,
                layer,
                kind,
            })
        };
        match parts.as_slice() {
            [layer, kind] if layer.starts_with("layer") => {
                let layer = number(&layer["layer".len()..])?;
                let kind = WeightKind::ALL.into_iter().find(|k| k.name() == *kind)?;
                named(Scheme::Wafersim, layer, Some(kind))
            }
            ["transformer", "h", layer, module, part] | ["h", layer, module, part] => {
                let kind = match (*module, *part) {
                    ("attn", "c_attn") => None,
                    ("attn", "c_proj") => Some(WeightKind::AttnOut),
                    ("mlp", "c_fc") => Some(WeightKind::FfnUp),
                    ("mlp", "c_proj") => Some(WeightKind::FfnDown),
                    _ => return None,
                };
                named(Scheme::HuggingFace, number(layer)?, kind)
            }
            ["transformer_decoder", "layers", layer, tail @ ..] => {
                let kind = match tail {
                    ["self_attn", "proj_q_dense_layer"] => WeightKind::Q,
                    ["self_attn", "proj_k_dense_layer"] => WeightKind::K,
                    ["self_attn", "proj_v_dense_layer"] => WeightKind::V,
                    ["self_attn", "proj_output_dense_layer"] => WeightKind::AttnOut,
                    ["ffn", "ffn", "0", "linear_layer"] => WeightKind::FfnUp,
                    ["ffn", "ffn", "1", "linear_layer"] => WeightKind::FfnDown,
                    _ => return None,
                };
                named(Scheme::ModelZoo, number(layer)?, Some(kind))
            }
            _ => None,
        }
    }

    /// The weights the tensor holds, side by side along its outputs.
    fn parts(&self) -> Vec<WeightKind> {
        match self.kind {
            Some(kind) => vec![kind],
            None => vec![WeightKind::Q, WeightKind::K, WeightKind::V],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scheme_names_every_weight_and_parses_back() {
        for scheme in [Scheme::Wafersim, Scheme::HuggingFace, Scheme::ModelZoo] {
            for kind in WeightKind::ALL {
                let name = scheme.name_of(7, kind);
                let parsed = WeightName::parse(&name).unwrap_or_else(|| panic!("{name}"));
                assert_eq!((parsed.scheme, parsed.layer), (scheme, 7), "{name}");
                assert!(parsed.parts().contains(&kind), "{name}");
            }
        }
        for skipped in [
            "transformer.wte.weight",
            "transformer.h.0.ln_1.weight",
            "transformer.h.0.attn.c_attn.bias",
            "lm_head.weight",
            "transformer_decoder.layers.0.norm1.weight",
            "layerx.q",
        ] {
            assert_eq!(WeightName::parse(skipped), None, "{skipped}");
        }
        let pruned = WeightName::parse("module.transformer.h.3.mlp.c_fc.weight_mask").unwrap();
        assert_eq!(pruned.kind, Some(WeightKind::FfnUp));
        assert_eq!(pruned.layer, 3);
    }
}
