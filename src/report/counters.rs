//! `counters.postcard`: per-PE counters of a run, in postcard's stable wire format behind a
//! versioned header, so that plots can be redrawn and scripts can read them without rerunning.
//!
//! Layout: the 8 bytes `WSCOUNTR`, a little-endian u32 format version, then the postcard
//! encoding of `CountersFile`. A reader refuses another magic, another version, a truncated or
//! corrupted body, grids whose sizes do not match, values no run gives, and runs `train` never
//! writes (not the dense run first, a sparsity outside (0, 1), two runs of one name), each with
//! a message naming the file.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::write_atomic;
use crate::error::{Error, Result};
use crate::schedule::PeGrid;

const MAGIC: &[u8; 8] = b"WSCOUNTR";
/// Bumped whenever `CountersFile` changes shape.
pub const COUNTERS_FORMAT_VERSION: u32 = 1;

/// Per-PE counters of one `train` run: one entry per sparsity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountersFile {
    pub wafersim_version: String,
    pub model: String,
    pub fabric: String,
    pub seed: u64,
    pub runs: Vec<RunCounters>,
}

/// The pre-training step of one run: busy cycles and SRAM bytes per PE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCounters {
    pub sparsity: f64,
    pub step_cycles: u64,
    pub sram_capacity_bytes: u64,
    pub busy_cycles: PeGrid,
    pub sram_bytes: PeGrid,
}

impl CountersFile {
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&COUNTERS_FORMAT_VERSION.to_le_bytes());
        let body = postcard::to_stdvec(self)
            .map_err(|e| Error::Simulation(format!("cannot encode {}: {e}", path.display())))?;
        bytes.extend_from_slice(&body);
        write_atomic(path, &bytes)
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
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err("not a wafersim counters file (it must start with WSCOUNTR)".into());
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != COUNTERS_FORMAT_VERSION {
            return Err(format!(
                "counters format version {version}; this wafersim reads version {COUNTERS_FORMAT_VERSION}"
            ));
        }
        let (file, rest): (CountersFile, &[u8]) = postcard::take_from_bytes(&bytes[12..])
            .map_err(|e| format!("truncated or corrupted counters ({e})"))?;
        if !rest.is_empty() {
            return Err(format!(
                "{} bytes of garbage after the counters",
                rest.len()
            ));
        }
        check_run_sparsities(&file.runs)?;
        for run in &file.runs {
            // What a PE's value may not exceed: the step's cycles, the PE's SRAM.
            for (grid, what, limit) in [
                (&run.busy_cycles, "busy cycles", run.step_cycles),
                (&run.sram_bytes, "SRAM bytes", run.sram_capacity_bytes),
            ] {
                if grid.width.checked_mul(grid.height) != Some(grid.values.len() as u64) {
                    return Err(format!(
                        "run at sparsity {}: a {} x {} grid with {} values",
                        run.sparsity,
                        grid.width,
                        grid.height,
                        grid.values.len()
                    ));
                }
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
        }
        Ok(file)
    }
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
                })
                .to_vec(),
        }
    }

    #[test]
    fn round_trips_and_refuses_every_truncation() {
        let dir = std::env::temp_dir().join(format!("wafersim-counters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("counters.postcard");
        sample().write(&path).unwrap();
        assert_eq!(CountersFile::read(&path).unwrap(), sample());
        let bytes = std::fs::read(&path).unwrap();
        for cut in 0..bytes.len() {
            let err = CountersFile::decode(&bytes[..cut]).unwrap_err();
            assert!(!err.is_empty());
        }
        let mut flipped = bytes.clone();
        flipped[9] ^= 1;
        assert!(CountersFile::decode(&flipped)
            .unwrap_err()
            .contains("version"));
        let mut longer = bytes;
        longer.push(0);
        assert!(CountersFile::decode(&longer)
            .unwrap_err()
            .contains("garbage"));
    }

    /// A PE busier than its step, or using more SRAM than it has, is a corrupted file.
    #[test]
    fn values_beyond_the_step_or_the_sram_are_refused() {
        let encoded = |file: &CountersFile| {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&COUNTERS_FORMAT_VERSION.to_le_bytes());
            bytes.extend_from_slice(&postcard::to_stdvec(file).unwrap());
            bytes
        };
        assert_eq!(CountersFile::decode(&encoded(&sample())).unwrap(), sample());

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
    }
}
