//! How a client's process is started (PROTOCOL.md §10), as data: the
//! program, its arguments and environment, built from the config. The
//! daemon (`src/daemon/processes.rs`) runs it; nothing here forks.
//!
//! Domogik 0.5.2's clients put themselves in the background unless given
//! `-f` (§12): the manager runs them with `-f`, so that the process it
//! starts is the client (its watcher) and stays its child.

use crate::core::kind::{self, Kind};
use std::path::PathBuf;

/// Domogik's marker: a client started by the manager finds it in its
/// environment (`NOTICE=...`), as in 0.5.2's command line.
pub(crate) const NOTICE: &str = "THIS_PLUGIN_IS_STARTED_BY_THE_MANAGER";

/// What the config says of starting clients.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Launch {
    pub python: PathBuf,
    /// `PYTHONPATH` for the clients: where Domogik's libraries are; `None`: unset.
    pub pythonpath: Option<PathBuf>,
    pub packages_dir: PathBuf,
    /// Domogik's bin dir (`<name>.py` of each core component); `None`
    /// when unknown (no core component can be started).
    pub core_bin_dir: Option<PathBuf>,
    /// `plugin_args`: more arguments for plugins and interfaces.
    pub extra_args: Vec<String>,
}

/// One process to start: `<program> <script> <args...>`, no shell, with
/// `NOTICE` set and `PYTHONPATH` as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spawn {
    /// The client key.
    pub name: String,
    pub program: PathBuf,
    pub script: PathBuf,
    pub args: Vec<String>,
    pub pythonpath: Option<PathBuf>,
}

impl Launch {
    /// The program of client key `name`: `<packages_dir>/<kind>_<name>/bin/<name>.py`
    /// for a plugin or interface, `<core_bin_dir>/<name>.py` for a core
    /// component; `None` for a brain (data only) or a core component
    /// while the bin dir is unknown.
    pub(crate) fn script(&self, name: &str) -> Option<PathBuf> {
        let (kind, bare) = kind::split(name);
        match kind {
            Kind::Plugin | Kind::Interface => Some(
                self.packages_dir
                    .join(kind::folder(name))
                    .join("bin")
                    .join(format!("{bare}.py")),
            ),
            Kind::Core => Some(self.core_bin_dir.as_ref()?.join(format!("{bare}.py"))),
            Kind::Brain => None,
        }
    }

    /// The process of client key `name`: `-f` always (in the foreground,
    /// our child), `-T <option>` when dbmgr says its `test_mode` is true,
    /// then `plugin_args` (plugins and interfaces). `Err` says why there
    /// is none.
    pub(crate) fn spawn(&self, name: &str, test_option: Option<&str>) -> Result<Spawn, String> {
        let Some(script) = self.script(name) else {
            return Err(match kind::split(name) {
                (Kind::Brain, _) => "a brain is data only: it never runs".to_owned(),
                _ => "Domogik's bin dir is unknown (set [manager] core_bin_dir)".to_owned(),
            });
        };
        let mut args = vec!["-f".to_owned()];
        if let Some(option) = test_option {
            args.push("-T".to_owned());
            args.push(option.to_owned());
        }
        if kind::split(name).0.user_started() {
            args.extend(self.extra_args.iter().cloned());
        }
        Ok(Spawn {
            name: name.to_owned(),
            program: self.python.clone(),
            script,
            args,
            pythonpath: self.pythonpath.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Launch {
        Launch {
            python: "/usr/bin/python".into(),
            pythonpath: Some("/var/lib/domogik".into()),
            packages_dir: "/var/lib/domogik/domogik_packages".into(),
            core_bin_dir: Some("/usr/lib/domogik/bin".into()),
            extra_args: vec!["--x".into()],
        }
    }

    #[test]
    fn each_kind_runs_its_script_in_the_foreground() {
        let launch = launch();
        let plugin = launch.spawn("diskfree", None).unwrap();
        assert_eq!(
            plugin.script,
            PathBuf::from("/var/lib/domogik/domogik_packages/plugin_diskfree/bin/diskfree.py")
        );
        assert_eq!(plugin.args, ["-f", "--x"], "-f, then plugin_args; no -m");
        let interface = launch.spawn("interface-foo", Some("3")).unwrap();
        assert_eq!(
            interface.script,
            PathBuf::from("/var/lib/domogik/domogik_packages/interface_foo/bin/foo.py")
        );
        assert_eq!(
            interface.args,
            ["-f", "-T", "3", "--x"],
            "test mode: -T with its option"
        );
        let core = launch.spawn("core-dbmgr", None).unwrap();
        assert_eq!(core.script, PathBuf::from("/usr/lib/domogik/bin/dbmgr.py"));
        assert_eq!(core.args, ["-f"], "plugin_args are for plugins");
        assert!(launch.spawn("brain-b", None).unwrap_err().contains("never runs"));
        let unknown = Launch {
            core_bin_dir: None,
            ..launch
        };
        assert!(unknown.spawn("core-dbmgr", None).unwrap_err().contains("core_bin_dir"));
    }
}
