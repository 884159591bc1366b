//! The event loop: the only code that touches sockets.
//!
//! One thread, one `zmq_poll` over the SUB, the request socket (a bound
//! ROUTER, or the MDP worker's DEALER), the PUB (read only when it is an
//! XPUB at a forwarder: subscriptions), the monitors of the connecting
//! sockets and the signal pipe; the poll's timeout is the time left until
//! the nearest deadline (the next rescan, one of the manager's timers: a
//! client's death, its own status, a `dbmgr` question; the MDP heartbeat
//! and broker silence; a link to reopen; a plugin's kill delay or restart),
//! so an idle manager sleeps in the kernel. The output pipes of the plugins
//! it started are polled too.
//! Each turn: plugin output, signals (exits reaped), requests, status
//! messages, rescan if due, timers, then the publications owed, once.

mod questions;
mod sockets;

use crate::bus::links;
use crate::bus::mdp::{Due, Incoming, Silence, Timing};
use crate::config::{Config, Direction};
use crate::datatypes::DatatypesFile;
use crate::envelope;
use crate::liveness::Now;
use crate::log::{Level, RateLimiter, Verdict};
use crate::manager::{Manager, StatusOutcome, VIEW_CATEGORIES};
use crate::notify;
use crate::packages::{Package, PackageChange, Scanner};
use crate::processes::{self, Launch, Plugins};
use crate::signals::SignalPipe;
use crate::wire;
use crate::{debug, error, info, trace, warn};
use std::fmt;
use sockets::{Requests, Role, Watched};
use std::time::{Duration, Instant, SystemTime};

pub use sockets::TEST_HEARTBEAT_ENV;

/// At most this many messages of one socket per turn, so that a flood on
/// one socket cannot starve the other or delay a SIGTERM...
pub const MAX_REQUESTS_PER_TURN: usize = 64;
pub const MAX_STATUSES_PER_TURN: usize = 1024;
/// And at most this long on one socket's messages per turn: a count alone
/// let 1024 large status messages (a JSON parse each) hold a turn for
/// seconds, delaying every reply and SIGTERM behind them.
const MAX_WORK_PER_TURN: Duration = Duration::from_millis(20);

/// Socket limits: see docs/PROTOCOL.md, "Limits". (Public for the
/// benchmark's floor server, which must use the same.)
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

/// How long the `stopped` status gets to leave before the process exits.
const LAST_WORD_DELAY: Duration = Duration::from_millis(100);

