//! The manager on a Domogik bus whose MQ runs an old libzmq (issue 21):
//! pyzmq 16 bundles libzmq 4.1, which speaks ZMTP 3.0 and knows no
//! PING/PONG (ZMTP 3.1, libzmq 4.2). What Domogik 0.4/0.5 hosts on Debian
//! Jessie and Stretch ran. tests/oldbus.py plays the broker, the forwarder
//! and Domogik's components on that old libzmq.
//!
//! The broker and the forwarder are domogik-mq's own when
//! `DOMOGIKMQ_MIRROR` names a git directory of domogik/domogik-mq (its tag
//! 1.4 is exported into the test's temp dir at run time, as
//! shared/real-domogik does; nothing of it is in this repository), else the
//! minimal ones of tests/oldbus.py. The old pyzmq comes from
//! scripts/old-pyzmq (run here when missing); where none can be installed
//! (no Python 2.7 or 3.6, no PyPI) the test says why and passes without
//! running, unless `DMG_REQUIRE_OLD_PYZMQ=1` (CI) makes that a failure.
//! `DMG_OLD_BUS_SECONDS` makes it longer (a soak: one request a second).

use crate::util::*;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oldbus.py");

/// The old Python with pyzmq 16, as a command with its `PYTHONPATH`; `None`
/// (said on stderr) when none can be had.
fn old_pyzmq() -> Option<(PathBuf, PathBuf)> {
    static FOUND: std::sync::OnceLock<Result<(PathBuf, PathBuf), String>> = std::sync::OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("old-pyzmq");
        let output = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/old-pyzmq"))
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run scripts/old-pyzmq: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok((dir.join("python"), dir.join("site")))
    });
    match found {
        Ok(found) => Some(found.clone()),
        Err(why) if std::env::var_os("DMG_REQUIRE_OLD_PYZMQ").is_some_and(|v| v == "1") => {
            panic!("DMG_REQUIRE_OLD_PYZMQ=1 but no old pyzmq: {why}")
        }
        Err(why) => {
            eprintln!("SKIPPED: the old-libzmq bus test needs pyzmq 16 on Python 2.7 or 3.6: {why}");
            None
        }
    }
}

/// A free loopback port (bound, then released for the bus to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// domogik-mq 1.4's `src` folder, exported from `DOMOGIKMQ_MIRROR`.
fn domogik_mq(dir: &TempDir) -> Option<PathBuf> {
    let mirror = std::env::var_os("DOMOGIKMQ_MIRROR")?;
    let export = dir.join("domogik-mq");
    std::fs::create_dir_all(&export).unwrap();
    let status = Command::new("sh")
        .args(["-c", "git --git-dir=\"$0\" archive 1.4 | tar -x -C \"$1\""])
        .arg(&mirror)
        .arg(&export)
        .status()
        .unwrap();
    assert!(status.success(), "cannot export domogik-mq 1.4 from DOMOGIKMQ_MIRROR={mirror:?}");
    Some(export.join("src"))
}

/// One role of tests/oldbus.py, its output into files of `dir`.
struct Role {
    name: &'static str,
    child: Child,
    stderr: PathBuf,
}

