//! Progress of long work on stderr (`sweep`'s points, `kernel`'s simulated cycles): a bar on a
//! terminal; outside one (a Slurm job's log, a pipe), where a bar would be noise, a line at most
//! every [`PROGRESS_LINE_SECONDS`] and one when the work is done; nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

use super::Common;
use crate::error::{Error, Result};

/// Seconds between two progress lines when stderr is not a terminal.
pub const PROGRESS_LINE_SECONDS: u64 = 30;

/// Sets the seconds between progress lines instead (whole seconds; 0: a line at every update):
/// for tests, which cannot wait 30 s for a second line.
pub const PROGRESS_SECONDS_VARIABLE: &str = "WAFERSIM_PROGRESS_SECONDS";

/// Where a command's progress goes: a bar, lines, or nowhere. Shared by the threads of a
/// sweep.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    log_lines: bool,
    started: Instant,
    /// When the last line was printed.
    last_line: Mutex<Instant>,
    line_seconds: u64,
}

impl Progress {
    /// Progress for a command run with `common`; on a terminal a bar drawn with `template`
    /// (indicatif's). `--json` keeps stderr's lines but draws no bar (as before: a bar there
    /// would interleave with what a script reads). Refuses a bad [`PROGRESS_SECONDS_VARIABLE`].
    pub fn new(common: &Common, template: &str) -> Result<Self> {
        let line_seconds = line_seconds(std::env::var(PROGRESS_SECONDS_VARIABLE).ok())?;
        let bar = (!common.quiet && !common.json && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(template).expect("a valid template"),
            );
            bar
        });
        let started = Instant::now();
        Ok(Progress {
            log_lines: !common.quiet && bar.is_none(),
            bar,
            started,
            last_line: Mutex::new(started),
            line_seconds,
        })
    }

    /// Whether anything is shown at all (not under `--quiet`).
    pub fn shown(&self) -> bool {
        self.bar.is_some() || self.log_lines
    }

    /// `done` of `total` (units of the bar's template); outside a terminal, the line `line`
    /// makes of the seconds since the start, if the last is old enough or `last` says the
    /// work is done.
    pub fn update(&self, done: u64, total: u64, last: bool, line: impl FnOnce(f64) -> String) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        } else if self.log_lines {
            let mut at = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
            if last || at.elapsed().as_secs() >= self.line_seconds {
                *at = Instant::now();
                eprintln!("{}", line(self.started.elapsed().as_secs_f64()));
            }
        }
    }

    /// Removes the bar, if there is one.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The seconds between lines: [`PROGRESS_LINE_SECONDS`], or `value` of the variable.
fn line_seconds(value: Option<String>) -> Result<u64> {
    match value {
        None => Ok(PROGRESS_LINE_SECONDS),
        Some(text) => text.trim().parse().map_err(|_| {
            Error::Input(format!(
                "{PROGRESS_SECONDS_VARIABLE}={text:?}: expected whole seconds between progress \
                 lines (0 or more; unset: {PROGRESS_LINE_SECONDS})"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_interval_is_30_s_or_the_variables_whole_seconds() {
        assert_eq!(line_seconds(None).unwrap(), 30);
        assert_eq!(line_seconds(Some("0".into())).unwrap(), 0);
        assert_eq!(line_seconds(Some(" 5 ".into())).unwrap(), 5);
        for bad in ["", "-1", "1.5", "soon"] {
            let err = line_seconds(Some(bad.into())).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(PROGRESS_SECONDS_VARIABLE), "{err}");
        }
    }
}
