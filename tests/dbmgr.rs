//! The manager asking a test `dbmgr` worker (through the test broker) for
//! each plugin's configuration (PROTOCOL.md §8): a dbmgr that answers,
//! answers late, answers garbage, or never answers; and
//! `plugin.configuration` making it ask again.

use crate::util::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the test dbmgr does with the n-th question (from 0): answer this
/// body after this delay, or stay silent.
type Behaviour = dyn Fn(usize, &Value) -> Option<(Duration, String)> + Send + Sync;

/// A dbmgr worker on the broker, in a thread, heartbeating as MDP wants.
struct TestDbmgr {
    asked: Arc<Mutex<Vec<Value>>>,
    _thread: Background,
}

impl TestDbmgr {
    fn start(context: &zmq::Context, broker: &TestBroker, behaviour: Box<Behaviour>) -> TestDbmgr {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (seen, context, endpoint) = (Arc::clone(&asked), context.clone(), broker.endpoint.clone());
        let thread = Background::start(move |stop: &AtomicBool| {
            let worker = context.socket(zmq::DEALER).unwrap();
            worker.set_linger(0).unwrap();
            worker.connect(&endpoint).unwrap();
            worker
                .send_multipart([&b""[..], b"MDPW01", b"\x01", b"dbmgr"], 0)
                .unwrap();
            let mut pending: Vec<(Instant, Vec<Vec<u8>>)> = Vec::new();
            let mut next_heartbeat = Instant::now();
            while !stop.load(Ordering::SeqCst) {
                if Instant::now() >= next_heartbeat {
                    worker.send_multipart([&b""[..], b"MDPW01", b"\x04"], 0).unwrap();
                    next_heartbeat = Instant::now() + Duration::from_millis(TEST_HEARTBEAT_MS / 2);
                }
                let due: Vec<Vec<Vec<u8>>> = {
                    let now = Instant::now();
                    let (ready, later): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= now);
                    pending = later;
                    ready.into_iter().map(|(_, frames)| frames).collect()
                };
                for frames in due {
                    worker.send_multipart(frames, 0).unwrap();
                }
                if worker.poll(zmq::POLLIN, 10).unwrap() == 0 {
                    continue;
                }
                let message = worker.recv_multipart(0).unwrap();
                // ["", "MDPW01", 0x02, client..., "", action, body]
                if message.get(2).map(Vec::as_slice) != Some(b"\x02") {
                    continue;
                }
                let Some(delimiter) = message.iter().skip(3).position(Vec::is_empty).map(|at| at + 3) else {
                    continue;
                };
                let body: Value = serde_json::from_slice(message.last().unwrap()).unwrap_or(Value::Null);
                assert_eq!(message[delimiter + 1], b"config.get");
                let n = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(body.clone());
                    seen.len() - 1
                };
                if let Some((delay, answer)) = behaviour(n, &body) {
                    let mut reply = vec![Vec::new(), b"MDPW01".to_vec(), b"\x03".to_vec()];
                    reply.extend(message[3..=delimiter].iter().cloned());
                    reply.push(b"config.result".to_vec());
                    reply.push(answer.into_bytes());
                    pending.push((Instant::now() + delay, reply));
                }
            }
        });
        TestDbmgr { asked, _thread: thread }
    }

    /// The questions asked about plugin `name` so far.
    fn questions_about(&self, name: &str) -> usize {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|body| body["name"] == name)
            .count()
    }
}

/// dbmgr's answer with every key of plugin `name` (as Domogik's dbmgr
/// writes it: values as text, `None` for unset).
fn all_keys(name: &str, configured: &str) -> String {
    json!({"status": true, "reason": "", "type": "plugin", "name": name, "host": "testhost",
           "data": {"configured": configured, "auto_startup": "True", "startup-plugin": "None"}})
    .to_string()
}

