//! Running the commands that talk to a manager (`clients`, `watch`,
//! `status`) as a user would: the built binary, a config file, and what it
//! prints. `watch` runs in the background, its lines read with a deadline.

use super::{exit_within, manager_command, send_signal, Lines, TempDir, DEADLINE};
use std::path::Path;
use std::process::{Child, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A standalone config whose three endpoints are ipc:// paths in `dir`, so
/// that the commands reading the same file find the manager.
pub fn ipc_config(dir: &TempDir, packages: &Path, extra_manager_keys: &str) -> String {
    format!(
        "[manager]\nhost = testhost\npackages_dir = {}\nlog_level = debug\n\
         sub_endpoint = @ipc://{d}/sub\npub_endpoint = @ipc://{d}/pub\nrep_endpoint = @ipc://{d}/rep\n{extra_manager_keys}",
        packages.display(),
        d = dir.path().display()
    )
}

/// Runs `dmg_manager --config CONFIG ARGS...` to completion.
pub fn run_command(config: &Path, args: &[&str]) -> Output {
    manager_command(config).args(args).output().unwrap()
}

pub fn stdout_of(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `dmg_manager watch` running in the background.
pub struct Watcher {
    child: Child,
    stdout: Lines,
    /// How many stdout lines the test has read.
    read: usize,
    stderr: Lines,
}

impl Watcher {
    pub fn start(config: &Path, extra_args: &[&str]) -> Watcher {
        let mut child = manager_command(config)
            .arg("watch")
            .args(extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Watcher {
            stdout: Lines::read(child.stdout.take().unwrap()),
            stderr: Lines::read(child.stderr.take().unwrap()),
            child,
            read: 0,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.all().join("\n")
    }

    /// Waits until stderr has a line containing `needle`.
    pub fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        if self
            .stderr
            .find_from(0, deadline, |line| line.contains(needle))
            .is_none()
        {
            panic!("watch never said {needle:?}; stderr:\n{}", self.stderr());
        }
    }

    /// The next stdout line within `within`, if any.
    pub fn try_line(&mut self, within: Duration) -> Option<String> {
        self.next_line(Instant::now() + within, |_| true)
    }

    /// Reads stdout lines until one satisfies `wanted`, within the deadline.
    pub fn line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        match self.next_line(Instant::now() + DEADLINE, wanted) {
            Some(line) => line,
            None => panic!(
                "watch printed no line {what} within {DEADLINE:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout.all().join("\n"),
                self.stderr()
            ),
        }
    }

    /// The first unread stdout line that satisfies `wanted`; the lines
    /// before it are read too.
    fn next_line(&mut self, deadline: Instant, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let (index, line) = self.stdout.find_from(self.read, deadline, wanted)?;
        self.read = index + 1;
        Some(line)
    }

    /// ZeroMQ subscriptions connect asynchronously, and the manager only
    /// publishes on change: `announce` flips plugin `test` between two
    /// statuses until `watch` prints a line about it, which proves the
    /// whole chain (announcer, manager, watch) is connected.
    pub fn prime(&mut self, announce: impl Fn(&str)) {
        let deadline = Instant::now() + DEADLINE;
        let mut flip = false;
        loop {
            assert!(
                Instant::now() < deadline,
                "watch saw no change; stderr:\n{}",
                self.stderr()
            );
            flip = !flip;
            announce(if flip { "starting" } else { "stopped" });
            if let Some(line) = self.try_line(Duration::from_millis(50)) {
                if line.contains("domogik-test.testhost") {
                    return;
                }
            }
        }
    }

    pub fn signal(&self, name: &str) {
        send_signal(self.child.id(), name);
    }

    /// Waits for the process to exit, within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        match exit_within(&mut self.child, within) {
            Some(status) => status,
            None => panic!("watch still running after {within:?}; stderr:\n{}", self.stderr()),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
