//! `counters.npz`: per-PE counters of a run as numpy arrays, so that plots can be redrawn and
//! scripts can read them without rerunning (`np.load("counters.npz")["s0.75_busy_cycles"]`).
//!
//! Arrays (see [`CountersFile::arrays`]): `schema_version`, `wafersim_version`, `model`,
//! `fabric`, `seed`; per run, in order, `runs` (names: `dense`, `s0.75`), `sparsity`,
//! `step_cycles`, `sram_capacity_bytes`; and for each run `<run>_busy_cycles` and
//! `<run>_sram_bytes`, `uint64` of the PE grid's shape (rows, columns), and what their bands
//! hold (`<run>_busy_band_axes`, `_ranges`, `_labels`, the same for `sram`: see
//! [`band_arrays`]), which the heatmaps label. A reader refuses another
//! schema version, a truncated or corrupted file, grids whose sizes do not match, values no run
//! gives, and runs `train` never writes (not the dense run first, a sparsity outside (0, 1), two
//! runs of one name), each with a message naming the file.
//!
//! `kernel --counters` writes one engine run's counters in the same format ([`kernel_counters_npz`]).

use std::collections::BTreeMap;
use std::path::Path;

use super::files::write_atomic;
use super::json::SCHEMA_VERSION;
use super::npz::{npz_bytes, read_npz, NpyArray, NpyData, NpzWriter};
use super::pictures::run_name;
use crate::engine::{MeshCounters, PeCounters};
use crate::error::{Error, Result};
use crate::schedule::{BandAxis, PeBand, PeGrid};

/// Per-PE counters of one `train` run: one entry per sparsity.
#[derive(Debug, Clone, PartialEq)]
pub struct CountersFile {
    pub wafersim_version: String,
    pub model: String,
    pub fabric: String,
    pub seed: u64,
    pub runs: Vec<RunCounters>,
}

/// The pre-training step of one run: busy cycles and SRAM bytes per PE.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCounters {
    pub sparsity: f64,
    pub step_cycles: u64,
    pub sram_capacity_bytes: u64,
    pub busy_cycles: PeGrid,
    pub sram_bytes: PeGrid,
    /// What each band of `busy_cycles` holds (`schedule::busy_bands`), for the heatmaps' labels.
    pub busy_bands: Vec<PeBand>,
    /// What each band of `sram_bytes` holds (`schedule::sram_bands`).
    pub sram_bands: Vec<PeBand>,
}

impl CountersFile {
    pub fn write(&self, path: &Path) -> Result<()> {
        let bytes = self
            .npz()
            .map_err(|why| Error::Simulation(format!("cannot write {}: {why}", path.display())))?;
        write_atomic(path, &bytes)
    }

    /// counters.npz's bytes, as [`CountersFile::write`] writes them.
    pub fn npz_bytes(&self) -> Result<Vec<u8>> {
        self.npz()
            .map_err(|why| Error::Simulation(format!("cannot encode counters.npz: {why}")))
    }

    /// The file's bytes: the small arrays, then the grids one at a time (each copied only while
    /// it is written, which `schedule::check_grid_memory` budgets for).
    fn npz(&self) -> std::result::Result<Vec<u8>, String> {
        let mut writer = NpzWriter::default();
        for (name, array) in self.arrays() {
            writer.add(&name, &array)?;
        }
        for run in &self.runs {
            let name = run_name(run.sparsity);
            writer.add(
                &format!("{name}_busy_cycles"),
                &grid_array(&run.busy_cycles),
            )?;
            writer.add(&format!("{name}_sram_bytes"), &grid_array(&run.sram_bytes))?;
            for (grid, bands) in [("busy", &run.busy_bands), ("sram", &run.sram_bands)] {
                for (suffix, array) in band_arrays(bands) {
                    writer.add(&format!("{name}_{grid}_band_{suffix}"), &array)?;
                }
            }
        }
        writer.finish()
    }

