//! The whole run: start the daemon and the floor for N = 10 and N = 200,
//! measure items 1 to 6 against both, time rescans of 1000 packages
//! in-process (item 7), and print the table.

use super::bus::{self, BusFigures};
use super::dialects;
use super::fixture::{self, ScratchDir, Template};
use super::floor::{self, Canned};
use super::measure::{self, Burst, Ingestion, Plugins, StatusLink};
use super::options::{Options, FLOOR_SERVER_FLAG};
use super::process::{Endpoints, Process};
use super::procfs::{self, CpuDelta, Memory};
use super::rescan;
use super::stats::Summary;
use super::strace;
use super::table;
use super::Failure;
use domogik_manager::core::manager::{DETAIL_GET, LIST_GET};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The plugin counts the issue asks for.
const SIZES: [usize; 2] = [10, 200];
const RESCAN_PACKAGES: usize = 1000;
/// The daemon's rescan interval in the generated config (its default).
const RESCAN_INTERVAL: Duration = Duration::from_secs(30);
/// Left to a process after start or load before its memory is read.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Everything measured at one N.
pub struct SizeResults {
    pub n: usize,
    /// The generated `info.json` files, on disk.
    pub info_json_bytes: u64,
    pub list: ReplyFigures,
    pub detail: ReplyFigures,
    pub latency: (Summary, Summary),
    pub ingestion: (Ingestion, Ingestion),
    pub burst: usize,
    pub memory: MemoryFigures,
    pub idle: IdleFigures,
    pub shutdown: Duration,
}

pub struct ReplyFigures {
    pub manager: Summary,
    /// The floor sending the manager's reply bytes.
    pub floor: Summary,
    /// The floor echoing a two-frame request.
    pub echo: Summary,
    pub bytes: usize,
}

/// Idle after start and after the load, for the daemon and the floor.
pub struct MemoryFigures {
    pub idle: Memory,
    pub loaded: Memory,
    pub floor_idle: Memory,
    pub floor_loaded: Memory,
}

pub struct IdleFigures {
    pub window: Duration,
    pub cpu: CpuDelta,
    pub rescans_due: u64,
    pub wake_ups: strace::Outcome,
    /// Rescans due in the strace window.
    pub strace_rescans_due: u64,
}

/// Item 8 at N = 10 and 200, in-process.
fn measure_dialects(scratch: &ScratchDir, templates: &[Template]) -> Result<Vec<dialects::DialectFigures>, Failure> {
    eprintln!("dmg-bench: status changes with both dialects published, in-process...");
    SIZES
        .iter()
        .map(|n| dialects::measure(&scratch.join(&format!("packages-dialects-{n}")), *n, templates))
        .collect()
}

/// `--dialects`: item 8 only (a few seconds), for a quick look.
pub fn run_dialects() -> Result<(), Failure> {
    let scratch = ScratchDir::new()?;
    let templates = fixture::load_templates()?;
    let figures = measure_dialects(&scratch, &templates)?;
    println!("{}", super::report::render(&table::dialect_rows(&figures)));
    println!("{}; load average {}", machine(), load_average());
    Ok(())
}

pub fn run(options: &Options) -> Result<(), Failure> {
    let daemon = daemon_binary(options)?;
    let load_at_start = load_average();
    let scratch = ScratchDir::new()?;
    let templates = fixture::load_templates()?;
    let mut sizes = Vec::new();
    for n in SIZES {
        eprintln!(
            "dmg-bench: N = {n}: requests, statuses, burst, idle window of {:?}...",
            options.idle
        );
        sizes.push(measure_size(options, &daemon, &scratch, &templates, n)?);
    }
    eprintln!("dmg-bench: rescans of {RESCAN_PACKAGES} packages, in-process...");
    let rescan = rescan::measure(&scratch.join("packages-rescan"), RESCAN_PACKAGES, &templates)?;
    let dialects = measure_dialects(&scratch, &templates)?;
    let bus = measure_bus(options, &daemon, &scratch, &templates)?;
    println!("{}", table::render(&sizes, &rescan, &dialects, &bus));
    print_machine(&load_at_start);
    Ok(())
}