impl Role {
    fn start(dir: &TempDir, (python, site): &(PathBuf, PathBuf), name: &'static str, args: &[&str]) -> Role {
        let stderr = dir.join(&format!("{name}.err"));
        let child = Command::new(python)
            .env("PYTHONPATH", site)
            .env("PYTHONUNBUFFERED", "1")
            .arg(SCRIPT)
            .arg(name)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(&format!("{name}.out"))).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Role { name, child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts TCP connections on `port`.
fn await_listening(port: u16, role: &Role) {
    let deadline = Instant::now() + DEADLINE;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {port} within {DEADLINE:?}; {}:\n{}",
            role.name,
            role.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The old bus: the broker and the forwarder running, and the manager's
/// config for it.
struct OldBus {
    python: (PathBuf, PathBuf),
    broker: Role,
    forwarder: Role,
    broker_at: String,
    xsub_at: String,
    xpub_at: String,
    /// domogik-mq's, or tests/oldbus.py's.
    whose: &'static str,
    config: String,
}

impl OldBus {
    fn start(dir: &TempDir, python: (PathBuf, PathBuf), extra_manager_keys: &str) -> OldBus {
        let packages = copy_fixtures(dir);
        let mq = domogik_mq(dir);
        let mq_arg: Vec<&str> = mq.iter().map(|src| src.to_str().unwrap()).collect();
        let (req_rep, pub_port, sub_port) = (free_port(), free_port(), free_port());
        let endpoint = |port: u16| format!("tcp://127.0.0.1:{port}");
        let (broker_at, xsub_at, xpub_at) = (endpoint(req_rep), endpoint(pub_port), endpoint(sub_port));
        let broker = Role::start(dir, &python, "broker", &[&[broker_at.as_str()][..], &mq_arg].concat());
        let forwarder = Role::start(dir, &python, "forwarder", &[&[xsub_at.as_str(), &xpub_at][..], &mq_arg].concat());
        await_listening(req_rep, &broker);
        await_listening(pub_port, &forwarder);
        await_listening(sub_port, &forwarder);
        let config = format!(
            "[mq]\nip = 127.0.0.1\nreq_rep_port = {req_rep}\npub_port = {pub_port}\nsub_port = {sub_port}\n\
             [manager]\nhost = testhost\npackages_dir = {}\nlog_level = debug\n{extra_manager_keys}",
            packages.display()
        );
        OldBus {
            python,
            broker,
            forwarder,
            broker_at,
            xsub_at,
            xpub_at,
            whose: if mq.is_some() { "domogik-mq 1.4" } else { "tests/oldbus.py's broker and forwarder" },
            config,
        }
    }
}

#[test]
fn an_old_libzmq_bus_answers_every_request_with_the_manager_on_it() {
    let Some(python) = old_pyzmq() else { return };
    let dir = TempDir::new("oldbus");
    // Our own status every second: each one is awaited back through the
    // forwarder (src/core/bus/echo.rs), and must come.
    let bus = OldBus::start(&dir, python, "status_interval = 1\n");
    let OldBus { python, broker, forwarder, broker_at, xsub_at, xpub_at, .. } = &bus;
    // The manager at Domogik's timings (no test knob): its links' first
    // second is when a ZMTP PING would go out.
    let daemon = Daemon::start(&dir, &bus.config);
    let seconds: u64 = std::env::var("DMG_OLD_BUS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6);
    let rounds = seconds.max(11);
    let mut domogik = Role::start(
        &dir,
        python,
        "domogik",
        &[broker_at, xsub_at, xpub_at, "testhost", &seconds.to_string(), &rounds.to_string()],
    );
    // Each round waits 5 s at most for a status and 5 s for an answer; 3
    // failed rounds end it.
    let limit = Duration::from_secs(seconds + 60);
    let status = exit_within(&mut domogik.child, limit)
        .unwrap_or_else(|| panic!("tests/oldbus.py domogik still running after {limit:?}"));
    let summary = std::fs::read_to_string(dir.join("domogik.out")).unwrap();
    let report = || {
        format!(
            "{}\n--- domogik:\n{}\n--- broker:\n{}\n--- forwarder:\n{}\n--- manager:\n{}",
            summary.trim(),
            domogik.stderr(),
            broker.stderr(),
            forwarder.stderr(),
            daemon.log().join("\n")
        )
    };
    assert!(
        status.success() && summary.contains(&format!("{rounds}/{rounds} requests answered")),
        "the old-libzmq bus did not answer every request: {}",
        report()
    );
    // Nothing reached Domogik's side that it could not read: no frame of
    // ZMTP 3.1 delivered as data (the minimal broker and forwarder say
    // UNEXPECTED; Domogik's broker dies of it with a traceback).
    for role in [broker, forwarder, &domogik] {
        let stderr = role.stderr();
        assert!(
            !stderr.contains("UNEXPECTED") && !stderr.contains("Traceback"),
            "{} saw what it could not read: {}",
            role.name,
            report()
        );
    }
    // And the manager kept its links: no connection lost or given up.
    let log = daemon.log();
    let dropped: Vec<&String> = log
        .iter()
        .filter(|line| {
            ["lost its connection", "gave up", "is silent", "did not relay"]
                .iter()
                .any(|what| line.contains(what))
        })
        .collect();
    assert!(dropped.is_empty(), "links dropped on the old bus: {dropped:?}\n{}", report());
    // The manager's own statuses crossed the old forwarder too.
    assert!(!summary.contains(" 0 statuses of the manager itself"), "{}", report());
    eprintln!("{} ({})", summary.trim(), bus.whose);
}

/// A forwarder that stops relaying without closing anything (stopped with
/// SIGSTOP: its kernel still holds the connections, and would answer TCP
/// keepalive) is noticed from our own status not coming back, and the
/// links are opened anew; once it relays again, so it is said, and a
/// plugin's status reaches the manager through it.
#[test]
fn a_forwarder_that_stops_relaying_is_noticed_by_our_own_status_not_coming_back() {
    let Some(python) = old_pyzmq() else { return };
    let dir = TempDir::new("oldbus-stopped");
    let bus = OldBus::start(&dir, python, "status_interval = 0.5\n");
    // Domogik's timings (its broker heartbeats every second): the echo is
    // awaited for 5 s.
    let mut daemon = Daemon::start(&dir, &bus.config);
    let context = zmq::Context::new();
    let ui = subscriber(&context, &bus.xpub_at, "plugin.status");
    let ours = |p: &Publication| p.body["type"] == "core" && p.body["name"] == "manager";
    await_publication(&ui, "of the manager's own status through the forwarder", ours);

    let before = daemon.log().len();
    send_signal(bus.forwarder.child.id(), "STOP");
    let missed = daemon.wait_for_new_log("did not relay our status back", before);
    send_signal(bus.forwarder.child.id(), "CONT");
    daemon.wait_for_new_log("relays our statuses again", before);
    assert!(missed.contains(&bus.xpub_at), "{missed}");
    // A plugin's status through the same forwarder reaches the manager.
    let plugin = publisher(&context, &bus.xsub_at);
    let deadline = Instant::now() + DEADLINE;
    loop {
        plugin.send_multipart(later_status("ebusd", "testhost", "alive"), 0).unwrap();
        let reply = broker_request(&context, &bus.broker_at, "manager", None, "clients.list.get", Duration::from_millis(300));
        if reply.is_some_and(|reply| body_of(&reply[3])["clients"]["domogik-ebusd.testhost"]["status"] == "alive") {
            break;
        }
        assert!(Instant::now() < deadline, "ebusd never alive after the forwarder came back");
    }
    assert!(!bus.forwarder.stderr().contains("UNEXPECTED"), "{}", bus.forwarder.stderr());
}
