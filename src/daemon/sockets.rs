//! The event loop's sockets: opening each with its options and limits,
//! watching the ones the manager connects (libzmq's socket monitor, read
//! by [`crate::core::bus::links`]), reopening a connection lost for good, the
//! MDP worker's timers, and leaving ZeroMQ at exit.

use crate::core::bus::links::{self, Change, GiveUp, Link};
use crate::core::bus::mdp::{self, Due, Silence, Timing, Worker};
use crate::core::config::{Config, Direction, Endpoint};
use crate::core::log_policy::Level;
use crate::core::manager::STATUS_SUBSCRIPTION;
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
const MAX_WORK_PER_TURN: Duration = Duration::from_millis(20);

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

/// Whether questions are asked to `dbmgr` at all: only when `rep_endpoint` connects
/// (a broker); standalone, nothing is asked. The DEALER itself is a
/// `sockets::Watched` of role `Dbmgr` (ZMTP heartbeats, monitor, reopened when
/// libzmq gives the connection up), opened by `Sockets::open_dbmgr`.
pub(super) fn dbmgr_wanted(config: &Config) -> bool {
    config.rep_endpoint.direction == Direction::Connect
}

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
/// tests only (docs/RELIABILITY.md): the MDP heartbeat and the ZMTP
/// heartbeats, in milliseconds (Domogik's 1000 by default).
pub(crate) const TEST_HEARTBEAT_ENV: &str = "DMG_MANAGER_TEST_HEARTBEAT_MS";

