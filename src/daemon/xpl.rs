//! The xPL socket (docs/PROTOCOL.md §11): one UDP socket bound on the
//! configured interface's IPv4 address, on a port of its own (the
//! kernel's choice), polled in the same `zmq_poll` as the ZeroMQ sockets.
//! What it reads goes to the pure xPL state (`crate::xpl`); what that
//! state owes (our heartbeat, one `hbeat.request`) is sent to the hub at
//! the broadcast address, port 3865.

use super::StartError;
use crate::liveness::Now;
use crate::log::RateLimiter;
use crate::xpl::devices::{Devices, Heard};
use crate::xpl::heartbeat::{Hub, OwnHeartbeat};
use crate::xpl::message::{self, Address, MAX_DATAGRAM};
use crate::xpl::XplConfig;
use crate::{debug, info, warn};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// The xPL port, where the hub listens (the xPL specification's 3865).
pub const XPL_PORT: u16 = 3865;
/// Tests only: the hub's port instead of 3865, and the length of an xPL
/// minute in milliseconds (docs/PROTOCOL.md §11). Not config keys:
/// production keeps the specification's.
pub const TEST_PORT_ENV: &str = "DMG_MANAGER_TEST_XPL_PORT";
pub const TEST_MINUTE_ENV: &str = "DMG_MANAGER_TEST_XPL_MINUTE_MS";
/// At most this many datagrams read per loop turn (and at most
/// `MAX_WORK_PER_TURN`): a flood cannot starve the other sockets.
pub const MAX_DATAGRAMS_PER_TURN: usize = 256;

/// The length of an xPL minute: 60 s, or the test knob's (10 to 60000 ms).
pub fn minute() -> Duration {
    std::env::var(TEST_MINUTE_ENV)
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|ms| (10..=60_000).contains(ms))
        .map_or(Duration::from_secs(60), Duration::from_millis)
}

fn hub_port() -> u16 {
    std::env::var(TEST_PORT_ENV)
        .ok()
        .and_then(|port| port.parse::<u16>().ok())
        .filter(|port| *port > 0)
        .unwrap_or(XPL_PORT)
}

/// The xPL socket and our heartbeat schedule.
pub struct XplSocket {
    socket: UdpSocket,
    hub: SocketAddrV4,
    own: OwnHeartbeat,
    bad_log: RateLimiter,
}

