//! The event loop's state apart from its sockets: the manager, the package
//! scanner and its rescan timer, datatypes_file, the plugin processes, and
//! the rate limits of the log. What the loop does with them apart from the
//! sockets: signals, rescans (reading the disk), timers, plugin starts
//! (forking, through `processes.rs`), the log lines.

use crate::core::autostart::AutoStart;
use crate::core::config::Config;
use crate::core::launch::Launch;
use crate::core::log_policy::{Level, RateLimiter, Verdict};
use crate::core::manager::Manager;
use crate::core::manager::ProcessEvent;
use crate::core::packages::{Package, PackageChange};
use crate::core::wire;
use crate::daemon::processes::{self, Plugins};
use crate::disk::datatypes::DatatypesFile;
use crate::disk::scanner::Scanner;
use crate::sys::notify;
use crate::sys::signals::Received;
use crate::{debug, error, info, trace, warn};
use std::fmt;
use std::time::{Duration, Instant};

/// The loop's mutable state, apart from the sockets.
pub(super) struct State {
    pub manager: Manager,
    scanner: Scanner,
    rescan_interval: Duration,
    next_rescan: Instant,
    /// The last rescan error, so that a lasting problem is logged once.
    scan_failure: Option<String>,
    bad_input_log: RateLimiter,
    pub status_log: RateLimiter,
    datatypes: DatatypesFile,
    /// The last datatypes_file error, so that a lasting problem is logged once.
    datatypes_failure: Option<String>,
    /// The executor of the process effects, with the children's pipes (§10).
    pub plugins: Plugins,
    /// The core components to start at the first turn (taken then).
    core: Vec<String>,
    /// Which plugins `auto_startup` has started already.
    autostart: AutoStart,
}

/// Whether the loop goes on after the signals of a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Stop,
}

