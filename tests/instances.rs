//! One manager per host and bus: a second one (`sudo dmg_manager` on a
//! host whose service runs) is refused, naming the pid of the first, since
//! the broker would hand requests to both at random. And the config's
//! typos that parse but cannot be meant: a `packages_dir` that does not
//! exist, `restart` names that match no installed package.

use crate::util::commands::{stderr_of, stdout_of};
use crate::util::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The manager's command with its runtime directory (systemd's
/// `RuntimeDirectory=`, given as `$RUNTIME_DIRECTORY`) set to `runtime`.
fn in_runtime(runtime: &Path) -> impl Fn(&Path) -> Command {
    let runtime = runtime.to_owned();
    move |config| {
        let mut command = manager_command(config);
        command.env("RUNTIME_DIRECTORY", &runtime);
        command
    }
}

fn runtime_dir(dir: &TempDir) -> PathBuf {
    let runtime = dir.join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    runtime
}

#[test]
fn a_second_manager_for_the_same_host_and_broker_is_refused_naming_the_first() {
    let broker = TestBroker::start(None);
    let forwarder = Forwarder::start(None);
    let dir = TempDir::new("second-manager");
    let packages = copy_fixtures(&dir);
    let runtime = runtime_dir(&dir);
    let config = bus_config(&broker, &forwarder, &packages);
    let mut first = Daemon::start_with(&dir, &config, in_runtime(&runtime));

    // The same config again, as `sudo dmg_manager` would.
    let mut second = in_runtime(&runtime)(&dir.join("manager.cfg"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let Some(status) = exit_within(&mut second, DEADLINE) else {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second manager for host testhost on the same broker was not refused");
    };
    let output = second.wait_with_output().unwrap();
    assert_eq!(status.code(), Some(1), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&format!("pid {}", first.pid())) && stderr.contains("testhost"),
        "the refusal names the manager that runs: {stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|line| line.contains("error")).count(),
        1,
        "{stderr}"
    );

    // Another host on the same broker is another manager: it starts.
    let other_dir = TempDir::new("second-manager-other-host");
    let mut other = Daemon::start_with(
        &other_dir,
        &config.replace("host = testhost", "host = otherhost"),
        in_runtime(&runtime),
    );

    // The first one crashes: its lock goes with it, a new one starts.
    first.signal("KILL");
    first.wait_exit(DEADLINE);
    let mut again = Daemon::start_with(&dir, &config, in_runtime(&runtime));
    assert_eq!(again.stop().code(), Some(0));
    assert_eq!(other.stop().code(), Some(0));
}

#[test]
fn check_config_warns_about_a_quoted_packages_dir_and_unknown_restart_names() {
    let dir = TempDir::new("check-warnings");
    let packages = copy_fixtures(&dir);
    let check = |name: &str, config: &str| {
        let path = dir.join(name);
        std::fs::write(&path, config).unwrap();
        let output = manager_command(&path).arg("--check-config").output().unwrap();
        // Warnings, not errors: the file is usable, and says OK.
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr_of(&output));
        assert!(stdout_of(&output).contains("OK"), "{name}");
        stderr_of(&output)
    };
    let plain = format!("packages_dir = {}", packages.display());
    let quoted = format!("packages_dir = \"{}\"", packages.display());

    let stderr = check("quoted.cfg", &standalone_config(&packages, "").replace(&plain, &quoted));
    assert!(
        stderr.contains("packages_dir") && stderr.contains("does not exist") && stderr.contains("quotes"),
        "{stderr}"
    );

    let stderr = check("typo.cfg", &standalone_config(&packages, "restart = rfxcomm, test\n"));
    assert!(
        stderr.contains("rfxcomm") && stderr.contains("no installed package") && stderr.contains("rfxcom,"),
        "names the typo and what is installed: {stderr}"
    );
    assert!(!stderr.contains("\"test\""), "test is installed: {stderr}");

    assert_eq!(
        check("clean.cfg", &standalone_config(&packages, "restart = rfxcom\n")),
        ""
    );
}

#[test]
fn the_daemon_says_a_restart_name_that_matches_no_package_once() {
    let dir = TempDir::new("restart-typo");
    let packages = copy_fixtures(&dir);
    let mut daemon = Daemon::start(&dir, &standalone_config(&packages, "restart = rfxcomm\n"));
    let line = daemon.wait_for_log("rfxcomm");
    assert!(line.contains("warn") && line.contains("no installed package"), "{line}");
    // Two more rescans, the second one seeing a new package: still once.
    let before = daemon.log().len();
    daemon.signal("HUP");
    daemon.wait_for_new_log("SIGHUP: rescanning", before);
    std::fs::create_dir(packages.join("plugin_late")).unwrap();
    std::fs::write(
        packages.join("plugin_late/info.json"),
        r#"{"identity": {"type": "plugin", "name": "late"}}"#,
    )
    .unwrap();
    let before = daemon.log().len();
    daemon.signal("HUP");
    daemon.wait_for_new_log("package found: domogik-late.testhost", before);
    let said = daemon.log().iter().filter(|line| line.contains("rfxcomm")).count();
    assert_eq!(said, 1, "{:#?}", daemon.log());

    // A packages_dir in quotes: the daemon says what is wrong, once.
    let quoted_dir = TempDir::new("restart-typo-quoted");
    let config = standalone_config(&packages, "rescan_interval = 1\n").replace(
        &format!("packages_dir = {}", packages.display()),
        &format!("packages_dir = \"{}\"", packages.display()),
    );
    let mut quoted = Daemon::start(&quoted_dir, &config);
    let line = quoted.wait_for_log("quotes");
    assert!(line.contains("cannot list packages_dir"), "{line}");
    // Two more rescans (a failure said again is said at debug only).
    for _ in 0..2 {
        let before = quoted.log().len();
        quoted.signal("HUP");
        quoted.wait_for_new_log("cannot list packages_dir", before);
    }
    let said = quoted.log().iter().filter(|line| line.contains("quotes")).count();
    assert_eq!(said, 1, "{:#?}", quoted.log());
}
