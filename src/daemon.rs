//! The event loop: the only code that touches sockets.
//!
//! One thread, one `zmq_poll` over the SUB and REP sockets (PUB is only
//! written), the signal pipe and the output pipes of the plugins it
//! started; the poll's timeout is the time left until the next rescan or
//! plugin deadline, so an idle manager sleeps in the kernel. Each turn:
//! plugin output, signals (exits reaped), requests, status messages,
//! rescan if due, plugin deadlines, then the publications owed, once.

use crate::config::{Config, Direction, Endpoint};
use crate::envelope;
use crate::log::{Level, RateLimiter, Verdict};
use crate::manager::{Manager, StatusOutcome, STATUS_SUBSCRIPTION};
use crate::notify;
use crate::packages::{Package, PackageChange, Scanner};
use crate::processes::{self, Launch, Plugins};
use crate::signals::SignalPipe;
use crate::wire;
use crate::{debug, error, info, trace, warn};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// Poll slots, by name.
const SLOT_SUB: usize = 0;
const SLOT_REP: usize = 1;
const SLOT_SIGNALS: usize = 2;
/// Then the plugins' output pipes, in `Plugins::poll_fds` order.
const SLOT_PIPES: usize = 3;

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

/// A failure before the loop could start: a socket that cannot be opened,
/// bound or connected, or signals that cannot be handled.
#[derive(Debug)]
pub struct StartError(String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// The three sockets. Kept apart from the mutable state so the poll items
/// (which borrow the sockets) never fight with the handlers over borrows.
struct Sockets {
    sub: zmq::Socket,
    rep: zmq::Socket,
    publisher: zmq::Socket,
}

impl Sockets {
    fn open(context: &zmq::Context, config: &Config) -> Result<Sockets, StartError> {
        let setup = |what: &str, result: zmq::Result<()>| {
            result.map_err(|e| StartError(format!("cannot set up the {what} socket: {e}")))
        };
        let sub = new_socket(context, zmq::SUB, "sub")?;
        setup("sub", sub.set_maxmsgsize(SUB_MAX_MSG_BYTES))?;
        setup("sub", sub.set_rcvhwm(SUB_RCVHWM))?;
        setup("sub", sub.set_subscribe(STATUS_SUBSCRIPTION.as_bytes()))?;
        // A ROUTER with REP's envelope rules, not a REP: see src/envelope.rs.
        let rep = new_socket(context, zmq::ROUTER, "rep")?;
        setup("rep", rep.set_maxmsgsize(REP_MAX_MSG_BYTES))?;
        setup("rep", rep.set_rcvhwm(REP_RCVHWM))?;
        setup("rep", rep.set_sndhwm(REP_SNDHWM))?;
        let publisher = new_socket(context, zmq::PUB, "pub")?;
        setup("pub", publisher.set_sndhwm(PUB_SNDHWM))?;

        attach(&sub, "sub_endpoint", &config.sub_endpoint)?;
        attach(&rep, "rep_endpoint", &config.rep_endpoint)?;
        attach(&publisher, "pub_endpoint", &config.pub_endpoint)?;
        Ok(Sockets { sub, rep, publisher })
    }
}

fn new_socket(context: &zmq::Context, kind: zmq::SocketType, what: &str) -> Result<zmq::Socket, StartError> {
    let socket = context
        .socket(kind)
        .map_err(|e| StartError(format!("cannot create the {what} socket: {e}")))?;
    // Never wait for unsent messages at exit: SIGTERM must end us at once.
    socket
        .set_linger(0)
        .map_err(|e| StartError(format!("cannot set up the {what} socket: {e}")))?;
    Ok(socket)
}

/// Binds or connects, and logs the address actually used (a `*` port is
/// resolved by then, which is how tests learn ephemeral ports).
fn attach(socket: &zmq::Socket, key: &str, endpoint: &Endpoint) -> Result<(), StartError> {
    let role = key.trim_end_matches("_endpoint");
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
            info!(peer = endpoint.address.as_str(); "{role} socket connecting to {}", endpoint.address);
        }
    }
    Ok(())
}

