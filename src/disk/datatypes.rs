//! Domogik's `datatypes.json` on disk: read at start and again at a rescan
//! when its `stat` changed; what the bytes mean is `core::datatypes`.

use super::{Opening, Stat};
use crate::core::datatypes::{parse, DatatypesError, MAX_BYTES};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why the file cannot be used; displayed as one line naming the path.
#[derive(Debug)]
pub(crate) enum DatatypesFileError {
    /// No file at all: Domogik's resources are not installed on this host
    /// (a standalone one), which is no fault (docs/PROTOCOL.md §9).
    Missing(PathBuf),
    Unreadable(PathBuf, io::Error),
    Invalid(PathBuf, DatatypesError),
}

impl DatatypesFileError {
    /// Whether it is only "no such file", which a host without Domogik's
    /// resources has (said at info, not as an error).
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self, DatatypesFileError::Missing(_))
    }
}

impl fmt::Display for DatatypesFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatatypesFileError::Missing(path) => write!(
                f,
                "no datatypes_file {}: datatype.get answers null (set [manager] datatypes_file to Domogik's datatypes.json)",
                path.display()
            ),
            DatatypesFileError::Unreadable(path, error) => {
                write!(f, "cannot read datatypes_file {}: {error}", path.display())
            }
            DatatypesFileError::Invalid(path, why) => write!(f, "datatypes_file {} {why}", path.display()),
        }
    }
}

impl std::error::Error for DatatypesFileError {}

/// A [`DatatypesFileError`] as it crosses the scanner process's pipe
/// (src/disk/scanner_process.rs): whether the file is only missing, and
/// the line that says why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DatatypesFailure {
    pub(crate) missing: bool,
    pub(crate) message: String,
}

impl From<DatatypesFileError> for DatatypesFailure {
    fn from(error: DatatypesFileError) -> DatatypesFailure {
        DatatypesFailure {
            missing: error.is_missing(),
            message: error.to_string(),
        }
    }
}

/// The file, and what `stat` said of it at the last read.
#[derive(Debug)]
pub(crate) struct DatatypesFile {
    path: PathBuf,
    seen: Option<Option<Stat>>,
}

impl DatatypesFile {
    pub(crate) fn new(path: PathBuf) -> DatatypesFile {
        DatatypesFile { path, seen: None }
    }

    /// `None` when the file is as at the last call; else its new content,
    /// or why it cannot be used.
    pub(crate) fn refresh(&mut self) -> Option<Result<Box<RawValue>, DatatypesFileError>> {
        let stat = super::stat(&self.path);
        if self.seen == Some(stat) {
            return None;
        }
        self.seen = Some(stat);
        let path = || self.path.clone();
        // Non-blocking and regular files only: a FIFO put there must not
        // block the loop at every rescan.
        let read = super::read_capped(&self.path, MAX_BYTES, Opening::RegularFileOnly);
        Some(match read {
            Ok(bytes) => parse(&bytes).map_err(|why| DatatypesFileError::Invalid(path(), why)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Err(DatatypesFileError::Missing(path())),
            Err(error) => {
                // Read again at the next rescan: the reason may not show in stat.
                let failure = DatatypesFileError::Unreadable(path(), error);
                self.seen = None;
                Err(failure)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;

    #[test]
    fn the_fixture_is_read_once_until_it_changes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v05/datatypes.json");
        let mut file = DatatypesFile::new(path);
        let data = file.refresh().unwrap().unwrap();
        assert!(
            data.get().starts_with(r#"{"DT_Bool": {"childs": ["DT_Switch"]"#),
            "{}",
            data.get()
        );
        assert!(file.refresh().is_none());
    }

    #[test]
    fn a_fifo_in_its_place_is_refused_without_blocking() {
        let path = std::env::temp_dir().join(format!("dmg-datatypes-fifo-{}", std::process::id()));
        let _ = fs::remove_file(&path);
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        if !made.is_ok_and(|status| status.success()) {
            return; // no mkfifo: nothing to show
        }
        let mut fifo = DatatypesFile::new(path.clone());
        let error = fifo.refresh().unwrap().unwrap_err().to_string();
        let _ = fs::remove_file(&path);
        assert!(error.contains("not a regular file"), "{error}");
    }

    #[test]
    fn unusable_files_say_why() {
        assert!(parse(b"[1]").unwrap_err().to_string().contains("not a JSON object"));
        assert!(parse(b"{").unwrap_err().to_string().contains("JSON error"));
        let mut missing = DatatypesFile::new(PathBuf::from("/nonexistent/datatypes.json"));
        let error = missing.refresh().unwrap().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("no datatypes_file /nonexistent/datatypes.json: ")
                && error.is_missing(),
            "{error}"
        );
        assert!(missing.refresh().is_none(), "still missing: nothing new to say");
        // A folder in its place opens but cannot be read: an error, tried again.
        let mut folder = DatatypesFile::new(std::env::temp_dir());
        let error = folder.refresh().unwrap().unwrap_err();
        assert!(
            error.to_string().starts_with("cannot read datatypes_file ") && !error.is_missing(),
            "{error}"
        );
        assert!(folder.refresh().is_some(), "tried again");
    }
}
