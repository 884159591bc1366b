//! The daemon: the event loop and the I/O it does for the core (sockets,
//! plugin processes); the decisions are the core's (`crate::core`).
//!
//! One thread, one `zmq_poll` over the SUB, the request socket (a bound
//! ROUTER, or the MDP worker's DEALER), the PUB (read only when it is an
//! XPUB at a forwarder: subscriptions), the monitors of the connecting
//! sockets, the xPL socket (UDP, when `[xpl]` is on) and the signal pipe;
//! the poll's timeout is the time left until the nearest deadline (the
//! next rescan, one of the manager's timers: a client's or an xPL device's
//! death, its own status, a `dbmgr` question; the MDP heartbeat and broker
//! silence; a link to reopen; the forwarder's echo; our xPL heartbeat; a
//! plugin's kill delay or restart; under systemd's watchdog, the next
//! `WATCHDOG=1`, sent at the end of a turn and nowhere else), so an idle
//! manager sleeps in the kernel. The output pipes of the plugins
//! it started are polled too, and the pipe of the packages scanner, the
//! process that does the disk reads of a rescan (`scanner.rs`): the loop
//! never waits for the disk.
//! Each turn: plugin output, the scanner's reply, signals (exits reaped),
//! requests, status messages, a rescan asked for if due, timers, then the
//! publications owed, once.
//!
//! This file is the loop and its poll; the rest of the event loop is in
//! `src/daemon/`, by concern: `sockets.rs` opens, watches and reopens the
//! sockets as the bus session (`core::bus::session`) decides, and
//! `executor.rs` carries out its actions; `handlers.rs` reads the ready
//! sockets and sends the replies and publications, `questions.rs` is the
//! `dbmgr` socket, `state.rs` is the loop's state apart from the sockets
//! (signals, rescans through `scanner.rs`, timers, plugin starts through
//! `processes.rs`, rate-limited log lines), `processes.rs` forks, execs,
//! reads and reaps the plugins, `scanner.rs` starts the packages
//! scanner process and reads its replies, and `xpl.rs` is the xPL socket.

// An edge of the crate: it does I/O and reads the clock for the core
// (clippy.toml forbids both in src/core/).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod executor;
mod handlers;
pub(crate) mod processes;
mod questions;
mod scanner;
mod sockets;
mod state;
mod xpl;

use crate::core::bus::session::Session;
use crate::core::config::Config;
use crate::core::status::Status;
use crate::core::watchdog::Watchdog;
use crate::sys::signals::SignalPipe;
use crate::sys::{clock, notify};
use crate::{debug, error, info, warn};
use sockets::Sockets;
pub(crate) use sockets::StartError;
pub use sockets::{
    MAX_REQUESTS_PER_TURN, MAX_STATUSES_PER_TURN, PUB_SNDHWM, REP_MAX_MSG_BYTES, REP_RCVHWM, REP_SNDHWM,
    SUB_MAX_MSG_BYTES, SUB_RCVHWM,
};
use state::{Flow, State};
use std::time::{Duration, Instant};

/// How long the last words (the `stopped` status, the MDP worker's
/// DISCONNECT) get to leave before the process exits.
const LAST_WORD_DELAY: Duration = Duration::from_millis(100);

/// Runs the manager until SIGTERM or SIGINT.
pub(crate) fn run(config: &Config) -> Result<(), StartError> {
    let (mut sockets, mut session) = Sockets::open(config)?;
    let mut signals = SignalPipe::install().map_err(|e| StartError(format!("cannot handle signals: {e}")))?;
    let mut state = State::new(config, session.dbmgr_wanted());
    executor::execute(&mut session, &mut sockets, &mut state);
    if first_scan(&mut state, &mut signals) == Flow::Stop {
        leave(config, sockets, session, &mut state, &mut signals);
        return Ok(());
    }
    handlers::publish(&sockets, &mut session, &mut state);
    state.say_ready();
    let mut watchdog = notify::watchdog_interval().and_then(|interval| Watchdog::new(interval, Instant::now()));

    loop {
        let xpl = sockets.xpl.as_ref().map(xpl::XplSocket::poll_timeout);
        let deadline = [session.poll_timeout(), xpl, watchdog.as_ref().map(Watchdog::poll_timeout)]
            .into_iter()
            .flatten()
            .fold(state.poll_timeout(), Instant::min);
        let mut pipes = state.plugins.poll_fds();
        // The scanner's replies, polled last among the pipes.
        let scanner_fd = state.scanner.poll_fd();
        pipes.extend(scanner_fd);
        let mut ready = wait(&sockets, &mut signals, &pipes, poll_timeout(deadline, Instant::now()));
        let scanner_ready = scanner_fd.is_some() && ready.pipes.pop().unwrap_or(false);
        state.manager.set_now(clock::now());
        state.plugins.read_ready(&ready.pipes, Instant::now());
        if scanner_ready {
            state.read_scanner();
        }
        if ready.signals && state.on_signals(signals.take()) == Flow::Stop {
            break;
        }
        if ready.monitors {
            sockets.read_monitors(&mut session, Instant::now());
        }
        if ready.requests {
            handlers::serve_requests(&sockets, &mut session, &mut state);
        }
        if ready.sub {
            handlers::absorb_statuses(&sockets.sub.socket, &mut session, &mut state);
        }
        if ready.publisher {
            handlers::read_subscriptions(&sockets.publisher.socket, &mut session, &mut state);
        }
        if let (true, Some(xpl)) = (ready.xpl, &mut sockets.xpl) {
            handlers::absorb_xpl(xpl, &mut state);
        }
        if let (true, Some(dbmgr)) = (ready.dbmgr, &sockets.dbmgr) {
            questions::read_answers(&dbmgr.socket, &mut state, &mut session);
        }
        let now = Instant::now();
        session.handle_timeout(now);
        state.handle_timeout(now);
        if let Some(xpl) = &mut sockets.xpl {
            xpl.send_due(now);
        }
        questions::ask_due(&mut session, &mut state);
        executor::execute(&mut session, &mut sockets, &mut state);
        state.plugins_due();
        handlers::forwarded(&mut session, &mut state);
        executor::execute(&mut session, &mut sockets, &mut state);
        handlers::publish(&sockets, &mut session, &mut state);
        // Last: a ping proves a whole turn (src/core/watchdog.rs).
        if watchdog.as_mut().is_some_and(|watchdog| watchdog.handle_timeout(Instant::now())) {
            notify::notify(notify::WATCHDOG);
        }
    }
    leave(config, sockets, session, &mut state, &mut signals);
    Ok(())
}

