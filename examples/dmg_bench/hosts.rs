//! Item 10, several hosts on one bus (issue 24, PROTOCOL.md §13): with 1,
//! 3 and 10 managers (hosts `h0`, `h1`, ...; 10 plugins each) behind one
//! `dmg-testbus` (broker and forwarder, as a Domogik master), the round
//! trip of `client.list.get` and `client.detail.get` through the broker
//! (whichever manager it picks answers with every host's clients), each
//! manager's memory, and what one status change of one host's plugin
//! costs on the bus: every message the forwarder relays to a subscriber
//! of everything, counted for 1 s after the change. The managers are
//! processes on loopback, not network namespaces: the figures are the
//! managers' own, without a real link's latency.

use super::bus;
use super::fixture::{self, ScratchDir, Template};
use super::options::Options;
use super::process::Process;
use super::procfs;
use super::run;
use super::stats::{duration, summarize, Summary};
use super::Failure;
use std::path::Path;
use std::time::{Duration, Instant};

/// Host counts measured.
const HOST_COUNTS: [usize; 3] = [1, 3, 10];
/// Plugins per host.
const PLUGINS: usize = 10;
const WARM_UP_REQUESTS: usize = 50;
const DEADLINE: Duration = Duration::from_secs(60);

struct Figures {
    hosts: usize,
    list: Summary,
    list_bytes: usize,
    detail: Summary,
    detail_bytes: usize,
    /// VmRSS of the managers, KiB: mean and largest.
    rss_mean: u64,
    rss_max: u64,
    /// After one status change: messages and bytes the forwarder relayed.
    change_messages: usize,
    change_bytes: usize,
}

/// Runs item 10 and prints its table.
pub fn run_hosts(options: &Options) -> Result<(), Failure> {
    let daemon = run::daemon_binary(options)?;
    let scratch = ScratchDir::new()?;
    let templates = fixture::load_templates()?;
    let mut all = Vec::new();
    for hosts in HOST_COUNTS {
        all.push(measure(options, &daemon, &scratch, &templates, hosts)?);
    }
    println!("| hosts | `client.list.get` p50 / p99 (bytes) | `client.detail.get` p50 / p99 (bytes) | RSS per manager, mean / max | one status change: messages / bytes on the bus |");
    println!("|---|---|---|---|---|");
    for f in &all {
        println!(
            "| {} | {} / {} ({} B) | {} / {} ({} B) | {} / {} KiB | {} / {} B |",
            f.hosts,
            duration(f.list.p50),
            duration(f.list.p99),
            f.list_bytes,
            duration(f.detail.p50),
            duration(f.detail.p99),
            f.detail_bytes,
            f.rss_mean,
            f.rss_max,
            f.change_messages,
            f.change_bytes
        );
    }
    Ok(())
}

fn measure(
    options: &Options,
    daemon: &Path,
    scratch: &ScratchDir,
    templates: &[Template],
    hosts: usize,
) -> Result<Figures, Failure> {
    let ports = bus::free_ports()?;
    let _testbus = bus::start_testbus(&ports)?;
    let mut managers: Vec<Process> = Vec::new();
    for index in 0..hosts {
        let packages = scratch.join(&format!("packages-hosts{hosts}-h{index}"));
        fixture::write_packages(&packages, PLUGINS, templates)?;
        let config = scratch.join(&format!("manager-hosts{hosts}-h{index}.cfg"));
        let [broker, xsub, xpub] = ports;
        let text = format!(
            "[mq]\nip = 127.0.0.1\nreq_rep_port = {broker}\npub_port = {xsub}\nsub_port = {xpub}\n\
             [manager]\nhost = h{index}\npackages_dir = {}\nrescan_interval = 600\nlog_level = info\n",
            packages.display()
        );
        std::fs::write(&config, text).map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let mut manager = run::spawn_daemon(options, daemon, &config)?;
        manager.wait_for_line("ready:")?;
        managers.push(manager);
    }
    let context = zmq::Context::new();
    let endpoint = format!("tcp://127.0.0.1:{}", ports[0]);
    let client = bus::registered_client(&context, &endpoint)?;
    // Every manager answers with every host's clients before anything is timed.
    let wanted = hosts * PLUGINS;
    let start = Instant::now();
    let mut steady = 0;
    while steady < 2 * hosts {
        let count = clients_in(&client, "client.list.get")?;
        steady = if count == wanted { steady + 1 } else { 0 };
        if start.elapsed() > DEADLINE {
            return Err(format!("{hosts} hosts: {count} clients, not {wanted}, after {DEADLINE:?}"));
        }
    }
    let (list, list_bytes) = round_trips(&client, "client.list.get", options.requests.min(1000))?;
    let (detail, detail_bytes) = round_trips(&client, "client.detail.get", options.requests.min(1000))?;
    let memories = managers
        .iter()
        .map(|manager| procfs::memory(manager.pid()).map(|memory| memory.rss))
        .collect::<Result<Vec<u64>, Failure>>()?;
    let (change_messages, change_bytes) = one_change(&context, &ports)?;
    for manager in &mut managers {
        manager.stop(true)?;
    }
    Ok(Figures {
        hosts,
        list,
        list_bytes,
        detail,
        detail_bytes,
        rss_mean: memories.iter().sum::<u64>() / memories.len().max(1) as u64,
        rss_max: memories.iter().copied().max().unwrap_or(0),
        change_messages,
        change_bytes,
    })
}

