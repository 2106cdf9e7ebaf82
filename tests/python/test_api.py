"""The Python API (`import wafersim`, built from python/) returns what the command line writes for
the same inputs: train() equals report.json figure by figure, its tables equal the CSVs and its
counters the .npz; step, kernel, flops, validate and compare equal their --json; a dict equals
the TOML file it was read from; bad input raises InputError with the command's message.

Run after `pip install ./python` into the environment, with WAFERSIM_BIN naming the release
binary (default target/release/wafersim):
    python -m pytest tests/python/test_api.py
"""

import json
import math
import os
import pathlib
import subprocess
import tomllib

import numpy as np
import pandas as pd
import pytest

import wafersim

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("WAFERSIM_BIN", str(ROOT / "target" / "release" / "wafersim"))
# Timings of the host, which differ between any two runs of the same inputs.
HOST_FIELDS = {"host_seconds", "events", "out"}


def cli(*args, code=0):
    """Runs the wafersim binary: (stdout as JSON when --json is given, stderr)."""
    done = subprocess.run([BIN, *args], capture_output=True, text=True, check=False)
    assert done.returncode == code, f"wafersim {' '.join(args)}: {done.stderr}"
    return (json.loads(done.stdout) if "--json" in args else done.stdout), done.stderr


def differences(api, cli_value, path="$"):
    """Every figure that differs between two JSON values, by its path; host timings skipped."""
    if isinstance(api, dict) and isinstance(cli_value, dict):
        keys = {k for k in api.keys() | cli_value.keys()
                if k not in HOST_FIELDS and not k.endswith("_per_host_second")}
        found = []
        for key in sorted(keys):
            if key not in api or key not in cli_value:
                found.append(f"{path}.{key}: in one only")
            else:
                found += differences(api[key], cli_value[key], f"{path}.{key}")
        return found
    if isinstance(api, list) and isinstance(cli_value, list):
        if len(api) != len(cli_value):
            return [f"{path}: {len(api)} items against {len(cli_value)}"]
        return [d for i, (a, c) in enumerate(zip(api, cli_value))
                for d in differences(a, c, f"{path}[{i}]")]
    # Exact: the same code computed both, so even floats must be the same double.
    same = api == cli_value and type(api) is type(cli_value)
    return [] if same else [f"{path}: {api!r} against {cli_value!r}"]


@pytest.fixture(scope="module")
def train_pair(tmp_path_factory):
    """train() and the command on the defaults (mediswift-xl on wse2, the recipe's sparsities)."""
    out = tmp_path_factory.mktemp("train")
    cli("train", "--quiet", "--out", str(out))
    return wafersim.train(), out


def test_train_equals_report_json_figure_by_figure(train_pair):
    report, out = train_pair
    written = json.loads((out / "report.json").read_text())
    assert differences(report.data, written) == []
    assert report.to_json() == (out / "report.json").read_text()
    # Big integers stay exact: a FLOP total beyond 2**64 is a string, as written.
    total = report.runs[0]["total"]
    assert int(total["flops_dense_exact"]) > 2**64
    assert isinstance(total["flops_dense_exact"], str)
    assert math.isclose(total["flops_dense"], int(total["flops_dense_exact"]), rel_tol=1e-15)
    assert report["model"] == report.model == "mediswift-xl"


def test_train_tables_are_the_csv_rows_with_numeric_dtypes(train_pair):
    report, out = train_pair
    tables = report.to_pandas()
    for name in ("phases", "ops"):
        pd.testing.assert_frame_equal(tables[name], pd.read_csv(out / f"{name}.csv"))
    text = {"phases": {"phase"}, "ops": {"op", "kind", "op_pass", "weight_format", "tile"},
            "gap": {"category", "label"}, "speedup_curve": set()}
    for name, frame in tables.items():
        assert len(frame) > 0, name
        for column in frame.columns:
            if column not in text[name]:
                assert pd.api.types.is_numeric_dtype(frame[column]), (name, column)
    curve = tables["speedup_curve"]
    assert curve["sparsity"].is_monotonic_increasing
    sparse = [run for run in report.runs if run["run_sparsity"] > 0]
    assert len(tables["gap"]) == sum(len(run["gap"]) for run in sparse)


