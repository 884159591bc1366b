//! The rows of the result table, from the figures of a run, with each
//! figure's floor, its ratio to the floor, and the target.

use super::bus::BusFigures;
use super::dialects::DialectFigures;
use super::procfs::{CpuDelta, Memory};
use super::report::{self, Row};
use super::rescan::RescanFigures;
use super::run::{ReplyFigures, SizeResults};
use super::stats::{self, duration, kib, p50_p99, ratio};
use super::strace;

pub fn render(sizes: &[SizeResults], rescan: &RescanFigures, dialects: &[DialectFigures], bus: &BusFigures) -> String {
    let mut rows = Vec::new();
    for size in sizes {
        rows.push(echo_row(size.n, &size.list));
        rows.push(reply_row("clients.list.get round trip p50 / p99", size.n, &size.list));
        rows.push(reply_row(
            "clients.detail.get round trip p50 / p99",
            size.n,
            &size.detail,
        ));
    }
    for size in sizes {
        rows.push(latency_row(size));
    }
    for size in sizes {
        rows.extend(ingestion_rows(size));
    }
    for size in sizes {
        rows.push(memory_row(
            "RSS / HWM idle after start",
            size.n,
            &size.memory.idle,
            &size.memory.floor_idle,
        ));
        rows.push(memory_row(
            "RSS / HWM after the load",
            size.n,
            &size.memory.loaded,
            &size.memory.floor_loaded,
        ));
    }
    if let [small, large] = sizes {
        rows.push(growth_row(small, large));
    }
    for size in sizes {
        rows.extend(idle_rows(size));
    }
    rows.extend(rescan_rows(rescan));
    rows.extend(dialect_rows(dialects));
    rows.extend(bus_rows(bus));
    for size in sizes {
        rows.push(
            Row::new("-", "SIGTERM to exit", size.n)
                .manager(duration(size.shutdown))
                .target("< 1 s"),
        );
    }
    report::render(&rows)
}

fn reply_row(what: &str, n: usize, figures: &ReplyFigures) -> Row {
    Row::new(
        "1, 2",
        format!("{what} ({} reply; floor sends the same bytes)", bytes(figures.bytes)),
        n,
    )
    .manager(p50_p99(&figures.manager))
    .floor(p50_p99(&figures.floor), two_ratios(&figures.manager, &figures.floor))
}

/// The floor for `clients.list.get`: a bare REP echo.
fn echo_row(n: usize, list: &ReplyFigures) -> Row {
    Row::new("1, 2", "clients.list.get against a bare REP echo of the request", n)
        .manager(p50_p99(&list.manager))
        .floor(p50_p99(&list.echo), two_ratios(&list.manager, &list.echo))
        .target(if n == 10 { "p50 ≤ 1.5× echo" } else { "" })
}

fn two_ratios(manager: &stats::Summary, floor: &stats::Summary) -> String {
    format!(
        "{} / {}",
        ratio(manager.p50.as_secs_f64(), floor.p50.as_secs_f64()),
        ratio(manager.p99.as_secs_f64(), floor.p99.as_secs_f64())
    )
}

fn latency_row(size: &SizeResults) -> Row {
    let (manager, floor) = &size.latency;
    Row::new("3", "status message to clients.list showing it, p50 / p99", size.n)
        .manager(p50_p99(manager))
        .floor(p50_p99(floor), two_ratios(manager, floor))
        .target(if size.n == 10 { "p99 < 1 ms" } else { "" })
}

fn ingestion_rows(size: &SizeResults) -> [Row; 2] {
    let (manager, floor) = &size.ingestion;
    let manager_rate = stats::per_second(size.burst, manager.elapsed);
    let floor_rate = stats::per_second(size.burst, floor.elapsed);
    [
        Row::new(
            "4",
            format!(
                "statuses absorbed, burst of {} (the benchmark sends {})",
                size.burst,
                stats::rate(stats::per_second(size.burst, manager.send_time))
            ),
            size.n,
        )
        .manager(stats::rate(manager_rate))
        .floor(stats::rate(floor_rate), ratio(manager_rate, floor_rate))
        .target("≥ 100 k/s"),
        Row::new(
            "4",
            "  clients.list publications seen in the burst; last status of every plugin shown",
            size.n,
        )
        .manager(format!(
            "{} (1 per {:.0} statuses); yes",
            manager.publications,
            size.burst as f64 / manager.publications.max(1) as f64
        ))
        .floor(floor.publications.to_string(), "-")
        .target("coalesced, nothing lost"),
    ]
}

