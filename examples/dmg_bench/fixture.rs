//! Generated inputs: a scratch folder, packages folders of N plugins made
//! from the repository's fixture `info.json` files, and daemon configs.

use super::Failure;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// The fixture packages used as templates (tests/fixtures/packages).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/packages");
const TEMPLATE_NAMES: [&str; 4] = ["diskfree", "ebusd", "rfxcom", "test"];
/// The host name the daemon is configured with; client ids end with it.
pub const HOST: &str = "benchhost";

/// A scratch folder for this run, removed when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new() -> Result<ScratchDir, Failure> {
        let path = std::env::temp_dir().join(format!("dmg-bench-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(ScratchDir(path))
    }

    pub fn join(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A fixture `info.json`, parsed, to be renamed for each generated plugin.
pub struct Template {
    name: &'static str,
    info: Value,
}

pub fn load_templates() -> Result<Vec<Template>, Failure> {
    TEMPLATE_NAMES
        .iter()
        .map(|&name| {
            let path = format!("{FIXTURES}/plugin_{name}/info.json");
            let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
            let info = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            Ok(Template { name, info })
        })
        .collect()
}

/// The names of the `count` generated plugins: the templates' names with
/// the plugin's index appended (`diskfree0`, `ebusd1`, ...).
pub fn plugin_names(count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{}{index}", TEMPLATE_NAMES[index % TEMPLATE_NAMES.len()]))
        .collect()
}

/// Writes `count` plugin packages into `dir` (created), each a template
/// with `identity.name` set to the folder's name. Returns the plugin names.
pub fn write_packages(dir: &Path, count: usize, templates: &[Template]) -> Result<Vec<String>, Failure> {
    let names = plugin_names(count);
    for (index, name) in names.iter().enumerate() {
        write_package(dir, name, &templates[index % templates.len()], None)?;
    }
    Ok(names)
}

/// Writes `dir/plugin_<name>/info.json` from `template`; a `revision`
/// adds a field, so that the data really changes.
pub fn write_package(dir: &Path, name: &str, template: &Template, revision: Option<u64>) -> Result<(), Failure> {
    let mut info = template.info.clone();
    let root = info
        .as_object_mut()
        .ok_or_else(|| format!("fixture plugin_{} is not an object", template.name))?;
    if let Some(revision) = revision {
        root.insert("bench_revision".into(), revision.into());
    }
    let identity = root
        .get_mut("identity")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| format!("fixture plugin_{} has no identity object", template.name))?;
    identity.insert("name".into(), Value::String(name.to_owned()));
    let folder = dir.join(format!("plugin_{name}"));
    fs::create_dir_all(&folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    let text = serde_json::to_string_pretty(&info).map_err(|e| e.to_string())?;
    let path = folder.join("info.json");
    fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The total size of the `info.json` files under `dir`, in bytes: a listing
/// and one `stat` per package (also the floor of a rescan, rescan.rs).
pub fn info_json_bytes(dir: &Path) -> Result<u64, Failure> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut total = 0;
    for entry in entries.flatten() {
        let path = entry.path().join("info.json");
        total += fs::metadata(&path)
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
            .len();
    }
    Ok(total)
}

/// A standalone-layout config on ephemeral loopback ports, at the default
/// rescan interval and log level a user runs.
pub fn daemon_config(packages: &Path) -> String {
    standalone_config(packages, 30)
}

/// [`daemon_config`] with rescans `rescan_seconds` apart.
pub fn standalone_config(packages: &Path, rescan_seconds: u64) -> String {
    format!(
        "[manager]\nhost = {HOST}\npackages_dir = {}\nrescan_interval = {rescan_seconds}\nlog_level = info\n\
         sub_endpoint = @tcp://127.0.0.1:*\npub_endpoint = @tcp://127.0.0.1:*\n\
         rep_endpoint = @tcp://127.0.0.1:*\n",
        packages.display()
    )
}

/// The client id of plugin `name` in the daemon's replies.
pub fn client_id(name: &str) -> String {
    format!("domogik-{name}.{HOST}")
}