/// What to do about a failed bind, to end its error line.
fn bind_advice(error: zmq::Error) -> &'static str {
    match error {
        zmq::Error::EADDRINUSE => {
            " (another program listens there, maybe a second manager: stop it, or set another port or path)"
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
    /// The plugin processes the manager started (PROTOCOL.md §9).
    plugins: Plugins,
}

/// Runs the manager until SIGTERM or SIGINT.
pub fn run(config: &Config) -> Result<(), StartError> {
    let context = zmq::Context::new();
    let sockets = Sockets::open(&context, config)?;
    let mut signals = SignalPipe::install().map_err(|e| StartError(format!("cannot handle signals: {e}")))?;
    let mut state = State {
        manager: Manager::new(config.host.clone(), config.service.clone()),
        scanner: Scanner::new(config.packages_dir.clone()),
        rescan_interval: config.rescan_interval,
        next_rescan: Instant::now(),
        scan_failure: None,
        bad_input_log: RateLimiter::new(10, Duration::from_secs(60)),
        status_log: RateLimiter::new(20, Duration::from_secs(10)),
        plugins: Plugins::new(
            Launch {
                python: config.plugins.python.clone(),
                pythonpath: config.plugins.pythonpath.clone(),
                packages_dir: config.packages_dir.clone(),
            },
            config.plugins.policy.clone(),
        ),
    };
    if !processes::findable(&config.plugins.python) {
        warn!(
            "[manager] python {} is not found: no plugin can be started",
            config.plugins.python.display()
        );
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
        let timeout = poll_timeout(state.next_deadline(), Instant::now());
        let mut items = vec![
            sockets.sub.as_poll_item(zmq::POLLIN),
            sockets.rep.as_poll_item(zmq::POLLIN),
            zmq::PollItem::from_fd(signals.fd(), zmq::POLLIN),
        ];
        let pipes = state.plugins.poll_fds();
        items.extend(pipes.iter().map(|&fd| zmq::PollItem::from_fd(fd, zmq::POLLIN)));
        match signals.while_waiting(|| zmq::poll(&mut items, timeout)) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(e) => {
                // Not expected from valid sockets; never spin on it.
                error!("poll failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let ready = |slot: usize| items.get(slot).is_some_and(zmq::PollItem::is_readable);
        let (sub_ready, rep_ready, signal_ready) = (ready(SLOT_SUB), ready(SLOT_REP), ready(SLOT_SIGNALS));
        // A pipe whose writers are all gone polls as an error (POLLHUP),
        // not as readable: reading it is how its end is learned.
        let pipe_ready = |slot: usize| {
            items
                .get(slot)
                .is_some_and(|item| item.is_readable() || item.is_error())
        };
        let pipes_ready: Vec<bool> = (SLOT_PIPES..items.len()).map(pipe_ready).collect();
        drop(items);
        state.plugins.read_ready(&pipes_ready, Instant::now());

        if signal_ready {
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
        if rep_ready {
            serve_requests(&sockets.rep, &mut state);
        }
        if sub_ready {
            absorb_statuses(&sockets.sub, &mut state);
        }
        if Instant::now() >= state.next_rescan {
            state.rescan();
        }
        state.plugins_due();
        publish(&sockets, &mut state);
    }
    notify::notify(notify::STOPPING);
    state.stop_plugins(&mut signals);
    publish(&sockets, &mut state);
    leave_without_closing(config, sockets, context);
    Ok(())
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

/// Answers the queued requests, each before the next is read, in the
/// envelope it came in (the socket is a ROUTER playing REP: src/envelope.rs).
fn serve_requests(rep: &zmq::Socket, state: &mut State) {
    for_each_queued(rep, MAX_REQUESTS_PER_TURN, state, "request", |state, message| {
        let Some((envelope, frames)) = envelope::split(message) else {
            // REP drops these too: no REQ or DEALER client sends them.
            state.log_bad_input(format_args!("message without a request envelope dropped"));
            return;
        };
        let reply = state.manager.handle_request_with(&frames, &mut state.plugins);
        match &reply.error {
            Some(reason) => state.log_bad_input(format_args!("request answered with error: {reason}")),
            None => trace!(
                "request answered: {}",
                String::from_utf8_lossy(reply.frames.iter().rev().nth(1).map_or(&[][..], Vec::as_slice))
            ),
        }
        // ROUTER never blocks on send: a reply to a vanished client, or to
        // one that leaves REP_SNDHWM replies unread, is dropped.
        if let Err(e) = rep.send_multipart(envelope::wrap(envelope, reply.frames), 0) {
            state.log_bad_input(format_args!("cannot send a reply: {e}"));
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
    // Sent as built: the list goes out before the detail is serialised.
    // PUB never blocks: a subscriber past its high-water mark misses one.
    let mut failure = None;
    for frames in publications {
        if let Err(e) = sockets.publisher.send_multipart(frames, zmq::DONTWAIT) {
            failure = Some(e);
        }
    }
    if let Some(e) = failure {
        state.log_bad_input(format_args!("cannot publish: {e}"));
    }
    debug!(
        "published clients.list and clients.detail ({} clients)",
        state.manager.clients().len()
    );
}

fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} similar lines suppressed)")
    }
}

impl State {
    /// The nearest deadline: the next rescan, or a plugin's (kill, restart).
    fn next_deadline(&self) -> Instant {
        self.plugins
            .next_deadline()
            .map_or(self.next_rescan, |due| due.min(self.next_rescan))
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
    }

    /// The manager stops: SIGTERM to every plugin's process group, their
    /// exits reaped for up to the kill grace, then SIGKILL to what is left
    /// (docs/PROTOCOL.md, "Plugin processes").
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

/// The level and line of a package change, and the client it is about.
fn package_change_line(manager: &Manager, change: &PackageChange) -> (Level, String, String) {
    let clients = manager.clients();
    match change {
        PackageChange::Removed { name } => {
            let id = clients.client_id(name);
            (Level::Info, format!("package removed: {id}"), id)
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
}
