"""wafersim from Python: what a FLOP count is worth in wall-clock on a wafer-scale engine.

Each function runs the wafersim command of its name through the same library code, with the same
inputs: a built-in model or fabric name ("mediswift-xl", "wse2"), a path to a TOML file, or a dict
of the TOML file's tables and keys; keyword arguments are the command's flags (``sparsity=[0.5,
0.75]`` is ``--sparsity 0.5,0.75``, ``head_dim=64`` is ``--head-dim 64``, ``pass_="backward"`` is
``--pass backward``). Each returns a :class:`Report` holding the JSON document the command prints
with ``--json`` (for ``train``, report.json)::

    import wafersim
    report = wafersim.train("mediswift-xl", sparsity=[0.75])
    print(report.runs[1]["total"]["simulated_speedup"], report.to_pandas()["phases"])

Nothing is written unless asked: ``train(out=DIR)`` writes the command's folder, ``step(heatmap=
PATH)``, ``kernel(counters=PATH)`` and ``bench(save=NAME)`` their files. Input the command exits 2
on raises :class:`InputError` (a ``ValueError``) with the command's message; anything else that
fails raises :class:`SimulationError` (a ``RuntimeError``).
"""

import io
import json
import os

from ._native import VERSION as __version__
from ._native import InputError, SimulationError
from ._native import run as _run

__all__ = [
    "InputError",
    "SimulationError",
    "Report",
    "TrainReport",
    "train",
    "step",
    "kernel",
    "flops",
    "validate",
    "compare",
    "bench",
]

# What messages and the report's `model_source` / `fabric_source` call a spec given as a dict.
MODEL_DICT = "<model dict>"
FABRIC_DICT = "<fabric dict>"


class Report:
    """A command's JSON report: ``.data`` (the parsed dict), ``report["key"]`` and
    ``report.key`` for its top-level fields, ``.to_pandas()`` for its tables."""

    def __init__(self, command, output):
        self.command = command
        self._output = output
        # Python's ints are exact, so integers beyond 2**64 and the `*_exact` strings stay as the
        # command writes them.
        self.data = json.loads(output.json())

    def __getitem__(self, key):
        return self.data[key]

    def __contains__(self, key):
        return key in self.data

    def __getattr__(self, name):
        data = self.__dict__.get("data", {})
        if name in data:
            return data[name]
        raise AttributeError(f"{self.command} report has no field {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.data))

    def __repr__(self):
        names = ", ".join(k for k in ("model", "fabric", "kernel") if k in self.data)
        said = ", ".join(f"{k}={self.data[k]!r}" for k in names.split(", ") if k)
        return f"<wafersim {self.command} report{': ' + said if said else ''}>"

    def keys(self):
        return self.data.keys()

    def to_json(self):
        """The report as the command prints it with --json."""
        return self._output.json()

    def to_pandas(self):
        """The report's tables as pandas DataFrames, by name."""
        import pandas as pd

        tables = {}
        for key, value in self.data.items():
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                tables[key] = pd.json_normalize(value)
        runs = self.data.get("runs")
        if runs and all("phases" in run for run in runs):
            # flops: one row per phase of every run, its run's sparsity beside it.
            tables["phases"] = _rows(runs, "phases")
            tables["runs"] = tables["runs"].drop(columns="phases")
        if not tables:
            tables["report"] = pd.json_normalize(self.data)
        return tables

    @property
    def counters(self):
        """Per-PE counters as numpy arrays by name, as the command's .npz file holds them."""
        path = getattr(self, "_counters_path", None)
        if path is None:
            raise SimulationError(
                f"{self.command}: no counters (kernel gives them with counters=PATH, train always)"
            )
        return _npz(path)


class TrainReport(Report):
    """``train``'s report.json, with the run's CSVs and counters computed on demand, never
    written unless ``train(out=...)`` asked."""

    def to_pandas(self):
        """phases (phases.csv), ops (ops.csv), speedup_curve, and gap (a sparse run's gap by
        category) as DataFrames: the rows the command's files hold."""
        import pandas as pd

        return {
            "phases": pd.read_csv(io.StringIO(self._output.phases_csv())),
            "ops": pd.read_csv(io.StringIO(self._output.ops_csv())),
            "speedup_curve": pd.DataFrame(self.data["speedup_curve"]),
            "gap": _rows(self.data["runs"], "gap", ["run_sparsity", "category", "label", "share"]),
        }

    @property
    def counters(self):
        """counters.npz's arrays by name (``s0.75_busy_cycles``, ``runs``, ...), computed now."""
        return _npz(io.BytesIO(self._output.counters_npz()))


def _rows(runs, key, columns=None):
    """The items under `key` of every run as one table, each row with its run's sparsity first
    (a float column: json_normalize's meta columns load as object)."""
    import pandas as pd

    rows = [{"run_sparsity": run["run_sparsity"], **item} for run in runs for item in run[key]]
    frame = pd.json_normalize(rows) if rows else pd.DataFrame(columns=columns)
    return frame.astype({"run_sparsity": float})


def _npz(source):
    import numpy as np

    with np.load(source) as npz:
        return {name: npz[name] for name in npz.files}


def _spec(kind, value):
    """A model or fabric argument: (the command line's word, the dict as JSON or None)."""
    if isinstance(value, dict):
        label = MODEL_DICT if kind == "model" else FABRIC_DICT
        return label, (label, json.dumps(value))
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value), None
    raise InputError(
        f"{kind}: {value!r} is not a built-in name, a path or a dict of the TOML file's tables"
    )


