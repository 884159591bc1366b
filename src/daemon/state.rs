//! The event loop's state apart from its sockets: the manager, the packages
//! scanner process and its schedule (datatypes_file is read there too), the
//! plugin processes, and the rate limits of the log. What the loop does with
//! them apart from the sockets: signals, rescans (asked of the scanner,
//! `scanner.rs`, whose replies come through a pipe), timers, plugin starts
//! (forking, through `processes.rs`), the log lines.

use super::scanner::{Outcome, ScannerProcess};
use crate::core::children::RestartSet;
use crate::core::config::Config;
use crate::core::config_warnings;
use crate::core::launch::Launch;
use crate::core::log_policy::{Level, RateLimiter, Verdict};
use crate::core::manager::Manager;
use crate::core::manager::ProcessEvent;
use crate::core::packages::{Package, PackageChange, ScanReport};
use crate::core::scan_schedule::{Due, Schedule};
use crate::core::wire;
use crate::daemon::processes::{self, Plugins};
use crate::disk::datatypes::DatatypesFailure;
use crate::disk::scanner_process::Reply;
use crate::sys::signals::Received;
use crate::sys::{clock, notify};
use crate::{debug, error, info, trace, warn};
use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

/// The loop's mutable state, apart from the sockets.
pub(super) struct State {
    pub manager: Manager,
    /// The disk reads of a rescan, in their own process (`scanner.rs`).
    pub scanner: ScannerProcess,
    schedule: Schedule,
    /// The last rescan error, so that a lasting problem is logged once.
    scan_failure: Option<String>,
    bad_input_log: RateLimiter,
    pub status_log: RateLimiter,
    /// The last datatypes_file error, so that a lasting problem is logged once.
    datatypes_failure: Option<String>,
    /// What the ready line says after the count of clients.
    ready_line: String,
    /// `restart` names, and those said to match no package (once each).
    restart: RestartSet,
    restart_said: BTreeSet<String>,
    /// The executor of the process effects, with the children's pipes (§10).
    pub plugins: Plugins,
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
            manager: Manager::new(config.host.clone(), config.service.clone(), clock::now()),
            scanner: ScannerProcess::new(config.packages_dir.clone(), config.datatypes_file.clone()),
            schedule: Schedule::new(config.rescan_interval, Instant::now()),
            scan_failure: None,
            bad_input_log: RateLimiter::new(10, Duration::from_secs(60)),
            status_log: RateLimiter::new(20, Duration::from_secs(10)),
            datatypes_failure: None,
            ready_line: format!(
                "of host {} from {}, service \"{}\"",
                config.host,
                config.packages_dir.display(),
                config.service
            ),
            restart: config.plugins.policy.restart.clone(),
            restart_said: BTreeSet::new(),
            plugins: Plugins::new(),
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
        state.manager.set_core(config.plugins.core.clone());
        // Said at info: a host may run no plugin of ours (and a fresh Debian 12
        // has no /usr/bin/python); each start that fails for it is a warning.
        if !processes::findable(&config.plugins.python) {
            info!(
                "[manager] python {} is not found: no plugin can be started until it is (set [manager] python)",
                config.plugins.python.display()
            );
        }
        state.manager.set_timers(config.dead_after, config.status_interval);
        state
            .manager
            .set_xpl_limits(config.xpl.max_clients, super::xpl::minute());
        if dbmgr {
            let limits = crate::core::bus::dbmgr::Limits::with_timeout(config.dbmgr_timeout);
            state.manager.enable_dbmgr(limits);
        }
        if config.pub_endpoint.direction == crate::core::config::Direction::Connect {
            // On a bus (a forwarder): the other managers' clients (§13).
            let instance = format!("{}-{}", std::process::id(), (clock::now().unix * 1000.0) as u64);
            state.manager.enable_hosts(&instance, config.hosts);
        }
        state
    }

    /// What happened to the other hosts (§13), said.
    pub(super) fn log_host_events(&mut self) {
        use crate::core::hosts::Event;
        for event in self.manager.take_host_events() {
            match event {
                Event::Forged { .. } | Event::Malformed { .. } => self.log_bad_input(format_args!("{event}")),
                Event::Silent { stopped: false, .. }
                | Event::TooManyHosts { .. }
                | Event::TooManyClients { .. }
                | Event::TooLarge { .. } => {
                    warn!("{event}")
                }
                Event::Silent { stopped: true, .. }
                | Event::Joined { .. }
                | Event::Restarted { .. }
                | Event::Back { .. }
                | Event::Forgotten { .. } => info!("{event}"),
            }
        }
    }

    /// The nearest deadline of the state's timers: the next rescan (or
    /// the time a scan in flight is taken for stuck), the manager's timers,
    /// a plugin's kill delay or restart.
    pub(super) fn poll_timeout(&self) -> Instant {
        self.schedule
            .deadline()
            .into_iter()
            .fold(self.manager.poll_timeout(), Instant::min)
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
            // READY=1 again once the scan is over (or taken for stuck).
            notify::notify(notify::RELOADING);
            info!("SIGHUP: rescanning {}", self.scanner.packages_dir().display());
            self.schedule.rescan_now(Instant::now());
        }
        Flow::Continue
    }

    /// The rescan if due (or the scan in flight said stuck), and the
    /// manager's timers; each client that died is said once.
    pub(super) fn handle_timeout(&mut self, now: Instant) {
        self.scan_if_due(now);
        for name in self.manager.handle_timeout() {
            let id = self.manager.clients().client_id(&name);
            let why = crate::core::liveness::dead_comment(self.manager.dead_after());
            warn!(client_id = id.as_str(); "{id} is dead: {why}");
        }
        for source in self.manager.handle_xpl_timeout() {
            let why = self
                .manager
                .clients()
                .devices()
                .dead_comment(&source)
                .unwrap_or_default();
            info!(client_id = source.as_str(); "xPL: {source} is dead: {why}");
        }
        self.log_host_events();
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
            let Some(end) = self.manager.handle_exit(pid, exit) else {
                if self.scanner.reaped(pid) {
                    debug!("packages scanner (pid {pid}) reaped: {exit}");
                } else {
                    warn!("reaped process {pid}, not one of the clients ({exit})");
                }
                continue;
            };
            // What it forked and left behind went with it (reap_all:
            // 0.5.2's client is two processes, the one we started waits
            // for the other).
            let output = self.plugins.finish(&end.name, Instant::now());
            processes::log_end(&end, &output);
        }
    }

    /// What the manager decides of the processes this turn (the core
    /// components at the first, kills and restarts that are due,
    /// auto_startup), carried out by the executor and logged.
    pub(super) fn plugins_due(&mut self) {
        let events = self.manager.handle_process_timeouts(&mut self.plugins);
        log_events(&events);
    }

    /// Looks for processes of our clients that we did not start (by hand,
    /// a previous manager, one in the background): their pids are listed,
    /// a stop-request kills them, a start is refused (PROTOCOL.md §10).
    fn find_running(&mut self) {
        let wanted = self.manager.scripts_to_find();
        let scripts: Vec<&std::path::Path> = wanted.iter().map(|(_, script)| script.as_path()).collect();
        for ((name, script), pids) in wanted.iter().zip(processes::running_each(&scripts)) {
            let pid = pids.first().copied();
            let before = self.manager.clients().get(name).map_or(0, |client| client.pid);
            if self.manager.set_found(name, pid) {
                let who = crate::core::kind::describe(name);
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

    /// Asks the scanner for a scan when one is due, or says, once, that
    /// the scan in flight is stuck.
    pub(super) fn scan_if_due(&mut self, now: Instant) {
        match self.schedule.due(now) {
            Due::Nothing => {}
            Due::Scan { .. } => {
                let requested = self.scanner.request();
                if let Some(warning) = requested.warning {
                    warn!("{warning}");
                }
                if let Some(outcome) = requested.now {
                    self.scan_ended(outcome, Instant::now());
                }
            }
            Due::Stuck { after, reload } => {
                warn!(
                    "rescan of {} has not finished after {} s: the disk is slow or stuck (said once; its end is said); \
                     requests are answered with the {} clients known meanwhile",
                    self.scanner.packages_dir().display(),
                    after.as_secs(),
                    self.manager.clients().len()
                );
                if reload {
                    notify::notify(notify::READY);
                }
            }
        }
    }

    /// The scanner's pipe polled readable: its reply applied, if complete.
    pub(super) fn read_scanner(&mut self) {
        if let Some(outcome) = self.scanner.read_ready() {
            self.scan_ended(outcome, Instant::now());
        }
    }

    fn scan_ended(&mut self, outcome: Outcome, now: Instant) {
        // A scanner lost between two scans is said too (and started again
        // at the next scan); one lost during a scan is asked again soon.
        let ended = match &outcome {
            Outcome::Lost(why) => match self.schedule.lost(now) {
                Some((ended, pause)) => {
                    error!("{why}; it is started again and the rescan asked again in {} s", pause.as_secs());
                    Some(ended)
                }
                None => {
                    error!("{why}; it is started again at the next rescan");
                    None
                }
            },
            Outcome::Reply(_) => self.schedule.ended(now),
        };
        match outcome {
            Outcome::Lost(_) => {}
            Outcome::Reply(_) if ended.is_none() => debug!("a reply of the packages scanner nobody asked for: dropped"),
            Outcome::Reply(Reply { scan, datatypes }) => {
                if let Some(datatypes) = datatypes {
                    self.apply_datatypes(datatypes);
                }
                match scan {
                    Ok(report) => self.apply_scan(report),
                    Err(failure) => self.scan_failed(failure),
                }
            }
        }
        let Some(ended) = ended else {
            return;
        };
        if ended.was_stuck {
            info!(
                "rescan of {} finished after {:.1} s",
                self.scanner.packages_dir().display(),
                ended.took.as_secs_f64()
            );
        }
        if ended.reload_over {
            notify::notify(notify::READY);
        }
    }

    /// Whether the first scan is over: done, or taken for stuck.
    pub(super) fn first_scan_over(&self) -> bool {
        self.schedule.first_scan_over()
    }

    /// The first scan is over and the sockets are open: the manager is ready.
    pub(super) fn say_ready(&mut self) {
        info!("ready: {} clients {}", self.manager.clients().len(), self.ready_line);
        notify::notify(notify::READY);
    }

    /// packages_dir could not be listed: said once while it lasts.
    fn scan_failed(&mut self, message: String) {
        if self.scan_failure.as_ref() != Some(&message) {
            error!(
                "{message}{}; keeping the {} known clients, retrying at the next rescan",
                config_warnings::quotes_hint(self.scanner.packages_dir()),
                self.manager.clients().len()
            );
        } else {
            debug!("{message}");
        }
        self.scan_failure = Some(message);
    }

    /// Applies what a scan found.
    fn apply_scan(&mut self, mut report: ScanReport) {
        self.plugins.set_scripts(std::mem::take(&mut report.scripts));
        if self.scan_failure.take().is_some() {
            info!(
                "packages_dir {} is readable again",
                self.scanner.packages_dir().display()
            );
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
            // Worded before it is applied ("found" or "changed"), written
            // only if it changed a client: a file re-read to the same
            // content (or failing the same way again) says nothing.
            let (level, line, client_id) = package_change_line(&self.manager, &change);
            if self.manager.apply_package_change(change) {
                ::log::log!(level.into(), client_id = client_id.as_str(); "{line}");
            }
        }
        self.find_running();
        // `restart` names that are no package: a typo, said once each.
        for (name, line) in config_warnings::unknown_restart_names(&self.restart, self.scanner.known()) {
            if self.restart_said.insert(name) {
                warn!("{line}");
            }
        }
    }

    /// datatypes_file changed (read by the scanner): a failure is logged
    /// once while it lasts, and `datatype.get` answers `null`.
    fn apply_datatypes(&mut self, datatypes: Result<Box<serde_json::value::RawValue>, DatatypesFailure>) {
        match datatypes {
            Ok(datatypes) => {
                if self.datatypes_failure.take().is_some() {
                    info!("{} is readable again", self.scanner.datatypes_file().display());
                }
                self.manager.set_datatypes(Some(datatypes));
            }
            Err(DatatypesFailure { missing, message }) => {
                if self.datatypes_failure.as_ref() != Some(&message) {
                    if missing {
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
            ProcessEvent::AlreadyRunning { name, pid } => {
                info!(
                    "{} runs already (pid {pid}): not started again",
                    crate::core::kind::describe(name)
                )
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
