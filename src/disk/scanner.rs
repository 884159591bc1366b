//! The package scanner: lists `packages_dir`, `stat`s each `info.json`,
//! and reads only the files whose fingerprint changed (PROTOCOL.md §3). The
//! judgement is pure (`core::packages`: a folder name or the bytes of an
//! `info.json` in, a verdict out; and `diff` here, which compares the
//! fingerprints of two scans); the result is a list of [`PackageChange`]s
//! for the clients map.

use super::package_files::{self, FilesFingerprint};
use super::{read_capped, Opening, Stat};
use crate::core::kind;
use crate::core::packages::{
    classify_folder, invalid, parse_info_json, FolderKind, InfoJsonError, Package, PackageChange, ScanReport,
    MAX_INFO_JSON_BYTES,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What `stat` said of an `info.json`: if this is unchanged, so is the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fingerprint {
    File(Stat),
    /// The file could not be examined (missing, a loop, not a folder...).
    Unreadable(String),
}

/// `packages_dir` could not be listed.
#[derive(Debug)]
pub struct ScanError {
    pub dir: PathBuf,
    pub error: io::Error,
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot list packages_dir {}: {}", self.dir.display(), self.error)
    }
}

/// The `info.json` fingerprints of the packages one scan found, by name.
type Fingerprints = BTreeMap<String, Fingerprint>;

/// Rescans `packages_dir`, remembering only fingerprints between scans.
#[derive(Debug)]
pub struct Scanner {
    dir: PathBuf,
    known: Fingerprints,
    /// The extra files' fingerprints, by package name.
    known_files: BTreeMap<String, FilesFingerprint>,
    strays: BTreeSet<String>,
}

impl Scanner {
    pub fn new(dir: PathBuf) -> Scanner {
        Scanner {
            dir,
            known: Fingerprints::new(),
            known_files: BTreeMap::new(),
            strays: BTreeSet::new(),
        }
    }

    /// A scanner started after others (the last one died): the package
    /// names the manager knows, so that its first scan reports those gone
    /// meanwhile as removed. Each is read again (its fingerprint is not
    /// known), and changes the client only if it differs.
    pub(crate) fn assume_known(&mut self, names: Vec<String>) {
        for name in names {
            self.known
                .entry(name)
                .or_insert_with(|| Fingerprint::Unreadable("not scanned yet".into()));
        }
    }

    /// Lists the folder and reports what changed since the last scan. On
    /// error nothing is forgotten: the next scan compares with the last
    /// good one.
    pub fn scan(&mut self) -> Result<ScanReport, ScanError> {
        let folders = list_folder(&self.dir).map_err(|error| ScanError {
            dir: self.dir.clone(),
            error,
        })?;
        let mut report = ScanReport::default();
        let mut plugins = Vec::new();
        let mut strays = BTreeSet::new();
        for folder in folders {
            match classify_folder(&folder) {
                FolderKind::Package(key) => plugins.push(key),
                kind => {
                    if !self.strays.contains(&folder) {
                        report
                            .new_strays
                            .push((folder.clone(), kind == FolderKind::BadPluginName));
                    }
                    strays.insert(folder);
                }
            }
        }
        self.strays = strays;

        // One `stat` per package: all that a scan of an unchanged tree costs.
        let mut now: Fingerprints = plugins
            .into_iter()
            .map(|name| {
                let fingerprint = fingerprint_of(&self.info_json(&name));
                (name, fingerprint)
            })
            .collect();
        let (removed, changed) = diff(&self.known, &now);
        for name in removed {
            report.changes.push(PackageChange::Removed { name });
        }
        for (name, fingerprint) in changed {
            let (package, remembered) = read_package(&name, &self.info_json(&name), fingerprint);
            now.insert(name.clone(), remembered);
            report.changes.push(PackageChange::Updated { name, package });
        }
        self.scan_files(&now, &mut report);
        report.scripts = now
            .keys()
            .filter(|name| fs::metadata(self.script(name)).is_ok_and(|metadata| metadata.is_file()))
            .cloned()
            .collect();
        self.known = now;
        Ok(report)
    }

    /// Adds a `Files` change for each package whose extra files are new
    /// or changed (a `readdir` of two folders and a `stat` per file each).
    fn scan_files(&mut self, packages: &Fingerprints, report: &mut ScanReport) {
        let mut now = BTreeMap::new();
        for name in packages.keys() {
            let folder = self.dir.join(kind::folder(name));
            let fingerprint = package_files::fingerprint(&folder);
            if self.known_files.get(name) != Some(&fingerprint) {
                report.changes.push(PackageChange::Files {
                    name: name.clone(),
                    files: package_files::read(name, &folder),
                });
            }
            now.insert(name.clone(), fingerprint);
        }
        self.known_files = now;
    }

