//! Counting a process's poll wake-ups with strace(1), when it is installed:
//! each return from poll/ppoll/epoll_wait is one wake-up of a thread.
//!
//! strace stops the traced threads at each system call, so this runs in
//! its own window, after the CPU window, never during it.

use super::process::{signal_pid, Process};
use super::Failure;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The waiting calls a ZeroMQ program makes: zmq_poll uses poll, the
/// I/O thread epoll_wait; restart_syscall is the poll strace interrupted
/// when it attached.
const WAIT_CALLS: &str = "poll,ppoll,epoll_wait,epoll_pwait,restart_syscall";

/// Wake-ups per thread name over a window.
#[derive(Debug, Clone)]
pub struct WakeUps {
    pub window: Duration,
    pub by_thread: BTreeMap<String, u64>,
}

/// What strace found, or why it could not count.
#[derive(Debug, Clone)]
pub enum Outcome {
    Counted(WakeUps),
    Unavailable(String),
}

/// Watches `pid` for `window`.
pub fn count_wake_ups(
    pid: u32,
    window: Duration,
    output: &std::path::Path,
) -> Result<Outcome, Failure> {
    if Command::new("strace").arg("-V").output().is_err() {
        return Ok(Outcome::Unavailable("strace is not installed".into()));
    }
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e", &format!("trace={WAIT_CALLS}"), "-o"])
        .arg(output)
        .args(["-p", &pid.to_string()]);
    let mut tracer = Process::spawn("strace", command)?;
    std::thread::sleep(window);
    signal_pid(tracer.pid(), "INT")?;
    // strace's exit code after SIGINT says nothing; its output does.
    tracer.wait_exit()?;
    if let Some(refusal) = tracer.log().iter().find(|line| line.contains("attach")) {
        return Ok(Outcome::Unavailable(format!(
            "strace could not attach: {refusal}"
        )));
    }
    let names = thread_names(pid);
    let mut by_thread = BTreeMap::new();
    for line in &file_lines(output) {
        if let Some(tid) = returned_call(line) {
            let name = names
                .get(&tid)
                .cloned()
                .unwrap_or_else(|| format!("thread {tid}"));
            *by_thread.entry(name).or_insert(0) += 1;
        }
    }
    for name in names.into_values() {
        by_thread.entry(name).or_insert(0);
    }
    Ok(Outcome::Counted(WakeUps { window, by_thread }))
}

fn file_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The thread id of a line reporting that a call returned, e.g.
/// `123 <... poll resumed>) = 0 (Timeout)` or `123 poll([...], 3, 0) = 1`.
fn returned_call(line: &str) -> Option<u32> {
    let (tid, rest) = line.split_once(' ')?;
    if rest.contains("<unfinished ...>") || !rest.contains(" = ") {
        return None;
    }
    tid.parse().ok()
}

fn thread_names(pid: u32) -> BTreeMap<u32, String> {
    let mut names = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return names;
    };
    for entry in entries.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let role = if tid == pid { "main" } else { comm.trim() };
        names.insert(tid, role.to_owned());
    }
    names
}
