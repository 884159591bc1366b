//! Running the commands that talk to a manager (`clients`, `watch`,
//! `status`) as a user would: the built binary, a config file, and what it
//! prints. `watch` runs in the background, its lines read with a deadline.

use super::{TempDir, BIN, DEADLINE};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
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
    Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
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
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Watcher {
    pub fn start(config: &Path, extra_args: &[&str]) -> Watcher {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("watch")
            .args(extra_args)
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_copy = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stderr_pipe.read(&mut buffer) {
                stderr_copy
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Watcher {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + DEADLINE;
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "watch never said {needle:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The next stdout line within `within`, if any.
    pub fn try_line(&mut self, within: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(within).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Reads stdout lines until one satisfies `wanted`, within the deadline.
    pub fn line(&mut self, what: &str, wanted: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            if let Some(line) = self.try_line(Duration::from_millis(50)) {
                if wanted(&line) {
                    return line;
                }
            }
        }
        panic!(
            "watch printed no line {what} within {DEADLINE:?}; stdout:\n{}\nstderr:\n{}",
            self.seen.join("\n"),
            self.stderr()
        );
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
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits for the process to exit, within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "watch still running after {within:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
