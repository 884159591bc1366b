//! `watch` against a manager started by the test: status changes, package
//! removal, addition and reload, stopping on signals, both layouts.

use crate::util::commands::*;
use crate::util::*;
use serde_json::{json, Map, Value};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn info_json(name: &str, version: &str) -> String {
    format!(r#"{{"json_version": 2, "identity": {{"type": "plugin", "name": "{name}", "version": "{version}"}}}}"#)
}

#[test]
fn watch_prints_status_changes_and_package_changes() {
    let dir = TempDir::new("watch");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &ipc_config(&dir, &packages, ""));
    let mut watch = Watcher::start(&dir.join("manager.cfg"), &[]);
    watch.wait_stderr("watching 4 clients");
    let plugin = daemon.plugin_publisher();
    watch.prime(|event| plugin.send_multipart(seed_status("test", event), 0).unwrap());

    plugin.send_multipart(seed_status("diskfree", "alive"), 0).unwrap();
    let line = watch.line("about diskfree", |line| line.contains("domogik-diskfree"));
    let (time, change) = line.split_once(' ').unwrap();
    // Local time with its offset, as journalctl shows the log:
    // 2026-12-06T04:01:02.293+01:00 (the test machine's zone, whatever it is).
    let offset = time.get(23..).unwrap_or_default();
    assert!(
        time.len() == 29 && time.contains('T') && (offset.starts_with('+') || offset.starts_with('-')) && &offset[3..4] == ":",
        "{line}"
    );
    assert_eq!(change, "domogik-diskfree.testhost unknown → alive");

    fs::remove_dir_all(packages.join("plugin_ebusd")).unwrap();
    daemon.signal("HUP");
    let line = watch.line("about ebusd", |line| line.contains("domogik-ebusd"));
    assert!(line.ends_with(" domogik-ebusd.testhost removed"), "{line}");

    fs::create_dir_all(packages.join("plugin_newone")).unwrap();
    fs::write(packages.join("plugin_newone/info.json"), info_json("newone", "1.0")).unwrap();
    daemon.signal("HUP");
    let line = watch.line("about newone", |line| line.contains("domogik-newone"));
    assert!(line.ends_with(" domogik-newone.testhost added (unknown)"), "{line}");

    fs::write(packages.join("plugin_newone/info.json"), info_json("newone", "2.0")).unwrap();
    daemon.signal("HUP");
    let line = watch.line("about newone", |line| line.contains("domogik-newone"));
    assert!(line.ends_with(" domogik-newone.testhost reloaded"), "{line}");

    watch.signal("TERM");
    assert_eq!(watch.wait_exit(Duration::from_secs(2)).code(), Some(0));
}

#[test]
fn watch_without_a_manager_says_so_keeps_watching_and_stops_on_ctrl_c() {
    let dir = TempDir::new("watch-nobody");
    let config = dir.join("manager.cfg");
    fs::write(&config, ipc_config(&dir, &dir.join("packages"), "")).unwrap();
    let mut watch = Watcher::start(&config, &["--timeout", "0.2"]);
    let endpoint = format!("ipc://{}/rep", dir.path().display());
    watch.wait_stderr(&format!(
        "cannot fetch the current clients: no reply from the manager at {endpoint}"
    ));
    watch.wait_stderr("the first publication will be the starting point");
    assert!(watch.try_line(Duration::from_millis(50)).is_none());
    watch.signal("INT");
    assert_eq!(watch.wait_exit(Duration::from_secs(2)).code(), Some(0));
}

/// Signals reach `watch` only while it polls (src/sys/signals.rs): one that
/// drained its whole queue before polling again never stopped as long as
/// publications kept coming faster than it read them.
#[test]
fn watch_stops_on_ctrl_c_during_a_flood_of_publications() {
    let dir = TempDir::new("watch-flood");
    let config = dir.join("manager.cfg");
    fs::write(&config, ipc_config(&dir, &dir.join("packages"), "")).unwrap();
    // No manager: the test plays its PUB socket, a detail map large enough
    // that `watch` reads it slower than it comes.
    let clients: Map<String, Value> = (0..300)
        .map(|n| {
            (
                format!("domogik-p{n}.testhost"),
                json!({"status": "alive", "data": {"n": n}}),
            )
        })
        .collect();
    let frames = vec![
        b"clients.detail.1371071554_16.0_1".to_vec(),
        Value::Object(clients).to_string().into_bytes(),
    ];
    let context = zmq::Context::new();
    let manager_pub = context.socket(zmq::PUB).unwrap();
    manager_pub.set_linger(0).unwrap();
    manager_pub
        .bind(&format!("ipc://{}/pub", dir.path().display()))
        .unwrap();
    // Publishes until dropped, also when the test fails.
    let flood = Background::start(move |stop: &AtomicBool| {
        while !stop.load(Ordering::SeqCst) {
            manager_pub.send_multipart(&frames, 0).unwrap();
        }
    });

    let mut watch = Watcher::start(&config, &["--timeout", "0.1"]);
    // Printed once a publication is read: the signal handlers are in place
    // (the earlier "the first publication will be the starting point" is
    // printed before they are, when Ctrl-C still ends the process).
    watch.wait_stderr("changes are shown from now on");
    watch.signal("INT");
    assert_eq!(watch.wait_exit(Duration::from_secs(2)).code(), Some(0));
    drop(flood);
}

/// Next to Domogik's MQ forwarder: `watch` subscribes at the forwarder's
/// subscriber side (`sub_port`), `status` publishes to its publisher side
/// (`pub_port`), both found from the daemon's own `[mq]` config.
#[test]
fn watch_and_status_through_a_forwarder() {
    let forwarder = Forwarder::start(None);
    let (xsub_port, xpub_port) = forwarder.ports();
    let dir = TempDir::new("watch-forwarder");
    let packages = copy_fixtures(&dir);
    let config = format!(
        "[mq]\nip = 127.0.0.1\npub_port = {xsub_port}\nsub_port = {xpub_port}\n\
         [manager]\nhost = testhost\npackages_dir = {}\nrep_endpoint = @ipc://{}/rep\n",
        packages.display(),
        dir.path().display()
    );
    let daemon = Daemon::start(&dir, &config);
    let config = dir.join("manager.cfg");
    let mut watch = Watcher::start(&config, &[]);
    watch.wait_stderr(&format!("watching 4 clients at tcp://127.0.0.1:{xpub_port}"));
    let status = |args: &[&str]| {
        let output = run_command(&config, &[&["status"], args].concat());
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    };
    watch.prime(|event| status(&["test", event]));

    status(&["rfxcom", "dead", "--comment", "no device"]);
    let line = watch.line("about rfxcom", |line| line.contains("domogik-rfxcom"));
    assert!(
        line.ends_with(" domogik-rfxcom.testhost unknown → dead: no device"),
        "{line}"
    );
    assert_eq!(
        daemon.clients("clients.list.get")["domogik-rfxcom.testhost"]["status"],
        "dead"
    );

    watch.signal("TERM");
    assert_eq!(watch.wait_exit(Duration::from_secs(2)).code(), Some(0));
}