    /// `<type>_<name>/bin/<name>.py`, the program a start runs.
    fn script(&self, key: &str) -> PathBuf {
        let (_, name) = kind::split(key);
        self.dir.join(kind::folder(key)).join("bin").join(format!("{name}.py"))
    }

    fn info_json(&self, name: &str) -> PathBuf {
        self.dir.join(kind::folder(name)).join("info.json")
    }
}

/// What changed between two scans: the packages gone, and the packages new
/// or whose fingerprint differs (only their `info.json` is to be read).
fn diff(before: &Fingerprints, now: &Fingerprints) -> (Vec<String>, Vec<(String, Fingerprint)>) {
    let removed = before.keys().filter(|name| !now.contains_key(*name)).cloned().collect();
    let changed = now
        .iter()
        .filter(|(name, fingerprint)| before.get(*name) != Some(fingerprint))
        .map(|(name, fingerprint)| (name.clone(), fingerprint.clone()))
        .collect();
    (removed, changed)
}

/// The names in `dir`, skipping names that are not UTF-8 (never packages).
fn list_folder(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

fn fingerprint_of(path: &Path) -> Fingerprint {
    match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Fingerprint::File(Stat::of(&metadata)),
        Ok(_) => Fingerprint::Unreadable("is not a regular file".into()),
        Err(error) => Fingerprint::Unreadable(describe_io_error(&error)),
    }
}

/// Reads a package whose fingerprint changed; returns it with the
/// fingerprint for the next scan to compare with.
fn read_package(name: &str, path: &Path, fingerprint: Fingerprint) -> (Package, Fingerprint) {
    let read = match &fingerprint {
        Fingerprint::Unreadable(why) => return (invalid(name, why), fingerprint),
        Fingerprint::File(Stat { size, .. }) if *size > MAX_INFO_JSON_BYTES => {
            return (invalid(name, InfoJsonError::TooLarge(*size)), fingerprint)
        }
        Fingerprint::File(_) => read_capped(path, MAX_INFO_JSON_BYTES, Opening::RegularFileOnly),
    };
    match read {
        Ok(bytes) => (parse_info_json(name, &bytes), fingerprint),
        Err(error) => (
            invalid(name, describe_io_error(&error)),
            remembered_after(&error, fingerprint),
        ),
    }
}

/// What to remember of an `info.json` that `stat` found but that could not
/// be read. A permission problem shows in `stat` once fixed (chmod and
/// chown change the ctime), so its fingerprint stands. Any other failure (no
/// file descriptor left under a connection flood, an I/O error, the file
/// replaced since `stat`) may be gone by the next scan, which must then read
/// again although `stat` shows no change: else the package would stay
/// invalid until its file changes, SIGHUP or not.
fn remembered_after(error: &io::Error, fingerprint: Fingerprint) -> Fingerprint {
    match error.kind() {
        io::ErrorKind::PermissionDenied => fingerprint,
        _ => Fingerprint::Unreadable(describe_io_error(error)),
    }
}