    /// The arrays of the file but the grids, by name, in the order written.
    fn arrays(&self) -> Vec<(String, NpyArray)> {
        let runs = self.runs.len() as u64;
        let per_run = |f: fn(&RunCounters) -> u64| {
            NpyArray::u64s(vec![runs], self.runs.iter().map(f).collect())
        };
        vec![
            (
                "schema_version".into(),
                NpyArray::scalar_u64(SCHEMA_VERSION.into()),
            ),
            (
                "wafersim_version".into(),
                NpyArray::text(&self.wafersim_version),
            ),
            ("model".into(), NpyArray::text(&self.model)),
            ("fabric".into(), NpyArray::text(&self.fabric)),
            ("seed".into(), NpyArray::scalar_u64(self.seed)),
            (
                "runs".into(),
                NpyArray::texts(self.runs.iter().map(|r| run_name(r.sparsity)).collect()),
            ),
            (
                "sparsity".into(),
                NpyArray::f64s(vec![runs], self.runs.iter().map(|r| r.sparsity).collect()),
            ),
            ("step_cycles".into(), per_run(|r| r.step_cycles)),
            (
                "sram_capacity_bytes".into(),
                per_run(|r| r.sram_capacity_bytes),
            ),
        ]
    }

    pub fn read(path: &Path) -> Result<CountersFile> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::Input(format!("{}: cannot be read: {e}", path.display())))?;
        Self::from_bytes(&bytes, path)
    }

    /// Decodes a file's bytes already read; `path` names it in messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<CountersFile> {
        Self::decode(bytes).map_err(|why| Error::Input(format!("{}: {why}", path.display())))
    }

    fn decode(bytes: &[u8]) -> std::result::Result<CountersFile, String> {
        let arrays = read_npz(bytes)?;
        let a = Arrays(&arrays);
        a.check_schema_version()?;
        let names = a.texts("runs")?;
        let sparsities = a.f64s("sparsity", names.len())?;
        let step_cycles = a.u64s("step_cycles", &[names.len() as u64])?;
        let capacities = a.u64s("sram_capacity_bytes", &[names.len() as u64])?;
        let mut runs = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if *name != run_name(sparsities[i]) {
                return Err(format!(
                    "run {i} named {name:?} at sparsity {}: runs are named by their sparsity",
                    sparsities[i]
                ));
            }
            runs.push(RunCounters {
                sparsity: sparsities[i],
                step_cycles: step_cycles[i],
                sram_capacity_bytes: capacities[i],
                busy_cycles: a.grid(&format!("{name}_busy_cycles"))?,
                sram_bytes: a.grid(&format!("{name}_sram_bytes"))?,
                busy_bands: a.bands(&format!("{name}_busy_band_"))?,
                sram_bands: a.bands(&format!("{name}_sram_band_"))?,
            });
        }
        let file = CountersFile {
            wafersim_version: a.text("wafersim_version")?,
            model: a.text("model")?,
            fabric: a.text("fabric")?,
            seed: a.u64s("seed", &[])?[0],
            runs,
        };
        check_run_sparsities(&file.runs)?;
        file.runs.iter().try_for_each(check_run_limits)?;
        Ok(file)
    }
}

