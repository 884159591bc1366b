//! The plugin processes at the system level: spawn one without a shell,
//! read its output pipes, reap every exit at once, signal process groups.
//!
//! [`Plugins`] joins this to the pure state of `src/core/children.rs` and the
//! output of `src/core/child_output.rs`; the event loop polls its pipes with the
//! sockets and calls it when SIGCHLD arrives or a deadline is reached.

use crate::core::child_output::{Line, Output, Stream};
use crate::core::children::{Children, Ended, Exit, Kill, Order, Policy};
use crate::core::manager::Starter;
use crate::{debug, error, info, warn};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Domogik's marker: a plugin started by the manager finds it in its environment.
pub(crate) const NOTICE: &str = "THIS_PLUGIN_IS_STARTED_BY_THE_MANAGER";
/// At most this much of one pipe is read per turn of the loop: a plugin
/// that floods its output shares the turn with the sockets.
const MAX_READ_PER_TURN: usize = 64 * 1024;

/// How to run a plugin (PROTOCOL.md §9): `<python> <packages_dir>/plugin_<name>/bin/<name>.py [-m]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    pub python: PathBuf,
    /// `PYTHONPATH` for the plugin: where Domogik's libraries are; `None`: unset.
    pub pythonpath: Option<PathBuf>,
    pub packages_dir: PathBuf,
}

impl Launch {
    /// The plugin's program: `<packages_dir>/plugin_<name>/bin/<name>.py`.
    pub(crate) fn script(&self, name: &str) -> PathBuf {
        self.packages_dir
            .join(format!("plugin_{name}"))
            .join("bin")
            .join(format!("{name}.py"))
    }

    /// The command, not yet spawned: no shell, stdin from /dev/null,
    /// stdout and stderr to pipes, its own process group; `-m` when the
    /// manager starts it on its own (auto_startup, restart).
    pub(crate) fn command(&self, name: &str, auto: bool) -> Command {
        let mut command = Command::new(&self.python);
        command.arg(self.script(name));
        if auto {
            command.arg("-m");
        }
        command
            .env("NOTICE", NOTICE)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        match &self.pythonpath {
            Some(path) => command.env("PYTHONPATH", path),
            None => command.env_remove("PYTHONPATH"),
        };
        // SAFETY: the closure runs between fork and exec, and calls only
        // async-signal-safe functions (sigemptyset, sigprocmask, signal).
        unsafe { command.pre_exec(reset_signals) };
        command
    }
}

/// A plugin starts with every signal unblocked and SIGPIPE at its default.
/// The mask is inherited through exec: without this, a plugin would start
/// with SIGTERM, SIGINT, SIGHUP and SIGCHLD blocked (src/sys/signals.rs blocks
/// them in the manager's thread), and no SIGTERM would ever stop it. Rust
/// ignores SIGPIPE in the manager; that too would be inherited.
pub(crate) fn reset_signals() -> io::Result<()> {
    let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigprocmask reads it;
    // signal only changes this (child) process's disposition of SIGPIPE.
    unsafe {
        libc::sigemptyset(empty.as_mut_ptr());
        if libc::sigprocmask(libc::SIG_SETMASK, empty.as_ptr(), std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        // The plugins share the service's memory ceiling (MemoryMax): when
        // it is reached, the kernel is to kill a plugin before the manager
        // that watches them. Raising one's own score needs no privilege; a
        // failure leaves the default. Plain system calls on a static path:
        // nothing may allocate between fork and exec.
        let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            let score = PLUGIN_OOM_SCORE_ADJ.as_bytes();
            libc::write(fd, score.as_ptr().cast(), score.len());
            libc::close(fd);
        }
    }
    Ok(())
}

/// The `oom_score_adj` of a plugin (-1000 to 1000; the manager keeps 0).
const PLUGIN_OOM_SCORE_ADJ: &str = "500";

/// One end of a plugin's stdout or stderr that we read.
struct Pipe {
    name: String,
    stream: Stream,
    file: File,
}

/// The plugins the manager started: their state, pipes and output.
pub(crate) struct Plugins {
    launch: Launch,
    children: Children,
    pipes: Vec<Pipe>,
    outputs: BTreeMap<String, Output>,
    /// The packages whose `bin/<name>.py` the last rescan found.
    scripts: BTreeSet<String>,
}

impl Plugins {
    pub(crate) fn new(launch: Launch, policy: Policy) -> Plugins {
        Plugins {
            launch,
            children: Children::new(policy),
            pipes: Vec::new(),
            outputs: BTreeMap::new(),
            scripts: BTreeSet::new(),
        }
    }

    pub(crate) fn children(&self) -> &Children {
        &self.children
    }

    /// The pipes to poll for reading, in the order [`Plugins::read_ready`] expects.
    pub(crate) fn poll_fds(&self) -> Vec<RawFd> {
        self.pipes.iter().map(|pipe| pipe.file.as_raw_fd()).collect()
    }

