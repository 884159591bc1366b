//! `dmg-bench`: measures what the manager costs and how fast it answers,
//! against the floor that ZeroMQ itself sets (issue 4). Run it with
//! `cargo run --release --example dmg-bench [-- --quick]`; the work is in
//! the `dmg_bench` modules.

mod dmg_bench;

fn main() {
    std::process::exit(dmg_bench::main());
}
