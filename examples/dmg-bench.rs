//! `dmg-bench`: measures what the manager costs and how fast it answers,
//! against the floor that ZeroMQ itself sets (issue 4). Run it with
//! `cargo run --release --example dmg-bench [-- --quick]`; the work is in
//! the `dmg_bench` modules.

// Tests and tools, not the core: they may do I/O and read the clock
// (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod dmg_bench;

fn main() {
    std::process::exit(dmg_bench::main());
}
