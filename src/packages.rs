//! Finding plugin packages on disk (PROTOCOL.md §3).
//!
//! Three layers, so that all the judgement is tested without a disk:
//! - [`classify_folder`] and [`parse_info_json`] are pure: a folder name or
//!   the bytes of an `info.json` in, a verdict out; so is `diff`, which
//!   compares the fingerprints of two scans;
//! - [`Scanner::scan`] is the thin I/O: it lists the folder, `stat`s each
//!   `info.json`, and reads only the files whose fingerprint changed;
//! - the result is a list of [`PackageChange`]s for the clients map.

use crate::package_files::{self, FilesFingerprint, PackageFiles};
use crate::pyjson;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Larger `info.json` files are refused unread (real ones are under 50 KB).
pub const MAX_INFO_JSON_BYTES: u64 = 1024 * 1024;
/// The folder prefix of the only package type this manager handles.
const PLUGIN_PREFIX: &str = "plugin_";

/// What a folder of `packages_dir` is, judged by its name alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FolderKind {
    /// `plugin_<name>` with a valid name.
    Plugin(String),
    /// `plugin_...` whose name is not lower-case letters and digits.
    BadPluginName,
    /// Another package type (`interface_x`, `core_y`) or an unrelated file.
    Other,
}

/// Classifies a folder name of `packages_dir`.
pub fn classify_folder(folder: &str) -> FolderKind {
    match folder.strip_prefix(PLUGIN_PREFIX) {
        None => FolderKind::Other,
        Some(name) if is_valid_plugin_name(name) => FolderKind::Plugin(name.to_owned()),
        Some(_) => FolderKind::BadPluginName,
    }
}

/// Domogik plugin names are xPL device ids: lower-case ASCII letters and digits.
pub fn is_valid_plugin_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A package as the clients map needs it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Package {
    /// `data` is the parsed `info.json`, re-serialised as Python would.
    Valid { data: Box<RawValue> },
    /// One line saying what is wrong.
    Invalid { reason: String },
}

impl PartialEq for Package {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Package::Valid { data: a }, Package::Valid { data: b }) => a.get() == b.get(),
            (Package::Invalid { reason: a }, Package::Invalid { reason: b }) => a == b,
            _ => false,
        }
    }
}

/// Judges the bytes of `plugin_<name>/info.json`.
pub fn parse_info_json(name: &str, bytes: &[u8]) -> Package {
    match validate_info_json(name, bytes) {
        Ok(data) => Package::Valid { data },
        Err(problem) => invalid(name, &problem),
    }
}

/// An invalid package; every reason names the file: `plugin_x/info.json ...`.
fn invalid(name: &str, problem: &str) -> Package {
    Package::Invalid {
        reason: format!("plugin_{name}/info.json {problem}"),
    }
}

fn validate_info_json(name: &str, bytes: &[u8]) -> Result<Box<RawValue>, String> {
    if bytes.len() as u64 > MAX_INFO_JSON_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    // Editors on some systems add a byte-order mark; it is not an error.
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    // Parsing into a `Value` keeps the last of duplicate keys, as Python does.
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("has a JSON error: {e}"))?;
    let Value::Object(root) = &value else {
        return Err("is not a JSON object".into());
    };
    let Some(Value::Object(identity)) = root.get("identity") else {
        return Err("has no \"identity\" object".into());
    };
    match identity.get("type") {
        Some(Value::String(kind)) if kind == "plugin" => {}
        Some(other) => {
            return Err(format!(
                "says identity.type is {}, expected \"plugin\"",
                short_json(other)
            ))
        }
        None => return Err("has no identity.type".into()),
    }
    // The oldest files say "id" where later ones say "name".
    let declared = identity.get("name").or_else(|| identity.get("id"));
    match declared {
        Some(Value::String(declared)) if declared == name => {}
        Some(other) => {
            return Err(format!(
                "says identity.name is {}, but the folder is plugin_{name}",
                short_json(other)
            ))
        }
        None => return Err("has no identity.name".into()),
    }
    RawValue::from_string(pyjson::to_string(&value)).map_err(|e| format!("cannot be stored: {e}"))
}

fn too_large(size: u64) -> String {
    format!("is too large: {size} bytes, at most {MAX_INFO_JSON_BYTES}")
}

fn short_json(value: &Value) -> String {
    crate::wire::truncate(&pyjson::to_string(value), 40)
}

/// What `stat` said of an `info.json`: if this is unchanged, so is the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    File {
        size: u64,
        mtime_ns: i128,
        ctime_ns: i128,
        inode: u64,
        device: u64,
    },
    /// The file could not be examined (missing, a loop, not a folder...).
    Unreadable(String),
}

