//! The plugin processes at the system level: spawn one without a shell,
//! read its output pipes, reap every exit at once, signal process groups.
//!
//! [`Plugins`] joins this to the pure state of `src/core/children.rs` and the
//! output of `src/core/child_output.rs`; the event loop polls its pipes with the
//! sockets and calls it when SIGCHLD arrives or a deadline is reached.

use crate::core::child_output::{Line, Output, Stream};
use crate::core::children::{Ended, Exit};
use crate::core::kind;
use crate::core::launch::{Spawn, NOTICE};
use crate::core::manager::{Processes, SpawnError};
use crate::{debug, info, warn};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// At most this much of one pipe is read per turn of the loop: a child
/// that floods its output shares the turn with the sockets.
const MAX_READ_PER_TURN: usize = 64 * 1024;

/// The command of `spawn`, not yet spawned: no shell, stdin from
/// /dev/null, stdout and stderr to pipes, its own process group, every
/// signal unblocked.
fn command(spawn: &Spawn) -> Command {
    let mut command = Command::new(&spawn.program);
    command.arg(&spawn.script).args(&spawn.args);
    command
        .env("NOTICE", NOTICE)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    match &spawn.pythonpath {
        Some(path) => command.env("PYTHONPATH", path),
        None => command.env_remove("PYTHONPATH"),
    };
    // SAFETY: the closure runs between fork and exec, and calls only
    // async-signal-safe functions (sigemptyset, sigprocmask, signal).
    unsafe { command.pre_exec(reset_signals) };
    command
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

/// The executor of the manager's process effects (spawn, kill), and what
/// belongs to the processes at the system level: their pipes and output.
/// Which process is whose, and what it means, is the manager's
/// (`core::children`).
pub(crate) struct Plugins {
    pipes: Vec<Pipe>,
    outputs: BTreeMap<String, Output>,
    /// The packages whose program the last rescan found (`bin/<name>.py`).
    scripts: BTreeSet<String>,
}

impl Plugins {
    pub(crate) fn new() -> Plugins {
        Plugins {
            pipes: Vec::new(),
            outputs: BTreeMap::new(),
            scripts: BTreeSet::new(),
        }
    }

    /// The packages whose program the last rescan found (`bin/<name>.py`).
    pub(crate) fn set_scripts(&mut self, scripts: BTreeSet<String>) {
        self.scripts = scripts;
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

    /// Reads what is left in the pipes of client `name` (its process
    /// exited), closes them, and returns its output's last lines.
    pub(crate) fn finish(&mut self, name: &str, now: Instant) -> Output {
        let output = self.outputs.entry(name.to_owned()).or_default();
        for mut pipe in std::mem::take(&mut self.pipes) {
            if pipe.name == name {
                drain(&mut pipe, output, now);
            } else {
                self.pipes.push(pipe);
            }
        }
        self.outputs.remove(name).unwrap_or_default()
    }
}

impl Processes for Plugins {
    fn spawn(&mut self, spawn: &Spawn) -> Result<u32, SpawnError> {
        let name = spawn.name.as_str();
        // A package's program as the last rescan saw it: a stat of
        // packages_dir here could stall the loop. Domogik's bin dir (a
        // core component's) is no folder of packages: looked at now.
        let present = if kind::split(name).0.is_package() {
            self.scripts.contains(name)
        } else {
            spawn.script.is_file()
        };
        if !present {
            let when = if kind::split(name).0.is_package() {
                " (at the last rescan; SIGHUP rescans now)"
            } else {
                ""
            };
            return Err(SpawnError::Failed(format!(
                "{} is missing{when}",
                spawn.script.display()
            )));
        }
        if let Some(pid) = running(&spawn.script).first() {
            return Err(SpawnError::AlreadyRunning(*pid));
        }
        let mut child = command(spawn)
            .spawn()
            .map_err(|e| SpawnError::Failed(format!("cannot run {}: {e}", spawn.program.display())))?;
        let pid = child.id();
        // The Child is dropped without waiting: reap_all() collects every
        // exit, through SIGCHLD, instead of std.
        for (stream, fd) in [
            (Stream::Stdout, child.stdout.take().map(OwnedFd::from)),
            (Stream::Stderr, child.stderr.take().map(OwnedFd::from)),
        ] {
            let Some(fd) = fd else { continue };
            if let Err(e) = set_nonblocking(&fd) {
                warn!("{}'s {} is not read: {e}", kind::describe(name), stream.name());
                continue;
            }
            self.pipes.push(Pipe {
                name: name.to_owned(),
                stream,
                file: File::from(fd),
            });
        }
        self.outputs.insert(name.to_owned(), Output::default());
        let args = spawn.args.join(" ");
        info!(
            "started {}: pid {pid}, {} {} {args}",
            kind::describe(name),
            spawn.program.display(),
            spawn.script.display()
        );
        Ok(pid)
    }

    fn kill(&mut self, _name: &str, group: Option<u32>, script: Option<&Path>) -> Vec<u32> {
        let mut killed = Vec::new();
        if let Some(group) = group {
            // Named before the kill: once killed they are zombies, gone from view.
            let members = group_members(group);
            if signal_group(group, libc::SIGKILL).is_ok() {
                killed.push(group);
                killed.extend(members);
            }
        }
        for pid in script.map(running).unwrap_or_default() {
            // Checked again, just before: a pid reused meanwhile by
            // another program is left alone.
            if killed.contains(&pid) || !script.is_some_and(|script| runs_script(pid, script)) {
                continue;
            }
            if signal_pid(pid, libc::SIGKILL).is_ok() {
                killed.push(pid);
            }
        }
        killed.sort_unstable();
        killed.dedup();
        killed
    }
}

/// The pids of the processes whose command line runs `script` (one of
/// their arguments after the program, as an absolute path, is it), oldest
/// parent first: as 0.5.2 finds a client with `ps`, without the words.
pub(crate) fn running(script: &Path) -> Vec<u32> {
    running_each(std::slice::from_ref(&script))
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// [`running`] for several scripts at once, in one pass over /proc (each
/// command line read once): the pids of each, in the order given.
pub(crate) fn running_each<P: AsRef<Path>>(scripts: &[P]) -> Vec<Vec<u32>> {
    let mut found: Vec<Vec<(u32, u32)>> = vec![Vec::new(); scripts.len()];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![Vec::new(); scripts.len()];
    };
    let mine = std::process::id();
    for pid in entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != mine)
    {
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        for (script, pids) in scripts.iter().zip(found.iter_mut()) {
            if names_script(&cmdline, script.as_ref()) {
                pids.push((parent_of(pid).unwrap_or(0), pid));
            }
        }
    }
    found
        .into_iter()
        .map(|mut pids| {
            // The process whose parent is not one of them first (0.5.2's watcher).
            let all: Vec<u32> = pids.iter().map(|(_, pid)| *pid).collect();
            pids.sort_by_key(|(parent, pid)| (all.contains(parent), *pid));
            pids.into_iter().map(|(_, pid)| pid).collect()
        })
        .collect()
}

/// Whether process `pid` runs `script` (see [`names_script`]); a zombie's
/// command line is empty.
fn runs_script(pid: u32, script: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| names_script(&cmdline, script))
}

