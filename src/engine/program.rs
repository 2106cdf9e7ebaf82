//! What a kernel gives the engine: static routes per (PE, color), the wavelets that enter at
//! the start (edge streams and initial core sends), and the tasks the arrivals trigger.

use crate::error::{Error, Result};

/// A router port. N, E, S, W lead to the neighbours; `Ramp` leads to the PE's own core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Port {
    N = 0,
    E = 1,
    S = 2,
    W = 3,
    Ramp = 4,
}

impl Port {
    pub const ALL: [Port; 5] = [Port::N, Port::E, Port::S, Port::W, Port::Ramp];

    pub fn bit(self) -> u8 {
        1 << self as u8
    }

    /// The port on the neighbour that a wavelet leaving through `self` enters by.
    pub fn opposite(self) -> Port {
        match self {
            Port::N => Port::S,
            Port::S => Port::N,
            Port::E => Port::W,
            Port::W => Port::E,
            Port::Ramp => Port::Ramp,
        }
    }

    pub fn from_index(index: u32) -> Port {
        Port::ALL[index as usize]
    }
}

/// A set of ports as a bit mask (bit i = `Port::ALL[i]`).
pub fn ports(list: &[Port]) -> u8 {
    list.iter().fold(0, |mask, p| mask | p.bit())
}

/// The mesh a kernel runs on: `rows × cols` PEs, PE id = row · cols + col.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mesh {
    pub rows: u32,
    pub cols: u32,
}

impl Mesh {
    pub fn pes(&self) -> usize {
        self.rows as usize * self.cols as usize
    }

    pub fn pe(&self, row: u32, col: u32) -> u32 {
        debug_assert!(row < self.rows && col < self.cols);
        row * self.cols + col
    }

    /// (row, col) of a PE id.
    pub fn coords(&self, pe: u32) -> (u32, u32) {
        (pe / self.cols, pe % self.cols)
    }

    /// The neighbour of `pe` through `port`, or `None` at the mesh edge (and for the ramp).
    #[inline]
    pub fn neighbor(&self, pe: u32, port: Port) -> Option<u32> {
        let (row, col) = self.coords(pe);
        match port {
            Port::N if row > 0 => Some(pe - self.cols),
            Port::S if row + 1 < self.rows => Some(pe + self.cols),
            Port::W if col > 0 => Some(pe - 1),
            Port::E if col + 1 < self.cols => Some(pe + 1),
            _ => None,
        }
    }
}

/// Static routes: for each (PE, color) the input ports it accepts and the output ports every
/// accepted wavelet is multicast to. A color with no route at a PE drops nothing: a wavelet
/// reaching it is a program error that the engine reports.
#[derive(Debug, Clone)]
pub struct Routes {
    pub colors: u8,
    pub inputs: Vec<u8>,
    pub outputs: Vec<u8>,
}

impl Routes {
    pub fn new(mesh: Mesh, colors: u8) -> Self {
        let channels = mesh.pes() * colors as usize;
        Self {
            colors,
            inputs: vec![0; channels],
            outputs: vec![0; channels],
        }
    }

    /// Sets the route of `color` at `pe`: wavelets entering by any port of `inputs` leave by
    /// every port of `outputs`.
    pub fn set(&mut self, pe: u32, color: u8, inputs: u8, outputs: u8) {
        let ch = pe as usize * self.colors as usize + color as usize;
        self.inputs[ch] |= inputs;
        self.outputs[ch] = outputs;
    }

    /// A reduction chain through `pes` in order, each hop toward `toward`: position j sends on
    /// `colors[j mod 2]` (ramp → `toward`), position j > 0 receives on `colors[(j − 1) mod 2]`
    /// (→ ramp). Alternating colors keep a PE from sending and receiving on one color.
    pub fn chain(&mut self, pes: &[u32], toward: Port, colors: [u8; 2]) {
        for (j, &pe) in pes.iter().enumerate() {
            if j + 1 < pes.len() {
                self.set(pe, colors[j % 2], Port::Ramp.bit(), toward.bit());
            }
            if j > 0 {
                self.set(
                    pe,
                    colors[(j - 1) % 2],
                    toward.opposite().bit(),
                    Port::Ramp.bit(),
                );
            }
        }
    }

