//! `--footprint`: the memory of the two builds of dmg_manager side by side,
//! with libzmq built from source into the binary (what `cargo build`
//! makes) and with Debian's shared libzmq5 (what the package ships).

use super::fixture::{self, ScratchDir};
use super::measure;
use super::options::Options;
use super::procfs::{self, Memory};
use super::run::{build_daemon, start_daemon, target_dir, SETTLE};
use super::stats::kib;
use super::Failure;
use domogik_manager::core::manager::{DETAIL_GET, LIST_GET};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The plugin counts of the main run.
const SIZES: [usize; 2] = [10, 200];
/// Requests of each action between the two readings.
const LOAD_REQUESTS: usize = 200;

struct Build {
    name: &'static str,
    path: PathBuf,
}

struct Reading {
    build: &'static str,
    n: usize,
    idle: Memory,
    loaded: Memory,
    libraries: usize,
    binary_kib: u64,
}

pub fn run(options: &Options) -> Result<(), Failure> {
    let target = target_dir()?;
    eprintln!("dmg-bench: building dmg_manager twice (libzmq built in; Debian's libzmq5)...");
    let builds = [
        Build {
            name: "libzmq built in (cargo's default)",
            path: build_daemon(&target, &[])?,
        },
        Build {
            name: "Debian's libzmq5 (the package)",
            path: build_daemon(&target.join("system-libzmq"), &link_system_libzmq()?)?,
        },
    ];
    let scratch = ScratchDir::new()?;
    let templates = fixture::load_templates()?;
    let mut readings = Vec::new();
    for n in SIZES {
        let packages = scratch.join(&format!("packages-{n}"));
        fixture::write_packages(&packages, n, &templates)?;
        // One build after the other at each N, so both see the same machine.
        for build in &builds {
            eprintln!("dmg-bench: N = {n}: {}...", build.name);
            readings.push(measure_build(options, build, &scratch, &packages, n)?);
        }
    }
    println!("{}", render(&readings));
    Ok(())
}

/// The `--config` that makes cargo skip zmq-sys's build script (which
/// compiles libzmq) and link `-lzmq` instead, as debian/rules does.
fn link_system_libzmq() -> Result<Vec<String>, Failure> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc -vV: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let host = text
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .ok_or("rustc -vV names no host")?;
    Ok(vec![
        "--config".into(),
        format!("target.{host}.zmq.rustc-link-lib=[\"zmq\"]"),
    ])
}

fn measure_build(
    options: &Options,
    build: &Build,
    scratch: &ScratchDir,
    packages: &Path,
    n: usize,
) -> Result<Reading, Failure> {
    let mut daemon = start_daemon(options, &build.path, scratch, packages, n)?;
    let endpoints = daemon.wait_ready()?;
    std::thread::sleep(SETTLE);
    let idle = procfs::memory(daemon.pid())?;
    let context = zmq::Context::new();
    let req = measure::req_socket(&context, &endpoints.rep)?;
    for _ in 0..LOAD_REQUESTS {
        measure::request(&req, LIST_GET)?;
        measure::request(&req, DETAIL_GET)?;
    }
    std::thread::sleep(SETTLE);
    let loaded = procfs::memory(daemon.pid())?;
    let libraries = shared_libraries(daemon.pid())?;
    daemon.stop(true)?;
    let binary_kib = std::fs::metadata(&build.path)
        .map_err(|e| format!("cannot stat {}: {e}", build.path.display()))?
        .len()
        / 1024;
    Ok(Reading {
        build: build.name,
        n,
        idle,
        loaded,
        libraries,
        binary_kib,
    })
}

/// How many shared objects (`*.so*` files) the process maps.
fn shared_libraries(pid: u32) -> Result<usize, Failure> {
    let path = format!("/proc/{pid}/maps");
    let maps = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut files: Vec<&str> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|file| file.contains(".so"))
        .collect();
    files.sort_unstable();
    files.dedup();
    Ok(files.len())
}

fn render(readings: &[Reading]) -> String {
    let mut out = vec![
        format!(
            "| build | N | RSS idle | PSS idle | anon idle | file pages idle | RSS / anon after {LOAD_REQUESTS} list + {LOAD_REQUESTS} detail | shared objects mapped | binary |"
        ),
        "|---|---|---|---|---|---|---|---|---|".to_owned(),
    ];
    for r in readings {
        out.push(format!(
            "| {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
            r.build,
            r.n,
            kib(r.idle.rss),
            kib(r.idle.pss),
            kib(r.idle.anon),
            kib(r.idle.file),
            kib(r.loaded.rss),
            kib(r.loaded.anon),
            r.libraries,
            kib(r.binary_kib)
        ));
    }
    out.join("\n")
}
