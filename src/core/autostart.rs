//! Which plugins `auto_startup` starts (PROTOCOL.md §9): each client once
//! per appearance, decided by the first value of its `auto_startup` that
//! `dbmgr` gives (§8), so a package that appears after the start, or whose
//! value comes late because `dbmgr` was slow, is started too.
//!
//! Pure: the clients' values in, the names to start out.

use std::collections::BTreeSet;

/// The clients whose `auto_startup` was already decided.
#[derive(Debug, Clone, Default)]
pub(crate) struct AutoStart {
    decided: BTreeSet<String>,
}

impl AutoStart {
    /// `values`: each client's name and its `auto_startup` (`None` while
    /// unknown). Returns the plugins to start now: those whose value is
    /// known for the first time and true. A value that changes later
    /// starts nothing (Domogik reads it when the manager starts; a user
    /// starts a plugin by hand).
    pub(crate) fn due<'a>(&mut self, values: impl IntoIterator<Item = (&'a str, Option<bool>)>) -> Vec<String> {
        let mut start = Vec::new();
        for (name, value) in values {
            // Called at every turn: no allocation for the clients decided.
            let Some(value) = value.filter(|_| !self.decided.contains(name)) else {
                continue;
            };
            if self.decided.insert(name.to_owned()) && value {
                start.push(name.to_owned());
            }
        }
        start
    }

    /// The package of `name` is gone: when it comes back, it is decided again.
    pub(crate) fn forget(&mut self, name: &str) {
        self.decided.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_plugin_once_at_its_first_known_value() {
        let mut auto = AutoStart::default();
        assert_eq!(auto.due([("a", None), ("b", Some(true)), ("c", Some(false))]), ["b"]);
        assert!(auto
            .due([("a", None), ("b", Some(true)), ("c", Some(false))])
            .is_empty());
        // a's value comes late (dbmgr was slow), c's changes: a starts, c does not.
        assert_eq!(
            auto.due([("a", Some(true)), ("b", Some(true)), ("c", Some(true))]),
            ["a"]
        );
        // A package that appears later is decided when its value is known.
        assert_eq!(auto.due([("d", Some(true))]), ["d"]);
        // Removed and installed again: decided again.
        auto.forget("b");
        assert_eq!(auto.due([("b", Some(true))]), ["b"]);
    }
}
