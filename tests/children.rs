//! Plugin processes (PROTOCOL.md §9): the manager starts fake plugins
//! (tests/fixtures/plugins/fake_plugin.py), sees at once when one exits,
//! kills one that does not stop, and leaves no zombie and no stray process.

use crate::util::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FAKE_PLUGIN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/plugins/fake_plugin.py");

/// The real interpreter behind `python3` (not a wrapper script such as
/// pyenv's shim), so that the pid the manager sees is Python's.
pub(crate) fn python() -> String {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs (the README and .ci/run install it)");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `PYTHONPATH` for a fake plugin that imports zmq: `base` (may be empty)
/// plus pip's copy of pyzmq when `python3` has none of its own.
fn pythonpath_with_pyzmq(base: &str) -> String {
    let pyzmq = crate::interop::pyzmq_path().map(|path| path.display().to_string());
    [Some(base.to_owned()), pyzmq]
        .into_iter()
        .flatten()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(":")
}

/// Adds package `name` whose bin/<name>.py is the fake plugin doing `behaviour`.
fn add_plugin(packages: &Path, name: &str, behaviour: &str) -> PathBuf {
    let folder = packages.join(format!("plugin_{name}"));
    std::fs::create_dir_all(folder.join("bin")).unwrap();
    let info = serde_json::json!({"json_version": 2, "identity": {"type": "plugin", "name": name}});
    std::fs::write(folder.join("info.json"), info.to_string()).unwrap();
    std::fs::copy(FAKE_PLUGIN, folder.join(format!("bin/{name}.py"))).unwrap();
    std::fs::write(folder.join("behaviour"), behaviour).unwrap();
    std::fs::write(folder.join("host"), "testhost").unwrap();
    folder
}

/// A manager on the fixtures plus fake plugins `(name, behaviour)`, with a
/// kill delay of 1 s.
fn start(label: &str, plugins: &[(&str, &str)], extra: &str) -> (TempDir, PathBuf, Daemon) {
    let dir = TempDir::new(label);
    let packages = copy_fixtures(&dir);
    for (name, behaviour) in plugins {
        add_plugin(&packages, name, behaviour);
    }
    let keys = format!(
        "python = {}\npythonpath = {}\nkill_delay = 1\n{extra}",
        python(),
        pythonpath_with_pyzmq("/opt/dmg/domogik")
    );
    let daemon = Daemon::start(&dir, &standalone_config(&packages, &keys));
    (dir, packages, daemon)
}

fn start_request(daemon: &Daemon, name: &str) -> Value {
    let body = serde_json::json!({"type": "plugin", "name": name, "host": "testhost"}).to_string();
    let reply = daemon.request(&[b"plugin.start.do", body.as_bytes()]);
    assert_eq!(reply[0], b"plugin.start.result", "{reply:?}");
    body_of(&reply[1])
}

/// Starts plugin `name` by request; returns its pid as the manager logged it.
fn start_plugin(daemon: &mut Daemon, name: &str) -> u32 {
    let before = daemon.log().len();
    let result = start_request(daemon, name);
    assert_eq!(result["status"], true, "{result}");
    let line = daemon.wait_for_new_log(&format!("started plugin {name}: pid "), before);
    pid_in(&line, "pid ")
}

pub(crate) fn pid_in(line: &str, after: &str) -> u32 {
    let rest = line.split_once(after).unwrap().1;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// What the fake plugin recorded about itself, once it did.
fn facts(packages: &Path, name: &str) -> Value {
    let path = packages.join(format!("plugin_{name}/facts.json"));
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return serde_json::from_str(&text).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "plugin {name} never wrote {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn detail(daemon: &Daemon, name: &str, status: &str) -> Value {
    daemon.await_client(
        "clients.detail.get",
        &format!("domogik-{name}.testhost"),
        &format!("became {status}"),
        |entry| entry["status"] == status,
    )
}

/// `(pid, state, process group)` of every process whose parent is `parent`, from /proc.
pub(crate) fn children_of(parent: u32) -> Vec<(u32, char, u32)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((ppid, state, pgrp)) = stat(pid) {
            if ppid == parent {
                found.push((pid, state, pgrp));
            }
        }
    }
    found
}

