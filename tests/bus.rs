//! On a Domogik bus: the manager as an MDP worker of a broker, its SUB and
//! PUB connected to a forwarder (PROTOCOL.md §7), and every connection it
//! opens coming back after what a peer or the network does.

use crate::util::commands::{run_command, stderr_of, stdout_of, Watcher};
use crate::util::*;
use std::process::Command;
use std::time::{Duration, Instant};

struct Bus {
    broker: TestBroker,
    forwarder: Forwarder,
    dir: TempDir,
    daemon: Daemon,
}

fn start_bus(label: &str) -> Bus {
    let broker = TestBroker::start(None);
    let forwarder = Forwarder::start(None);
    let dir = TempDir::new(label);
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start_with(&dir, &bus_config(&broker, &forwarder, &packages), fast_heartbeat_command);
    Bus {
        broker,
        forwarder,
        dir,
        daemon,
    }
}

#[test]
fn list_and_detail_through_the_broker_from_a_pyzmq_client() {
    let bus = start_bus("bus-interop");
    // Registered first: the broker drops requests for unknown services.
    await_broker_clients(bus.daemon.context(), &bus.broker, "clients.list.get");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.py");
    let mut python = Command::new("python3");
    if let Some(path) = crate::interop::pyzmq_path() {
        python.env("PYTHONPATH", path);
    }
    let output = python
        .arg(script)
        .args([&bus.broker.endpoint, &bus.forwarder.xsub, &bus.forwarder.xpub, "testhost", "broker"])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "interop.py through the broker failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("interop OK"), "{stdout}");
}

#[test]
fn none_timeout_frames_errors_and_another_worker_through_the_same_broker() {
    let bus = start_bus("bus-worker");
    let context = bus.daemon.context();
    await_broker_clients(context, &bus.broker, "clients.list.get");
    // Another worker on the broker, for service "echo".
    let echo = context.socket(zmq::DEALER).unwrap();
    echo.set_linger(0).unwrap();
    echo.connect(&bus.broker.endpoint).unwrap();
    echo.send_multipart([&b""[..], b"MDPW01", b"\x01", b"echo"], 0).unwrap();
    let echo_thread_stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let echo_answered = {
        let deadline = Instant::now() + DEADLINE;
        let mut answered = None;
        while answered.is_none() && Instant::now() < deadline {
            // Ask echo, serving the broker's messages on the echo worker meanwhile.
            let client = context.socket(zmq::REQ).unwrap();
            client.set_linger(0).unwrap();
            client.connect(&bus.broker.endpoint).unwrap();
            client.send_multipart([&b"MDPC01"[..], b"echo", b"x.get", b"{}"], 0).unwrap();
            let until = Instant::now() + Duration::from_millis(300);
            while Instant::now() < until && answered.is_none() {
                if echo.poll(zmq::POLLIN, 20).unwrap() > 0 {
                    let mut message = echo.recv_multipart(0).unwrap();
                    if message.get(2).map(Vec::as_slice) == Some(b"\x02") {
                        message[2] = b"\x03".to_vec();
                        echo.send_multipart(message, 0).unwrap();
                    }
                }
                if client.poll(zmq::POLLIN, 0).unwrap() > 0 {
                    answered = Some(client.recv_multipart(0).unwrap());
                }
            }
        }
        answered
    };
    echo_thread_stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let echo_reply = echo_answered.expect("the echo worker is served too");
    assert_eq!(echo_reply[1], b"echo");
    // ... and the manager still answers, also with Domogik's `None` timeout.
    let reply = broker_request(context, &bus.broker.endpoint, "manager", Some("None"), "clients.detail.get", DEADLINE)
        .expect("an answer with a None timeout frame");
    assert_eq!(&reply[..3], &[b"MDPC01".to_vec(), b"manager".to_vec(), b"clients.detail.result".to_vec()]);
    assert_eq!(body_of(&reply[3])["clients"]["domogik-diskfree.testhost"]["data"]["identity"]["name"], "diskfree");
    let reply = broker_request(context, &bus.broker.endpoint, "manager", Some("5"), "clients.list.get", DEADLINE).unwrap();
    assert_eq!(reply[2], b"clients.list.result");
    // An unknown action gets its error reply through the broker.
    let reply = broker_request(context, &bus.broker.endpoint, "manager", None, "clients.delete", DEADLINE)
        .expect("an error reply, not silence");
    assert_eq!(reply[2], b"error");
    assert!(body_of(&reply[3])["reason"].as_str().unwrap().contains("unknown action"));
}

