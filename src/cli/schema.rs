//! `wafersim schema`: the JSON Schema of every JSON document wafersim writes, derived from the
//! report types themselves (`schemars`), so that a schema cannot drift from what is written.
//! The published copies in `docs/schema/` are pinned by a test.

use schemars::{JsonSchema, Schema, SchemaGenerator};

use super::args::SchemaArgs;
use super::Common;
use crate::error::{Error, Result};
use crate::report::{write_atomic, FabricInspect, FlopsReport, ModelInspect, StepReport, Table};

/// `train --json`: `report.json` and, on stdout only, the run's host time and folder.
#[derive(serde::Serialize, JsonSchema)]
struct TrainJson {
    #[serde(flatten)]
    report: crate::report::TrainReport,
    /// Seconds the run took on the host (stdout only, not in report.json).
    #[serde(skip_serializing_if = "Option::is_none")]
    host_seconds: Option<f64>,
    /// The folder written (stdout only).
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<String>,
}

/// Derives one root schema.
type MakeSchema = fn(&mut SchemaGenerator) -> Schema;

/// Every schema: its name (the file `docs/schema/NAME.schema.json`), what it describes, and how
/// it is made.
const SCHEMAS: [(&str, &str, MakeSchema); 12] = [
    (
        "train",
        "train's report.json, and train --json (which adds host_seconds and out)",
        root::<TrainJson>,
    ),
    ("step", "step --json", root::<StepReport>),
    (
        "kernel",
        "kernel ... --json",
        root::<super::kernel::KernelReport>,
    ),
    ("flops", "flops --json", root::<FlopsReport>),
    (
        "inspect-model",
        "inspect MODEL --json",
        root::<ModelInspect>,
    ),
    (
        "inspect-fabric",
        "inspect FABRIC --json",
        root::<FabricInspect>,
    ),
    (
        "validate",
        "validate --json",
        root::<crate::validate::Validation>,
    ),
    (
        "validate-hardware",
        "validate --hardware --json",
        root::<crate::validate::hardware::HardwareValidation>,
    ),
    ("sweep", "sweep --json", root::<super::sweep::SweepReport>),
    (
        "sweep-point",
        "a sweep's points/<key>.json",
        root::<crate::sweep::PointResult>,
    ),
    ("merge", "merge --json", root::<super::sweep::MergeReport>),
    ("plot", "plot ... --json", root::<super::plot::PlotReport>),
];

fn root<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.root_schema_for::<T>()
}

/// The schema called `name` as pretty JSON with a final newline, or the names there are.
pub fn schema_text(name: &str) -> Result<String> {
    let (_, _, make) = SCHEMAS.iter().find(|(n, _, _)| *n == name).ok_or_else(|| {
        let names: Vec<&str> = SCHEMAS.iter().map(|(n, _, _)| *n).collect();
        Error::Input(format!(
            "schema {name}: no such schema; there are {}",
            names.join(", ")
        ))
    })?;
    // Draft 2020-12, describing what wafersim writes (a field it leaves out is optional).
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator();
    let mut schema = make(&mut generator);
    schema.insert(
        "$id".into(),
        format!("wafersim/schema/{name}.schema.json").into(),
    );
    let mut text = serde_json::to_string_pretty(&schema)
        .map_err(|e| Error::Simulation(format!("cannot encode schema {name}: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// The names of every schema, in the order listed.
pub fn schema_names() -> Vec<&'static str> {
    SCHEMAS.iter().map(|(n, _, _)| *n).collect()
}

/// `schema NAME` prints one schema; `schema --out DIR` writes them all there; `schema` alone
/// lists them (with `--json`, as a list of names).
pub fn schema(args: &SchemaArgs, common: &Common) -> Result<String> {
    if let Some(name) = &args.name {
        if args.out.is_some() {
            return Err(Error::Input(format!(
                "schema {name} --out: --out writes every schema; give one or the other"
            )));
        }
        return schema_text(name);
    }
    if let Some(dir) = &args.out {
        crate::report::check_output_folder("--out", dir)?;
        crate::report::create_folder(dir)?;
        for name in schema_names() {
            write_atomic(
                &dir.join(format!("{name}.schema.json")),
                schema_text(name)?.as_bytes(),
            )?;
        }
    }
    if common.json {
        let names = serde_json::to_string(&schema_names()).expect("names encode");
        return Ok(format!("{names}\n"));
    }
    if common.quiet {
        return Ok(String::new());
    }
    let mut t = Table::new(["schema", "describes"]);
    for (name, what, _) in SCHEMAS {
        t.row([name.to_string(), what.to_string()]);
    }
    let wrote = args.out.as_ref().map_or(String::new(), |d| {
        format!("\nwrote {} (NAME.schema.json)\n", d.display())
    });
    Ok(format!(
        "JSON Schemas (draft 2020-12) of wafersim's reports, schema_version {}: \
         `wafersim schema NAME` prints one\n\n{}{wrote}",
        crate::report::SCHEMA_VERSION,
        t.render()
    ))
}
