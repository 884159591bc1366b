//! The Domogik 0.5 dialect (PROTOCOL.md §8) from the outside: its requests
//! as Domogik's client library sends them, its publications, the dead
//! rule, and both dialects on one socket.

use crate::util::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const V05_FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v05");

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The v05 fixture packages (demo, gate) and datatypes.json in `dir`; the
/// dead rule and our own status at `dead_after` and `status_interval` s.
fn start_with(dead_after: &str, status_interval: &str) -> (TempDir, Daemon) {
    let dir = TempDir::new("v05");
    copy_tree(Path::new(V05_FIXTURES), dir.path());
    let keys = format!(
        "datatypes_file = {}\ndead_after = {dead_after}\nstatus_interval = {status_interval}\n",
        dir.join("datatypes.json").display()
    );
    let daemon = Daemon::start(&dir, &standalone_config(&dir.join("packages"), &keys));
    (dir, daemon)
}

fn start() -> (TempDir, Daemon) {
    start_with("30", "15")
}

/// A request as Domogik 0.5's `MQSyncReq` sends it: MDP client framing,
/// service `manager`, the timeout frame `None`.
fn domogik_request(daemon: &Daemon, action: &str, body: &str) -> (String, Value) {
    let reply = daemon.request(&[b"MDPC01", b"manager", b"None", action.as_bytes(), body.as_bytes()]);
    assert_eq!(reply.len(), 4, "{reply:?}");
    assert_eq!(reply[0], b"MDPC01");
    assert_eq!(reply[1], b"manager");
    (String::from_utf8(reply[2].clone()).unwrap(), body_of(&reply[3]))
}