def test_train_counters_are_the_npz_arrays(train_pair):
    report, out = train_pair
    counters = report.counters
    with np.load(out / "counters.npz") as npz:
        assert sorted(counters) == sorted(npz.files)
        for name in npz.files:
            assert isinstance(counters[name], np.ndarray), name
            assert counters[name].dtype == npz[name].dtype, name
            assert np.array_equal(counters[name], npz[name]), name
    assert counters["s0.75_busy_cycles"].shape == (994, 750)


def test_train_writes_nothing_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wafersim.train("gpt-tiny", fabric="mini")
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "run"
    report = wafersim.train("gpt-tiny", fabric="mini", out=out)
    assert (out / "report.json").read_text() == report.to_json()
    assert {"phases.csv", "ops.csv", "counters.npz", "trace.json"} <= {p.name for p in out.iterdir()}


@pytest.mark.parametrize("call, words", [
    (lambda: wafersim.step("gpt-tiny", fabric="mini", sparsity=0.5, microbatch=2),
     ["step", "gpt-tiny", "--fabric", "mini", "--sparsity", "0.5", "--microbatch", "2"]),
    (lambda: wafersim.step(sparsity=0.75, activations="checkpoint"),
     ["step", "--sparsity", "0.75", "--activations", "checkpoint"]),
    (lambda: wafersim.step("gpt-tiny", fabric="mini", mask="2:4", levels="uniform"),
     ["step", "gpt-tiny", "--fabric", "mini", "--mask", "2:4", "--levels", "uniform"]),
    (lambda: wafersim.step("gpt-tiny", fabric="mini", sparsity=0.75, mask="skewed:0.5",
                           levels="erk"),
     ["step", "gpt-tiny", "--fabric", "mini", "--sparsity", "0.75", "--mask", "skewed:0.5",
      "--levels", "erk"]),
    (lambda: wafersim.flops("mediswift-med", fabric="wse3", sparsity=[0.5, 0.9]),
     ["flops", "mediswift-med", "--fabric", "wse3", "--sparsity", "0.5,0.9"]),
    (lambda: wafersim.flops("gpt-tiny", sparsity=0.5, mask="block:4", levels="erk"),
     ["flops", "gpt-tiny", "--sparsity", "0.5", "--mask", "block:4", "--levels", "erk"]),
    (lambda: wafersim.kernel("gemm", t=256, k=64, n=64, region="8x8", sparsity=0.5, seed=7),
     ["kernel", "gemm", "--t", "256", "--k", "64", "--n", "64", "--region", "8x8",
      "--sparsity", "0.5", "--seed", "7"]),
    (lambda: wafersim.kernel("layernorm", rows=64, cols=64, region="8x8", pass_="backward"),
     ["kernel", "layernorm", "--rows", "64", "--cols", "64", "--region", "8x8",
      "--pass", "backward"]),
    (lambda: wafersim.validate(), ["validate"]),
    (lambda: wafersim.validate(hardware=True), ["validate", "--hardware"]),
    (lambda: wafersim.compare(ROOT / "traces/bench/mediswift.json",
                              ROOT / "traces/bench/mediswift.json", tolerance=0),
     ["compare", str(ROOT / "traces/bench/mediswift.json"),
      str(ROOT / "traces/bench/mediswift.json"), "--tolerance", "0%"]),
])
def test_each_command_equals_its_json(call, words):
    report = call()
    expected, _ = cli(*words, "--json")
    assert differences(report.data, expected) == []
    assert report.command == words[0]
    assert "schema_version" in report or words[0] == "compare"