    /// A multicast of `color` along `pes` in order, each hop toward `toward`: the first PE takes
    /// it from `source` (its ramp, or an edge port) and every PE's core gets it, except the
    /// first's when the source is its own ramp.
    pub fn multicast_line(&mut self, pes: &[u32], toward: Port, color: u8, source: Port) {
        for (j, &pe) in pes.iter().enumerate() {
            let input = if j == 0 { source } else { toward.opposite() };
            let mut out = if j == 0 && source == Port::Ramp {
                0
            } else {
                Port::Ramp.bit()
            };
            if j + 1 < pes.len() {
                out |= toward.bit();
            }
            if out != 0 {
                self.set(pe, color, input.bit(), out);
            }
        }
    }
}

/// A stream of wavelets entering the mesh at an edge PE through `port` (which must face out of
/// the mesh), at most one per cycle, from cycle 0.
#[derive(Debug, Clone)]
pub struct EdgeStream {
    pub pe: u32,
    pub color: u8,
    pub port: Port,
    pub wavelets: Vec<u64>,
}

/// A kernel ready to run: its mesh, routes, colors, and the wavelets that start it.
#[derive(Debug, Clone)]
pub struct Program {
    pub mesh: Mesh,
    pub routes: Routes,
    pub edge_streams: Vec<EdgeStream>,
    /// Sends by cores at cycle 0: (PE, color, wavelets).
    pub initial_sends: Vec<(u32, u8, Vec<u64>)>,
    /// Blocks sent by cores at cycle 0 (after their wavelets): (PE, color, tag, wavelets), a
    /// longer one in blocks of at most `u16::MAX`.
    pub initial_blocks: Vec<(u32, u8, u64, u64)>,
}

impl Program {
    pub fn new(mesh: Mesh, colors: u8) -> Self {
        Self {
            mesh,
            routes: Routes::new(mesh, colors),
            edge_streams: Vec::new(),
            initial_sends: Vec::new(),
            initial_blocks: Vec::new(),
        }
    }

    /// Refuses routes that leave the mesh, edge streams that do not enter from outside, more
    /// colors than the fabric lets kernels use, route tables of another size than the mesh's,
    /// and a (PE, color) of an edge stream or an initial send outside the mesh's PEs and the
    /// program's colors: the engine indexes its state by them (a color beyond the program's
    /// would reach another PE's channel or none).
    pub fn check(&self, usable_colors: u64) -> Result<()> {
        if self.routes.colors as u64 > usable_colors {
            return Err(Error::Input(format!(
                "the kernel needs {} colors but the fabric leaves {usable_colors} to kernels",
                self.routes.colors
            )));
        }
        self.check_route_tables()?;
        self.check_sources()?;
        let colors = self.routes.colors as usize;
        let ports = ports(&Port::ALL);
        for (ch, (&input, &out)) in self
            .routes
            .inputs
            .iter()
            .zip(&self.routes.outputs)
            .enumerate()
        {
            if (input | out) & !ports != 0 {
                let (r, c) = self.mesh.coords((ch / colors) as u32);
                return Err(Error::Simulation(format!(
                    "route of color {} at PE ({r}, {c}) names ports beyond N, E, S, W and the \
                     ramp (inputs {input:#07b}, outputs {out:#07b})",
                    ch % colors
                )));
            }
        }
        for (ch, &out) in self.routes.outputs.iter().enumerate() {
            let pe = (ch / colors) as u32;
            for port in [Port::N, Port::E, Port::S, Port::W] {
                if out & port.bit() != 0 && self.mesh.neighbor(pe, port).is_none() {
                    let (r, c) = self.mesh.coords(pe);
                    return Err(Error::Simulation(format!(
                        "route of color {} at PE ({r}, {c}) leaves the {}x{} mesh through {port:?}",
                        ch % colors,
                        self.mesh.rows,
                        self.mesh.cols
                    )));
                }
            }
        }
        for (ch, &out) in self.routes.outputs.iter().enumerate() {
            let (pe, color) = ((ch / colors) as u32, ch % colors);
            for port in [Port::N, Port::E, Port::S, Port::W] {
                let Some(next) = self
                    .mesh
                    .neighbor(pe, port)
                    .filter(|_| out & port.bit() != 0)
                else {
                    continue;
                };
                let enter = port.opposite();
                if self.routes.inputs[next as usize * colors + color] & enter.bit() == 0 {
                    let (r, c) = self.mesh.coords(pe);
                    let (nr, nc) = self.mesh.coords(next);
                    return Err(Error::Simulation(format!(
                        "route of color {color} at PE ({r}, {c}) sends {port:?} to PE ({nr}, {nc}), \
                         whose route for that color does not accept wavelets from {enter:?}"
                    )));
                }
            }
        }
        self.check_route_loops()?;
        for s in &self.edge_streams {
            if s.port == Port::Ramp || self.mesh.neighbor(s.pe, s.port).is_some() {
                let (r, c) = self.mesh.coords(s.pe);
                return Err(Error::Simulation(format!(
                    "edge stream of color {} enters PE ({r}, {c}) through {:?}, which is not a mesh edge",
                    s.color, s.port
                )));
            }
        }
        Ok(())
    }