/// The table's last line: the machine, and its load then and now.
fn print_machine(load_at_start: &str) {
    println!(
        "{}; load average {} at start, {} at the end",
        machine(),
        load_at_start,
        load_average()
    );
}

fn measure_bus(options: &Options, daemon: &Path, scratch: &ScratchDir, templates: &[Template]) -> Result<BusFigures, Failure> {
    eprintln!(
        "dmg-bench: N = {}: through an MDP broker and direct, idle window of {:?}...",
        bus::PLUGINS,
        options.idle
    );
    bus::measure(options, daemon, scratch, templates)
}

/// `--bus`: item 9 only (about a minute).
pub fn run_bus(options: &Options) -> Result<(), Failure> {
    let daemon = daemon_binary(options)?;
    let load_at_start = load_average();
    let scratch = ScratchDir::new()?;
    let templates = fixture::load_templates()?;
    let figures = measure_bus(options, &daemon, &scratch, &templates)?;
    println!("{}", super::report::render(&table::bus_rows(&figures)));
    print_machine(&load_at_start);
    Ok(())
}

/// The 1-minute load average: other work on the machine shows here.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// The release `dmg_manager` next to this example's own target folder,
/// built first with the cargo that runs us (unless `--daemon` names one).
pub fn daemon_binary(options: &Options) -> Result<PathBuf, Failure> {
    if let Some(path) = &options.daemon {
        return Ok(path.clone());
    }
    build_daemon(&target_dir()?, &[])
}

/// This example's cargo target folder: target/<profile>/examples/dmg-bench
/// -> target/.
pub fn target_dir() -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    if exe.ancestors().nth(2).and_then(Path::file_name) != Some("release".as_ref()) {
        eprintln!("dmg-bench: warning: built without --release, the client side is slower than it should be");
    }
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not in a cargo target folder", exe.display()))
}

/// `cargo build --release --bin dmg_manager` into `target` with the cargo
/// that runs us, plus `extra_args`; the binary's path.
pub fn build_daemon(target: &Path, extra_args: &[String]) -> Result<PathBuf, Failure> {
    cargo_build(target, &["--bin", "dmg_manager"], extra_args)?;
    Ok(target.join("release").join("dmg_manager"))
}

/// `cargo build --release --example NAME` into `target`; its path.
pub fn build_example(target: &Path, name: &str) -> Result<PathBuf, Failure> {
    cargo_build(target, &["--example", name], &[])?;
    Ok(target.join("release").join("examples").join(name))
}

fn cargo_build(target: &Path, what: &[&str], extra_args: &[String]) -> Result<(), Failure> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet"])
        .args(what)
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target)
        .args(extra_args)
        .status()
        .map_err(|e| format!("cannot run cargo to build {}: {e} (or pass --daemon PATH)", what.join(" ")))?;
    if !status.success() {
        return Err(format!(
            "cargo build --release {} {} failed ({status})",
            what.join(" "),
            extra_args.join(" ")
        ));
    }
    Ok(())
}