def test_masks_from_a_folder_of_npy_files_equal_the_command_line(tmp_path):
    # gpt-tiny's 12 sparse weights, [in, out], a quarter of each kept at random.
    rng = np.random.default_rng(5)
    shapes = {"q": (64, 64), "k": (64, 64), "v": (64, 64), "attn_out": (64, 64),
              "ffn_up": (64, 256), "ffn_down": (256, 64)}
    for layer in range(2):
        for kind, shape in shapes.items():
            np.save(tmp_path / f"layer{layer}.{kind}.npy", rng.random(shape) < 0.25)
    report = wafersim.step("gpt-tiny", fabric="mini", masks=tmp_path)
    expected, _ = cli("step", "gpt-tiny", "--fabric", "mini", "--masks", str(tmp_path), "--json")
    assert differences(report.data, expected) == []
    assert report["masks_file"]["weights"] == 12
    trained = wafersim.train("gpt-tiny", fabric="mini", masks=tmp_path)
    assert [run["run_sparsity"] for run in trained["runs"]][0] == 0.0
    assert trained["masks_file"]["sha256"] == report["masks_file"]["sha256"]
    with pytest.raises(wafersim.InputError, match="masks"):
        wafersim.step("gpt-tiny", fabric="mini", masks=tmp_path, sparsity=0.5)
    with pytest.raises(wafersim.InputError, match="one file or folder"):
        wafersim.step("gpt-tiny", fabric="mini", masks=[tmp_path, tmp_path])


def test_dynamic_sparse_training_equals_the_command_line():
    trained = wafersim.train("gpt-tiny", fabric="mini", dynamic="rigl", update_every=10,
                             drop=0.5)
    expected, _ = cli("train", "gpt-tiny", "--fabric", "mini", "--dynamic", "rigl",
                      "--update-every", "10", "--drop", "0.5", "--json")
    assert differences(trained.data, expected) == []
    assert trained["dynamic"] == {"method": "rigl", "update_every": 10, "drop_fraction": 0.5,
                                  "end_fraction": 0.75}
    # 1,024 steps, updates after 10, 20, ..., 760: below 75% of them.
    dynamic = [run["dynamic"] for run in trained["runs"] if "dynamic" in run]
    assert [d["mask_updates"] for d in dynamic] == [76, 76]
    assert all(d["static_cycles"] < d["static_total_cycles"] for d in dynamic)
    flops = wafersim.flops("gpt-tiny", dynamic="set", update_every=10)
    assert flops["dynamic"]["method"] == "set"
    with pytest.raises(wafersim.InputError, match="--drop"):
        wafersim.train("gpt-tiny", fabric="mini", drop=0.3)


def test_command_tables_load_numeric():
    step = wafersim.step("gpt-tiny", fabric="mini", sparsity=0.5).to_pandas()
    ops = step["ops"]
    assert len(ops) > 0 and pd.api.types.is_numeric_dtype(ops["cycles"])
    assert pd.api.types.is_numeric_dtype(ops["flops_executed"])
    checks = wafersim.validate().to_pandas()["checks"]
    assert len(checks) > 0 and pd.api.types.is_float_dtype(checks["error"])
    flops = wafersim.flops("gpt-tiny").to_pandas()
    assert list(flops["phases"]["run_sparsity"].unique()) == [0.0, 0.5, 0.75]
    for name, frame in flops.items():
        for column in frame.columns:
            if column != "phase" and not column.endswith("_exact"):
                assert pd.api.types.is_numeric_dtype(frame[column]), (name, column)
    kernel = wafersim.kernel("reduce", pes=8, wavelets=4).to_pandas()["report"]
    assert kernel.loc[0, "cycles"] > 0 and pd.api.types.is_numeric_dtype(kernel["cycles"])


def test_compare_reports_a_moved_figure_without_raising(tmp_path):
    base = json.loads((ROOT / "traces/bench/mediswift.json").read_text())
    case = base["cases"][0]
    field = next(k for k, v in case["figures"].items() if isinstance(v, int) and v > 0)
    case["figures"][field] += 1
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(base))
    report = wafersim.compare(ROOT / "traces/bench/mediswift.json", moved, tolerance="0%")
    expected, _ = cli("compare", str(ROOT / "traces/bench/mediswift.json"), str(moved),
                      "--tolerance", "0%", "--json", code=1)
    assert differences(report.data, expected) == []
    assert report.passed is False
    assert [(m["case"], m["field"]) for m in report.moved] == [(case["name"], field)]


def test_kernel_counters_are_the_npz_arrays(tmp_path):
    path = tmp_path / "gemm.npz"
    report = wafersim.kernel("gemm", t=128, k=32, n=32, region="4x4", counters=path)
    counters = report.counters
    assert counters["busy_cycles"].shape == (4, 4)
    assert counters["busy_cycles"].dtype == np.uint64
    assert int(counters["fmac_ops"].sum()) == report.fmac_ops


