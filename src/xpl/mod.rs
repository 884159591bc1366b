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