impl XplSocket {
    /// Binds on `config`'s interface, source `domogik-manager.<host>`.
    pub fn open(config: &XplConfig, host: &str, now: Instant) -> Result<XplSocket, StartError> {
        let key = "[xpl] bind_interface";
        let (ip, interface_broadcast) = interface_address(&config.bind_interface)
            .map_err(|e| StartError(format!("{key} = {}: {e}", config.bind_interface)))?;
        let broadcast = config.broadcast.unwrap_or(interface_broadcast);
        let socket = UdpSocket::bind((ip, 0))
            .and_then(|socket| {
                socket.set_broadcast(true)?;
                socket.set_nonblocking(true)?;
                Ok(socket)
            })
            .map_err(|e| {
                StartError(format!(
                    "cannot open the xPL socket on {ip} ({key} = {}): {e}",
                    config.bind_interface
                ))
            })?;
        let port = socket.local_addr().map(|address| address.port()).unwrap_or(0);
        let source = Address::parse(&format!("{}-manager.{host}", crate::xpl::devices::DOMOGIK_VENDOR))
            .map_err(|e| StartError(format!("host {host:?} cannot be an xPL instance id: {e}")))?;
        let hub = SocketAddrV4::new(broadcast, hub_port());
        info!("xPL: listening on {ip}:{port} as {source}, heartbeats to the hub at {hub}");
        Ok(XplSocket {
            socket,
            hub,
            own: OwnHeartbeat::new(source, ip, port, minute(), now),
            bad_log: RateLimiter::new(5, Duration::from_secs(600)),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// When our next message is due.
    pub fn next_deadline(&self) -> Instant {
        self.own.next_deadline()
    }

    /// Reads the datagrams waiting (a turn's worth) into `devices`; what
    /// each did, for the caller to log and publish.
    pub fn read(&mut self, devices: &mut Devices, now: Now, budget: Duration) -> Vec<Heard> {
        let mut heard = Vec::new();
        let mut buffer = [0u8; MAX_DATAGRAM + 1];
        let started = Instant::now();
        for _ in 0..MAX_DATAGRAMS_PER_TURN {
            let (size, from) = match self.socket.recv_from(&mut buffer) {
                Ok(received) => received,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    debug!("xPL: cannot read the socket: {e}");
                    break;
                }
            };
            let datagram = buffer.get(..size).unwrap_or_default();
            match message::decode(datagram) {
                Ok(message) => {
                    if self.own.handle_echo(&message, now.mono) {
                        info!("xPL: registered with the hub (our heartbeat came back through it)");
                    }
                    self.own.handle_request(&message, now.mono);
                    heard.push(devices.handle_message(&message, now));
                }
                Err(error) => {
                    if let crate::log::Verdict::Write { suppressed } = self.bad_log.check(now.mono) {
                        let more = match suppressed {
                            0 => String::new(),
                            n => format!(" ({n} more dropped since the last such line)"),
                        };
                        warn!(peer = from.to_string().as_str(); "xPL: datagram from {from} dropped: {error}{more}");
                    }
                }
            }
            if started.elapsed() > budget {
                break;
            }
        }
        heard
    }

    /// Sends what our schedule owes now (heartbeat, `hbeat.request`).
    pub fn send_due(&mut self, now: Instant) {
        while let Some(message) = self.own.poll_transmit(now) {
            if self.own.hub() == Hub::Searching {
                debug!("xPL: looking for the hub at {}", self.hub);
            }
            self.send(&message);
        }
    }

    /// Our `hbeat.end`: the hub forgets us at once.
    pub fn leave(&self) {
        self.send(&self.own.end());
    }

    fn send(&self, message: &message::Message) {
        match message::encode(message) {
            Ok(bytes) => {
                if let Err(e) = self.socket.send_to(&bytes, self.hub) {
                    debug!("xPL: cannot send to {}: {e}", self.hub);
                }
            }
            Err(size) => debug!("xPL: our own message is {size} bytes, not sent"),
        }
    }
}

/// The IPv4 address to bind for `interface` and that interface's
/// broadcast address: `lo`, `eth0`...; `*` is Domogik's: the first
/// interface that is not a loopback one, or the loopback when it is the
/// only one.
pub fn interface_address(interface: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let found = interfaces();
    let pick = match interface {
        "*" => found
            .iter()
            .find(|entry| !entry.address.is_loopback())
            .or_else(|| found.first()),
        name => found.iter().find(|entry| entry.name == name),
    };
    match pick {
        Some(entry) => Ok((
            entry.address,
            Ipv4Addr::from(u32::from(entry.address) | !u32::from(entry.netmask)),
        )),
        None => Err(format!(
            "no such interface with an IPv4 address that is up (there are: {})",
            found
                .iter()
                .map(|entry| entry.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

struct Interface {
    name: String,
    address: Ipv4Addr,
    netmask: Ipv4Addr,
}

/// The interfaces that are up with an IPv4 address, in the kernel's order.
fn interfaces() -> Vec<Interface> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below;
    // each node, its name and its addresses are valid until freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut node = list;
        while let Some(entry) = node.as_ref() {
            let up = entry.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
            let inet = |pointer: *mut libc::sockaddr| {
                pointer
                    .as_ref()
                    .filter(|address| i32::from(address.sa_family) == libc::AF_INET)
                    .map(|_| Ipv4Addr::from(u32::from_be((*(pointer as *const libc::sockaddr_in)).sin_addr.s_addr)))
            };
            if let (true, Some(address), false) = (up, inet(entry.ifa_addr), entry.ifa_name.is_null()) {
                found.push(Interface {
                    name: std::ffi::CStr::from_ptr(entry.ifa_name).to_string_lossy().into_owned(),
                    address,
                    netmask: inet(entry.ifa_netmask).unwrap_or(Ipv4Addr::BROADCAST),
                });
            }
            node = entry.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_interface_binds_127_0_0_1_and_broadcasts_on_127_255_255_255() {
        assert_eq!(
            interface_address("lo"),
            Ok((Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 255, 255, 255)))
        );
        let error = interface_address("nope0").unwrap_err();
        assert!(
            error.starts_with("no such interface") && error.contains("lo"),
            "{error}"
        );
        assert!(interface_address("*").is_ok());
    }
}
