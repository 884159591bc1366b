//! A package's files besides `info.json` that Domogik 0.5 shows
//! (PROTOCOL.md §8): `conversion/*.py` (the xPL gateway's conversion
//! modules) and `udev_rules/*.rules`, plus the path of `design/icon.png`.
//!
//! Like `info.json`, they are `stat`ed at every rescan and read only when
//! that changed. Sizes are bounded; a file that cannot be used shows as a
//! one-line comment in place of its text (`# plugin_x/conversion/a.py is
//! too large: ...`): both formats take `#` comments, and a broken file
//! must be visible to the user, never a reason to drop the package.

use super::{Opening, Stat};
use crate::core::packages::PackageFiles;
use std::fs;
use std::io;
use std::path::Path;

/// Larger files are not read (real ones are a few KiB).
pub(crate) const MAX_FILE_BYTES: u64 = 256 * 1024;
/// At most this many files of each folder, the first by name.
pub(crate) const MAX_FILES_PER_FOLDER: usize = 64;

/// The two folders, with the suffix of their files.
const FOLDERS: [(&str, &str); 2] = [("conversion", ".py"), ("udev_rules", ".rules")];

/// `stat` of every file that [`read`] would read: equal fingerprints,
/// equal files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilesFingerprint(Vec<(String, Option<Stat>)>);

/// The files of both folders of the package in `folder`, sorted, capped.
fn list(folder: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for (sub, suffix) in FOLDERS {
        let Ok(entries) = fs::read_dir(folder.join(sub)) else {
            continue; // no such folder: nothing to show, as in Domogik
        };
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| is_wanted(name, suffix))
            .collect();
        names.sort();
        names.truncate(MAX_FILES_PER_FOLDER);
        files.extend(names.into_iter().map(|name| (sub.to_owned(), name)));
    }
    files
}

/// `<stem><suffix>`, a non-empty stem, not `__init__.py`, not hidden.
fn is_wanted(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix)
        .is_some_and(|stem| !stem.is_empty() && !stem.starts_with('.') && name != "__init__.py")
}

/// The fingerprint of the package in `folder` (a `readdir` of each folder
/// and a `stat` per file).
pub(crate) fn fingerprint(folder: &Path) -> FilesFingerprint {
    FilesFingerprint(
        list(folder)
            .into_iter()
            .map(|(sub, name)| {
                let stat = super::stat(&folder.join(&sub).join(&name));
                (format!("{sub}/{name}"), stat)
            })
            .collect(),
    )
}

/// Reads the files of plugin `name` in `folder`.
pub(crate) fn read(name: &str, folder: &Path) -> PackageFiles {
    let mut files = PackageFiles {
        icon_file: folder.join("design").join("icon.png").display().to_string(),
        ..PackageFiles::default()
    };
    for (sub, file) in list(folder) {
        let shown = format!("{}/{sub}/{file}", crate::core::kind::folder(name));
        let text = judge(
            &shown,
            super::read_capped(&folder.join(&sub).join(&file), MAX_FILE_BYTES, Opening::RegularFileOnly),
        );
        let (map, suffix) = if sub == "conversion" {
            (&mut files.conversions, ".py")
        } else {
            (&mut files.udev_rules, ".rules")
        };
        // One suffix off: `a.py.py` is the file of `a.py`, not of `a`.
        map.insert(file.strip_suffix(suffix).unwrap_or(&file).to_owned(), text);
    }
    files
}

/// The text to show for a file: its content, or a one-line comment saying
/// why it cannot be shown.
pub(crate) fn judge(shown: &str, read: io::Result<Vec<u8>>) -> String {
    match read {
        Ok(bytes) if bytes.len() as u64 > MAX_FILE_BYTES => {
            format!("# {shown} is too large: more than {MAX_FILE_BYTES} bytes")
        }
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_else(|_| format!("# {shown} is not UTF-8 text")),
        Err(error) => format!("# {shown} cannot be read: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_suffix_comes_off_a_file_name() {
        let dir = std::env::temp_dir().join(format!("dmg-package-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conversion")).unwrap();
        std::fs::write(dir.join("conversion/a.py"), "a").unwrap();
        std::fs::write(dir.join("conversion/a.py.py"), "a.py").unwrap();
        let files = read("x", &dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(files.conversions.get("a").map(String::as_str), Some("a"));
        assert_eq!(files.conversions.get("a.py").map(String::as_str), Some("a.py"));
    }

    #[test]
    fn wanted_names() {
        assert!(is_wanted("a.py", ".py"));
        assert!(!is_wanted("__init__.py", ".py"));
        assert!(!is_wanted(".py", ".py"));
        assert!(!is_wanted(".hidden.py", ".py"));
        assert!(!is_wanted("a.pyc", ".py"));
        assert!(is_wanted("99-x.rules", ".rules"));
    }

    #[test]
    fn broken_files_are_one_line_comments() {
        let big = vec![b'x'; MAX_FILE_BYTES as usize + 1];
        assert_eq!(
            judge("plugin_a/conversion/b.py", Ok(big)),
            "# plugin_a/conversion/b.py is too large: more than 262144 bytes"
        );
        assert_eq!(
            judge("plugin_a/conversion/b.py", Ok(vec![0xff])),
            "# plugin_a/conversion/b.py is not UTF-8 text"
        );
        let denied = judge("p/u.rules", Err(io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(denied.starts_with("# p/u.rules cannot be read: "), "{denied}");
        assert_eq!(judge("p", Ok(b"ok".to_vec())), "ok");
    }

    #[test]
    fn the_fixture_package_has_conversions_and_rules() {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v05/packages/plugin_demo");
        let files = read("demo", &folder);
        assert_eq!(files.conversions.keys().collect::<Vec<_>>(), ["to_celsius"]);
        assert!(files.conversions["to_celsius"].contains("def to_celsius"));
        assert_eq!(files.udev_rules.keys().collect::<Vec<_>>(), ["demo"]);
        assert!(files.icon_file.ends_with("plugin_demo/design/icon.png"));
        assert_eq!(fingerprint(&folder), fingerprint(&folder));
        assert_eq!(read("none", Path::new("/nonexistent")).conversions.len(), 0);
    }
}
