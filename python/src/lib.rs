//! `wafersim._native`: the Python module's native half. It hands a command line's words (and any
//! spec given as a dict, as JSON) to `wafersim::api`, which runs them through the functions the
//! command line calls, and returns the report as JSON text with, for `train`, its CSVs and
//! counters on demand. The friendly API (`wafersim/__init__.py`) builds the words from keyword
//! arguments and turns the results into Python objects.
//!
//! Architecture Invariant: nothing here simulates, builds a report or checks an input; an error
//! is the library's, its message unchanged, and no Rust panic reaches Python.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use wafersim::api::{InlineSpec, Output, Specs};

create_exception!(
    _native,
    InputError,
    PyValueError,
    "Input the wafersim command exits 2 on: the message names the file, key or flag and what is allowed."
);
create_exception!(
    _native,
    SimulationError,
    PyRuntimeError,
    "Allowed input the simulation cannot finish, or a file that cannot be read or written (exit 1)."
);

/// The library's error as the Python exception of its kind, the message unchanged.
fn to_py(error: wafersim::Error) -> PyErr {
    match error {
        wafersim::Error::Input(message) => InputError::new_err(message),
        other => SimulationError::new_err(other.to_string()),
    }
}

/// Runs `work` without the GIL; a panic becomes a `SimulationError` saying where, never an
/// abort or a `PanicException` a caller's `except Exception` would not catch.
fn guarded<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> wafersim::Result<T> + Send,
) -> PyResult<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(work)));
    match outcome {
        Ok(result) => result.map_err(to_py),
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            Err(SimulationError::new_err(format!(
                "wafersim failed inside (a bug, please report it): {what}"
            )))
        }
    }
}

/// What one command gave: its JSON report, and for `train` the CSVs and counters of the run.
#[pyclass(frozen, name = "Output", module = "wafersim._native")]
struct PyOutput {
    output: Output,
}

impl PyOutput {
    fn trained(&self, what: &str) -> PyResult<&wafersim::cli::Trained> {
        match &self.output {
            Output::Train(trained) => Ok(trained),
            Output::Report(_) => Err(SimulationError::new_err(format!(
                "{what}: only a train report has it"
            ))),
        }
    }
}

#[pymethods]
impl PyOutput {
    /// The report as JSON text (for train, report.json byte for byte).
    fn json(&self) -> &str {
        self.output.json()
    }

    /// phases.csv's text (train only).
    fn phases_csv(&self, py: Python<'_>) -> PyResult<String> {
        let trained = self.trained("phases_csv")?;
        guarded(py, || trained.phases_csv())
    }

    /// ops.csv's text (train only).
    fn ops_csv(&self, py: Python<'_>) -> PyResult<String> {
        let trained = self.trained("ops_csv")?;
        guarded(py, || trained.ops_csv())
    }

    /// counters.npz's bytes (train only): computed here, on demand, as train writes them.
    fn counters_npz<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let trained = self.trained("counters_npz")?;
        let bytes = guarded(py, || trained.counters_npz())?;
        Ok(PyBytes::new(py, &bytes))
    }
}

/// Runs `argv` (program name first) as the wafersim command would, with the model and fabric
/// replaced by `model_json` / `fabric_json` (a JSON object, named `model_origin` /
/// `fabric_origin` in messages) where given.
#[pyfunction]
#[pyo3(signature = (argv, model=None, fabric=None))]
fn run(
    py: Python<'_>,
    argv: Vec<String>,
    model: Option<(String, String)>,
    fabric: Option<(String, String)>,
) -> PyResult<PyOutput> {
    let output = guarded(py, move || {
        let inline = |spec: Option<(String, String)>| {
            spec.map(|(origin, json)| InlineSpec::from_json(&origin, &json))
                .transpose()
        };
        let specs = Specs {
            model: inline(model)?,
            fabric: inline(fabric)?,
        };
        let args = wafersim::api::parse(&argv)?;
        wafersim::api::run(&args, &specs)
    })?;
    Ok(PyOutput { output })
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("InputError", m.py().get_type::<InputError>())?;
    m.add("SimulationError", m.py().get_type::<SimulationError>())?;
    m.add("VERSION", wafersim::VERSION)?;
    m.add_class::<PyOutput>()?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    Ok(())
}
