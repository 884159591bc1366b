//! Where a command connects to reach the manager, worked out from the
//! manager's own endpoints in the config file (PROTOCOL.md §5).
//!
//! The commands run on the manager's host with the same config file, so
//! they invert the daemon's direction: what the daemon binds, they connect
//! to; what the daemon connects to is a forwarder, whose *other* side they
//! must reach. With Domogik's MQ forwarder (an XSUB/XPUB proxy) the daemon's
//! PUB connects to the forwarder's publisher side (`pub_port`) and its SUB to
//! the subscriber side (`sub_port`), so each side's address is in the config
//! even though the daemon uses it for the opposite role:
//!
//! | command needs | daemon endpoint | the command connects to |
//! |---|---|---|
//! | requests (REQ) | `rep_endpoint = @X` | `X` |
//! | requests (REQ) | `rep_endpoint = >X` (MDP worker, the default) | `X`: Domogik's broker takes clients and workers on the same port, and routes by the service the request names |
//! | publications (SUB, `watch`) | `pub_endpoint = @X` | `X` |
//! | publications (SUB, `watch`) | `pub_endpoint = >Y`, `sub_endpoint = >Z` | `Z`, the forwarder's subscriber side, where the daemon's SUB also listens |
//! | status intake (publisher, `status`) | `sub_endpoint = @X` | `X` |
//! | status intake (publisher, `status`) | `sub_endpoint = >Z`, `pub_endpoint = >Y` | `Y`, the forwarder's publisher side, where the daemon's PUB also sends |
//!
//! A bound address on every interface (`tcp://*:P`, `0.0.0.0`, `[::]`) is
//! reached on `127.0.0.1`. A bound free port (`tcp://HOST:*`, `ipc://*`) is
//! only known to the running daemon (it logs it), so it is refused here with
//! a message saying to set a fixed one; so is a mixed layout where one side
//! binds and the other goes through a forwarder.

use super::ToolError;
use crate::core::config::{Config, Direction, Endpoint};
use std::fmt;

/// What a command needs from the manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    /// Its request socket (`clients`, and `watch`'s first fetch).
    Requests,
    /// Its publications, `clients.list` and `clients.detail` (`watch`).
    Publications,
    /// Where it reads plugin status messages (`status`).
    StatusIntake,
}

/// An address to connect to, and the config key it was derived from, for
/// error messages ("no reply from X (rep_endpoint ...)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub address: String,
    pub origin: String,
    /// Requests go through an MDP broker (the worker layout): no reply may
    /// mean no broker, or a manager not registered with it.
    pub broker: bool,
}

/// Why the config alone cannot tell where a command connects; displayed as
/// one line after the config file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoTarget {
    /// `own` connects to a forwarder whose other side `other` does not
    /// give (it binds): keys and endpoints.
    ForwarderUnknown {
        own_key: &'static str,
        own: Endpoint,
        other_key: &'static str,
        other: Endpoint,
    },
    /// The endpoint connects out to a broker: where do its clients (`what`)
    /// connect?
    ConnectsOut {
        key: &'static str,
        endpoint: Endpoint,
        what: &'static str,
    },
    /// The endpoint binds a free port chosen at start.
    FreePort { key: &'static str, endpoint: Endpoint },
}

impl fmt::Display for NoTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoTarget::ForwarderUnknown {
                own_key,
                own,
                other_key,
                other,
            } => write!(
                f,
                "{own_key} = {own} connects to a forwarder, but {other_key} = {other} binds: \
                 the config does not say where the forwarder's other side is"
            ),
            NoTarget::ConnectsOut { key, endpoint, what } => write!(
                f,
                "{key} = {endpoint} connects out to a broker: the config does not say where its {what} clients connect"
            ),
            NoTarget::FreePort { key, endpoint } => write!(
                f,
                "{key} = {endpoint} binds a free port chosen at start, which the config does not tell: \
                 set a fixed port (or an ipc:// path) to use this command"
            ),
        }
    }
}

/// Where to connect for `peer`, or one line saying why the config alone
/// cannot tell. Both name the config file.
pub(crate) fn target(peer: Peer, config: &Config) -> Result<Target, ToolError> {
    let file = config.path.display();
    match target_in(peer, config) {
        Ok(Target {
            address,
            origin,
            broker,
        }) => Ok(Target {
            address,
            origin: format!("{origin} in {file}"),
            broker,
        }),
        Err(why) => Err(ToolError(format!("{file}: {why}"))),
    }
}

fn target_in(peer: Peer, config: &Config) -> Result<Target, NoTarget> {
    let (own, own_key, other, other_key) = match peer {
        Peer::Requests if config.rep_endpoint.direction == Direction::Connect => {
            return Ok(Target {
                address: config.rep_endpoint.address.clone(),
                origin: format!("the MQ broker, rep_endpoint = {}", config.rep_endpoint),
                broker: true,
            })
        }
        Peer::Requests => return bound_target(&config.rep_endpoint, "rep_endpoint", "requests"),
        Peer::Publications => (
            &config.pub_endpoint,
            "pub_endpoint",
            &config.sub_endpoint,
            "sub_endpoint",
        ),
        Peer::StatusIntake => (
            &config.sub_endpoint,
            "sub_endpoint",
            &config.pub_endpoint,
            "pub_endpoint",
        ),
    };
    if own.direction == Direction::Bind {
        return bound_target(own, own_key, "");
    }
    // The daemon connects `own` to a forwarder; the forwarder's other side
    // is where the daemon's other socket connects.
    match other.direction {
        Direction::Connect => Ok(Target {
            address: other.address.clone(),
            origin: format!("the MQ forwarder's other side, {other_key} = {other}"),
            broker: false,
        }),
        Direction::Bind => Err(NoTarget::ForwarderUnknown {
            own_key,
            own: own.clone(),
            other_key,
            other: other.clone(),
        }),
    }
}

