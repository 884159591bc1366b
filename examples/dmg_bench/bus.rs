//! Item 9, the manager on a Domogik bus (issue 10): the request round trip
//! through an MDP broker next to the direct one, and what the heartbeats
//! of the worker layout cost an idle manager.
//!
//! Two daemons run side by side on the same generated packages: one in the
//! worker layout (`[mq]` only, like a Domogik host's config) behind
//! `dmg-testbus` (the repo's MDP broker and XSUB/XPUB forwarder, heartbeat
//! 1 s as Domogik's), one in the standalone layout (a bound ROUTER). Both
//! get the same request in Domogik's MDP client framing (what its
//! `MQSyncReq` sends), alternately, so they share the machine's noise. A
//! small `dbmgr` worker in this process answers the manager's `config.get`
//! questions, as on a real host (without it the manager would keep asking,
//! and the idle figures would count that). Rescans are set 10 minutes
//! apart, so the idle windows show the heartbeats alone.

use super::fixture::{self, ScratchDir, Template};
use super::options::Options;
use super::process::Process;
use super::procfs::{self, CpuDelta};
use super::run;
use super::stats::{summarize, Summary};
use super::strace;
use super::Failure;
use domogik_manager::core::manager::{DETAIL_GET, LIST_GET};
use domogik_manager::core::wire::{self, Framing};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The plugin count of item 9 (the request sizes of items 1–2 at N = 10).
pub const PLUGINS: usize = 10;
/// dmg-testbus's broker heartbeat, as Domogik's broker and the manager.
const HEARTBEAT_MS: u64 = 1000;
/// Far enough apart that no rescan falls in an idle window.
const RESCAN_SECONDS: u64 = 600;
const WARM_UP_REQUESTS: usize = 100;
/// No reply within this is a failed run.
const DEADLINE: Duration = Duration::from_secs(30);

/// Through the broker, and direct, for one action.
pub struct RoundTrips {
    pub action: &'static str,
    pub broker: Summary,
    pub direct: Summary,
    pub bytes: usize,
}

/// Both daemons idle over the same windows.
pub struct IdleSideBySide {
    pub window: Duration,
    pub worker: CpuDelta,
    pub direct: CpuDelta,
    pub worker_wake_ups: strace::Outcome,
    pub direct_wake_ups: strace::Outcome,
}

pub struct BusFigures {
    pub n: usize,
    pub round_trips: Vec<RoundTrips>,
    pub idle: IdleSideBySide,
}

pub fn measure(
    options: &Options,
    daemon_path: &Path,
    scratch: &ScratchDir,
    templates: &[Template],
) -> Result<BusFigures, Failure> {
    let packages = scratch.join("packages-bus");
    fixture::write_packages(&packages, PLUGINS, templates)?;
    let ports = free_ports()?;
    let _testbus = start_testbus(&ports)?;
    let context = zmq::Context::new();
    let stop_dbmgr = Arc::new(AtomicBool::new(false));
    let dbmgr = start_dbmgr(&context, &ports[0], Arc::clone(&stop_dbmgr))?;

    let worker_config = scratch.join("manager-bus-worker.cfg");
    write(&worker_config, &worker_layout(&packages, &ports))?;
    let mut worker = run::spawn_daemon(options, daemon_path, &worker_config)?;
    worker.wait_for_line("ready:")?;
    let direct_config = scratch.join("manager-bus-direct.cfg");
    let standalone = fixture::standalone_config(&packages, RESCAN_SECONDS);
    write(&direct_config, &standalone)?;
    let mut direct = run::spawn_daemon(options, daemon_path, &direct_config)?;
    let direct_endpoints = direct.wait_ready()?;

    let broker = registered_client(&context, &format!("tcp://127.0.0.1:{}", ports[0]))?;
    let direct_req = super::measure::req_socket(&context, &direct_endpoints.rep)?;
    let mut round_trips = Vec::new();
    for action in [LIST_GET, DETAIL_GET] {
        round_trips.push(interleaved(&broker, &direct_req, action, options.requests)?);
    }
    drop((broker, direct_req));

    std::thread::sleep(run::SETTLE);
    let idle = idle_side_by_side(options, &worker, &direct, scratch)?;
    worker.stop(true)?;
    direct.stop(true)?;
    stop_dbmgr.store(true, Ordering::SeqCst);
    let _ = dbmgr.join();
    Ok(BusFigures {
        n: PLUGINS,
        round_trips,
        idle,
    })
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Three loopback ports free a moment ago: the broker's, the forwarder's
/// XSUB (where publishers connect, `[mq] pub_port`) and XPUB (`sub_port`).
pub(super) fn free_ports() -> Result<[u16; 3], Failure> {
    let listeners = (0..3)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
    let mut ports = [0; 3];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr().map_err(|e| format!("no local address: {e}"))?.port();
    }
    Ok(ports)
}