/// A grid's bands as three arrays: `axes` (`rows` or `columns`), `ranges` (first PE and one
/// past the last, shape (bands, 2)) and `labels`.
fn band_arrays(bands: &[PeBand]) -> [(&'static str, NpyArray); 3] {
    let ranges = bands.iter().flat_map(|b| [b.start, b.end]).collect();
    [
        (
            "axes",
            NpyArray::texts(bands.iter().map(|b| b.axis.name().to_string()).collect()),
        ),
        (
            "ranges",
            NpyArray::u64s(vec![bands.len() as u64, 2], ranges),
        ),
        (
            "labels",
            NpyArray::texts(bands.iter().map(|b| b.label.clone()).collect()),
        ),
    ]
}

/// What a PE's value may not exceed: the step's cycles, the PE's SRAM; and bands inside the grid.
fn check_run_limits(run: &RunCounters) -> std::result::Result<(), String> {
    for (grid, bands) in [
        (&run.busy_cycles, &run.busy_bands),
        (&run.sram_bytes, &run.sram_bands),
    ] {
        if let Some(band) = bands.iter().find(|b| {
            let len = match b.axis {
                BandAxis::Rows => grid.height,
                BandAxis::Columns => grid.width,
            };
            b.start >= b.end || b.end > len
        }) {
            return Err(format!(
                "run at sparsity {}: band {:?} covers {} {}..{}, not inside the grid of {} x {} PEs",
                run.sparsity,
                band.label,
                band.axis.name(),
                band.start,
                band.end,
                grid.height,
                grid.width
            ));
        }
    }
    for (grid, what, limit) in [
        (&run.busy_cycles, "busy cycles", run.step_cycles),
        (&run.sram_bytes, "SRAM bytes", run.sram_capacity_bytes),
    ] {
        if let Some(i) = grid.values.iter().position(|&v| v > limit) {
            return Err(format!(
                "run at sparsity {}: PE ({}, {}) has {} {what}, beyond the run's {limit}",
                run.sparsity,
                i as u64 / grid.width,
                i as u64 % grid.width,
                grid.values[i],
            ));
        }
    }
    Ok(())
}

/// A PE grid as numpy's (rows, columns) array.
fn grid_array(grid: &PeGrid) -> NpyArray {
    NpyArray::u64s(vec![grid.height, grid.width], grid.values.clone())
}

/// The arrays of a read file, looked up by name with the type and shape wafersim writes.
struct Arrays<'a>(&'a BTreeMap<String, NpyArray>);

impl Arrays<'_> {
    fn get(&self, name: &str) -> std::result::Result<&NpyArray, String> {
        self.0.get(name).ok_or_else(|| format!("no array {name}"))
    }

    fn check_schema_version(&self) -> std::result::Result<(), String> {
        let version = self.u64s("schema_version", &[])?[0];
        match version == u64::from(SCHEMA_VERSION) {
            true => Ok(()),
            false => Err(format!(
                "counters of schema version {version}; this wafersim reads version {SCHEMA_VERSION}"
            )),
        }
    }

    fn u64s(&self, name: &str, shape: &[u64]) -> std::result::Result<Vec<u64>, String> {
        match self.get(name)? {
            NpyArray {
                shape: s,
                data: NpyData::U64(v),
            } if s == shape => Ok(v.clone()),
            other => Err(format!(
                "array {name}: {other:?} is not uint64 of shape {shape:?}"
            )),
        }
    }

    fn f64s(&self, name: &str, len: usize) -> std::result::Result<Vec<f64>, String> {
        match self.get(name)? {
            NpyArray {
                shape,
                data: NpyData::F64(v),
            } if *shape == [len as u64] => Ok(v.clone()),
            _ => Err(format!("array {name}: not float64 of shape ({len},)")),
        }
    }

    fn texts(&self, name: &str) -> std::result::Result<Vec<String>, String> {
        match self.get(name)? {
            NpyArray {
                shape,
                data: NpyData::Text(v),
            } if shape.len() == 1 => Ok(v.clone()),
            _ => Err(format!("array {name}: not a list of strings")),
        }
    }

    fn text(&self, name: &str) -> std::result::Result<String, String> {
        match self.get(name)? {
            NpyArray {
                shape,
                data: NpyData::Text(v),
            } if shape.is_empty() => Ok(v[0].clone()),
            _ => Err(format!("array {name}: not a string")),
        }
    }

    /// The bands written by [`band_arrays`] under `prefix`; none if the file has none (a file
    /// from before bands were written), refused if it has some of the three arrays only.
    fn bands(&self, prefix: &str) -> std::result::Result<Vec<PeBand>, String> {
        let names = ["axes", "ranges", "labels"].map(|s| format!("{prefix}{s}"));
        match names.iter().filter(|n| self.0.contains_key(*n)).count() {
            0 => return Ok(Vec::new()),
            3 => {}
            _ => return Err(format!("arrays {}: some missing", names.join(", "))),
        }
        let axes = self.texts(&names[0])?;
        let ranges = self.u64s(&names[1], &[axes.len() as u64, 2])?;
        let labels = self.texts(&names[2])?;
        if labels.len() != axes.len() {
            return Err(format!("array {}: not one label per band", names[2]));
        }
        let bands = axes
            .iter()
            .zip(labels)
            .enumerate()
            .map(|(i, (axis, label))| {
                let axis = match axis.as_str() {
                    "rows" => BandAxis::Rows,
                    "columns" => BandAxis::Columns,
                    other => return Err(format!("array {}: axis {other:?}", names[0])),
                };
                Ok(PeBand {
                    axis,
                    start: ranges[2 * i],
                    end: ranges[2 * i + 1],
                    label,
                })
            });
        bands.collect()
    }

    /// A (rows, columns) grid of uint64.
    fn grid(&self, name: &str) -> std::result::Result<PeGrid, String> {
        match self.get(name)? {
            NpyArray {
                shape,
                data: NpyData::U64(v),
            } if shape.len() == 2 => Ok(PeGrid {
                width: shape[1],
                height: shape[0],
                values: v.clone(),
            }),
            _ => Err(format!(
                "array {name}: not a uint64 grid of (rows, columns)"
            )),
        }
    }
}