fn memory_row(what: &str, n: usize, manager: &Memory, floor: &Memory) -> Row {
    let show = |m: &Memory| {
        format!(
            "{} / {} (anon {}, files {}; PSS {})",
            kib(m.rss),
            kib(m.hwm),
            kib(m.anon),
            kib(m.file),
            kib(m.pss)
        )
    };
    Row::new("5", what, n)
        .manager(show(manager))
        .floor(show(floor), ratio(manager.rss as f64, floor.rss as f64))
        .target(if n == 10 { "RSS < 4 MiB" } else { "" })
}

/// Anonymous memory per plugin added from N = 10 to N = 200, against
/// what those plugins bring: their `info.json` files on disk, and their
/// share of the detail view (the data as the manager holds it).
fn growth_row(small: &SizeResults, large: &SizeResults) -> Row {
    let plugins = (large.n - small.n) as f64;
    let per_plugin = |a: u64, b: u64| (b as f64 - a as f64) / plugins / 1024.0;
    let idle = per_plugin(small.memory.idle.anon * 1024, large.memory.idle.anon * 1024);
    let loaded = per_plugin(small.memory.loaded.anon * 1024, large.memory.loaded.anon * 1024);
    let file = per_plugin(small.info_json_bytes, large.info_json_bytes);
    let data = per_plugin(small.detail.bytes as u64, large.detail.bytes as u64);
    Row::new(
        "5",
        "anon memory per added plugin, idle / after load (floor: info.json on disk; as data)",
        format!("{}→{}", small.n, large.n),
    )
    .manager(format!("{idle:.1} / {loaded:.1} KiB"))
    .floor(format!("{file:.1} KiB; {data:.1} KiB"), ratio(idle, file))
    .target("≈ info.json size")
}

fn idle_rows(size: &SizeResults) -> Vec<Row> {
    let idle = &size.idle;
    let seconds = idle.window.as_secs_f64();
    let mut rows = vec![
        Row::new(
            "6",
            format!(
                "CPU over {seconds:.0} s idle (all threads; rescans due: {})",
                idle.rescans_due
            ),
            size.n,
        )
        .manager(format!(
            "{} ({} clock ticks)",
            duration(std::time::Duration::from_nanos(idle.cpu.run_ns)),
            idle.cpu.ticks
        ))
        .target("rescans only"),
        Row::new(
            "6",
            format!("context switches over {seconds:.0} s idle, voluntary+forced"),
            size.n,
        )
        .manager(switches(&idle.cpu))
        .target("0 between rescans"),
    ];
    let strace_row = match &idle.wake_ups {
        strace::Outcome::Counted(wake_ups) => {
            Row::new(
                "6",
                format!(
                    "poll wake-ups (all poll/epoll calls) over {:.0} s idle, strace (rescans due: {})",
                    wake_ups.window.as_secs_f64(),
                    idle.strace_rescans_due
                ),
                size.n,
            )
            .manager(wake_ups_per_thread(wake_ups))
            .target("0 between rescans")
        }
        strace::Outcome::Unavailable(why) => {
            Row::new("6", "poll wake-ups (strace)", size.n).manager(format!("not counted: {why}"))
        }
    };
    rows.push(strace_row);
    rows
}

fn rescan_rows(figures: &RescanFigures) -> [Row; 4] {
    let n = figures.packages;
    [
        Row::new(
            "7",
            "rescan, unchanged tree, p50 / p99 (in-process Scanner; floor: readdir + stat)",
            n,
        )
        .manager(p50_p99(&figures.unchanged))
        .floor(
            p50_p99(&figures.stat_floor),
            two_ratios(&figures.unchanged, &figures.stat_floor),
        )
        .target("< 5 ms"),
        Row::new("7", "rescan, one info.json changed, p50 / p99", n)
            .manager(p50_p99(&figures.one_changed))
            .floor(
                p50_p99(&figures.stat_floor),
                two_ratios(&figures.one_changed, &figures.stat_floor),
            ),
        Row::new(
            "7",
            format!(
                "  then apply + serialise both dialects and package.detail ({} seed detail)",
                bytes(figures.detail_bytes)
            ),
            n,
        )
        .manager(p50_p99(&figures.republish)),
        Row::new("7", "first scan: read and parse every info.json", n).manager(duration(figures.first)),
    ]
}