fn describe_io_error(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::NotFound => "is missing".into(),
        io::ErrorKind::PermissionDenied => "is not readable (permission denied)".into(),
        io::ErrorKind::NotADirectory => "cannot be read: the plugin folder is not a folder".into(),
        _ => format!("cannot be read: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::packages::PackageFiles;

    fn reason(package: Package) -> String {
        match package {
            Package::Invalid { reason } => reason,
            Package::Valid { .. } => panic!("expected an invalid package"),
        }
    }

    #[test]
    fn a_file_too_large_by_its_stat_is_refused_unread_and_named() {
        let fingerprint = Fingerprint::File(Stat {
            size: 2_000_000,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 1,
            device: 1,
        });
        // The path does not exist: the verdict must come from `stat` alone.
        assert_eq!(
            reason(read_package("demo", Path::new("/nonexistent/info.json"), fingerprint).0),
            "plugin_demo/info.json is too large: 2000000 bytes, at most 1048576"
        );
    }

    #[test]
    fn a_fifo_swapped_in_after_stat_is_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("dmg-fifo-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("info.json");
        let _ = fs::remove_file(&fifo);
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
        // In a thread, so that a regression fails the test instead of hanging it.
        let (sender, receiver) = std::sync::mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            sender.send(read_capped(&path, MAX_INFO_JSON_BYTES, Opening::RegularFileOnly).map_err(|e| e.to_string()))
        });
        let outcome = receiver.recv_timeout(std::time::Duration::from_secs(5));
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            outcome.expect("read_capped blocked on a FIFO"),
            Err("not a regular file".to_owned())
        );
    }

    #[test]
    fn diff_names_the_packages_gone_and_those_new_or_changed() {
        let file = |size| {
            Fingerprint::File(Stat {
                size,
                mtime_ns: 0,
                ctime_ns: 0,
                inode: 1,
                device: 1,
            })
        };
        let missing = || Fingerprint::Unreadable("is missing".into());
        let fingerprints = |entries: &[(&str, Fingerprint)]| -> Fingerprints {
            entries
                .iter()
                .map(|(name, fp)| (name.to_string(), fp.clone()))
                .collect()
        };
        let before = fingerprints(&[
            ("same", file(1)),
            ("gone", file(1)),
            ("grew", file(1)),
            ("broken", missing()),
        ]);
        let now = fingerprints(&[
            ("same", file(1)),
            ("grew", file(2)),
            ("broken", missing()),
            ("new", file(1)),
        ]);
        let (removed, changed) = diff(&before, &now);
        assert_eq!(removed, ["gone"]);
        assert_eq!(changed, [("grew".to_string(), file(2)), ("new".to_string(), file(1))]);
        // An unchanged tree: nothing to read.
        assert_eq!(diff(&now, &now), (vec![], vec![]));
    }

    #[test]
    fn a_read_failure_that_stat_cannot_show_is_retried_at_the_next_scan() {
        let file = Fingerprint::File(Stat {
            size: 10,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 1,
            device: 1,
        });
        let no_fd_left = io::Error::from_raw_os_error(libc::EMFILE);
        let retry = remembered_after(&no_fd_left, file.clone());
        assert!(matches!(retry, Fingerprint::Unreadable(_)), "{retry:?}");
        assert_ne!(retry, file, "the next stat must differ, so the file is read again");
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert_eq!(remembered_after(&denied, file.clone()), file);
        // A path that vanished after its stat: the next stat says the same.
        let gone = remembered_after(&io::Error::from(io::ErrorKind::NotFound), file);
        assert_eq!(gone, fingerprint_of(Path::new("/nonexistent/info.json")));
    }

    #[test]
    fn real_fixtures_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packages");
        let mut scanner = Scanner::new(dir);
        let report = scanner.scan().unwrap();
        let mut names = Vec::new();
        for change in report.changes {
            let (name, package) = match change {
                PackageChange::Updated { name, package } => (name, package),
                PackageChange::Files { .. } => continue,
                PackageChange::Removed { .. } => panic!("removal on first scan"),
            };
            assert!(matches!(package, Package::Valid { .. }), "{name}: {package:?}");
            names.push(name);
        }
        assert_eq!(names, ["diskfree", "ebusd", "rfxcom", "test"]);
        // A second scan of an unchanged tree reports nothing.
        assert!(scanner.scan().unwrap().changes.is_empty());
    }

    /// A scratch `packages_dir` for scanner tests, removed at the end.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(label: &str) -> Scratch {
            let path = std::env::temp_dir().join(format!("dmg-scan-{}-{label}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }

        fn plugin(&self, name: &str, text: &str) {
            fs::create_dir_all(self.0.join(format!("plugin_{name}"))).unwrap();
            fs::write(self.0.join(format!("plugin_{name}/info.json")), text).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn identity(name: &str, version: u32) -> String {
        format!(r#"{{"identity": {{"type": "plugin", "name": "{name}"}}, "v": {version}}}"#)
    }

    #[test]
    fn every_scan_names_the_packages_whose_program_is_there() {
        let dir = Scratch::new("scripts");
        dir.plugin("a", &identity("a", 1));
        dir.plugin("b", &identity("b", 1));
        fs::create_dir_all(dir.0.join("plugin_a/bin")).unwrap();
        fs::write(dir.0.join("plugin_a/bin/a.py"), "").unwrap();
        fs::create_dir_all(dir.0.join("plugin_b/bin/b.py")).unwrap();
        let mut scanner = Scanner::new(dir.0.clone());
        let scripts = |scanner: &mut Scanner| scanner.scan().unwrap().scripts.into_iter().collect::<Vec<_>>();
        assert_eq!(scripts(&mut scanner), ["a"], "b's is a folder");
        assert_eq!(scripts(&mut scanner), ["a"], "said at every scan, changed or not");
        fs::remove_file(dir.0.join("plugin_a/bin/a.py")).unwrap();
        assert!(scripts(&mut scanner).is_empty());
    }

    #[test]
    fn scanner_reports_additions_changes_and_removals() {
        let dir = Scratch::new("changes");
        dir.plugin("a", &identity("a", 1));
        dir.plugin("b", &identity("b", 1));
        let mut scanner = Scanner::new(dir.0.clone());
        let info_changes = |scanner: &mut Scanner| -> Vec<PackageChange> {
            let changes = scanner.scan().unwrap().changes;
            changes
                .into_iter()
                .filter(|change| !matches!(change, PackageChange::Files { .. }))
                .collect()
        };
        assert_eq!(info_changes(&mut scanner).len(), 2);

        dir.plugin("a", &identity("a", 22));
        fs::remove_dir_all(dir.0.join("plugin_b")).unwrap();
        let changes = info_changes(&mut scanner);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(changes.contains(&PackageChange::Removed { name: "b".into() }));
        let updated = changes.iter().find_map(|change| match change {
            PackageChange::Updated {
                name,
                package: Package::Valid { data },
            } if name == "a" => Some(data.get()),
            _ => None,
        });
        assert!(updated.is_some_and(|data| data.contains("\"v\": 22")), "{changes:?}");
    }

    #[test]
    fn extra_files_are_read_when_new_or_changed_only() {
        let dir = Scratch::new("files");
        dir.plugin("a", &identity("a", 1));
        let mut scanner = Scanner::new(dir.0.clone());
        let files_of = |changes: Vec<PackageChange>| -> Vec<PackageFiles> {
            changes
                .into_iter()
                .filter_map(|change| match change {
                    PackageChange::Files { files, .. } => Some(files),
                    _ => None,
                })
                .collect()
        };
        let first = files_of(scanner.scan().unwrap().changes);
        assert_eq!(first.len(), 1);
        assert!(first[0].conversions.is_empty());
        assert!(files_of(scanner.scan().unwrap().changes).is_empty(), "unchanged");

        fs::create_dir_all(dir.0.join("plugin_a/conversion")).unwrap();
        fs::write(dir.0.join("plugin_a/conversion/__init__.py"), "").unwrap();
        fs::write(dir.0.join("plugin_a/conversion/c.py"), "x = 1\n").unwrap();
        let changed = files_of(scanner.scan().unwrap().changes);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].conversions.get("c").map(String::as_str), Some("x = 1\n"));
        assert!(!changed[0].conversions.contains_key("__init__"));

        fs::write(dir.0.join("plugin_a/conversion/c.py"), vec![0xffu8; 3]).unwrap();
        let broken = files_of(scanner.scan().unwrap().changes);
        assert_eq!(
            broken[0].conversions["c"],
            "# plugin_a/conversion/c.py is not UTF-8 text"
        );
    }

    #[test]
    fn strays_are_reported_once_while_present() {
        let dir = Scratch::new("strays");
        fs::create_dir_all(dir.0.join("plugin_foo_bar")).unwrap();
        fs::create_dir_all(dir.0.join("core_x")).unwrap();
        let mut scanner = Scanner::new(dir.0.clone());
        let mut strays = scanner.scan().unwrap().new_strays;
        strays.sort();
        assert_eq!(
            strays,
            [("core_x".to_string(), false), ("plugin_foo_bar".to_string(), true)]
        );
        assert!(scanner.scan().unwrap().new_strays.is_empty());
        fs::remove_dir_all(dir.0.join("plugin_foo_bar")).unwrap();
        assert!(scanner.scan().unwrap().new_strays.is_empty());
        fs::create_dir_all(dir.0.join("plugin_foo_bar")).unwrap();
        assert_eq!(
            scanner.scan().unwrap().new_strays,
            [("plugin_foo_bar".to_string(), true)]
        );
    }

    #[test]
    fn a_failed_listing_forgets_nothing() {
        let dir = Scratch::new("vanish");
        dir.plugin("a", &identity("a", 1));
        let mut scanner = Scanner::new(dir.0.clone());
        assert_eq!(
            scanner.scan().unwrap().changes.len(),
            2,
            "info.json and the extra files"
        );
        let moved = dir.0.with_extension("moved");
        fs::rename(&dir.0, &moved).unwrap();
        let error = scanner.scan().unwrap_err().to_string();
        assert!(error.contains(&dir.0.display().to_string()), "{error}");
        fs::rename(&moved, &dir.0).unwrap();
        assert!(
            scanner.scan().unwrap().changes.is_empty(),
            "back as it was: nothing changed"
        );
    }
}
