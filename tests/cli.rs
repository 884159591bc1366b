//! The command line and the configuration file, as a user meets them.

use crate::util::commands::stderr_of;
use crate::util::*;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap()
}

#[test]
fn version_and_help() {
    let output = run(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        format!("dmg_manager {}", env!("CARGO_PKG_VERSION"))
    );
    let output = run(&["--help"]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("--check-config"));
}

#[test]
fn usage_error_exits_2_with_a_hint() {
    let output = run(&["--bogus"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = stderr_of(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--bogus") && stderr.contains("--help"), "{stderr}");
}

#[test]
fn check_config_accepts_the_shipped_configs() {
    let dir = TempDir::new("check-ok");
    let packages = copy_fixtures(&dir);
    let path = dir.join("ok.cfg");
    std::fs::write(&path, standalone_config(&packages, "")).unwrap();
    let output = run(&["--check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("OK"));

    for shipped in ["etc/manager.cfg", "etc/manager-dev.cfg"] {
        let path = format!("{}/{shipped}", env!("CARGO_MANIFEST_DIR"));
        let output = run(&["--check-config", "--config", &path]);
        // The shipped config derives the host from this machine's name,
        // which may be too long on some build hosts: that must be the only
        // possible complaint.
        let stderr = stderr_of(&output);
        assert!(
            output.status.success() || stderr.contains("[manager] host"),
            "{shipped}: {stderr}"
        );
    }
}

#[test]
fn config_errors_stop_the_start_with_one_line_naming_file_and_key() {
    let dir = TempDir::new("config-errors");
    let cases = [
        ("[manager]\nrescan_interval = often\n", "rescan_interval"),
        ("[manager]\npackages_dri = /tmp\n", "packages_dri"),
        ("[manager]\nhost = averyveryverylonghostname\n", "[manager] host"),
        ("[manager]\nrep_endpoint = tcp://127.0.0.1:5555\n", "rep_endpoint"),
        ("[mq]\nreq_rep_port = -1\n", "req_rep_port"),
        ("[manger]\n", "[manger]"),
    ];
    for (text, key) in cases {
        let path = dir.join("bad.cfg");
        std::fs::write(&path, text).unwrap();
        for check in [true, false] {
            let mut args = vec!["--config", path.to_str().unwrap()];
            if check {
                args.push("--check-config");
            }
            let output = run(&args);
            assert_eq!(output.status.code(), Some(1), "{text:?}");
            let stderr = stderr_of(&output);
            assert_eq!(stderr.lines().count(), 1, "{text:?}: {stderr}");
            assert!(
                stderr.contains(path.to_str().unwrap()) && stderr.contains(key),
                "{text:?}: {stderr}"
            );
        }
    }
    let output = run(&["--config", "/nonexistent/manager.cfg"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).contains("/nonexistent/manager.cfg: cannot read"));
}

#[test]
fn a_port_in_use_is_a_clear_start_error() {
    let dir = TempDir::new("port-in-use");
    let packages = copy_fixtures(&dir);
    let first = Daemon::start(&dir, &standalone_config(&packages, ""));
    let config = format!(
        "[manager]\nhost = testhost\npackages_dir = {}\nrep_endpoint = @{}\nsub_endpoint = @tcp://127.0.0.1:*\npub_endpoint = @tcp://127.0.0.1:*\n",
        packages.display(),
        first.rep
    );
    let path = dir.join("second.cfg");
    std::fs::write(&path, config).unwrap();
    let output = run(&["--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("cannot bind rep_endpoint") && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn binding_every_interface_warns() {
    let dir = TempDir::new("everywhere");
    let packages = copy_fixtures(&dir);
    let config =
        standalone_config(&packages, "").replace("rep_endpoint = @tcp://127.0.0.1:*", "rep_endpoint = @tcp://*:*");
    let mut daemon = Daemon::start(&dir, &config);
    let line = daemon.wait_for_log("listens on every interface");
    assert!(
        line.contains("warn") && line.contains("read the clients list"),
        "{line}"
    );
    // Only that endpoint: the two others stay on loopback and say nothing.
    let warnings = daemon
        .log()
        .iter()
        .filter(|line| line.contains("every interface"))
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn the_readme_command_block_is_the_definitions_synopsis() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("## Running it\n")
        .nth(1)
        .expect("a \"## Running it\" section");
    let block = section.split("```\n").nth(1).expect("a code block in \"Running it\"");
    let synopsis = domogik_manager::cli::synopsis(&domogik_manager::cli::definition());
    assert_eq!(
        block.trim_end(),
        synopsis,
        "README.md's \"Running it\" block drifted from src/cli/definition.rs: paste the synopsis above"
    );
}
