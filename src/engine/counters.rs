//! Per-PE counters: integers only (`report::kernel_counters_npz` saves them as numpy arrays).

use serde::{Deserialize, Serialize};

/// What one PE did during a kernel. Ports are indexed N, E, S, W, Ramp (`Port as usize`); for
/// the ramp, "in" counts wavelets the core sent into its router and "out" those delivered to
/// the core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeCounters {
    pub fmac_cycles: u64,
    pub overhead_cycles: u64,
    pub reduction_cycles: u64,
    pub fmac_ops: u64,
    pub tasks: u64,
    pub wavelets_in: [u64; 5],
    pub wavelets_out: [u64; 5],
    /// Cycles wavelets of this router waited for a link or for buffer space downstream.
    pub stall_cycles: u64,
    pub sram_bytes: u64,
}

impl PeCounters {
    pub fn busy_cycles(&self) -> u64 {
        self.fmac_cycles + self.overhead_cycles + self.reduction_cycles
    }

    /// Adds `other`'s counts to these; SRAM is the larger of the two (a need, not a count).
    pub fn add(&mut self, other: &PeCounters) {
        self.fmac_cycles += other.fmac_cycles;
        self.overhead_cycles += other.overhead_cycles;
        self.reduction_cycles += other.reduction_cycles;
        self.fmac_ops += other.fmac_ops;
        self.tasks += other.tasks;
        for p in 0..5 {
            self.wavelets_in[p] += other.wavelets_in[p];
            self.wavelets_out[p] += other.wavelets_out[p];
        }
        self.stall_cycles += other.stall_cycles;
        self.sram_bytes = self.sram_bytes.max(other.sram_bytes);
    }
}

/// The counters of a whole mesh, row-major, with the run's length to turn them into fractions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshCounters {
    pub rows: u32,
    pub cols: u32,
    pub cycles: u64,
    pub pes: Vec<PeCounters>,
}

impl MeshCounters {
    /// Busy fraction of each PE, row-major (`rows × cols`): for heatmaps.
    pub fn busy_fraction_grid(&self) -> Vec<f64> {
        let cycles = self.cycles.max(1) as f64;
        self.pes
            .iter()
            .map(|c| c.busy_cycles() as f64 / cycles)
            .collect()
    }

    /// Cycles each PE's core was idle (waiting for wavelets), row-major.
    pub fn idle_wait_cycles(&self) -> impl Iterator<Item = u64> + '_ {
        self.pes
            .iter()
            .map(|c| self.cycles.saturating_sub(c.busy_cycles()))
    }

    /// Sum of all PEs' counters.
    pub fn total(&self) -> PeCounters {
        let mut t = PeCounters::default();
        for c in &self.pes {
            t.add(c);
        }
        t
    }

    /// What every engine run's counters satisfy (`report::read_kernel_counters` holds a file to
    /// it, so that what is drawn from one is what the engine counted).
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        let expected = u64::from(self.rows) * u64::from(self.cols);
        if self.pes.len() as u64 != expected {
            return Err(format!(
                "a {} x {} mesh with counters for {} PEs",
                self.rows,
                self.cols,
                self.pes.len()
            ));
        }
        for (i, pe) in self.pes.iter().enumerate() {
            let busy = pe
                .fmac_cycles
                .checked_add(pe.overhead_cycles)
                .and_then(|b| b.checked_add(pe.reduction_cycles));
            if busy.is_none_or(|b| b > self.cycles) {
                let cols = self.cols as usize;
                return Err(format!(
                    "PE ({}, {}) is busy {} cycles in a run of {} cycles",
                    i / cols,
                    i % cols,
                    busy.map_or("more than 2^64".to_string(), |b| b.to_string()),
                    self.cycles
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_fraction_is_busy_cycles_over_the_run() {
        let pe = PeCounters {
            fmac_cycles: 7,
            fmac_ops: 28,
            ..Default::default()
        };
        let mesh = MeshCounters {
            rows: 1,
            cols: 2,
            cycles: 10,
            pes: vec![pe, PeCounters::default()],
        };
        assert_eq!(mesh.busy_fraction_grid(), vec![0.7, 0.0]);
    }

    /// Counters no run can give are refused with what is wrong, never drawn (nor a panic).
    #[test]
    fn impossible_counters_are_refused() {
        let busy = PeCounters {
            fmac_cycles: 6,
            overhead_cycles: 4,
            ..Default::default()
        };
        let mesh = MeshCounters {
            rows: 2,
            cols: 2,
            cycles: 10,
            pes: vec![busy; 4],
        };
        assert_eq!(mesh.check(), Ok(()));
        let refusal = |mesh: &MeshCounters| mesh.check().unwrap_err();

        let mut wrong_size = mesh.clone();
        wrong_size.rows = 3;
        assert!(refusal(&wrong_size).contains("a 3 x 2 mesh with counters for 4 PEs"));

        let mut too_busy = mesh.clone();
        too_busy.pes[3].reduction_cycles = 1;
        assert!(refusal(&too_busy).contains("PE (1, 1) is busy 11 cycles in a run of 10"));

        let mut overflowing = mesh;
        overflowing.pes[1].fmac_cycles = u64::MAX;
        assert!(refusal(&overflowing).contains("PE (0, 1) is busy more than 2^64 cycles"));
    }
}