/// The engine's counters of one kernel run as `.npz` bytes: `schema_version`, `cycles` (the
/// run's), `ports` (`n`, `e`, `s`, `w`, `ramp`), then one uint64 array per counter of the mesh's
/// shape (rows, columns): `busy_cycles`, `fmac_cycles`, `overhead_cycles`, `reduction_cycles`,
/// `fmac_ops`, `tasks`, `stall_cycles`, `sram_bytes`, and (rows, columns, 5) `wavelets_in` and
/// `wavelets_out` by port.
pub fn kernel_counters_npz(mesh: &MeshCounters) -> Result<Vec<u8>> {
    let (rows, cols) = (u64::from(mesh.rows), u64::from(mesh.cols));
    let grid = |f: fn(&PeCounters) -> u64| {
        NpyArray::u64s(vec![rows, cols], mesh.pes.iter().map(f).collect())
    };
    let ports = |f: fn(&PeCounters) -> [u64; 5]| {
        NpyArray::u64s(vec![rows, cols, 5], mesh.pes.iter().flat_map(f).collect())
    };
    let arrays = vec![
        (
            "schema_version".into(),
            NpyArray::scalar_u64(SCHEMA_VERSION.into()),
        ),
        ("cycles".into(), NpyArray::scalar_u64(mesh.cycles)),
        (
            "ports".into(),
            NpyArray::texts(PORTS.map(String::from).to_vec()),
        ),
        ("busy_cycles".into(), grid(PeCounters::busy_cycles)),
        ("fmac_cycles".into(), grid(|c| c.fmac_cycles)),
        ("overhead_cycles".into(), grid(|c| c.overhead_cycles)),
        ("reduction_cycles".into(), grid(|c| c.reduction_cycles)),
        ("fmac_ops".into(), grid(|c| c.fmac_ops)),
        ("tasks".into(), grid(|c| c.tasks)),
        ("stall_cycles".into(), grid(|c| c.stall_cycles)),
        ("sram_bytes".into(), grid(|c| c.sram_bytes)),
        ("wavelets_in".into(), ports(|c| c.wavelets_in)),
        ("wavelets_out".into(), ports(|c| c.wavelets_out)),
    ];
    npz_bytes(&arrays).map_err(|why| Error::Simulation(format!("cannot write counters: {why}")))
}