impl State {
    /// The state at start, before the first rescan; `dbmgr` when there is
    /// a broker to ask it through.
    pub(super) fn new(config: &Config, dbmgr: bool) -> State {
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
            plugins: Plugins::new(),
            core: config.plugins.core.clone(),
            autostart: AutoStart::default(),
        };
        let core_bin_dir = match (&config.plugins.core_bin_dir, config.plugins.core.is_empty()) {
            (Some(dir), _) => Some(dir.clone()),
            (None, true) => None,
            (None, false) => processes::find_core_bin_dir(&config.plugins.python, config.plugins.pythonpath.as_deref()),
        };
        state.manager.set_processes(
            Launch {
                python: config.plugins.python.clone(),
                pythonpath: config.plugins.pythonpath.clone(),
                packages_dir: config.packages_dir.clone(),
                core_bin_dir,
                extra_args: config.plugins.extra_args.clone(),
            },
            config.plugins.policy.clone(),
        );
        // Said at info: a host may run no plugin of ours (and a fresh Debian 12
        // has no /usr/bin/python); each start that fails for it is a warning.
        if !processes::findable(&config.plugins.python) {
            info!(
                "[manager] python {} is not found: no plugin can be started until it is (set [manager] python)",
                config.plugins.python.display()
            );
        }
        state.manager.set_timers(config.dead_after, config.status_interval);
        if dbmgr {
            let limits = crate::core::bus::dbmgr::Limits::with_timeout(config.dbmgr_timeout);
            state.manager.enable_dbmgr(limits);
        }
        state
    }

    /// The nearest deadline of the state's timers: the next rescan, the
    /// manager's timers, a plugin's kill delay or restart.
    pub(super) fn next_deadline(&self) -> Instant {
        self.next_rescan.min(self.manager.next_deadline())
    }

    /// The signals received: exits reaped, SIGHUP's rescan; SIGTERM or
    /// SIGINT stops the loop.
    pub(super) fn on_signals(&mut self, received: Received) -> Flow {
        if received.child_exited {
            self.reap();
        }
        if received.terminate {
            info!("stopping on signal");
            return Flow::Stop;
        }
        if received.rescan {
            notify::notify(notify::RELOADING);
            info!("SIGHUP: rescanning {}", self.scanner.dir().display());
            self.rescan();
            notify::notify(notify::READY);
        }
        Flow::Continue
    }

    /// The rescan if due, and the manager's timers; each client that died
    /// is said once.
    pub(super) fn run_timers(&mut self, now: Instant) {
        if now >= self.next_rescan {
            self.rescan();
        }
        for name in self.manager.run_timers() {
            let id = self.manager.clients().client_id(&name);
            let why = crate::core::liveness::dead_comment(self.manager.dead_after());
            warn!(client_id = id.as_str(); "{id} is dead: {why}");
        }
    }

    /// The reply frames to one request's frames, its problem logged.
    pub(super) fn answer(&mut self, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
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

    /// SIGCHLD: every exited child reaped and reported to the manager (its
    /// client `stopped` or `dead`), what is left of its process group
    /// killed, its end logged with its last lines.
    pub(super) fn reap(&mut self) {
        for (pid, exit) in processes::reap_all() {
            // Whatever it forked and left behind goes with it (0.5.2's
            // client is two processes: the one we started waits for the other).
            let _ = processes::signal_group(pid, libc::SIGKILL);
            let Some(end) = self.manager.handle_exit(pid, exit) else {
                warn!("reaped process {pid}, not one of the clients ({exit})");
                continue;
            };
            let output = self.plugins.finish(&end.name, Instant::now());
            processes::log_end(&end, &output);
        }
    }

    /// The core components, at the first turn; the kills and restarts that
    /// are due; auto_startup, once its value from dbmgr is known (§10).
    pub(super) fn plugins_due(&mut self) {
        if !self.core.is_empty() {
            let core = std::mem::take(&mut self.core);
            let events = self.manager.start_core(&core, &mut self.plugins);
            log_events(&events);
        }
        let events = self.manager.handle_process_timeouts(&mut self.plugins);
        log_events(&events);
        let clients = self.manager.clients();
        let values = clients
            .iter()
            .filter(|(name, client)| client.is_valid() && crate::core::kind::split(name).0.user_started())
            .map(|(name, _)| (name, clients.parameter_is_true(name, "auto_startup")));
        let due = self.autostart.due(values);
        if !due.is_empty() {
            let events = self.manager.auto_start(&due, &mut self.plugins);
            log_events(&events);
        }
    }

    /// Looks for processes of our clients that we did not start (by hand,
    /// a previous manager, one in the background): their pids are listed,
    /// a stop-request kills them, a start is refused (PROTOCOL.md §10).
    fn find_running(&mut self) {
        for (name, script) in self.manager.scripts_to_find() {
            let pid = processes::running(&script).first().copied();
            let before = self.manager.clients().get(&name).map_or(0, |client| client.pid);
            if self.manager.set_found(&name, pid) {
                let who = crate::core::kind::describe(&name);
                match pid {
                    Some(pid) if before != pid => {
                        info!(
                            "{who} runs already, not started by this manager: pid {pid} ({})",
                            script.display()
                        )
                    }
                    None => info!("{who} (pid {before}, not ours) is no longer running"),
                    _ => {}
                }
            }
        }
    }

    /// A warning about what a peer sent, within the rate limit.
    pub(super) fn log_bad_input(&mut self, message: fmt::Arguments<'_>) {
        if let Verdict::Write { suppressed } = self.bad_input_log.check(Instant::now()) {
            warn!("{message}{}", suppressed_note(suppressed));
        }
    }

    /// Rescans packages_dir (and re-reads datatypes_file) and applies what
    /// changed; the next rescan is due one interval from now.
    pub(super) fn rescan(&mut self) {
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
        self.find_running();
    }

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

/// The log lines of what the manager did with the processes.
fn log_events(events: &[ProcessEvent]) {
    for event in events {
        match event {
            ProcessEvent::Started { name, why, .. } => {
                info!("{} started: {why}", crate::core::kind::describe(name))
            }
            ProcessEvent::NotStarted { name, reason, retry_in } => {
                let retry = retry_in.map_or(String::new(), |delay| {
                    format!("; trying again in {} s", delay.as_secs())
                });
                warn!("{} not started: {reason}{retry}", crate::core::kind::describe(name));
            }
            ProcessEvent::Killed { name, pids, waited } => {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                if pids.is_empty() {
                    info!(
                        "{} has stopped by itself {:.1} s after stop-request",
                        crate::core::kind::describe(name),
                        waited.as_secs_f64()
                    );
                } else {
                    warn!(
                        "{} still runs {:.1} s after stop-request: SIGKILL to pids {}",
                        crate::core::kind::describe(name),
                        waited.as_secs_f64(),
                        pids.join(", ")
                    );
                }
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

/// What ends a rate-limited line: how many like it were not written.
pub(super) fn suppressed_note(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} similar lines suppressed)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suppressed_count_is_said_on_the_next_line_written() {
        assert_eq!(suppressed_note(0), "");
        assert_eq!(suppressed_note(1017), " (1017 similar lines suppressed)");
    }
}
