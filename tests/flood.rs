//! Floods: status messages, bad messages, bad requests and non-ZeroMQ
//! connections as fast as peers can send them, while a user interface
//! keeps asking for the clients list. `DMG_FLOOD_SECS` sets the length
//! (default 3 s; docs/RELIABILITY.md has the figures of a 60 s run).

use crate::util::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

fn flood_duration() -> Duration {
    let secs = std::env::var("DMG_FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs.max(0.5))
}

/// What a flooding plugin cycles through: real status changes (so the
/// manager publishes all the time), and every kind of bad message.
fn status_flood_messages() -> Vec<Vec<Vec<u8>>> {
    // Valid, but as large as a status message may be: what fills queues.
    let long_comment = |event: &str| {
        let body =
            serde_json::json!({"type": "plugin", "id": "rfxcom", "event": event, "comment": "c".repeat(900_000)});
        vec![b"plugin.1_2.0_1".to_vec(), body.to_string().into_bytes()]
    };
    vec![
        long_comment("alive"),
        long_comment("dead"),
        seed_status("diskfree", "alive"),
        seed_status("diskfree", "dead"),
        later_status("ebusd", "testhost", "starting"),
        later_status("ebusd", "testhost", "stopped"),
        seed_status("nosuchplugin", "alive"),
        later_status("rfxcom", "elsewhere", "alive"),
        seed_status("rfxcom", "sleepy"),
        vec![b"plugin.1_2.0_1".to_vec()],
        vec![b"plugin.1_2.0_1".to_vec(), b"{}".to_vec(), b"{}".to_vec()],
        vec![b"plugin.1_2.0_1".to_vec(), b"not json".to_vec()],
        vec![b"plugin.1_2.0_1".to_vec(), b"\xff\xfe".to_vec()],
        vec![b"plugin".to_vec(), b"{}".to_vec()],
        vec![b"plugin.configuration.1_2.0_1".to_vec(), b"{}".to_vec()],
        vec![b"plugin.1_2.0_1".to_vec(), Noise::new(7).bytes(64 * 1024)],
    ]
}

/// Bad requests, pipelined through a DEALER without waiting for replies.
fn bad_requests() -> Vec<Vec<Vec<u8>>> {
    let with_delimiter = |frames: &[&[u8]]| {
        let mut message = vec![Vec::new()];
        message.extend(frames.iter().map(|frame| frame.to_vec()));
        message
    };
    vec![
        with_delimiter(&[b"clients.list.get"]),
        with_delimiter(&[b"clients.list.get", b"{not json"]),
        with_delimiter(&[b"clients.delete", b"{}"]),
        with_delimiter(&[b"MDPC01", b"xpl", b"clients.list.get", b"{}"]),
        with_delimiter(&[b"\xff", b"{}", b"x", b"y", b"z", b"w"]),
        // No empty delimiter: REP must discard it, not choke on it.
        vec![b"clients.list.get".to_vec(), b"{}".to_vec()],
    ]
}

/// Peers flooding the manager until stopped; each thread returns how
/// many messages (or connections) it sent.
struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<(&'static str, JoinHandle<u64>)>,
    /// The flooding peers' own context, terminated once they are done:
    /// libzmq 4.3.4 aborts the process when a socket closes in the middle
    /// of sending a multipart message while its connection dies (libzmq
    /// issue 3442, docs/RELIABILITY.md), so every flooding socket is fully
    /// gone before the manager is killed at the end of a test.
    context: Option<zmq::Context>,
}

impl Flood {
    fn start(daemon: &Daemon) -> Flood {
        Flood::start_at(daemon.sub.clone().unwrap(), daemon.rep.clone())
    }

    /// The flood towards a manager's SUB endpoint `sub` and request
    /// endpoint `rep`.
    fn start_at(sub: String, rep: String) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let context = zmq::Context::new();
        let mut flood = Flood {
            stop: Arc::clone(&stop),
            threads: Vec::new(),
            context: Some(context.clone()),
        };

        let (stop_here, context_here) = (Arc::clone(&stop), context.clone());
        flood.spawn("status messages", move || {
            let plugin = publisher(&context_here, &sub);
            let messages = status_flood_messages();
            let mut sent = 0;
            while !stop_here.load(Ordering::Relaxed) {
                for message in &messages {
                    // PUB never blocks: past its high-water mark it drops.
                    plugin.send_multipart(message, zmq::DONTWAIT).unwrap();
                    sent += 1;
                }
            }
            sent
        });

        let (stop_here, rep_here) = (Arc::clone(&stop), rep.clone());
        flood.spawn("bad requests", move || {
            let dealer = context.socket(zmq::DEALER).unwrap();
            dealer.set_linger(0).unwrap();
            dealer.connect(&rep_here).unwrap();
            let requests = bad_requests();
            let mut sent = 0;
            while !stop_here.load(Ordering::Relaxed) {
                for request in &requests {
                    match dealer.send_multipart(request, zmq::DONTWAIT) {
                        Ok(()) => sent += 1,
                        Err(zmq::Error::EAGAIN) => {}
                        Err(e) => panic!("dealer: {e}"),
                    }
                }
                while dealer.recv_multipart(zmq::DONTWAIT).is_ok() {}
            }
            sent
        });

        let stop_here = Arc::clone(&stop);
        let address = tcp_address(&rep);
        flood.spawn("non-ZeroMQ connections", move || {
            let mut noise = Noise::new(42);
            let mut sent = 0;
            while !stop_here.load(Ordering::Relaxed) {
                // Paced so the client side's TIME_WAIT sockets never
                // exhaust the ephemeral ports in a long run.
                std::thread::sleep(Duration::from_millis(5));
                let Ok(mut stream) = TcpStream::connect(&address) else {
                    continue;
                };
                let garbage = if sent % 2 == 0 {
                    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()
                } else {
                    noise.bytes(512)
                };
                let _ = stream.write_all(&garbage);
                sent += 1;
            }
            sent
        });
        flood
    }

    fn spawn(&mut self, what: &'static str, work: impl FnOnce() -> u64 + Send + 'static) {
        self.threads.push((what, std::thread::spawn(work)));
    }

    /// Stops every peer, and waits until their sockets are closed for good
    /// (the context terminated); returns what each sent.
    fn stop(mut self) -> Vec<(&'static str, u64)> {
        self.stop.store(true, Ordering::SeqCst);
        let sent = self
            .threads
            .drain(..)
            .map(|(what, thread)| (what, thread.join().unwrap()))
            .collect();
        drop(self.context.take());
        sent
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn start_quiet_daemon(label: &str) -> (TempDir, Daemon) {
    let dir = TempDir::new(label);
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config_at(&packages, "info", ""));
    (dir, daemon)
}

#[test]
fn flood_every_request_answered_memory_and_log_bounded() {
    let duration = flood_duration();
    let (_dir, daemon) = start_quiet_daemon("flood");
    let baseline_kib = vm_rss_kib(daemon.pid()).unwrap();
    let log_before = daemon.log().len();
    // A user interface that subscribes and never reads: the PUB socket's
    // high-water mark is all that bounds what is queued for it.
    let _slow_ui = daemon.ui_subscriber();

    let flood = Flood::start(&daemon);
    let ui = daemon.req_socket();
    let started = Instant::now();
    let (mut answered, mut slowest, mut peak_kib) = (0u64, Duration::ZERO, baseline_kib);
    let mut last_sample = Instant::now();
    let mut changed_seen = false;
    while started.elapsed() < duration {
        let asked = Instant::now();
        let reply = request_on(&ui, &[b"clients.list.get", b"{}"]);
        slowest = slowest.max(asked.elapsed());
        assert_eq!(reply[0], b"clients.list.result", "{reply:?}");
        let clients = body_of(&reply[1])["clients"].clone();
        assert_eq!(clients.as_object().unwrap().len(), 4);
        changed_seen |= clients["domogik-diskfree.testhost"]["status"] != "unknown";
        answered += 1;
        if last_sample.elapsed() >= Duration::from_millis(100) {
            peak_kib = peak_kib.max(vm_rss_kib(daemon.pid()).expect("dmg_manager died during the flood"));
            last_sample = Instant::now();
        }
    }
    let sent = flood.stop();
    let final_kib = vm_rss_kib(daemon.pid()).expect("dmg_manager died during the flood");
    peak_kib = peak_kib.max(final_kib);

    // Still serving once the flood is over, and it did hear the flood.
    assert_eq!(daemon.request(&[b"clients.list.get", b"{}"])[0], b"clients.list.result");
    assert!(changed_seen, "no status message of the flood got through");

    let log: Vec<String> = daemon.log()[log_before..].to_vec();
    let longest_line = log.iter().map(String::len).max().unwrap_or(0);
    let secs = duration.as_secs_f64();
    eprintln!(
        "flood {secs:.0} s: {answered} requests answered (slowest {slowest:?}); sent {sent:?}; \
         VmRSS {baseline_kib} KiB before, {peak_kib} KiB peak, {final_kib} KiB after; \
         {} log lines (longest {longest_line} bytes)",
        log.len()
    );
    assert!(answered >= 10, "only {answered} requests in {secs} s");
    assert!(slowest < Duration::from_secs(2), "a request waited {slowest:?}");
    // Rate limits (src/daemon/state.rs): 10 bad-input warnings a minute, 20
    // status-change lines per 10 s, each window opened by one line.
    let allowed = 10.0 * (secs / 60.0 + 1.0).ceil() + 20.0 * (secs / 10.0 + 1.0).ceil() + 5.0;
    assert!(
        (log.len() as f64) <= allowed,
        "{} log lines in {secs} s (at most {allowed}):\n{}",
        log.len(),
        log.join("\n")
    );
    assert!(longest_line < 1024, "a log line of {longest_line} bytes");
    assert!(
        peak_kib < baseline_kib + 256 * 1024,
        "VmRSS grew from {baseline_kib} KiB to {peak_kib} KiB"
    );
}

/// The flood of [`sigterm_during_a_flood_exits_zero_within_a_second`], in
/// a process of its own (this test binary, run again for this test alone):
/// the manager stops in the middle of the flood, and libzmq 4.3.4 aborts
/// the process whose socket loses its connection in the middle of a
/// multipart message (session_base.cpp's clean_pipes; libzmq issue 3442,
/// docs/RELIABILITY.md). Here that abort ends the flood's process, not the
/// whole integration test binary (it did once in CI). Floods until killed,
/// or 60 s at the most.
#[test]
#[ignore = "a helper process of sigterm_during_a_flood_exits_zero_within_a_second"]
fn flood_peer_process() {
    let (Ok(sub), Ok(rep)) = (std::env::var("DMG_FLOOD_SUB"), std::env::var("DMG_FLOOD_REP")) else {
        return;
    };
    let _flood = Flood::start_at(sub, rep);
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn sigterm_during_a_flood_exits_zero_within_a_second() {
    let (_dir, mut daemon) = start_quiet_daemon("flood-term");
    let mut flood = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "flood::flood_peer_process", "--test-threads=1"])
        .env("DMG_FLOOD_SUB", daemon.sub.clone().unwrap())
        .env("DMG_FLOOD_REP", daemon.rep.clone())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the flood's process");
    // Wait until the flood demonstrably reaches the manager.
    let deadline = Instant::now() + DEADLINE;
    while daemon.clients("clients.list.get")["domogik-diskfree.testhost"]["status"] == "unknown" {
        assert!(Instant::now() < deadline, "the flood never reached the manager");
    }
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(1));
    let _ = flood.kill();
    let _ = flood.wait();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?} signal {:?}; log:\n{}",
        status.signal(),
        daemon.log().join("\n")
    );
    let log = daemon.log();
    assert!(
        log.iter().any(|line| line.contains("stopping on signal")),
        "{}",
        log.join("\n")
    );
}

