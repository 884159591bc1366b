//! Test helpers: temp dirs, a running `dmg_manager`, ZeroMQ peers playing
//! plugins and user interfaces, and a small MQ forwarder.
//!
//! Nothing here sleeps and hopes: every wait is on a socket, a log line or
//! a process, with a deadline, and fails the test with what was seen.

#![allow(dead_code)]

pub mod commands;
pub mod xpl;
#[path = "../../examples/dmg_testbus/broker.rs"]
pub mod broker;
#[path = "../../examples/dmg_testbus/forwarder.rs"]
pub mod forwarder;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(10);
pub const BIN: &str = env!("CARGO_BIN_EXE_dmg_manager");
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/packages");
pub const FIXTURE_NAMES: [&str; 4] = ["diskfree", "ebusd", "rfxcom", "test"];

/// A fresh directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("dmg-test-{}-{label}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = make_writable(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_writable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755))?;
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

/// Copies the fixture packages into `dir/packages` and returns that path.
pub fn copy_fixtures(dir: &TempDir) -> PathBuf {
    let packages = dir.join("packages");
    for name in FIXTURE_NAMES {
        let folder = packages.join(format!("plugin_{name}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(format!("{FIXTURES}/plugin_{name}/info.json"), folder.join("info.json")).unwrap();
    }
    packages
}

/// The fixture's info.json as Python would parse it (last duplicate key wins).
pub fn fixture_json(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURES}/plugin_{name}/info.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A config for the standalone layout on ephemeral loopback ports.
pub fn standalone_config(packages: &Path, extra_manager_keys: &str) -> String {
    format!(
        "[manager]\nhost = testhost\npackages_dir = {}\nlog_level = debug\n\
         sub_endpoint = @tcp://127.0.0.1:*\npub_endpoint = @tcp://127.0.0.1:*\nrep_endpoint = @tcp://127.0.0.1:*\n{extra_manager_keys}",
        packages.display()
    )
}

/// `dmg_manager --config CONFIG`, stdin closed, and none of what the
/// environment running the tests may set that changes its output: the
/// journal's (log format), systemd's notify socket, `NO_COLOR`. Its
/// runtime directory (where its one-manager lock goes, src/sys/instance.rs)
/// is the config's folder, the test's own: parallel tests never meet, and
/// nothing is left in /run or /tmp. No real xPL hub is reached.
pub fn manager_command(config: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(config)
        .env("RUNTIME_DIRECTORY", config.parent().unwrap_or(Path::new(".")))
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("NO_COLOR")
        // A manager on a test bus has xPL on ([xpl] enabled = auto): its
        // heartbeats go to a port no hub listens on, never to a real hub
        // this machine may run on 3865 (tests/xpl.rs names its own hub).
        .env("DMG_MANAGER_TEST_XPL_PORT", "9")
        .stdin(Stdio::null());
    command
}

/// Sends signal `name` (`TERM`, `HUP`, `INT`, `KILL`, `USR1`, `STOP`, `CONT`) to process `pid`,
/// through `kill(2)`: no `kill` command needed (procps may be missing).
pub fn send_signal(pid: u32, name: &str) {
    let signal = match name {
        "TERM" => libc::SIGTERM,
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "STOP" => libc::SIGSTOP,
        "CONT" => libc::SIGCONT,
        other => panic!("send_signal: unknown signal {other:?}"),
    };
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, SIG{name}): {}", std::io::Error::last_os_error());
}

/// How `child` exited, or `None` if it is still running after `within`.
pub fn exit_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        // std has no wait with a timeout: look often, until the deadline.
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The lines a child writes to one pipe, read by a thread as they come:
/// all kept (a failing test shows them), each new one waking a waiting test.
pub struct Lines {
    all: Arc<Mutex<Vec<String>>>,
    added: Receiver<()>,
}

impl Lines {
    pub fn read(pipe: impl Read + Send + 'static) -> Lines {
        let all = Arc::new(Mutex::new(Vec::new()));
        let (sender, added) = mpsc::channel();
        let writer = Arc::clone(&all);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lock(&writer).push(line);
                let _ = sender.send(());
            }
        });
        Lines { all, added }
    }

    /// Every line so far.
    pub fn all(&self) -> Vec<String> {
        lock(&self.all).clone()
    }

    /// The first line at index `from` or later that satisfies `wanted`,
    /// with its index, waiting for new lines until `deadline`; `None` if
    /// none came by then, or the pipe closed first.
    pub fn find_from(&self, from: usize, deadline: Instant, wanted: impl Fn(&str) -> bool) -> Option<(usize, String)> {
        let mut last_look = false;
        loop {
            let found = lock(&self.all)
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, line)| wanted(line))
                .map(|(index, line)| (index, line.clone()));
            if found.is_some() || last_look {
                return found;
            }
            // A line is stored before its wake-up is sent: after a timeout
            // or the pipe's end, one more look sees every line.
            let left = deadline.saturating_duration_since(Instant::now());
            last_look = self.added.recv_timeout(left).is_err();
            while self.added.try_recv().is_ok() {}
        }
    }
}

