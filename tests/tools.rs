//! `clients` and `status` against a manager started by the test, found
//! through the same config file (issue 6).

use crate::util::commands::*;
use crate::util::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A manager on ipc:// endpoints in a fresh dir, with the fixtures, plus
/// the path of its config file for the commands.
fn start(label: &str) -> (TempDir, Daemon, PathBuf) {
    let dir = TempDir::new(label);
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &ipc_config(&dir, &packages, ""));
    let config = dir.join("manager.cfg");
    (dir, daemon, config)
}

#[test]
fn clients_prints_a_table_of_the_fixtures() {
    let (_dir, _daemon, config) = start("clients-table");
    let output = run_command(&config, &["clients"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    assert!(!stdout.contains('\x1b'), "no colour in a pipe: {stdout:?}");
    let lines: Vec<Vec<&str>> = stdout.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(
        lines[0],
        [
            "CLIENT",
            "TYPE",
            "PLUGIN",
            "HOST",
            "STATUS",
            "CONFIGURED",
            "SEEN",
            "PID"
        ]
    );
    let expected: Vec<Vec<String>> = FIXTURE_NAMES
        .iter()
        .map(|name| {
            let id = format!("domogik-{name}.testhost");
            [id.as_str(), "plugin", name, "testhost", "unknown", "-"]
                .map(str::to_owned)
                .to_vec()
        })
        .collect();
    let firsts: Vec<Vec<String>> = lines[1..]
        .iter()
        .map(|line| line[..6].iter().map(|cell| cell.to_string()).collect())
        .collect();
    assert_eq!(firsts, expected, "{stdout}");
    for line in &lines[1..] {
        // SEEN: "N s ago" since the client was created; PID: none started.
        assert!(
            line[6].parse::<u64>().is_ok() && line[7..] == ["s", "ago", "-"],
            "{line:?}"
        );
    }
}

#[test]
fn clients_history_prints_each_change_newest_first() {
    let (_dir, daemon, config) = start("clients-history");
    let plugin = daemon.plugin_publisher();
    let deadline = std::time::Instant::now() + DEADLINE;
    for event in ["starting", "alive"] {
        loop {
            assert!(std::time::Instant::now() < deadline, "{event} never arrived");
            plugin
                .send_multipart(later_status("ebusd", "testhost", event), 0)
                .unwrap();
            let entry = &daemon.clients("clients.list.get")["domogik-ebusd.testhost"];
            if entry["status"] == event {
                break;
            }
        }
    }
    // In the machine's time zone (here TZ, POSIX's "2 h east of UTC"), as
    // journalctl shows the log; --utc in UTC.
    let output = manager_command(&config)
        .args(["clients", "--history", "ebusd"])
        .env("TZ", "XYZ-2")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    let statuses: Vec<&str> = stdout
        .lines()
        .map(|line| line.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(statuses, ["alive", "starting"], "{stdout}");
    assert!(stdout.lines().all(|line| line.contains(".") && line.contains("+02:00  ")), "{stdout}");
    let output = run_command(&config, &["clients", "--history", "ebusd", "--utc"]);
    let utc = stdout_of(&output);
    assert!(utc.lines().count() == 2 && utc.lines().all(|line| line.contains("Z  ")), "{utc}");

    let output = run_command(&config, &["clients", "--history", "nosuch"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr_of(&output).contains("no client plugin-nosuch.testhost"),
        "{}",
        stderr_of(&output)
    );
}

#[test]
fn clients_detail_shows_identity_and_what_is_wrong() {
    let (dir, daemon, config) = start("clients-detail");
    let broken = dir.join("packages/plugin_broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("info.json"), "{\"identity\": ").unwrap();
    daemon.signal("HUP");
    daemon.await_client("clients.list.get", "domogik-broken.testhost", "appeared", |entry| {
        !entry.is_null()
    });

    let output = run_command(&config, &["clients", "--detail"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let stdout = stdout_of(&output);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].ends_with("VERSION  AUTHOR        DESCRIPTION"), "{stdout}");
    let broken_line = lines
        .iter()
        .find(|line| line.starts_with("domogik-broken.testhost"))
        .unwrap();
    assert!(
        broken_line.contains("invalid") && broken_line.contains("plugin_broken/info.json has a JSON error"),
        "{broken_line}"
    );
    for name in FIXTURE_NAMES {
        let identity = &fixture_json(name)["identity"];
        let line = lines
            .iter()
            .find(|line| line.starts_with(&format!("domogik-{name}.")))
            .unwrap();
        for field in ["version", "author", "description"] {
            assert!(
                line.contains(identity[field].as_str().unwrap()),
                "{field} of {name}: {line}"
            );
        }
    }
}

#[test]
fn clients_json_is_the_reply_body_unchanged() {
    let (_dir, daemon, config) = start("clients-json");
    for (args, action) in [
        (&["clients", "--json"][..], "clients.list.get"),
        (&["clients", "--detail", "--json"][..], "clients.detail.get"),
    ] {
        let output = run_command(&config, args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        let reply = daemon.request(&[action.as_bytes(), b"{}"]);
        let body = String::from_utf8(reply[1].clone()).unwrap();
        assert_eq!(stdout_of(&output), format!("{body}\n"), "{args:?}");
    }
}

#[test]
fn clients_without_a_manager_names_the_endpoint_and_exits_1() {
    let dir = TempDir::new("clients-nobody");
    let config = dir.join("manager.cfg");
    std::fs::write(&config, ipc_config(&dir, &dir.join("packages"), "")).unwrap();
    let started = Instant::now();
    let output = run_command(&config, &["clients", "--timeout", "0.3"]);
    let elapsed = started.elapsed();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let endpoint = format!("ipc://{}/rep", dir.path().display());
    assert!(
        stderr.contains(&format!("no reply from the manager at {endpoint} within 0.3 s")),
        "{stderr}"
    );
    assert!(stdout_of(&output).is_empty());
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[test]
fn clients_without_a_broker_says_so_and_exits_1() {
    let dir = TempDir::new("clients-nobroker");
    let config = dir.join("manager.cfg");
    // A loopback port with nothing on it (free a moment ago).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "[mq]\nip = 127.0.0.1\nreq_rep_port = {port}\n[manager]\nhost = testhost\npackages_dir = {}\n",
        dir.join("packages").display()
    );
    std::fs::write(&config, text).unwrap();
    let output = run_command(&config, &["clients", "--timeout", "0.3"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "no reply from service \"manager\" through the broker at tcp://127.0.0.1:{port} within 0.3 s"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("is Domogik's broker running there"), "{stderr}");
}

#[test]
fn an_error_reply_prints_its_reason_and_exits_1() {
    let (dir, _daemon, _config) = start("clients-error");
    // The same endpoints, but another MDP service name than the manager's.
    let other = dir.join("other.cfg");
    std::fs::write(&other, ipc_config(&dir, &dir.join("packages"), "service = other\n")).unwrap();
    let output = run_command(&other, &["clients"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("the manager answered error: unknown service \"other\", this is \"manager\""),
        "{stderr}"
    );
}

#[test]
fn status_changes_a_clients_status() {
    let (_dir, daemon, config) = start("status");
    let output = run_command(&config, &["status", "diskfree", "alive", "--comment", "all good"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    // Sent is not yet applied: the manager reads it on another socket.
    let entry = daemon.await_client(
        "clients.detail.get",
        "domogik-diskfree.testhost",
        "became alive",
        |entry| entry["status"] == "alive",
    );
    assert_eq!(entry["comment"], "all good");
}

#[test]
fn status_refuses_bad_names_and_events_with_exit_2() {
    let dir = TempDir::new("status-usage");
    let config = dir.join("none.cfg");
    for (args, expected) in [
        (&["status", "Disk_Free", "alive"][..], "not a plugin name"),
        (
            &["status", "diskfree", "sleepy"][..],
            "'sleepy' for '<EVENT>' [possible values: unknown, starting",
        ),
        (&["status", "diskfree"][..], "not provided: <EVENT>"),
    ] {
        let output = run_command(&config, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = stderr_of(&output);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected) && stderr.contains("--help"), "{stderr}");
    }
}

#[test]
fn status_without_a_subscriber_exits_1() {
    let dir = TempDir::new("status-nobody");
    let config = dir.join("manager.cfg");
    std::fs::write(&config, ipc_config(&dir, &dir.join("packages"), "")).unwrap();
    let output = run_command(&config, &["status", "diskfree", "alive", "--timeout", "0.3"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    let endpoint = format!("ipc://{}/sub", dir.path().display());
    assert!(
        stderr.contains(&format!(
            "no subscriber for plugin status messages at {endpoint} within 0.3 s"
        )),
        "{stderr}"
    );
}

#[test]
fn run_is_the_daemon_and_the_default() {
    let dir = TempDir::new("run");
    let packages = copy_fixtures(&dir);
    let config = dir.join("manager.cfg");
    std::fs::write(&config, ipc_config(&dir, &packages, "")).unwrap();
    for args in [&["run", "--check-config"][..], &["--check-config"][..]] {
        let output = run_command(&config, args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
        assert!(stdout_of(&output).contains(": OK"));
    }
}
