//! Faults the manager meets in the field: misbehaving peers on the request
//! port, a forwarder that restarts, packages that break on disk, signals
//! in storms. Each test checks that the manager goes on serving, unharmed.

use crate::layouts::forwarder_config;
use crate::util::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn start(label: &str, extra_manager_keys: &str) -> (TempDir, Daemon) {
    let dir = TempDir::new(label);
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, extra_manager_keys));
    (dir, daemon)
}

fn assert_list_reply(reply: &[Vec<u8>]) {
    assert_eq!(reply[0], b"clients.list.result", "{reply:?}");
    assert_eq!(body_of(&reply[1])["clients"].as_object().unwrap().len(), 4);
}

/// A ZMTP 3.0 greeting (64 bytes) for the NULL mechanism, as a client.
fn zmtp3_greeting() -> Vec<u8> {
    let mut greeting = vec![0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 3, 0];
    greeting.extend(b"NULL");
    greeting.resize(64, 0);
    greeting
}

/// What non-ZeroMQ and broken peers send to the request port, in turn.
fn misbehave(address: &str, round: u64, noise: &mut Noise, stalled: &mut Vec<TcpStream>) {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return;
    };
    let _ = match round % 5 {
        // A port scanner: connect, close.
        0 => Ok(()),
        1 => stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8\r\n\r\n"),
        2 => stream.write_all(&noise.bytes(512)),
        // What libzmq takes for a ZMTP 1.0 peer: an anonymous identity,
        // then a request without the empty delimiter, then gone. libzmq's
        // REP socket loses the next reply to someone else after this.
        3 => stream.write_all(&[1, 0, 2, 1, b'A', 2, 0, b'B']),
        // Half a greeting, then silence: a handshake that never ends.
        _ => stream.write_all(&zmtp3_greeting()[..20]),
    };
    if round % 5 == 4 && stalled.len() < 20 {
        stalled.push(stream);
    }
}