/// The heartbeat interval: 1 s, or the test knob's.
pub(super) fn heartbeat_interval() -> Duration {
    std::env::var(TEST_HEARTBEAT_ENV)
        .ok()
        .and_then(|ms| ms.parse::<u64>().ok())
        .filter(|&ms| (10..=60_000).contains(&ms))
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

/// The sockets: the SUB, the request side, the PUB, the questions to
/// dbmgr, and the context they belong to. Kept apart from the loop's
/// state so the poll items (which borrow the sockets) never fight with the
/// handlers over borrows.
pub(super) struct Sockets {
    context: zmq::Context,
    /// The heartbeat interval of the connecting sockets (and MDP's).
    heartbeat: Duration,
    pub sub: Watched,
    pub requests: Requests,
    pub publisher: Watched,
    /// Questions to dbmgr through the broker: opened once the broker has
    /// answered the MDP worker, closed while it is taken for dead (none
    /// standalone). A DEALER connecting to a port nobody listens on can be
    /// connected by TCP to itself, and would then hold Domogik's port
    /// against its broker; the worker's DEALER notices that from its own
    /// READY, an idle dbmgr DEALER could not.
    pub dbmgr: Option<Watched>,
    /// Whether there are questions to dbmgr at all (the worker layout).
    dbmgr_wanted: bool,
    rep_endpoint: Endpoint,
}

impl Sockets {
    /// Opens every socket `config` asks for: bound or connected, limits set.
    pub(super) fn open(config: &Config) -> Result<Sockets, StartError> {
        let context = zmq::Context::new();
        let heartbeat = heartbeat_interval();
        if let Some(ip) = &config.star_ip {
            info!("[mq] ip = *: connecting sockets use {ip}, this host's first non-loopback IPv4 address");
        }
        Ok(Sockets {
            sub: Watched::open(&context, Role::Sub, &config.sub_endpoint, heartbeat)?,
            requests: Requests::open(&context, config, heartbeat, Instant::now())?,
            publisher: Watched::open(&context, Role::Pub, &config.pub_endpoint, heartbeat)?,
            dbmgr: None,
            dbmgr_wanted: dbmgr_wanted(config),
            rep_endpoint: config.rep_endpoint.clone(),
            context,
            heartbeat,
        })
    }

    /// The nearest deadline of the sockets' state machines.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let worker = match &self.requests {
            Requests::Worker { worker, .. } => worker.next_deadline(),
            Requests::Standalone(_) => None,
        };
        let dbmgr = self.dbmgr.as_ref().and_then(|dbmgr| dbmgr.link.next_deadline());
        [
            worker,
            self.sub.link.next_deadline(),
            self.publisher.link.next_deadline(),
            dbmgr,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Reads the monitors' events: each link change is logged.
    pub(super) fn read_monitors(&mut self, now: Instant) {
        if let Requests::Worker { watched, worker } = &mut self.requests {
            if watched.read_monitor(now) {
                worker.link_up(now);
            }
        }
        self.sub.read_monitor(now);
        if let Some(dbmgr) = &mut self.dbmgr {
            dbmgr.read_monitor(now);
        }
        if self.publisher.read_monitor(now) {
            debug!("pub link up: the current state is owed to its subscribers");
        }
    }

    /// The sockets' deadlines that are due: a connection libzmq gave up is
    /// reopened; the MDP worker heartbeats, or reconnects to a silent broker.
    pub(super) fn run_timers(&mut self, now: Instant) {
        self.sub.reopen_if_given_up(&self.context, self.heartbeat, now);
        self.publisher.reopen_if_given_up(&self.context, self.heartbeat, now);
        if let Some(dbmgr) = &mut self.dbmgr {
            dbmgr.reopen_if_given_up(&self.context, self.heartbeat, now);
        }
        let Requests::Worker { watched, worker } = &mut self.requests else {
            return;
        };
        match worker.tick(now) {
            Due::Nothing => {}
            Due::Send(frames) => send_or_log(&watched.socket, frames),
            Due::Reconnect(silence) => {
                let broker = watched.endpoint.address.as_str();
                match silence {
                    Silence::Lost => {
                        warn!(peer = broker; "MDP worker: the broker at {broker} is silent; reconnecting and registering again")
                    }
                    Silence::Unanswered => debug!("MDP worker: no word from the broker at {broker}; reconnecting"),
                    Silence::LongUnanswered(after) => warn!(
                        peer = broker;
                        "MDP worker: no broker has answered at {broker} for {} s: no request can reach the manager \
                         (is Domogik's broker running there? a host without one sets rep_endpoint = @tcp://...); \
                         still trying every {:.1} s, and saying so when it answers",
                        after.as_secs(),
                        Timing::scaled(self.heartbeat).broker_silence.as_secs_f64()
                    ),
                }
                self.close_dbmgr();
                self.reconnect_worker(now);
            }
        }
    }

    /// Whether this layout asks dbmgr questions (a broker is configured).
    pub(super) fn dbmgr_wanted(&self) -> bool {
        self.dbmgr_wanted
    }

    /// The dbmgr DEALER, now that the broker answers (if not open yet).
    pub(super) fn open_dbmgr(&mut self) {
        if !self.dbmgr_wanted || self.dbmgr.is_some() {
            return;
        }
        match Watched::open(&self.context, Role::Dbmgr, &self.rep_endpoint, self.heartbeat) {
            Ok(dbmgr) => self.dbmgr = Some(dbmgr),
            Err(e) => warn!("{e}; dbmgr is asked nothing until the broker answers again"),
        }
    }

    /// The dbmgr DEALER closed while the broker is taken for dead; the
    /// questions it had in flight time out and are asked again.
    pub(super) fn close_dbmgr(&mut self) {
        if self.dbmgr.take().is_some() {
            debug!("dbmgr socket closed until the broker answers again");
        }
    }

    /// A new dbmgr DEALER (the old one was connected to itself); the
    /// questions it lost time out and are asked again.
    pub(super) fn reopen_dbmgr(&mut self) {
        if let Some(dbmgr) = &mut self.dbmgr {
            if let Err(e) = dbmgr.reopen(&self.context, self.heartbeat) {
                warn!("{e}");
            }
        }
    }

    /// A new DEALER, and READY on it (a silent broker, or DISCONNECT).
    pub(super) fn reconnect_worker(&mut self, now: Instant) {
        self.requests.reconnect_worker(&self.context, self.heartbeat, now);
    }

    /// The MDP worker leaves the broker (a clean stop, PROTOCOL.md §7): its
    /// DISCONNECT queued on the DEALER, so that the broker drops it at once
    /// instead of after its heartbeat expiry, and holds a request that
    /// comes meanwhile for the next worker. Whether one was queued
    /// (standalone there is no broker to tell).
    pub(super) fn leave_broker(&mut self) -> bool {
        let Requests::Worker { watched, worker } = &mut self.requests else {
            return false;
        };
        let broker = watched.endpoint.address.as_str();
        match watched
            .socket
            .send_multipart(worker.disconnect(Instant::now()), zmq::DONTWAIT)
        {
            Ok(()) => {
                debug!(peer = broker; "MDP worker: DISCONNECT sent to the broker at {broker}");
                true
            }
            Err(e) => {
                debug!(peer = broker; "MDP worker: cannot send DISCONNECT to the broker at {broker}: {e}");
                false
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

/// What a socket is for: its type and options follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Status messages in (SUB).
    Sub,
    /// Publications out: PUB when bound; XPUB when connected to a
    /// forwarder, to learn when a subscriber is there (links.rs).
    Pub,
    /// Requests: a ROUTER when bound (standalone), the MDP worker's DEALER
    /// when connected to a broker.
    Requests,
    /// Questions to dbmgr: a DEALER connected to the broker as an MDP
    /// client (src/daemon/questions.rs).
    Dbmgr,
}

impl Role {
    pub(super) fn name(self) -> &'static str {
        match self {
            Role::Sub => "sub",
            Role::Pub => "pub",
            Role::Requests => "rep",
            Role::Dbmgr => "dbmgr",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Role::Sub => "sub_endpoint",
            Role::Pub => "pub_endpoint",
            Role::Requests | Role::Dbmgr => "rep_endpoint",
        }
    }
}

/// One socket, with the monitor and link state of a connecting one.
pub(super) struct Watched {
    pub socket: zmq::Socket,
    /// The PAIR end of the socket's monitor (connecting sockets only).
    pub monitor: Option<zmq::Socket>,
    pub link: Link,
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
            link: Link::new(),
            role,
            endpoint: endpoint.clone(),
        })
    }

    /// Replaces the socket by a new one on the same endpoint.
    pub(super) fn reopen(&mut self, context: &zmq::Context, heartbeat: Duration) -> Result<(), StartError> {
        let fresh = Watched::open_logged(context, self.role, &self.endpoint, heartbeat, Level::Debug)?;
        self.socket = fresh.socket;
        self.monitor = fresh.monitor;
        self.link.reopened();
        Ok(())
    }

    /// Reads the monitor's queued events; true if the link came up (first
    /// time or back). Each change is logged once, with the peer's address.
    pub(super) fn read_monitor(&mut self, now: Instant) -> bool {
        let Some(monitor) = &self.monitor else {
            return false;
        };
        let mut came_up = false;
        while let Ok(frames) = monitor.recv_multipart(zmq::DONTWAIT) {
            let Some((event, address)) = links::decode_event(&frames) else {
                continue;
            };
            let role = self.role.name();
            match self.link.event(event, now) {
                Some(Change::Connected) => {
                    info!(peer = address.as_str(); "{role} socket connected to {address}");
                    came_up = true;
                }
                Some(Change::Back) => {
                    info!(peer = address.as_str(); "{role} socket connected again to {address}");
                    came_up = true;
                }
                Some(Change::Lost) => {
                    warn!(peer = address.as_str(); "{role} socket lost its connection to {address}; reconnecting")
                }
                None => debug!("{role} socket: {event:?} {address}"),
            }
        }
        came_up
    }

    /// Reopens the socket if libzmq gave its connection up (after a
    /// protocol error it does not reconnect).
    pub(super) fn reopen_if_given_up(&mut self, context: &zmq::Context, heartbeat: Duration, now: Instant) {
        let (role, peer) = (self.role.name(), self.endpoint.address.as_str());
        match self.link.given_up(now) {
            None => return,
            Some(GiveUp::First) => warn!(
                peer = peer;
                "{role} socket: libzmq gave up the connection to {peer} (a protocol error: a message over the size limit, \
                 or a peer that is not what the config says): opening a new one (if it fails again, again later, quietly)"
            ),
            Some(GiveUp::Again) => {
                debug!(peer = peer; "{role} socket: libzmq gave up the connection to {peer} again: opening a new one")
            }
        }
        if let Err(e) = self.reopen(context, heartbeat) {
            warn!("{e}; retrying");
            self.link.event(links::Event::Lost, now);
        }
    }
}

