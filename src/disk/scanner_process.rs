//! The disk reads of a rescan, in a process of their own: the loop never
//! waits for the disk (issue 21). This is what runs in that process,
//! `dmg_manager --packages-scanner DIR DATATYPES_FILE` (started by the
//! daemon, src/daemon/scanner.rs, which says why a process and not a
//! thread): it owns the [`Scanner`] and the [`DatatypesFile`], reads one
//! request line (JSON) on stdin, scans, and writes one reply line (JSON) on
//! stdout, until its stdin ends.

use super::datatypes::{DatatypesFailure, DatatypesFile};
use super::scanner::Scanner;
use crate::core::packages::ScanReport;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;

/// The hidden first argument that makes `dmg_manager` the scanner.
pub(crate) const ARG: &str = "--packages-scanner";

/// One request: scan now; `known` (to a scanner just started) the package
/// names the manager knows.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) known: Option<Vec<String>>,
}

/// What one scan found: the packages' changes, or why `packages_dir`
/// could not be listed; `datatypes_file`'s new content, if it changed.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Reply {
    pub(crate) scan: Result<ScanReport, String>,
    pub(crate) datatypes: Option<Result<Box<RawValue>, DatatypesFailure>>,
}

/// The scanner's side: the disk reads of one scan.
pub(crate) struct Worker {
    scanner: Scanner,
    datatypes: DatatypesFile,
}

impl Worker {
    pub(crate) fn new(packages_dir: PathBuf, datatypes_file: PathBuf) -> Worker {
        Worker {
            scanner: Scanner::new(packages_dir),
            datatypes: DatatypesFile::new(datatypes_file),
        }
    }

    /// Does what `request` asks.
    pub(crate) fn answer(&mut self, request: Request) -> Reply {
        if let Some(known) = request.known {
            self.scanner.assume_known(known);
        }
        Reply {
            scan: self.scanner.scan().map_err(|failure| failure.to_string()),
            datatypes: self
                .datatypes
                .refresh()
                .map(|read| read.map_err(DatatypesFailure::from)),
        }
    }

    /// Answers each request line of `input` with a reply line on
    /// `output`, until the end of `input` (the manager is gone).
    pub(crate) fn serve(&mut self, input: impl BufRead, mut output: impl Write) -> io::Result<()> {
        for line in input.lines() {
            let request: Request = serde_json::from_str(&line?).map_err(io::Error::other)?;
            let reply = self.answer(request);
            serde_json::to_writer(&mut output, &reply).map_err(io::Error::other)?;
            output.write_all(b"\n")?;
            output.flush()?;
        }
        Ok(())
    }
}

/// `dmg_manager --packages-scanner DIR DATATYPES_FILE`: the scanner's
/// main; its exit code.
pub(crate) fn main(args: &[String]) -> i32 {
    let [dir, datatypes] = args else {
        eprintln!("dmg_manager {ARG}: expected DIR DATATYPES_FILE (started by the manager, not by hand)");
        return 2;
    };
    let mut worker = Worker::new(PathBuf::from(dir), PathBuf::from(datatypes));
    match worker.serve(io::stdin().lock(), io::stdout().lock()) {
        Ok(()) => 0,
        // The manager went away mid-reply: nothing to say to anyone.
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => 0,
        Err(error) => {
            eprintln!("dmg_manager {ARG}: {error}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::packages::PackageChange;
    use std::path::Path;

    fn installed_names(report: &ScanReport) -> impl Iterator<Item = &str> {
        report.changes.iter().filter_map(|change| match change {
            PackageChange::Updated { name, .. } => Some(name.as_str()),
            _ => None,
        })
    }

    #[test]
    fn the_worker_answers_each_request_line_with_one_reply_line() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packages");
        let mut worker = Worker::new(dir, PathBuf::from("/nonexistent/datatypes.json"));
        let mut output = Vec::new();
        worker.serve(&b"{}\n{}\n"[..], &mut output).unwrap();
        let lines: Vec<&[u8]> = output.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 2);
        let first: Reply = serde_json::from_slice(lines[0]).unwrap();
        let names: Vec<&str> = installed_names(first.scan.as_ref().unwrap()).collect();
        assert_eq!(names, ["diskfree", "ebusd", "rfxcom", "test"]);
        let missing = first.datatypes.unwrap().unwrap_err();
        assert!(missing.missing, "{}", missing.message);
        let second: Reply = serde_json::from_slice(lines[1]).unwrap();
        assert!(second.scan.unwrap().changes.is_empty(), "nothing changed");
        assert!(second.datatypes.is_none(), "unchanged");
    }

    #[test]
    fn a_new_scanner_told_the_known_names_reports_the_removed_ones() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packages");
        let mut worker = Worker::new(dir, PathBuf::from("/nonexistent/datatypes.json"));
        let reply = worker.answer(Request {
            known: Some(vec!["gone".into(), "rfxcom".into()]),
        });
        let changes = reply.scan.unwrap().changes;
        assert!(
            changes.contains(&PackageChange::Removed { name: "gone".into() }),
            "{changes:?}"
        );
        assert!(!changes.contains(&PackageChange::Removed { name: "rfxcom".into() }));
    }

    #[test]
    fn a_listing_failure_crosses_the_pipe_as_its_line() {
        let mut worker = Worker::new(
            PathBuf::from("/nonexistent/packages"),
            PathBuf::from("/nonexistent/d.json"),
        );
        let mut output = Vec::new();
        worker.serve(&b"{}\n"[..], &mut output).unwrap();
        let reply: Reply = serde_json::from_slice(&output).unwrap();
        let failure = reply.scan.unwrap_err();
        assert!(
            failure.starts_with("cannot list packages_dir /nonexistent/packages: "),
            "{failure}"
        );
    }
}
