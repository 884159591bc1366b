//! xPL (docs/PROTOCOL.md §11): the house's own xPL devices as clients.
//! [`message`] is the codec, [`devices`] the state of the devices heard
//! (alive, dead, stopped; bounded), [`heartbeat`] our own `hbeat.app`
//! schedule, which registers the manager with the host's xPL hub.

pub mod devices;
pub mod heartbeat;
pub mod view;
pub mod message;

use std::net::Ipv4Addr;

/// The `[xpl]` section of the config (docs/PROTOCOL.md §11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XplConfig {
    /// Whether the manager joins the xPL network at all.
    pub enabled: bool,
    /// The interface to bind (Domogik's `[domogik] bind_interface`): a
    /// name, or `*` (the first interface that is not the loopback one).
    pub bind_interface: String,
    /// Where the hub is reached (Domogik's `[domogik] broadcast`); `None`:
    /// the interface's own broadcast address (127.255.255.255 on `lo`).
    pub broadcast: Option<Ipv4Addr>,
    /// At most this many xPL devices are kept.
    pub max_clients: usize,
}

/// `[xpl] enabled`: `auto` (the default) is on for a Domogik host (the
/// manager is the MDP worker of a broker), off standalone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enabled {
    Auto,
    Yes,
    No,
}

impl Enabled {
    /// Whether xPL is on, `on_a_bus` being whether `rep_endpoint` connects.
    pub fn resolve(self, on_a_bus: bool) -> bool {
        match self {
            Enabled::Auto => on_a_bus,
            Enabled::Yes => true,
            Enabled::No => false,
        }
    }
}

/// Reads `[xpl] enabled`: `auto`, or configparser's booleans (`yes`/`no`,
/// `true`/`false`, `on`/`off`, `1`/`0`, any case).
pub fn read_enabled(text: &str) -> Result<Enabled, crate::core::config::Expected> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(Enabled::Auto),
        "yes" | "true" | "on" | "1" => Ok(Enabled::Yes),
        "no" | "false" | "off" | "0" => Ok(Enabled::No),
        _ => Err("expected auto, yes or no".into()),
    }
}

/// Reads `[xpl] bind_interface`: an interface name (`lo`, `eth0`) or `*`.
/// Whether it exists is known only when the socket is opened.
pub fn read_bind_interface(text: &str) -> Result<String, crate::core::config::Expected> {
    let name_like = text.len() < 16 && text.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:@".contains(c));
    match text == "*" || name_like {
        true => Ok(text.to_owned()),
        false => Err("expected an interface name (lo, eth0...) or *".into()),
    }
}

/// Reads `[xpl] broadcast`: an IPv4 address.
pub fn read_broadcast(text: &str) -> Result<Ipv4Addr, crate::core::config::Expected> {
    text.parse()
        .map_err(|_| "expected an IPv4 address (255.255.255.255, 127.255.255.255...)".into())
}

/// Reads `[xpl] max_clients`: 1 to 65536.
pub fn read_max_clients(text: &str) -> Result<usize, crate::core::config::Expected> {
    match text.parse::<usize>() {
        Ok(count) if (1..=65_536).contains(&count) => Ok(count),
        _ => Err("expected a number of xPL devices from 1 to 65536".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_values() {
        assert_eq!(read_enabled("AUTO"), Ok(Enabled::Auto));
        for yes in ["yes", "True", "on", "1"] {
            assert_eq!(read_enabled(yes), Ok(Enabled::Yes), "{yes}");
        }
        for no in ["no", "FALSE", "off", "0"] {
            assert_eq!(read_enabled(no), Ok(Enabled::No), "{no}");
        }
        assert!(read_enabled("maybe").is_err());
        assert!(Enabled::Auto.resolve(true) && !Enabled::Auto.resolve(false));
        assert!(Enabled::Yes.resolve(false) && !Enabled::No.resolve(true));
        assert_eq!(read_bind_interface("eth0"), Ok("eth0".into()));
        assert_eq!(read_bind_interface("*"), Ok("*".into()));
        assert!(read_bind_interface("eth0 eth1").is_err());
        assert!(read_bind_interface("a-very-long-interface-name").is_err());
        assert_eq!(read_broadcast("127.255.255.255"), Ok(Ipv4Addr::new(127, 255, 255, 255)));
        assert!(read_broadcast("::1").is_err());
        assert_eq!(read_max_clients("256"), Ok(256));
        for bad in ["0", "65537", "-1", "x"] {
            assert!(read_max_clients(bad).is_err(), "{bad}");
        }
    }
}
