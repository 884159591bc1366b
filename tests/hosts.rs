//! Several hosts on one bus (PROTOCOL.md §13): a master with the broker and
//! the forwarder and its manager, and two satellites' managers, each with
//! the four fixture plugins. Whichever manager the broker hands a request
//! to answers with all three hosts' clients; a satellite that goes silent
//! is shown so and comes back; a restarted satellite manager is back in
//! every view within 5 s. The loopback tests need nothing; the network
//! namespace one (satellites behind veth links, one unplugged) needs root
//! and prints a skip line otherwise.

use crate::util::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const HOSTS: [&str; 3] = ["master", "garage", "kitchen"];
/// The dead rule at 1 s and the manager's status every 0.25 s, so that a
/// silent host is seen within a second.
const FAST: &str = "dead_after = 1\nstatus_interval = 0.25\n";

/// A manager's config on the bus at `ip` (broker and forwarder ports),
/// with `timers` ([`FAST`], or empty for the shipped defaults).
fn host_config(ip: &str, broker: u16, forwarder: (u16, u16), host: &str, packages: &Path, timers: &str) -> String {
    format!(
        "[mq]\nip = {ip}\nreq_rep_port = {broker}\npub_port = {}\nsub_port = {}\n\
         [manager]\nhost = {host}\npackages_dir = {}\n{timers}log_level = debug\n",
        forwarder.0,
        forwarder.1,
        packages.display()
    )
}

/// A plugin whose process writes its pid into `ran` in its folder, then
/// waits for its parent (the manager that started it) to go.
const SLEEPER: &str = "import os, sys, time\n\
here = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0])))\n\
open(os.path.join(here, 'ran'), 'w').write(str(os.getpid()))\n\
parent = os.getppid()\n\
while os.getppid() == parent:\n    time.sleep(0.2)\n";

/// Adds plugin `name` (a [`SLEEPER`]) to `packages`.
fn add_sleeper(packages: &Path, name: &str) {
    let folder = packages.join(format!("plugin_{name}"));
    std::fs::create_dir_all(folder.join("bin")).unwrap();
    let info = serde_json::json!({"json_version": 2, "identity": {"type": "plugin", "name": name}});
    std::fs::write(folder.join("info.json"), info.to_string()).unwrap();
    std::fs::write(folder.join(format!("bin/{name}.py")), SLEEPER).unwrap();
}

/// One request through the broker (to whichever manager it picks); the
/// reply's clients map, or `None` if no reply came within 500 ms (a
/// manager the broker has not yet seen gone).
fn ask(context: &zmq::Context, broker: &TestBroker, action: &str) -> Option<Value> {
    let reply = broker_request(
        context,
        &broker.endpoint,
        "manager",
        None,
        action,
        Duration::from_millis(500),
    )?;
    let body = body_of(&reply[3]);
    Some(if action.starts_with("clients.") {
        body["clients"].clone()
    } else {
        body
    })
}

/// The hosts of a clients map's entries, and how many entries.
fn hosts_of(clients: &Value) -> (BTreeSet<String>, usize) {
    let map = clients.as_object().unwrap();
    let hosts = map
        .values()
        .map(|entry| entry["host"].as_str().unwrap().to_owned())
        .collect();
    (hosts, map.len())
}

/// Asks until `wanted` holds for `times` answers in a row, within the
/// deadline (the time it took), alternating both dialects' list and detail.
fn until_steady(
    context: &zmq::Context,
    broker: &TestBroker,
    what: &str,
    times: usize,
    wanted: impl Fn(&str, &Value) -> bool,
) -> Duration {
    let start = Instant::now();
    let actions = [
        "client.list.get",
        "clients.list.get",
        "client.detail.get",
        "clients.detail.get",
    ];
    let mut in_a_row = 0;
    let mut last = Value::Null;
    let mut asked = 0usize;
    while in_a_row < times {
        assert!(
            start.elapsed() < DEADLINE,
            "not {what} within {DEADLINE:?} ({in_a_row} in a row); last answer: {last}"
        );
        let action = actions[asked % actions.len()];
        asked += 1;
        match ask(context, broker, action) {
            Some(clients) if wanted(action, &clients) => in_a_row += 1,
            Some(clients) => {
                in_a_row = 0;
                last = clients;
            }
            None => in_a_row = 0,
        }
    }
    start.elapsed()
}

