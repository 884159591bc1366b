//! The kinds of client a Domogik 0.5.2 host has (PROTOCOL.md §12): plugins,
//! interfaces and brains (packages, folders `<kind>_<name>`), and core
//! components (admin, dbmgr, xplgw, scenario, butler: Domogik's own
//! programs). One map holds them all, keyed by a *client key*: a plugin's
//! is its bare name (as every plugin's was before the other kinds), any
//! other's is `<kind>-<name>`. Package names are lower-case letters and
//! digits, so a key with a `-` is never a plugin's and no two collide.

use std::fmt;

/// What a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Plugin,
    Interface,
    Brain,
    Core,
}

impl Kind {
    /// The `type` Domogik writes: `plugin`, `interface`, `brain`, `core`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Plugin => "plugin",
            Kind::Interface => "interface",
            Kind::Brain => "brain",
            Kind::Core => "core",
        }
    }

    /// The kind named by a `type` field; `None` for anything else.
    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "plugin" => Kind::Plugin,
            "interface" => Kind::Interface,
            "brain" => Kind::Brain,
            "core" => Kind::Core,
            _ => return None,
        })
    }

    /// Whether clients of this kind are packages in `packages_dir`.
    pub fn is_package(self) -> bool {
        !matches!(self, Kind::Core)
    }

    /// Whether clients of this kind run as a process (a brain is data only).
    pub fn runs(self) -> bool {
        !matches!(self, Kind::Brain)
    }

    /// Whether a user starts and stops it (plugins and interfaces); core
    /// components are the manager's to start, brains never run.
    pub fn user_started(self) -> bool {
        matches!(self, Kind::Plugin | Kind::Interface)
    }

    /// The package kinds, in the order their folders are told apart.
    pub const PACKAGES: [Kind; 3] = [Kind::Plugin, Kind::Interface, Kind::Brain];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client key of `name` of `kind`: `name` for a plugin, else `<kind>-<name>`.
pub fn key(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Plugin => name.to_owned(),
        other => format!("{other}-{name}"),
    }
}

/// The kind and name of a client key (see [`key`]).
pub fn split(key: &str) -> (Kind, &str) {
    match key.split_once('-') {
        Some((kind, name)) => match Kind::parse(kind) {
            Some(kind) if kind != Kind::Plugin => (kind, name),
            _ => (Kind::Plugin, key),
        },
        None => (Kind::Plugin, key),
    }
}

/// The package folder of a client key: `plugin_x`, `interface_x`, `brain_x`
/// (a core component has none; `core_x` is never read).
pub fn folder(key: &str) -> String {
    let (kind, name) = split(key);
    format!("{kind}_{name}")
}

/// The 0.5 dialect's client id: `<kind>-<name>.<host>`.
pub fn client_id_v05(key: &str, host: &str) -> String {
    let (kind, name) = split(key);
    format!("{kind}-{name}.{host}")
}

/// A client as a log line names it: `plugin diskfree`, `core component dbmgr`.
pub fn describe(key: &str) -> String {
    match split(key) {
        (Kind::Core, name) => format!("core component {name}"),
        (kind, name) => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_never_collide() {
        for kind in [Kind::Plugin, Kind::Interface, Kind::Brain, Kind::Core] {
            let key = key(kind, "x10");
            assert_eq!(split(&key), (kind, "x10"), "{key}");
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(key(Kind::Plugin, "diskfree"), "diskfree");
        assert_eq!(key(Kind::Core, "dbmgr"), "core-dbmgr");
        assert_eq!(folder("interface-foo"), "interface_foo");
        assert_eq!(folder("foo"), "plugin_foo");
        assert_eq!(client_id_v05("brain-b", "h"), "brain-b.h");
        assert_eq!(client_id_v05("p", "h"), "plugin-p.h");
        assert_eq!(describe("core-dbmgr"), "core component dbmgr");
        assert_eq!(describe("interface-foo"), "interface foo");
        assert_eq!(Kind::parse("xpl_client"), None);
        // "plugin-x" is no key a plugin has (its key is "x"): read as a name.
        assert_eq!(split("plugin-x"), (Kind::Plugin, "plugin-x"));
    }
}
