//! Picture formats chosen by file extension, and saving through the report's atomic write.

use std::io::ErrorKind;
use std::path::Path;

use crate::error::{Error, Result};
use crate::report::write_atomic;

/// The picture formats `plot` writes, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// A bitmap, full resolution: one pixel or more per PE.
    Png,
    /// Vector graphics, small: heatmap cells aggregated into tiles.
    Svg,
}

impl Format {
    /// The format for `path`'s extension (case-insensitive), or `Error::Input` naming the file and
    /// the extensions allowed. Also refuses, before any drawing, a path whose folder is missing.
    pub(super) fn of(path: &Path) -> Result<Format> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let format = match extension.as_deref() {
            Some("png") => Format::Png,
            Some("svg") => Format::Svg,
            _ => {
                return Err(Error::input(format!(
                    "{}: unknown picture format; allowed extensions: png, svg",
                    path.display()
                )))
            }
        };
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !folder.is_dir() {
            return Err(unwritable(path, "its folder does not exist"));
        }
        Ok(format)
    }
}

/// Writes the picture atomically (`report::write_atomic`: temporary file in the same folder,
/// synced, renamed), so an interrupted run never leaves half a picture. A path the user cannot
/// write to (missing folder, no permission, read-only file system) is their input to fix.
pub(super) fn save(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes).map_err(|error| match error {
        Error::Io { source, .. }
            if matches!(
                source.kind(),
                ErrorKind::NotFound
                    | ErrorKind::PermissionDenied
                    | ErrorKind::ReadOnlyFilesystem
                    | ErrorKind::IsADirectory
                    | ErrorKind::NotADirectory
            ) =>
        {
            unwritable(path, &source.to_string())
        }
        other => other,
    })
}

fn unwritable(path: &Path, reason: &str) -> Error {
    Error::input(format!(
        "{}: cannot write the picture ({reason}); give a .png or .svg path in a writable folder",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::of(Path::new("b.png")).unwrap(), Format::Png);
        assert_eq!(Format::of(Path::new("b.SVG")).unwrap(), Format::Svg);
        for bad in ["b.jpg", "b", "png"] {
            let message = Format::of(Path::new(bad)).unwrap_err().to_string();
            assert!(message.starts_with(bad), "{message}");
            assert!(message.contains("png, svg"), "{message}");
        }
    }

    #[test]
    fn missing_folder_is_an_input_error_naming_the_file() {
        let path = std::env::temp_dir().join("wafersim-no-such-folder/x.png");
        for error in [
            Format::of(&path).unwrap_err(),
            save(&path, b"data").unwrap_err(),
        ] {
            assert_eq!(error.exit_code(), 2);
            assert!(
                error.to_string().contains("wafersim-no-such-folder/x.png"),
                "{error}"
            );
        }
    }
}