/// `(parent, state, process group)` of `pid`, or `None` once it is gone.
pub(crate) fn stat(pid: u32) -> Option<(u32, char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
    let after = text.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((ppid, state, pgrp))
}

fn processes_in_group(group: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|&pid| stat(pid).is_some_and(|(_, state, pgrp)| pgrp == group && state != 'Z'))
        .count()
}

pub(crate) fn assert_no_zombie(daemon: &Daemon) {
    let zombies: Vec<_> = children_of(daemon.pid())
        .into_iter()
        .filter(|(_, state, _)| *state == 'Z')
        .collect();
    assert!(zombies.is_empty(), "zombie children of the manager: {zombies:?}");
}

pub(crate) fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILL to a process group when dropped: a failing test leaves no plugin behind.
pub(crate) struct KillGroup(pub(crate) u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if let Ok(group) = libc::pid_t::try_from(self.0) {
            // SAFETY: kill(2) takes plain integers; a group already gone is ESRCH.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    }
}

/// Announces `status` for plugin `name` (as the plugin would) until the
/// manager shows it.
fn announce(daemon: &Daemon, name: &str, status: &str) {
    let plugin = daemon.plugin_publisher();
    let id = format!("domogik-{name}.testhost");
    let deadline = Instant::now() + DEADLINE;
    loop {
        plugin
            .send_multipart(later_status(name, "testhost", status), 0)
            .unwrap();
        if daemon.clients("clients.list.get")[&id]["status"] == status {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never showed {status}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_plugin_started_by_request_runs_without_a_shell_and_its_crash_is_seen_with_its_status() {
    let (_dir, packages, mut daemon) = start("child-crash", &[("crashy", "crash")], "");
    let pid = start_plugin(&mut daemon, "crashy");
    let _guard = KillGroup(pid);
    let facts = facts(&packages, "crashy");
    assert_eq!(
        facts["pid"], pid,
        "the pid the manager knows is the plugin's own, no shell between"
    );
    assert_eq!(facts["pgid"], pid, "its own process group");
    let script = packages.join("plugin_crashy/bin/crashy.py");
    assert_eq!(
        facts["argv"],
        serde_json::json!([script.to_str().unwrap(), "-f"]),
        "in the foreground (-f), no -m"
    );
    assert_eq!(facts["notice"], "THIS_PLUGIN_IS_STARTED_BY_THE_MANAGER");
    assert_eq!(facts["pythonpath"], pythonpath_with_pyzmq("/opt/dmg/domogik").as_str());
    assert_eq!(facts["stdin_is_null"], true);
    assert_eq!(
        facts["signals_blocked"], "0000000000000000",
        "the manager's signal mask is not inherited"
    );

    let entry = detail(&daemon, "crashy", "dead");
    assert_eq!(entry["comment"], "exit status 3");
    daemon.wait_for_log("plugin crashy (pid");
    daemon.wait_for_log("plugin crashy stderr: Traceback (most recent call last): pretend");
    assert_no_zombie(&daemon);
}

#[test]
fn refusals_say_why_and_a_plugin_killed_by_hand_is_dead_at_once() {
    let (_dir, packages, mut daemon) = start("child-refuse", &[("sleeper", "sleep")], "");
    std::fs::remove_file(packages.join("plugin_diskfree/info.json")).unwrap();
    std::fs::write(packages.join("plugin_diskfree/info.json"), "{").unwrap();
    daemon.signal("HUP");
    detail(&daemon, "diskfree", "invalid");

    let pid = start_plugin(&mut daemon, "sleeper");
    let _guard = KillGroup(pid);
    facts(&packages, "sleeper");
    let refusals = [
        ("sleeper", "already running"),
        ("nosuch", "no plugin nosuch"),
        ("diskfree", "invalid"),
        ("rfxcom", "plugin_rfxcom/bin/rfxcom.py is missing"),
    ];
    for (name, reason) in refusals {
        let result = start_request(&daemon, name);
        assert_eq!(result["status"], false, "{result}");
        assert!(result["reason"].as_str().unwrap().contains(reason), "{result}");
    }
    let body = br#"{"type": "plugin", "name": "sleeper", "host": "otherhost"}"#;
    let reply = daemon.request(&[b"plugin.start.do", body]);
    assert!(body_of(&reply[1])["reason"]
        .as_str()
        .unwrap()
        .contains("on host otherhost"));

    let killed = Instant::now();
    send_signal(pid, "KILL");
    let entry = detail(&daemon, "sleeper", "dead");
    // Learned from SIGCHLD, not from a 30 s heartbeat timeout.
    assert!(killed.elapsed() < Duration::from_secs(5), "{:?}", killed.elapsed());
    assert_eq!(entry["comment"], "killed by signal 9 (SIGKILL)");
    assert_no_zombie(&daemon);
    assert_eq!(
        start_request(&daemon, "sleeper")["status"],
        true,
        "a dead plugin can be started again"
    );
}

#[test]
fn stop_request_then_exit_is_stopped() {
    let (_dir, packages, mut daemon) = start("child-stop", &[("obedient", "obey")], "");
    let pid = start_plugin(&mut daemon, "obedient");
    let _guard = KillGroup(pid);
    facts(&packages, "obedient");
    announce(&daemon, "obedient", "stop-request");
    send_signal(pid, "USR1");
    let entry = detail(&daemon, "obedient", "stopped");
    assert_eq!(entry["comment"], "exited after stop-request: exit status 0");
    assert_no_zombie(&daemon);
}

#[test]
fn stop_request_then_hang_is_killed_after_the_delay() {
    let (_dir, packages, mut daemon) = start("child-hang", &[("stubborn", "hang")], "");
    let pid = start_plugin(&mut daemon, "stubborn");
    let _guard = KillGroup(pid);
    facts(&packages, "stubborn");
    announce(&daemon, "stubborn", "stop-request");
    daemon.wait_for_log("plugin stubborn (pid");
    let line = daemon.wait_for_log("after stop-request: SIGKILL to pids ");
    assert!(line.contains(&pid.to_string()), "{line}");
    let entry = detail(&daemon, "stubborn", "stopped");
    assert_eq!(
        entry["comment"],
        "did not exit within 1 s of stop-request: killed by signal 9 (SIGKILL)"
    );
    assert_no_zombie(&daemon);
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_flooding_plugin_takes_neither_the_managers_memory_nor_its_log() {
    let (_dir, packages, mut daemon) = start("child-flood", &[("noisy", "flood")], "");
    let pid = start_plugin(&mut daemon, "noisy");
    let _guard = KillGroup(pid);
    facts(&packages, "noisy");
    daemon.wait_for_log("plugin noisy stdout: xxxx");
    // While it floods, requests are answered as ever.
    let client = daemon.req_socket();
    for _ in 0..50 {
        let reply = request_on(&client, &[b"clients.list.get", b"{}"]);
        assert_eq!(reply[0], b"clients.list.result");
    }
    // It has written megabytes by now: its pipe is full whenever we look.
    wait_until("the flood filling its pipe", || {
        std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("pipe"))
    });
    assert!(
        rss_kib(daemon.pid()) < 64 * 1024,
        "manager RSS {} KiB",
        rss_kib(daemon.pid())
    );
    send_signal(pid, "KILL");
    detail(&daemon, "noisy", "dead");
    daemon.wait_for_log("plugin noisy's last 10 lines before it died:");
    let lines = daemon
        .log()
        .iter()
        .filter(|line| line.contains("plugin noisy std"))
        .count();
    // 20 lines per 10 s window (this test lasts one or two), and the last 10.
    assert!(lines <= 2 * 20 + 10, "{lines} log lines of the plugin's output");
    let longest = daemon.log().iter().map(String::len).max().unwrap();
    assert!(longest < 1200, "a log line of {longest} bytes");
    assert_no_zombie(&daemon);
}

#[test]
fn a_forking_plugin_leaves_nothing_behind_when_it_dies() {
    let (_dir, packages, mut daemon) = start("child-forks", &[("forker", "forks")], "");
    let pid = start_plugin(&mut daemon, "forker");
    let _guard = KillGroup(pid);
    facts(&packages, "forker");
    wait_until("31 processes in the plugin's group", || processes_in_group(pid) == 31);
    send_signal(pid, "KILL");
    detail(&daemon, "forker", "dead");
    // The manager terminated the rest of its process group.
    wait_until("the plugin's group empty", || processes_in_group(pid) == 0);
    assert_no_zombie(&daemon);
    // Its only child left is its packages scanner (src/scanner_process.rs).
    let left: Vec<_> = children_of(daemon.pid())
        .into_iter()
        .filter(|(pid, _, _)| !is_packages_scanner(*pid))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Whether `pid` is a manager's packages scanner (`dmg_manager --packages-scanner ...`).
fn is_packages_scanner(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline.split(|&b| b == 0).nth(1) == Some(b"--packages-scanner"))
}

#[test]
fn sigterm_of_the_manager_stops_its_plugins_then_kills_the_stubborn_ones() {
    let (_dir, packages, mut daemon) = start("child-sigterm", &[("sleeper", "sleep"), ("stubborn", "hang")], "");
    let sleeper = start_plugin(&mut daemon, "sleeper");
    let stubborn = start_plugin(&mut daemon, "stubborn");
    let (_a, _b) = (KillGroup(sleeper), KillGroup(stubborn));
    facts(&packages, "sleeper");
    facts(&packages, "stubborn");
    assert_eq!(daemon.stop().code(), Some(0));
    let log = daemon.log().join("\n");
    assert!(
        log.contains(&format!("stopping plugin sleeper (pid {sleeper}): SIGTERM")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "plugin sleeper (pid {sleeper}) is stopped: exited after stop-request: killed by signal 15 (SIGTERM)"
        )),
        "{log}"
    );
    assert!(
        log.contains("plugin stubborn (pid") && log.contains("did not stop with the manager: SIGKILL"),
        "{log}"
    );
    // Both were reaped by the manager before it exited: not even a zombie is left.
    assert!(stat(sleeper).is_none() && stat(stubborn).is_none());
}

#[test]
fn the_restart_policy_starts_a_crashing_plugin_again_with_growing_waits() {
    let (_dir, _packages, mut daemon) = start("child-restart", &[("crashy", "crash")], "restart = crashy\n");
    start_plugin(&mut daemon, "crashy");
    let first = daemon.wait_for_log("restarting it in 1 s");
    assert!(first.contains("is dead: exit status 3"), "{first}");
    let restarted = daemon.log().len();
    daemon.wait_for_new_log("started plugin crashy: pid", restarted);
    daemon.wait_for_log("restarting it in 2 s");
    assert_no_zombie(&daemon);
}

#[test]
fn a_plugin_on_the_bus_goes_alive_and_is_dead_at_once_when_killed() {
    let (_dir, packages, mut daemon) = start("child-bus", &[("busy", "bus")], "");
    std::fs::write(packages.join("sub_endpoint"), daemon.sub.as_deref().unwrap()).unwrap();
    let pid = start_plugin(&mut daemon, "busy");
    let _guard = KillGroup(pid);
    detail(&daemon, "busy", "alive");
    send_signal(pid, "KILL");
    assert_eq!(
        detail(&daemon, "busy", "dead")["comment"],
        "killed by signal 9 (SIGKILL)"
    );
    assert_no_zombie(&daemon);
}

#[test]
fn a_plugin_that_closes_its_output_is_still_watched() {
    let (_dir, packages, mut daemon) = start("child-closer", &[("closer", "closer")], "");
    let pid = start_plugin(&mut daemon, "closer");
    let _guard = KillGroup(pid);
    facts(&packages, "closer");
    // A closed pipe polls as POLLHUP: unread, it would wake the loop for ever.
    daemon.wait_for_log("plugin closer closed its stdout");
    daemon.wait_for_log("plugin closer closed its stderr");
    assert_eq!(start_request(&daemon, "closer")["status"], false, "still running");
    send_signal(pid, "TERM");
    assert_eq!(
        detail(&daemon, "closer", "dead")["comment"],
        "killed by signal 15 (SIGTERM)"
    );
    assert_no_zombie(&daemon);
}

#[test]
fn dmg_manager_start_starts_a_plugin_or_says_why_not() {
    use crate::util::commands::{ipc_config, run_command, stderr_of, stdout_of};
    let dir = TempDir::new("child-cli");
    let packages = copy_fixtures(&dir);
    add_plugin(&packages, "sleeper", "sleep");
    let keys = format!("python = {}\nkill_delay = 1\n", python());
    let mut daemon = Daemon::start(&dir, &ipc_config(&dir, &packages, &keys));
    let config = dir.join("manager.cfg");

    let output = run_command(&config, &["start", "sleeper"]);
    assert!(output.status.success(), "{}", stderr_of(&output));
    assert_eq!(stdout_of(&output), "started plugin sleeper on testhost\n");
    let line = daemon.wait_for_log("started plugin sleeper: pid ");
    let _guard = KillGroup(pid_in(&line, "pid "));
    detail(&daemon, "sleeper", "starting");

    for (name, reason) in [
        (
            "sleeper",
            "plugin sleeper not started: plugin sleeper is already running",
        ),
        (
            "nosuch",
            "plugin nosuch not started: no plugin nosuch is installed on testhost",
        ),
    ] {
        let output = run_command(&config, &["start", name]);
        assert_eq!(output.status.code(), Some(1), "{name}");
        assert!(stderr_of(&output).contains(reason), "{}", stderr_of(&output));
    }
}

/// One MDP client request with `body` through the broker; the reply body.
fn through_broker(daemon: &Daemon, broker: &TestBroker, action: &str, body: &str) -> Value {
    let socket = daemon.context().socket(zmq::REQ).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_rcvtimeo(DEADLINE.as_millis() as i32).unwrap();
    socket.connect(&broker.endpoint).unwrap();
    let reply = request_on(&socket, &[b"MDPC01", b"manager", action.as_bytes(), body.as_bytes()]);
    assert_eq!(reply.len(), 4, "{reply:?}");
    body_of(&reply[3])
}

#[test]
fn through_the_broker_a_user_interface_starts_a_plugin_sees_it_alive_then_dead_with_why() {
    let broker = TestBroker::start(None);
    let forwarder = Forwarder::start(None);
    let dir = TempDir::new("child-broker");
    let packages = copy_fixtures(&dir);
    add_plugin(&packages, "busy", "bus");
    std::fs::write(packages.join("sub_endpoint"), &forwarder.xsub).unwrap();
    let config = format!(
        "{}python = {}\npythonpath = {}\nkill_delay = 1\n",
        bus_config(&broker, &forwarder, &packages),
        python(),
        pythonpath_with_pyzmq("")
    );
    let daemon = Daemon::start_with(&dir, &config, fast_heartbeat_command);
    await_broker_clients(daemon.context(), &broker, "clients.list.get");

    let body = r#"{"type": "plugin", "name": "busy", "host": "testhost"}"#;
    let result = through_broker(&daemon, &broker, "plugin.start.do", body);
    assert_eq!(result["status"], true, "{result}");
    let pid = facts(&packages, "busy")["pid"].as_u64().unwrap() as u32;
    let _guard = KillGroup(pid);
    let entry =
        |daemon: &Daemon| through_broker(daemon, &broker, "client.detail.get", "{}")["plugin-busy.testhost"].clone();
    let deadline = Instant::now() + DEADLINE;
    while entry(&daemon)["status"] != "alive" {
        assert!(Instant::now() < deadline, "never alive: {}", entry(&daemon));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(entry(&daemon)["pid"], pid, "the 0.5 entry's pid is the plugin's own");

    send_signal(pid, "KILL");
    while entry(&daemon)["status"] != "dead" {
        assert!(Instant::now() < deadline, "never dead: {}", entry(&daemon));
        std::thread::sleep(Duration::from_millis(20));
    }
    let dead = entry(&daemon);
    assert_eq!(dead["comment"], "killed by signal 9 (SIGKILL)");
    assert_eq!(dead["pid"], 0);
    assert_no_zombie(&daemon);
}
