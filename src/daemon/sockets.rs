//! The event loop's sockets: opening each with its options and limits,
//! watching the ones the manager connects (libzmq's socket monitor, read
//! by [`crate::core::bus::links`]), reopening a connection lost for good, the
//! MDP worker's timers, and leaving ZeroMQ at exit.

use crate::core::bus::links;
use crate::core::bus::mdp::Timing;
use crate::core::bus::session::{Role, Session};
use crate::core::config::{Config, Direction, Endpoint};
use crate::core::log_policy::Level;
use crate::core::manager::STATUS_SUBSCRIPTION;
use crate::core::wire::Frames;
use crate::{debug, info, warn};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// At most this many messages of one socket per turn, so that a flood on
/// one socket cannot starve the other or delay a SIGTERM...
pub const MAX_REQUESTS_PER_TURN: usize = 64;
pub const MAX_STATUSES_PER_TURN: usize = 1024;
/// And at most this long on one socket's messages per turn: a count alone
/// let 1024 large status messages (a JSON parse each) hold a turn for
/// seconds, delaying every reply and SIGTERM behind them.
pub(super) const MAX_WORK_PER_TURN: Duration = Duration::from_millis(20);

/// Socket limits: see docs/PROTOCOL.md, "Limits". (Public for the
/// benchmark's floor server, which must use the same: src/daemon.rs
/// re-exports them.)
/// A request above this size makes libzmq drop the connection unread;
/// below it, requests over `wire::MAX_REQUEST_BYTES` get an `error` reply.
pub const REP_MAX_MSG_BYTES: i64 = 8 * 1024 * 1024;
pub const SUB_MAX_MSG_BYTES: i64 = 1024 * 1024;
pub const REP_RCVHWM: i32 = 100;
/// Replies queued for one client that does not read them (a REQ client has
/// at most one): past this, its replies are dropped, so a client that
/// pipelines requests and never reads holds at most this many in memory.
pub const REP_SNDHWM: i32 = 100;
/// Status messages queued before libzmq stops reading the publisher (whose
/// own queue then drops). The memory this can hold is SUB_RCVHWM times
/// SUB_MAX_MSG_BYTES: a peer sending large valid statuses faster than they
/// are parsed filled 10 000 of them (1.9 GB); 100 holds at most 100 MiB.
pub const SUB_RCVHWM: i32 = 100;
/// Publications queued for one slow subscriber before newer ones are dropped.
pub const PUB_SNDHWM: i32 = 64;

/// Answers queued for us at most (dbmgr sends one per question).
pub(super) const DBMGR_RCVHWM: i32 = 100;
/// Questions queued while the broker is away; past this they are dropped,
/// and asked again when they time out.
pub(super) const DBMGR_SNDHWM: i32 = 100;
/// The largest answer read: a plugin's configuration is a few hundred
/// bytes; a larger message (a broken or hostile worker registered as
/// `dbmgr`) is refused by libzmq before it is allocated, the connection
/// with it, and the socket reopened (its monitor sees the loss).
pub(super) const DBMGR_MAX_ANSWER_BYTES: i64 = 1024 * 1024;