    /// Refuses route tables that do not hold one route per (PE, color) of the mesh.
    fn check_route_tables(&self) -> Result<()> {
        let channels = self.mesh.pes() as u64 * self.routes.colors as u64;
        for (table, len) in [
            ("inputs", self.routes.inputs.len()),
            ("outputs", self.routes.outputs.len()),
        ] {
            if len as u64 != channels {
                return Err(Error::Simulation(format!(
                    "the route table of {table} has {len} entries; a {}x{} mesh with {} colors \
                     needs {channels}",
                    self.mesh.rows, self.mesh.cols, self.routes.colors
                )));
            }
        }
        Ok(())
    }

    /// Refuses an edge stream, initial send or initial block on a PE beyond the mesh or a
    /// color beyond the program's.
    fn check_sources(&self) -> Result<()> {
        let streams = self
            .edge_streams
            .iter()
            .map(|s| ("edge stream", s.pe, s.color));
        let sends = self
            .initial_sends
            .iter()
            .map(|&(pe, color, _)| ("initial send", pe, color));
        let blocks = self
            .initial_blocks
            .iter()
            .map(|&(pe, color, _, _)| ("initial block", pe, color));
        for (what, pe, color) in streams.chain(sends).chain(blocks) {
            self.check_pe_color(what, pe, color)?;
        }
        Ok(())
    }

    /// Refuses `pe` beyond the mesh's PEs or `color` beyond the program's colors, for `what`.
    pub fn check_pe_color(&self, what: &str, pe: u32, color: u8) -> Result<()> {
        if pe as usize >= self.mesh.pes() || color >= self.routes.colors {
            return Err(Error::Simulation(format!(
                "{what} on PE {pe}, color {color}: the {}x{} mesh has PEs 0 to {} and the \
                 program colors 0 to {}",
                self.mesh.rows,
                self.mesh.cols,
                self.mesh.pes() as i64 - 1,
                self.routes.colors as i64 - 1
            )));
        }
        Ok(())
    }