/// The connect address for an endpoint the daemon binds.
fn bound_target(endpoint: &Endpoint, key: &'static str, what: &'static str) -> Result<Target, NoTarget> {
    if endpoint.direction == Direction::Connect {
        return Err(NoTarget::ConnectsOut {
            key,
            endpoint: endpoint.clone(),
            what,
        });
    }
    let address = &endpoint.address;
    if address.ends_with(":*") || address == "ipc://*" {
        return Err(NoTarget::FreePort {
            key,
            endpoint: endpoint.clone(),
        });
    }
    let address = match ["tcp://*:", "tcp://0.0.0.0:", "tcp://[::]:"]
        .iter()
        .find_map(|prefix| address.strip_prefix(prefix))
    {
        Some(port) => format!("tcp://127.0.0.1:{port}"),
        None => address.clone(),
    };
    Ok(Target {
        address,
        origin: format!("{key} = {endpoint}"),
        broker: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(manager_keys: &str) -> Config {
        let text = format!("[mq]\npub_port = 5001\nsub_port = 5002\nreq_rep_port = 5000\n[manager]\n{manager_keys}");
        crate::core::config::parse(&text, Path::new("/etc/m.cfg"), "box").unwrap()
    }

    fn address(peer: Peer, config: &Config) -> String {
        target(peer, config).unwrap().address
    }

    #[test]
    fn standalone_layout_connects_where_the_daemon_binds() {
        let config = config("sub_endpoint = @tcp://127.0.0.1:40411\npub_endpoint = @tcp://127.0.0.1:40412\n");
        assert_eq!(address(Peer::Requests, &config), "tcp://127.0.0.1:5000");
        assert_eq!(address(Peer::Publications, &config), "tcp://127.0.0.1:40412");
        assert_eq!(address(Peer::StatusIntake, &config), "tcp://127.0.0.1:40411");
        assert_eq!(
            target(Peer::Publications, &config).unwrap().origin,
            "pub_endpoint = @tcp://127.0.0.1:40412 in /etc/m.cfg"
        );
    }

    #[test]
    fn forwarder_layout_swaps_sides() {
        // Defaults: the daemon's SUB connects to sub_port (the forwarder's
        // subscriber side), its PUB to pub_port (the publisher side).
        let config = config("");
        assert_eq!(
            address(Peer::Publications, &config),
            "tcp://127.0.0.1:5002",
            "UIs subscribe at sub_port"
        );
        assert_eq!(
            address(Peer::StatusIntake, &config),
            "tcp://127.0.0.1:5001",
            "publishers send to pub_port"
        );
        assert_eq!(address(Peer::Requests, &config), "tcp://127.0.0.1:5000");
        assert!(target(Peer::Publications, &config)
            .unwrap()
            .origin
            .contains("sub_endpoint"));
    }

    #[test]
    fn every_interface_is_reached_on_loopback() {
        let config = config(
            "rep_endpoint = @tcp://*:7000\npub_endpoint = @tcp://0.0.0.0:7001\nsub_endpoint = @tcp://[::]:7002\n",
        );
        assert_eq!(address(Peer::Requests, &config), "tcp://127.0.0.1:7000");
        assert_eq!(address(Peer::Publications, &config), "tcp://127.0.0.1:7001");
        assert_eq!(address(Peer::StatusIntake, &config), "tcp://127.0.0.1:7002");
    }

    #[test]
    fn ipc_paths_are_used_as_they_are() {
        let config = config("rep_endpoint = @ipc:///run/dmg/rep\npub_endpoint = @ipc:///run/dmg/pub\n");
        assert_eq!(address(Peer::Requests, &config), "ipc:///run/dmg/rep");
        assert_eq!(address(Peer::Publications, &config), "ipc:///run/dmg/pub");
    }

    #[test]
    fn what_the_config_cannot_tell_is_refused_with_the_key() {
        let free = config("rep_endpoint = @tcp://127.0.0.1:*\npub_endpoint = @ipc://*\n");
        let error = target(Peer::Requests, &free).unwrap_err().0;
        assert!(
            error.contains("rep_endpoint") && error.contains("fixed port"),
            "{error}"
        );
        assert!(target(Peer::Publications, &free)
            .unwrap_err()
            .0
            .contains("pub_endpoint"));

        let broker = config("rep_endpoint = >tcp://127.0.0.1:9\n");
        let through = target(Peer::Requests, &broker).unwrap();
        assert_eq!(through.address, "tcp://127.0.0.1:9", "clients ask the broker");
        assert!(through.origin.contains("broker"), "{}", through.origin);

        // The daemon's PUB goes to a forwarder but its SUB binds: the
        // forwarder's subscriber side is nowhere in the config.
        let mixed = config("sub_endpoint = @tcp://127.0.0.1:40411\n");
        let error = target(Peer::Publications, &mixed).unwrap_err().0;
        assert!(
            error.contains("pub_endpoint") && error.contains("sub_endpoint"),
            "{error}"
        );
        assert_eq!(address(Peer::StatusIntake, &mixed), "tcp://127.0.0.1:40411");
    }
}