/// The ports of `wavelets_in` and `wavelets_out`, in the engine's order.
const PORTS: [&str; 5] = ["n", "e", "s", "w", "ramp"];

/// Reads what [`kernel_counters_npz`] wrote, refusing what no engine run gives (the message says
/// why; the caller names the file).
pub fn read_kernel_counters(bytes: &[u8]) -> std::result::Result<MeshCounters, String> {
    let arrays = read_npz(bytes)?;
    let a = Arrays(&arrays);
    a.check_schema_version()?;
    let shape = match a.get("fmac_cycles")? {
        NpyArray { shape, .. } if shape.len() == 2 => shape.clone(),
        _ => return Err("array fmac_cycles: not a grid of (rows, columns)".into()),
    };
    let too_big = |_| "a mesh of more than 2^32 rows or columns".to_string();
    let (rows, cols) = (
        u32::try_from(shape[0]).map_err(too_big)?,
        u32::try_from(shape[1]).map_err(too_big)?,
    );
    let ports_shape = [shape[0], shape[1], 5];
    let [fmac, overhead, reduction, fmac_ops, tasks, stall, sram, busy] = [
        "fmac_cycles",
        "overhead_cycles",
        "reduction_cycles",
        "fmac_ops",
        "tasks",
        "stall_cycles",
        "sram_bytes",
        "busy_cycles",
    ]
    .map(|name| a.u64s(name, &shape));
    let (wavelets_in, wavelets_out) = (
        a.u64s("wavelets_in", &ports_shape)?,
        a.u64s("wavelets_out", &ports_shape)?,
    );
    let (fmac, overhead, reduction, busy) = (fmac?, overhead?, reduction?, busy?);
    let (fmac_ops, tasks, stall, sram) = (fmac_ops?, tasks?, stall?, sram?);
    let pes: Vec<PeCounters> = (0..fmac.len())
        .map(|i| PeCounters {
            fmac_cycles: fmac[i],
            overhead_cycles: overhead[i],
            reduction_cycles: reduction[i],
            fmac_ops: fmac_ops[i],
            tasks: tasks[i],
            wavelets_in: wavelets_in[5 * i..5 * i + 5].try_into().expect("5 ports"),
            wavelets_out: wavelets_out[5 * i..5 * i + 5].try_into().expect("5 ports"),
            stall_cycles: stall[i],
            sram_bytes: sram[i],
        })
        .collect();
    let mesh = MeshCounters {
        rows,
        cols,
        cycles: a.u64s("cycles", &[])?[0],
        pes,
    };
    mesh.check()?;
    if let Some(i) = (0..busy.len()).find(|&i| {
        Some(busy[i])
            != fmac[i]
                .checked_add(overhead[i])
                .and_then(|b| b.checked_add(reduction[i]))
    }) {
        return Err(format!(
            "PE ({}, {}): busy_cycles is not fmac + overhead + reduction cycles",
            i / cols as usize,
            i % cols as usize
        ));
    }
    Ok(mesh)
}