/// A lock that a panicking holder did not make unusable: the helpers still
/// show what was collected when a test fails.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running `dmg_manager`, its stderr collected line by line.
pub struct Daemon {
    child: Child,
    stderr: Lines,
    pub rep: String,
    pub publisher: Option<String>,
    pub sub: Option<String>,
    context: zmq::Context,
}

impl Daemon {
    /// Writes `config` into `dir/manager.cfg` and starts the daemon on it,
    /// returning once it logged `ready:`.
    pub fn start(dir: &TempDir, config: &str) -> Daemon {
        Daemon::start_with(dir, config, manager_command)
    }

    /// [`Daemon::start`] with the command built by `command` (for an
    /// environment variable such as the test heartbeat knob).
    pub fn start_with(dir: &TempDir, config: &str, command: impl FnOnce(&Path) -> Command) -> Daemon {
        let path = dir.join("manager.cfg");
        std::fs::write(&path, config).unwrap();
        let child = command(&path).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut daemon = Daemon::from_child(child);
        daemon.wait_for_log("ready:");
        // An MDP worker binds nothing: requests go through the broker.
        daemon.rep = daemon.bound_endpoint("rep").unwrap_or_default();
        daemon.publisher = daemon.bound_endpoint("pub");
        daemon.sub = daemon.bound_endpoint("sub");
        daemon
    }