/// A failure before the loop could start: a socket that cannot be opened,
/// bound or connected, or signals that cannot be handled.
#[derive(Debug)]
pub struct StartError(pub(crate) String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// The sockets: the SUB, the request side, the PUB (src/daemon/sockets.rs).
/// Kept apart from the mutable state so the poll items (which borrow the
/// sockets) never fight with the handlers over borrows.
struct Sockets {
    sub: Watched,
    requests: Requests,
    publisher: Watched,
    /// Questions to dbmgr through the broker (none standalone).
    dbmgr: Option<zmq::Socket>,
}

impl Sockets {
    fn open(context: &zmq::Context, config: &Config, heartbeat: Duration) -> Result<Sockets, StartError> {
        if let Some(ip) = &config.star_ip {
            info!("[mq] ip = *: connecting sockets use {ip}, this host's first non-loopback IPv4 address");
        }
        Ok(Sockets {
            sub: Watched::open(context, Role::Sub, &config.sub_endpoint, heartbeat)?,
            requests: Requests::open(context, config, heartbeat, Instant::now())?,
            publisher: Watched::open(context, Role::Pub, &config.pub_endpoint, heartbeat)?,
            dbmgr: questions::open(context, config)?,
        })
    }

    /// The nearest deadline of the sockets' state machines.
    fn next_deadline(&self) -> Option<Instant> {
        let worker = match &self.requests {
            Requests::Worker { worker, .. } => Some(worker.next_deadline()),
            Requests::Standalone(_) => None,
        };
        [worker, self.sub.link.next_deadline(), self.publisher.link.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The loop's mutable state, apart from the sockets.
struct State {
    manager: Manager,
    scanner: Scanner,
    rescan_interval: Duration,
    next_rescan: Instant,
    /// The last rescan error, so that a lasting problem is logged once.
    scan_failure: Option<String>,
    bad_input_log: RateLimiter,
    status_log: RateLimiter,
    datatypes: DatatypesFile,
    /// The last datatypes_file error, so that a lasting problem is logged once.
    datatypes_failure: Option<String>,
    /// The plugin processes the manager started (PROTOCOL.md §10).
    plugins: Plugins,
    /// Which plugins `auto_startup` has started already.
    autostart: crate::autostart::AutoStart,
}

/// Runs the manager until SIGTERM or SIGINT.
pub fn run(config: &Config) -> Result<(), StartError> {
    let context = zmq::Context::new();
    let heartbeat = sockets::heartbeat_interval();
    let mut sockets = Sockets::open(&context, config, heartbeat)?;
    let mut signals = SignalPipe::install().map_err(|e| StartError(format!("cannot handle signals: {e}")))?;
    let mut state = State {
        manager: Manager::new(config.host.clone(), config.service.clone()),
        scanner: Scanner::new(config.packages_dir.clone()),
        rescan_interval: config.rescan_interval,
        next_rescan: Instant::now(),
        scan_failure: None,
        bad_input_log: RateLimiter::new(10, Duration::from_secs(60)),
        status_log: RateLimiter::new(20, Duration::from_secs(10)),
        datatypes: DatatypesFile::new(config.datatypes_file.clone()),
        datatypes_failure: None,
        plugins: Plugins::new(
            Launch {
                python: config.plugins.python.clone(),
                pythonpath: config.plugins.pythonpath.clone(),
                packages_dir: config.packages_dir.clone(),
            },
            config.plugins.policy.clone(),
        ),
        autostart: crate::autostart::AutoStart::default(),
    };
    // Said at info: a host may run no plugin of ours (and a fresh Debian 12
    // has no /usr/bin/python); each start that fails for it is a warning.
    if !processes::findable(&config.plugins.python) {
        info!(
            "[manager] python {} is not found: no plugin can be started until it is (set [manager] python)",
            config.plugins.python.display()
        );
    }
    state.manager.set_timers(config.dead_after, config.status_interval);
    if sockets.dbmgr.is_some() {
        let limits = crate::bus::dbmgr::Limits::with_timeout(config.dbmgr_timeout);
        state.manager.enable_dbmgr(limits);
    }
    state.rescan();
    publish(&sockets, &mut state);
    info!(
        "ready: {} clients of host {} from {}, service \"{}\"",
        state.manager.clients().len(),
        config.host,
        config.packages_dir.display(),
        config.service
    );
    notify::notify(notify::READY);

    loop {
        let deadline = state.next_rescan.min(state.manager.next_deadline());
        let deadline = sockets.next_deadline().map_or(deadline, |d| d.min(deadline));
        let deadline = state.plugins.next_deadline().map_or(deadline, |d| d.min(deadline));
        let pipes = state.plugins.poll_fds();
        let ready = wait(&sockets, &mut signals, &pipes, poll_timeout(deadline, Instant::now()));
        state.manager.set_now(Now::system());
        state.plugins.read_ready(&ready.pipes, Instant::now());

        if ready.signals {
            let received = signals.take();
            if received.child_exited {
                state.reap();
            }
            if received.terminate {
                info!("stopping on signal");
                break;
            }
            if received.rescan {
                notify::notify(notify::RELOADING);
                info!("SIGHUP: rescanning {}", config.packages_dir.display());
                state.rescan();
                notify::notify(notify::READY);
            }
        }
        let now = Instant::now();
        sockets.sub.read_monitor(now);
        if sockets.publisher.read_monitor(now) {
            debug!("pub link up: the current state is owed to its subscribers");
        }
        if ready.requests {
            serve_requests(&mut sockets.requests, &context, heartbeat, &mut state);
        }
        if ready.sub {
            absorb_statuses(&sockets.sub.socket, &mut state);
        }
        if ready.publisher {
            read_subscriptions(&sockets.publisher.socket, &mut state);
        }
        if let (true, Some(dbmgr)) = (ready.dbmgr, &sockets.dbmgr) {
            questions::read_answers(dbmgr, &mut state);
        }
        let now = Instant::now();
        sockets.sub.reopen_if_given_up(&context, heartbeat, now);
        sockets.publisher.reopen_if_given_up(&context, heartbeat, now);
        worker_timers(&mut sockets.requests, &context, heartbeat, now);
        if now >= state.next_rescan {
            state.rescan();
        }
        for name in state.manager.run_timers() {
            let id = state.manager.clients().client_id(&name);
            let why = crate::liveness::dead_comment(config.dead_after);
            warn!(client_id = id.as_str(); "{id} is dead: {why}");
        }
        if let Some(dbmgr) = &sockets.dbmgr {
            questions::send_due(dbmgr, &mut state);
        }
        state.plugins_due();
        publish(&sockets, &mut state);
    }
    notify::notify(notify::STOPPING);
    state.stop_plugins(&mut signals);
    publish(&sockets, &mut state);
    state.manager.set_now(Now::system());
    let stopped = state.manager.own_status(crate::status::Status::Stopped);
    match sockets.publisher.socket.send_multipart(stopped, zmq::DONTWAIT) {
        // Best effort: libzmq sends from its I/O thread and we exit without
        // terminating the context (see below), so give it a moment.
        Ok(()) => std::thread::sleep(LAST_WORD_DELAY),
        Err(e) => debug!("cannot publish our stopped status: {e}"),
    }
    leave_without_closing(config, sockets, context);
    Ok(())
}

/// Which poll items were readable.
struct Ready {
    sub: bool,
    requests: bool,
    publisher: bool,
    signals: bool,
    dbmgr: bool,
    /// One flag per plugin pipe, in `Plugins::poll_fds` order.
    pipes: Vec<bool>,
}

/// One `zmq_poll` over every socket that can be read (the monitors
/// included: their events wake the loop) and the signal pipe.
fn wait(sockets: &Sockets, signals: &mut SignalPipe, pipes: &[std::os::fd::RawFd], timeout: i64) -> Ready {
    // A bound PUB is never read: it is polled for nothing.
    let publisher_events = if sockets.publisher.monitor.is_some() {
        zmq::POLLIN
    } else {
        zmq::PollEvents::empty()
    };
    let mut items = vec![
        sockets.sub.socket.as_poll_item(zmq::POLLIN),
        sockets.requests.socket().as_poll_item(zmq::POLLIN),
        sockets.publisher.socket.as_poll_item(publisher_events),
        zmq::PollItem::from_fd(signals.fd(), zmq::POLLIN),
    ];
    let dbmgr_slot = items.len();
    if let Some(dbmgr) = &sockets.dbmgr {
        items.push(dbmgr.as_poll_item(zmq::POLLIN));
    }
    let first_pipe = items.len();
    items.extend(pipes.iter().map(|&fd| zmq::PollItem::from_fd(fd, zmq::POLLIN)));
    // The monitors come last: they are polled only to wake us.
    for monitor in [&sockets.sub.monitor, &sockets.publisher.monitor].into_iter().flatten() {
        items.push(monitor.as_poll_item(zmq::POLLIN));
    }
    match signals.while_waiting(|| zmq::poll(&mut items, timeout)) {
        Ok(_) | Err(zmq::Error::EINTR) => {}
        Err(e) => {
            // Not expected from valid sockets; never spin on it.
            error!("poll failed: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let ready = |slot: usize| items.get(slot).is_some_and(zmq::PollItem::is_readable);
    // A pipe whose writers are all gone polls as an error (POLLHUP), not
    // as readable: reading it is how its end is learned.
    let pipe_ready = |slot: usize| items.get(slot).is_some_and(|item| item.is_readable() || item.is_error());
    Ready {
        sub: ready(0),
        requests: ready(1),
        publisher: ready(2),
        signals: ready(3),
        dbmgr: sockets.dbmgr.is_some() && ready(dbmgr_slot),
        pipes: (first_pipe..first_pipe + pipes.len()).map(pipe_ready).collect(),
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
fn leave_without_closing(config: &Config, sockets: Sockets, context: zmq::Context) {
    for endpoint in [&config.sub_endpoint, &config.pub_endpoint, &config.rep_endpoint] {
        if let (Direction::Bind, Some(path)) = (endpoint.direction, endpoint.address.strip_prefix("ipc://")) {
            if let Err(e) = std::fs::remove_file(path) {
                debug!("cannot remove {path}: {e}");
            }
        }
    }
    std::mem::forget(sockets);
    std::mem::forget(context);
}

/// Milliseconds until `deadline`, rounded up so we never wake just before
/// it and spin.
fn poll_timeout(deadline: Instant, now: Instant) -> i64 {
    let remaining = deadline.saturating_duration_since(now);
    i64::try_from(remaining.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
}

/// Hands each queued message of `socket` to `handle`, at most `limit` of
/// them and for at most `MAX_WORK_PER_TURN`, without waiting for more.
fn for_each_queued(
    socket: &zmq::Socket,
    limit: usize,
    state: &mut State,
    what: &str,
    mut handle: impl FnMut(&mut State, Vec<Vec<u8>>),
) {
    let started = Instant::now();
    for _ in 0..limit {
        if started.elapsed() >= MAX_WORK_PER_TURN {
            return;
        }
        match socket.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => handle(state, frames),
            Err(zmq::Error::EAGAIN) => return,
            Err(e) => {
                state.log_bad_input(format_args!("cannot receive a {what}: {e}"));
                return;
            }
        }
    }
}

/// Answers the queued requests, each before the next is read: on the
/// bound ROUTER in the envelope each came in (src/envelope.rs), or as the
/// MDP worker through the broker (src/bus/mdp.rs). One request path: the
/// manager answers the frames either way.
fn serve_requests(requests: &mut Requests, context: &zmq::Context, heartbeat: Duration, state: &mut State) {
    match requests {
        Requests::Standalone(watched) => {
            let rep = &watched.socket;
            for_each_queued(rep, MAX_REQUESTS_PER_TURN, state, "request", |state, message| {
                let Some((envelope, frames)) = envelope::split(message) else {
                    // REP drops these too: no REQ or DEALER client sends them.
                    state.log_bad_input(format_args!("message without a request envelope dropped"));
                    return;
                };
                let reply = state.answer(&frames);
                // ROUTER never blocks on send: a reply to a vanished client, or to
                // one that leaves REP_SNDHWM replies unread, is dropped.
                if let Err(e) = rep.send_multipart(envelope::wrap(envelope, reply), 0) {
                    state.log_bad_input(format_args!("cannot send a reply: {e}"));
                }
            });
        }
        Requests::Worker { watched, worker } => {
            let mut reconnect = false;
            let broker = watched.endpoint.address.clone();
            for_each_queued(&watched.socket, MAX_REQUESTS_PER_TURN, state, "request", |state, message| {
                let now = Instant::now();
                if !worker.heard_since_connect() {
                    info!(peer = broker.as_str(); "MDP worker: the broker at {broker} answers (service registered)");
                }
                match worker.receive(message, now) {
                    Incoming::Request { envelope, body } => {
                        let reply = state.answer(&body);
                        sockets::send_or_log(&watched.socket, worker.reply(envelope, reply, now));
                    }
                    Incoming::Nothing => {}
                    Incoming::Reconnect => reconnect = true,
                    Incoming::Malformed(why) => state.log_bad_input(format_args!("message from the broker dropped: {why}")),
                }
            });
            if reconnect {
                warn!(peer = broker.as_str(); "MDP worker: the broker at {broker} sent DISCONNECT; registering again");
                requests.reconnect_worker(context, heartbeat, Instant::now());
            }
        }
    }
}

/// The MDP worker's heartbeat and broker-silence deadlines.
fn worker_timers(requests: &mut Requests, context: &zmq::Context, heartbeat: Duration, now: Instant) {
    let Requests::Worker { watched, worker } = requests else {
        return;
    };
    match worker.tick(now) {
        Due::Nothing => {}
        Due::Send(frames) => sockets::send_or_log(&watched.socket, frames),
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
                     still trying every {} ms, and saying so when it answers",
                    after.as_secs(),
                    Timing::scaled(heartbeat).broker_silence.as_millis()
                ),
            }
            requests.reconnect_worker(context, heartbeat, now);
        }
    }
}

/// Subscriptions arriving on the connected XPUB: a subscriber to our
/// publications is (back) at the forwarder, so the current state is owed.
fn read_subscriptions(publisher: &zmq::Socket, state: &mut State) {
    for_each_queued(publisher, MAX_REQUESTS_PER_TURN, state, "subscription", |state, frames| {
        if frames
            .first()
            .is_some_and(|message| links::subscribes_to_ours(message, &VIEW_CATEGORIES))
        {
            state.manager.republish();
        }
    });
}

fn absorb_statuses(sub: &zmq::Socket, state: &mut State) {
    for_each_queued(
        sub,
        MAX_STATUSES_PER_TURN,
        state,
        "status message",
        |state, frames| match state.manager.handle_status_message(&frames) {
            StatusOutcome::Changed { id, status } => {
                if let Verdict::Write { suppressed } = state.status_log.check(Instant::now()) {
                    info!(client_id = id.as_str(); "{id} is {status}{}", suppressed_note(suppressed));
                }
            }
            StatusOutcome::Unchanged | StatusOutcome::NotForUs => {}
            StatusOutcome::Malformed(why) => state.log_bad_input(format_args!("status message dropped: {why}")),
            StatusOutcome::Rejected(why) => state.log_bad_input(format_args!("status message dropped: {why}")),
        },
    );
}

fn publish(sockets: &Sockets, state: &mut State) {
    let Some(publications) = state.manager.take_publications(wire::unix_seconds(SystemTime::now())) else {
        return;
    };
    let views = publications.views_owed();
    // Sent as built: the list goes out before the detail is serialised.
    // PUB never blocks: a subscriber past its high-water mark misses one.
    let mut failure = None;
    for frames in publications {
        if let Err(e) = sockets.publisher.socket.send_multipart(frames, zmq::DONTWAIT) {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        state.log_bad_input(format_args!("cannot publish: {e}"));
    }
    if views {
        debug!(
            "published clients.list and clients.detail, client.list, client.detail and client.conversion ({} clients)",
            state.manager.clients().len()
        );
    }
}

fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} similar lines suppressed)")
    }
}

impl State {
    /// The reply frames to one request's frames, its problem logged.
    fn answer(&mut self, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let reply = self.manager.handle_request_with(frames, &mut self.plugins);
        match &reply.error {
            Some(reason) => self.log_bad_input(format_args!("request answered with error: {reason}")),
            None => trace!(
                "request answered: {}",
                String::from_utf8_lossy(reply.frames.iter().rev().nth(1).map_or(&[][..], Vec::as_slice))
            ),
        }
        reply.frames
    }

    /// SIGCHLD: every exited plugin reaped, its client `stopped` or `dead`.
    fn reap(&mut self) {
        for end in self.plugins.reap(Instant::now()) {
            self.manager.process_ended(&end.name, end.status, end.comment);
        }
    }

    /// The statuses plugins announced this turn start their kill delays;
    /// the delays and restarts that are due are carried out.
    fn plugins_due(&mut self) {
        let now = Instant::now();
        let clients = self.manager.clients();
        self.plugins.observe(|name| clients.status(name), now);
        for (name, auto) in self.plugins.due(now) {
            let host = self.manager.clients().host().to_owned();
            if let Err(reason) = self.manager.start_plugin(&name, &host, auto, &mut self.plugins) {
                warn!("plugin {name} not restarted: {reason}");
            }
        }
        // auto_startup, once its value from dbmgr is known (§10).
        let clients = self.manager.clients();
        let values = clients
            .iter()
            .filter(|(_, client)| client.is_valid())
            .map(|(name, _)| (name, clients.parameter_is_true(name, "auto_startup")));
        for name in self.autostart.due(values) {
            let host = self.manager.clients().host().to_owned();
            match self.manager.start_plugin(&name, &host, true, &mut self.plugins) {
                Ok(_) => info!("plugin {name} started: its auto_startup is true"),
                Err(reason) => warn!("plugin {name} not started by auto_startup: {reason}"),
            }
        }
    }

    /// The manager stops: SIGTERM to every plugin's process group, their
    /// exits reaped for up to the kill grace, then SIGKILL to what is left
    /// (docs/PROTOCOL.md §10).
    fn stop_plugins(&mut self, signals: &mut SignalPipe) {
        if self.plugins.children().is_empty() {
            return;
        }
        self.plugins.stop_all();
        let grace = self.plugins.children().term_grace();
        for (wait, last) in [(grace, false), (Duration::from_millis(500), true)] {
            let deadline = Instant::now() + wait;
            while !self.plugins.children().is_empty() && Instant::now() < deadline {
                let mut items = [zmq::PollItem::from_fd(signals.fd(), zmq::POLLIN)];
                let _ = signals.while_waiting(|| zmq::poll(&mut items, poll_timeout(deadline, Instant::now())));
                signals.take();
                self.reap();
            }
            if !last {
                self.plugins.kill_all();
            }
        }
    }

    fn log_bad_input(&mut self, message: fmt::Arguments<'_>) {
        if let Verdict::Write { suppressed } = self.bad_input_log.check(Instant::now()) {
            warn!("{message}{}", suppressed_note(suppressed));
        }
    }

    fn rescan(&mut self) {
        self.next_rescan = Instant::now() + self.rescan_interval;
        self.refresh_datatypes();
        let report = match self.scanner.scan() {
            Ok(report) => report,
            Err(failure) => {
                let message = failure.to_string();
                if self.scan_failure.as_ref() != Some(&message) {
                    error!(
                        "{message}; keeping the {} known clients, retrying at the next rescan",
                        self.manager.clients().len()
                    );
                } else {
                    debug!("{message}");
                }
                self.scan_failure = Some(message);
                return;
            }
        };
        if self.scan_failure.take().is_some() {
            info!("packages_dir {} is readable again", self.scanner.dir().display());
        }
        for (folder, bad_name) in &report.new_strays {
            // Anyone who can write to packages_dir names these folders.
            let folder = wire::truncate(folder, 80);
            if *bad_name {
                warn!("ignoring {folder}: a plugin folder is plugin_<name>, the name in lower-case letters and digits");
            } else {
                debug!("ignoring {folder}: not a plugin package");
            }
        }
        for change in report.changes {
            if let PackageChange::Removed { name } = &change {
                self.plugins.forget(name);
                self.autostart.forget(name);
            }
            // Worded before it is applied ("found" or "changed"), written
            // only if it changed a client: a file re-read to the same
            // content (or failing the same way again) says nothing.
            let (level, line, client_id) = package_change_line(&self.manager, &change);
            if self.manager.apply_package_change(change) {
                ::log::log!(level.into(), client_id = client_id.as_str(); "{line}");
            }
        }
    }
}

impl State {
    /// Re-reads datatypes_file if its `stat` changed; a failure is logged
    /// once while it lasts, and `datatype.get` answers `null`.
    fn refresh_datatypes(&mut self) {
        match self.datatypes.refresh() {
            None => {}
            Some(Ok(datatypes)) => {
                if self.datatypes_failure.take().is_some() {
                    info!("{} is readable again", self.datatypes.path().display());
                }
                self.manager.set_datatypes(Some(datatypes));
            }
            Some(Err(message)) => {
                if self.datatypes_failure.as_ref() != Some(&message) {
                    if DatatypesFile::is_missing(&message) {
                        info!("{message}");
                    } else {
                        error!("{message}; datatype.get answers null until it is fixed");
                    }
                }
                self.datatypes_failure = Some(message);
                self.manager.set_datatypes(None);
            }
        }
    }
}

/// The level and line of a package change, and the client it is about.
fn package_change_line(manager: &Manager, change: &PackageChange) -> (Level, String, String) {
    let clients = manager.clients();
    match change {
        PackageChange::Removed { name } => {
            let id = clients.client_id(name);
            (Level::Info, format!("package removed: {id}"), id)
        }
        PackageChange::Files { name, .. } => {
            let id = clients.client_id(name);
            (Level::Debug, format!("package files read: {id}"), id)
        }
        PackageChange::Updated { name, package } => {
            let id = clients.client_id(name);
            let verb = if clients.status(name).is_some() {
                "changed"
            } else {
                "found"
            };
            match package {
                Package::Valid { .. } => (Level::Info, format!("package {verb}: {id}"), id),
                Package::Invalid { reason } => (Level::Warn, format!("package {verb}: {id} is invalid: {reason}"), id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_timeout_rounds_up_and_never_goes_negative() {
        let now = Instant::now();
        assert_eq!(poll_timeout(now, now), 0);
        assert_eq!(poll_timeout(now, now + Duration::from_secs(1)), 0);
        assert_eq!(poll_timeout(now + Duration::from_micros(1), now), 1);
        assert_eq!(poll_timeout(now + Duration::from_millis(30_000), now), 30_000);
    }

    #[test]
    fn the_suppressed_count_is_said_on_the_next_line_written() {
        assert_eq!(suppressed_note(0), "");
        assert_eq!(suppressed_note(1017), " (1017 similar lines suppressed)");
    }
}
