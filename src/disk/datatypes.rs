//! Domogik's `datatypes.json` on disk: read at start and again at a rescan
//! when its `stat` changed; what the bytes mean is `core::datatypes`.

use super::{Opening, Stat};
use crate::core::datatypes::{parse, MAX_BYTES, MISSING_PREFIX};
use serde_json::value::RawValue;
use std::path::PathBuf;

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
    /// or why it cannot be used (one line naming the path).
    /// Whether a failure from [`DatatypesFile::refresh`] is only "no such
    /// file", which a host without Domogik's resources has.
    pub(crate) fn is_missing(failure: &str) -> bool {
        failure.starts_with(MISSING_PREFIX)
    }

    pub(crate) fn refresh(&mut self) -> Option<Result<Box<RawValue>, String>> {
        let stat = super::stat(&self.path);
        if self.seen == Some(stat) {
            return None;
        }
        self.seen = Some(stat);
        let shown = self.path.display();
        // Non-blocking and regular files only: a FIFO put there must not
        // block the loop at every rescan.
        let read = super::read_capped(&self.path, MAX_BYTES, Opening::RegularFileOnly);
        Some(match read {
            Ok(bytes) => parse(&bytes).map_err(|why| format!("datatypes_file {shown} {why}")),
            // No file at all: Domogik's resources are not installed on this
            // host (a standalone one), which is no fault (the caller tells
            // it apart by this wording; docs/PROTOCOL.md §9).
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(format!(
                "{MISSING_PREFIX} {shown}: datatype.get answers null (set [manager] datatypes_file to Domogik's datatypes.json)"
            )),
            Err(error) => {
                // Read again at the next rescan: the reason may not show in stat.
                self.seen = None;
                Err(format!("cannot read datatypes_file {shown}: {error}"))
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
        let error = fifo.refresh().unwrap().unwrap_err();
        let _ = fs::remove_file(&path);
        assert!(error.contains("not a regular file"), "{error}");
    }

    #[test]
    fn unusable_files_say_why() {
        assert!(parse(b"[1]").unwrap_err().contains("not a JSON object"));
        assert!(parse(b"{").unwrap_err().contains("JSON error"));
        let mut missing = DatatypesFile::new(PathBuf::from("/nonexistent/datatypes.json"));
        let error = missing.refresh().unwrap().unwrap_err();
        assert!(
            error.starts_with("no datatypes_file /nonexistent/datatypes.json: ") && DatatypesFile::is_missing(&error),
            "{error}"
        );
        assert!(missing.refresh().is_none(), "still missing: nothing new to say");
        // A folder in its place opens but cannot be read: an error, tried again.
        let mut folder = DatatypesFile::new(std::env::temp_dir());
        let error = folder.refresh().unwrap().unwrap_err();
        assert!(
            error.starts_with("cannot read datatypes_file ") && !DatatypesFile::is_missing(&error),
            "{error}"
        );
        assert!(folder.refresh().is_some(), "tried again");
    }
}
