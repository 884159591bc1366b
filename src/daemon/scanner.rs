//! The packages scanner process, seen from the loop: the disk reads of a
//! rescan are done in a process of their own (src/disk/scanner_process.rs),
//! so that the loop never waits for the disk (issue 21).
//!
//! `packages_dir` on an SD card under write load, NFS or SMB can stall for
//! seconds; a process stuck there is in the kernel (state `D`), where no
//! signal reaches it until the file system answers. In a thread of the
//! manager, such a read would hold the whole process: exit waits for every
//! thread, so SIGTERM would take as long as the disk (measured with
//! tests/stallfs.py: a thread stuck in a FUSE lookup kept its process 60 s
//! after the exit call; a child process stuck the same way, killed, left
//! its parent free at once). So the manager starts `dmg_manager
//! --packages-scanner DIR DATATYPES_FILE` (itself, through /proc/self/exe),
//! writes it one request line per scan and polls its reply pipe in the one
//! `zmq_poll`; what to do with a reply, and when to scan, the loop decides
//! (src/core/scan_schedule.rs). At exit it sends SIGKILL to the scanner
//! and does not wait for it.
//!
//! The scanner dies with the manager (`PR_SET_PDEATHSIG`, and the end of
//! its stdin); one that dies is started again at the next scan, told the
//! package names known so far so that packages removed meanwhile are
//! reported removed. Where no process can be started, the scan is done in
//! the loop, as before, said once; the process is tried again at each scan.

use super::processes::{reset_signals, set_nonblocking};
use crate::core::packages::PackageChange;
use crate::disk::scanner_process::{Reply, Request, Worker, ARG};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// At most this much of the scanner's replies is read per turn of the loop.
const MAX_READ_PER_TURN: usize = 1024 * 1024;

/// The scanner process, seen from the manager's loop.
pub(crate) struct ScannerProcess {
    /// `/proc/self/exe` (another program in tests).
    program: PathBuf,
    packages_dir: PathBuf,
    datatypes_file: PathBuf,
    running: Option<Running>,
    /// The package names known, from the replies: told to a new scanner.
    known: BTreeSet<String>,
    /// No process could be started: scans are done in the loop.
    inline: Option<Worker>,
    /// Whether the scanner running (or the inline worker) was told `known`.
    told: bool,
    /// Scanners killed and not reaped yet.
    killed: Vec<u32>,
}

struct Running {
    pid: u32,
    /// Reaped already (it died on its own): its pid may be anyone's now,
    /// never to be signalled.
    reaped: bool,
    stdin: File,
    stdout: File,
    buffer: Vec<u8>,
}

/// What [`ScannerProcess::request`] did.
#[derive(Debug)]
pub(crate) struct Requested {
    /// To log: scans are done in the loop from now on.
    pub(crate) warning: Option<String>,
    /// The outcome, when there is one at once (scanned in the loop, or
    /// the scanner lost); else it comes through the pipe.
    pub(crate) now: Option<Outcome>,
}

/// What came from the scanner this turn.
#[derive(Debug)]
pub(crate) enum Outcome {
    Reply(Reply),
    /// The scanner is gone (crashed, killed) before its reply: why.
    Lost(String),
}

impl ScannerProcess {
    pub(crate) fn new(packages_dir: PathBuf, datatypes_file: PathBuf) -> ScannerProcess {
        ScannerProcess {
            program: PathBuf::from("/proc/self/exe"),
            packages_dir,
            datatypes_file,
            running: None,
            known: BTreeSet::new(),
            inline: None,
            told: false,
            killed: Vec::new(),
        }
    }

    pub(crate) fn packages_dir(&self) -> &Path {
        &self.packages_dir
    }

    pub(crate) fn datatypes_file(&self) -> &Path {
        &self.datatypes_file
    }

    /// The plugin names the scans found so far.
    pub(crate) fn known(&self) -> &BTreeSet<String> {
        &self.known
    }

    /// Whether `pid`, just reaped, was a scanner (the one running, which
    /// its pipe's end then reports, or one killed before).
    pub(crate) fn reaped(&mut self, pid: u32) -> bool {
        if let Some(running) = self.running.as_mut().filter(|running| running.pid == pid) {
            running.reaped = true;
            return true;
        }
        let before = self.killed.len();
        self.killed.retain(|&killed| killed != pid);
        self.killed.len() != before
    }

    /// Asks for a scan, the scanner started first if it is not running.
    /// Where no process can be started, the scan is done here, in the loop:
    /// its outcome comes back at once, with a warning the first time. The
    /// process is tried again at each scan: a fork that failed once (no
    /// memory for a moment, a process limit reached) does not keep the
    /// scans in the loop for good.
    pub(crate) fn request(&mut self) -> Requested {
        let mut warning = None;
        if self.running.is_none() {
            match self.spawn() {
                Ok(running) => {
                    self.running = Some(running);
                    self.told = false;
                    self.inline = None;
                }
                Err(error) if self.inline.is_none() => {
                    self.told = false;
                    warning = Some(format!(
                        "cannot start the packages scanner ({error}): scanning in the loop, where a slow disk delays every request (tried again at each scan)"
                    ));
                    self.inline = Some(Worker::new(self.packages_dir.clone(), self.datatypes_file.clone()));
                }
                Err(_) => {}
            }
        }
        if self.inline.is_some() {
            return Requested {
                warning,
                now: self.answer_inline(),
            };
        }
        let request = Request {
            known: self.known_if_new(),
        };
        let mut line = serde_json::to_vec(&request).unwrap_or_default();
        line.push(b'\n');
        let sent = self.running.as_mut().map(|running| running.stdin.write_all(&line));
        let now = match sent {
            Some(Err(error)) => {
                self.kill();
                Some(Outcome::Lost(format!(
                    "the packages scanner does not read its requests: {error}"
                )))
            }
            _ => None,
        };
        Requested { warning, now }
    }