#[test]
fn non_zeromq_clients_never_cost_another_client_its_reply() {
    let (_dir, daemon) = start("non-zmq", "");
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let (stop_here, rounds_here, address) = (Arc::clone(&stop), Arc::clone(&rounds), tcp_address(&daemon.rep));
    let intruder = std::thread::spawn(move || {
        let (mut noise, mut stalled) = (Noise::new(5), Vec::new());
        while !stop_here.load(Ordering::Relaxed) {
            misbehave(
                &address,
                rounds_here.fetch_add(1, Ordering::Relaxed),
                &mut noise,
                &mut stalled,
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    });

    let client = daemon.req_socket();
    let deadline = Instant::now() + DEADLINE;
    let mut answered = 0;
    // Every request, plain or MDP, gets its reply, until the intruder has
    // done each of its tricks many times over.
    while answered < 300 || rounds.load(Ordering::Relaxed) < 250 {
        assert!(Instant::now() < deadline, "{answered} requests, {rounds:?} intrusions");
        if answered % 2 == 0 {
            assert_list_reply(&request_on(&client, &[b"clients.list.get", b"{}"]));
        } else {
            let reply = request_on(&client, &[b"MDPC01", b"manager", b"clients.detail.get", b"{}"]);
            assert_eq!(reply[2], b"clients.detail.result");
        }
        answered += 1;
    }
    stop.store(true, Ordering::SeqCst);
    intruder.join().unwrap();
    // A new client, after it all, is served too.
    assert_list_reply(&daemon.request(&[b"clients.list.get", b"{}"]));
}

/// Sends SIGHUP and waits for the new log line that says the rescan saw `needle`.
fn rescan_until(daemon: &mut Daemon, needle: &str) -> String {
    let before = daemon.log().len();
    daemon.signal("HUP");
    daemon.wait_for_new_log(needle, before)
}

fn client_count(daemon: &Daemon) -> usize {
    daemon.clients("clients.list.get").as_object().unwrap().len()
}

#[test]
fn forwarder_stops_and_restarts_on_the_same_ports() {
    let forwarder = Forwarder::start(None);
    let ports = forwarder.ports();
    let dir = TempDir::new("forwarder-restart");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &forwarder_config(&forwarder, &packages));
    let plugin = publisher(daemon.context(), &forwarder.xsub);
    let ui = subscriber(daemon.context(), &forwarder.xpub, "clients");
    connect_pubsub(&plugin, &ui);

    drop(forwarder);
    // The forwarder is gone: requests are still answered.
    assert_list_reply(&daemon.request(&[b"clients.list.get", b"{}"]));
    let _forwarder = Forwarder::start(Some(ports));
    // Every peer reconnects by itself, the manager's two sockets too:
    // statuses reach it and its publications reach user interfaces again.
    connect_pubsub(&plugin, &ui);
    plugin
        .send_multipart(later_status("rfxcom", "testhost", "alive"), 0)
        .unwrap();
    await_publication(&ui, "rfxcom alive", |p| {
        p.category() == "clients.list" && p.body["domogik-rfxcom.testhost"]["status"] == "alive"
    });
    let starts = daemon.log().iter().filter(|line| line.contains("ready:")).count();
    assert_eq!(starts, 1, "the manager restarted");
}

#[test]
fn packages_dir_deleted_made_unreadable_replaced_and_recreated() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, mut daemon) = start("packages-dir", "rescan_interval = 3600\n");
    let packages = dir.join("packages");

    std::fs::remove_dir_all(&packages).unwrap();
    let line = rescan_until(&mut daemon, "cannot list packages_dir");
    assert!(
        line.contains(&packages.display().to_string())
            && line.contains("No such file")
            && line.contains("keeping the 4 known clients, retrying at the next rescan"),
        "{line}"
    );
    assert_eq!(client_count(&daemon), 4, "the known clients are kept");

    // Recreated, with one package less and one more.
    copy_fixtures(&dir);
    std::fs::remove_dir_all(packages.join("plugin_test")).unwrap();
    std::fs::create_dir(packages.join("plugin_fresh")).unwrap();
    std::fs::write(
        packages.join("plugin_fresh/info.json"),
        r#"{"identity": {"type": "plugin", "name": "fresh"}}"#,
    )
    .unwrap();
    rescan_until(&mut daemon, "is readable again");
    daemon.wait_for_log("package found: domogik-fresh.testhost");
    daemon.wait_for_log("package removed: domogik-test.testhost");
    assert_eq!(client_count(&daemon), 4);

    std::fs::set_permissions(&packages, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read_dir(&packages).is_ok() {
        // Root (CAP_DAC_OVERRIDE) reads it anyway: nothing to test here.
        // The cases below fail for root as well.
        eprintln!("note: running privileged, chmod 000 does not deny reads; that case is skipped");
    } else {
        let line = rescan_until(&mut daemon, "cannot list packages_dir");
        assert!(line.contains("Permission denied"), "{line}");
        assert_eq!(client_count(&daemon), 4);
    }
    std::fs::set_permissions(&packages, std::fs::Permissions::from_mode(0o755)).unwrap();

    let elsewhere = dir.join("elsewhere");
    std::fs::rename(&packages, &elsewhere).unwrap();
    std::fs::write(&packages, "a file where the folder was").unwrap();
    let line = rescan_until(&mut daemon, "cannot list packages_dir");
    assert!(line.contains("Not a directory"), "{line}");
    assert_eq!(client_count(&daemon), 4);

    std::fs::remove_file(&packages).unwrap();
    std::os::unix::fs::symlink(&packages, &packages).unwrap();
    let line = rescan_until(&mut daemon, "cannot list packages_dir");
    assert!(line.contains("symbolic links"), "{line}");
    assert_eq!(client_count(&daemon), 4);

    std::fs::remove_file(&packages).unwrap();
    std::fs::rename(&elsewhere, &packages).unwrap();
    rescan_until(&mut daemon, "is readable again");
    assert_list_reply(&daemon.request(&[b"clients.list.get", b"{}"]));
}

