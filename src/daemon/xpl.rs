//! The xPL socket (docs/PROTOCOL.md §11): one UDP socket bound on the
//! configured interface's IPv4 address, on a port of its own (the
//! kernel's choice), polled in the same `zmq_poll` as the ZeroMQ sockets.
//! What it reads goes to the pure xPL state (`crate::xpl`); what that
//! state owes (our heartbeat, one `hbeat.request`) is sent to the hub at
//! the broadcast address, port 3865.

use super::StartError;
use crate::core::liveness::Now;
use crate::core::log_policy::RateLimiter;
use crate::core::xpl::heartbeat::{Hub, OwnHeartbeat};
use crate::core::xpl::message::{self, Address, MAX_DATAGRAM};
use crate::core::config::XplConfig;
use crate::{debug, info, warn};
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// The xPL port, where the hub listens (the xPL specification's 3865).
pub(crate) const XPL_PORT: u16 = 3865;
/// Tests only: the hub's port instead of 3865, and the length of an xPL
/// minute in milliseconds (docs/PROTOCOL.md §11). Not config keys:
/// production keeps the specification's.
pub(crate) const TEST_PORT_ENV: &str = "DMG_MANAGER_TEST_XPL_PORT";
pub(crate) const TEST_MINUTE_ENV: &str = "DMG_MANAGER_TEST_XPL_MINUTE_MS";
/// At most this many datagrams read per loop turn (and at most
/// `MAX_WORK_PER_TURN`): a flood cannot starve the other sockets.
pub(crate) const MAX_DATAGRAMS_PER_TURN: usize = 256;

/// The length of an xPL minute: 60 s, or the test knob's (10 to 60000 ms).
pub(crate) fn minute() -> Duration {
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
pub(crate) struct XplSocket {
    socket: UdpSocket,
    hub: SocketAddrV4,
    own: OwnHeartbeat,
    bad_log: RateLimiter,
}

impl XplSocket {
    /// Binds on `config`'s interface, source `domogik-manager.<host>`.
    pub(crate) fn open(config: &XplConfig, host: &str, now: Instant) -> Result<XplSocket, StartError> {
        let key = "[xpl] bind_interface";
        let (ip, interface_broadcast) = crate::sys::host::interface_address(&config.bind_interface)
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
        let source = Address::parse(&format!("{}-manager.{host}", crate::core::xpl::devices::DOMOGIK_VENDOR))
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

    pub(crate) fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// When our next message is due.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.own.poll_timeout()
    }

    /// Reads the datagrams waiting (a turn's worth): our heartbeat's echo
    /// and `hbeat.request`s are taken here, every message is returned for
    /// the devices; a bad datagram is logged (rate-limited).
    pub(crate) fn read(&mut self, now: Now, budget: Duration) -> Vec<message::Message> {
        let mut messages = Vec::new();
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
                    messages.push(message);
                }
                Err(error) => {
                    if let crate::core::log_policy::Verdict::Write { suppressed } = self.bad_log.check(now.mono) {
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
        messages
    }

    /// Sends what our schedule owes now (heartbeat, `hbeat.request`).
    pub(crate) fn send_due(&mut self, now: Instant) {
        if let Some(searching) = self.own.poll_no_hub(now) {
            warn!(
                "xPL: no hub has answered at {} for {:.0} s: no xPL device can be seen (is the host's xPL hub \
                 running? [xpl] broadcast and bind_interface say where it is; [xpl] enabled = no turns xPL off); \
                 still trying every 30 s, and saying so when it answers",
                self.hub,
                searching.as_secs_f64()
            );
        }
        while let Some(message) = self.own.poll_transmit(now) {
            if self.own.hub() == Hub::Searching {
                debug!("xPL: looking for the hub at {}", self.hub);
            }
            self.send(&message);
        }
    }

    /// Our `hbeat.end`: the hub forgets us at once.
    pub(crate) fn leave(&self) {
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