    fn answer_inline(&mut self) -> Option<Outcome> {
        let known = self.known_if_new();
        let worker = self.inline.as_mut()?;
        let reply = worker.answer(Request { known });
        self.note(&reply);
        Some(Outcome::Reply(reply))
    }

    /// The names to tell a scanner that knows none (a new one starts
    /// empty-handed; those sent a request before know theirs).
    fn known_if_new(&mut self) -> Option<Vec<String>> {
        if std::mem::replace(&mut self.told, true) {
            return None;
        }
        Some(self.known.iter().cloned().collect())
    }

    fn spawn(&self) -> io::Result<Running> {
        let mut command = Command::new(&self.program);
        command
            .arg0("dmg_manager")
            .arg(ARG)
            .arg(&self.packages_dir)
            .arg(&self.datatypes_file)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (sigprocmask, signal, prctl, getppid).
        unsafe { command.pre_exec(die_with_the_manager) };
        let mut child = command.spawn()?;
        let pid = child.id();
        // The Child is dropped without waiting: reap_all() collects its exit.
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("no pipes to the scanner"));
        };
        let stdout = OwnedFd::from(stdout);
        set_nonblocking(&stdout)?;
        Ok(Running {
            pid,
            reaped: false,
            stdin: File::from(OwnedFd::from(stdin)),
            stdout: File::from(stdout),
            buffer: Vec::new(),
        })
    }

    /// The pipe to poll for the scanner's replies.
    pub(crate) fn poll_fd(&self) -> Option<RawFd> {
        self.running.as_ref().map(|running| running.stdout.as_raw_fd())
    }

    /// Reads what the scanner wrote (its pipe polled readable): a reply
    /// when one is complete, `Lost` when the scanner is gone.
    pub(crate) fn read_ready(&mut self) -> Option<Outcome> {
        let running = self.running.as_mut()?;
        let mut chunk = [0u8; 64 * 1024];
        let mut total = 0;
        let mut closed = false;
        while total < MAX_READ_PER_TURN {
            match running.stdout.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    total += n;
                    running.buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        if let Some(end) = running.buffer.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = running.buffer.drain(..=end).collect();
            return Some(match serde_json::from_slice::<Reply>(&line) {
                Ok(reply) => {
                    self.note(&reply);
                    Outcome::Reply(reply)
                }
                Err(error) => {
                    self.kill();
                    Outcome::Lost(format!("the packages scanner's reply cannot be read: {error}"))
                }
            });
        }
        if closed {
            let pid = running.pid;
            self.kill();
            return Some(Outcome::Lost(format!("the packages scanner (pid {pid}) ended")));
        }
        None
    }

    /// Keeps the package names a reply reports, for a new scanner.
    fn note(&mut self, reply: &Reply) {
        let Ok(report) = &reply.scan else { return };
        for change in &report.changes {
            match change {
                PackageChange::Updated { name, .. } => {
                    self.known.insert(name.clone());
                }
                PackageChange::Removed { name } => {
                    self.known.remove(name);
                }
                PackageChange::Files { .. } => {}
            }
        }
    }

    /// SIGKILL to the scanner, without waiting: stuck in the kernel, it
    /// dies when the disk answers (reaped by SIGCHLD meanwhile, or by init
    /// after we exit).
    pub(crate) fn kill(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        if running.reaped {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(running.pid) {
            // SAFETY: kill only sends a signal, to our own child, not
            // reaped yet: the pid cannot be anyone else's.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            self.killed.push(running.pid);
        }
    }
}

/// Between fork and exec: the manager's blocked signals unblocked (the
/// scanner dies on SIGTERM, as systemd's stop wants), and SIGKILL when the
/// manager dies, whatever its death.
fn die_with_the_manager() -> io::Result<()> {
    reset_signals()?;
    // SAFETY: prctl and getppid take plain integers.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The manager died before the prctl: do not outlive it.
        if libc::getppid() == 1 {
            return Err(io::Error::other("the manager is gone"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scanner_that_could_not_be_started_once_is_started_at_a_later_scan() {
        let packages = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/packages");
        let mut scanner = ScannerProcess::new(packages, PathBuf::from("/nonexistent/datatypes.json"));
        scanner.program = PathBuf::from("/nonexistent/dmg_manager");
        let first = scanner.request();
        assert!(first.warning.is_some(), "said");
        assert!(matches!(first.now, Some(Outcome::Reply(_))), "scanned in the loop");
        assert!(scanner.poll_fd().is_none());
        // Still no program: in the loop again, not said again.
        let again = scanner.request();
        assert!(again.warning.is_none());
        assert!(matches!(again.now, Some(Outcome::Reply(_))));
        // A process can be started again (any program will do: it is asked, not heard).
        scanner.program = PathBuf::from("/bin/cat");
        let later = scanner.request();
        assert!(
            !matches!(later.now, Some(Outcome::Reply(_))),
            "asked of a process, not scanned in the loop: {:?}",
            later.now
        );
        scanner.kill();
    }
}