/// A Domogik host's config: `[mq]` and the few `[manager]` keys a user sets.
fn worker_layout(packages: &Path, [broker, xsub, xpub]: &[u16; 3]) -> String {
    format!(
        "[mq]\nip = 127.0.0.1\nreq_rep_port = {broker}\npub_port = {xsub}\nsub_port = {xpub}\n\
         [manager]\nhost = {}\npackages_dir = {}\nrescan_interval = {RESCAN_SECONDS}\nlog_level = info\n",
        fixture::HOST,
        packages.display()
    )
}

/// `target/release/examples/dmg-testbus`, built if need be, on `ports`.
pub(super) fn start_testbus([broker, xsub, xpub]: &[u16; 3]) -> Result<Process, Failure> {
    let path = run::build_example(&run::target_dir()?, "dmg-testbus")?;
    let mut command = Command::new(path);
    command
        .args(["--broker", &format!("tcp://127.0.0.1:{broker}"), "--forwarder"])
        .arg(format!("tcp://127.0.0.1:{xsub}"))
        .arg(format!("tcp://127.0.0.1:{xpub}"))
        .args(["--heartbeat-ms", &HEARTBEAT_MS.to_string(), "--quiet"]);
    let mut testbus = Process::spawn_reading_stdout("dmg-testbus", command)?;
    testbus.wait_for_line("dmg-testbus ready")?;
    Ok(testbus)
}

/// A REQ socket to the broker, returned once the manager's worker answers
/// through it (the broker drops requests for a service not registered yet).
pub(super) fn registered_client(context: &zmq::Context, endpoint: &str) -> Result<zmq::Socket, Failure> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let socket = super::measure::req_socket(context, endpoint)?;
        socket.set_rcvtimeo(300).map_err(|e| format!("REQ timeout: {e}"))?;
        if request(&socket, LIST_GET).is_ok() {
            socket
                .set_rcvtimeo(DEADLINE.as_millis() as i32)
                .map_err(|e| format!("REQ timeout: {e}"))?;
            return Ok(socket);
        }
        if Instant::now() > deadline {
            return Err(format!("the manager never answered through the broker at {endpoint}"));
        }
    }
}

/// One request in MDP client framing to service `manager`; the reply's
/// size in bytes, once checked.
pub(super) fn request(socket: &zmq::Socket, action: &str) -> Result<usize, Failure> {
    let framing = Framing::Mdp {
        service: b"manager".to_vec(),
    };
    socket
        .send_multipart(wire::encode_request(&framing, action, "{}"), 0)
        .map_err(|e| format!("cannot send {action}: {e}"))?;
    let frames = socket
        .recv_multipart(0)
        .map_err(|e| format!("no reply to {action}: {e}"))?;
    let reply = wire::decode_reply(&frames).map_err(|why| format!("a bad reply to {action}: {why}"))?;
    if reply.action != action.replace(".get", ".result") {
        return Err(format!("{action} answered with {}", reply.action));
    }
    Ok(frames.iter().map(Vec::len).sum())
}

fn interleaved(broker: &zmq::Socket, direct: &zmq::Socket, action: &'static str, count: usize) -> Result<RoundTrips, Failure> {
    let mut samples: [Vec<Duration>; 2] = Default::default();
    let mut bytes = 0;
    for index in 0..WARM_UP_REQUESTS + count {
        let start = Instant::now();
        bytes = request(broker, action)?;
        let through_broker = start.elapsed();
        let start = Instant::now();
        request(direct, action)?;
        let direct_time = start.elapsed();
        if index >= WARM_UP_REQUESTS {
            samples[0].push(through_broker);
            samples[1].push(direct_time);
        }
    }
    let [mut broker_times, mut direct_times] = samples;
    Ok(RoundTrips {
        action,
        broker: summarize(&mut broker_times),
        direct: summarize(&mut direct_times),
        bytes,
    })
}