def _word(value):
    """A flag's value as the command line spells it: lists comma-separated, floats exact."""
    if isinstance(value, (list, tuple)):
        return ",".join(_word(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _flags(flags):
    """Keyword arguments as flags: `head_dim=64` is `--head-dim 64`, `pass_` is `--pass`; True is
    the bare flag, None and False leave it out."""
    words = []
    for name, value in flags.items():
        if value is None or value is False:
            continue
        flag = "--" + name.rstrip("_").replace("_", "-")
        words.append(flag)
        if value is not True:
            words.append(_word(value))
    return words


def _call(command, words, flags, model=None, fabric=None, cls=Report):
    argv = ["wafersim", command, *words, *_flags(flags)]
    output = _run(argv, model, fabric)
    return cls(command, output)


def _one_path(name, value):
    """A flag that names one file or folder: a list would reach the command line as one path."""
    if isinstance(value, (list, tuple)):
        raise InputError(f"{name}: {value!r}: give one file or folder, not a list")
    return value


def train(model="mediswift-xl", *, fabric="wse2", sparsity=None, mask=None, levels=None,
          masks=None, dynamic=None, update_every=None, drop=None, end=None, systems=None,
          seed=None, out=None):
    """The whole recipe at each sparsity and dense (``wafersim train``). Writes nothing unless
    ``out`` names a folder, which then gets exactly the command's files. ``sparsity`` is a
    number, a list, or a range ``"0:0.95:0.05"``; ``mask="2:4"``, ``levels="erk"`` as the
    flags; ``masks`` a mask file or folder of ``.npy`` files (``--masks``, see docs/masks.md);
    ``dynamic="rigl"`` (or ``"set"``, ``"static"``) with ``update_every``, ``drop`` and ``end``
    as ``--dynamic`` and its flags (see docs/dynamic.md)."""
    model_word, model_spec = _spec("model", model)
    fabric_word, fabric_spec = _spec("fabric", fabric)
    flags = dict(fabric=fabric_word, sparsity=sparsity, mask=mask, levels=levels,
                 masks=_one_path("masks", masks), dynamic=dynamic, update_every=update_every,
                 drop=drop, end=end, systems=systems, seed=seed, out=out)
    return _call("train", [model_word], flags, model_spec, fabric_spec, TrainReport)


def step(model="mediswift-xl", *, fabric="wse2", phase=None, sparsity=None, mask=None,
         levels=None, masks=None, microbatch=None, activations=None, systems=None, seed=None,
         heatmap=None, trace=None):
    """One training step on the whole fabric (``wafersim step``); ``masks`` as ``train``'s."""
    model_word, model_spec = _spec("model", model)
    fabric_word, fabric_spec = _spec("fabric", fabric)
    flags = dict(fabric=fabric_word, phase=phase, sparsity=sparsity, mask=mask, levels=levels,
                 masks=_one_path("masks", masks),
                 microbatch=microbatch, activations=activations, systems=systems, seed=seed,
                 heatmap=heatmap, trace=trace)
    return _call("step", [model_word], flags, model_spec, fabric_spec)


def flops(model="mediswift-xl", *, fabric="wse2", sparsity=None, mask=None, levels=None,
          masks=None, dynamic=None, update_every=None, drop=None, end=None, seed=None):
    """The theoretical side: FLOPs per phase and run (``wafersim flops``); ``mask``, ``levels``,
    ``masks`` and ``dynamic`` with its schedule as ``train``'s."""
    model_word, model_spec = _spec("model", model)
    fabric_word, fabric_spec = _spec("fabric", fabric)
    flags = dict(fabric=fabric_word, sparsity=sparsity, mask=mask, levels=levels,
                 masks=_one_path("masks", masks), dynamic=dynamic, update_every=update_every,
                 drop=drop, end=end, seed=seed)
    return _call("flops", [model_word], flags, model_spec, fabric_spec)


def kernel(name, **flags):
    """One kernel on the wavelet-level engine (``wafersim kernel NAME``): ``kernel("gemm", t=256,
    k=64, n=64, region="8x8", sparsity=0.5)``. The fabric by name or path (``fabric="mini"``);
    ``counters=PATH`` writes the .npz and makes ``.counters`` read it."""
    fabric_spec = None
    if isinstance(flags.get("fabric"), dict):
        # Handed over so that the library refuses it with its reason, not as an unknown name.
        flags["fabric"], fabric_spec = _spec("fabric", flags["fabric"])
    report = _call("kernel", [name], flags, fabric=fabric_spec)
    if flags.get("counters") is not None:
        report._counters_path = os.fspath(flags["counters"])
    return report


def validate(*, fabric=None, hardware=False, hardware_file=None, seed=None):
    """The fidelity checks (``wafersim validate``); ``report.passed`` is False where the command
    exits 1."""
    flags = dict(fabric=fabric, hardware=hardware, hardware_file=hardware_file, seed=seed)
    return _call("validate", [], flags)


def compare(base, new, *, tolerance=None):
    """Two baselines of ``bench(save=...)`` compared (``wafersim compare``): ``report.moved``,
    ``report.passed`` (False where the command exits 1). A tolerance is "0.5%" or 0.5."""
    if isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool):
        tolerance = f"{tolerance!r}%"
    return _call("compare", [os.fspath(base), os.fspath(new)], dict(tolerance=tolerance))


def bench(suite, *, save=None, out=None):
    """A benchmark suite's cases (``wafersim bench``): the baseline as a report; ``save=NAME``
    also writes NAME.json (in ``out``)."""
    return _call("bench", [os.fspath(suite)], dict(save=save, out=out))