/// Whether a command line (`/proc/PID/cmdline`: arguments ended by NUL)
/// runs `script`: an argument after its program is that absolute path
/// (`//` and `/./` folded).
fn names_script(cmdline: &[u8], script: &Path) -> bool {
    cmdline
        .split(|byte| *byte == 0)
        .skip(1)
        .filter(|arg| arg.first() == Some(&b'/'))
        .any(|arg| {
            Path::new(std::ffi::OsStr::from_bytes(arg))
                .components()
                .eq(script.components())
        })
}

/// The live processes of process group `group`, from /proc.
fn group_members(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| stat_fields(pid).is_some_and(|(state, _, pgrp)| pgrp == group && state != 'Z'))
        .collect()
}

/// `(state, parent, process group)` of `pid`, from /proc/PID/stat (its
/// command name may hold spaces and parentheses: read after the last `)`).
fn stat_fields(pid: u32) -> Option<(char, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, parent, group))
}

/// The parent of `pid`, from /proc/PID/stat.
fn parent_of(pid: u32) -> Option<u32> {
    stat_fields(pid).map(|(_, parent, _)| parent)
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
        info!("{} {}: {}{note}", kind::describe(name), line.stream.name(), line.text);
    }
}

/// The log lines of a child's end, with its last output lines when it died.
pub(crate) fn log_end(end: &Ended, output: &Output) {
    let restart = match end.restart_in {
        Some(delay) => format!("; restarting it in {} s", delay.as_secs()),
        None => String::new(),
    };
    let who = kind::describe(&end.name);
    let line = format!("{who} (pid {}) is {}: {}{restart}", end.pid, end.status, end.comment);
    if end.status == crate::core::status::Status::Dead {
        warn!("{line}");
        let tail: Vec<_> = output.tail().collect();
        if !tail.is_empty() {
            warn!("{who}'s last {} lines before it died:", tail.len());
            for (stream, text) in tail {
                warn!("{who} {}: {text}", stream.name());
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

/// Every child that has exited, reaped now (until none is left): no
/// zombie stays behind. Before each is reaped, while its zombie still
/// holds its pid (so that no new process can take that number as its
/// process group), what is left of its process group gets SIGKILL: a
/// client's forked processes (0.5.2's watcher's child) go with it, and the
/// kill can never reach a group that a reused pid started meanwhile.
pub(crate) fn reap_all() -> Vec<(u32, Exit)> {
    let mut reaped = Vec::new();
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child
        // a zombie, to be reaped below.
        let rc = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is set by waitid for a child that changed state
        // (0 when none did: WNOHANG with children still running).
        let pid = unsafe { info.si_pid() };
        if rc != 0 || pid <= 0 {
            // ECHILD (none), EINTR, or none exited: the next SIGCHLD brings us back.
            return reaped;
        }
        let _ = signal_group(pid.unsigned_abs(), libc::SIGKILL);
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes the status into the int we give it.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } != pid {
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

/// Sends `signal` to process `pid`.
fn signal_pid(pid: u32, signal: i32) -> io::Result<()> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if pid <= 1 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill only sends a signal.
    match unsafe { libc::kill(pid, signal) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Sends `signal` to process group `group` (a child's pid).
pub(crate) fn signal_group(group: u32, signal: i32) -> io::Result<()> {
    let Ok(group) = libc::pid_t::try_from(group) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    if group <= 1 {
        // kill(-1) or kill(0) would reach far more than one plugin.
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill only sends a signal.
    match unsafe { libc::kill(-group, signal) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Domogik's bin dir (where `dbmgr.py`, `admin.py`... are), as the
/// interpreter of the clients finds Domogik's `domogik.bin` package with
/// their `PYTHONPATH`: where 0.5.2's manager runs its core components from
/// (the folder of its own `manager.py`). Asked once at start, for at most
/// 10 s; `None` (logged) when it cannot say.
pub(crate) fn find_core_bin_dir(python: &Path, pythonpath: Option<&Path>) -> Option<std::path::PathBuf> {
    const ASK: &str = "import os, domogik.bin; print(os.path.dirname(os.path.abspath(domogik.bin.__file__)))";
    let mut command = Command::new(python);
    command
        .args(["-c", ASK])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(path) = pythonpath {
        command.env("PYTHONPATH", path);
    }
    let said = |why: String| {
        warn!("Domogik's bin dir not found ({why}): no core component can be started; set [manager] core_bin_dir");
        None
    };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return said(format!("cannot run {}: {e}", python.display())),
    };
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return said(format!("{} did not answer within 10 s", python.display()));
            }
        }
    };
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text);
    }
    let dir = std::path::PathBuf::from(text.trim());
    if !status.success() || !dir.is_dir() {
        return said(format!("{} cannot import domogik.bin", python.display()));
    }
    info!("Domogik's bin dir: {} (from {})", dir.display(), python.display());
    Some(dir)
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
        let spawn = Spawn {
            name: "diskfree".into(),
            program: PathBuf::from("/usr/bin/python"),
            script: PathBuf::from("/var/lib/domogik/domogik_packages/plugin_diskfree/bin/diskfree.py"),
            args: vec!["-f".into()],
            pythonpath: Some(PathBuf::from("/opt/dmg/domogik")),
        };
        let command = command(&spawn);
        assert_eq!(command.get_program(), "/usr/bin/python");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            [
                "/var/lib/domogik/domogik_packages/plugin_diskfree/bin/diskfree.py",
                "-f"
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
    }

    #[test]
    fn a_command_line_runs_a_script_by_its_whole_path() {
        let script = Path::new("/var/lib/domogik/domogik_packages/plugin_diskfree/bin/diskfree.py");
        let runs = |line: &str| names_script(line.replace(' ', "\0").as_bytes(), script);
        assert!(runs(
            "/usr/bin/python /var/lib/domogik/domogik_packages/plugin_diskfree/bin/diskfree.py -f"
        ));
        assert!(
            runs("python /var/lib/domogik//domogik_packages/./plugin_diskfree/bin/diskfree.py"),
            "0.5.2's //"
        );
        assert!(
            !runs("/var/lib/domogik/domogik_packages/plugin_diskfree/bin/diskfree.py"),
            "the program itself is not an argument"
        );
        assert!(!runs(
            "vi /var/lib/domogik/domogik_packages/plugin_diskfree/bin/diskfree.py.swp"
        ));
        assert!(
            !runs("grep diskfree /var/log/domogik/xplplugin_diskfree.log"),
            "naming it is not running it"
        );
        assert!(!runs("python bin/diskfree.py"), "relative: not this path");
    }

    #[test]
    fn signals_never_reach_more_than_one_group() {
        assert!(signal_group(0, libc::SIGTERM).is_err());
        assert!(signal_group(1, libc::SIGTERM).is_err());
        assert!(signal_group(u32::MAX, libc::SIGTERM).is_err());
        assert!(signal_pid(1, libc::SIGTERM).is_err());
    }
}