    /// Starts the daemon without waiting for anything.
    pub fn spawn(config_path: &Path) -> Daemon {
        let child = manager_command(config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Daemon::from_child(child)
    }

    /// A daemon the test spawned itself, with its stderr piped.
    pub fn from_child(mut child: Child) -> Daemon {
        let stderr = Lines::read(child.stderr.take().unwrap());
        Daemon {
            child,
            stderr,
            rep: String::new(),
            publisher: None,
            sub: None,
            context: zmq::Context::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far.
    pub fn log(&self) -> Vec<String> {
        self.stderr.all()
    }

    /// Waits for a stderr line containing `needle` (seen from now on, or
    /// already); returns it.
    pub fn wait_for_log(&mut self, needle: &str) -> String {
        self.wait_for_new_log(needle, 0)
    }

    /// Waits for a *new* line containing `needle`, after `previous` lines.
    pub fn wait_for_new_log(&mut self, needle: &str, previous: usize) -> String {
        let deadline = Instant::now() + DEADLINE;
        match self.stderr.find_from(previous, deadline, |line| line.contains(needle)) {
            Some((_, line)) => line,
            None => panic!(
                "no log line with {needle:?} after the first {previous} within {DEADLINE:?} \
                 (or the manager exited); log:\n{}",
                self.log().join("\n")
            ),
        }
    }

    /// Where the daemon says it bound `role`'s socket (ports resolved).
    fn bound_endpoint(&self, role: &str) -> Option<String> {
        let prefix = format!("{role} socket bound to ");
        self.log()
            .iter()
            .find_map(|line| line.split_once(&prefix).map(|(_, rest)| rest.trim().to_owned()))
    }

    /// A REQ socket connected to the manager's request endpoint.
    pub fn req_socket(&self) -> zmq::Socket {
        let socket = self.context.socket(zmq::REQ).unwrap();
        socket.set_linger(0).unwrap();
        socket.set_rcvtimeo(DEADLINE.as_millis() as i32).unwrap();
        socket.set_sndtimeo(DEADLINE.as_millis() as i32).unwrap();
        socket.connect(&self.rep).unwrap();
        socket
    }

    /// Sends one request on a fresh REQ socket and returns the reply.
    pub fn request(&self, frames: &[&[u8]]) -> Vec<Vec<u8>> {
        request_on(&self.req_socket(), frames)
    }

    /// `clients.list.get` / `clients.detail.get` in plain framing, body parsed.
    pub fn clients(&self, action: &str) -> Value {
        let reply = self.request(&[action.as_bytes(), b"{}"]);
        assert_eq!(reply.len(), 2, "{reply:?}");
        body_of(&reply[1])["clients"].clone()
    }

    /// Asks `action` until the entry of client `id` (`null` while there is
    /// none) satisfies `wanted`, within the deadline; returns that entry. For
    /// what the manager applies after the test acted: a rescan on SIGHUP, a
    /// status message read on another socket.
    pub fn await_client(&self, action: &str, id: &str, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let entry = self.clients(action)[id].clone();
            if wanted(&entry) {
                return entry;
            }
            assert!(
                Instant::now() < deadline,
                "{id} never {what} within {DEADLINE:?}: {entry}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn context(&self) -> &zmq::Context {
        &self.context
    }

    /// A user interface: SUB connected to the manager's PUB, subscribed to `clients`.
    pub fn ui_subscriber(&self) -> zmq::Socket {
        subscriber(&self.context, self.publisher.as_deref().expect("pub bound"), "clients")
    }

    /// A plugin: PUB connected to the manager's SUB.
    pub fn plugin_publisher(&self) -> zmq::Socket {
        publisher(&self.context, self.sub.as_deref().expect("sub bound"))
    }

    pub fn signal(&self, name: &str) {
        send_signal(self.pid(), name);
    }

    /// Waits for the process to exit, within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        match exit_within(&mut self.child, within) {
            Some(status) => status,
            None => panic!(
                "dmg_manager still running after {within:?}; log:\n{}",
                self.log().join("\n")
            ),
        }
    }

    /// SIGTERM, then the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(DEADLINE)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A failing test shows what the manager said (its last lines) and
        // whether it was still running.
        if std::thread::panicking() {
            let still_running = matches!(self.child.try_wait(), Ok(None));
            let log = self.log();
            let tail = &log[log.len().saturating_sub(30)..];
            eprintln!(
                "manager running: {still_running}; last stderr lines:\n{}",
                tail.join("\n")
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn request_on(socket: &zmq::Socket, frames: &[&[u8]]) -> Vec<Vec<u8>> {
    socket.send_multipart(frames.iter().copied(), 0).unwrap();
    socket
        .recv_multipart(0)
        .unwrap_or_else(|e| panic!("no reply to {:?} within {DEADLINE:?}: {e}", short(frames)))
}

fn short(frames: &[&[u8]]) -> Vec<String> {
    frames
        .iter()
        .map(|frame| String::from_utf8_lossy(&frame[..frame.len().min(40)]).into_owned())
        .collect()
}

pub fn body_of(frame: &[u8]) -> Value {
    serde_json::from_slice(frame).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(frame)))
}

pub fn subscriber(context: &zmq::Context, endpoint: &str, prefix: &str) -> zmq::Socket {
    let socket = context.socket(zmq::SUB).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_ipv6(endpoint.contains('[')).unwrap();
    socket.set_subscribe(prefix.as_bytes()).unwrap();
    socket.connect(endpoint).unwrap();
    socket
}

pub fn publisher(context: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let socket = context.socket(zmq::PUB).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_ipv6(endpoint.contains('[')).unwrap();
    socket.connect(endpoint).unwrap();
    socket
}

/// A publication received by a user interface.
#[derive(Debug, Clone)]
pub struct Publication {
    pub msg_id: String,
    pub body: Value,
}

impl Publication {
    pub fn category(&self) -> &str {
        let mut parts = self.msg_id.rsplitn(3, '.');
        parts.next();
        parts.next();
        parts.next().unwrap_or("")
    }
}

/// The next message on `socket`, or `None` after `within`.
pub fn recv_publication(socket: &zmq::Socket, within: Duration) -> Option<Publication> {
    let mut items = [socket.as_poll_item(zmq::POLLIN)];
    zmq::poll(&mut items, within.as_millis() as i64).unwrap();
    if !items[0].is_readable() {
        return None;
    }
    let frames = socket.recv_multipart(0).unwrap();
    assert_eq!(frames.len(), 2, "a publication has 2 frames: {frames:?}");
    Some(Publication {
        msg_id: String::from_utf8(frames[0].clone()).unwrap(),
        body: body_of(&frames[1]),
    })
}

/// Receives publications until one satisfies `wanted`, within the deadline.
pub fn await_publication(socket: &zmq::Socket, what: &str, wanted: impl Fn(&Publication) -> bool) -> Publication {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Some(publication) = recv_publication(socket, Duration::from_millis(100)) {
            if wanted(&publication) {
                return publication;
            }
            seen.push(publication.msg_id);
        }
    }
    panic!("no publication {what} within {DEADLINE:?}; saw {seen:?}");
}

/// A status message in the seed's shape: `plugin` category, `id`.
pub fn seed_status(name: &str, event: &str) -> Vec<Vec<u8>> {
    let body = serde_json::json!({"type": "plugin", "id": name, "event": event});
    vec![b"plugin.1371071554_16.0_1".to_vec(), body.to_string().into_bytes()]
}

/// A status message in the later shape: `plugin.status`, `name` and `host`.
pub fn later_status(name: &str, host: &str, event: &str) -> Vec<Vec<u8>> {
    let body = serde_json::json!({"type": "plugin", "name": name, "host": host, "event": event});
    vec![
        b"plugin.status.1371071554_16.0_1".to_vec(),
        body.to_string().into_bytes(),
    ]
}

/// ZeroMQ pub/sub connects asynchronously: until both links are up,
/// messages are dropped. This flips plugin `test` between two statuses
/// until the user interface sees a publication, proving both links work.
/// Afterwards `test` is `stopped`, and nothing is left unread on `ui`:
/// `stopped` is not one of the two flipped statuses, so the publication
/// showing it is the one after every flip still in flight.
pub fn connect_pubsub(plugin: &zmq::Socket, ui: &zmq::Socket) {
    let deadline = Instant::now() + DEADLINE;
    let mut flip = false;
    loop {
        assert!(Instant::now() < deadline, "pub/sub links not up within {DEADLINE:?}");
        flip = !flip;
        plugin
            .send_multipart(seed_status("test", if flip { "starting" } else { "alive" }), 0)
            .unwrap();
        if let Some(publication) = recv_publication(ui, Duration::from_millis(50)) {
            // A flipped status proves the plugin's link too: a publication
            // alone may be the state the manager republishes when a
            // subscriber appears at the forwarder.
            let status = &publication.body["domogik-test.testhost"]["status"];
            if publication.category() == "clients.list" && (status == "starting" || status == "alive") {
                break;
            }
        }
    }
    // Leave `test` stopped, and consume every publication up to that state.
    plugin.send_multipart(seed_status("test", "stopped"), 0).unwrap();
    drain_until_quiet(ui, |p| {
        p.category() == "clients.detail" && p.body["domogik-test.testhost"]["status"] == "stopped"
    });
}

/// Reads publications until one satisfies `last`, then until none is pending.
fn drain_until_quiet(ui: &zmq::Socket, last: impl Fn(&Publication) -> bool) {
    let deadline = Instant::now() + DEADLINE;
    let mut reached = false;
    while Instant::now() < deadline {
        match recv_publication(ui, Duration::from_millis(if reached { 0 } else { 100 })) {
            Some(publication) => reached |= last(&publication),
            None if reached => return,
            None => {}
        }
    }
    panic!("publications did not settle");
}

/// A thread that runs until dropped, also when the test fails: `work`
/// returns once the flag it is given is set.
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    pub fn start(work: impl FnOnce(&AtomicBool) + Send + 'static) -> Background {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        Background {
            stop,
            thread: Some(std::thread::spawn(move || work(&flag))),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A minimal Domogik MQ forwarder (examples/dmg_testbus/forwarder.rs):
/// XSUB where publishers connect, XPUB where subscribers connect,
/// forwarding both ways until dropped.
pub struct Forwarder {
    pub xsub: String,
    pub xpub: String,
    _thread: Background,
}

impl Forwarder {
    /// Binds on ephemeral loopback ports (or the given ones, to restart).
    pub fn start(ports: Option<(u16, u16)>) -> Forwarder {
        Forwarder::start_on("127.0.0.1", ports)
    }

    /// Binds on address `ip` of this machine.
    pub fn start_on(ip: &str, ports: Option<(u16, u16)>) -> Forwarder {
        let context = zmq::Context::new();
        let (xsub_port, xpub_port) = ports.map_or(("*".to_owned(), "*".to_owned()), |(a, b)| {
            (a.to_string(), b.to_string())
        });
        let (xsub, xpub, xsub_endpoint, xpub_endpoint) = forwarder::bind(
            &context,
            &format!("tcp://{ip}:{xsub_port}"),
            &format!("tcp://{ip}:{xpub_port}"),
        )
        .unwrap();
        let thread = Background::start(move |stop| {
            let _context = context;
            forwarder::forward(&xsub, &xpub, stop);
        });
        Forwarder {
            xsub: xsub_endpoint,
            xpub: xpub_endpoint,
            _thread: thread,
        }
    }

    pub fn ports(&self) -> (u16, u16) {
        let port = |endpoint: &str| endpoint.rsplit(':').next().unwrap().parse().unwrap();
        (port(&self.xsub), port(&self.xpub))
    }
}

/// The heartbeat the bus tests run at (ms): the manager's through its
/// test-only knob, the test broker's the same.
pub const TEST_HEARTBEAT_MS: u64 = 200;

/// The test MDP broker (examples/dmg_testbus/broker.rs) in a thread,
/// until dropped.
pub struct TestBroker {
    pub endpoint: String,
    pub control: Arc<broker::Control>,
    thread: Option<JoinHandle<()>>,
}

impl TestBroker {
    /// Binds on an ephemeral loopback port, or `port` (to restart).
    pub fn start(port: Option<u16>) -> TestBroker {
        TestBroker::start_on("127.0.0.1", port)
    }

    /// Binds on address `ip` (`[::1]` for IPv6).
    pub fn start_on(ip: &str, port: Option<u16>) -> TestBroker {
        TestBroker::start_beating(ip, port, TEST_HEARTBEAT_MS)
    }

    /// [`TestBroker::start_on`], heartbeating every `heartbeat_ms`.
    pub fn start_beating(ip: &str, port: Option<u16>, heartbeat_ms: u64) -> TestBroker {
        let context = zmq::Context::new();
        let at = format!("tcp://{ip}:{}", port.map_or("*".to_owned(), |p| p.to_string()));
        // A restart may find the port still held a moment by the old one.
        let deadline = Instant::now() + DEADLINE;
        let mut broker = loop {
            match broker::Broker::bind(&context, &at, Duration::from_millis(heartbeat_ms), false) {
                Ok(broker) => break broker,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot bind the test broker on {at}: {e}"),
            }
        };
        let endpoint = broker.endpoint.clone();
        let control = Arc::clone(&broker.control);
        let thread = std::thread::spawn(move || {
            let _context = &context;
            broker.run();
        });
        TestBroker {
            endpoint,
            control,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.endpoint.rsplit(':').next().unwrap().parse().unwrap()
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.control.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A config for the Domogik layout: nothing but `[mq]` (the broker's and
/// the forwarder's ports) and `[manager] host` and `packages_dir`.
pub fn bus_config(broker: &TestBroker, forwarder: &Forwarder, packages: &Path) -> String {
    let (xsub_port, xpub_port) = forwarder.ports();
    format!(
        "[mq]\nip = 127.0.0.1\nreq_rep_port = {}\npub_port = {xsub_port}\nsub_port = {xpub_port}\n\
         [manager]\nhost = testhost\npackages_dir = {}\n",
        broker.port(),
        packages.display()
    )
}

/// The manager's command with the test heartbeat knob set.
pub fn fast_heartbeat_command(config: &Path) -> Command {
    let mut command = manager_command(config);
    command.env("DMG_MANAGER_TEST_HEARTBEAT_MS", TEST_HEARTBEAT_MS.to_string());
    command
}

/// One request to `service` through the broker at `endpoint`, as Domogik's
/// MQSyncReq frames it (`timeout` frame included when given); the reply,
/// or `None` if none came within `within`.
pub fn broker_request(
    context: &zmq::Context,
    endpoint: &str,
    service: &str,
    timeout: Option<&str>,
    action: &str,
    within: Duration,
) -> Option<Vec<Vec<u8>>> {
    let socket = context.socket(zmq::REQ).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_ipv6(endpoint.contains('[')).unwrap();
    socket.connect(endpoint).unwrap();
    let mut frames: Vec<&[u8]> = vec![b"MDPC01", service.as_bytes()];
    if let Some(timeout) = timeout {
        frames.push(timeout.as_bytes());
    }
    frames.extend([action.as_bytes(), b"{}"]);
    socket.send_multipart(frames, 0).unwrap();
    let mut items = [socket.as_poll_item(zmq::POLLIN)];
    zmq::poll(&mut items, within.as_millis() as i64).unwrap();
    items[0].is_readable().then(|| socket.recv_multipart(0).unwrap())
}

/// Asks `action` through the broker until the manager answers (it may be
/// registering), within the deadline; the reply's clients map.
pub fn await_broker_clients(context: &zmq::Context, broker: &TestBroker, action: &str) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(reply) = broker_request(context, &broker.endpoint, "manager", None, action, Duration::from_millis(300)) {
            assert_eq!(reply.len(), 4, "{reply:?}");
            assert_eq!(&reply[..2], &[b"MDPC01".to_vec(), b"manager".to_vec()]);
            return body_of(&reply[3])["clients"].clone();
        }
        assert!(Instant::now() < deadline, "no answer through the broker within {DEADLINE:?}");
    }
}

/// The standalone config at another log level than `debug` (the level
/// a flood's log volume is judged at is the production one, `info`).
pub fn standalone_config_at(packages: &Path, level: &str, extra_manager_keys: &str) -> String {
    standalone_config(packages, extra_manager_keys).replace("log_level = debug\n", &format!("log_level = {level}\n"))
}

/// The resident memory of process `pid` in KiB (`VmRSS` of /proc/PID/status).
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `host:port` of a `tcp://host:port` endpoint, for plain TCP peers.
pub fn tcp_address(endpoint: &str) -> String {
    endpoint.strip_prefix("tcp://").expect("a tcp endpoint").to_owned()
}

/// A small deterministic generator (xorshift64*) for "random" bytes that
/// are the same at every run.
pub struct Noise(u64);

impl Noise {
    pub fn new(seed: u64) -> Noise {
        Noise(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}
