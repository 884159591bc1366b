//! systemd's readiness protocol (`sd_notify`), through the `sd-notify` crate.
//!
//! With `Type=notify`, systemd waits for `READY=1` before it calls the
//! service started, and shows `RELOADING=1` / `STOPPING=1` in its status.
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing. The
//! crate connects to a path socket (what systemd gives a service, e.g.
//! `/run/systemd/notify`), not to an abstract `@name` one.

use sd_notify::NotifyState;

/// What the manager tells systemd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Sockets bound and the first scan done, or a rescan finished.
    Ready,
    /// A rescan asked for by SIGHUP (`systemctl reload`) begins.
    Reloading,
    /// The loop ends.
    Stopping,
    /// The loop is alive (`WATCHDOG=1`, with `WatchdogSec=`: src/core/watchdog.rs).
    Watchdog,
}

pub(crate) const READY: State = State::Ready;
pub(crate) const RELOADING: State = State::Reloading;
pub(crate) const STOPPING: State = State::Stopping;
pub(crate) const WATCHDOG: State = State::Watchdog;

/// systemd's watchdog interval (`WATCHDOG_USEC`), when it is set for this
/// process (`WATCHDOG_PID` unset or ours: a plugin that inherited it from
/// a manager started by systemd does not ping on the manager's behalf).
pub(crate) fn watchdog_interval() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled()
}

/// Sends `state` to systemd if it listens. Failures are logged at debug
/// level only: a lost notification must never stop the daemon.
pub(crate) fn notify(state: State) {
    let result = match state {
        State::Ready => sd_notify::notify(&[NotifyState::Ready]),
        // systemd 253 and later want the reload's start time with it
        // (sd_notify(3), MONOTONIC_USEC).
        State::Reloading => match NotifyState::monotonic_usec_now() {
            Ok(now) => sd_notify::notify(&[NotifyState::Reloading, now]),
            Err(_) => sd_notify::notify(&[NotifyState::Reloading]),
        },
        State::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
        State::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
    };
    if let Err(error) = result {
        crate::debug!("sd_notify {state:?} failed: {error}");
    }
}
