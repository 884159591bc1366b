//! Packages (PROTOCOL.md §3): plugins, interfaces and brains, judged without a disk: a folder name
//! ([`classify_folder`]) or the bytes of an `info.json`
//! ([`parse_info_json`]) in, a verdict out; and what the clients map
//! receives, [`PackageChange`]s. Reading the folder is the scanner's
//! (`disk::scanner`).

use crate::core::kind::{self, key, Kind};
use crate::core::pyjson;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Larger `info.json` files are refused unread (real ones are under 50 KB).
pub(crate) const MAX_INFO_JSON_BYTES: u64 = 1024 * 1024;
/// What a folder of `packages_dir` is, judged by its name alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FolderKind {
    /// `plugin_<name>`, `interface_<name>` or `brain_<name>` with a valid
    /// name: the client key (`core::kind::key`).
    Package(String),
    /// One of those whose name is not lower-case letters and digits.
    BadPluginName,
    /// Anything else (`core_y`, an unrelated file).
    Other,
}

/// Classifies a folder name of `packages_dir`.
pub(crate) fn classify_folder(folder: &str) -> FolderKind {
    for kind in Kind::PACKAGES {
        let Some(name) = folder
            .strip_prefix(kind.as_str())
            .and_then(|rest| rest.strip_prefix('_'))
        else {
            continue;
        };
        return if is_valid_plugin_name(name) {
            FolderKind::Package(key(kind, name))
        } else {
            FolderKind::BadPluginName
        };
    }
    FolderKind::Other
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

/// Judges the bytes of `<kind>_<name>/info.json` of client key `name`
/// (a plugin's bare name, `interface-<name>`, `brain-<name>`).
pub fn parse_info_json(name: &str, bytes: &[u8]) -> Package {
    match validate_info_json(name, bytes) {
        Ok(data) => Package::Valid { data },
        Err(problem) => invalid(name, problem),
    }
}

/// An invalid package; every reason names the file: `plugin_x/info.json ...`.
pub(crate) fn invalid(name: &str, problem: impl fmt::Display) -> Package {
    Package::Invalid {
        reason: format!("{}/info.json {problem}", kind::folder(name)),
    }
}

/// What is wrong with an `info.json`; displayed after the file's name
/// (`plugin_x/info.json is not a JSON object`).
#[derive(Debug)]
pub(crate) enum InfoJsonError {
    /// Over [`MAX_INFO_JSON_BYTES`], with its size in bytes.
    TooLarge(u64),
    Json(serde_json::Error),
    NotAnObject,
    NoIdentity,
    NoType,
    /// `identity.type` is not the folder's type: the value found,
    /// shortened, and the type expected.
    NotAPlugin(String, Kind),
    NoName,
    /// `identity.name` is not the folder's: the value found, shortened,
    /// and the folder's name.
    OtherName(String, String),
    /// The re-serialised text could not be kept (cannot happen with valid JSON).
    NotStored(serde_json::Error),
}

impl fmt::Display for InfoJsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InfoJsonError::TooLarge(size) => write!(f, "is too large: {size} bytes, at most {MAX_INFO_JSON_BYTES}"),
            InfoJsonError::Json(error) => write!(f, "has a JSON error: {error}"),
            InfoJsonError::NotAnObject => f.write_str("is not a JSON object"),
            InfoJsonError::NoIdentity => f.write_str("has no \"identity\" object"),
            InfoJsonError::NoType => f.write_str("has no identity.type"),
            InfoJsonError::NotAPlugin(found, expected) => {
                write!(f, "says identity.type is {found}, expected \"{expected}\"")
            }
            InfoJsonError::NoName => f.write_str("has no identity.name"),
            InfoJsonError::OtherName(found, folder) => {
                write!(f, "says identity.name is {found}, but the folder is {}", kind::folder(folder))
            }
            InfoJsonError::NotStored(error) => write!(f, "cannot be stored: {error}"),
        }
    }
}

impl std::error::Error for InfoJsonError {}

