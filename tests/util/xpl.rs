//! xPL peers for the tests: the tiny hub (`tests/util/xplhub.py`, a real
//! process) and fake devices that heartbeat through it over real UDP on
//! loopback. Every wait has a deadline.

use super::{Lines, DEADLINE};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const HUB_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/util/xplhub.py");
/// The loopback broadcast address: the hub listens there, as on the
/// real-domogik host, and devices and the manager send there.
pub const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// The hub process, on `LOOPBACK_BROADCAST:port`; stopped when dropped.
pub struct Hub {
    child: Child,
    pub port: u16,
    pub lines: Lines,
}

impl Hub {
    /// Starts the hub with an xPL minute of `minute`, on a free port.
    pub fn start(minute: Duration) -> Hub {
        Hub::start_on(minute, 0)
    }

    /// Starts the hub on `port` (0: a free one).
    pub fn start_on(minute: Duration, port: u16) -> Hub {
        let mut child = Command::new("python3")
            .arg(HUB_SCRIPT)
            .arg(LOOPBACK_BROADCAST.to_string())
            .arg(minute.as_millis().to_string())
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the test hub");
        let lines = Lines::read(child.stdout.take().unwrap());
        let (_, first) = lines
            .find_from(0, Instant::now() + DEADLINE, |line| line.starts_with("listening "))
            .expect("the hub says its port");
        let port = first["listening ".len()..].parse().unwrap();
        Hub { child, port, lines }
    }

    /// Waits for the hub to print `line` (e.g. `registered acme-a.b`).
    pub fn await_line(&self, prefix: &str) -> String {
        self.lines
            .find_from(0, Instant::now() + DEADLINE, |line| line.starts_with(prefix))
            .map(|(_, line)| line)
            .unwrap_or_else(|| panic!("the hub never said {prefix:?}; it said {:?}", self.lines.all()))
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from((LOOPBACK_BROADCAST, self.port))
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake xPL device: its own UDP socket on loopback, heartbeating to the hub.
pub struct Device {
    pub socket: UdpSocket,
    pub source: String,
    hub: SocketAddr,
}

impl Device {
    pub fn new(source: &str, hub: &Hub) -> Device {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.set_broadcast(true).unwrap();
        Device {
            socket,
            source: source.to_owned(),
            hub: hub.address(),
        }
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// Sends `schema` (`hbeat.app`, `hbeat.basic`, `hbeat.end`) with this
    /// `interval` in minutes.
    pub fn heartbeat(&self, schema: &str, interval: u32) {
        let text = format!(
            "xpl-stat\n{{\nhop=1\nsource={}\ntarget=*\n}}\n{schema}\n{{\ninterval={interval}\nport={}\nremote-ip=127.0.0.1\n}}\n",
            self.source,
            self.port()
        );
        self.send(text.as_bytes());
    }

    pub fn send(&self, datagram: &[u8]) {
        self.socket.send_to(datagram, self.hub).unwrap();
    }

    /// The next datagram relayed to this device whose text contains
    /// `wanted`, within `within`; `None` if none came.
    pub fn receive(&self, wanted: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        let mut buffer = [0u8; 2048];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv_from(&mut buffer) {
                Ok((size, _)) => {
                    let text = String::from_utf8_lossy(&buffer[..size]).into_owned();
                    if text.contains(wanted) {
                        return Some(text);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}