#[test]
fn a_broker_started_late_restarted_or_sending_disconnect_gets_the_manager_back() {
    // Started late: the manager starts first, the broker after.
    let port = {
        let probe = TestBroker::start(None);
        probe.port()
    };
    let forwarder = Forwarder::start(None);
    let dir = TempDir::new("bus-late");
    let packages = copy_fixtures(&dir);
    let config = {
        let stand_in = TestBroker::start(Some(port));
        let config = bus_config(&stand_in, &forwarder, &packages);
        drop(stand_in);
        config
    };
    let mut daemon = Daemon::start_with(&dir, &config, fast_heartbeat_command);
    let broker = TestBroker::start(Some(port));
    assert_eq!(await_broker_clients(daemon.context(), &broker, "clients.list.get").as_object().unwrap().len(), 4);
    daemon.wait_for_log("the broker at tcp://127.0.0.1");

    // Restarted: a new broker knows no worker.
    drop(broker);
    let broker = TestBroker::start(Some(port));
    await_broker_clients(daemon.context(), &broker, "clients.list.get");

    // DISCONNECT: the manager registers again.
    let before = daemon.log().len();
    broker.control.disconnect_all.store(true, std::sync::atomic::Ordering::SeqCst);
    daemon.wait_for_new_log("sent DISCONNECT; registering again", before);
    await_broker_clients(daemon.context(), &broker, "clients.list.get");
}

#[test]
fn an_oversized_message_through_the_forwarder_does_not_silence_statuses() {
    let bus = start_bus("bus-oversized");
    let plugin = publisher(bus.daemon.context(), &bus.forwarder.xsub);
    let ui = subscriber(bus.daemon.context(), &bus.forwarder.xpub, "clients");
    connect_pubsub(&plugin, &ui);
    // 5 MB under the status prefix: libzmq ends the SUB's connection.
    let big = vec![b'x'; 5 * 1024 * 1024];
    plugin.send_multipart([&b"plugin.1_0.0_1"[..], &big], 0).unwrap();
    let mut daemon = bus.daemon;
    daemon.wait_for_log("gave up the connection");
    // Then ordinary changes are applied again.
    connect_pubsub(&plugin, &ui);
    plugin.send_multipart(later_status("rfxcom", "testhost", "alive"), 0).unwrap();
    await_publication(&ui, "rfxcom alive", |p| {
        p.category() == "clients.list" && p.body["domogik-rfxcom.testhost"]["status"] == "alive"
    });
}

#[test]
fn the_state_at_start_reaches_a_subscriber_connected_before() {
    let broker = TestBroker::start(None);
    let forwarder = Forwarder::start(None);
    let context = zmq::Context::new();
    let ui = subscriber(&context, &forwarder.xpub, "clients");
    let dir = TempDir::new("bus-startup");
    let packages = copy_fixtures(&dir);
    let _daemon = Daemon::start_with(&dir, &bus_config(&broker, &forwarder, &packages), fast_heartbeat_command);
    // No change after the start: what arrives is the start-up state.
    let list = await_publication(&ui, "the start-up state", |p| p.category() == "clients.list");
    assert_eq!(list.body.as_object().unwrap().len(), 4);
    assert_eq!(list.body["domogik-ebusd.testhost"]["status"], "unknown");
    await_publication(&ui, "the start-up detail", |p| p.category() == "clients.detail");
}