    /// Reads the pipes `readable` says are ready (one flag per
    /// [`Plugins::poll_fds`] entry) and logs their lines.
    pub(crate) fn read_ready(&mut self, readable: &[bool], now: Instant) {
        let mut closed = Vec::new();
        for (index, pipe) in self.pipes.iter_mut().enumerate() {
            if readable.get(index).copied().unwrap_or(false) {
                let output = self.outputs.entry(pipe.name.clone()).or_default();
                if drain(pipe, output, now) {
                    closed.push(index);
                }
            }
        }
        for index in closed.into_iter().rev() {
            self.pipes.remove(index);
        }
    }

    /// Reaps every exited child (SIGCHLD came): for a plugin, reads what
    /// is left in its pipes, closes them, terminates what remains of its
    /// process group, and logs the exit with the last lines it printed.
    /// The children that are no plugin (the packages scanner) come back
    /// apart, with their exit.
    pub(crate) fn reap(&mut self, now: Instant) -> (Vec<Ended>, Vec<(u32, Exit)>) {
        let mut ended = Vec::new();
        let mut others = Vec::new();
        for (pid, exit) in reap_all() {
            let Some(end) = self.children.exited(pid, exit, now) else {
                others.push((pid, exit));
                continue;
            };
            let output = self.outputs.entry(end.name.clone()).or_default();
            for mut pipe in std::mem::take(&mut self.pipes) {
                if pipe.name == end.name {
                    drain(&mut pipe, output, now);
                } else {
                    self.pipes.push(pipe);
                }
            }
            // Whatever it forked and left behind goes with it.
            let _ = signal_group(pid, Kill::Term);
            let output = self.outputs.remove(&end.name).unwrap_or_default();
            log_end(&end, &output);
            ended.push(end);
        }
        (ended, others)
    }

    /// Statuses the plugin announced (from the clients map), for the kill delay.
    pub(crate) fn observe(&mut self, status_of: impl Fn(&str) -> Option<crate::core::status::Status>, now: Instant) {
        let running: Vec<String> = self.children.running().map(|(name, _)| name.to_owned()).collect();
        for name in running {
            if let Some(status) = status_of(&name) {
                self.children.observe(&name, status, now);
            }
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.children.next_deadline()
    }

    /// Sends the signals that are due; returns the plugins to start again.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<(String, bool)> {
        let mut starts = Vec::new();
        for order in self.children.due(now) {
            match order {
                Order::Signal {
                    name,
                    group,
                    signal,
                    waited,
                } => {
                    let which = if signal == Kill::Term { "SIGTERM" } else { "SIGKILL" };
                    warn!(
                        "plugin {name} (pid {group}) still runs {:.1} s after stop-request: {which} to its process group",
                        waited.as_secs_f64()
                    );
                    if let Err(e) = signal_group(group, signal) {
                        error!("cannot send {which} to plugin {name}'s process group {group}: {e}");
                    }
                }
                Order::Start { name, auto } => starts.push((name, auto)),
            }
        }
        starts
    }

    /// The packages whose program the last rescan found (`bin/<name>.py`).
    pub(crate) fn set_scripts(&mut self, scripts: BTreeSet<String>) {
        self.scripts = scripts;
    }

    /// Package `name` is gone: no restart of it.
    pub(crate) fn forget(&mut self, name: &str) {
        self.children.forget(name);
    }

    /// The manager stops: SIGTERM to every plugin's process group.
    pub(crate) fn stop_all(&mut self) {
        for order in self.children.stop_all() {
            if let Order::Signal { name, group, .. } = order {
                info!("stopping plugin {name} (pid {group}): SIGTERM to its process group");
                if let Err(e) = signal_group(group, Kill::Term) {
                    error!("cannot send SIGTERM to plugin {name}'s process group {group}: {e}");
                }
            }
        }
    }

    /// The manager stops, the grace is over: SIGKILL to what is left.
    pub(crate) fn kill_all(&mut self) {
        for (name, pid) in self.children.running() {
            warn!("plugin {name} (pid {pid}) did not stop with the manager: SIGKILL to its process group");
            let _ = signal_group(pid, Kill::Kill);
        }
    }
}

impl Starter for Plugins {
    fn start(&mut self, name: &str, auto: bool) -> Result<u32, String> {
        if let Some(pid) = self.children.pid(name) {
            return Err(format!("already running (pid {pid})"));
        }
        // As the last rescan saw it: a stat here could stall the loop.
        let script = self.launch.script(name);
        if !self.scripts.contains(name) {
            return Err(format!(
                "{} is missing (at the last rescan; SIGHUP rescans now)",
                script.display()
            ));
        }
        let mut child = self
            .launch
            .command(name, auto)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.launch.python.display()))?;
        let pid = child.id();
        // The Child is dropped without waiting: reap_all() collects every
        // exit, through SIGCHLD, instead of std.
        for (stream, fd) in [
            (Stream::Stdout, child.stdout.take().map(OwnedFd::from)),
            (Stream::Stderr, child.stderr.take().map(OwnedFd::from)),
        ] {
            let Some(fd) = fd else { continue };
            if let Err(e) = set_nonblocking(&fd) {
                warn!("plugin {name}'s {} is not read: {e}", stream.name());
                continue;
            }
            self.pipes.push(Pipe {
                name: name.to_owned(),
                stream,
                file: File::from(fd),
            });
        }
        self.outputs.insert(name.to_owned(), Output::default());
        self.children.spawned(name, pid, auto, Instant::now());
        info!(
            "started plugin {name}: pid {pid}, {} {}{}",
            self.launch.python.display(),
            script.display(),
            if auto { " -m" } else { "" }
        );
        Ok(pid)
    }
}