fn answer_all(configured: &'static str) -> Box<Behaviour> {
    Box::new(move |_, body: &Value| {
        Some((
            Duration::ZERO,
            all_keys(body["name"].as_str().unwrap_or(""), configured),
        ))
    })
}

struct Bus {
    broker: TestBroker,
    forwarder: Forwarder,
    _dir: TempDir,
    daemon: Daemon,
    dbmgr: TestDbmgr,
}

/// The Domogik layout with a test dbmgr, questions timing out after 0.3 s.
fn start_bus(label: &str, behaviour: Box<Behaviour>) -> Bus {
    let broker = TestBroker::start(None);
    let forwarder = Forwarder::start(None);
    let context = zmq::Context::new();
    let dbmgr = TestDbmgr::start(&context, &broker, behaviour);
    let dir = TempDir::new(label);
    let packages = copy_fixtures(&dir);
    let config = format!("{}dbmgr_timeout = 0.3\n", bus_config(&broker, &forwarder, &packages));
    let daemon = Daemon::start_with(&dir, &config, fast_heartbeat_command);
    Bus {
        broker,
        forwarder,
        _dir: dir,
        daemon,
        dbmgr,
    }
}

/// The 0.5 list through the broker.
fn v05_list(bus: &Bus) -> Value {
    let reply = broker_request(
        bus.daemon.context(),
        &bus.broker.endpoint,
        "manager",
        Some("None"),
        "client.list.get",
        DEADLINE,
    )
    .expect("the manager answers through the broker");
    assert_eq!(reply[2], b"client.list.result");
    body_of(&reply[3])
}