#[test]
fn info_json_truncated_mid_write_or_replaced_atomically() {
    let (dir, daemon) = start("info-json-writes", "rescan_interval = 3600\n");
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);
    let path = dir.join("packages/plugin_diskfree/info.json");
    let full = std::fs::read(&path).unwrap();
    let diskfree = |p: &Publication| p.body["domogik-diskfree.testhost"].clone();
    let detail_where = |what: &str, wanted: &dyn Fn(&serde_json::Value) -> bool| {
        diskfree(&await_publication(&ui, what, |p| {
            p.category() == "clients.detail" && wanted(&diskfree(p))
        }))
    };

    // An installer writes in place, and the rescan lands half-way.
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&full[..full.len() / 2]).unwrap();
    daemon.signal("HUP");
    let entry = detail_where("diskfree half-written", &|e| e["status"] == "invalid");
    let comment = entry["comment"].as_str().unwrap();
    assert!(comment.contains("JSON error") && comment.contains("EOF"), "{comment}");
    assert_eq!(entry["data"], serde_json::json!({}));
    // The write completes: the next rescan reads it whole.
    file.write_all(&full[full.len() / 2..]).unwrap();
    drop(file);
    daemon.signal("HUP");
    let entry = detail_where("diskfree whole again", &|e| e["status"] == "unknown");
    assert_eq!(entry["data"], fixture_json("diskfree"));
    assert!(entry.get("comment").is_none());

    // Truncated to nothing.
    std::fs::File::create(&path).unwrap();
    daemon.signal("HUP");
    detail_where("diskfree empty", &|e| e["status"] == "invalid");
    std::fs::write(&path, &full).unwrap();
    daemon.signal("HUP");
    detail_where("diskfree restored", &|e| e["status"] == "unknown");

    // Replaced atomically (a temp file renamed over it): never seen half
    // written, and a running plugin keeps its status across the reload.
    plugin.send_multipart(seed_status("diskfree", "alive"), 0).unwrap();
    detail_where("diskfree alive", &|e| e["status"] == "alive");
    let mut changed = fixture_json("diskfree");
    changed["identity"]["version"] = "9.9".into();
    let temp = dir.join("packages/plugin_diskfree/.info.json.tmp");
    std::fs::write(&temp, changed.to_string()).unwrap();
    std::fs::rename(&temp, &path).unwrap();
    daemon.signal("HUP");
    let entry = detail_where("diskfree 9.9", &|e| e["data"]["identity"]["version"] == "9.9");
    assert_eq!(entry["status"], "alive");
}

#[test]
fn plugin_folder_becomes_a_symlink_loop_a_file_or_a_fifo() {
    let (dir, mut daemon) = start("plugin-folder", "rescan_interval = 3600\n");
    let folder = dir.join("packages/plugin_ebusd");
    let ebusd = |daemon: &Daemon| daemon.clients("clients.detail.get")["domogik-ebusd.testhost"].clone();
    let expect_invalid = |daemon: &mut Daemon, why: &str| {
        rescan_until(daemon, "package changed: domogik-ebusd.testhost is invalid");
        let entry = ebusd(daemon);
        assert_eq!(entry["status"], "invalid");
        let comment = entry["comment"].as_str().unwrap();
        assert!(
            comment.contains("plugin_ebusd/info.json") && comment.contains(why),
            "{comment}"
        );
    };

    std::fs::remove_dir_all(&folder).unwrap();
    std::os::unix::fs::symlink(&folder, &folder).unwrap();
    expect_invalid(&mut daemon, "symbolic links");

    std::fs::remove_file(&folder).unwrap();
    std::fs::write(&folder, "not a folder").unwrap();
    expect_invalid(&mut daemon, "not a folder");

    // A folder whose info.json is a FIFO, or links to itself: never opened
    // (opening a FIFO would block the manager until someone writes to it).
    std::fs::remove_file(&folder).unwrap();
    std::fs::create_dir(&folder).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(folder.join("info.json"))
        .status()
        .unwrap();
    assert!(status.success());
    expect_invalid(&mut daemon, "not a regular file");
    assert_list_reply(&daemon.request(&[b"clients.list.get", b"{}"]));
    std::fs::remove_file(folder.join("info.json")).unwrap();
    std::os::unix::fs::symlink(folder.join("info.json"), folder.join("info.json")).unwrap();
    expect_invalid(&mut daemon, "symbolic links");

    std::fs::remove_file(folder.join("info.json")).unwrap();
    std::fs::copy(format!("{FIXTURES}/plugin_ebusd/info.json"), folder.join("info.json")).unwrap();
    rescan_until(&mut daemon, "package changed: domogik-ebusd.testhost");
    let entry = ebusd(&daemon);
    assert_eq!(entry["status"], "unknown");
    assert_eq!(entry["data"], fixture_json("ebusd"));
}

