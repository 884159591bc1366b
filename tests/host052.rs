//! A drop-in on a Domogik 0.5.2 host (issue 20, PROTOCOL.md §10): plugins,
//! interfaces and core components that behave as 0.5.2's do
//! (tests/fixtures/plugins/domogik052.py: in the background unless `-f`,
//! unknown flags refused, exit 2 when another instance runs, a
//! stop-request ignored), started as our children in the foreground,
//! found when already running, killed after a stop-request; brains as data.

use crate::children::{python, stat, wait_until, KillGroup};
use crate::util::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/plugins/domogik052.py");

/// A host's folders: packages, Domogik's bin dir, and where the fakes write.
struct Host {
    dir: TempDir,
    packages: PathBuf,
    bin: PathBuf,
    state: PathBuf,
}

impl Host {
    fn new(label: &str) -> Host {
        let dir = TempDir::new(label);
        let packages = dir.join("packages");
        let bin = dir.join("domogik/bin");
        let state = dir.join("state");
        for folder in [&packages, &bin, &state] {
            std::fs::create_dir_all(folder).unwrap();
        }
        std::fs::write(bin.join("state_dir"), state.to_str().unwrap()).unwrap();
        std::fs::write(state.join("host"), "testhost").unwrap();
        Host {
            dir,
            packages,
            bin,
            state,
        }
    }

    /// Package `<kind>_<name>` (plugin, interface) running the fake.
    fn add(&self, kind: &str, name: &str) -> PathBuf {
        let folder = self.packages.join(format!("{kind}_{name}"));
        std::fs::create_dir_all(folder.join("bin")).unwrap();
        let info = json!({"json_version": 2, "identity": {"type": kind, "name": name}});
        std::fs::write(folder.join("info.json"), info.to_string()).unwrap();
        std::fs::write(folder.join("state_dir"), self.state.to_str().unwrap()).unwrap();
        let script = folder.join(format!("bin/{name}.py"));
        std::fs::copy(FAKE, &script).unwrap();
        script
    }

    /// Core component `name` in Domogik's bin dir.
    fn add_core(&self, name: &str) -> PathBuf {
        let script = self.bin.join(format!("{name}.py"));
        std::fs::copy(FAKE, &script).unwrap();
        std::fs::write(self.state.join(format!("type-{name}")), "core").unwrap();
        script
    }

    /// A manager on this host, standalone, with `extra` keys and `args` after `run`.
    fn manager(&self, extra: &str, args: &[&str]) -> Daemon {
        let keys = format!(
            "python = {}\nkill_delay = 1\nrescan_interval = 1\ncore_bin_dir = {}\n{extra}",
            python(),
            self.bin.display()
        );
        let config = standalone_config(&self.packages, &keys);
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        Daemon::start_with(&self.dir, &config, move |path| {
            let mut command = manager_command(path);
            if !args.is_empty() {
                command.arg("run").args(&args);
            }
            command
        })
    }

    /// What client `name` wrote about itself, once it has, and newer than `not`.
    fn facts(&self, name: &str, not: Option<u32>) -> Value {
        let path = self.state.join(format!("{name}.json"));
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                let facts: Value = serde_json::from_str(&text).unwrap();
                if not.is_none_or(|old| facts["watcher"] != old) {
                    return facts;
                }
            }
            assert!(Instant::now() < deadline, "{name} never wrote {}", path.display());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn pid_of(facts: &Value, which: &str) -> u32 {
    facts[which].as_u64().unwrap() as u32
}

fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state, _)| state != 'Z')
}

/// A 0.5 map (`client.list.get`, `client.detail.get`): no wrapper.
fn v05(daemon: &Daemon, action: &str) -> Value {
    let reply = daemon.request(&[action.as_bytes(), b"{}"]);
    assert_eq!(reply.len(), 2, "{reply:?}");
    body_of(&reply[1])
}

