//! The command line of `dmg-bench`.

use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
Usage: cargo run --release --example dmg-bench -- [OPTIONS]

Starts the release dmg_manager on loopback with generated packages (N = 10,
then N = 200), measures it against a bare ZeroMQ server (the floor), times
rescans of 1000 packages in-process, and prints one table. Exits non-zero
only when a run failed, never on a threshold.

Options:
  --quick            5 s idle windows instead of 30 s, a smaller burst
  --idle SECS        length of the idle CPU window (default 30)
  --requests COUNT   requests per action and N, at least 2000 (default 2000)
  --burst COUNT      status messages in the ingestion burst (default 200000)
  --daemon PATH      the dmg_manager to measure (default: build and use
                     target/release/dmg_manager)
  --daemon-env K=V   set an environment variable for the daemon (repeatable),
                     e.g. GLIBC_TUNABLES=glibc.malloc.arena_max=1
  --no-strace        do not count poll wake-ups with strace
  --dialects         only item 8: a status change with both dialects
                     published, in-process (a few seconds)
  --bus              only item 9: requests through an MDP broker (dmg-testbus)
                     next to direct ones, and the idle cost of the worker
                     layout's heartbeats (about a minute; --quick: 15 s)
  --hosts            only item 10: 1, 3 and 10 managers (hosts) on one bus:
                     requests through the broker, memory, a status
                     change's cost on the bus (about a minute)
  --footprint        only memory, of both builds side by side: libzmq built
                     into the binary (cargo's default) and Debian's libzmq5
                     (the package's; needs libzmq3-dev), N = 10 and 200
  -h, --help         print this help";

/// What to measure and how long.
#[derive(Debug, Clone)]
pub struct Options {
    pub idle: Duration,
    /// How long strace watches the idle daemon, after the CPU window.
    pub strace_window: Duration,
    pub requests: usize,
    pub latency_samples: usize,
    pub burst: usize,
    pub daemon: Option<PathBuf>,
    pub daemon_env: Vec<(String, String)>,
    pub strace: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            idle: Duration::from_secs(30),
            strace_window: Duration::from_secs(10),
            requests: MIN_REQUESTS,
            latency_samples: 2000,
            burst: 200_000,
            daemon: None,
            daemon_env: Vec::new(),
            strace: true,
        }
    }
}

/// The issue asks for p50/p99 over at least this many requests.
pub const MIN_REQUESTS: usize = 2000;

#[derive(Debug)]
pub enum Mode {
    Bench(Options),
    /// Memory of the two builds (libzmq built in, Debian's libzmq5).
    Footprint(Options),
    /// Internal: the benchmark re-runs itself as the floor server.
    FloorServer {
        canned: PathBuf,
    },
    Help,
    /// Item 8 alone.
    Dialects,
    /// Item 9 alone.
    Bus(Options),
    /// Item 10 alone: several hosts on one bus.
    Hosts(Options),
}

/// The hidden option that turns this program into the floor server.
pub const FLOOR_SERVER_FLAG: &str = "--floor-server";

pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Mode, String> {
    let mut options = Options::default();
    let (mut footprint, mut bus, mut hosts) = (false, false, false);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().ok_or_else(|| format!("{arg} needs {what}"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Mode::Help),
            FLOOR_SERVER_FLAG => {
                return Ok(Mode::FloorServer {
                    canned: PathBuf::from(value("a file")?),
                })
            }
            "--quick" => {
                options.idle = Duration::from_secs(5);
                options.strace_window = Duration::from_secs(2);
                options.latency_samples = 1000;
                options.burst = 50_000;
            }
            "--idle" => options.idle = Duration::from_secs(number(&value("seconds")?)?),
            "--requests" => options.requests = number(&value("a count")?)?.max(MIN_REQUESTS as u64) as usize,
            "--burst" => options.burst = number(&value("a count")?)?.max(1000) as usize,
            "--daemon" => options.daemon = Some(PathBuf::from(value("a path")?)),
            "--daemon-env" => {
                let pair = value("KEY=VALUE")?;
                let (key, val) = pair
                    .split_once('=')
                    .ok_or_else(|| format!("--daemon-env needs KEY=VALUE, got {pair:?}"))?;
                options.daemon_env.push((key.to_owned(), val.to_owned()));
            }
            "--no-strace" => options.strace = false,
            "--dialects" => return Ok(Mode::Dialects),
            "--footprint" => footprint = true,
            "--bus" => bus = true,
            "--hosts" => hosts = true,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(if footprint {
        Mode::Footprint(options)
    } else if bus {
        Mode::Bus(options)
    } else if hosts {
        Mode::Hosts(options)
    } else {
        Mode::Bench(options)
    })
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("{text:?} is not a whole number"))
}
