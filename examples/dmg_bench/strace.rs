//! Counting a process's poll wake-ups with strace(1), when it is installed.
//!
//! A wake-up is a return from a wait that could block: poll or epoll_wait
//! with a timeout other than 0. zmq_poll also makes non-blocking polls
//! (libzmq checks each socket's command pipe with a 0 timeout, and makes
//! a first pass with timeout 0), several per turn; those are counted
//! apart, as calls, since they follow a wake-up and never sleep.
//!
//! strace stops the traced threads at each system call, so this runs in
//! its own window, after the CPU window, never during it.

use super::process::{signal_pid, Process};
use super::procfs;
use super::Failure;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The waiting calls a ZeroMQ program makes: zmq_poll uses poll, the
/// I/O thread epoll_wait; restart_syscall is the poll strace interrupted
/// when it attached.
const WAIT_CALLS: &str = "poll,ppoll,epoll_wait,epoll_pwait,restart_syscall";

/// Per thread name over a window: (wake-ups, wait calls of any timeout).
#[derive(Debug, Clone)]
pub struct WakeUps {
    pub window: Duration,
    pub by_thread: BTreeMap<String, (u64, u64)>,
}

/// What strace found, or why it could not count.
#[derive(Debug, Clone)]
pub enum Outcome {
    Counted(WakeUps),
    Unavailable(String),
}

/// Watches `pid` for `window`.
pub fn count_wake_ups(pid: u32, window: Duration, output: &std::path::Path) -> Result<Outcome, Failure> {
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
        return Ok(Outcome::Unavailable(format!("strace could not attach: {refusal}")));
    }
    let names = thread_names(pid);
    let mut by_thread = BTreeMap::new();
    for (tid, counts) in tally(&file_lines(output)) {
        let name = names.get(&tid).cloned().unwrap_or_else(|| format!("thread {tid}"));
        by_thread.insert(name, counts);
    }
    for name in names.into_values() {
        by_thread.entry(name).or_insert((0, 0));
    }
    Ok(Outcome::Counted(WakeUps { window, by_thread }))
}

fn file_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|text| text.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Per thread id: (returns from blocking waits, returns from any wait).
/// A call strace saw blocked prints `tid poll(..., 1000 <unfinished ...>`
/// then `tid <... poll resumed>) = 0`; the timeout is on the first line.
fn tally(lines: &[String]) -> BTreeMap<u32, (u64, u64)> {
    let mut pending_blocks: BTreeMap<u32, bool> = BTreeMap::new();
    let mut counts: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for line in lines {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(tid) = tid.parse::<u32>() else {
            continue;
        };
        let blocks = if let Some(args) = rest.strip_suffix("<unfinished ...>") {
            pending_blocks.insert(tid, may_block(args));
            continue;
        } else if rest.starts_with("<...") {
            pending_blocks.remove(&tid).unwrap_or(true)
        } else if let Some((call, _result)) = rest.rsplit_once(" = ") {
            may_block(call.trim_end_matches(')'))
        } else {
            continue;
        };
        let entry = counts.entry(tid).or_insert((0, 0));
        entry.0 += u64::from(blocks);
        entry.1 += 1;
    }
    counts
}

/// Whether a wait whose arguments end with its timeout may sleep: the
/// timeout is not 0. restart_syscall (a wait strace interrupted when it
/// attached) shows no timeout and was sleeping.
fn may_block(call_and_args: &str) -> bool {
    let last_argument = call_and_args.trim().rsplit(',').next().unwrap_or("").trim();
    last_argument != "0"
}

/// The label of each thread (`main`, `ZMQbg/IO/0`, `thread 3`...).
fn thread_names(pid: u32) -> BTreeMap<u32, String> {
    let tids = procfs::thread_ids(pid).unwrap_or_default();
    tids.into_iter()
        .map(|tid| (tid, procfs::thread_label(pid, tid).unwrap_or_else(|_| format!("thread {tid}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_waits_with_a_timeout_are_wake_ups() {
        let lines: Vec<String> = [
            "7 restart_syscall(<... resuming interrupted read ...> <unfinished ...>",
            "8 epoll_wait(5,  <unfinished ...>",
            "7 <... restart_syscall resumed>)    = 0",
            "7 poll([{fd=8, events=POLLIN}], 1, 0) = 0 (Timeout)",
            "7 poll([{fd=8, events=POLLIN}, {fd=9, events=POLLIN}], 2, 999) = 0 (Timeout)",
            "7 poll([{fd=8, events=POLLIN}, {fd=9, events=POLLIN}], 2, 1000 <unfinished ...>",
            "7 <... poll resumed>) = 1 ([{fd=9, revents=POLLIN}])",
        ]
        .iter()
        .map(|line| line.to_string())
        .collect();
        let counts = tally(&lines);
        assert_eq!(counts.get(&7), Some(&(3, 4)));
        assert_eq!(counts.get(&8), None, "still blocked: not a return");
    }
}