#[test]
fn the_commands_work_through_the_broker_and_the_forwarder() {
    let mut bus = start_bus("bus-commands");
    await_broker_clients(bus.daemon.context(), &bus.broker, "clients.list.get");
    let config = bus.dir.join("manager.cfg");
    let output = run_command(&config, &["clients"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout_of(&output).contains("domogik-rfxcom.testhost"), "{}", stdout_of(&output));

    // watch fetches the list through the broker, then follows the forwarder.
    let mut watch = Watcher::start(&config, &[]);
    watch.wait_stderr("watching 4 clients at tcp://127.0.0.1:");
    let status = |args: &[&str]| {
        let output = run_command(&config, &[&["status"], args].concat());
        assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    };
    watch.prime(|event| status(&["test", event]));
    status(&["ebusd", "alive"]);
    let line = watch.line("about ebusd", |line| line.contains("domogik-ebusd"));
    assert!(line.ends_with(" domogik-ebusd.testhost unknown → alive"), "{line}");
    bus.daemon.wait_for_log("domogik-ebusd.testhost is alive");
}

/// A `plugin.status` message whose body is exactly `size` bytes.
fn status_of_size(name: &str, event: &str, size: usize) -> Vec<Vec<u8>> {
    let empty = serde_json::json!({"type": "plugin", "name": name, "host": "testhost", "event": event, "comment": ""});
    let padding = size - empty.to_string().len();
    let body = serde_json::json!({"type": "plugin", "name": name, "host": "testhost", "event": event, "comment": "x".repeat(padding)});
    let body = body.to_string().into_bytes();
    assert_eq!(body.len(), size);
    vec![b"plugin.status.1371071554_16.0_1".to_vec(), body]
}

#[test]
fn the_sub_size_limit_is_one_mib_exactly_and_a_message_over_it_costs_no_link() {
    const LIMIT: usize = 1024 * 1024;
    let bus = start_bus("bus-sub-limit");
    let plugin = publisher(bus.daemon.context(), &bus.forwarder.xsub);
    let ui = subscriber(bus.daemon.context(), &bus.forwarder.xpub, "clients");
    connect_pubsub(&plugin, &ui);
    let mut daemon = bus.daemon;

    plugin.send_multipart(status_of_size("rfxcom", "alive", LIMIT), 0).unwrap();
    await_publication(&ui, "rfxcom alive from a status of exactly 1 MiB", |p| {
        p.category() == "clients.list" && p.body["domogik-rfxcom.testhost"]["status"] == "alive"
    });

    let before = daemon.log().len();
    plugin.send_multipart(status_of_size("rfxcom", "dead", LIMIT + 1), 0).unwrap();
    daemon.wait_for_new_log("gave up the connection", before);
    connect_pubsub(&plugin, &ui);
    assert_eq!(
        await_broker_clients(daemon.context(), &bus.broker, "clients.list.get")["domogik-rfxcom.testhost"]["status"],
        "alive",
        "the status over the limit was refused"
    );
    assert!(
        !daemon.log()[..before].iter().any(|line| line.contains("gave up")),
        "the status at the limit cost the link"
    );
}

#[test]
fn ipv6_endpoints_work_written_as_domogik_writes_them() {
    let broker = TestBroker::start_on("[::1]", None);
    let forwarder = Forwarder::start_on("[::1]", None);
    let (xsub_port, xpub_port) = forwarder.ports();
    let dir = TempDir::new("bus-ipv6");
    let packages = copy_fixtures(&dir);
    // `ip = ::1`, without brackets, as in a domogik-mq.cfg.
    let config = format!(
        "[mq]\nip = ::1\nreq_rep_port = {}\npub_port = {xsub_port}\nsub_port = {xpub_port}\n\
         [manager]\nhost = testhost\npackages_dir = {}\n",
        broker.port(),
        packages.display()
    );
    let daemon = Daemon::start_with(&dir, &config, fast_heartbeat_command);
    assert_eq!(await_broker_clients(daemon.context(), &broker, "clients.list.get").as_object().unwrap().len(), 4);
    let plugin = publisher(daemon.context(), &forwarder.xsub);
    let ui = subscriber(daemon.context(), &forwarder.xpub, "clients");
    connect_pubsub(&plugin, &ui);
    assert!(daemon.log().iter().any(|line| line.contains("sub socket connected to tcp://[::1]:")), "{:?}", daemon.log());
}

#[test]
fn an_idle_worker_keeps_its_registration_past_the_brokers_expiry() {
    // Heartbeats of 500 ms on both sides (the manager takes the broker for
    // dead after 1.75 s, the broker drops it after 2.5 s): a loaded test
    // machine's stalls do not reach that.
    const HEARTBEAT_MS: u64 = 500;
    let broker = TestBroker::start_beating("127.0.0.1", None, HEARTBEAT_MS);
    let forwarder = Forwarder::start(None);
    let dir = TempDir::new("bus-idle");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start_with(&dir, &bus_config(&broker, &forwarder, &packages), |path| {
        let mut command = manager_command(path);
        command.env("DMG_MANAGER_TEST_HEARTBEAT_MS", HEARTBEAT_MS.to_string());
        command
    });
    let context = daemon.context();
    await_broker_clients(context, &broker, "clients.list.get");
    // Two of the broker's expiries (5 heartbeats each) with nothing but
    // heartbeats on the link: time must pass for the test to mean anything.
    std::thread::sleep(Duration::from_millis(HEARTBEAT_MS * 10));
    let dropped = broker.control.dropped.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(dropped, 0, "the broker dropped the idle manager as silent");
    let log = daemon.log().join("\n");
    assert!(!log.contains("reconnecting"), "the manager took the broker for dead:\n{log}");
    let reply = broker_request(context, &broker.endpoint, "manager", None, "clients.list.get", DEADLINE);
    assert!(reply.is_some(), "no answer after the idle time");
}

#[test]
fn no_broker_is_said_once_then_its_arrival() {
    let dir = TempDir::new("bus-nobroker");
    let packages = copy_fixtures(&dir);
    let port = free_port_below_the_ephemeral_range();
    let config = format!(
        "[mq]\nip = 127.0.0.1\nreq_rep_port = {port}\n[manager]\nhost = testhost\npackages_dir = {}\n",
        packages.display()
    );
    let mut daemon = Daemon::start_with(&dir, &config, fast_heartbeat_command);
    // 30 heartbeats without an answer (6 s at the test's 200 ms).
    let line = daemon.wait_for_log("MDP worker: no broker has answered at");
    assert!(line.contains(&format!("tcp://127.0.0.1:{port}")) && line.contains("is Domogik's broker running there?"), "{line}");
    let broker = TestBroker::start(Some(port));
    await_broker_clients(daemon.context(), &broker, "clients.list.get");
    daemon.wait_for_log("answers (service registered)");
    let log = daemon.log();
    let count = |needle: &str| log.iter().filter(|line| line.contains(needle)).count();
    assert_eq!(count("no broker has answered"), 1, "said once:\n{}", log.join("\n"));
    // Each reconnection (every 0.7 s) is not a line of its own at info.
    assert_eq!(count("rep socket connecting to"), 1, "{}", log.join("\n"));
}

#[test]
fn a_manager_stopped_says_disconnect_and_a_request_sent_meanwhile_is_answered_by_the_next() {
    let mut bus = start_bus("bus-leave");
    let context = zmq::Context::new();
    await_broker_clients(&context, &bus.broker, "clients.list.get");
    assert_eq!(bus.daemon.stop().code(), Some(0));
    // The DISCONNECT and the request below reach the broker on two
    // connections: wait (with a deadline) until it has read the first, or
    // its ROUTER may read the request first. Without a DISCONNECT this
    // never comes.
    let deadline = Instant::now() + DEADLINE;
    while bus.broker.control.left.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the broker never heard the manager's DISCONNECT");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Right after the exit, well inside the broker's expiry (5 heartbeats):
    // a worker gone without a word would still be registered, and the
    // request routed to it lost. One that said DISCONNECT is gone from the
    // broker, so the request waits there for the next manager.
    let client = context.socket(zmq::REQ).unwrap();
    client.set_linger(0).unwrap();
    client.set_rcvtimeo(DEADLINE.as_millis() as i32).unwrap();
    client.connect(&bus.broker.endpoint).unwrap();
    client.send_multipart([&b"MDPC01"[..], b"manager", b"clients.list.get", b"{}"], 0).unwrap();
    let config = std::fs::read_to_string(bus.dir.join("manager.cfg")).unwrap();
    let _next = Daemon::start_with(&bus.dir, &config, fast_heartbeat_command);
    let reply = client.recv_multipart(0).expect("the request sent while no manager ran is answered by the next one");
    assert_eq!(&reply[..3], &[b"MDPC01".to_vec(), b"manager".to_vec(), b"clients.list.result".to_vec()]);
    assert_eq!(body_of(&reply[3])["clients"].as_object().unwrap().len(), 4);
    let left = bus.broker.control.left.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(left, 1, "the broker heard the first manager's DISCONNECT");
}

#[test]
fn req_rep_port_on_a_zmq_socket_of_another_type_is_said_once_not_twice_a_second() {
    // A config mistake: req_rep_port names the forwarder's port (a ZeroMQ
    // peer of an incompatible type: the handshake fails).
    let context = zmq::Context::new();
    let xpub = context.socket(zmq::XPUB).unwrap();
    xpub.set_linger(0).unwrap();
    xpub.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = xpub.get_last_endpoint().unwrap().unwrap();
    let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let dir = TempDir::new("bus-wrongport");
    let packages = copy_fixtures(&dir);
    let config = format!(
        "[mq]\nip = 127.0.0.1\nreq_rep_port = {port}\n[manager]\nhost = testhost\npackages_dir = {}\n",
        packages.display()
    );
    let mut daemon = Daemon::start_with(&dir, &config, fast_heartbeat_command);
    daemon.wait_for_log("ready:");
    let first = daemon.log().len();
    std::thread::sleep(Duration::from_secs(3));
    let log = daemon.log();
    let gave_up = log[first..].iter().filter(|line| line.contains("dbmgr socket: libzmq gave up")).count();
    assert!(gave_up <= 1, "{gave_up} warnings in 3 s:\n{}", log[first..].join("\n"));
}

#[test]
fn a_busy_worker_stays_registered_with_a_broker_that_counts_heartbeats_only() {
    let bus = start_bus("bus-busy");
    let context = bus.daemon.context();
    await_broker_clients(context, &bus.broker, "clients.list.get");
    // A request every 0.3 heartbeats for 15 heartbeats (3 broker expiries).
    let pace = Duration::from_millis(TEST_HEARTBEAT_MS * 3 / 10);
    let until = Instant::now() + Duration::from_millis(TEST_HEARTBEAT_MS * 15);
    let mut unanswered = 0;
    while Instant::now() < until {
        if broker_request(context, &bus.broker.endpoint, "manager", None, "clients.list.get", DEADLINE).is_none() {
            unanswered += 1;
        }
        std::thread::sleep(pace);
    }
    let dropped = bus.broker.control.dropped.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!((dropped, unanswered), (0, 0), "the broker dropped the busy manager:\n{}", bus.daemon.log().join("\n"));
}

/// A loopback port with nothing on it (free a moment ago), below Linux's
/// ephemeral range (32768 and up): a connect to it can never be given it
/// as its own source port, so TCP cannot connect a socket to itself there.
fn free_port_below_the_ephemeral_range() -> u16 {
    let base = 20_000 + (std::process::id() % 10_000) as u16;
    (base..32_000)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port below 32000")
}
