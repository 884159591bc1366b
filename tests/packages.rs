//! Packages on disk: discovery, validation, reload, removal, rescans.

use crate::util::*;
use std::fs;
use std::path::Path;

fn info_json(name: &str, version: &str) -> String {
    format!(r#"{{"json_version": 2, "identity": {{"type": "plugin", "name": "{name}", "version": "{version}"}}}}"#)
}

fn add_package(packages: &Path, name: &str, text: &str) {
    fs::create_dir_all(packages.join(format!("plugin_{name}"))).unwrap();
    write_atomically(&packages.join(format!("plugin_{name}/info.json")), text);
}

/// Writes via a temp file and rename, as package installers do.
fn write_atomically(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    fs::write(&temp, text).unwrap();
    fs::rename(&temp, path).unwrap();
}

/// Walks one package through its life, with `rescan` making the manager
/// look (SIGHUP, or just waiting for the periodic rescan).
fn package_lifecycle(daemon: &Daemon, packages: &Path, rescan: impl Fn()) {
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);
    let id = "domogik-newone.testhost";
    let detail_of = |p: &Publication| p.body.get(id).cloned();
    let wait_detail = |what: &str, wanted: &dyn Fn(&serde_json::Value) -> bool| {
        let publication = await_publication(&ui, what, |p| {
            p.category() == "clients.detail" && detail_of(p).is_some_and(|entry| wanted(&entry))
        });
        detail_of(&publication).unwrap()
    };

    add_package(packages, "newone", &info_json("newone", "1.0"));
    rescan();
    let entry = wait_detail("with newone added", &|e| e["status"] == "unknown");
    assert_eq!(entry["data"]["identity"]["version"], "1.0");

    // A running plugin's status survives a reload of its data.
    plugin.send_multipart(seed_status("newone", "alive"), 0).unwrap();
    wait_detail("with newone alive", &|e| e["status"] == "alive");
    write_atomically(&packages.join("plugin_newone/info.json"), &info_json("newone", "2.0"));
    rescan();
    let entry = wait_detail("with newone 2.0", &|e| e["data"]["identity"]["version"] == "2.0");
    assert_eq!(entry["status"], "alive");

    write_atomically(
        &packages.join("plugin_newone/info.json"),
        "{\"identity\": {\"type\": \"plugin\",",
    );
    rescan();
    let entry = wait_detail("with newone invalid", &|e| e["status"] == "invalid");
    assert_eq!(entry["data"], serde_json::json!({}));
    let comment = entry["comment"].as_str().unwrap();
    assert!(
        comment.contains("JSON error") && comment.contains("line 1"),
        "{comment}"
    );

    write_atomically(&packages.join("plugin_newone/info.json"), &info_json("newone", "3.0"));
    rescan();
    let entry = wait_detail("with newone fixed", &|e| e["status"] == "unknown");
    assert_eq!(entry["data"]["identity"]["version"], "3.0");
    assert!(entry.get("comment").is_none());

    fs::remove_dir_all(packages.join("plugin_newone")).unwrap();
    rescan();
    let list = await_publication(&ui, "without newone", |p| {
        p.category() == "clients.list" && p.body.get(id).is_none()
    });
    assert_eq!(list.body.as_object().unwrap().len(), 4);
    assert!(daemon.clients("clients.detail.get").get(id).is_none());
}

#[test]
fn package_changes_are_seen_at_the_next_periodic_rescan() {
    let dir = TempDir::new("periodic");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, "rescan_interval = 1\n"));
    package_lifecycle(&daemon, &packages, || {});
}

#[test]
fn package_changes_are_seen_at_once_after_sighup() {
    let dir = TempDir::new("sighup");
    let packages = copy_fixtures(&dir);
    // An hour between rescans: only SIGHUP can explain what the test sees.
    let daemon = Daemon::start(&dir, &standalone_config(&packages, "rescan_interval = 3600\n"));
    package_lifecycle(&daemon, &packages, || daemon.signal("HUP"));
}

#[test]
fn broken_packages_are_invalid_clients_with_a_comment() {
    let dir = TempDir::new("broken");
    let packages = copy_fixtures(&dir);
    fs::create_dir_all(packages.join("plugin_nofile")).unwrap();
    add_package(&packages, "wrongname", &info_json("other", "1"));
    add_package(
        &packages,
        "notplugin",
        r#"{"identity": {"type": "interface", "name": "notplugin"}}"#,
    );
    add_package(&packages, "huge", &" ".repeat(1024 * 1024 + 1));
    fs::write(packages.join("plugin_afile"), "not a folder").unwrap();
    // Not packages at all: ignored, never clients.
    add_package(&packages, "bad_name", &info_json("bad_name", "1"));
    fs::create_dir_all(packages.join("interface_admin")).unwrap();
    let mut daemon = Daemon::start(&dir, &standalone_config(&packages, ""));

    let detail = daemon.clients("clients.detail.get");
    let expect = [
        ("nofile", "plugin_nofile/info.json is missing"),
        (
            "wrongname",
            "identity.name is \"other\", but the folder is plugin_wrongname",
        ),
        ("notplugin", "identity.type is \"interface\""),
        ("huge", "plugin_huge/info.json is too large"),
        ("afile", "plugin_afile/info.json"),
    ];
    for (name, comment) in expect {
        let entry = &detail[format!("domogik-{name}.testhost")];
        assert_eq!(entry["status"], "invalid", "{name}");
        assert_eq!(entry["data"], serde_json::json!({}), "{name}");
        assert!(entry["comment"].as_str().unwrap().contains(comment), "{name}: {entry}");
    }
    assert_eq!(detail.as_object().unwrap().len(), 4 + expect.len());
    daemon.wait_for_log("ignoring plugin_bad_name");
    // The list agrees with the detail on every client.
    let list = daemon.clients("clients.list.get");
    for (id, entry) in list.as_object().unwrap() {
        assert_eq!(entry["status"], detail[id]["status"], "{id}");
    }
}

#[test]
fn missing_packages_dir_is_survived_and_picked_up_later() {
    let dir = TempDir::new("missing");
    let packages = dir.join("not-yet");
    let mut daemon = Daemon::start(&dir, &standalone_config(&packages, "rescan_interval = 3600\n"));
    let error = daemon.wait_for_log("cannot list packages_dir");
    assert!(
        error.contains(&packages.display().to_string()) && error.contains("No such file"),
        "{error}"
    );
    assert_eq!(daemon.clients("clients.list.get"), serde_json::json!({}));

    fs::create_dir_all(&packages).unwrap();
    add_package(&packages, "late", &info_json("late", "1"));
    daemon.signal("HUP");
    let line = daemon.wait_for_log("package found: domogik-late.testhost");
    assert!(line.contains("info"));
    assert_eq!(
        daemon.clients("clients.list.get")["domogik-late.testhost"]["status"],
        "unknown"
    );
}

#[test]
fn vanished_packages_dir_keeps_the_known_clients() {
    let dir = TempDir::new("vanish");
    let packages = copy_fixtures(&dir);
    let mut daemon = Daemon::start(&dir, &standalone_config(&packages, "rescan_interval = 3600\n"));
    fs::rename(&packages, dir.join("elsewhere")).unwrap();
    daemon.signal("HUP");
    daemon.wait_for_log("cannot list packages_dir");
    assert_eq!(daemon.clients("clients.list.get").as_object().unwrap().len(), 4);
}
