//! What the manager meets as a systemd service, tried without systemd:
//! signals in its first milliseconds, and the ipc:// socket's mode under
//! the unit's `UMask=0077`. (The booted check, `scripts/boot-check`, runs
//! the package under the unit itself.)

use crate::util::commands::ipc_config;
use crate::util::{copy_fixtures, exit_within, manager_command, standalone_config, Daemon, TempDir, DEADLINE};
use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Makes a FIFO at `path`. A process given it as `--config` blocks in
/// `main` reading it until the test writes the config: the test knows the
/// process is past its first line, and when the rest of its start-up runs.
fn make_fifo(path: &Path) {
    let name = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated name only.
    assert_eq!(
        unsafe { libc::mkfifo(name.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// The FIFO's write end, opened once a process opened it for reading
/// (before that a non-blocking open fails with ENXIO), within the deadline.
fn open_when_read(path: &Path) -> File {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(file) => return file,
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("nobody opened {} for reading within {DEADLINE:?}: {e}", path.display()),
        }
    }
}

fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill sends a signal; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, signal) }, 0, "kill {pid}");
}

/// Starts `dmg_manager --config FIFO`, waits until it reads the FIFO,
/// sends `signal`, then writes `config` into the FIFO.
fn daemon_signalled_while_starting(dir: &TempDir, name: &str, config: &str, signal: libc::c_int) -> Daemon {
    let path = dir.join(name);
    make_fifo(&path);
    let daemon = Daemon::spawn(&path);
    let mut writer = open_when_read(&path);
    kill(daemon.pid(), signal);
    // The FIFO's writes are non-blocking: the config is far below its 64 KiB.
    writer.write_all(config.as_bytes()).unwrap();
    drop(writer);
    daemon
}

#[test]
fn a_sighup_while_the_daemon_starts_is_a_rescan_once_it_runs() {
    let dir = TempDir::new("early-hup");
    let packages = copy_fixtures(&dir);
    let config = standalone_config(&packages, "");
    for round in 0..10 {
        let mut daemon = daemon_signalled_while_starting(&dir, &format!("hup-{round}.cfg"), &config, libc::SIGHUP);
        let ready = daemon.wait_for_log("ready:");
        daemon.wait_for_log("SIGHUP: rescanning");
        let log = daemon.log();
        let rep = log
            .iter()
            .find_map(|line| {
                line.split_once("rep socket bound to ")
                    .map(|(_, rest)| rest.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("round {round}: no rep endpoint in {log:?} ({ready})"));
        daemon.rep = rep;
        let clients = daemon.clients("clients.list.get");
        assert_eq!(
            clients.as_object().map(|c| c.len()),
            Some(4),
            "round {round}: {clients}"
        );
        let status = daemon.stop();
        assert_eq!(status.code(), Some(0), "round {round}: {status:?}");
    }
}

#[test]
fn a_sigterm_or_sigint_while_the_daemon_starts_stops_it_cleanly() {
    let dir = TempDir::new("early-term");
    let packages = copy_fixtures(&dir);
    let config = standalone_config(&packages, "");
    for (name, signal) in [("term.cfg", libc::SIGTERM), ("int.cfg", libc::SIGINT)] {
        let mut daemon = daemon_signalled_while_starting(&dir, name, &config, signal);
        let status = daemon.wait_exit(DEADLINE);
        assert_eq!(status.code(), Some(0), "{name}: {status:?}, log {:?}", daemon.log());
        let log = daemon.log();
        assert!(
            log.iter().any(|line| line.contains("stopping on signal")),
            "{name}: {log:?}"
        );
    }
}

#[test]
fn a_command_that_waits_for_a_manager_ends_on_the_signal_at_once() {
    let dir = TempDir::new("early-int-command");
    let packages = copy_fixtures(&dir);
    let path = dir.join("clients.cfg");
    make_fifo(&path);
    // No manager runs: without the signal, this would wait 60 s.
    let mut child = manager_command(&path)
        .args(["clients", "--timeout", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut writer = open_when_read(&path);
    kill(child.id(), libc::SIGINT);
    let _ = writer.write_all(standalone_config(&packages, "").as_bytes());
    drop(writer);
    let status = exit_within(&mut child, DEADLINE);
    let _ = child.kill();
    assert_eq!(status.and_then(|s| s.signal()), Some(libc::SIGINT), "{status:?}");
}

#[test]
fn ipc_sockets_are_open_to_the_group_whatever_the_umask() {
    let dir = TempDir::new("ipc-mode");
    let packages = copy_fixtures(&dir);
    let path = dir.join("manager.cfg");
    std::fs::write(&path, ipc_config(&dir, &packages, "")).unwrap();
    // The unit's UMask=0077.
    let mut command = manager_command(&path);
    // SAFETY: umask is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut daemon = Daemon::from_child(child);
    daemon.wait_for_log("ready:");
    for socket in ["rep", "pub", "sub"] {
        let mode = std::fs::metadata(dir.join(socket)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660, "{socket}: mode {mode:o}");
    }
    assert_eq!(daemon.stop().code(), Some(0));
}