#[test]
fn every_v05_request_gets_its_shape() {
    let (dir, daemon) = start();
    let (action, list) = domogik_request(&daemon, "client.list.get", "{}");
    assert_eq!(action, "client.list.result");
    let demo = &list["plugin-demo.testhost"];
    let last_seen = demo["last_seen"].as_f64().expect("last_seen is a float");
    assert!(last_seen > 1.7e9, "{last_seen}");
    assert_eq!(
        *demo,
        json!({"host": "testhost", "type": "plugin", "name": "demo", "xpl_source": "domogik-demo.testhost",
               "package_id": "plugin-demo", "pid": 0, "last_seen": last_seen, "status": "stopped",
               "configured": null, "compliant_xpl_clients": [], "xpl_clients_only": false})
    );
    assert_eq!(list["plugin-gate.testhost"]["xpl_clients_only"], true);

    let (action, detail) = domogik_request(&daemon, "client.detail.get", "{}");
    assert_eq!(action, "client.detail.result");
    let data = &detail["plugin-demo.testhost"]["data"];
    assert_eq!(data["identity"]["package_id"], "plugin-demo");
    let icon = dir.join("packages/plugin_demo/design/icon.png");
    assert_eq!(data["identity"]["icon_file"], icon.display().to_string());
    assert_eq!(data["configuration"][0]["key"], "auto_startup");
    assert_eq!(
        data["udev_rules"]["demo"],
        "SUBSYSTEM==\"tty\", ATTRS{idVendor}==\"0403\", SYMLINK+=\"demo\"\n"
    );

    let (action, conversions) = domogik_request(&daemon, "client.conversion.get", "{}");
    assert_eq!(action, "client.conversion.result");
    assert_eq!(
        conversions["plugin-demo.testhost"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["to_celsius"]
    );
    assert_eq!(conversions["plugin-gate.testhost"], json!({}));

    let (action, history) = domogik_request(
        &daemon,
        "client.history.get",
        r#"{"type": "plugin", "name": "demo", "host": "testhost"}"#,
    );
    assert_eq!(action, "client.history.result");
    assert_eq!(
        history,
        json!({"type": "plugin", "name": "demo", "host": "testhost", "status": true, "reason": null, "history": []})
    );

    let (action, datatypes) = domogik_request(&daemon, "datatype.get", "{}");
    assert_eq!(action, "datatype.result");
    assert_eq!(datatypes["datatypes"]["DT_Switch"]["parent"], "DT_Bool");

    // The package's JSON as Domogik 0.5.2's PackageJson: the client's data
    // without the udev rules (which 0.5.2 adds to the client only).
    let mut package = data.clone();
    assert!(package.as_object_mut().unwrap().remove("udev_rules").is_some());
    let (action, types) = domogik_request(&daemon, "device_types.get", "{}");
    assert_eq!(action, "device_types.result");
    assert_eq!(types["demo.switch"], package);
    let (_, one) = domogik_request(&daemon, "device_types.get", r#"{"device_type": "nope"}"#);
    assert_eq!(one, json!({"nope": null}));

    let (action, packages) = domogik_request(&daemon, "package.detail.get", "{}");
    assert_eq!(action, "package.detail.result");
    assert_eq!(packages["plugin-demo"], package);

    let (action, error) = domogik_request(&daemon, "client.delete.do", "{}");
    assert_eq!(action, "error");
    assert_eq!(error["status"], false);
}

#[test]
fn a_silent_plugin_is_dead_in_both_dialects_and_dead_is_published() {
    let (_dir, daemon) = start_with("0.5", "0.2");
    let everything = subscriber(daemon.context(), daemon.publisher.as_deref().unwrap(), "");
    let plugin = daemon.plugin_publisher();
    // Until the links are up, statuses are lost: repeat alive until seen.
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "links never up");
        plugin
            .send_multipart(later_status("demo", "testhost", "alive"), 0)
            .unwrap();
        let seen = recv_publication(&everything, Duration::from_millis(50));
        if seen.is_some_and(|p| p.category() == "client.list" && p.body["plugin-demo.testhost"]["status"] == "alive") {
            break;
        }
    }
    let alive_at = Instant::now();
    let dead = await_publication(&everything, "of demo dead", |p| {
        p.category() == "plugin.status" && p.body["name"] == "demo"
    });
    assert!(
        alive_at.elapsed() >= Duration::from_millis(400),
        "dead too early: {:?}",
        alive_at.elapsed()
    );
    assert_eq!(
        dead.body,
        json!({"type": "plugin", "name": "demo", "host": "testhost", "event": "dead"})
    );
    let seed = await_publication(&everything, "clients.list", |p| p.category() == "clients.list");
    assert_eq!(seed.body["domogik-demo.testhost"]["status"], "dead");
    let v05 = await_publication(&everything, "client.list", |p| p.category() == "client.list");
    assert_eq!(v05.body["plugin-demo.testhost"]["status"], "dead");
    assert_eq!(
        daemon.clients("clients.list.get")["domogik-demo.testhost"]["status"],
        "dead"
    );
    let (_, history) = domogik_request(
        &daemon,
        "client.history.get",
        r#"{"type": "plugin", "name": "demo", "host": "testhost"}"#,
    );
    assert_eq!(history["history"][0]["status"], "dead");
    assert_eq!(
        history["history"][0]["comment"],
        "no status received for more than 0.5 s"
    );
    assert_eq!(history["history"][1]["status"], "alive");
    // And the manager's own status, every 0.2 s.
    let own = await_publication(&everything, "of the manager", |p| {
        p.category() == "plugin.status" && p.body["type"] == "core"
    });
    assert_eq!(
        own.body,
        json!({"type": "core", "name": "manager", "host": "testhost", "event": "alive"})
    );
}

/// The categories published after a change, in this order (PROTOCOL.md §8).
const AFTER_A_CHANGE: [&str; 5] = ["clients.list", "clients.detail", "client.list", "client.detail", "client.conversion"];

/// The categories of the next `count` publications on `socket`.
fn next_categories(socket: &zmq::Socket, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| recv_publication(socket, DEADLINE).expect("a publication").category().to_owned())
        .collect()
}

#[test]
fn publications_come_in_the_documented_order() {
    let (dir, mut daemon) = start();
    let everything = subscriber(daemon.context(), daemon.publisher.as_deref().unwrap(), "client");
    everything.set_subscribe(b"package").unwrap();
    let plugin = daemon.plugin_publisher();
    let deadline = Instant::now() + DEADLINE;
    let mut flip = false;
    loop {
        assert!(Instant::now() < deadline, "links never up");
        flip = !flip;
        plugin
            .send_multipart(
                later_status("gate", "testhost", if flip { "alive" } else { "starting" }),
                0,
            )
            .unwrap();
        if recv_publication(&everything, Duration::from_millis(50)).is_some() {
            break;
        }
    }
    plugin
        .send_multipart(later_status("gate", "testhost", "stopped"), 0)
        .unwrap();
    // Drain until the state that shows stopped, then read one change whole.
    await_publication(&everything, "showing gate stopped", |p| {
        p.category() == "client.detail" && p.body["plugin-gate.testhost"]["status"] == "stopped"
    });
    while recv_publication(&everything, Duration::from_millis(200)).is_some() {}
    plugin
        .send_multipart(later_status("gate", "testhost", "stop-request"), 0)
        .unwrap();
    assert_eq!(next_categories(&everything, 5), AFTER_A_CHANGE);

    // A rescan that changes a package's files adds package.detail.
    std::fs::write(
        dir.join("packages/plugin_gate/info.json"),
        r#"{"identity": {"type": "plugin", "name": "gate"}, "v": 2}"#,
    )
    .unwrap();
    let before = daemon.log().len();
    daemon.signal("HUP");
    daemon.wait_for_new_log("package changed: domogik-gate.testhost", before);
    assert_eq!(next_categories(&everything, 6), [&AFTER_A_CHANGE[..], &["package.detail"]].concat());
}