fn validate_info_json(key: &str, bytes: &[u8]) -> Result<Box<RawValue>, InfoJsonError> {
    let (expected, name) = kind::split(key);
    if bytes.len() as u64 > MAX_INFO_JSON_BYTES {
        return Err(InfoJsonError::TooLarge(bytes.len() as u64));
    }
    let bytes = pyjson::without_bom(bytes);
    // Parsing into a `Value` keeps the last of duplicate keys, as Python does.
    let value: Value = serde_json::from_slice(bytes).map_err(InfoJsonError::Json)?;
    let Value::Object(root) = &value else {
        return Err(InfoJsonError::NotAnObject);
    };
    let Some(Value::Object(identity)) = root.get("identity") else {
        return Err(InfoJsonError::NoIdentity);
    };
    match identity.get("type") {
        Some(Value::String(kind)) if kind == expected.as_str() => {}
        Some(other) => return Err(InfoJsonError::NotAPlugin(short_json(other), expected)),
        None => return Err(InfoJsonError::NoType),
    }
    // The oldest files say "id" where later ones say "name".
    let declared = identity.get("name").or_else(|| identity.get("id"));
    match declared {
        Some(Value::String(declared)) if declared == name => {}
        Some(other) => return Err(InfoJsonError::OtherName(short_json(other), key.to_owned())),
        None => return Err(InfoJsonError::NoName),
    }
    RawValue::from_string(pyjson::to_string(&value)).map_err(InfoJsonError::NotStored)
}

fn short_json(value: &Value) -> String {
    crate::core::wire::truncate(&pyjson::to_string(value), 40)
}

/// A change in the set of installed packages.
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
    /// changed ones: src/disk/package_files.rs. Follows its `Updated`.
    Files {
        name: String,
        files: PackageFiles,
    },
}

/// What a package's extra files hold, by file stem (PROTOCOL.md §8; read
/// by `disk::package_files`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageFiles {
    /// `conversion/<stem>.py` text, `__init__.py` left out.
    pub conversions: BTreeMap<String, String>,
    /// `udev_rules/<stem>.rules` text.
    pub udev_rules: BTreeMap<String, String>,
    /// Where Domogik says the package's icon is: `<dir>/design/icon.png`
    /// (whether or not it exists, as Domogik).
    pub icon_file: String,
}

/// What one scan found.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ScanReport {
    pub changes: Vec<PackageChange>,
    /// Folders seen for the first time that are not packages, with the
    /// reason: `(folder, is_bad_plugin_name)`. Logged once, not every scan.
    pub new_strays: Vec<(String, bool)>,
    /// The packages whose program, `bin/<name>.py`, is a file: what a
    /// start request is checked against, so that a start never `stat`s a
    /// packages_dir that may stall (every scan, all of them).
    pub scripts: std::collections::BTreeSet<String>,
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
            FolderKind::Package("diskfree".into())
        );
        assert_eq!(classify_folder("plugin_x10"), FolderKind::Package("x10".into()));
        assert_eq!(classify_folder("interface_x10"), FolderKind::Package("interface-x10".into()));
        assert_eq!(classify_folder("brain_b"), FolderKind::Package("brain-b".into()));
        assert_eq!(classify_folder("interface_B"), FolderKind::BadPluginName);
        assert_eq!(classify_folder("core_dbmgr"), FolderKind::Other);
        assert_eq!(classify_folder("plugin_foo_bar"), FolderKind::BadPluginName);
        assert_eq!(classify_folder("plugin_"), FolderKind::BadPluginName);
        assert_eq!(classify_folder("plugin_Foo"), FolderKind::BadPluginName);
        assert_eq!(classify_folder("interface_admin"), FolderKind::Package("interface-admin".into()));
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
    fn deep_nesting_is_an_error_not_a_crash() {
        let bytes = "[".repeat(100_000);
        assert!(reason(parse_info_json("demo", bytes.as_bytes())).contains("JSON error"));
    }
}