/// The request side: a bound ROUTER, or the MDP worker and its DEALER.
pub(super) enum Requests {
    Standalone(Watched),
    Worker { watched: Watched, worker: Worker },
}

impl Requests {
    pub(super) fn open(
        context: &zmq::Context,
        config: &Config,
        heartbeat: Duration,
        now: Instant,
    ) -> Result<Requests, StartError> {
        let watched = Watched::open(context, Role::Requests, &config.rep_endpoint, heartbeat)?;
        if config.rep_endpoint.direction == Direction::Bind {
            return Ok(Requests::Standalone(watched));
        }
        let mut worker = Worker::new(&config.service, Timing::scaled(heartbeat), now);
        send_or_log(&watched.socket, worker.connected(now));
        info!(
            peer = config.rep_endpoint.address.as_str();
            "MDP worker: READY sent to the broker at {} for service \"{}\"",
            config.rep_endpoint.address, config.service
        );
        Ok(Requests::Worker { watched, worker })
    }

    /// The monitor of the worker's DEALER (none standalone).
    pub(super) fn monitor(&self) -> Option<&zmq::Socket> {
        match self {
            Requests::Worker { watched, .. } => watched.monitor.as_ref(),
            Requests::Standalone(_) => None,
        }
    }

    pub(super) fn socket(&self) -> &zmq::Socket {
        match self {
            Requests::Standalone(watched) | Requests::Worker { watched, .. } => &watched.socket,
        }
    }

    /// A new DEALER, and READY on it (a silent broker, or DISCONNECT).
    pub(super) fn reconnect_worker(&mut self, context: &zmq::Context, heartbeat: Duration, now: Instant) {
        let Requests::Worker { watched, worker } = self else {
            return;
        };
        match watched.reopen(context, heartbeat) {
            Ok(()) => send_or_log(&watched.socket, worker.connected(now)),
            // The old socket stays; the silence deadline tries again.
            Err(e) => {
                warn!("{e}");
                worker.connected(now);
            }
        }
    }
}

/// Sends on a socket that must never block the loop: a DEALER to a broker
/// that is not there queues (or drops past its high-water mark).
pub(super) fn send_or_log(socket: &zmq::Socket, frames: mdp::Frames) {
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
    if connecting && role != Role::Requests {
        // ZMTP heartbeats: a peer gone without a FIN (power cut, cable) is
        // noticed within three intervals, and libzmq reconnects. Not on the
        // MDP worker's DEALER: the MDP heartbeat already notices a silent
        // broker (and a second ping-pong a second would wake the I/O thread
        // for nothing, docs/BENCHMARKS.md item 9).
        setup(socket.set_heartbeat_ivl(millis))?;
        setup(socket.set_heartbeat_timeout(millis.saturating_mul(3)))?;
        setup(socket.set_heartbeat_ttl(millis.saturating_mul(3)))?;
    }
    if connecting {
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