impl Fingerprint {
    fn of(metadata: &fs::Metadata) -> Fingerprint {
        let nanos = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Fingerprint::File {
            size: metadata.len(),
            mtime_ns: nanos(metadata.mtime(), metadata.mtime_nsec()),
            ctime_ns: nanos(metadata.ctime(), metadata.ctime_nsec()),
            inode: metadata.ino(),
            device: metadata.dev(),
        }
    }
}

/// A change in the set of installed packages (it crosses the scanner's
/// pipe as JSON: src/scanner_process.rs).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum PackageChange {
    /// A new package, or a package whose `info.json` changed on disk.
    Updated {
        name: String,
        package: Package,
    },
    Removed {
        name: String,
    },
    /// A new package's extra files (`conversion/`, `udev_rules/`), or
    /// changed ones: src/package_files.rs. Follows its `Updated`.
    Files {
        name: String,
        files: PackageFiles,
    },
}

/// What one scan found.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ScanReport {
    pub changes: Vec<PackageChange>,
    /// Folders seen for the first time that are not packages, with the
    /// reason: `(folder, is_bad_plugin_name)`. Logged once, not every scan.
    pub new_strays: Vec<(String, bool)>,
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

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A scanner started after others (the last one died): the package
    /// names the manager knows, so that its first scan reports those gone
    /// meanwhile as removed. Each is read again (its fingerprint is not
    /// known), and changes the client only if it differs.
    pub fn assume_known(&mut self, names: Vec<String>) {
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
                FolderKind::Plugin(name) => plugins.push(name),
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
        self.known = now;
        Ok(report)
    }

    /// Adds a `Files` change for each package whose extra files are new
    /// or changed (a `readdir` of two folders and a `stat` per file each).
    fn scan_files(&mut self, packages: &Fingerprints, report: &mut ScanReport) {
        let mut now = BTreeMap::new();
        for name in packages.keys() {
            let folder = self.dir.join(format!("{PLUGIN_PREFIX}{name}"));
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

    fn info_json(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{PLUGIN_PREFIX}{name}")).join("info.json")
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
        Ok(metadata) if metadata.is_file() => Fingerprint::of(&metadata),
        Ok(_) => Fingerprint::Unreadable("is not a regular file".into()),
        Err(error) => Fingerprint::Unreadable(describe_io_error(&error)),
    }
}

/// Reads a package whose fingerprint changed; returns it with the
/// fingerprint for the next scan to compare with.
fn read_package(name: &str, path: &Path, fingerprint: Fingerprint) -> (Package, Fingerprint) {
    let read = match &fingerprint {
        Fingerprint::Unreadable(why) => return (invalid(name, why), fingerprint),
        Fingerprint::File { size, .. } if *size > MAX_INFO_JSON_BYTES => {
            return (invalid(name, &too_large(*size)), fingerprint)
        }
        Fingerprint::File { .. } => read_capped(path, MAX_INFO_JSON_BYTES),
    };
    match read {
        Ok(bytes) => (parse_info_json(name, &bytes), fingerprint),
        Err(error) => (
            invalid(name, &describe_io_error(&error)),
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

/// Reads at most one byte more than `limit`, so a file that grew after
/// `stat` is still refused without reading it whole.
///
/// The file may have been swapped since `stat` said it was a regular file:
/// it is opened with `O_NONBLOCK`, so that a FIFO put in its place cannot
/// make the open wait for a writer (and stop the whole daemon), and what
/// was opened is checked again.
pub(crate) fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
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

    fn reason(package: Package) -> String {
        match package {
            Package::Invalid { reason } => reason,
            Package::Valid { .. } => panic!("expected an invalid package"),
        }
    }

    #[test]
    fn folder_names() {
        assert_eq!(
            classify_folder("plugin_diskfree"),
            FolderKind::Plugin("diskfree".into())
        );
        assert_eq!(classify_folder("plugin_x10"), FolderKind::Plugin("x10".into()));
        assert_eq!(classify_folder("plugin_foo_bar"), FolderKind::BadPluginName);
        assert_eq!(classify_folder("plugin_"), FolderKind::BadPluginName);
        assert_eq!(classify_folder("plugin_Foo"), FolderKind::BadPluginName);
        assert_eq!(classify_folder("interface_admin"), FolderKind::Other);
        assert_eq!(classify_folder("README"), FolderKind::Other);
    }

    #[test]
    fn valid_file_keeps_last_duplicate_key_and_python_layout() {
        let bytes = br#"{"identity": {"type": "plugin", "name": "demo"}, "t": 1, "t": 2, "s": "caf\u00e9"}"#;
        let Package::Valid { data } = parse_info_json("demo", bytes) else {
            panic!("invalid")
        };
        assert_eq!(
            data.get(),
            r#"{"identity": {"name": "demo", "type": "plugin"}, "s": "caf\u00e9", "t": 2}"#
        );
    }

    #[test]
    fn numbers_are_written_back_as_python_reads_and_writes_them() {
        // serde_json's default float parser can be one unit in the last
        // place off (1e-25 read as 9.999999999999999e-26); Python's is
        // exact. Found by fuzzing (tests/fuzz-corpus/info_json/crash-float-1e-25).
        let bytes = br#"{"identity": {"type": "plugin", "name": "demo"}, "f": [1e-25, 0e16, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308, 0.1, 123456789.123456789e-5]}"#;
        let Package::Valid { data } = parse_info_json("demo", bytes) else {
            panic!("invalid")
        };
        assert!(
            data.get().contains(
                r#""f": [1e-25, 0.0, 5e-324, 1.7976931348623157e+308, 2.2250738585072014e-308, 0.1, 1234.567891234568]"#
            ),
            "{}",
            data.get()
        );
    }

    #[test]
    fn oldest_files_say_id_instead_of_name() {
        let bytes = br#"{"identity": {"type": "plugin", "id": "old"}}"#;
        assert!(matches!(parse_info_json("old", bytes), Package::Valid { .. }));
    }

    #[test]
    fn byte_order_mark_is_accepted() {
        let bytes = b"\xef\xbb\xbf{\"identity\": {\"type\": \"plugin\", \"name\": \"bom\"}}";
        assert!(matches!(parse_info_json("bom", bytes), Package::Valid { .. }));
    }

    #[test]
    fn each_defect_has_its_own_one_line_reason() {
        let cases: [(&[u8], &str); 9] = [
            (b"{\"identity\": {\n  \"type\": \"plugin\",,", "JSON error"),
            (b"", "JSON error"),
            (b"\xff\xfe", "JSON error"),
            (b"[1]", "not a JSON object"),
            (br#"{"json_version": 2}"#, "no \"identity\" object"),
            (br#"{"identity": {"name": "demo"}}"#, "has no identity.type"),
            (
                br#"{"identity": {"type": "interface", "name": "demo"}}"#,
                "identity.type is \"interface\"",
            ),
            (br#"{"identity": {"type": "plugin"}}"#, "has no identity.name"),
            (
                br#"{"identity": {"type": "plugin", "name": "other"}}"#,
                "identity.name is \"other\", but the folder is plugin_demo",
            ),
        ];
        for (bytes, expected) in cases {
            let reason = reason(parse_info_json("demo", bytes));
            assert!(reason.contains(expected), "{reason:?} should contain {expected:?}");
            assert!(!reason.contains('\n'), "{reason:?} is not one line");
        }
    }

    #[test]
    fn json_error_names_line_and_column() {
        let reason = reason(parse_info_json("demo", b"{\n  \"identity\": ,\n}"));
        assert!(reason.contains("line 2 column 15"), "{reason}");
    }

    #[test]
    fn oversized_bytes_are_refused() {
        let bytes = vec![b' '; MAX_INFO_JSON_BYTES as usize + 1];
        assert!(reason(parse_info_json("demo", &bytes)).contains("too large"));
    }

    #[test]
    fn a_file_too_large_by_its_stat_is_refused_unread_and_named() {
        let fingerprint = Fingerprint::File {
            size: 2_000_000,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 1,
            device: 1,
        };
        // The path does not exist: the verdict must come from `stat` alone.
        assert_eq!(
            reason(read_package("demo", Path::new("/nonexistent/info.json"), fingerprint).0),
            "plugin_demo/info.json is too large: 2000000 bytes, at most 1048576"
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let bytes = "[".repeat(100_000);
        assert!(reason(parse_info_json("demo", bytes.as_bytes())).contains("JSON error"));
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
        std::thread::spawn(move || sender.send(read_capped(&path, MAX_INFO_JSON_BYTES).map_err(|e| e.to_string())));
        let outcome = receiver.recv_timeout(std::time::Duration::from_secs(5));
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            outcome.expect("read_capped blocked on a FIFO"),
            Err("not a regular file".to_owned())
        );
    }

    #[test]
    fn diff_names_the_packages_gone_and_those_new_or_changed() {
        let file = |size| Fingerprint::File {
            size,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 1,
            device: 1,
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
        let file = Fingerprint::File {
            size: 10,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 1,
            device: 1,
        };
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
        fs::create_dir_all(dir.0.join("interface_x")).unwrap();
        let mut scanner = Scanner::new(dir.0.clone());
        let mut strays = scanner.scan().unwrap().new_strays;
        strays.sort();
        assert_eq!(
            strays,
            [("interface_x".to_string(), false), ("plugin_foo_bar".to_string(), true)]
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