/// Asks until `configured` of client plugin-ID.testhost satisfies `wanted`.
fn await_configured(bus: &Bus, name: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let list = v05_list(bus);
        let entry = list[format!("plugin-{name}.testhost")].clone();
        if wanted(&entry["configured"]) {
            return entry;
        }
        assert!(
            Instant::now() < deadline,
            "configured of {name} never as wanted: {entry}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_answering_dbmgr_fills_configured_and_values_in_both_dialects() {
    let bus = start_bus("dbmgr-answers", answer_all("True"));
    await_configured(&bus, "diskfree", |c| *c == true);
    let seed = await_broker_clients(bus.daemon.context(), &bus.broker, "clients.list.get");
    assert_eq!(seed["domogik-diskfree.testhost"]["configured"], true);
    let reply = broker_request(
        bus.daemon.context(),
        &bus.broker.endpoint,
        "manager",
        None,
        "client.detail.get",
        DEADLINE,
    )
    .unwrap();
    let data = &body_of(&reply[3])["plugin-diskfree.testhost"]["data"];
    assert_eq!(data["configuration"][0]["key"], "auto_startup");
    assert_eq!(data["configuration"][0]["value"], "True");
    // Each client was asked about once, in Domogik's shape.
    for name in FIXTURE_NAMES {
        await_configured(&bus, name, |c| *c == true);
        assert_eq!(bus.dbmgr.questions_about(name), 1, "{name}");
    }
    let asked = bus.dbmgr.asked.lock().unwrap()[0].clone();
    assert_eq!(
        asked.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["host", "name", "type"]
    );
}

#[test]
fn a_late_answer_is_used_and_the_question_asked_again() {
    // The first question about each plugin is answered after 1 s (past
    // the 0.3 s timeout), later ones at once but saying not configured.
    let bus = start_bus(
        "dbmgr-late",
        Box::new(|n, body: &Value| {
            let name = body["name"].as_str().unwrap_or("");
            Some(if n < 4 {
                (Duration::from_secs(1), all_keys(name, "True"))
            } else {
                (Duration::ZERO, all_keys(name, "False"))
            })
        }),
    );
    await_configured(&bus, "ebusd", |c| !c.is_null());
    assert!(bus.dbmgr.questions_about("ebusd") >= 2, "asked again after the timeout");
    // Whichever answer came last wins, and both do come.
    await_configured(&bus, "ebusd", |c| *c == true);
}

#[test]
fn garbage_from_dbmgr_is_logged_and_the_question_asked_again() {
    let bus = start_bus(
        "dbmgr-garbage",
        Box::new(|n, body: &Value| {
            let name = body["name"].as_str().unwrap_or("");
            Some((
                Duration::ZERO,
                if n < 4 {
                    "not json {".to_owned()
                } else {
                    all_keys(name, "1")
                },
            ))
        }),
    );
    await_configured(&bus, "rfxcom", |c| *c == true);
    assert!(bus.dbmgr.questions_about("rfxcom") >= 2);
    assert!(bus
        .daemon
        .log()
        .iter()
        .any(|line| line.contains("dbmgr reply dropped: body is not JSON")));
}

#[test]
fn a_silent_dbmgr_leaves_configured_null_and_blocks_nothing() {
    let bus = start_bus("dbmgr-silent", Box::new(|_, _: &Value| None));
    let deadline = Instant::now() + DEADLINE;
    while bus.dbmgr.questions_about("test") < 2 {
        assert!(Instant::now() < deadline, "never asked again");
        let started = Instant::now();
        let list = v05_list(&bus);
        assert!(started.elapsed() < Duration::from_secs(2), "a request waited for dbmgr");
        assert_eq!(list["plugin-test.testhost"]["configured"], Value::Null);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn plugin_configuration_updated_asks_dbmgr_again() {
    let answers = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&answers);
    let bus = start_bus(
        "dbmgr-updated",
        Box::new(move |_, body: &Value| {
            let name = body["name"].as_str().unwrap_or("");
            let configured = if name == "diskfree" && counter.fetch_add(1, Ordering::SeqCst) > 0 {
                "True"
            } else {
                "False"
            };
            Some((Duration::ZERO, all_keys(name, configured)))
        }),
    );
    await_configured(&bus, "diskfree", |c| *c == false);
    let plugin = publisher(bus.daemon.context(), &bus.forwarder.xsub);
    let updated = json!({"type": "plugin", "name": "diskfree", "host": "testhost", "event": "updated"}).to_string();
    let deadline = Instant::now() + DEADLINE;
    loop {
        // Repeated until it gets through: pub/sub links come up asynchronously.
        plugin
            .send_multipart(
                [b"plugin.configuration.1371071554_16.0_1".as_slice(), updated.as_bytes()],
                0,
            )
            .unwrap();
        if v05_list(&bus)["plugin-diskfree.testhost"]["configured"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "configured never refreshed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(bus.dbmgr.questions_about("diskfree") >= 2);
}

/// auto_startup end to end (PROTOCOL.md §9): dbmgr says `auto_startup` is
/// `Y` (as the admin stores it) for plugin `auto`, and the manager starts
/// its `bin/auto.py` on its own, in the foreground (`-f`; no `-m`, which
/// Domogik 0.5.2's plugins refuse), without anyone asking.
#[test]
fn auto_startup_y_from_dbmgr_starts_the_plugin_in_the_foreground() {
    let broker = TestBroker::start(None);
    let forwarder = Forwarder::start(None);
    let context = zmq::Context::new();
    let _dbmgr = TestDbmgr::start(
        &context,
        &broker,
        Box::new(|_, body: &Value| {
            let name = body["name"].as_str().unwrap_or("");
            let answer = json!({"status": true, "reason": "", "type": "plugin", "name": name, "host": "testhost",
                                "data": {"configured": "Y", "auto_startup": "Y"}});
            Some((Duration::ZERO, answer.to_string()))
        }),
    );
    let dir = TempDir::new("dbmgr-auto-startup");
    let packages = copy_fixtures(&dir);
    let folder = packages.join("plugin_auto");
    std::fs::create_dir_all(folder.join("bin")).unwrap();
    let info = json!({"json_version": 2, "identity": {"type": "plugin", "name": "auto"}});
    std::fs::write(folder.join("info.json"), info.to_string()).unwrap();
    // The plugin writes its arguments where the test reads them, then
    // waits for as long as the manager that started it lives.
    let argv_file = dir.join("argv.json");
    std::fs::write(
        folder.join("bin/auto.py"),
        format!(
            "import json, os, sys, time\n\
             parent = os.getppid()\n\
             with open({path:?} + '.tmp', 'w') as out: json.dump(sys.argv[1:], out)\n\
             os.rename({path:?} + '.tmp', {path:?})\n\
             while os.getppid() == parent: time.sleep(0.1)\n",
            path = argv_file.display().to_string()
        ),
    )
    .unwrap();
    let config = format!(
        "{}dbmgr_timeout = 0.3\npython = python3\nkill_delay = 1\n",
        bus_config(&broker, &forwarder, &packages)
    );
    let mut daemon = Daemon::start_with(&dir, &config, fast_heartbeat_command);

    let deadline = Instant::now() + DEADLINE;
    let argv: Value = loop {
        if let Ok(text) = std::fs::read_to_string(&argv_file) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "plugin auto not started within {DEADLINE:?}; log:\n{}",
            daemon.log().join("\n")
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(argv, json!(["-f"]), "started by auto_startup, in the foreground");
    assert!(daemon.stop().success(), "the manager stops its plugin and exits 0");
}

#[test]
fn an_answer_over_the_size_limit_is_refused_and_costs_no_question() {
    // The first answer is 2 MiB (over the 1 MiB limit), the others normal.
    let bus = start_bus(
        "dbmgr-oversized",
        Box::new(|n, body: &Value| {
            let name = body["name"].as_str().unwrap_or("");
            let answer = if n == 0 {
                json!({"status": true, "reason": "x".repeat(2 * 1024 * 1024), "name": name}).to_string()
            } else {
                all_keys(name, "True")
            };
            Some((Duration::ZERO, answer))
        }),
    );
    let mut daemon = bus.daemon;
    daemon.wait_for_log("dbmgr socket: libzmq gave up the connection");
    let bus = Bus { daemon, ..bus };
    // The socket reopened, every question is answered in the end.
    for name in FIXTURE_NAMES {
        await_configured(&bus, name, |c| *c == true);
    }
}

/// The first questions go out as soon as the broker answers (PROTOCOL.md
/// §9): a manager started before its broker asks dbmgr in the turn the
/// broker registers it, not after a question spent on no socket has timed
/// out (20 s here; it was dropped as "no broker yet" and asked ~10 s later
/// with the default 5 s).
#[test]
fn the_first_questions_go_out_as_soon_as_the_broker_answers() {
    let port = {
        let broker = TestBroker::start(None);
        broker.port()
    };
    let forwarder = Forwarder::start(None);
    let dir = TempDir::new("dbmgr-broker-late");
    let packages = copy_fixtures(&dir);
    let placeholder = TestBroker::start(Some(port));
    let config = format!(
        "{}dbmgr_timeout = 20\n",
        bus_config(&placeholder, &forwarder, &packages)
    );
    drop(placeholder);
    let mut daemon = Daemon::start_with(&dir, &config, fast_heartbeat_command);
    daemon.wait_for_log("ready: ");
    std::thread::sleep(Duration::from_millis(300)); // the manager runs a few turns with no broker
    let broker = TestBroker::start(Some(port));
    let context = zmq::Context::new();
    let dbmgr = TestDbmgr::start(&context, &broker, answer_all("Y"));
    let started = Instant::now();
    // A request before the manager is registered is dropped by the broker.
    daemon.wait_for_log("(service registered)");
    let bus = Bus {
        broker,
        forwarder,
        _dir: dir,
        daemon,
        dbmgr,
    };
    let entry = await_configured(&bus, "diskfree", |c| *c == true);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "configured known {:?} after the broker came: {entry}",
        started.elapsed()
    );
    assert_eq!(bus.dbmgr.questions_about("diskfree"), 1, "asked once: no question spent on no socket");
}
