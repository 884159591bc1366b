//! The house's xPL devices as clients (docs/PROTOCOL.md §11), end to end:
//! the tests' xPL hub (a real process, tests/util/xplhub.py) on the
//! loopback broadcast address, the manager registered with it, fake
//! devices heartbeating through it over real UDP. An xPL minute is
//! shortened with the test knob; every wait has a deadline.

use crate::util::commands::{ipc_config, run_command, stdout_of, Watcher};
use crate::util::xpl::{Device, Hub};
use crate::util::{
    await_publication, body_of, connect_pubsub, copy_fixtures, manager_command, seed_status, standalone_config,
    subscriber, Daemon, TempDir, DEADLINE,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The xPL minute of these tests.
const MINUTE: Duration = Duration::from_millis(300);

fn xpl_command(hub: &Hub) -> impl FnOnce(&Path) -> Command {
    let port = hub.port.to_string();
    move |config: &Path| {
        let mut command = manager_command(config);
        command
            .env("DMG_MANAGER_TEST_XPL_PORT", port)
            .env("DMG_MANAGER_TEST_XPL_MINUTE_MS", MINUTE.as_millis().to_string());
        command
    }
}

/// A standalone manager with xPL on (standalone's default is off), its
/// hub at the test hub's port; returns once the hub has registered it.
fn start(dir: &TempDir, hub: &Hub, extra_xpl_keys: &str) -> Daemon {
    let packages = copy_fixtures(dir);
    let config = format!(
        "{}[xpl]\nenabled = yes\n{extra_xpl_keys}",
        ipc_config(dir, &packages, "")
    );
    let mut daemon = Daemon::start_with(dir, &config, xpl_command(hub));
    hub.await_line("registered domogik-manager.testhost ");
    daemon.wait_for_log("xPL: registered with the hub");
    daemon
}

fn v05_list(daemon: &Daemon) -> Value {
    let reply = daemon.request(&[b"client.list.get", b"{}"]);
    assert_eq!(reply[0], b"client.list.result", "{reply:?}");
    body_of(&reply[1])
}

/// Asks the 0.5 list until `source`'s entry satisfies `wanted`; returns it
/// and when it was seen.
fn await_entry(daemon: &Daemon, source: &str, what: &str, wanted: impl Fn(&Value) -> bool) -> (Value, Instant) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let entry = v05_list(daemon)[source].clone();
        if wanted(&entry) {
            return (entry, Instant::now());
        }
        assert!(Instant::now() < deadline, "{source} never {what}: {entry}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_device_heartbeating_through_the_hub_is_alive_then_dead_after_twice_its_interval_and_a_minute() {
    let hub = Hub::start(MINUTE);
    let dir = TempDir::new("xpl-alive-dead");
    let daemon = start(&dir, &hub, "");
    // "client" takes the seed's clients.* and the 0.5 client.* alike.
    let ui = subscriber(daemon.context(), daemon.publisher.as_deref().unwrap(), "client");
    connect_pubsub(&daemon.plugin_publisher(), &ui);
    let device = Device::new("acme-sensor.kitchen", &hub);
    device.heartbeat("hbeat.app", 1);
    let (entry, _) = await_entry(&daemon, "acme-sensor.kitchen", "listed alive", |entry| {
        entry["status"] == "alive"
    });
    let last_seen = entry["last_seen"].as_f64().unwrap();
    assert_eq!(
        entry,
        json!({
            "host": "kitchen", "type": "xpl_client", "name": "acme-sensor",
            "xpl_source": "acme-sensor.kitchen", "package_id": "xpl_client-acme-sensor",
            "pid": 0, "last_seen": last_seen, "status": "alive", "configured": null,
            "compliant_xpl_clients": [], "xpl_clients_only": []
        })
    );
    let published = await_publication(&ui, "client.list with the device", |publication| {
        publication.category() == "client.list" && publication.body["acme-sensor.kitchen"]["status"] == "alive"
    });
    assert_eq!(published.body["acme-sensor.kitchen"], entry);
    let detail = body_of(&daemon.request(&[b"client.detail.get", b"{}"])[1]);
    assert_eq!(detail["acme-sensor.kitchen"]["data"], Value::Null);
    assert!(detail["acme-sensor.kitchen"].get("xpl_clients_only").is_none());
    let conversions = body_of(&daemon.request(&[b"client.conversion.get", b"{}"])[1]);
    assert_eq!(conversions["acme-sensor.kitchen"], Value::Null);
    // The plugins are still there, and the seed's list is plugins only.
    assert_eq!(v05_list(&daemon)["plugin-diskfree.testhost"]["type"], "plugin");
    assert!(daemon.clients("clients.list.get").get("acme-sensor.kitchen").is_none());

    // `dmg_manager clients` shows it beside the plugins.
    let output = run_command(&dir.join("manager.cfg"), &["clients"]);
    let table = stdout_of(&output);
    let line = table
        .lines()
        .find(|line| line.starts_with("acme-sensor.kitchen"))
        .unwrap_or_else(|| panic!("{table}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        cells[..6],
        [
            "acme-sensor.kitchen",
            "xpl_client",
            "acme-sensor",
            "kitchen",
            "alive",
            "-"
        ],
        "{table}"
    );
    assert!(
        table.lines().any(|line| line.starts_with("domogik-diskfree.testhost")),
        "{table}"
    );

    // Heard again: alive, later last_seen. Then silent: dead after more
    // than 2 × 1 minute + 1 minute, not before.
    device.heartbeat("hbeat.app", 1);
    let last = Instant::now();
    await_entry(&daemon, "acme-sensor.kitchen", "seen again", |entry| {
        entry["last_seen"].as_f64().unwrap() > last_seen
    });
    let (dead, at) = await_entry(&daemon, "acme-sensor.kitchen", "dead", |entry| {
        entry["status"] == "dead"
    });
    let silence = at - last;
    assert!(
        silence >= MINUTE * 3,
        "dead after {silence:?} of silence, before 3 xPL minutes"
    );
    assert!(
        silence < MINUTE * 3 + Duration::from_secs(2),
        "dead only after {silence:?}"
    );
    assert_eq!(dead["last_seen"], v05_list(&daemon)["acme-sensor.kitchen"]["last_seen"]);
    await_publication(&ui, "client.list with the device dead", |publication| {
        publication.category() == "client.list" && publication.body["acme-sensor.kitchen"]["status"] == "dead"
    });

    // Back: alive at its next heartbeat; hbeat.end: stopped at once.
    device.heartbeat("hbeat.basic", 1);
    await_entry(&daemon, "acme-sensor.kitchen", "alive again", |entry| {
        entry["status"] == "alive"
    });
    device.heartbeat("hbeat.end", 1);
    await_entry(&daemon, "acme-sensor.kitchen", "stopped", |entry| {
        entry["status"] == "stopped"
    });
}

#[test]
fn domogiks_own_sources_are_not_xpl_clients_and_bad_datagrams_are_dropped_with_a_warning() {
    let hub = Hub::start(MINUTE);
    let dir = TempDir::new("xpl-filter");
    let mut daemon = start(&dir, &hub, "");
    let plugin = Device::new("domogik-diskfree.testhost", &hub);
    plugin.heartbeat("hbeat.app", 5);
    let noisy = Device::new("acme-noisy.x", &hub);
    // Through the hub (it relays anything that looks like xPL): a value
    // with a tab.
    noisy.send(b"xpl-stat\n{\nhop=1\nsource=acme-noisy.x\ntarget=*\n}\nhbeat.app\n{\ninterval=5\tx\n}\n");
    daemon.wait_for_log("xPL: datagram from 127.0.0.1:");
    let marker = Device::new("acme-marker.x", &hub);
    marker.heartbeat("hbeat.app", 5);
    await_entry(&daemon, "acme-marker.x", "listed", |entry| entry["status"] == "alive");
    let list = v05_list(&daemon);
    assert!(list.get("domogik-diskfree.testhost").is_none(), "{list}");
    assert!(list.get("acme-noisy.x").is_none(), "{list}");
    let warning = daemon
        .log()
        .into_iter()
        .find(|line| line.contains("xPL: datagram from"))
        .unwrap();
    assert!(
        warning.contains("warn") && warning.contains("a control character in a body value"),
        "{warning}"
    );
}

#[test]
fn at_most_max_clients_devices_the_longest_silent_forgotten_and_said() {
    let hub = Hub::start(MINUTE);
    let dir = TempDir::new("xpl-bounded");
    let mut daemon = start(&dir, &hub, "max_clients = 2\n");
    for source in ["acme-a.x", "acme-b.x"] {
        Device::new(source, &hub).heartbeat("hbeat.app", 5);
        await_entry(&daemon, source, "listed", |entry| entry["status"] == "alive");
    }
    Device::new("acme-c.x", &hub).heartbeat("hbeat.app", 5);
    await_entry(&daemon, "acme-c.x", "listed", |entry| entry["status"] == "alive");
    let list = v05_list(&daemon);
    assert!(list.get("acme-a.x").is_none(), "{list}");
    assert_eq!(list["acme-b.x"]["status"], "alive");
    daemon.wait_for_log("xPL: forgot acme-a.x");
}

#[test]
fn a_clean_stop_says_hbeat_end_to_the_hub() {
    let hub = Hub::start(MINUTE);
    let dir = TempDir::new("xpl-end");
    let mut daemon = start(&dir, &hub, "");
    assert!(daemon.stop().success());
    hub.await_line("removed domogik-manager.testhost");
}

#[test]
fn standalone_without_an_xpl_section_opens_no_xpl_socket() {
    let dir = TempDir::new("xpl-off");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, ""));
    assert!(
        !daemon.log().iter().any(|line| line.contains("xPL")),
        "{:?}",
        daemon.log()
    );
}