/// Reads what `pipe` holds now, up to the per-turn limit, and logs its
/// lines; `true` when the pipe is closed (end of file or error).
fn drain(pipe: &mut Pipe, output: &mut Output, now: Instant) -> bool {
    let mut buffer = [0u8; 8192];
    let mut total = 0;
    let closed = loop {
        if total >= MAX_READ_PER_TURN {
            break false;
        }
        match pipe.file.read(&mut buffer) {
            Ok(0) => break true,
            Ok(n) => {
                total += n;
                let lines = output.feed(pipe.stream, buffer.get(..n).unwrap_or_default(), now);
                log_lines(&pipe.name, &lines);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    if closed {
        let lines = output.finish(pipe.stream, now);
        log_lines(&pipe.name, &lines);
        debug!("plugin {} closed its {}", pipe.name, pipe.stream.name());
    }
    closed
}

fn log_lines(name: &str, lines: &[Line]) {
    for line in lines {
        let note = match line.suppressed {
            0 => String::new(),
            n => format!(" ({n} lines not logged)"),
        };
        info!("plugin {name} {}: {}{note}", line.stream.name(), line.text);
    }
}

fn log_end(end: &Ended, output: &Output) {
    let restart = match end.restart_in {
        Some(delay) => format!("; restarting it in {} s", delay.as_secs()),
        None => String::new(),
    };
    let line = format!(
        "plugin {} (pid {}) is {}: {}{restart}",
        end.name, end.pid, end.status, end.comment
    );
    if end.status == crate::core::status::Status::Dead {
        warn!("{line}");
        let tail: Vec<_> = output.tail().collect();
        if !tail.is_empty() {
            warn!("plugin {}'s last {} lines before it died:", end.name, tail.len());
            for (stream, text) in tail {
                warn!("plugin {} {}: {text}", end.name, stream.name());
            }
        }
    } else {
        info!("{line}");
    }
}

pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL only read and
    // set its status flags.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Every child that has exited, reaped now (`waitpid(-1, WNOHANG)` until
/// none is left): no zombie stays behind.
pub(crate) fn reap_all() -> Vec<(u32, Exit)> {
    let mut reaped = Vec::new();
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes the status into the int we give it.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            // 0: children left, none exited; -1: ECHILD (none) or EINTR,
            // and the next SIGCHLD brings us back.
            return reaped;
        }
        let exit = if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        };
        reaped.push((pid.unsigned_abs(), exit));
    }
}

/// Sends `signal` to process group `group` (a plugin's pid).
pub(crate) fn signal_group(group: u32, signal: Kill) -> io::Result<()> {
    let Ok(group) = libc::pid_t::try_from(group) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if group <= 1 {
        // kill(-1) or kill(0) would reach far more than one plugin.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill only sends a signal.
    match unsafe { libc::kill(-group, signal.number()) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Whether `path` names a program we could run (for a warning at start).
pub(crate) fn findable(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_python_on_the_script_with_domogiks_environment() {
        let launch = Launch {
            python: PathBuf::from("/usr/bin/python"),
            pythonpath: Some(PathBuf::from("/opt/dmg/domogik")),
            packages_dir: PathBuf::from("/var/lib/domogik/domogik_packages"),
        };
        let command = launch.command("diskfree", true);
        assert_eq!(command.get_program(), "/usr/bin/python");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            [
                "/var/lib/domogik/domogik_packages/plugin_diskfree/bin/diskfree.py",
                "-m"
            ]
        );
        let envs: BTreeMap<_, _> = command.get_envs().collect();
        assert_eq!(
            envs.get(std::ffi::OsStr::new("NOTICE")).copied().flatten(),
            Some(std::ffi::OsStr::new(NOTICE))
        );
        assert_eq!(
            envs.get(std::ffi::OsStr::new("PYTHONPATH")).copied().flatten(),
            Some(std::ffi::OsStr::new("/opt/dmg/domogik"))
        );
        assert_eq!(
            launch.command("diskfree", false).get_args().count(),
            1,
            "no -m by request"
        );
    }

    #[test]
    fn signals_never_reach_more_than_one_group() {
        assert!(signal_group(0, Kill::Term).is_err());
        assert!(signal_group(1, Kill::Term).is_err());
        assert!(signal_group(u32::MAX, Kill::Term).is_err());
    }
}
