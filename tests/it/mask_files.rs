//! Masks read from files (`--masks`, issue 17 item 1): the same masks written in each naming
//! scheme and format read back bit for bit; a step on them executes their non-zeros exactly and
//! costs what its layers' own counts say; the engine runs a file's mask as the one it drew from
//! the same seed; and every kind of bad file is refused naming the file and tensor.

use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use wafersim::engine::kernels::gemm::{
    run_gemm_plan, run_gemm_with, GemmConfig, GemmForm, GemmLayout, GemmPlan,
};
use wafersim::masks::MaskSet;
use wafersim::sparsity::{Mask, Pattern};
use wafersim::spec::{read_fabric, read_model, ModelSpec, WeightKind};

use crate::common::{exact, run_cli, run_json};

const SPARSITY: f64 = 0.75;

fn gpt_tiny() -> ModelSpec {
    read_model("gpt-tiny").unwrap().model().unwrap()
}

/// The seed layer `layer`'s `kind` weight is drawn from.
fn seed_of(layer: u64, kind: WeightKind) -> u64 {
    100 * layer + WeightKind::ALL.iter().position(|&k| k == kind).unwrap() as u64
}

/// gpt-tiny's masks: each weight random at 75%, from its own seed (`seed_of`), or `shaped`'s.
fn masks(
    model: &ModelSpec,
    shaped: impl Fn(usize, usize, u64) -> Mask,
) -> Vec<(u64, WeightKind, Mask)> {
    let mut out = Vec::new();
    for layer in 0..model.architecture.layers {
        for kind in WeightKind::ALL {
            let (k, n) = kind.shape(&model.architecture);
            out.push((
                layer,
                kind,
                shaped(k as usize, n as usize, seed_of(layer, kind)),
            ));
        }
    }
    out
}

fn random(k: usize, n: usize, seed: u64) -> Mask {
    Mask::from_pattern(k, n, Pattern::Random, SPARSITY, seed)
}

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wafersim-masks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `rows × cols` elements, row-major, of `dtype` (U8, F32 or BOOL), 1 where `kept`.
fn elements(
    dtype: Dtype,
    rows: usize,
    cols: usize,
    kept: impl Fn(usize, usize) -> bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    for r in 0..rows {
        for c in 0..cols {
            let on = kept(r, c);
            match dtype {
                Dtype::F32 => out.extend_from_slice(&(if on { 1.0f32 } else { 0.0 }).to_le_bytes()),
                _ => out.push(u8::from(on)),
            }
        }
    }
    out
}