def model_dict():
    with open(ROOT / "models" / "gpt-tiny.toml", "rb") as f:
        return tomllib.load(f)


def without_sources(data):
    return {k: v for k, v in data.items()
            if k not in {"model_source", "model_sha256", "fabric_source", "fabric_sha256"}}


def test_a_dict_equals_the_file_it_was_read_from():
    path = ROOT / "models" / "gpt-tiny.toml"
    with open(ROOT / "fabric" / "mini.toml", "rb") as f:
        fabric = tomllib.load(f)
    from_dict = wafersim.train(model_dict(), fabric=fabric, sparsity=[0.75])
    from_file = wafersim.train(str(path), fabric=ROOT / "fabric" / "mini.toml", sparsity=[0.75])
    assert from_dict.model_source == "<model dict>" and from_dict.fabric_source == "<fabric dict>"
    assert differences(without_sources(from_dict.data), without_sources(from_file.data)) == []
    step_dict = wafersim.step(model_dict(), fabric="mini", sparsity=0.5)
    step_file = wafersim.step(path, fabric="mini", sparsity=0.5)
    assert differences(without_sources(step_dict.data), without_sources(step_file.data)) == []
    flops_dict = wafersim.flops(model_dict())
    assert differences(without_sources(flops_dict.data),
                       without_sources(wafersim.flops(path).data)) == []


def test_bad_input_raises_input_error_with_the_commands_message(tmp_path):
    assert issubclass(wafersim.InputError, ValueError)
    assert issubclass(wafersim.SimulationError, RuntimeError)
    # A name the loader does not know.
    with pytest.raises(wafersim.InputError) as raised:
        wafersim.step("gpt-tiny", fabric="nope")
    _, err = cli("step", "gpt-tiny", "--fabric", "nope", code=2)
    assert err == f"wafersim: error: {raised.value}\n"
    # A flag value the parser refuses: its first paragraph, without "error: ".
    with pytest.raises(wafersim.InputError) as raised:
        wafersim.train(sparsity=[1.5])
    _, err = cli("train", "--sparsity", "1.5", code=2)
    assert err.split("\n\n")[0] == f"error: {raised.value}"
    # A value out of range in a dict: the message of the same value in a file, named by origin.
    bad = model_dict()
    bad["architecture"]["heads"] = 3
    with pytest.raises(wafersim.InputError) as raised:
        wafersim.step(bad, fabric="mini")
    text = (ROOT / "models" / "gpt-tiny.toml").read_text().replace(
        "heads = 4 ", "heads = 3 ", 1)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    _, err = cli("step", str(path), "--fabric", "mini", code=2)
    assert err == f"wafersim: error: {str(raised.value).replace('<model dict>', str(path))}\n"
    # An unknown key in a dict, refused as in a file.
    bad = model_dict()
    bad["architecture"]["layer"] = 2
    with pytest.raises(wafersim.InputError, match="layer"):
        wafersim.flops(bad)
    with pytest.raises(wafersim.InputError, match="not a spec"):
        wafersim.flops({"architecture": None})
    with pytest.raises(wafersim.InputError, match="kernel takes its fabric by built-in name"):
        wafersim.kernel("reduce", pes=8, wavelets=4, fabric={"name": "x"})


def test_bench_saves_the_baseline_the_command_saves(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(
        'name = "tiny"\n\n'
        '[[case]]\nname = "step"\ncommand = "step"\nmodel = "gpt-tiny"\nfabric = "mini"\n'
        'sparsity = 0.5\n\n'
        '[[case]]\nname = "reduce"\ncommand = "kernel"\nkernel = "reduce"\npes = 8\n'
        'wavelets = 4\n'
    )
    report = wafersim.bench(suite, save="py", out=tmp_path)
    cli("bench", str(suite), "--save", "cli", "--out", str(tmp_path), "--quiet")
    saved = json.loads((tmp_path / "cli.json").read_text())
    assert json.loads((tmp_path / "py.json").read_text()) == report.data
    assert differences(report.data["cases"], saved["cases"]) == []
    comparison = wafersim.compare(tmp_path / "cli.json", tmp_path / "py.json", tolerance=0)
    assert comparison.passed and comparison.figures_compared > 0