/// A failure before the loop could start: a socket that cannot be opened,
/// bound or connected, or signals that cannot be handled.
#[derive(Debug)]
pub(crate) struct StartError(pub(crate) String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// Hands each queued message of `socket` to `handle`, at most `limit` of
/// them and for at most `MAX_WORK_PER_TURN`, without waiting for more; a
/// receive error ends the turn's reading and is returned (the caller logs it).
pub(super) fn for_each_queued(
    socket: &zmq::Socket,
    limit: usize,
    mut handle: impl FnMut(Vec<Vec<u8>>),
) -> Result<(), zmq::Error> {
    let started = Instant::now();
    for _ in 0..limit {
        if started.elapsed() >= MAX_WORK_PER_TURN {
            return Ok(());
        }
        match socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => handle(frames),
            Err(zmq::Error::EAGAIN) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The environment variable that shortens every heartbeat timing, for
/// tests only (docs/RELIABILITY.md): the MDP heartbeat and the forwarder's
/// echo, in milliseconds (Domogik's 1000 by default).
pub(crate) const TEST_HEARTBEAT_ENV: &str = "DMG_MANAGER_TEST_HEARTBEAT_MS";

/// The heartbeat interval: 1 s, or the test knob's.
pub(super) fn heartbeat_interval() -> Duration {
    std::env::var(TEST_HEARTBEAT_ENV)
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|&ms| (10..=60_000).contains(&ms))
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

/// The sockets: the SUB, the request side (a bound ROUTER, or the MDP
/// worker's DEALER), the PUB, the questions to dbmgr, and the context they
/// belong to; transport only: what to open, close, reopen or send is the
/// core's ([`Session`]). Kept apart from the loop's state so the poll items
/// (which borrow the sockets) never fight with the handlers over borrows.
pub(super) struct Sockets {
    context: zmq::Context,
    /// The heartbeat interval of the connecting sockets (and MDP's).
    heartbeat: Duration,
    pub sub: Watched,
    pub requests: Watched,
    pub publisher: Watched,
    /// Questions to dbmgr through the broker: opened once the broker has
    /// answered the MDP worker, closed while it is taken for dead (none
    /// standalone). A DEALER connecting to a port nobody listens on can be
    /// connected by TCP to itself, and would then hold Domogik's port
    /// against its broker; the worker's DEALER notices that from its own
    /// READY, an idle dbmgr DEALER could not.
    pub dbmgr: Option<Watched>,
    rep_endpoint: Endpoint,
    /// The xPL socket, when `[xpl]` is on (docs/PROTOCOL.md §12).
    pub(super) xpl: Option<super::xpl::XplSocket>,
}

impl Sockets {
    /// Opens every socket `config` asks for: bound or connected, limits
    /// set; and the session that decides what to do with them.
    pub(super) fn open(config: &Config) -> Result<(Sockets, Session), StartError> {
        let context = zmq::Context::new();
        let heartbeat = heartbeat_interval();
        if let Some(ip) = &config.star_ip {
            info!("[mq] ip = *: connecting sockets use {ip}, this host's first non-loopback IPv4 address");
        }
        let sockets = Sockets {
            sub: Watched::open(&context, Role::Sub, &config.sub_endpoint, heartbeat)?,
            requests: Watched::open(&context, Role::Requests, &config.rep_endpoint, heartbeat)?,
            publisher: Watched::open(&context, Role::Pub, &config.pub_endpoint, heartbeat)?,
            dbmgr: None,
            rep_endpoint: config.rep_endpoint.clone(),
            xpl: match config.xpl.enabled {
                true => Some(super::xpl::XplSocket::open(&config.xpl, &config.host, Instant::now())?),
                false => None,
            },
            context,
            heartbeat,
        };
        Ok((sockets, Session::new(config, Timing::scaled(heartbeat), Instant::now())))
    }

    fn get(&self, role: Role) -> Option<&Watched> {
        match role {
            Role::Sub => Some(&self.sub),
            Role::Pub => Some(&self.publisher),
            Role::Requests => Some(&self.requests),
            Role::Dbmgr => self.dbmgr.as_ref(),
        }
    }

    fn get_mut(&mut self, role: Role) -> Option<&mut Watched> {
        match role {
            Role::Sub => Some(&mut self.sub),
            Role::Pub => Some(&mut self.publisher),
            Role::Requests => Some(&mut self.requests),
            Role::Dbmgr => self.dbmgr.as_mut(),
        }
    }

    /// Sends on the socket of `role`, never waiting (a DEALER to a broker
    /// that is not there queues, or drops past its high-water mark).
    pub(super) fn send(&self, role: Role, frames: Frames) {
        match (self.get(role), role) {
            (Some(watched), Role::Dbmgr) => {
                if let Err(e) = watched.socket.send_multipart(frames, zmq::DONTWAIT) {
                    debug!("dbmgr question not sent ({e}): asked again later");
                }
            }
            (Some(watched), _) => send_or_log(&watched.socket, frames),
            // Its opening failed just before (said then).
            (None, _) => debug!("{} socket not open: message not sent", role.name()),
        }
    }

    /// Opens the socket of `role` (the dbmgr DEALER, once the broker
    /// answers; if not open yet).
    pub(super) fn open_role(&mut self, role: Role) -> Result<(), StartError> {
        if role != Role::Dbmgr || self.dbmgr.is_some() {
            return Ok(());
        }
        let dbmgr = Watched::open(&self.context, Role::Dbmgr, &self.rep_endpoint, self.heartbeat)?;
        self.dbmgr = Some(dbmgr);
        Ok(())
    }

    /// Closes the socket of `role` (the dbmgr DEALER only: the others live
    /// as long as the loop).
    pub(super) fn close(&mut self, role: Role) {
        if role == Role::Dbmgr {
            self.dbmgr = None;
        }
    }

    /// Replaces the socket of `role` by a new one on the same endpoint.
    pub(super) fn reopen(&mut self, role: Role) -> Result<(), StartError> {
        let (context, heartbeat) = (self.context.clone(), self.heartbeat);
        match self.get_mut(role) {
            Some(watched) => watched.reopen(&context, heartbeat),
            None => Ok(()),
        }
    }

    /// Hands the monitors' queued events to the session.
    pub(super) fn read_monitors(&self, session: &mut Session, now: Instant) {
        for role in [Role::Requests, Role::Sub, Role::Dbmgr, Role::Pub] {
            if let Some(watched) = self.get(role) {
                watched.read_monitor(session, now);
            }
        }
    }

    /// Ends the loop's use of ZeroMQ without closing the sockets or
    /// terminating the context: the process exits right after, and with a
    /// linger of 0 closing would send nothing more anyway. Closing is not
    /// harmless: libzmq 4.3 aborts the process ("Resource temporarily
    /// unavailable (src/zmtp_engine.cpp:446)") when a peer that it takes for a
    /// ZMTP 1.0 one (any non-ZeroMQ client) is half-way through its handshake
    /// while its socket closes, so under a flood of such connections SIGTERM
    /// could end in SIGABRT instead of exit 0. What zmq_close does that would
    /// outlive the process, removing the files of bound ipc:// endpoints, is
    /// done here.
    pub(super) fn leave_without_closing(self, config: &Config) {
        for endpoint in [&config.sub_endpoint, &config.pub_endpoint, &config.rep_endpoint] {
            if let (Direction::Bind, Some(path)) = (endpoint.direction, endpoint.address.strip_prefix("ipc://")) {
                if let Err(e) = std::fs::remove_file(path) {
                    debug!("cannot remove {path}: {e}");
                }
            }
        }
        std::mem::forget(self);
    }
}

/// One socket, with the monitor of a connecting one.
pub(super) struct Watched {
    pub socket: zmq::Socket,
    /// The PAIR end of the socket's monitor (connecting sockets only).
    pub monitor: Option<zmq::Socket>,
    pub role: Role,
    pub endpoint: Endpoint,
}

impl Watched {
    /// Opens `role`'s socket on `endpoint`: binds or connects, and logs the
    /// address actually used (a `*` port is resolved by then, which is how
    /// tests learn ephemeral ports).
    pub(super) fn open(
        context: &zmq::Context,
        role: Role,
        endpoint: &Endpoint,
        heartbeat: Duration,
    ) -> Result<Watched, StartError> {
        Watched::open_logged(context, role, endpoint, heartbeat, Level::Info)
    }

    /// [`Watched::open`], saying where it connects at `level` (a reopening
    /// says it at debug: what led to it was said already).
    fn open_logged(
        context: &zmq::Context,
        role: Role,
        endpoint: &Endpoint,
        heartbeat: Duration,
        level: Level,
    ) -> Result<Watched, StartError> {
        let connecting = endpoint.direction == Direction::Connect;
        let socket = new_socket(context, role, connecting, heartbeat)?;
        let monitor = if connecting {
            Some(watch(context, &socket, role)?)
        } else {
            None
        };
        attach(&socket, role, endpoint, level)?;
        Ok(Watched {
            socket,
            monitor,
            role,
            endpoint: endpoint.clone(),
        })
    }

    /// Replaces the socket by a new one on the same endpoint.
    fn reopen(&mut self, context: &zmq::Context, heartbeat: Duration) -> Result<(), StartError> {
        let fresh = Watched::open_logged(context, self.role, &self.endpoint, heartbeat, Level::Debug)?;
        self.socket = fresh.socket;
        self.monitor = fresh.monitor;
        Ok(())
    }

    /// Hands the monitor's queued events to the session.
    fn read_monitor(&self, session: &mut Session, now: Instant) {
        let Some(monitor) = &self.monitor else {
            return;
        };
        while let Ok(frames) = monitor.recv_multipart(zmq::DONTWAIT) {
            if let Some((event, address)) = links::decode_event(&frames) {
                session.handle_link_event(self.role, event, &address, now);
            }
        }
    }
}

/// Sends on a socket that must never block the loop: a DEALER to a broker
/// that is not there queues (or drops past its high-water mark).
pub(super) fn send_or_log(socket: &zmq::Socket, frames: Frames) {
    if let Err(e) = socket.send_multipart(frames, zmq::DONTWAIT) {
        debug!("cannot send to the broker: {e}");
    }
}

fn new_socket(
    context: &zmq::Context,
    role: Role,
    connecting: bool,
    heartbeat: Duration,
) -> Result<zmq::Socket, StartError> {
    let what = role.name();
    let kind = match (role, connecting) {
        (Role::Sub, _) => zmq::SUB,
        (Role::Pub, false) => zmq::PUB,
        (Role::Pub, true) => zmq::XPUB,
        // A ROUTER with REP's envelope rules, not a REP: see src/core/envelope.rs.
        (Role::Requests, false) => zmq::ROUTER,
        (Role::Requests, true) | (Role::Dbmgr, _) => zmq::DEALER,
    };
    let socket = context
        .socket(kind)
        .map_err(|e| StartError(format!("cannot create the {what} socket: {e}")))?;
    let setup =
        |result: zmq::Result<()>| result.map_err(|e| StartError(format!("cannot set up the {what} socket: {e}")));
    // Never wait for unsent messages at exit: SIGTERM must end us at once.
    setup(socket.set_linger(0))?;
    match role {
        Role::Sub => {
            setup(socket.set_maxmsgsize(SUB_MAX_MSG_BYTES))?;
            setup(socket.set_rcvhwm(SUB_RCVHWM))?;
            setup(socket.set_subscribe(STATUS_SUBSCRIPTION.as_bytes()))?;
            // The other managers' clients (PROTOCOL.md §13).
            setup(socket.set_subscribe(crate::core::hosts::SUBSCRIPTION.as_bytes()))?;
        }
        Role::Pub => {
            setup(socket.set_sndhwm(PUB_SNDHWM))?;
            if connecting {
                // Every subscription, also repeated ones: each is a
                // subscriber (back) at the forwarder.
                setup(socket.set_xpub_verbose(true))?;
                setup(socket.set_maxmsgsize(64 * 1024))?;
            }
        }
        Role::Requests => {
            setup(socket.set_maxmsgsize(REP_MAX_MSG_BYTES))?;
            setup(socket.set_rcvhwm(REP_RCVHWM))?;
            setup(socket.set_sndhwm(REP_SNDHWM))?;
        }
        Role::Dbmgr => {
            // An answer over the limit costs libzmq the connection, which
            // the monitor sees and reopens, as for the SUB.
            setup(socket.set_maxmsgsize(DBMGR_MAX_ANSWER_BYTES))?;
            setup(socket.set_rcvhwm(DBMGR_RCVHWM))?;
            setup(socket.set_sndhwm(DBMGR_SNDHWM))?;
        }
    }
    let millis = i32::try_from(heartbeat.as_millis()).unwrap_or(i32::MAX);
    if connecting {
        // No ZMTP heartbeats (ZMQ_HEARTBEAT_IVL): libzmq sends its PING to
        // a ZMTP 3.0 peer too (libzmq 4.0/4.1, Domogik's MQ on pyzmq 16),
        // which hands it to Domogik's code as a message it cannot parse
        // and never answers. Liveness comes from the protocol above: the
        // MDP heartbeat for the broker (the dbmgr DEALER follows the
        // worker), our own statuses echoed by the forwarder for the SUB
        // and the PUB (src/core/bus/echo.rs says why and how). Not TCP
        // keepalive either: the libzmq the zmq crate builds is compiled
        // without it (zeromq-src defines no ZMQ_HAVE_TCP_KEEPIDLE, so
        // ZMQ_TCP_KEEPALIVE* are accepted and ignored).
        // A connect that gets no answer is retried instead of waiting for
        // the kernel's SYN back-off (minutes).
        setup(socket.set_connect_timeout(millis.saturating_mul(2)))?;
        // libzmq retries a refused connect every 100 ms forever by default,
        // and each retry's monitor event wakes the loop: with no broker or
        // forwarder on the host, some 20 wake-ups a second. Back off to two
        // heartbeats between retries instead (a peer that comes back is
        // reached within 2 s).
        setup(socket.set_reconnect_ivl_max(millis.saturating_mul(2)))?;
    }
    Ok(socket)
}

/// Starts libzmq's monitor on `socket` and returns the PAIR it reports to.
fn watch(context: &zmq::Context, socket: &zmq::Socket, role: Role) -> Result<zmq::Socket, StartError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let what = role.name();
    let address = format!("inproc://monitor-{what}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let failed = |e: zmq::Error| StartError(format!("cannot watch the {what} socket's connection: {e}"));
    socket.monitor(&address, links::EVENTS).map_err(failed)?;
    let pair = context.socket(zmq::PAIR).map_err(failed)?;
    pair.set_linger(0).map_err(failed)?;
    pair.connect(&address).map_err(failed)?;
    Ok(pair)
}

/// Binds or connects, and logs the address used.
fn attach(socket: &zmq::Socket, role: Role, endpoint: &Endpoint, level: Level) -> Result<(), StartError> {
    let key = role.key();
    let role = role.name();
    if endpoint.address.contains('[') {
        socket
            .set_ipv6(true)
            .map_err(|e| StartError(format!("cannot enable IPv6 for {key} {endpoint}: {e}")))?;
    }
    match endpoint.direction {
        Direction::Bind => {
            socket
                .bind(&endpoint.address)
                .map_err(|e| StartError(format!("cannot bind {key} {endpoint}: {e}{}", bind_advice(e))))?;
            let actual = socket
                .get_last_endpoint()
                .ok()
                .and_then(Result::ok)
                .unwrap_or_else(|| endpoint.address.clone());
            info!("{role} socket bound to {actual}");
            if let Some(path) = actual.strip_prefix("ipc://") {
                open_to_group(path);
            }
            if endpoint.binds_every_interface() {
                warn!("{key} {endpoint} listens on every interface: anyone on your network can reach it and read the clients list");
            }
        }
        Direction::Connect => {
            socket
                .connect(&endpoint.address)
                .map_err(|e| StartError(format!("cannot connect {key} {endpoint}: {e}")))?;
            ::log::log!(level.into(), peer = endpoint.address.as_str(); "{role} socket connecting to {}", endpoint.address);
        }
    }
    Ok(())
}

/// What to do about a failed bind, to end its error line.
fn bind_advice(error: zmq::Error) -> &'static str {
    match error {
        zmq::Error::EADDRINUSE => {
            " (another program listens there, maybe a second manager or Domogik's broker: stop it, set another port or path, or remove rep_endpoint to work as an MDP worker of that broker)"
        }
        zmq::Error::EADDRNOTAVAIL => " (not an address of this machine: set [mq] ip or the endpoint to one, or 127.0.0.1)",
        zmq::Error::EACCES | zmq::Error::ENOENT => {
            " (the folder must exist and be writable by the manager's user: under systemd, ipc:///run/domogik-manager/NAME)"
        }
        _ => "",
    }
}

/// Lets the socket file's group connect (read and write, mode 0660):
/// libzmq creates it with the umask's mode, and the unit's `UMask=0077`
/// left it to its owner, so that a member of group domogik running
/// `dmg_manager clients` was refused. The folder decides who may reach it
/// (`RuntimeDirectoryMode=0750`, group domogik).
fn open_to_group(path: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)) {
        warn!("cannot make {path} mode 0660 ({e}): only its owner may connect to it");
    }
}
