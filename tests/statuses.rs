//! Plugins announcing their status (PUB -> SUB) and the manager
//! publishing the clients (PUB -> user interfaces).

use crate::util::*;
use std::time::Duration;

fn start() -> (TempDir, Daemon) {
    let dir = TempDir::new("statuses");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, ""));
    (dir, daemon)
}

fn is_msg_id(msg_id: &str, category: &str) -> bool {
    let Some(rest) = msg_id.strip_prefix(category).and_then(|r| r.strip_prefix('.')) else {
        return false;
    };
    let Some(timestamp) = rest.strip_suffix(".0_1") else {
        return false;
    };
    let mut parts = timestamp.split('_');
    let seconds_ok = parts
        .next()
        .is_some_and(|s| s.len() >= 10 && s.bytes().all(|b| b.is_ascii_digit()));
    seconds_ok && parts.all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn seed_status_reaches_list_then_detail_publications() {
    let (_dir, daemon) = start();
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);

    plugin.send_multipart(seed_status("diskfree", "alive"), 0).unwrap();
    let list = recv_publication(&ui, DEADLINE).expect("clients.list publication");
    let detail = recv_publication(&ui, DEADLINE).expect("clients.detail publication");
    assert!(is_msg_id(&list.msg_id, "clients.list"), "{}", list.msg_id);
    assert!(is_msg_id(&detail.msg_id, "clients.detail"), "{}", detail.msg_id);
    assert_eq!(list.body["domogik-diskfree.testhost"]["status"], "alive");
    assert_eq!(detail.body["domogik-diskfree.testhost"]["status"], "alive");
    assert_eq!(
        detail.body["domogik-diskfree.testhost"]["data"],
        fixture_json("diskfree")
    );
    // The publication is the list itself, the same as a request returns.
    assert_eq!(list.body, daemon.clients("clients.list.get"));
    assert_eq!(detail.body, daemon.clients("clients.detail.get"));
}

#[test]
fn later_status_shape_with_host_and_comment() {
    let (_dir, daemon) = start();
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);

    let body = r#"{"type": "plugin", "name": "rfxcom", "host": "testhost", "event": "dead", "comment": "no device"}"#;
    plugin
        .send_multipart([b"plugin.status.1371071554_16.0_1".as_slice(), body.as_bytes()], 0)
        .unwrap();
    let detail = await_publication(&ui, "showing rfxcom dead", |p| {
        p.category() == "clients.detail" && p.body["domogik-rfxcom.testhost"]["status"] == "dead"
    });
    assert_eq!(detail.body["domogik-rfxcom.testhost"]["comment"], "no device");
    assert_eq!(
        daemon.clients("clients.list.get")["domogik-rfxcom.testhost"]["status"],
        "dead"
    );
}

#[test]
fn same_status_publishes_nothing() {
    let (_dir, daemon) = start();
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);

    plugin.send_multipart(seed_status("ebusd", "alive"), 0).unwrap();
    await_publication(&ui, "ebusd alive", |p| p.category() == "clients.detail");
    // The repeat changes nothing, so the next publication is the change after it.
    plugin.send_multipart(seed_status("ebusd", "alive"), 0).unwrap();
    plugin.send_multipart(seed_status("rfxcom", "starting"), 0).unwrap();
    let next = recv_publication(&ui, DEADLINE).unwrap();
    assert_eq!(next.category(), "clients.list");
    assert_eq!(next.body["domogik-rfxcom.testhost"]["status"], "starting");
}

#[test]
fn bad_status_messages_are_dropped_and_valid_ones_still_work() {
    let (_dir, mut daemon) = start();
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);
    let before = daemon.log().len();

    let bad: Vec<Vec<Vec<u8>>> = vec![
        vec![b"plugin.1_2.0_1".to_vec()],
        vec![b"plugin.1_2.0_1".to_vec(), b"{}".to_vec(), b"{}".to_vec()],
        vec![b"plugin.1_2.0_1".to_vec(), b"\xff\xfe".to_vec()],
        vec![b"plugin.1_2.0_1".to_vec(), b"not json".to_vec()],
        seed_status("diskfree", "sleepy"),
        seed_status("nosuchplugin", "alive"),
        later_status("diskfree", "otherhost", "alive"),
        vec![b"plugin.configuration.1_2.0_1".to_vec(), b"whatever".to_vec()],
        vec![
            b"plugin.1_2.0_1".to_vec(),
            br#"{"type": "core", "id": "diskfree", "event": "alive"}"#.to_vec(),
        ],
        vec![b"plugin".to_vec(), b"{}".to_vec()],
    ];
    for message in &bad {
        plugin.send_multipart(message, 0).unwrap();
    }
    plugin.send_multipart(seed_status("ebusd", "alive"), 0).unwrap();
    // The first publication after the bad ones is the valid change alone.
    let list = recv_publication(&ui, DEADLINE).unwrap();
    assert_eq!(list.category(), "clients.list");
    assert_eq!(list.body["domogik-ebusd.testhost"]["status"], "alive");
    assert_eq!(list.body["domogik-diskfree.testhost"]["status"], "unknown");
    assert_eq!(list.body.as_object().unwrap().len(), 4);
    daemon.wait_for_new_log("unknown status \"sleepy\"", before);
    daemon.wait_for_new_log("no client domogik-nosuchplugin.testhost", before);
}

#[test]
fn a_flood_of_bad_messages_is_rate_limited_in_the_log() {
    let (_dir, mut daemon) = start();
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);
    let before = daemon.log().len();
    for _ in 0..500 {
        plugin.send_multipart(seed_status("nosuchplugin", "alive"), 0).unwrap();
    }
    plugin.send_multipart(seed_status("ebusd", "dead"), 0).unwrap();
    await_publication(&ui, "ebusd dead", |p| {
        p.body["domogik-ebusd.testhost"]["status"] == "dead"
    });
    // Logged before the publication it precedes; wait for that line.
    daemon.wait_for_new_log("published clients.list", before);
    let dropped = daemon.log()[before..]
        .iter()
        .filter(|line| line.contains("nosuchplugin"))
        .count();
    assert!((1..=10).contains(&dropped), "{dropped} log lines for 500 bad messages");
}

#[test]
fn sigterm_and_sigint_exit_zero() {
    for signal in ["TERM", "INT"] {
        let (_dir, mut daemon) = start();
        daemon.signal(signal);
        let status = daemon.wait_exit(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "SIG{signal}");
    }
}