/// CPU and context switches of both daemons over one window, then both
/// under strace at once over a second one.
fn idle_side_by_side(options: &Options, worker: &Process, direct: &Process, scratch: &ScratchDir) -> Result<IdleSideBySide, Failure> {
    let before = (procfs::cpu(worker.pid())?, procfs::cpu(direct.pid())?);
    let start = Instant::now();
    std::thread::sleep(options.idle);
    let after = (procfs::cpu(worker.pid())?, procfs::cpu(direct.pid())?);
    let window = start.elapsed();
    let (worker_wake_ups, direct_wake_ups) = if options.strace {
        let trace = |pid: u32, name: &str| strace::count_wake_ups(pid, options.strace_window, &scratch.join(name));
        std::thread::scope(|scope| {
            let other = scope.spawn(|| trace(direct.pid(), "strace-bus-direct.txt"));
            let mine = trace(worker.pid(), "strace-bus-worker.txt");
            let theirs = other.join().map_err(|_| Failure::from("the strace thread panicked"))?;
            Ok::<_, Failure>((mine?, theirs?))
        })?
    } else {
        let off = || strace::Outcome::Unavailable("--no-strace".into());
        (off(), off())
    };
    Ok(IdleSideBySide {
        window,
        worker: procfs::delta(&before.0, &after.0),
        direct: procfs::delta(&before.1, &after.1),
        worker_wake_ups,
        direct_wake_ups,
    })
}

/// A `dbmgr` MDP worker on the broker, in a thread, answering every
/// `config.get` with a configured plugin not started at boot, and
/// heartbeating so that the broker keeps it.
fn start_dbmgr(context: &zmq::Context, broker_port: &u16, stop: Arc<AtomicBool>) -> Result<std::thread::JoinHandle<()>, Failure> {
    let socket = context.socket(zmq::DEALER).map_err(|e| format!("dbmgr DEALER: {e}"))?;
    socket.set_linger(0).map_err(|e| format!("dbmgr DEALER: {e}"))?;
    socket
        .connect(&format!("tcp://127.0.0.1:{broker_port}"))
        .map_err(|e| format!("dbmgr DEALER: {e}"))?;
    socket
        .send_multipart([&b""[..], b"MDPW01", b"\x01", b"dbmgr"], 0)
        .map_err(|e| format!("dbmgr READY: {e}"))?;
    Ok(std::thread::spawn(move || {
        let mut next_heartbeat = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if Instant::now() >= next_heartbeat {
                let _ = socket.send_multipart([&b""[..], b"MDPW01", b"\x04"], 0);
                next_heartbeat = Instant::now() + Duration::from_millis(HEARTBEAT_MS);
            }
            if socket.poll(zmq::POLLIN, 100).unwrap_or(0) == 0 {
                continue;
            }
            let Ok(frames) = socket.recv_multipart(0) else { continue };
            if let Some(reply) = dbmgr_reply(&frames) {
                let _ = socket.send_multipart(reply, 0);
            }
        }
    }))
}

/// `["", MDPW01, 0x02, client..., "", "config.get", body]` to the reply
/// `["", MDPW01, 0x03, client..., "", "config.result", answer]`.
fn dbmgr_reply(frames: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
    if frames.get(2).map(Vec::as_slice) != Some(b"\x02") {
        return None;
    }
    let delimiter = 3 + frames.get(3..)?.iter().position(Vec::is_empty)?;
    let body: serde_json::Value = serde_json::from_slice(frames.last()?).ok()?;
    let answer = serde_json::json!({
        "status": true, "reason": "", "type": "plugin",
        "name": body["name"], "host": body["host"],
        "data": {"configured": "True", "auto_startup": "False"},
    });
    let mut reply = vec![Vec::new(), b"MDPW01".to_vec(), b"\x03".to_vec()];
    reply.extend(frames.get(3..=delimiter)?.iter().cloned());
    reply.push(b"config.result".to_vec());
    reply.push(answer.to_string().into_bytes());
    Some(reply)
}