fn all_twelve(_: &str, clients: &Value) -> bool {
    let (hosts, count) = hosts_of(clients);
    count == 12 && hosts == HOSTS.iter().map(|h| h.to_string()).collect()
}

/// The id of plugin `name` of `host` in the dialect of `action`.
fn id(action: &str, name: &str, host: &str) -> String {
    if action.starts_with("clients.") {
        format!("domogik-{name}.{host}")
    } else {
        format!("plugin-{name}.{host}")
    }
}

struct House {
    broker: TestBroker,
    forwarder: Forwarder,
    dirs: Vec<TempDir>,
    daemons: Vec<Daemon>,
}

impl House {
    /// The broker and forwarder bound on `bind_ip`, and a manager per
    /// host, each started by `command(index)`, reaching the bus at `ip(index)`.
    fn start(
        bind_ip: &str,
        ip: impl Fn(usize) -> String,
        command: impl Fn(usize) -> Box<dyn FnOnce(&Path) -> Command>,
    ) -> House {
        House::start_with(bind_ip, ip, command, FAST)
    }

    /// [`House::start`] with `timers` in each manager's config.
    fn start_with(
        bind_ip: &str,
        ip: impl Fn(usize) -> String,
        command: impl Fn(usize) -> Box<dyn FnOnce(&Path) -> Command>,
        timers: &str,
    ) -> House {
        let broker = TestBroker::start_on(bind_ip, None);
        let forwarder = Forwarder::start_on(bind_ip, None);
        let mut house = House {
            broker,
            forwarder,
            dirs: Vec::new(),
            daemons: Vec::new(),
        };
        for (index, host) in HOSTS.iter().enumerate() {
            let dir = TempDir::new(&format!("hosts-{host}"));
            let packages = copy_fixtures(&dir);
            let mut config = host_config(
                &ip(index),
                house.broker.port(),
                house.forwarder.ports(),
                host,
                &packages,
                timers,
            );
            if let Some(python) = extra_python() {
                config.push_str(&format!("python = {python}\n"));
            }
            house.daemons.push(Daemon::start_with(&dir, &config, command(index)));
            house.dirs.push(dir);
        }
        house
    }

    fn context(&self) -> &zmq::Context {
        self.daemons[0].context()
    }