#[test]
fn a_client_that_leaves_before_its_reply_costs_the_next_one_nothing() {
    let dir = TempDir::new("leavers");
    let packages = copy_fixtures(&dir);
    let mut daemon = Daemon::start(&dir, &standalone_config_at(&packages, "trace", ""));
    let before = daemon.log().len();
    for round in 0..30 {
        // Its own context, so that dropping it waits until the request is
        // sent; then the client is gone before the manager can answer.
        let context = zmq::Context::new();
        let leaver = context.socket(zmq::REQ).unwrap();
        leaver.set_linger(1000).unwrap();
        leaver.connect(&daemon.rep).unwrap();
        let request: &[&[u8]] = if round % 2 == 0 {
            &[b"clients.detail.get", b"{}"]
        } else {
            &[b"MDPC01", b"manager", b"clients.detail.get", b"{}"]
        };
        leaver.send_multipart(request, 0).unwrap();
        drop(leaver);
        drop(context);
    }
    // The manager did answer them (into the void)...
    daemon.wait_for_new_log("request answered: clients.detail.result", before);
    // ...and everyone after them is served.
    let client = daemon.req_socket();
    for _ in 0..20 {
        assert_list_reply(&request_on(&client, &[b"clients.list.get", b"{}"]));
    }
    assert_list_reply(&daemon.request(&[b"clients.list.get", b"{}"]));
}

#[test]
fn sighup_storm_is_survived() {
    let (dir, mut daemon) = start("sighup-storm", "rescan_interval = 3600\n");
    let mut storm = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "for i in $(seq 2000); do kill -HUP {} || exit 1; done",
            daemon.pid()
        ))
        .spawn()
        .unwrap();
    let client = daemon.req_socket();
    let deadline = Instant::now() + DEADLINE;
    let mut answered = 0;
    loop {
        assert_list_reply(&request_on(&client, &[b"clients.list.get", b"{}"]));
        answered += 1;
        if let Some(status) = storm.try_wait().unwrap() {
            assert!(status.success(), "kill failed: the manager died during the storm");
            break;
        }
        assert!(Instant::now() < deadline, "the storm did not end");
    }
    // Signals coalesce (the last HUPs of the storm may even share the
    // rescan of the next one): at most one rescan per HUP, and rescans
    // still work.
    // (Built aside and moved in whole: the storm's last HUPs may still be
    // being handled.)
    std::fs::create_dir(dir.join("plugin_late")).unwrap();
    std::fs::write(
        dir.join("plugin_late/info.json"),
        r#"{"identity": {"type": "plugin", "name": "late"}}"#,
    )
    .unwrap();
    let before = daemon.log().len();
    std::fs::rename(dir.join("plugin_late"), dir.join("packages/plugin_late")).unwrap();
    daemon.signal("HUP");
    let line = daemon.wait_for_new_log("package found: domogik-late.testhost", before);
    assert!(!line.contains("invalid"), "{line}");
    let rescans = daemon
        .log()
        .iter()
        .filter(|line| line.contains("SIGHUP: rescanning"))
        .count();
    assert!((1..=2001).contains(&rescans), "{rescans} rescans");
    eprintln!("2000 SIGHUPs: {rescans} rescans, {answered} requests answered meanwhile");
    // A signal must never interrupt a socket call: that is how replies
    // were lost (src/sys/signals.rs), mostly without a timeout to show it.
    let interrupted: Vec<_> = daemon.log().into_iter().filter(|l| l.contains("Interrupted")).collect();
    assert!(interrupted.is_empty(), "{interrupted:?}");
    assert_eq!(daemon.stop().code(), Some(0));
}