/// The 0.5 entry of `id` once `wanted` holds.
fn v05_entry(daemon: &Daemon, action: &str, id: &str, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let entry = v05(daemon, action)[id].clone();
        if wanted(&entry) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never {what} within {DEADLINE:?}: {entry}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start_request(daemon: &Daemon, kind: &str, name: &str) -> Value {
    let body = json!({"type": kind, "name": name, "host": "testhost"}).to_string();
    let reply = daemon.request(&[b"plugin.start.do", body.as_bytes()]);
    assert_eq!(reply[0], b"plugin.start.result", "{reply:?}");
    body_of(&reply[1])
}

/// Announces `event` for client `kind`/`name` as it would, until shown.
fn announce(daemon: &Daemon, kind: &str, name: &str, event: &str) {
    let plugin = daemon.plugin_publisher();
    let id = format!("{kind}-{name}.testhost");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let body = json!({"type": kind, "name": name, "host": "testhost", "event": event}).to_string();
        plugin
            .send_multipart([b"plugin.status.1_2.0_1".to_vec(), body.into_bytes()], 0)
            .unwrap();
        if v05(daemon, "client.list.get")[&id]["status"] == event {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never showed {event}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILL to each pid when dropped: a failing test leaves nothing behind.
struct KillPids(Vec<u32>);

impl Drop for KillPids {
    fn drop(&mut self) {
        for pid in &self.0 {
            if let Ok(pid) = libc::pid_t::try_from(*pid) {
                // SAFETY: kill(2) takes plain integers; a pid gone is ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Runs `script` by hand as a user would (no -f: it puts itself in the
/// background); its facts once it runs.
fn run_by_hand(host: &Host, script: &Path, name: &str) -> (Value, KillPids) {
    let status = Command::new(python()).arg(script).status().unwrap();
    assert!(
        status.success(),
        "the fake goes to the background and its first process exits 0"
    );
    let facts = host.facts(name, None);
    let guard = KillPids(vec![pid_of(&facts, "watcher"), pid_of(&facts, "client")]);
    (facts, guard)
}

#[test]
fn a_plugin_runs_in_the_foreground_as_our_child_and_its_own_pid_is_listed() {
    let host = Host::new("h052-foreground");
    let script = host.add("plugin", "fivea");
    let mut daemon = host.manager("", &[]);
    assert_eq!(start_request(&daemon, "plugin", "fivea")["status"], true);
    let facts = host.facts("fivea", None);
    let watcher = pid_of(&facts, "watcher");
    let _guard = KillGroup(watcher);
    assert_eq!(facts["argv"], json!([script.to_str().unwrap(), "-f"]), "-f, and no -m");
    assert_eq!(facts["foreground"], true);
    assert_eq!(facts["notice"], "THIS_PLUGIN_IS_STARTED_BY_THE_MANAGER");
    assert_eq!(
        stat(watcher).map(|(parent, _, _)| parent),
        Some(daemon.pid()),
        "the plugin is our child"
    );
    let entry = v05_entry(
        &daemon,
        "client.list.get",
        "plugin-fivea.testhost",
        "listed with its pid",
        |entry| entry["pid"] == watcher,
    );
    assert_eq!(
        entry["status"], "starting",
        "not dead: it did not leave for the background"
    );
    daemon.wait_for_log(&format!("started plugin fivea: pid {watcher}"));
}

#[test]
fn extra_plugin_arguments_come_from_the_config_and_a_plugin_refusing_them_is_dead_with_why() {
    let host = Host::new("h052-args");
    host.add("plugin", "fiveb");
    let mut daemon = host.manager("plugin_args = -m\n", &[]);
    assert_eq!(start_request(&daemon, "plugin", "fiveb")["status"], true);
    let entry = v05_entry(&daemon, "client.detail.get", "plugin-fiveb.testhost", "dead", |entry| {
        entry["status"] == "dead"
    });
    assert_eq!(entry["comment"], "exit status 2");
    daemon.wait_for_log("plugin fiveb stderr: fiveb.py: error: unrecognized arguments: -m");
}

#[test]
fn a_plugin_already_running_is_found_listed_and_not_started_twice() {
    let host = Host::new("h052-found");
    let script = host.add("plugin", "fivec");
    let (facts, _guard) = run_by_hand(&host, &script, "fivec");
    let watcher = pid_of(&facts, "watcher");
    let daemon = host.manager("", &[]);
    v05_entry(
        &daemon,
        "client.list.get",
        "plugin-fivec.testhost",
        "listed with the pid found",
        |entry| entry["pid"] == watcher,
    );
    let refused = start_request(&daemon, "plugin", "fivec");
    assert_eq!(refused["status"], false, "{refused}");
    let reason = refused["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("already running (pid {watcher})")), "{reason}");
    assert!(alive(watcher) && alive(pid_of(&facts, "client")), "nothing was killed");
}

#[test]
fn after_a_stop_request_every_process_of_the_plugin_is_killed_then_it_starts_again() {
    let host = Host::new("h052-stop");
    let script = host.add("plugin", "fived");
    let (facts, _guard) = run_by_hand(&host, &script, "fived");
    let (watcher, client) = (pid_of(&facts, "watcher"), pid_of(&facts, "client"));
    let mut daemon = host.manager("", &[]);
    v05_entry(&daemon, "client.list.get", "plugin-fived.testhost", "found", |entry| {
        entry["pid"] == watcher
    });
    // As 0.5.2's plugins do on plugin.stop.do: they say so, and stay.
    announce(&daemon, "plugin", "fived", "stop-request");
    announce(&daemon, "plugin", "fived", "stopped");
    wait_until("both processes of the plugin killed", || {
        !alive(watcher) && !alive(client)
    });
    let line = daemon.wait_for_log("plugin fived still runs");
    assert!(
        line.contains(&watcher.to_string()) && line.contains(&client.to_string()),
        "{line}"
    );

    // Start works again: the plugin does not find itself running.
    assert_eq!(start_request(&daemon, "plugin", "fived")["status"], true);
    let again = host.facts("fived", Some(watcher));
    let new_watcher = pid_of(&again, "watcher");
    let _guard2 = KillGroup(new_watcher);
    assert_eq!(again["foreground"], true);
    v05_entry(
        &daemon,
        "client.list.get",
        "plugin-fived.testhost",
        "started again",
        |entry| entry["pid"] == new_watcher && entry["status"] == "starting",
    );

    // Ours too, the same way: stop-request, then both killed, stopped.
    let before = daemon.log().len();
    announce(&daemon, "plugin", "fived", "stop-request");
    let new_client = pid_of(&again, "client");
    wait_until("both processes of our child killed", || {
        !alive(new_watcher) && !alive(new_client)
    });
    let line = daemon.wait_for_new_log("plugin fived still runs", before);
    assert!(
        line.contains(&format!(
            "SIGKILL to pids {}, {}",
            new_watcher.min(new_client),
            new_watcher.max(new_client)
        )),
        "both named: {line}"
    );
    let entry = v05_entry(
        &daemon,
        "client.detail.get",
        "plugin-fived.testhost",
        "stopped",
        |entry| entry["status"] == "stopped",
    );
    assert_eq!(entry["pid"], 0);
}

#[test]
fn a_plugin_killed_with_9_is_dead_at_once_and_leaves_nothing() {
    let host = Host::new("h052-kill9");
    host.add("plugin", "fivee");
    let daemon = host.manager("", &[]);
    assert_eq!(start_request(&daemon, "plugin", "fivee")["status"], true);
    let facts = host.facts("fivee", None);
    let (watcher, client) = (pid_of(&facts, "watcher"), pid_of(&facts, "client"));
    let _guard = KillGroup(watcher);
    let killed = Instant::now();
    send_signal(watcher, "KILL");
    let entry = v05_entry(&daemon, "client.detail.get", "plugin-fivee.testhost", "dead", |entry| {
        entry["status"] == "dead"
    });
    // From SIGCHLD, not from the 30 s rule.
    assert!(killed.elapsed() < Duration::from_secs(5), "{:?}", killed.elapsed());
    assert_eq!(entry["comment"], "killed by signal 9 (SIGKILL)");
    wait_until("the plugin's other process gone with it", || !alive(client));
}

#[test]
fn core_components_start_as_our_children_dbmgr_first_and_come_back_when_they_die() {
    let host = Host::new("h052-core");
    for name in ["admin", "dbmgr", "xplgw"] {
        host.add_core(name);
    }
    let mut daemon = host.manager("", &["-a", "-x", "-d"]);
    let first = daemon.wait_for_log("started core component ");
    assert!(
        first.contains("started core component dbmgr: pid"),
        "dbmgr first: {first}"
    );
    // Guards first: a failing assertion must leave no fake named dbmgr
    // running (Domogik's own dbmgr refuses to start next to one).
    let mut pids: Vec<KillGroup> = ["admin", "dbmgr", "xplgw"]
        .iter()
        .map(|name| KillGroup(pid_of(&host.facts(name, None), "watcher")))
        .collect();
    for name in ["admin", "dbmgr", "xplgw"] {
        let facts = host.facts(name, None);
        assert_eq!(
            facts["argv"],
            json!([host.bin.join(format!("{name}.py")).to_str().unwrap(), "-f"])
        );
        let pid = pid_of(&facts, "watcher");
        assert_eq!(stat(pid).map(|(parent, _, _)| parent), Some(daemon.pid()));
        let id = format!("core-{name}.testhost");
        let entry = v05_entry(&daemon, "client.list.get", &id, "listed", |entry| entry["pid"] == pid);
        assert_eq!(entry["type"], "core");
        assert_eq!(entry["name"], name);
        assert_eq!(entry["package_id"], format!("core-{name}"));
        assert_eq!(entry["xpl_source"], format!("domogik-{name}.testhost"));
        assert_eq!(entry["configured"], Value::Null);
        assert_eq!(entry["compliant_xpl_clients"], json!([]));
        assert_eq!(entry["xpl_clients_only"], json!([]), "as 0.5.2 lists a core component");
    }
    // Its status as it announces it, type core.
    announce(&daemon, "core", "admin", "alive");
    // The seed dialect lists plugins only.
    let seed = daemon.clients("clients.list.get");
    assert!(
        seed.as_object().unwrap().keys().all(|id| id.starts_with("domogik-")),
        "{seed}"
    );

    let dbmgr = host.facts("dbmgr", None);
    let old = pid_of(&dbmgr, "watcher");
    let before = daemon.log().len();
    send_signal(old, "KILL");
    let line = daemon.wait_for_new_log("core component dbmgr (pid", before);
    assert!(line.contains("killed by signal 9 (SIGKILL)"), "{line}");
    let again = host.facts("dbmgr", Some(old));
    let new = pid_of(&again, "watcher");
    pids.push(KillGroup(new));
    v05_entry(
        &daemon,
        "client.list.get",
        "core-dbmgr.testhost",
        "restarted",
        |entry| entry["pid"] == new,
    );
}

#[test]
fn core_components_from_the_config_key_and_a_missing_one_is_said_while_the_manager_serves() {
    let host = Host::new("h052-core-key");
    host.add_core("dbmgr");
    let mut daemon = host.manager("core = dbmgr scenario\n", &[]);
    let facts = host.facts("dbmgr", None);
    let _guard = KillGroup(pid_of(&facts, "watcher"));
    let line = daemon.wait_for_log("core component scenario");
    assert!(line.contains("scenario.py is missing"), "{line}");
    let entry = v05_entry(
        &daemon,
        "client.detail.get",
        "core-scenario.testhost",
        "dead with why",
        |entry| entry["status"] == "dead",
    );
    assert!(
        entry["comment"].as_str().unwrap().contains("scenario.py is missing"),
        "{entry}"
    );
    assert!(v05(&daemon, "client.list.get")["core-dbmgr.testhost"]["pid"] != 0);
}

#[test]
fn a_brain_is_data_and_an_interface_runs_like_a_plugin() {
    let host = Host::new("h052-kinds");
    let script = host.add("interface", "fivef");
    let brain = host.packages.join("brain_fiveg");
    std::fs::create_dir_all(&brain).unwrap();
    std::fs::write(
        brain.join("info.json"),
        json!({"json_version": 2, "identity": {"type": "brain", "name": "fiveg"}}).to_string(),
    )
    .unwrap();
    let daemon = host.manager("", &[]);
    let list = v05(&daemon, "client.list.get");
    let brain = &list["brain-fiveg.testhost"];
    assert_eq!(brain["type"], "brain", "{list}");
    assert_eq!(brain["package_id"], "brain-fiveg");
    assert_eq!(brain["pid"], 0);
    let refused = start_request(&daemon, "brain", "fiveg");
    assert_eq!(refused["status"], false, "a brain never runs: {refused}");

    assert_eq!(start_request(&daemon, "interface", "fivef")["status"], true);
    let facts = host.facts("fivef", None);
    let watcher = pid_of(&facts, "watcher");
    let _guard = KillGroup(watcher);
    assert_eq!(facts["argv"], json!([script.to_str().unwrap(), "-f"]));
    let entry = v05_entry(
        &daemon,
        "client.list.get",
        "interface-fivef.testhost",
        "started",
        |entry| entry["pid"] == watcher,
    );
    assert_eq!(entry["type"], "interface");
    assert_eq!(entry["package_id"], "interface-fivef");
    announce(&daemon, "interface", "fivef", "alive");
}

#[test]
fn an_interpreter_that_cannot_run_is_said_in_the_reply_and_the_status() {
    let host = Host::new("h052-nopython");
    host.add("plugin", "fiveh");
    let dir = host.dir.path().to_owned();
    let keys = format!(
        "python = {}\nkill_delay = 1\nrescan_interval = 1\n",
        dir.join("no-such-python").display()
    );
    let mut daemon = Daemon::start(&host.dir, &standalone_config(&host.packages, &keys));
    let refused = start_request(&daemon, "plugin", "fiveh");
    assert_eq!(refused["status"], false, "{refused}");
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("cannot run ") && reason.contains("no-such-python"),
        "{reason}"
    );
    let entry = v05_entry(
        &daemon,
        "client.detail.get",
        "plugin-fiveh.testhost",
        "dead with why",
        |entry| entry["status"] == "dead",
    );
    assert_eq!(entry["comment"], format!("not started: {reason}"));
    // Still serving.
    assert_eq!(start_request(&daemon, "plugin", "nosuch")["status"], false);
    daemon.wait_for_log("ready:");
}