#[test]
fn a_slow_subscriber_costs_the_other_subscribers_nothing() {
    let (_dir, daemon) = start_quiet_daemon("slow-subscriber");
    let slow = daemon.ui_subscriber();
    slow.set_rcvhwm(1).unwrap();
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);
    // `ui` keeps reading, `slow` never does.
    let reader = std::thread::spawn(move || {
        await_publication(&ui, "diskfree stop-request", |p| {
            p.category() == "clients.detail" && p.body["domogik-diskfree.testhost"]["status"] == "stop-request"
        })
    });
    // Thousands of changes: past the PUB high-water mark the manager drops
    // publications for `slow`, and never waits for it.
    for round in 0..3000 {
        let event = if round % 2 == 0 { "alive" } else { "dead" };
        plugin.send_multipart(seed_status("diskfree", event), 0).unwrap();
    }
    // The manager's SUB queue is short (PROTOCOL.md §7), so the burst may
    // drop statuses on the way in, the last one included: repeat it until
    // the reading subscriber has seen it (repeats change nothing, so they
    // publish nothing).
    let deadline = Instant::now() + DEADLINE;
    while !reader.is_finished() && Instant::now() < deadline {
        plugin
            .send_multipart(seed_status("diskfree", "stop-request"), 0)
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(daemon.request(&[b"clients.list.get", b"{}"])[0], b"clients.list.result");
    reader.join().expect("the reading subscriber got the final state");
    assert!(vm_rss_kib(daemon.pid()).unwrap() < 256 * 1024);
    // The manager goes first, while the plugin's PUB may still be sending:
    // closing a socket in the middle of a multipart message just as its
    // connection dies aborts libzmq 4.3.4 (see `Flood::context`).
    drop(daemon);
    drop(slow);
}