fn measure_size(
    options: &Options,
    daemon_path: &Path,
    scratch: &ScratchDir,
    templates: &[Template],
    n: usize,
) -> Result<SizeResults, Failure> {
    let packages = scratch.join(&format!("packages-{n}"));
    let names = fixture::write_packages(&packages, n, templates)?;
    let info_json_bytes = fixture::info_json_bytes(&packages)?;
    let mut daemon = start_daemon(options, daemon_path, scratch, &packages, n)?;
    let endpoints = daemon.wait_ready()?;
    let ready_at = Instant::now();
    std::thread::sleep(SETTLE);
    let idle_memory = procfs::memory(daemon.pid())?;

    let context = zmq::Context::new();
    let manager_req = measure::req_socket(&context, &endpoints.rep)?;
    let canned = canned_replies(&manager_req)?;
    let canned_path = scratch.join(&format!("floor-{n}.json"));
    floor::write_canned(&canned, &canned_path)?;
    let (mut floor_server, floor_endpoints) = start_floor(&canned_path)?;
    std::thread::sleep(SETTLE);
    let floor_idle = procfs::memory(floor_server.pid())?;
    let floor_req = measure::req_socket(&context, &floor_endpoints.rep)?;

    let list = reply_figures(&manager_req, &floor_req, LIST_GET, options, &canned)?;
    let detail = reply_figures(&manager_req, &floor_req, DETAIL_GET, options, &canned)?;
    let statuses = measure_statuses(&context, &endpoints, &floor_endpoints, names, options)?;

    std::thread::sleep(SETTLE);
    let memory = MemoryFigures {
        idle: idle_memory,
        loaded: procfs::memory(daemon.pid())?,
        floor_idle,
        floor_loaded: procfs::memory(floor_server.pid())?,
    };
    floor_server.stop(false)?;
    let strace_log = scratch.join(&format!("strace-{n}.txt"));
    let idle = measure_idle(options, daemon.pid(), ready_at, &strace_log)?;
    let shutdown = daemon.stop(true)?;
    Ok(SizeResults {
        n,
        info_json_bytes,
        list,
        detail,
        latency: statuses.latency,
        ingestion: statuses.ingestion,
        burst: statuses.burst,
        memory,
        idle,
        shutdown,
    })
}

/// Items 3 and 4, for the manager and the floor.
struct StatusFigures {
    latency: (Summary, Summary),
    ingestion: (Ingestion, Ingestion),
    burst: usize,
}

/// Status-to-publication latency, then the burst, for both servers.
fn measure_statuses(
    context: &zmq::Context,
    manager: &Endpoints,
    floor: &Endpoints,
    names: Vec<String>,
    options: &Options,
) -> Result<StatusFigures, Failure> {
    let manager_link = StatusLink::connect(context, &manager.sub, &manager.publisher)?;
    let mut plugins = Plugins::new(names.clone(), fixture::HOST);
    measure::warm_up(&manager_link, &mut plugins)?;
    let floor_link = StatusLink::connect(context, &floor.sub, &floor.publisher)?;
    let mut floor_plugins = Plugins::new(names, fixture::HOST);
    measure::warm_up(&floor_link, &mut floor_plugins)?;
    let samples = options.latency_samples;
    let latency = (
        measure::status_latency(&manager_link, &mut plugins, samples)?,
        measure::floor_latency(&floor_link, &mut floor_plugins, samples)?,
    );

    let burst = Burst::new(&plugins, options.burst);
    let (_manager_link, manager_ingestion) = measure::manager_ingestion(manager_link, &burst)?;
    burst.delivered(&mut plugins);
    let (_floor_link, floor_ingestion) = measure::floor_ingestion(floor_link, &mut floor_plugins, &burst)?;
    Ok(StatusFigures {
        latency,
        ingestion: (manager_ingestion, floor_ingestion),
        burst: burst.len(),
    })
}

pub fn start_daemon(
    options: &Options,
    daemon_path: &Path,
    scratch: &ScratchDir,
    packages: &Path,
    n: usize,
) -> Result<Process, Failure> {
    let config = scratch.join(&format!("manager-{n}.cfg"));
    std::fs::write(&config, fixture::daemon_config(packages))
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    spawn_daemon(options, daemon_path, &config)
}

/// The daemon on `config`, outside the journal, with `--daemon-env`.
pub fn spawn_daemon(options: &Options, daemon_path: &Path, config: &Path) -> Result<Process, Failure> {
    let mut command = Command::new(daemon_path);
    command
        .arg("--config")
        .arg(config)
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .envs(options.daemon_env.iter().map(|(k, v)| (k, v)));
    Process::spawn("daemon", command)
}

/// This same program, as the floor server.
fn start_floor(canned: &Path) -> Result<(Process, Endpoints), Failure> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = Command::new(exe);
    command.arg(FLOOR_SERVER_FLAG).arg(canned);
    let mut floor = Process::spawn("floor server", command)?;
    let endpoints = floor.wait_ready()?;
    Ok((floor, endpoints))
}