    /// Refuses a route that leads a color around a loop of routers: a wavelet entering it
    /// would circle forever (routers forward every wavelet they accept), reaching cores on the
    /// way or filling the loop's buffers. Cores that pass wavelets on (a ring) are no loop here:
    /// each hop through a core is the kernel's doing.
    fn check_route_loops(&self) -> Result<()> {
        const WHITE: u8 = 0;
        const ON_PATH: u8 = 1;
        const DONE: u8 = 2;
        let colors = self.routes.colors as usize;
        let pes = self.mesh.pes();
        let mut mark = vec![WHITE; pes];
        // Depth-first, iteratively: (PE, the next output port to follow).
        let mut path: Vec<(u32, usize)> = Vec::new();
        for color in 0..colors {
            mark.fill(WHITE);
            for start in 0..pes as u32 {
                if mark[start as usize] != WHITE {
                    continue;
                }
                mark[start as usize] = ON_PATH;
                path.push((start, 0));
                while let Some(&mut (pe, ref mut next_port)) = path.last_mut() {
                    let out = self.routes.outputs[pe as usize * colors + color];
                    let step = [Port::N, Port::E, Port::S, Port::W][*next_port..]
                        .iter()
                        .position(|&p| out & p.bit() != 0)
                        .map(|i| *next_port + i);
                    let Some(port_index) = step else {
                        mark[pe as usize] = DONE;
                        path.pop();
                        continue;
                    };
                    *next_port = port_index + 1;
                    let port = Port::from_index(port_index as u32);
                    // check() has kept routes inside the mesh.
                    let Some(next) = self.mesh.neighbor(pe, port) else {
                        continue;
                    };
                    match mark[next as usize] {
                        WHITE => {
                            mark[next as usize] = ON_PATH;
                            path.push((next, 0));
                        }
                        ON_PATH => return Err(self.loop_error(color, &path, next)),
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The error for a route loop of `color`: the PEs of `path` from `back_to` on.
    fn loop_error(&self, color: usize, path: &[(u32, usize)], back_to: u32) -> Error {
        const SHOWN: usize = 8;
        let from = path.iter().position(|&(pe, _)| pe == back_to).unwrap_or(0);
        let pes: Vec<u32> = path[from..].iter().map(|&(pe, _)| pe).collect();
        let mut names: Vec<String> = pes
            .iter()
            .chain([&back_to])
            .take(SHOWN)
            .map(|&pe| {
                let (r, c) = self.mesh.coords(pe);
                format!("PE ({r}, {c})")
            })
            .collect();
        if pes.len() + 1 > SHOWN {
            names.push(format!("… ({} PEs in all)", pes.len()));
        }
        Error::Simulation(format!(
            "the route of color {color} loops through {}: a wavelet entering it would circle \
             forever",
            names.join(" → ")
        ))
    }
}

/// Core cycles a task costs, by kind, and the FMAC operations it executes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Task activation and index decode.
    pub overhead_cycles: u64,
    pub fmac_cycles: u64,
    pub reduction_cycles: u64,
    /// Multiply-adds executed (one per element of the local vector per weight).
    pub fmac_ops: u64,
}

impl Work {
    pub fn total_cycles(&self) -> u64 {
        self.overhead_cycles + self.fmac_cycles + self.reduction_cycles
    }
}

/// One send of a task: a wavelet (`count` 0), or a block of `count` ≥ 1 wavelets that travels
/// as one unit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Send {
    pub color: u8,
    pub data: u64,
    pub count: u16,
    /// Cycles after the task starts that the first wavelet is ready; `None`: when it ends.
    pub after_start: Option<u64>,
}

/// The sends a task makes; they leave the core through its ramp when the task ends (a block
/// may start earlier, see [`TaskIo::send_block`]).
#[derive(Debug, Default)]
pub struct TaskIo {
    pub(crate) sends: Vec<Send>,
}

impl TaskIo {
    /// Queues `data` for sending on `color` from this PE.
    #[inline]
    pub fn send(&mut self, color: u8, data: u64) {
        self.sends.push(Send {
            color,
            data,
            count: 0,
            after_start: None,
        });
    }

    /// Queues a *block*: `count` wavelets on `color` that the fabric carries as one unit, one
    /// wavelet per cycle: it takes `count` consecutive cycles of every link it crosses and one
    /// slot of every buffer it waits in, and the receiving core takes it in one task
    /// ([`Kernel::on_block`]) that streams it (a fabric DSD operation). Its first wavelet is
    /// ready `after_start` cycles after this task starts (`None`: when it ends), so a task that
    /// streams a block in can stream its result out as it goes. `data` is the kernel's own tag
    /// (the engine carries no per-wavelet values for a block). A block of 1 is still a block
    /// (it reaches [`Kernel::on_block`]); a `count` of 0 is taken as 1.
    #[inline]
    pub fn send_block(&mut self, color: u8, data: u64, count: u16, after_start: Option<u64>) {
        self.sends.push(Send {
            color,
            data,
            count: count.max(1),
            after_start,
        });
    }
}

/// The behaviour of the cores: what each arriving wavelet does.
pub trait Kernel {
    /// The task that a wavelet of `color` arriving at the core of `pe` triggers at `now_cycle`;
    /// `None` when the PE's state cannot take it yet: it stays queued and is offered again
    /// after the PE's next task ends or its sends drain.
    fn on_wavelet(
        &mut self,
        pe: u32,
        color: u8,
        data: u64,
        now_cycle: u64,
        io: &mut TaskIo,
    ) -> Option<Work>;

    /// The send queue of `pe` for `color` has sent its last wavelet (its SRAM buffer is free).
    fn on_sends_drained(&mut self, _pe: u32, _color: u8) {}

    /// The task that a block of `count` wavelets (sent with [`TaskIo::send_block`]) arriving at
    /// the core of `pe` triggers at `now_cycle` (when its first wavelet has arrived; the others
    /// follow one per cycle, and the task must last at least `count` cycles). `None`: not yet,
    /// as for [`Kernel::on_wavelet`]. Only kernels that send blocks receive them.
    fn on_block(
        &mut self,
        _pe: u32,
        _color: u8,
        _data: u64,
        _count: u16,
        _now_cycle: u64,
        _io: &mut TaskIo,
    ) -> Option<Work> {
        None
    }

    /// (PE, color) pairs still waiting for wavelets; empty when the kernel is complete.
    fn expected(&self) -> Vec<(u32, u8)>;
}