    /// Plugin `name` of `host` announcing `alive` through the forwarder
    /// every 100 ms, as a running plugin does, once every answer shows it.
    fn plugin_alive(&self, name: &str, host: &str) -> Background {
        let endpoint = self.forwarder.xsub.replace("0.0.0.0", "127.0.0.1");
        let status = later_status(name, host, "alive");
        let heartbeat = Background::start(move |stop| {
            let context = zmq::Context::new();
            let plugin = publisher(&context, &endpoint);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                plugin.send_multipart(status.clone(), 0).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let what = format!("{name} of {host} alive");
        until_steady(self.context(), &self.broker, &what, 8, |action, clients| {
            clients[id(action, name, host)]["status"] == "alive"
        });
        heartbeat
    }
}

/// `python3`'s interpreter, for the sleepers.
fn extra_python() -> Option<String> {
    let output = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}

fn plain(_: usize) -> Box<dyn FnOnce(&Path) -> Command> {
    Box::new(fast_heartbeat_command)
}

#[test]
fn every_manager_answers_with_every_hosts_clients() {
    // The shipped timers: nothing here waits for a manager's periodic status.
    let mut house = House::start_with("127.0.0.1", |_| "127.0.0.1".into(), plain, "");
    until_steady(
        house.context(),
        &house.broker,
        "all three hosts' clients",
        1,
        all_twelve,
    );
    // 20 tries in a row, through the broker, whichever manager it picks.
    until_steady(
        house.context(),
        &house.broker,
        "all three hosts' clients, 20 times",
        20,
        all_twelve,
    );
    // Each entry is the one its host published: a status on the garage is
    // seen from every manager.
    let _ebusd = house.plugin_alive("ebusd", "garage");
    let detail = ask(house.context(), &house.broker, "client.detail.get").unwrap();
    assert_eq!(detail["plugin-ebusd.garage"]["host"], "garage");
    assert_eq!(detail["plugin-ebusd.garage"]["data"]["identity"]["name"], "ebusd");
    // `clients --host` shows one host's; every row has its HOST.
    let config = house.dirs[0].join("manager.cfg");
    let output = Command::new(BIN)
        .args(["--config"])
        .arg(&config)
        .args(["clients", "--host", "garage"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(
        rows.iter()
            .all(|row| row.contains(".garage") && row.contains(" garage ")),
        "{table}"
    );

    // The garage's manager restarted: back in every answer within 5 s.
    house.daemons[1].stop();
    house.daemons[0].wait_for_log("the manager of host garage stopped");
    let started = Instant::now();
    let config = house.dirs[1].join("manager.cfg");
    let child = fast_heartbeat_command(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    house.daemons[1] = Daemon::from_child(child);
    house.daemons[0].wait_for_log("host garage is heard again");
    house.daemons[2].wait_for_log("host garage is heard again");
    until_steady(
        house.context(),
        &house.broker,
        "the restarted garage",
        8,
        |action, clients| all_twelve(action, clients) && clients[id(action, "ebusd", "garage")]["status"] == "alive",
    );
    let back_after = started.elapsed();
    assert!(back_after < Duration::from_secs(5), "back after {back_after:?}");
}

#[test]
fn a_silent_satellite_is_shown_so_and_a_restarted_one_is_back_within_5_s() {
    let mut house = House::start("127.0.0.1", |_| "127.0.0.1".into(), plain);
    until_steady(
        house.context(),
        &house.broker,
        "all three hosts' clients",
        3,
        all_twelve,
    );
    let _ebusd = house.plugin_alive("ebusd", "garage");

    // The garage's manager stopped in its tracks (SIGSTOP): no word, no FIN.
    let garage = house.daemons[1].pid();
    // SAFETY: kill has no preconditions.
    unsafe { libc::kill(garage as i32, libc::SIGSTOP) };
    let silent = |action: &str, clients: &Value| {
        let entry = &clients[id(action, "ebusd", "garage")];
        entry["status"] == "dead"
            && (!action.contains("detail") || entry["comment"] == "host garage not heard from for more than 1 s")
    };
    until_steady(
        house.context(),
        &house.broker,
        "the silent garage's ebusd dead",
        8,
        silent,
    );
    house.daemons[0].wait_for_log("host garage not heard from for more than 1 s: its running clients are shown dead");
    // SAFETY: as above.
    unsafe { libc::kill(garage as i32, libc::SIGCONT) };
    house.daemons[0].wait_for_log("host garage is heard again");
    // Back, as it publishes: its ebusd alive (its statuses waited in the
    // garage manager's socket).
    until_steady(
        house.context(),
        &house.broker,
        "the garage as it publishes itself",
        8,
        |action, clients| clients[id(action, "ebusd", "garage")]["status"] == "alive",
    );

    // A clean stop and a new start: back in every answer within 5 s.
    house.daemons[1].stop();
    until_steady(
        house.context(),
        &house.broker,
        "the stopped garage shown so",
        4,
        |action, clients| {
            let entry = &clients[id(action, "ebusd", "garage")];
            entry["status"] == "dead"
                && (!action.contains("detail") || entry["comment"] == "the manager of host garage stopped")
        },
    );
    let started = Instant::now();
    let config = house.dirs[1].join("manager.cfg");
    let mut again = Daemon::from_child(
        fast_heartbeat_command(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    until_steady(
        house.context(),
        &house.broker,
        "the restarted garage back",
        8,
        |action, clients| {
            let entry = &clients[id(action, "ebusd", "garage")];
            all_twelve(action, clients)
                && entry["status"] != "dead"
                && entry["comment"] != "the manager of host garage stopped"
        },
    );
    let back_after = started.elapsed();
    assert!(back_after < Duration::from_secs(5), "back after {back_after:?}");
    again.wait_for_log("ready:");
    house.daemons[0].wait_for_log("the manager of host garage started again");
}

/// A network namespace per satellite and a veth pair into it (addresses
/// from 198.19.0.0/16, the half of the tests' 198.18.0.0/15 that
/// tests/netns.rs leaves), removed when dropped.
struct Satellite {
    name: String,
    host_ip: String,
    inner_link: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl Satellite {
    fn create(index: u32) -> Result<Satellite, String> {
        let pid = std::process::id();
        let base = (198u32 << 24 | 19 << 16) + ((pid % 4096) * 4 + index % 4) * 4;
        let addr = |n: u32| std::net::Ipv4Addr::from(base + n).to_string();
        let (host_ip, inner_ip) = (addr(1), addr(2));
        let satellite = Satellite {
            name: format!("dmghosts{pid}x{index}"),
            host_ip: host_ip.clone(),
            inner_link: format!("dmgB{pid}x{index}"),
        };
        let host_link = format!("dmgA{pid}x{index}");
        ip(&["netns", "add", &satellite.name])?;
        ip(&[
            "link",
            "add",
            &host_link,
            "type",
            "veth",
            "peer",
            "name",
            &satellite.inner_link,
        ])?;
        ip(&["link", "set", &satellite.inner_link, "netns", &satellite.name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_link])?;
        ip(&["link", "set", &host_link, "up"])?;
        satellite.exec(&["addr", "add", &format!("{inner_ip}/30"), "dev", &satellite.inner_link])?;
        satellite.exec(&["link", "set", &satellite.inner_link, "up"])?;
        satellite.exec(&["link", "set", "lo", "up"])?;
        Ok(satellite)
    }

    fn exec(&self, args: &[&str]) -> Result<(), String> {
        ip(&[&["-n", self.name.as_str()][..], args].concat())
    }

    fn command(&self) -> Box<dyn FnOnce(&Path) -> Command> {
        let name = self.name.clone();
        Box::new(move |path| {
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", &name, BIN, "--config"])
                .arg(path)
                .env("DMG_MANAGER_TEST_HEARTBEAT_MS", TEST_HEARTBEAT_MS.to_string())
                .env_remove("JOURNAL_STREAM")
                .env_remove("NOTIFY_SOCKET")
                .stdin(std::process::Stdio::null());
            command
        })
    }

    /// Unplugs (or plugs back) the satellite: packets just vanish.
    fn set_link(&self, up: bool) {
        self.exec(&["link", "set", &self.inner_link, if up { "up" } else { "down" }])
            .unwrap();
    }
}

impl Drop for Satellite {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn satellites_in_namespaces_are_shown_by_every_manager_and_an_unplugged_one_comes_back() {
    const TEST: &str = "hosts::satellites_in_namespaces_are_shown_by_every_manager_and_an_unplugged_one_comes_back";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED {TEST}: needs root (ip netns)");
        return;
    }
    let satellites = match (Satellite::create(0), Satellite::create(1)) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(why), _) | (_, Err(why)) => {
            eprintln!("SKIPPED {TEST}: {why}");
            return;
        }
    };
    // The master's broker and forwarder on every address of the test's
    // namespace: its manager reaches them on loopback, each satellite on
    // its end of its veth.
    let ips: Vec<String> = satellites.iter().map(|s| s.host_ip.clone()).collect();
    let mut house = House::start(
        "0.0.0.0",
        |index| {
            if index == 0 {
                "127.0.0.1".into()
            } else {
                ips[index - 1].clone()
            }
        },
        |index| {
            if index == 0 {
                plain(0)
            } else {
                satellites[index - 1].command()
            }
        },
    );
    until_steady(
        house.context(),
        &house.broker,
        "all three hosts' clients",
        20,
        all_twelve,
    );
    let _rfxcom = house.plugin_alive("rfxcom", "kitchen");

    // The kitchen unplugged: shown so by every manager that answers.
    satellites[1].set_link(false);
    until_steady(
        house.context(),
        &house.broker,
        "the unplugged kitchen's rfxcom dead",
        8,
        |action, clients| {
            let entry = &clients[id(action, "rfxcom", "kitchen")];
            entry["status"] == "dead"
                && (!action.contains("detail") || entry["comment"] == "host kitchen not heard from for more than 1 s")
                && clients[id(action, "ebusd", "garage")]["host"] == "garage"
        },
    );
    // Plugged back: the kitchen is heard again, and shown as it publishes.
    satellites[1].set_link(true);
    until_steady(
        house.context(),
        &house.broker,
        "the kitchen back",
        8,
        |action, clients| all_twelve(action, clients) && clients[id(action, "rfxcom", "kitchen")]["status"] == "alive",
    );
    house.daemons[0].wait_for_log("host kitchen is heard again");
}

#[test]
fn a_start_for_a_satellites_plugin_runs_there_whichever_manager_gets_it() {
    let house = House::start("127.0.0.1", |_| "127.0.0.1".into(), plain);
    // Three plugins of the garage (added after the start: a rescan finds them).
    let garage_packages = house.dirs[1].join("packages");
    for name in ["sleepa", "sleepb", "sleepc"] {
        add_sleeper(&garage_packages, name);
    }
    send_signal(house.daemons[1].pid(), "HUP");
    until_steady(
        house.context(),
        &house.broker,
        "the garage's sleepers",
        3,
        |action, clients| {
            ["sleepa", "sleepb", "sleepc"]
                .iter()
                .all(|name| clients.get(id(action, name, "garage")).is_some())
        },
    );
    // One start each: the broker hands them to the three managers in turn,
    // so at least two go through another host's manager.
    for name in ["sleepa", "sleepb", "sleepc"] {
        let body = serde_json::json!({"type": "plugin", "name": name, "host": "garage"}).to_string();
        let reply = request_through_broker(house.context(), &house.broker, "plugin.start.do", &body);
        assert_eq!(reply["status"], true, "{name}: {reply}");
        assert_eq!(reply["host"], "garage");
        let ran = garage_packages.join(format!("plugin_{name}/ran"));
        let deadline = Instant::now() + DEADLINE;
        while !ran.exists() {
            assert!(Instant::now() < deadline, "{name} did not run on the garage");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let forwarded = house.daemons[1]
        .log()
        .iter()
        .filter(|line| line.contains("request forwarded by the manager of host"))
        .count();
    assert!(forwarded >= 2, "{:?}", house.daemons[1].log());
    // A host nobody knows: refused, with the reason, by whichever answers.
    let body = r#"{"type": "plugin", "name": "x", "host": "attic"}"#;
    let reply = request_through_broker(house.context(), &house.broker, "plugin.start.do", body);
    assert_eq!(reply["status"], false);
    assert_eq!(reply["reason"], "no manager of host attic on the bus");
}

/// `action` with `body` through the broker, once (a start is not
/// repeated); its reply body, which must come within 6 s.
fn request_through_broker(context: &zmq::Context, broker: &TestBroker, action: &str, body: &str) -> Value {
    let socket = context.socket(zmq::REQ).unwrap();
    socket.set_linger(0).unwrap();
    socket.connect(&broker.endpoint).unwrap();
    socket
        .send_multipart([&b"MDPC01"[..], b"manager", action.as_bytes(), body.as_bytes()], 0)
        .unwrap();
    let mut items = [socket.as_poll_item(zmq::POLLIN)];
    zmq::poll(&mut items, 6000).unwrap();
    assert!(items[0].is_readable(), "no answer to {action} {body} within 6 s");
    let reply = socket.recv_multipart(0).unwrap();
    let result = format!("{}.result", action.trim_end_matches(".do"));
    assert_eq!(reply[2], result.as_bytes(), "{reply:?}");
    body_of(&reply[3])
}