#[test]
fn both_dialects_interleaved_on_one_socket_agree() {
    let (_dir, daemon) = start();
    let socket = daemon.req_socket();
    let plugin = daemon.plugin_publisher();
    let deadline = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < deadline, "the status never arrived");
        plugin.send_multipart(seed_status("demo", "alive"), 0).unwrap();
        let seed = body_of(&request_on(&socket, &[b"clients.list.get", b"{}"])[1]);
        if seed["clients"]["domogik-demo.testhost"]["status"] == "alive" {
            break;
        }
    }
    for _ in 0..3 {
        let v05 = request_on(&socket, &[b"MDPC01", b"manager", b"client.list.get", b"{}"]);
        assert_eq!(v05[2], b"client.list.result");
        let seed = request_on(&socket, &[b"MDPC01", b"manager", b"clients.list.get", b"{}"]);
        assert_eq!(seed[2], b"clients.list.result");
        let detail = request_on(&socket, &[b"client.detail.get", b"{}"]);
        assert_eq!(detail[0], b"client.detail.result");
        assert_eq!(body_of(&v05[3])["plugin-demo.testhost"]["status"], "alive");
        assert_eq!(body_of(&seed[3])["clients"]["domogik-demo.testhost"]["status"], "alive");
        assert_eq!(body_of(&detail[1])["plugin-demo.testhost"]["status"], "alive");
        // "unknown" in the seed's spelling is "stopped" in 0.5's.
        assert_eq!(
            body_of(&seed[3])["clients"]["domogik-gate.testhost"]["status"],
            "unknown"
        );
        assert_eq!(body_of(&v05[3])["plugin-gate.testhost"]["status"], "stopped");
    }
}

#[test]
fn an_unreadable_datatypes_file_answers_null_and_says_why() {
    let dir = TempDir::new("v05-datatypes");
    copy_tree(Path::new(V05_FIXTURES), dir.path());
    let keys = format!("datatypes_file = {}\n", dir.join("missing.json").display());
    let daemon = Daemon::start(&dir, &standalone_config(&dir.join("packages"), &keys));
    let (action, body) = domogik_request(&daemon, "datatype.get", "{}");
    assert_eq!(action, "datatype.result");
    assert_eq!(body, json!({"datatypes": null}));
    // No file at all (a host without Domogik's resources): said once, not
    // as an error, so a clean start leaves nothing at priority warning.
    assert!(daemon
        .log()
        .iter()
        .any(|line| line.contains("no datatypes_file") && line.contains("missing.json") && !line.contains("error")));

    // A file that is there but cannot be used is an error.
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{not json").unwrap();
    let keys = format!("datatypes_file = {}\n", broken.display());
    let other = TempDir::new("v05-datatypes-broken");
    copy_tree(Path::new(V05_FIXTURES), other.path());
    let daemon = Daemon::start(&other, &standalone_config(&other.join("packages"), &keys));
    let (_, body) = domogik_request(&daemon, "datatype.get", "{}");
    assert_eq!(body, json!({"datatypes": null}));
    assert!(daemon
        .log()
        .iter()
        .any(|line| line.contains("error: datatypes_file") && line.contains("broken.json")));
}

#[test]
fn the_manager_says_stopped_when_it_stops() {
    let (_dir, mut daemon) = start_with("30", "0.1");
    let everything = subscriber(daemon.context(), daemon.publisher.as_deref().unwrap(), "plugin.status");
    await_publication(&everything, "of the manager", |p| p.body["type"] == "core");
    daemon.signal("TERM");
    let stopped = await_publication(&everything, "stopped", |p| p.body["event"] == "stopped");
    assert_eq!(
        stopped.body,
        json!({"type": "core", "name": "manager", "host": "testhost", "event": "stopped"})
    );
    assert!(daemon.wait_exit(DEADLINE).success());
}