/// A safetensors file of `(name, shape, bytes)` tensors of `dtype`.
fn write_safetensors(path: &Path, dtype: Dtype, tensors: &[(String, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            (
                name.clone(),
                TensorView::new(dtype, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// A version 1.0 `.npy` file of `descr` elements.
fn write_npy(path: &Path, descr: &str, shape: &[usize], fortran: bool, bytes: &[u8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': ({},), }}",
        if fortran { "True" } else { "False" },
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytes);
    std::fs::write(path, out).unwrap();
}

/// wafersim's names, `[in, out]`, U8: the tensors of a safetensors file.
fn wafersim_tensors(masks: &[(u64, WeightKind, Mask)]) -> Vec<(String, Vec<usize>, Vec<u8>)> {
    masks
        .iter()
        .map(|(layer, kind, m)| {
            let bytes = elements(Dtype::U8, m.rows(), m.cols(), |r, c| m.get(r, c));
            (
                format!("layer{layer}.{}", kind.name()),
                vec![m.rows(), m.cols()],
                bytes,
            )
        })
        .collect()
}

/// gpt-tiny's random masks at 75% in one safetensors file at `path` (for other modules' tests).
pub(crate) fn write_tiny_random_masks(path: &Path) {
    write_wafersim(path, &masks(&gpt_tiny(), random));
}

/// wafersim's names, `[in, out]`, U8, in one safetensors file.
fn write_wafersim(path: &Path, masks: &[(u64, WeightKind, Mask)]) {
    write_safetensors(path, Dtype::U8, &wafersim_tensors(masks));
}

/// Hugging Face GPT-2's names, F32: Conv1D `[in, out]`, Q, K and V side by side in `c_attn`;
/// plus a bias and an embedding that are no masks.
fn write_hugging_face(path: &Path, model: &ModelSpec, masks: &[(u64, WeightKind, Mask)]) {
    let get = |layer: u64, kind: WeightKind| {
        &masks
            .iter()
            .find(|m| m.0 == layer && m.1 == kind)
            .unwrap()
            .2
    };
    let d = model.architecture.d_model as usize;
    let mut tensors = Vec::new();
    for layer in 0..model.architecture.layers {
        let fused = elements(Dtype::F32, d, 3 * d, |r, c| {
            let kind = [WeightKind::Q, WeightKind::K, WeightKind::V][c / d];
            get(layer, kind).get(r, c % d)
        });
        tensors.push((
            format!("transformer.h.{layer}.attn.c_attn.weight"),
            vec![d, 3 * d],
            fused,
        ));
        for (module, kind) in [
            ("attn.c_proj", WeightKind::AttnOut),
            ("mlp.c_fc", WeightKind::FfnUp),
            ("mlp.c_proj", WeightKind::FfnDown),
        ] {
            let m = get(layer, kind);
            let bytes = elements(Dtype::F32, m.rows(), m.cols(), |r, c| m.get(r, c));
            tensors.push((
                format!("transformer.h.{layer}.{module}.weight"),
                vec![m.rows(), m.cols()],
                bytes,
            ));
        }
        tensors.push((
            format!("transformer.h.{layer}.attn.c_attn.bias"),
            vec![3 * d],
            vec![0; 12 * d],
        ));
    }
    tensors.push(("transformer.wte.weight".into(), vec![2, 2], vec![0x40; 16]));
    write_safetensors(path, Dtype::F32, &tensors);
}

/// The Cerebras Model Zoo's names, `nn.Linear` `[out, in]`, one `.npy` of bools each; the
/// attention output in Fortran order.
fn write_model_zoo(dir: &Path, masks: &[(u64, WeightKind, Mask)]) {
    for (layer, kind, m) in masks {
        let module = match kind {
            WeightKind::Q => "self_attn.proj_q_dense_layer",
            WeightKind::K => "self_attn.proj_k_dense_layer",
            WeightKind::V => "self_attn.proj_v_dense_layer",
            WeightKind::AttnOut => "self_attn.proj_output_dense_layer",
            WeightKind::FfnUp => "ffn.ffn.0.linear_layer",
            WeightKind::FfnDown => "ffn.ffn.1.linear_layer",
        };
        let name = format!("model.transformer_decoder.layers.{layer}.{module}.weight.npy");
        let (out, inp) = (m.cols(), m.rows());
        if *kind == WeightKind::AttnOut {
            // Fortran order: element [o, i] at i·out + o.
            let bytes = elements(Dtype::BOOL, inp, out, |i, o| m.get(i, o));
            write_npy(&dir.join(name), "|b1", &[out, inp], true, &bytes);
        } else {
            let bytes = elements(Dtype::BOOL, out, inp, |o, i| m.get(i, o));
            write_npy(&dir.join(name), "|b1", &[out, inp], false, &bytes);
        }
    }
}

#[test]
fn every_scheme_and_format_reads_back_the_masks_bit_for_bit() {
    let model = gpt_tiny();
    let written = masks(&model, random);
    let dir = folder("schemes");
    let (ours, hf, zoo) = (
        dir.join("ours.safetensors"),
        dir.join("hf.safetensors"),
        dir.join("zoo"),
    );
    std::fs::create_dir_all(&zoo).unwrap();
    write_wafersim(&ours, &written);
    write_hugging_face(&hf, &model, &written);
    write_model_zoo(&zoo, &written);
    for path in [&ours, &hf, &zoo] {
        let set = MaskSet::read(path.to_str().unwrap(), &model).unwrap();
        assert_eq!(set.len(), written.len(), "{}", path.display());
        for (layer, kind, mask) in &written {
            assert_eq!(
                set.get(*layer, *kind),
                Some(mask),
                "{} layer {layer} {kind:?}",
                path.display()
            );
        }
        assert!((set.sparsity() - SPARSITY).abs() < 1e-12);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_step_on_file_masks_executes_their_nonzeros_and_prices_each_layer_by_its_counts() {
    let model = gpt_tiny();
    let dir = folder("step");
    let (random_file, zoo, crowded) = (
        dir.join("random.safetensors"),
        dir.join("zoo"),
        dir.join("crowded.safetensors"),
    );
    std::fs::create_dir_all(&zoo).unwrap();
    let written = masks(&model, random);
    write_wafersim(&random_file, &written);
    write_model_zoo(&zoo, &written);
    // Every weight's non-zeros crowded into its first quarter of outputs: the same count as the
    // random masks, on a quarter of the PE columns.
    write_wafersim(
        &crowded,
        &masks(&model, |k, n, _| Mask::from_fn(k, n, |_, c| c < n / 4)),
    );
    let step = |path: &Path| run_json(&["step", "gpt-tiny", "--masks", path.to_str().unwrap()]);
    let (from_file, from_folder) = (step(&random_file), step(&zoo));
    let in_memory = run_json(&["step", "gpt-tiny", "--sparsity", "0.75"]);
    let crowded = step(&crowded);
    // Random masks keep exactly what `--sparsity 0.75` keeps, so the executed FLOPs agree
    // exactly; the file's formats do not matter.
    for key in ["flops_executed", "flops_dense"] {
        assert_eq!(exact(&from_file, key), exact(&in_memory, key), "{key}");
        assert_eq!(exact(&crowded, key), exact(&in_memory, key), "{key}");
    }
    assert_eq!(from_file["cycles"], from_folder["cycles"]);
    assert_eq!(from_file["masks_file"]["weights"], 12);
    assert_eq!(from_file["masks_file"]["sparsity"], 0.75);
    assert_eq!(from_file["sparsity"], 0.75);
    assert_ne!(
        from_file["masks_file"]["sha256"],
        from_folder["masks_file"]["sha256"]
    );
    assert!(in_memory.get("masks_file").is_none());
    // Crowded masks leave three PE columns in four idle on the sparse GEMMs that split the
    // outputs over PE columns: slower, and the mapper streams some of them dense instead
    // (zeros multiplied, but every column busy) where random masks ran sparse.
    let cycles = |report: &serde_json::Value| report["cycles"].as_u64().unwrap();
    assert!(
        cycles(&crowded) as f64 > 1.05 * cycles(&from_file) as f64,
        "crowded {} vs random {} cycles",
        cycles(&crowded),
        cycles(&from_file)
    );
    let format = |report: &serde_json::Value, op: &str| {
        let ops = report["ops"].as_array().unwrap();
        let op = ops.iter().find(|o| o["name"] == op).unwrap();
        op["weight_format"].as_str().unwrap().to_string()
    };
    assert_eq!(format(&from_file, "layer0.q.fwd"), "sparse");
    assert_eq!(format(&crowded, "layer0.q.fwd"), "dense");
    // Counted exactly, the random masks cost within 2% of their expected imbalance.
    let ratio = cycles(&from_file) as f64 / cycles(&in_memory) as f64;
    assert!((0.98..1.02).contains(&ratio), "{ratio}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_engine_runs_a_files_mask_as_the_one_it_draws_from_the_same_seed() {
    let model = gpt_tiny();
    let fabric = read_fabric("wse2").unwrap().fabric().unwrap();
    let dir = folder("engine");
    let path = dir.join("masks.safetensors");
    let written = masks(&model, random);
    write_wafersim(&path, &written);
    let set = MaskSet::read(path.to_str().unwrap(), &model).unwrap();
    let (layer, kind) = (1, WeightKind::FfnUp);
    let (k, n) = kind.shape(&model.architecture);
    for form in [GemmForm::Forward, GemmForm::Dgrad, GemmForm::Wgrad] {
        let cfg = GemmConfig {
            t: 64,
            k: k as usize,
            n: n as usize,
            sparsity: SPARSITY,
            pattern: Pattern::Random,
            region: (8, 8),
            split: None,
            seed: seed_of(layer, kind),
            form,
            values: false,
        };
        let drawn = run_gemm_with(&fabric, &cfg, &mut Default::default()).unwrap();
        let mask = set.get(layer, kind).unwrap().clone();
        let mask = if form == GemmForm::Dgrad {
            mask.transposed()
        } else {
            mask
        };
        let plan = GemmPlan {
            layout: GemmLayout::new(&fabric, &cfg).unwrap(),
            mask,
        };
        let read = run_gemm_plan(&fabric, plan, &cfg, &mut Default::default()).unwrap();
        assert_eq!(
            read.plan.nonzeros_per_pe_column(),
            drawn.plan.nonzeros_per_pe_column(),
            "{form:?}"
        );
        let transposed = form == GemmForm::Dgrad;
        let split = (read.plan.ck as usize, read.plan.cn as usize);
        assert_eq!(
            *set.counts(layer, kind, transposed, split).unwrap(),
            drawn.plan.nonzeros_per_pe_column(),
            "{form:?}: the cost models' counts"
        );
        assert_eq!(read.output.cycles, drawn.output.cycles, "{form:?}");
        assert_eq!(read.output.counters, drawn.output.counters, "{form:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_mask_files_exit_2_naming_the_file_and_tensor() {
    let model = gpt_tiny();
    let dir = folder("bad");
    let written = masks(&model, random);
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    // One weight left out.
    write_wafersim(Path::new(&file("missing.safetensors")), &written[1..]);
    // layer0.q with one entry 2.
    let mut tensors = wafersim_tensors(&written);
    let good = tensors.clone();
    tensors[0].2[65] = 2;
    write_safetensors(Path::new(&file("value.safetensors")), Dtype::U8, &tensors);
    // layer1.ffn_up stored [out, in].
    let mut tensors = good.clone();
    tensors[10].1 = vec![256, 64];
    write_safetensors(Path::new(&file("shape.safetensors")), Dtype::U8, &tensors);
    // A third layer gpt-tiny does not have.
    let mut tensors = good.clone();
    tensors.push(("layer2.q".into(), vec![64, 64], vec![1; 64 * 64]));
    write_safetensors(Path::new(&file("layer.safetensors")), Dtype::U8, &tensors);
    // layer0.q twice: by its name and in a Hugging Face c_attn.
    let mut tensors = good.clone();
    tensors.push((
        "transformer.h.0.attn.c_attn.weight".into(),
        vec![64, 192],
        vec![1; 64 * 192],
    ));
    write_safetensors(Path::new(&file("twice.safetensors")), Dtype::U8, &tensors);
    let zeros = masks(&model, |k, n, _| Mask::from_fn(k, n, |_, _| false));
    write_wafersim(Path::new(&file("zeros.safetensors")), &zeros);
    std::fs::write(file("garbage.safetensors"), b"not a safetensors file").unwrap();
    std::fs::create_dir_all(file("empty")).unwrap();
    let npy = dir.join("npy");
    std::fs::create_dir_all(&npy).unwrap();
    write_npy(
        &npy.join("layer0.q.npy"),
        "<c8",
        &[64, 64],
        false,
        &[0; 64 * 64 * 8],
    );
    let cases = [
        (
            "missing.safetensors",
            "no mask for layer 0 q of gpt-tiny (tensor `layer0.q`",
        ),
        ("value.safetensors", "tensor `layer0.q`: value 2 at [1, 1]"),
        (
            "shape.safetensors",
            "tensor `layer1.ffn_up`: shape [256, 64], but gpt-tiny's ffn_up is [64, 256]",
        ),
        (
            "layer.safetensors",
            "tensor `layer2.q`: layer 2 but gpt-tiny has 2 layers",
        ),
        (
            "twice.safetensors",
            "layer 0 q is masked twice (also by `layer0.q`)",
        ),
        ("garbage.safetensors", "not a safetensors file"),
        ("zeros.safetensors", "every mask drops every weight"),
        ("empty", "a folder without .npy files"),
        ("npy", "tensor `layer0.q`: dtype <c8"),
        ("nowhere", "no such file or folder"),
    ];
    for (name, needle) in cases {
        for command in ["step", "train"] {
            let path = file(name);
            let out = dir.join("out").to_str().unwrap().to_string();
            let heatmap = format!("{out}/heatmap.png");
            let output: [&str; 2] = match command {
                "step" => ["--heatmap", &heatmap],
                _ => ["--out", &out],
            };
            let (code, stdout, err) =
                run_cli(&[command, "gpt-tiny", "--masks", &path, output[0], output[1]]);
            assert_eq!(code, 2, "{command} {name}: {err}");
            assert!(stdout.is_empty(), "{command} {name}");
            assert!(err.contains(needle), "{command} {name}: {err}");
            assert!(
                err.contains(&path) || name == "npy",
                "{command} {name} names the file: {err}"
            );
            assert!(
                !Path::new(&out).exists(),
                "{command} {name}: nothing written"
            );
        }
    }
    // The flags a file replaces.
    let path = file("missing.safetensors");
    for flag in [
        ["--sparsity", "0.5"],
        ["--mask", "2:4"],
        ["--levels", "erk"],
    ] {
        let (code, _, err) = run_cli(&["step", "gpt-tiny", "--masks", &path, flag[0], flag[1]]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("cannot be used with"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn train_on_file_masks_runs_them_once_and_draws_the_curves_other_points() {
    let model = gpt_tiny();
    let dir = folder("train");
    let path = dir.join("masks.safetensors");
    write_wafersim(&path, &masks(&model, random));
    let out = dir.join("out");
    let (code, _, err) = run_cli(&[
        "train",
        "gpt-tiny",
        "--masks",
        path.to_str().unwrap(),
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "dense and the file's run");
    assert_eq!(runs[1]["run_sparsity"], 0.75);
    assert_eq!(report["masks_file"]["weights"], 12);
    // The curve's other sparsities are drawn masks: their speedups grow with sparsity rather
    // than repeating the file's run.
    let curve = report["speedup_curve"].as_array().unwrap();
    let speedup = |s: f64| {
        curve
            .iter()
            .find(|p| p["sparsity"].as_f64() == Some(s))
            .map(|p| p["pretrain_simulated_speedup"].as_f64().unwrap())
            .unwrap()
    };
    assert!(speedup(0.1) < speedup(0.5), "{curve:?}");
    assert!(speedup(0.5) < speedup(0.95), "{curve:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A sweep's `masks` axis: each file a point at its masks' sparsity, keyed by the file's
/// contents; the drawn points keep the keys they have without the axis.
#[test]
fn a_sweep_runs_each_mask_file_as_a_point_keyed_by_its_contents() {
    let model = gpt_tiny();
    let dir = folder("sweep");
    let file = dir.join("masks.safetensors");
    write_wafersim(&file, &masks(&model, random));
    let grid = "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = [0.75]\n";
    let (with, without) = (dir.join("with.toml"), dir.join("without.toml"));
    std::fs::write(&with, format!("{grid}masks = [\"masks.safetensors\"]\n")).unwrap();
    std::fs::write(&without, grid).unwrap();
    let out = dir.join("out");
    let sweep = |spec: &Path, out: &Path| {
        run_json(&[
            "sweep",
            spec.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])["outcome"]
            .clone()
    };
    let first = sweep(&with, &out);
    let points = first["points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{first}");
    assert!(points.iter().all(|p| p["status"] == "run"), "{first}");
    let drawn = &points[0];
    let filed = &points[1];
    assert_eq!(
        filed["point"],
        "model=gpt-tiny;fabric=mini;sparsity=0.75;seed=1;overrides=;masks=masks.safetensors"
    );
    // The drawn point's key is the one a sweep without masks gives it.
    let alone = sweep(&without, &dir.join("alone"));
    assert_eq!(alone["points"][0]["key"], drawn["key"]);
    // The file's masks keep exactly the drawn masks' count per weight: the same executed FLOPs,
    // other cycles (other masks), and the file's SHA-256 in the point's file.
    let point = |p: &serde_json::Value| -> serde_json::Value {
        let path = out
            .join("points")
            .join(format!("{}.json", p["key"].as_str().unwrap()));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (drawn_file, filed_file) = (point(drawn), point(filed));
    assert_eq!(
        exact(&filed_file["pretrain"], "flops_executed"),
        exact(&drawn_file["pretrain"], "flops_executed")
    );
    let sha = MaskSet::read(file.to_str().unwrap(), &model)
        .unwrap()
        .sha256;
    assert_eq!(filed_file["masks_sha256"], sha.as_str());
    assert!(drawn_file.get("masks_sha256").is_none());
    // Rerun on the same file: both reused. Other masks in the same file: that point alone runs
    // again, and replaces its earlier file.
    let again = sweep(&with, &out);
    assert!(again["points"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] == "reused"));
    write_wafersim(&file, &masks(&model, |k, n, seed| random(k, n, seed + 7)));
    let changed = sweep(&with, &out);
    assert_eq!(changed["points"][0]["status"], "reused");
    assert_eq!(changed["points"][1]["status"], "run");
    assert_eq!(
        changed["points"][1]["replaced"].as_array().unwrap().len(),
        1
    );
    assert_ne!(changed["points"][1]["key"], filed["key"]);
    // Rewritten at another sparsity: still the same grid point, so its file is replaced too.
    write_wafersim(
        &file,
        &masks(&model, |k, n, seed| {
            Mask::from_pattern(k, n, Pattern::Random, 0.5, seed)
        }),
    );
    let halved = sweep(&with, &out);
    assert_eq!(halved["points"][1]["status"], "run");
    assert_eq!(halved["points"][1]["replaced"].as_array().unwrap().len(), 1);
    assert!(halved["points"][1]["point"]
        .as_str()
        .unwrap()
        .contains("sparsity=0.5;"));
    // sweep.csv names the file in its last column.
    let (code, _, err) = run_cli(&[
        "merge",
        out.to_str().unwrap(),
        "--expect",
        with.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].ends_with(",systems,masks"), "{}", lines[0]);
    assert!(
        lines[1].ends_with(",1,none") && lines[2].ends_with(",1,masks.safetensors"),
        "{csv}"
    );
    // Refused before any work: a file that does not fit the model, an architecture override.
    let refused = |spec: &str, says: &str| {
        let path = dir.join("refused.toml");
        std::fs::write(&path, spec).unwrap();
        let out = dir.join("refused-out");
        let (code, _, err) = run_cli(&[
            "sweep",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!out.exists(), "nothing written");
    };
    std::fs::write(dir.join("short.safetensors"), b"not a file of tensors").unwrap();
    refused(
        &format!("{grid}masks = [\"short.safetensors\"]\n"),
        "key `masks[0]`",
    );
    refused(
        &format!("{grid}masks = [\"short.safetensors\"]\n"),
        "model gpt-tiny: not a safetensors file",
    );
    refused(
        &format!("{grid}masks = [\"masks.safetensors\"]\n[overrides]\n\"recipe.sparse_weights\" = [[\"q\"]]\n"),
        "override `recipe.sparse_weights` with `masks`",
    );
    refused(
        &format!("{grid}masks = [\"masks.safetensors\"]\n[overrides]\n\"architecture.layers\" = [1, 2]\n"),
        "override `architecture.layers` with `masks`",
    );
    refused(
        "models = [\"gpt-tiny\"]\nfabrics = [\"mini\"]\nsparsities = []\n",
        "keys `sparsities` and `masks` are both empty",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The utilisation heatmap of a step on file masks spreads each sparse GEMM's work over its
/// tile's PE columns by the masks' own counts (not a drawn spread), and `--heatmap-op` draws one
/// op's: a mask whose outputs thin out from left to right leaves the right-hand columns idler.
#[test]
fn a_heatmap_on_file_masks_spreads_each_op_by_its_counts() {
    use wafersim::graph::StepConfig;
    use wafersim::map::MapOptions;
    use wafersim::schedule::{op_busy_grid, run_step};
    use wafersim::spec::Phase;
    let fabric = read_fabric("mini").unwrap().fabric().unwrap();
    let dir = folder("heatmap");
    let file = dir.join("thinning.safetensors");
    // Output column c of every weight keeps rows r with (r·7 + c·3) mod 64 below a share that
    // falls from 40 to 8 in 64 across the outputs.
    let thinning =
        |k: usize, n: usize, _| Mask::from_fn(k, n, |r, c| (r * 7 + c * 3) % 64 < 40 - 32 * c / n);
    let mut model = gpt_tiny();
    write_wafersim(&file, &masks(&model, thinning));
    let set = MaskSet::read_for(&model, "gpt-tiny", "test", file.to_str().unwrap()).unwrap();
    let sparsity = set.sparsity();
    std::sync::Arc::new(set).install(&mut model);
    let config = StepConfig::for_phase(&model, Phase::Pretrain, sparsity);
    let step = run_step(&model, &fabric, config, MapOptions::default()).unwrap();
    let ops: Vec<_> = step.plan.groups.iter().flat_map(|g| &g.ops).collect();
    let counted: Vec<_> = ops.iter().filter(|op| op.column_work.is_some()).collect();
    assert!(!counted.is_empty(), "some sparse GEMM priced by its counts");
    for op in &counted {
        let work = op.column_work.as_ref().unwrap();
        let tile = op.tile.unwrap();
        assert_eq!(work.len() as u64, tile.columns(), "{}", op.name);
        let mean = work.iter().sum::<f64>() / work.len() as f64;
        assert!((mean - 1.0).abs() < 1e-12, "{}: mean {mean}", op.name);
    }
    // A forward GEMM splitting the outputs over PE columns: the first N-group busier than the
    // last, and the op's heatmap says so in the same proportion.
    let op = counted
        .iter()
        .find(|op| op.name.ends_with(".fwd") && op.tile.unwrap().c_n > 1)
        .expect("a forward GEMM split over N");
    let (tile, work) = (op.tile.unwrap(), op.column_work.as_ref().unwrap());
    let last = tile.columns() as usize - 1;
    assert!(work[0] > 1.5 * work[last], "{}: {work:?}", op.name);
    let (grid, cycles) = op_busy_grid(&step, &fabric, 1, &op.name).unwrap();
    assert!(cycles > 0);
    let (left, right) = (grid.value(0, 0) as f64, grid.value(0, last as u64) as f64);
    let expected = work[0] / work[last];
    assert!(
        (left / right / expected - 1.0).abs() < 0.01,
        "{left} / {right} vs {expected}"
    );
    // Every PE of the tile is busy on it; the shares keep the op's total.
    let total: u64 = grid.values.iter().sum();
    let busy = op.cost.busy_cycles_mean as f64 * (grid.width * grid.height) as f64;
    assert!(
        (total as f64 / busy - 1.0).abs() < 0.01,
        "{total} vs {busy}"
    );
    assert!(op_busy_grid(&step, &fabric, 1, "layer9.q.fwd").is_none());
    // On the command line: the op's picture, and a name the step does not have refused.
    let picture = dir.join("op.png");
    let (code, _, err) = run_cli(&[
        "step",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--masks",
        file.to_str().unwrap(),
        "--quiet",
        "--heatmap",
        picture.to_str().unwrap(),
        "--heatmap-op",
        &op.name,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::metadata(&picture).unwrap().len() > 0);
    let refused = dir.join("refused.png");
    let (code, _, err) = run_cli(&[
        "step",
        "gpt-tiny",
        "--fabric",
        "mini",
        "--quiet",
        "--heatmap",
        refused.to_str().unwrap(),
        "--heatmap-op",
        "layer9.q.fwd",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--heatmap-op layer9.q.fwd: this step has no op"),
        "{err}"
    );
    assert!(!refused.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `flops` takes the masks `train` takes: a file's (its non-zeros counted exactly), a pattern
/// and levels; and names them in its report.
#[test]
fn flops_counts_a_files_and_a_patterns_nonzeros() {
    let model = gpt_tiny();
    let dir = folder("flops");
    let file = dir.join("masks.safetensors");
    write_wafersim(&file, &masks(&model, random));
    let pretrain =
        |report: &serde_json::Value, run: usize| report["runs"][run]["phases"][0].clone();
    let from_file = run_json(&["flops", "gpt-tiny", "--masks", file.to_str().unwrap()]);
    let drawn = run_json(&["flops", "gpt-tiny", "--sparsity", "0.75"]);
    assert_eq!(
        from_file["runs"].as_array().unwrap().len(),
        2,
        "dense and the file's"
    );
    assert_eq!(
        exact(&pretrain(&from_file, 1), "flops_executed_per_step"),
        exact(&pretrain(&drawn, 1), "flops_executed_per_step")
    );
    assert_eq!(from_file["masks_file"]["weights"], 12);
    assert!(drawn.get("masks_file").is_none());
    // 2:4 keeps exactly half of every group of four inputs: the FLOPs of half the weights.
    let two_four = run_json(&["flops", "gpt-tiny", "--mask", "2:4"]);
    let half = run_json(&["flops", "gpt-tiny", "--sparsity", "0.5"]);
    assert_eq!(two_four["mask"], "2:4");
    assert_eq!(two_four["runs"][1]["run_sparsity"], 0.5);
    assert_eq!(
        exact(&pretrain(&two_four, 1), "flops_executed_per_step"),
        exact(&pretrain(&half, 1), "flops_executed_per_step")
    );
    let erk = run_json(&["flops", "gpt-tiny", "--sparsity", "0.5", "--levels", "erk"]);
    assert_eq!(erk["levels"], "erk");
    let (code, _, err) = run_cli(&[
        "flops",
        "gpt-tiny",
        "--masks",
        file.to_str().unwrap(),
        "--mask",
        "2:4",
    ]);
    assert_eq!(code, 2, "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