/// The first scan, before the first request is read, so that the first
/// reply and the first publication have the packages (requests wait in
/// the sockets meanwhile): over when done, or when taken for stuck
/// (`crate::core::scan_schedule`: 5 s; the manager then serves what it
/// knows, nothing, until the scan ends). Only the scanner's pipe and the
/// signal pipe are polled meanwhile: SIGTERM ends it at once.
fn first_scan(state: &mut State, signals: &mut SignalPipe) -> Flow {
    loop {
        state.scan_if_due(Instant::now());
        if state.first_scan_over() {
            return Flow::Continue;
        }
        let scanner = state.scanner.poll_fd();
        let mut items = vec![zmq::PollItem::from_fd(signals.fd(), zmq::POLLIN)];
        items.extend(scanner.map(|fd| zmq::PollItem::from_fd(fd, zmq::POLLIN)));
        let timeout = poll_timeout(state.poll_timeout(), Instant::now());
        if let Err(e) = signals.while_waiting(|| zmq::poll(&mut items, timeout)) {
            if e != zmq::Error::EINTR {
                error!("poll failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let ready = |slot: usize| {
            items
                .get(slot)
                .is_some_and(|item| item.is_readable() || item.is_error())
        };
        if ready(0) && state.on_signals(signals.take()) == Flow::Stop {
            return Flow::Stop;
        }
        if ready(1) {
            state.read_scanner();
        }
    }
}

/// After SIGTERM or SIGINT: the requests already queued answered, the
/// broker told that the MDP worker leaves
/// (first: stopping the plugins can take their kill grace), the plugins
/// stopped, the last publications and our `stopped` status sent, then
/// ZeroMQ left without closing anything.
fn leave(config: &Config, mut sockets: Sockets, mut session: Session, state: &mut State, signals: &mut SignalPipe) {
    notify::notify(notify::STOPPING);
    // Not waited for: stuck on a slow disk, it dies when the disk answers.
    state.scanner.kill();
    // Requests already queued when the signal came are answered first
    // (one turn's worth): each request gets its reply, also at the end.
    handlers::serve_requests(&sockets, &mut session, state);
    executor::execute(&mut session, &mut sockets, state);
    let disconnected = leave_broker(&sockets, &mut session);
    if let Some(xpl) = &sockets.xpl {
        xpl.leave();
    }
    stop_plugins(state, signals);
    handlers::publish(&sockets, &mut session, state);
    state.manager.set_now(clock::now());
    let stopped = state.manager.own_status(Status::Stopped);
    let published = match sockets.publisher.socket.send_multipart(stopped, zmq::DONTWAIT) {
        Ok(()) => true,
        Err(e) => {
            debug!("cannot publish our stopped status: {e}");
            false
        }
    };
    // libzmq writes from its I/O thread, and we exit without terminating
    // the context (see Sockets::leave_without_closing, which is also why a
    // linger would not be waited for): the last words get this moment.
    if published || disconnected {
        std::thread::sleep(LAST_WORD_DELAY);
    }
    sockets.leave_without_closing(config);
}

/// The MDP worker leaves the broker (a clean stop, PROTOCOL.md §7): its
/// DISCONNECT queued on the DEALER, so that the broker drops it at once
/// instead of after its heartbeat expiry, and holds a request that comes
/// meanwhile for the next worker. Whether one was queued (standalone there
/// is no broker to tell).
fn leave_broker(sockets: &Sockets, session: &mut Session) -> bool {
    let Some(disconnect) = session.leave(Instant::now()) else {
        return false;
    };
    let broker = sockets.requests.endpoint.address.as_str();
    match sockets.requests.socket.send_multipart(disconnect, zmq::DONTWAIT) {
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

/// The manager stops: SIGTERM to every plugin's process group, their
/// exits reaped for up to the kill grace, then SIGKILL to what is left
/// (docs/PROTOCOL.md §10). Only the signal pipe is polled meanwhile.
fn stop_plugins(state: &mut State, signals: &mut SignalPipe) {
    if state.manager.running_children().is_empty() {
        return;
    }
    for (name, group) in state.manager.stop_children() {
        let who = crate::core::kind::describe(&name);
        info!("stopping {who} (pid {group}): SIGTERM to its process group");
        if let Err(e) = processes::signal_group(group, libc::SIGTERM) {
            error!("cannot send SIGTERM to {who}'s process group {group}: {e}");
        }
    }
    let grace = state.manager.term_grace();
    for (wait, last) in [(grace, false), (Duration::from_millis(500), true)] {
        let deadline = Instant::now() + wait;
        while !state.manager.running_children().is_empty() && Instant::now() < deadline {
            let mut items = [zmq::PollItem::from_fd(signals.fd(), zmq::POLLIN)];
            let _ = signals.while_waiting(|| zmq::poll(&mut items, poll_timeout(deadline, Instant::now())));
            signals.take();
            state.reap();
        }
        if !last {
            for (name, pid) in state.manager.running_children() {
                let who = crate::core::kind::describe(&name);
                warn!("{who} (pid {pid}) did not stop with the manager: SIGKILL to its process group");
                let _ = processes::signal_group(pid, libc::SIGKILL);
            }
        }
    }
}

/// The poll items always there, by name (mio's `Token`s): the rest follow
/// them, the dbmgr DEALER if open, the plugins' pipes, then the monitors.
const SUB: usize = 0;
const REQUESTS: usize = 1;
const PUBLISHER: usize = 2;
const SIGNALS: usize = 3;
const DBMGR: usize = 4;

/// Which poll items were readable.
struct Ready {
    sub: bool,
    requests: bool,
    publisher: bool,
    signals: bool,
    dbmgr: bool,
    xpl: bool,
    /// A monitor has events: a link changed.
    monitors: bool,
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
    let mut items = Vec::with_capacity(DBMGR + 1 + pipes.len() + 4);
    items.insert(SUB, sockets.sub.socket.as_poll_item(zmq::POLLIN));
    items.insert(REQUESTS, sockets.requests.socket.as_poll_item(zmq::POLLIN));
    items.insert(PUBLISHER, sockets.publisher.socket.as_poll_item(publisher_events));
    items.insert(SIGNALS, zmq::PollItem::from_fd(signals.fd(), zmq::POLLIN));
    if let Some(dbmgr) = &sockets.dbmgr {
        items.insert(DBMGR, dbmgr.socket.as_poll_item(zmq::POLLIN));
    }
    let xpl_slot = items.len();
    if let Some(xpl) = &sockets.xpl {
        items.push(zmq::PollItem::from_fd(xpl.fd(), zmq::POLLIN));
    }
    let first_pipe = items.len();
    items.extend(pipes.iter().map(|&fd| zmq::PollItem::from_fd(fd, zmq::POLLIN)));
    // The monitors come last: read only when one has an event.
    let first_monitor = items.len();
    let dbmgr_monitor = sockets.dbmgr.as_ref().and_then(|dbmgr| dbmgr.monitor.as_ref());
    let monitors = [
        sockets.requests.monitor.as_ref(),
        sockets.sub.monitor.as_ref(),
        sockets.publisher.monitor.as_ref(),
        dbmgr_monitor,
    ];
    for monitor in monitors.into_iter().flatten() {
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
    let pipe_ready = |slot: usize| {
        items
            .get(slot)
            .is_some_and(|item| item.is_readable() || item.is_error())
    };
    Ready {
        sub: ready(SUB),
        requests: ready(REQUESTS),
        publisher: ready(PUBLISHER),
        signals: ready(SIGNALS),
        dbmgr: sockets.dbmgr.is_some() && ready(DBMGR),
        // An error pending on the UDP socket polls as POLLERR, not
        // POLLIN: reading it is what clears it (else the poll never sleeps).
        xpl: sockets.xpl.is_some() && pipe_ready(xpl_slot),
        monitors: (first_monitor..items.len()).any(ready),
        pipes: (first_pipe..first_pipe + pipes.len()).map(pipe_ready).collect(),
    }
}

/// Milliseconds until `deadline`, rounded up so we never wake just before
/// it and spin.
fn poll_timeout(deadline: Instant, now: Instant) -> i64 {
    let remaining = deadline.saturating_duration_since(now);
    i64::try_from(remaining.as_micros().div_ceil(1000)).unwrap_or(i64::MAX)
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
