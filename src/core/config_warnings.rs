//! Config values that parse but cannot be meant (issue 21): a
//! `packages_dir` that does not exist (often written in quotes, which
//! configparser keeps as part of the value), and `restart` names that match
//! no installed package (a typo, `rfxcomm`). Said by `--check-config` (on
//! stderr, the file still OK) and by the daemon, once, in its log. Pure:
//! what the disk showed is given.

use crate::core::children::RestartSet;
use std::collections::BTreeSet;
use std::path::Path;

/// What to add to a line saying `packages_dir` cannot be listed, when the
/// path holds quotes: configparser keeps them in the value, and a relative
/// path (which `"/path"` is) is taken from the config file's folder.
pub(crate) fn quotes_hint(dir: &Path) -> &'static str {
    if dir
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .any(|&b| b == b'"' || b == b'\'')
    {
        " (the quotes are part of the path: write packages_dir = /path, without them)"
    } else {
        ""
    }
}

/// `--check-config`'s line about a `packages_dir` that cannot be listed:
/// `not_found` when it does not exist, else the system's reason.
pub(crate) fn packages_dir_warning(dir: &Path, not_found: bool, reason: &str) -> String {
    let what = if not_found {
        "does not exist".to_owned()
    } else {
        format!("cannot be listed: {reason}")
    };
    format!(
        "[manager] packages_dir {} {what}: the manager will serve no plugin until it does{}",
        dir.display(),
        quotes_hint(dir)
    )
}

/// Each `restart` name that is no installed package (`installed`: the
/// plugin names found in `packages_dir`), in name order, with its line.
pub(crate) fn unknown_restart_names(restart: &RestartSet, installed: &BTreeSet<String>) -> Vec<(String, String)> {
    let RestartSet::Only(names) = restart else {
        return Vec::new();
    };
    let list = if installed.is_empty() {
        "none".to_owned()
    } else {
        installed.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
    };
    names
        .iter()
        .filter(|name| !installed.contains(*name))
        .map(|name| {
            let line = format!("[manager] restart: {name:?} matches no installed package (installed: {list})");
            (name.clone(), line)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    #[test]
    fn quotes_are_pointed_out() {
        assert_eq!(quotes_hint(Path::new("/var/lib/domogik/domogik_packages")), "");
        assert!(quotes_hint(Path::new("/etc/domogik/\"/var/lib/x\"")).contains("quotes"));
        assert!(quotes_hint(Path::new("/etc/domogik/'/var/lib/x'")).contains("quotes"));
        let line = packages_dir_warning(Path::new("/etc/domogik/\"/x\""), true, "");
        assert_eq!(
            line,
            "[manager] packages_dir /etc/domogik/\"/x\" does not exist: the manager will serve no plugin until it does \
             (the quotes are part of the path: write packages_dir = /path, without them)"
        );
        let line = packages_dir_warning(Path::new("/x"), false, "Permission denied (os error 13)");
        assert!(line.contains("/x cannot be listed: Permission denied"), "{line}");
    }

    #[test]
    fn restart_names_that_match_no_package_are_named_with_what_is_installed() {
        let installed = names(&["diskfree", "rfxcom"]);
        let restart = RestartSet::Only(names(&["rfxcomm", "diskfree", "zwave"]));
        let lines: Vec<String> = unknown_restart_names(&restart, &installed)
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        assert_eq!(
            lines,
            [
                "[manager] restart: \"rfxcomm\" matches no installed package (installed: diskfree, rfxcom)",
                "[manager] restart: \"zwave\" matches no installed package (installed: diskfree, rfxcom)",
            ]
        );
        assert!(unknown_restart_names(&RestartSet::Everyone, &installed).is_empty());
        assert!(unknown_restart_names(&RestartSet::Nobody, &installed).is_empty());
        let none = unknown_restart_names(&RestartSet::Only(names(&["a"])), &BTreeSet::new());
        assert_eq!(none[0].0, "a");
        assert!(none[0].1.ends_with("(installed: none)"), "{none:?}");
    }
}