/// The runs `train` writes: the dense run first, then sparsities in (0, 1), no two with one
/// name (`plot --run` picks a run by it).
fn check_run_sparsities(runs: &[RunCounters]) -> std::result::Result<(), String> {
    for (i, run) in runs.iter().enumerate() {
        let allowed = if i == 0 {
            run.sparsity == 0.0
        } else {
            run.sparsity > 0.0 && run.sparsity < 1.0
        };
        if !allowed {
            return Err(format!(
                "run {i} at sparsity {}: train writes the dense run first, then sparsities in (0, 1)",
                run.sparsity
            ));
        }
    }
    let sparsities: Vec<f64> = runs.iter().map(|r| r.sparsity).collect();
    super::pictures::check_run_names(&sparsities, "runs").map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CountersFile {
        let grid = PeGrid {
            width: 3,
            height: 2,
            values: vec![1, 2, 3, 4, 5, 6],
        };
        CountersFile {
            wafersim_version: "test".into(),
            model: "gpt-tiny".into(),
            fabric: "mini".into(),
            seed: 7,
            // As train writes them: the dense run first.
            runs: [0.0, 0.75]
                .map(|sparsity| RunCounters {
                    sparsity,
                    step_cycles: 10,
                    sram_capacity_bytes: 49_152,
                    busy_cycles: grid.clone(),
                    sram_bytes: grid.clone(),
                    busy_bands: vec![PeBand {
                        axis: BandAxis::Rows,
                        start: 0,
                        end: 1,
                        label: "row 0: every GEMM tile".into(),
                    }],
                    sram_bands: Vec::new(),
                })
                .to_vec(),
        }
    }

    fn encoded(file: &CountersFile) -> Vec<u8> {
        file.npz().unwrap()
    }

    #[test]
    fn round_trips_and_refuses_every_truncation() {
        let bytes = encoded(&sample());
        assert_eq!(CountersFile::decode(&bytes).unwrap(), sample());
        for cut in 0..bytes.len() {
            assert!(CountersFile::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut other: Vec<(String, NpyArray)> = read_npz(&bytes).unwrap().into_iter().collect();
        let at = other
            .iter()
            .position(|(name, _)| name == "schema_version")
            .unwrap();
        other[at].1 = NpyArray::scalar_u64(1);
        let err = CountersFile::decode(&npz_bytes(&other).unwrap()).unwrap_err();
        assert!(err.contains("schema version 1"), "{err}");
    }

    /// A PE busier than its step, or using more SRAM than it has, is a corrupted file.
    #[test]
    fn values_beyond_the_step_or_the_sram_are_refused() {
        let mut busy = sample();
        busy.runs[1].busy_cycles.values[4] = 11;
        let err = CountersFile::decode(&encoded(&busy)).unwrap_err();
        assert_eq!(
            err,
            "run at sparsity 0.75: PE (1, 1) has 11 busy cycles, beyond the run's 10"
        );

        let mut sram = sample();
        sram.runs[1].sram_bytes.values[2] = 49_153;
        let err = CountersFile::decode(&encoded(&sram)).unwrap_err();
        assert!(err.contains("PE (0, 2) has 49153 SRAM bytes"), "{err}");

        // A band beyond the grid's 2 rows labels PEs that are not there.
        let mut band = sample();
        band.runs[1].busy_bands[0].end = 3;
        let err = CountersFile::decode(&encoded(&band)).unwrap_err();
        assert!(
            err.contains("covers rows 0..3, not inside the grid"),
            "{err}"
        );
    }

    #[test]
    fn kernel_counters_round_trip_and_a_busy_cycles_edit_is_refused() {
        let pe = PeCounters {
            fmac_cycles: 3,
            overhead_cycles: 2,
            reduction_cycles: 1,
            fmac_ops: 12,
            tasks: 4,
            wavelets_in: [1, 2, 3, 4, 5],
            wavelets_out: [5, 4, 3, 2, 1],
            stall_cycles: 7,
            sram_bytes: 100,
        };
        let mesh = MeshCounters {
            rows: 2,
            cols: 3,
            cycles: 10,
            pes: vec![pe; 6],
        };
        let bytes = kernel_counters_npz(&mesh).unwrap();
        assert_eq!(read_kernel_counters(&bytes).unwrap(), mesh);
        let mut arrays = read_npz(&bytes).unwrap();
        arrays.insert("busy_cycles".into(), NpyArray::u64s(vec![2, 3], vec![7; 6]));
        let edited = npz_bytes(&arrays.into_iter().collect::<Vec<_>>()).unwrap();
        let err = read_kernel_counters(&edited).unwrap_err();
        assert!(err.contains("busy_cycles"), "{err}");
    }
}