/// Item 8: a status change with both dialects published, against the seed's pair.
pub fn dialect_rows(figures: &[DialectFigures]) -> Vec<Row> {
    figures
        .iter()
        .map(|figures| {
            Row::new(
                "8",
                format!(
                    "status change + all 5 publications built, p50 / p99 ({}; floor: the seed's 2, {})",
                    bytes(figures.both_bytes),
                    bytes(figures.seed_bytes)
                ),
                figures.packages,
            )
            .manager(p50_p99(&figures.both))
            .floor(
                p50_p99(&figures.seed_only),
                two_ratios(&figures.both, &figures.seed_only),
            )
            .target("each view built once")
        })
        .collect()
}

/// Item 9: through the broker against direct, then both layouts idle.
pub fn bus_rows(figures: &BusFigures) -> Vec<Row> {
    let n = figures.n;
    let mut rows: Vec<Row> = figures
        .round_trips
        .iter()
        .map(|trips| {
            Row::new(
                "9",
                format!(
                    "{} through the MDP broker, p50 / p99 ({} reply, MDP framing; floor: the same request direct)",
                    trips.action,
                    bytes(trips.bytes)
                ),
                n,
            )
            .manager(p50_p99(&trips.broker))
            .floor(p50_p99(&trips.direct), two_ratios(&trips.broker, &trips.direct))
            .target("one hop more")
        })
        .collect();
    let idle = &figures.idle;
    let seconds = idle.window.as_secs_f64();
    let cpu = |delta: &CpuDelta| duration(std::time::Duration::from_nanos(delta.run_ns));
    rows.push(
        Row::new("9", format!("CPU over {seconds:.0} s idle, worker layout (floor: standalone; no rescan due)"), n)
            .manager(cpu(&idle.worker))
            .floor(cpu(&idle.direct), ratio(idle.worker.run_ns as f64, idle.direct.run_ns as f64))
            .target("heartbeats only"),
    );
    rows.push(
        Row::new("9", format!("context switches over {seconds:.0} s idle, voluntary+forced, worker (floor: standalone)"), n)
            .manager(switches(&idle.worker))
            .floor(switches(&idle.direct), "-"),
    );
    let counted = |outcome: &strace::Outcome| match outcome {
        strace::Outcome::Counted(wake_ups) => (
            wake_ups_per_thread(wake_ups),
            format!("{:.0} s", wake_ups.window.as_secs_f64()),
        ),
        strace::Outcome::Unavailable(why) => (format!("not counted: {why}"), "-".into()),
    };
    let (worker, window) = counted(&idle.worker_wake_ups);
    let (direct, _) = counted(&idle.direct_wake_ups);
    rows.push(
        Row::new("9", format!("poll wake-ups (all poll/epoll calls) over {window} idle, strace, worker (floor: standalone)"), n)
            .manager(worker)
            .floor(direct, "-")
            .target("≈ 1 per heartbeat"),
    );
    rows
}

/// `main 1+0, ZMQbg/IO/0 3+1`: voluntary+forced context switches per thread.
fn switches(delta: &CpuDelta) -> String {
    let threads: Vec<String> = delta
        .threads
        .iter()
        .map(|(name, voluntary, involuntary)| format!("{name} {voluntary}+{involuntary}"))
        .collect();
    threads.join(", ")
}

/// `main 1 (6), ZMQbg/IO/0 0 (0)`: wake-ups (all wait calls) per thread.
fn wake_ups_per_thread(wake_ups: &strace::WakeUps) -> String {
    let counts: Vec<String> = wake_ups
        .by_thread
        .iter()
        .map(|(name, (wake_ups, calls))| format!("{name} {wake_ups} ({calls})"))
        .collect();
    counts.join(", ")
}

fn bytes(count: usize) -> String {
    if count < 10 * 1024 {
        format!("{count} B")
    } else if count < 10 * 1024 * 1024 {
        format!("{:.0} KiB", count as f64 / 1024.0)
    } else {
        format!("{:.1} MiB", count as f64 / (1024.0 * 1024.0))
    }
}