#[test]
fn an_interface_that_does_not_exist_stops_the_start_naming_the_key() {
    let dir = TempDir::new("xpl-no-interface");
    let packages = copy_fixtures(&dir);
    let config = format!(
        "{}[xpl]\nenabled = yes\nbind_interface = nope0\n",
        ipc_config(&dir, &packages, "")
    );
    let path = dir.join("manager.cfg");
    std::fs::write(&path, config).unwrap();
    let output = manager_command(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("[xpl] bind_interface = nope0: no such interface with an IPv4 address that is up (there are: lo"),
        "{stderr}"
    );
}

#[test]
fn no_hub_is_said_once_after_a_minute_and_its_arrival_too() {
    // A port nobody listens on, for now.
    let hub_socket = std::net::UdpSocket::bind((crate::util::xpl::LOOPBACK_BROADCAST, 0)).unwrap();
    let port = hub_socket.local_addr().unwrap().port();
    drop(hub_socket);
    let dir = TempDir::new("xpl-no-hub");
    let packages = copy_fixtures(&dir);
    let config = format!("{}[xpl]\nenabled = yes\n", ipc_config(&dir, &packages, ""));
    let mut daemon = Daemon::start_with(&dir, &config, move |config: &Path| {
        let mut command = manager_command(config);
        command
            .env("DMG_MANAGER_TEST_XPL_PORT", port.to_string())
            .env("DMG_MANAGER_TEST_XPL_MINUTE_MS", MINUTE.as_millis().to_string());
        command
    });
    let warning = daemon.wait_for_log("xPL: no hub has answered at 127.255.255.255:");
    assert!(warning.contains("warn"), "{warning}");
    // The hub starts: the manager registers at its next discovery heartbeat.
    let hub = Hub::start_on(MINUTE, port);
    hub.await_line("registered domogik-manager.testhost ");
    daemon.wait_for_log("xPL: registered with the hub");
    let warnings = daemon
        .log()
        .iter()
        .filter(|line| line.contains("no hub has answered"))
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn watch_shows_a_device_added_and_its_changes() {
    let hub = Hub::start(MINUTE);
    let dir = TempDir::new("xpl-watch");
    let daemon = start(&dir, &hub, "");
    let mut watch = Watcher::start(&dir.join("manager.cfg"), &[]);
    watch.wait_stderr("watching 4 clients");
    let plugin = daemon.plugin_publisher();
    watch.prime(|event| plugin.send_multipart(seed_status("test", event), 0).unwrap());
    let device = Device::new("acme-sensor.kitchen", &hub);
    device.heartbeat("hbeat.app", 1);
    let line = watch.line("about the device", |line| line.contains("acme-sensor.kitchen"));
    assert!(line.ends_with(" acme-sensor.kitchen added (alive)"), "{line}");
    device.heartbeat("hbeat.end", 1);
    let line = watch.line("about the device", |line| line.contains("acme-sensor.kitchen"));
    assert!(line.ends_with(" acme-sensor.kitchen alive → stopped"), "{line}");
    watch.signal("TERM");
    assert_eq!(watch.wait_exit(Duration::from_secs(2)).code(), Some(0));
}

/// A config written before xPL existed, on a Domogik bus (a broker): xPL is
/// on, with the shipped defaults, and the devices come through the broker.
#[test]
fn on_a_domogik_bus_an_existing_config_lists_the_xpl_devices() {
    let hub = Hub::start(MINUTE);
    let broker = crate::util::TestBroker::start(None);
    let forwarder = crate::util::Forwarder::start(None);
    let dir = TempDir::new("xpl-bus");
    let packages = copy_fixtures(&dir);
    let config = crate::util::bus_config(&broker, &forwarder, &packages);
    assert!(!config.contains("[xpl]"), "{config}");
    let mut daemon = Daemon::start_with(&dir, &config, xpl_command(&hub));
    daemon.wait_for_log("xPL: listening on 127.0.0.1:");
    hub.await_line("registered domogik-manager.testhost ");
    Device::new("acme-sensor.kitchen", &hub).heartbeat("hbeat.app", 5);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reply = crate::util::broker_request(
            daemon.context(),
            &broker.endpoint,
            "manager",
            Some("None"),
            "client.list.get",
            DEADLINE,
        );
        if let Some(reply) = reply {
            if body_of(&reply[3])["acme-sensor.kitchen"]["status"] == "alive" {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the device never listed through the broker");
        std::thread::sleep(Duration::from_millis(20));
    }
}
