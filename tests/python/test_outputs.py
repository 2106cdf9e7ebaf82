"""Every file wafersim writes loads in one line with pandas or numpy, numeric where it is
numeric, and every JSON report validates against its published schema (docs/schema/).

Run from the repository after `cargo build --release` (or with WAFERSIM_BIN naming a binary):
    python -m pytest tests/python
"""

import json
import keyword
import os
import pathlib
import re
import subprocess

import jsonschema
import numpy as np
import pandas as pd
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("WAFERSIM_BIN", str(ROOT / "target" / "release" / "wafersim"))
SCHEMAS = ROOT / "docs" / "schema"
SCHEMA_VERSION = 2

# The columns of each CSV that hold text; every other column must load numeric.
TEXT_COLUMNS = {
    "phases.csv": {"phase"},
    "ops.csv": {"op", "kind", "op_pass", "weight_format", "tile"},
    "sweep.csv": {"model", "fabric", "overrides", "masks"},
}
# Columns that may be empty, and when: a GEMM tile's numbers, exactly where `tile` names none.
TILE_NUMBERS = ["tile_rows", "tile_split_k", "tile_split_n"]
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def wafersim(*args, cwd=None):
    """Runs wafersim; its stdout parsed as JSON when --json is among the arguments."""
    done = subprocess.run(
        [BIN, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"wafersim {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout) if "--json" in args else done.stdout


@pytest.fixture(scope="session")
def out(tmp_path_factory):
    """Every output, written once into a temporary folder: files and --json documents."""
    base = tmp_path_factory.mktemp("outputs")
    train = base / "train"
    docs = {"train": wafersim("train", "--json", "--out", str(train))}
    docs["step"] = wafersim("step", "gpt-tiny", "--fabric", "mini", "--sparsity", "0.5", "--json")
    docs["step-xl"] = wafersim("step", "mediswift-xl", "--sparsity", "0.75", "--json")
    kernel_counters = base / "kernel.npz"
    docs["kernel"] = wafersim(
        "kernel", "gemm", "--t", "256", "--k", "64", "--n", "64", "--region", "8x8",
        "--sparsity", "0.5", "--counters", str(kernel_counters), "--json",
    )
    docs["kernel-model"] = wafersim(
        "kernel", "gemm", "--t", "4096", "--k", "1024", "--n", "1024", "--region", "994x750",
        "--fidelity", "model", "--json",
    )
    docs["kernel-layernorm"] = wafersim(
        "kernel", "layernorm", "--rows", "64", "--cols", "64", "--region", "8x8",
        "--pass", "backward", "--json",
    )
    docs["kernel-reduce"] = wafersim("kernel", "reduce", "--pes", "8", "--wavelets", "4", "--json")
    docs["flops"] = wafersim("flops", "--json")
    docs["inspect-model"] = wafersim("inspect", "mediswift-xl", "--json")
    docs["inspect-fabric"] = wafersim("inspect", "wse2", "--json")
    docs["validate"] = wafersim("validate", "--json")
    docs["validate-hardware"] = wafersim("validate", "--hardware", "--json")
    sweep = base / "sweep"
    spec = str(ROOT / "examples" / "mediswift-table.toml")
    docs["sweep"] = wafersim("sweep", spec, "--out", str(sweep), "--json")
    docs["merge"] = wafersim("merge", str(sweep), "--json")
    docs["plot"] = wafersim(
        "plot", "speedup", str(train / "report.json"), "-o", str(base / "again.png"), "--json"
    )
    return {"base": base, "train": train, "sweep": sweep, "docs": docs,
            "kernel_counters": kernel_counters}


def schema(name):
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


# Which published schema each document is of.
SCHEMA_OF = {
    "train": "train", "step": "step", "step-xl": "step", "kernel": "kernel",
    "kernel-model": "kernel", "kernel-layernorm": "kernel", "kernel-reduce": "kernel",
    "flops": "flops", "inspect-model": "inspect-model", "inspect-fabric": "inspect-fabric",
    "validate": "validate", "validate-hardware": "validate-hardware", "sweep": "sweep",
    "merge": "merge", "plot": "plot",
}


def test_every_report_validates_against_its_schema(out):
    docs = dict(out["docs"])
    docs["report.json"] = json.loads((out["train"] / "report.json").read_text())
    points = sorted((out["sweep"] / "points").glob("*.json"))
    assert len(points) == 9
    for i, path in enumerate(points):
        docs[f"point {i}"] = json.loads(path.read_text())
    for what, doc in docs.items():
        name = "train" if what == "report.json" else SCHEMA_OF.get(what, "sweep-point")
        validator = jsonschema.Draft202012Validator(schema(name))
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, f"{what} against {name}.schema.json: {errors[:5]}"
        assert doc["schema_version"] == SCHEMA_VERSION, what


def test_a_schema_refuses_a_report_with_a_field_of_the_old_names(out):
    """The schemas can fail: the old `breakdown.io` (no unit) and a FLOP count as a string."""
    report = json.loads((out["train"] / "report.json").read_text())
    validator = jsonschema.Draft202012Validator(schema("train"))
    breakdown = report["runs"][0]["total"]["breakdown"]
    breakdown["io"] = breakdown.pop("io_cycles")
    report["runs"][0]["phases"][0]["flops_dense"] = "217479345277694115840"
    messages = [e.message for e in validator.iter_errors(report)]
    assert any("io_cycles" in m for m in messages), messages
    assert any("is not of type 'number'" in m for m in messages), messages


def numeric_or_text(frame, text, what):
    """Every column numeric (bool, int, float) except the named text columns, which hold text."""
    for column in frame.columns:
        parts = column.split(".")
        assert all(NAME.match(p) and not keyword.iskeyword(p) for p in parts), (what, column)
        values = frame[column]
        if column in text or column.endswith("_exact"):
            assert values.map(lambda v: isinstance(v, str)).all(), (what, column, values.dtype)
        elif values.map(lambda v: isinstance(v, (list, dict))).any():
            continue  # a nested list (e.g. `alternatives`) is its own table
        else:
            assert pd.api.types.is_numeric_dtype(values), (what, column, values.dtype)


def test_report_json_loads_with_read_json_and_json_normalize(out):
    path = out["train"] / "report.json"
    whole = pd.read_json(path, typ="series")
    assert whole["schema_version"] == SCHEMA_VERSION
    report = json.loads(path.read_text())
    phases = pd.json_normalize(report["runs"], record_path="phases", meta=["run_sparsity"])
    assert len(phases) == 9
    phases["run_sparsity"] = pd.to_numeric(phases["run_sparsity"])  # meta loads as object
    numeric_or_text(phases, {"phase"}, "report.json phases")
    assert list(phases["run_sparsity"].unique()) == [0.0, 0.5, 0.75]
    totals = pd.json_normalize([run["total"] for run in report["runs"]])
    numeric_or_text(totals, {"phase"}, "report.json totals")
    # The exact integer beside each FLOP count is that count, rounded by the number.
    for name in ["flops_dense", "flops_executed", "flops_optimizer"]:
        exact = totals[f"{name}_exact"].map(int)
        assert (exact.map(float) == totals[name]).all(), name
    assert int(totals["flops_dense_exact"][0]) > 2**64
    gap = pd.json_normalize(report["runs"], record_path="gap", meta=["run_sparsity"])
    assert set(gap["category"]) == {
        "compute", "reduction", "io", "imbalance", "overhead", "recompute", "data_parallel",
        "mask_update"
    }
    assert set(gap.loc[gap["category"] == "io", "label"]) == {"I/O"}


def test_every_json_document_normalizes_to_distinct_snake_case_columns(out):
    for what, doc in out["docs"].items():
        flat = pd.json_normalize(doc)
        assert flat.columns.is_unique, what
        text = {c for c in flat.columns if flat[c].map(lambda v: isinstance(v, str)).all()}
        numeric_or_text(flat, text | {c for c in flat.columns if flat[c].isna().all()}, what)
    ops = pd.json_normalize(out["docs"]["step-xl"], record_path="ops")
    numeric_or_text(ops, {"name", "kind", "op_pass", "weight_format", "tile"}, "step ops")
    check_tile_rule(ops, "step --json ops")


def check_tile_rule(ops, what):
    """A GEMM tile's numbers are there exactly when `tile` is a tile, and say the same."""
    is_tile = ops["tile"].str.fullmatch(r"\d+x\d+x\d+")
    assert set(ops.loc[~is_tile, "tile"]) <= {"elementwise", "off_wafer"}, what
    for column in TILE_NUMBERS:
        assert ops.loc[is_tile, column].notna().all() and ops.loc[~is_tile, column].isna().all()
    spelled = (
        ops.loc[is_tile, TILE_NUMBERS].astype(int).astype(str).agg("x".join, axis=1)
    )
    assert (spelled == ops.loc[is_tile, "tile"]).all(), what


@pytest.mark.parametrize("name", ["phases.csv", "ops.csv", "sweep.csv"])
def test_every_csv_column_loads_numeric_or_as_text(out, name):
    folder = out["sweep"] if name == "sweep.csv" else out["train"]
    frame = pd.read_csv(folder / name)
    numeric_or_text(frame, TEXT_COLUMNS[name], name)
    may_be_empty = set(TILE_NUMBERS) if name == "ops.csv" else set()
    for column in frame.columns:
        if column not in may_be_empty:
            assert frame[column].notna().all(), (name, column)
    if name == "ops.csv":
        check_tile_rule(frame, name)
        assert set(frame["op_pass"]) == {"forward", "dgrad", "wgrad", "update"}
        assert set(frame["weight_format"]) == {"sparse", "dense", "none"}
        assert frame["sparse"].dtype == bool
    if name == "sweep.csv":
        assert set(frame["overrides"]) == {"none"}
        assert frame["pretrain_flops_executed"].dtype == np.float64


def test_train_counters_are_named_integer_arrays_of_the_pe_grid(out):
    counters = np.load(out["train"] / "counters.npz")
    fabric = out["docs"]["inspect-fabric"]["spec"]["geometry"]
    grid = (fabric["region_height_pes"], fabric["region_width_pes"])
    assert list(counters["runs"]) == ["dense", "s0.5", "s0.75"]
    assert counters["schema_version"] == SCHEMA_VERSION
    assert counters["model"].item() == "mediswift-xl"
    assert list(counters["sparsity"]) == [0.0, 0.5, 0.75]
    report = json.loads((out["train"] / "report.json").read_text())
    for i, run in enumerate(counters["runs"]):
        busy = counters[f"{run}_busy_cycles"]
        sram = counters[f"{run}_sram_bytes"]
        assert busy.shape == grid and sram.shape == grid
        assert busy.dtype == np.uint64 and sram.dtype == np.uint64
        assert busy.max() <= counters["step_cycles"][i]
        assert sram.max() <= counters["sram_capacity_bytes"][i]
        # The mean busy fraction is the pre-training step's utilisation in the report.
        utilization = busy.mean() / counters["step_cycles"][i]
        assert utilization > 0.5, (run, utilization)
        # What the heatmaps label: bands of rows and columns, first PE and one past the last.
        for kind in ("busy", "sram"):
            axes = counters[f"{run}_{kind}_band_axes"]
            ranges = counters[f"{run}_{kind}_band_ranges"]
            labels = counters[f"{run}_{kind}_band_labels"]
            assert ranges.dtype == np.uint64 and ranges.shape == (len(axes), 2)
            assert len(labels) == len(axes) and set(axes) <= {"rows", "columns"}
            for axis in ("rows", "columns"):
                spans = ranges[axes == axis]
                side = grid[0] if axis == "rows" else grid[1]
                assert spans[0][0] == 0 and spans[-1][1] == side, (run, kind, axis)
    assert report["runs"][0]["run_sparsity"] == 0.0


def test_kernel_counters_are_one_array_per_counter(out):
    counters = np.load(out["kernel_counters"])
    report = out["docs"]["kernel"]
    assert counters["busy_cycles"].shape == (8, 8)
    assert counters["wavelets_in"].shape == (8, 8, 5)
    assert list(counters["ports"]) == ["n", "e", "s", "w", "ramp"]
    assert int(counters["cycles"]) == report["cycles"]
    assert int(counters["fmac_ops"].sum()) == report["fmac_ops"]
    assert int(counters["wavelets_out"][:, :, 4].sum()) == report["wavelets_received"]
    busy = counters["fmac_cycles"] + counters["overhead_cycles"] + counters["reduction_cycles"]
    assert (busy == counters["busy_cycles"]).all()


def test_trace_and_manifest_load(out):
    """trace.json keeps the Chrome trace-event names (`ph`, `ts`, `displayTimeUnit`: the format's,
    not wafersim's); its events still load as a table with numeric times."""
    trace = json.loads((out["train"] / "trace.json").read_text())
    events = pd.json_normalize(trace["traceEvents"])
    timed = events[events["ph"] == "X"]
    assert len(timed) > 100
    for column in ["ts", "dur", "pid", "tid"]:
        assert pd.api.types.is_numeric_dtype(timed[column]) and timed[column].notna().all()
    manifest = pd.read_json(out["train"] / "wafersim-manifest.json")
    assert {"report.json", "counters.npz", "ops.csv"} <= set(manifest["files"])