/// Waits until the peer closes `stream` (EOF or reset), within the deadline.
fn assert_closed_by_peer(stream: &mut TcpStream, what: &str) {
    use std::io::Read;
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buffer = [0u8; 256];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("{what}: connection still open ({e})"),
        }
    }
}

#[test]
fn frames_over_the_size_limits_are_refused_unread_and_the_next_client_served() {
    use std::io::Read;
    let (_dir, daemon) = start("oversized", "");

    // A ZMTP 3.0 client that completes the handshake as a REQ socket,
    // then announces a 1 TiB frame: libzmq must drop the connection on
    // reading the size (allocating it would abort the process).
    let mut stream = TcpStream::connect(tcp_address(&daemon.rep)).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(&zmtp3_greeting()).unwrap();
    let mut greeting = [0u8; 64];
    stream.read_exact(&mut greeting).unwrap();
    assert_eq!(
        (greeting[0], greeting[9], greeting[10]),
        (0xff, 0x7f, 3),
        "{greeting:?}"
    );
    let mut ready = vec![5];
    ready.extend(b"READY");
    ready.push(11);
    ready.extend(b"Socket-Type");
    ready.extend(3u32.to_be_bytes());
    ready.extend(b"REQ");
    let mut command = vec![0x04, ready.len() as u8];
    command.extend(ready);
    stream.write_all(&command).unwrap();
    let mut header = vec![0x02];
    header.extend((1u64 << 40).to_be_bytes());
    stream.write_all(&header).unwrap();
    assert_closed_by_peer(&mut stream, "1 TiB frame header");

    // A real REQ client sending 9 MiB (over the 8 MiB limit): its
    // connection is dropped, which its socket monitor reports.
    let big = daemon.req_socket();
    big.monitor("inproc://big-monitor", zmq::SocketEvent::DISCONNECTED as i32)
        .unwrap();
    let monitor = daemon.context().socket(zmq::PAIR).unwrap();
    monitor.set_rcvtimeo(DEADLINE.as_millis() as i32).unwrap();
    monitor.connect("inproc://big-monitor").unwrap();
    big.send_multipart([b"clients.list.get".to_vec(), vec![b' '; 9 * 1024 * 1024]], 0)
        .unwrap();
    let event = monitor
        .recv_multipart(0)
        .expect("the 9 MiB request's connection is dropped");
    assert_eq!(
        u16::from_le_bytes([event[0][0], event[0][1]]),
        zmq::SocketEvent::DISCONNECTED as u16
    );

    // A plugin sending a 2 MiB status message (over the 1 MiB limit):
    // dropped, and once its socket has reconnected its statuses count again.
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);
    plugin
        .send_multipart([b"plugin.1_2.0_1".to_vec(), vec![b' '; 2 * 1024 * 1024]], 0)
        .unwrap();
    connect_pubsub(&plugin, &ui);
    // Unread: had it been read, its body (spaces) would have been logged as
    // not JSON, before the statuses that followed it on the same link.
    let read: Vec<_> = daemon
        .log()
        .into_iter()
        .filter(|line| line.contains("status message dropped"))
        .collect();
    assert!(read.is_empty(), "the 2 MiB status was read: {read:?}");

    // The manager lives on, with its memory, and serves the next client.
    assert_list_reply(&daemon.request(&[b"clients.list.get", b"{}"]));
    let rss = vm_rss_kib(daemon.pid()).unwrap();
    assert!(rss < 256 * 1024, "VmRSS {rss} KiB");
}
