//! Child processes (the daemon, the floor server): start, read their
//! stderr, learn their bound endpoints, stop them.

use super::Failure;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a child may take to say it is ready.
const START_DEADLINE: Duration = Duration::from_secs(20);

/// A running child whose stderr lines are collected by a thread (so that
/// a chatty child never blocks on a full pipe).
pub struct Process {
    name: &'static str,
    child: Child,
    /// Kept open: the floor server exits when it sees end of file.
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<Vec<String>>>,
}

/// The three endpoints a server bound, read from its log.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub rep: String,
    /// Where user interfaces subscribe.
    pub publisher: String,
    /// Where plugins publish.
    pub sub: String,
}

impl Process {
    /// Starts `command` with stdin piped, stdout discarded, stderr read.
    pub fn spawn(name: &'static str, command: Command) -> Result<Process, Failure> {
        Process::spawn_reading(name, command, false)
    }

    /// [`Process::spawn`] for a child that reports on stdout (dmg-testbus):
    /// stdout read, stderr discarded.
    pub fn spawn_reading_stdout(name: &'static str, command: Command) -> Result<Process, Failure> {
        Process::spawn_reading(name, command, true)
    }

    fn spawn_reading(name: &'static str, mut command: Command, stdout: bool) -> Result<Process, Failure> {
        let (out, err) = if stdout {
            (Stdio::piped(), Stdio::null())
        } else {
            (Stdio::null(), Stdio::piped())
        };
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the {name}: {e}"))?;
        let read: Box<dyn std::io::Read + Send> = match (child.stdout.take(), child.stderr.take()) {
            (Some(pipe), _) => Box::new(pipe),
            (None, Some(pipe)) => Box::new(pipe),
            (None, None) => return Err(format!("no output pipe from the {name}")),
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(read).lines().map_while(Result::ok) {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                }
            }
        });
        let stdin = child.stdin.take();
        Ok(Process {
            name,
            child,
            stdin,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|lines| lines.clone()).unwrap_or_default()
    }

    fn tail(&self) -> String {
        let log = self.log();
        log[log.len().saturating_sub(10)..].join("\n  ")
    }

    /// Waits until a line contains `needle`, failing if the child exits.
    pub fn wait_for_line(&mut self, needle: &str) -> Result<String, Failure> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(line) = self.log().into_iter().find(|line| line.contains(needle)) {
                return Ok(line);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the {} exited ({status}) before logging {needle:?}; its log:\n  {}",
                    self.name,
                    self.tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the {} did not log {needle:?} within {START_DEADLINE:?}; its log:\n  {}",
                    self.name,
                    self.tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for `ready:` and reads the `<role> socket bound to <endpoint>`
    /// lines both the daemon and the floor server write.
    pub fn wait_ready(&mut self) -> Result<Endpoints, Failure> {
        self.wait_for_line("ready:")?;
        let log = self.log();
        let bound = |role: &str| {
            let prefix = format!("{role} socket bound to ");
            log.iter()
                .find_map(|line| line.split_once(&prefix).map(|(_, rest)| rest.trim().to_owned()))
                .ok_or_else(|| format!("the {} did not log \"{prefix}...\"", self.name))
        };
        Ok(Endpoints {
            rep: bound("rep")?,
            publisher: bound("pub")?,
            sub: bound("sub")?,
        })
    }

    /// Sends a signal with kill(1) (no libc binding in this crate).
    pub fn signal(&self, name: &str) -> Result<(), Failure> {
        signal_pid(self.pid(), name)
    }

    /// Stops the child: SIGTERM for the daemon (whose exit code is
    /// checked), end of stdin for the floor server. Returns how long the
    /// exit took.
    pub fn stop(&mut self, with_sigterm: bool) -> Result<Duration, Failure> {
        let start = Instant::now();
        if with_sigterm {
            self.signal("TERM")?;
        }
        drop(self.stdin.take());
        let status = self.wait_exit()?;
        if status.success() {
            Ok(start.elapsed())
        } else {
            Err(format!(
                "the {} exited with {status}; its log:\n  {}",
                self.name,
                self.tail()
            ))
        }
    }

    /// Waits at most 5 s for the child to exit, whatever its exit code.
    pub fn wait_exit(&mut self) -> Result<ExitStatus, Failure> {
        let start = Instant::now();
        drop(self.stdin.take());
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Ok(status),
                Ok(None) if start.elapsed() > Duration::from_secs(5) => {
                    return Err(format!("the {} did not stop within 5 s", self.name))
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => return Err(format!("cannot wait for the {}: {e}", self.name)),
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub fn signal_pid(pid: u32, name: &str) -> Result<(), Failure> {
    let signal = match name {
        "TERM" => libc::SIGTERM,
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "KILL" => libc::SIGKILL,
        other => return Err(format!("unknown signal {other}")),
    };
    let pid = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    // kill(2), not the kill command: procps may be missing.
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(format!("kill -{name} {pid}: {}", std::io::Error::last_os_error()))
    }
}
