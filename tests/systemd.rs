//! What systemd receives from the manager, tried without systemd: the
//! readiness notifications on `NOTIFY_SOCKET`, and the journal's native
//! protocol with its fields (CLIENT_ID, PEER) on a fake journal socket.

use crate::util::{copy_fixtures, exit_within, manager_command, standalone_config, Daemon, TempDir, DEADLINE};
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The next datagram on `socket` that is not empty, within the deadline.
fn receive(socket: &UnixDatagram, deadline: Instant) -> Option<Vec<u8>> {
    let mut buffer = vec![0u8; 65536];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        socket
            .set_read_timeout(Some(left.max(std::time::Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buffer) {
            Ok(0) => continue,
            Ok(n) => return Some(buffer[..n].to_vec()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return None,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// The notifications up to the first that contains `wanted`.
fn notification_with(socket: &UnixDatagram, wanted: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while let Some(datagram) = receive(socket, deadline) {
        let text = String::from_utf8(datagram).unwrap();
        if text.contains(wanted) {
            return text;
        }
        seen.push(text);
    }
    panic!("no notification with {wanted:?} within {DEADLINE:?}; got {seen:?}");
}

#[test]
fn systemd_is_told_ready_reloading_and_stopping() {
    let dir = TempDir::new("notify");
    let packages = copy_fixtures(&dir);
    let config = dir.join("manager.cfg");
    std::fs::write(&config, standalone_config(&packages, "")).unwrap();
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let child = manager_command(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Daemon::from_child(child);
    assert_eq!(notification_with(&socket, "READY=1"), "READY=1\n");
    daemon.signal("HUP");
    let reloading = notification_with(&socket, "RELOADING=1");
    // systemd 253 and later end a reload that lacks its start time.
    assert!(reloading.contains("\nMONOTONIC_USEC="), "{reloading:?}");
    assert_eq!(notification_with(&socket, "READY=1"), "READY=1\n");
    assert!(daemon.stop().success());
    assert_eq!(notification_with(&socket, "STOPPING=1"), "STOPPING=1\n");
}

/// The watchdog (`WatchdogSec=` in the unit): with `WATCHDOG_USEC` set,
/// `WATCHDOG=1` comes from the loop at half of it, every time well within
/// it; a process stopped (SIGSTOP: a stuck loop, as far as systemd can
/// tell) sends none, and the pings resume with it. Without `WATCHDOG_USEC`,
/// or when `WATCHDOG_PID` names another process (a plugin that inherited
/// it), there is none.
#[test]
fn the_watchdog_hears_from_the_loop_at_half_its_interval_and_never_from_a_stopped_one() {
    let dir = TempDir::new("watchdog");
    let packages = copy_fixtures(&dir);
    let config = dir.join("manager.cfg");
    std::fs::write(&config, standalone_config(&packages, "")).unwrap();
    let start = |name: &str, env: &[(&str, &str)]| {
        let socket_path = dir.join(name);
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        let mut command = manager_command(&config);
        command.env("NOTIFY_SOCKET", &socket_path).env_remove("WATCHDOG_USEC").env_remove("WATCHDOG_PID");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let daemon = Daemon::from_child(child);
        assert_eq!(notification_with(&socket, "READY=1"), "READY=1\n");
        (daemon, socket)
    };
    let interval = Duration::from_millis(1500);
    let (daemon, socket) = start("notify.sock", &[("WATCHDOG_USEC", &interval.as_micros().to_string())]);
    // Three pings, each within the interval of the one before.
    let mut last = Instant::now();
    for ping in 0..3 {
        assert_eq!(notification_with(&socket, "WATCHDOG=1"), "WATCHDOG=1\n");
        let gap = last.elapsed();
        assert!(gap < interval, "ping {ping} came {gap:?} after the last, later than WATCHDOG_USEC {interval:?}");
        last = Instant::now();
    }
    // Stopped, it says nothing for twice the interval; continued, it pings again.
    crate::util::send_signal(daemon.pid(), "STOP");
    while receive(&socket, Instant::now() + Duration::from_millis(50)).is_some() {}
    assert_eq!(receive(&socket, Instant::now() + interval * 2), None, "a ping from a stopped process");
    crate::util::send_signal(daemon.pid(), "CONT");
    assert_eq!(notification_with(&socket, "WATCHDOG=1"), "WATCHDOG=1\n");
    drop(daemon);

    for (name, env) in [
        ("none.sock", &[][..]),
        ("other.sock", &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")][..]),
    ] {
        let (_daemon, socket) = start(name, env);
        let quiet = receive(&socket, Instant::now() + Duration::from_millis(600));
        assert!(quiet.is_none(), "{name}: {:?}", quiet.map(String::from_utf8));
    }
}

/// One record of the journal's native protocol: `KEY=value\n`, or
/// `KEY\n`, a 64-bit little-endian length and the value, `\n`, for a
/// value with newlines (systemd.io/JOURNAL_NATIVE_PROTOCOL).
fn journal_fields(mut datagram: &[u8]) -> HashMap<String, String> {
    let mut fields = HashMap::new();
    while !datagram.is_empty() {
        let end = datagram
            .iter()
            .position(|&b| b == b'\n')
            .expect("a field ends with a newline");
        let line = &datagram[..end];
        if let Some(equals) = line.iter().position(|&b| b == b'=') {
            let key = String::from_utf8(line[..equals].to_vec()).unwrap();
            fields.insert(key, String::from_utf8_lossy(&line[equals + 1..]).into_owned());
            datagram = &datagram[end + 1..];
        } else {
            let key = String::from_utf8(line.to_vec()).unwrap();
            let rest = &datagram[end + 1..];
            let length = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.insert(key, String::from_utf8_lossy(&rest[8..8 + length]).into_owned());
            datagram = &rest[8 + length + 1..];
        }
    }
    fields
}

/// The manager in a mount namespace whose /run is `run` (so that the
/// journal logger's fixed /run/systemd/journal/socket is the test's), with
/// `JOURNAL_STREAM` naming its stderr, a file, as systemd names its stream.
/// None where this machine cannot make the namespace (not root, and no
/// unprivileged user namespaces).
fn spawn_in_namespace(run: &std::path::Path, config: &std::path::Path, stderr: &std::path::Path) -> Option<Child> {
    // SAFETY: geteuid reads the process's credentials, nothing else.
    let as_root = unsafe { libc::geteuid() } == 0;
    let unshare: &[&str] = if as_root {
        &["--mount"]
    } else {
        &["--mount", "--map-root-user"]
    };
    let probe = Command::new("unshare").args(unshare).arg("true").status();
    if !probe.is_ok_and(|status| status.success()) {
        return None;
    }
    let file = std::fs::File::create(stderr).unwrap();
    let metadata = file.metadata().unwrap();
    let program = manager_command(config);
    let child = Command::new("unshare")
        .args(unshare)
        .args(["sh", "-c", "mount --bind \"$0\" /run && exec \"$@\""])
        .arg(run)
        .arg(program.get_program())
        .args(program.get_args())
        .env_remove("NOTIFY_SOCKET")
        .env("JOURNAL_STREAM", format!("{}:{}", metadata.dev(), metadata.ino()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    Some(child)
}

/// Kills the manager when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn under_the_journal_lines_carry_the_client_id_and_the_peer_as_fields() {
    let dir = TempDir::new("journal");
    let packages = copy_fixtures(&dir);
    let config = dir.join("manager.cfg");
    // The SUB socket connects: its line names the peer.
    let text = standalone_config(&packages, "")
        .replace("sub_endpoint = @tcp://127.0.0.1:*", "sub_endpoint = >tcp://127.0.0.1:9");
    std::fs::write(&config, text).unwrap();
    let run = dir.join("run");
    std::fs::create_dir_all(run.join("systemd/journal")).unwrap();
    let journal = UnixDatagram::bind(run.join("systemd/journal/socket")).unwrap();
    let stderr = dir.join("stderr");
    let Some(child) = spawn_in_namespace(&run, &config, &stderr) else {
        eprintln!("cannot make a mount namespace here (unshare --mount): not checked");
        return;
    };
    let mut child = Killed(child);

    let deadline = Instant::now() + DEADLINE;
    let (mut client_line, mut peer_line) = (None, None);
    let mut seen = Vec::new();
    while client_line.is_none() || peer_line.is_none() {
        let Some(datagram) = receive(&journal, deadline) else {
            panic!(
                "no journal record with CLIENT_ID and PEER within {DEADLINE:?}; got {seen:#?}; stderr: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        let fields = journal_fields(&datagram);
        // The first line about it (the files read follow, at debug).
        if client_line.is_none() && fields.get("CLIENT_ID").map(String::as_str) == Some("domogik-diskfree.testhost") {
            client_line = Some(fields.clone());
        }
        if fields.contains_key("PEER") {
            peer_line = Some(fields.clone());
        }
        seen.push(fields);
    }
    let client_line = client_line.unwrap();
    assert_eq!(client_line["MESSAGE"], "package found: domogik-diskfree.testhost");
    assert_eq!(
        client_line["PRIORITY"], "5",
        "info is notice, as systemd-journal-logger maps it"
    );
    assert_eq!(client_line["SYSLOG_IDENTIFIER"], "dmg_manager");
    let peer_line = peer_line.unwrap();
    assert_eq!(peer_line["PEER"], "tcp://127.0.0.1:9");
    assert!(
        peer_line["MESSAGE"].contains("connecting to tcp://127.0.0.1:9"),
        "{peer_line:?}"
    );
    assert!(!peer_line.contains_key("CLIENT_ID"), "a field only where it applies");

    // It stops cleanly on SIGTERM, every line in the journal, none on stderr.
    // The journal is read on meanwhile, as journald does: a datagram socket
    // holds 10 unread records (net.unix.max_dgram_qlen), after which the
    // manager's next line would wait for a reader that never comes.
    crate::util::send_signal(child.0.id(), "TERM");
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = exit_within(&mut child.0, std::time::Duration::ZERO) {
            break status;
        }
        assert!(Instant::now() < deadline, "not stopped on SIGTERM within {DEADLINE:?}");
        let _ = receive(&journal, Instant::now() + std::time::Duration::from_millis(10));
    };
    assert!(status.success());
    let text = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(text, "", "every line went to the journal");
}