/// The manager's own replies, for the floor to send back byte for byte.
fn canned_replies(manager: &zmq::Socket) -> Result<Canned, Failure> {
    let mut replies = BTreeMap::new();
    for action in [LIST_GET, DETAIL_GET] {
        let frames = measure::request(manager, action)?
            .into_iter()
            .map(|frame| String::from_utf8(frame).map_err(|_| format!("the reply to {action} is not UTF-8")))
            .collect::<Result<Vec<String>, Failure>>()?;
        replies.insert(action.to_owned(), frames);
    }
    // A clients.list publication is the reply's map without its wrapper.
    let publication = replies
        .get(LIST_GET)
        .and_then(|frames| frames.last())
        .and_then(|body| body.strip_prefix("{\"clients\": "))
        .and_then(|map| map.strip_suffix('}'))
        .ok_or("the clients.list.get reply is not {\"clients\": ...}")?
        .to_owned();
    Ok(Canned { replies, publication })
}

fn reply_figures(
    manager: &zmq::Socket,
    floor: &zmq::Socket,
    action: &str,
    options: &Options,
    canned: &Canned,
) -> Result<ReplyFigures, Failure> {
    let [manager, floor, echo] = measure::round_trips(manager, floor, action, options.requests)?;
    let bytes = canned
        .replies
        .get(action)
        .map(|frames| frames.iter().map(String::len).sum())
        .unwrap_or(0);
    Ok(ReplyFigures {
        manager,
        floor,
        echo,
        bytes,
    })
}

/// CPU and wake-ups of the idle daemon (user interfaces and plugins still
/// connected, nothing sent), then the strace window.
fn measure_idle(options: &Options, pid: u32, ready_at: Instant, strace_log: &Path) -> Result<IdleFigures, Failure> {
    let before = procfs::cpu(pid)?;
    let start = Instant::now();
    std::thread::sleep(options.idle);
    let after = procfs::cpu(pid)?;
    let end = Instant::now();
    let (wake_ups, strace_rescans_due) = if options.strace {
        wait_for_a_rescan_in_the_window(ready_at, options);
        let strace_start = Instant::now();
        let outcome = strace::count_wake_ups(pid, options.strace_window, strace_log)?;
        (outcome, rescans_between(ready_at, strace_start, Instant::now()))
    } else {
        (strace::Outcome::Unavailable("--no-strace".into()), 0)
    };
    Ok(IdleFigures {
        window: end - start,
        cpu: procfs::delta(&before, &after),
        rescans_due: rescans_between(ready_at, start, end),
        wake_ups,
        strace_rescans_due,
    })
}

/// Delays the strace window so that the next rescan falls in its last
/// seconds (showing what one rescan wakes), unless that means waiting
/// longer than the idle window itself.
fn wait_for_a_rescan_in_the_window(ready_at: Instant, options: &Options) {
    let interval = RESCAN_INTERVAL.as_secs_f64();
    let elapsed = ready_at.elapsed().as_secs_f64();
    let next_due = (elapsed / interval).floor() * interval + interval;
    let margin = (options.strace_window.as_secs_f64() / 5.0).min(2.0);
    let wait = next_due + margin - options.strace_window.as_secs_f64() - elapsed;
    if wait > 0.0 && wait < options.idle.as_secs_f64() {
        std::thread::sleep(Duration::from_secs_f64(wait));
    }
}

/// Rescans fall every interval after the start (the first one before
/// `ready:`); how many fall in the window.
fn rescans_between(ready_at: Instant, start: Instant, end: Instant) -> u64 {
    let periods = |t: Instant| (t - ready_at).as_secs_f64() / RESCAN_INTERVAL.as_secs_f64();
    (periods(end).floor() - periods(start).floor()).max(0.0) as u64
}

/// `2 cores, AMD EPYC`, from /proc.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, model)| model.trim());
    format!("machine: {cores} cores, {model}")
}