/// How many clients the reply to `action` holds.
fn clients_in(client: &zmq::Socket, action: &str) -> Result<usize, Failure> {
    let framing = domogik_manager::core::wire::Framing::Mdp {
        service: b"manager".to_vec(),
    };
    client
        .send_multipart(domogik_manager::core::wire::encode_request(&framing, action, "{}"), 0)
        .map_err(|e| format!("cannot send {action}: {e}"))?;
    let frames = client.recv_multipart(0).map_err(|e| format!("no reply to {action}: {e}"))?;
    let body: serde_json::Value =
        serde_json::from_slice(frames.last().map(Vec::as_slice).unwrap_or_default()).map_err(|e| format!("{action}: {e}"))?;
    Ok(body.as_object().map_or(0, serde_json::Map::len))
}

fn round_trips(client: &zmq::Socket, action: &str, count: usize) -> Result<(Summary, usize), Failure> {
    let mut samples = Vec::with_capacity(count);
    let mut bytes = 0;
    for index in 0..WARM_UP_REQUESTS + count {
        let start = Instant::now();
        bytes = bus::request(client, action)?;
        if index >= WARM_UP_REQUESTS {
            samples.push(start.elapsed());
        }
    }
    Ok((summarize(&mut samples), bytes))
}

/// One status change of plugin 0 of host `h0`, sent to the forwarder; what
/// the forwarder relays in the next second to a subscriber of everything
/// (the managers' own statuses every 15 s fall in it at most once each).
fn one_change(context: &zmq::Context, [_, xsub, xpub]: &[u16; 3]) -> Result<(usize, usize), Failure> {
    let all = context.socket(zmq::SUB).map_err(|e| format!("SUB: {e}"))?;
    all.set_subscribe(b"").map_err(|e| format!("SUB: {e}"))?;
    all.connect(&format!("tcp://127.0.0.1:{xpub}")).map_err(|e| format!("SUB: {e}"))?;
    let plugin = context.socket(zmq::PUB).map_err(|e| format!("PUB: {e}"))?;
    plugin.connect(&format!("tcp://127.0.0.1:{xsub}")).map_err(|e| format!("PUB: {e}"))?;
    // Both links up, and nothing else in flight, before the change.
    std::thread::sleep(Duration::from_millis(500));
    while all.poll(zmq::POLLIN, 0).unwrap_or(0) > 0 {
        let _ = all.recv_multipart(0);
    }
    let name = fixture::plugin_names(PLUGINS).into_iter().next().unwrap_or_default();
    let body = serde_json::json!({"type": "plugin", "name": name, "host": "h0", "event": "alive"});
    plugin
        .send_multipart([&b"plugin.status.1_0.0_1"[..], body.to_string().as_bytes()], 0)
        .map_err(|e| format!("cannot send a status: {e}"))?;
    let (mut messages, mut bytes) = (0, 0);
    let until = Instant::now() + Duration::from_secs(1);
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        if all.poll(zmq::POLLIN, left.as_millis() as i64).unwrap_or(0) == 0 {
            break;
        }
        if let Ok(frames) = all.recv_multipart(0) {
            messages += 1;
            bytes += frames.iter().map(Vec::len).sum::<usize>();
        }
    }
    Ok((messages, bytes))
}
