//! Writing result files so that an interrupted run never leaves a half-written one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Temporary files being written now, and whether an interrupt has come: a writer creates its
/// temporary while holding this lock, so the interrupt handler, which takes it to remove them,
/// sees every temporary that exists, and no writer creates one after it.
struct InFlight {
    files: Vec<PathBuf>,
    interrupted: bool,
}

static IN_FLIGHT: Mutex<InFlight> = Mutex::new(InFlight {
    files: Vec::new(),
    interrupted: false,
});

fn in_flight() -> MutexGuard<'static, InFlight> {
    IN_FLIGHT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes the temporary files of writes in flight: called on Ctrl-C or SIGTERM, so that an
/// interrupted run leaves no half-written file behind; no write starts after it (the process is
/// about to exit). (SIGKILL cannot be caught; the next run into the same folder removes what it
/// left, see [`remove_stale_temporaries`].)
pub fn remove_in_flight_temporaries() {
    let mut state = in_flight();
    state.interrupted = true;
    for file in &state.files {
        let _ = std::fs::remove_file(file);
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to disk,
/// then renamed over `path`. A run killed at any point leaves the old file or the new one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io_error = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let temporary = temporary_path(path)?;
    let file = {
        let mut state = in_flight();
        if state.interrupted {
            drop(state);
            wait_for_exit();
        }
        let file = std::fs::File::create(&temporary).map_err(io_error)?;
        state.files.push(temporary.clone());
        file
    };
    let result = (|| {
        let mut file = file;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    let mut state = in_flight();
    if result.is_err() {
        if state.interrupted {
            // The handler removed the temporary under this write.
            drop(state);
            wait_for_exit();
        }
        let _ = std::fs::remove_file(&temporary);
    }
    state.files.retain(|f| f != &temporary);
    result.map_err(io_error)
}

/// The temporary `write_atomic` writes `path` through: `.NAME.tmp-PID` in the same folder.
fn temporary_path(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Input(format!("{}: not a file name", path.display())))?;
    Ok(output_folder(path).join(temporary_name(&name.to_string_lossy())))
}

/// The folder a file given as `path` goes into (`.` for a bare file name).
fn output_folder(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates and removes the temporary `write_atomic` would write `path` through, so that a
/// folder which cannot take it (no permission, read-only, a name too long) is found before any
/// work. Registered like a write's temporary, so an interrupt removes it too.
fn probe_writable(path: &Path) -> std::io::Result<()> {
    let temporary = temporary_path(path).map_err(std::io::Error::other)?;
    let mut state = in_flight();
    if state.interrupted {
        drop(state);
        wait_for_exit();
    }
    std::fs::File::create(&temporary)?;
    state.files.push(temporary.clone());
    let removed = std::fs::remove_file(&temporary);
    state.files.retain(|f| f != &temporary);
    removed
}

/// After an interrupt the handler has removed the temporaries and the process is exiting: a
/// writer writes nothing more and reports no error about the file it lost.
fn wait_for_exit() -> ! {
    loop {
        std::thread::park();
    }
}

/// Creates `folder` and its parents; an error names the folder. A file in its place is bad
/// input (`--out` names a file), not an I/O failure.
pub fn create_folder(folder: &Path) -> Result<()> {
    // The nearest part of the path that exists must be a folder.
    if let Some(file) = folder
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .filter(|p| !p.is_dir())
    {
        return Err(Error::Input(format!(
            "{}: not a folder (a file of that name exists); give a folder for the results",
            file.display()
        )));
    }
    std::fs::create_dir_all(folder).map_err(|source| Error::Io {
        path: folder.display().to_string(),
        source,
    })
}

/// Refuses, before any work, an output file `flag` names that could not be written: its folder
/// missing, not a folder or not writable (a temporary is created there and removed), or the
/// path itself a folder.
pub fn check_output_file(flag: &str, path: &Path) -> Result<()> {
    let folder = output_folder(path);
    let why = if folder.exists() && !folder.is_dir() {
        format!("{} is a file, not a folder", folder.display())
    } else if !folder.is_dir() {
        format!("its folder {} does not exist", folder.display())
    } else if path.is_dir() {
        "it is a folder".to_string()
    } else if path.exists() && !path.is_file() {
        // The write renames a new file over it: /dev/null would become a regular file.
        "it is a device, pipe or socket, not a file".to_string()
    } else if let Err(e) = probe_writable(path) {
        format!("a file cannot be written in {}: {e}", folder.display())
    } else {
        return Ok(());
    };
    Err(Error::Input(format!(
        "{flag} {}: cannot write there ({why}); give a file in an existing folder you can \
         write to",
        path.display()
    )))
}

/// Refuses, before any work, an output folder `flag` names that could not be written: a file in
/// its place, or a folder where a file cannot be created (no permission, read-only, a name too
/// long). A folder that does not exist yet is created to be probed, then removed again (with
/// the parents created for it), so nothing is left behind if a later check refuses the run.
pub fn check_output_folder(flag: &str, folder: &Path) -> Result<()> {
    let refuse = |why: String| {
        Error::Input(format!(
            "{flag} {}: cannot write there ({why}); give a folder you can write to",
            folder.display()
        ))
    };
    let missing = missing_folders(folder);
    create_folder(folder).map_err(|e| match e {
        Error::Input(why) => Error::Input(format!("{flag} {why}")),
        other => refuse(other.to_string()),
    })?;
    let probed = probe_writable(&folder.join("wafersim"));
    remove_empty_folders(&missing);
    probed.map_err(|e| refuse(e.to_string()))
}

/// The folders [`create_folder`] would create for `folder`: it and its missing parents,
/// deepest first.
pub fn missing_folders(folder: &Path) -> Vec<PathBuf> {
    folder
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect()
}

/// Removes those of `folders` (deepest first, as [`missing_folders`] lists them) that are
/// empty: undoes [`create_folder`] for a run refused before it wrote anything.
pub fn remove_empty_folders(folders: &[PathBuf]) {
    for folder in folders {
        let _ = std::fs::remove_dir(folder);
    }
}

/// Refuses two output flags naming one file (`--counters same --trace same`): the second
/// write would silently replace the first. Call after [`check_output_file`] on each (their
/// folders exist).
pub fn check_distinct_outputs(outputs: &[(&str, &Path)]) -> Result<()> {
    let resolved = |path: &Path| {
        let folder = output_folder(path);
        let folder = folder
            .canonicalize()
            .unwrap_or_else(|_| folder.to_path_buf());
        folder.join(path.file_name().unwrap_or_default())
    };
    for (i, &(flag, path)) in outputs.iter().enumerate() {
        if let Some((other, _)) = outputs[..i]
            .iter()
            .find(|(_, earlier)| resolved(earlier) == resolved(path))
        {
            return Err(Error::Input(format!(
                "{other} and {flag} both name {}: the second would overwrite the first; give \
                 each output its own file",
                path.display()
            )));
        }
    }
    Ok(())
}

/// A folder held by this process while a run writes into it; released when dropped, and by the
/// system when the process ends however it ends (a kill leaves no stale lock).
#[derive(Debug)]
pub struct FolderLock {
    _held: Option<std::fs::File>,
}

/// Holds `folder` (which must exist) for one run, so that a second run into the same folder is
/// refused instead of mixing its files with this run's (`train --out`; sweep shards share their
/// folder on purpose and do not take it). The lock is an advisory `flock` on the folder itself,
/// so no file is left behind. Where a folder cannot be locked (a file system without locks, or
/// a platform where a folder cannot be opened as a file), the run goes ahead unlocked.
pub fn lock_folder(folder: &Path) -> Result<FolderLock> {
    let Ok(handle) = std::fs::File::open(folder) else {
        return Ok(FolderLock { _held: None });
    };
    match handle.try_lock() {
        Ok(()) => Ok(FolderLock {
            _held: Some(handle),
        }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Input(format!(
            "{}: another wafersim run is writing into this folder; wait for it to end or give \
             another --out",
            folder.display()
        ))),
        Err(std::fs::TryLockError::Error(_)) => Ok(FolderLock { _held: None }),
    }
}

/// What a temporary's name ends with before its process id and number.
const TEMPORARY_MARK: &str = ".wafersim-tmp-";

/// A fresh temporary name for a write of `name`: `.NAME.wafersim-tmp-PID-N`, N counting this
/// process's writes, so that two writes at once (two threads, two processes) never share one.
fn temporary_name(name: &str) -> String {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    format!(".{name}{TEMPORARY_MARK}{}-{n}", std::process::id())
}

/// Whether `name` is one [`temporary_name`] makes: nothing else in a folder is removed as a
/// temporary (a user's `.notes.tmp-keep` is not one).
fn is_temporary(name: &str) -> bool {
    let Some((target, tail)) = name.rsplit_once(TEMPORARY_MARK) else {
        return false;
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let numbered = tail
        .split_once('-')
        .is_some_and(|(pid, n)| digits(pid) && digits(n));
    target.len() > 1 && target.starts_with('.') && numbered
}

/// Removes the temporary files a killed earlier run left in `folder` (a SIGKILL between writing
/// and renaming): only names wafersim's writes make. Only for a folder one process writes at a
/// time, like `train --out`: sweep shards share their folder and must not remove each other's
/// files in flight.
pub fn remove_stale_temporaries(folder: &Path) -> Result<()> {
    let io_error = |source| Error::Io {
        path: folder.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(folder).map_err(io_error)? {
        let path = entry.map_err(io_error)?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_temporary(&name) {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(())
}

/// The manifest of a folder a run owns (`train --out`): the names of the files wafersim wrote
/// there, so that a rerun removes those it no longer writes (a heatmap of a sparsity it does not
/// run) and never a file it did not write.
const MANIFEST: &str = "wafersim-manifest.json";

/// What a manifest holds.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    files: Vec<String>,
}

/// The outputs of a run into a folder it owns, between [`Outputs::begin`] and
/// [`Outputs::finish`].
#[derive(Debug)]
pub struct Outputs {
    folder: PathBuf,
    earlier: Vec<String>,
}

impl Outputs {
    /// Before the first write: reads the files an earlier run recorded, and records them with
    /// the names this run is about to write (`planned`), so that a run killed midway leaves no
    /// file of its own unrecorded. `ours` says which names the run can write: a manifest entry
    /// that is not one (or not a plain name in the folder) is never removed.
    pub fn begin(folder: &Path, planned: &[String], ours: fn(&str) -> bool) -> Result<Outputs> {
        let text = std::fs::read_to_string(folder.join(MANIFEST)).unwrap_or_default();
        let recorded: ManifestFile = serde_json::from_str(&text).unwrap_or_default();
        let plain = |n: &String| !n.starts_with('.') && !n.contains(['/', '\\']) && ours(n);
        let earlier: Vec<String> = recorded.files.into_iter().filter(plain).collect();
        let outputs = Outputs {
            folder: folder.to_path_buf(),
            earlier,
        };
        let mut both = outputs.earlier.clone();
        both.extend(planned.iter().cloned());
        outputs.record(both)?;
        Ok(outputs)
    }

    /// After the last write: removes the files an earlier run recorded that this one did not
    /// write, and records what it wrote.
    pub fn finish(self, written: &[String]) -> Result<()> {
        for name in self.earlier.iter().filter(|n| !written.contains(n)) {
            let path = self.folder.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io {
                        path: path.display().to_string(),
                        source: e,
                    })
                }
                _ => {}
            }
        }
        self.record(written.to_vec())
    }

    fn record(&self, mut files: Vec<String>) -> Result<()> {
        files.sort();
        files.dedup();
        let mut json = serde_json::to_string_pretty(&ManifestFile { files })
            .map_err(|e| Error::Simulation(format!("cannot encode the manifest: {e}")))?;
        json.push('\n');
        write_atomic(&self.folder.join(MANIFEST), json.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("wafersim-atomic-{}", std::process::id()));
        create_folder(&dir).unwrap();
        let path = dir.join("report.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.json")]);
    }

    #[test]
    fn only_names_wafersim_makes_are_temporaries() {
        let made = temporary_name("report.json");
        assert!(is_temporary(&made), "{made}");
        assert_ne!(made, temporary_name("report.json"), "each write its own");
        for user in [
            ".notes.tmp-keep",
            ".report.json.tmp-12",
            "report.json.wafersim-tmp-1-2",
            ".wafersim-tmp-1-2",
            ".x.wafersim-tmp-1-",
            ".x.wafersim-tmp-a-2",
        ] {
            assert!(!is_temporary(user), "{user}");
        }
    }

    #[test]
    fn an_output_file_in_a_missing_folder_or_on_a_folder_is_refused() {
        let dir = std::env::temp_dir();
        check_output_file("--trace", &dir.join("t.json")).unwrap();
        check_output_file("--trace", Path::new("t.json")).unwrap();
        let missing = dir.join("wafersim-no-such-folder").join("t.json");
        let error = check_output_file("--trace", &missing).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().starts_with("--trace "), "{error}");
        assert!(error.to_string().contains("does not exist"), "{error}");
        let error = check_output_file("--counters", &dir).unwrap_err();
        assert!(error.to_string().contains("it is a folder"), "{error}");
    }

    #[test]
    fn a_file_in_the_folder_s_place_is_bad_input() {
        let file =
            std::env::temp_dir().join(format!("wafersim-not-a-folder-{}", std::process::id()));
        std::fs::write(&file, "x").unwrap();
        let error = create_folder(&file).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("not a folder"), "{error}");
        let error = create_folder(&file.join("points")).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(
            error
                .to_string()
                .starts_with(&format!("{}: not a folder", file.display())),
            "{error}"
        );
        let _ = std::fs::remove_file(&file);
    }

    #[test]
    fn a_locked_folder_is_refused_until_its_lock_is_dropped() {
        let dir = std::env::temp_dir().join(format!("wafersim-lock-{}", std::process::id()));
        create_folder(&dir).unwrap();
        let held = lock_folder(&dir).unwrap();
        assert!(held._held.is_some(), "a local folder can be locked");
        let refused = lock_folder(&dir).unwrap_err();
        assert_eq!(refused.exit_code(), 2);
        assert!(refused.to_string().contains("another wafersim run"));
        drop(held);
        lock_folder(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no lock file");
    }
}
