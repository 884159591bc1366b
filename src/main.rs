//! `dmg_manager`: the command-line entry point; all the work is in the library.

// An edge of the crate: it does I/O and reads the clock for the core
// (clippy.toml forbids both in src/core/).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

fn main() {
    // First: a signal before the daemon's handlers exist must wait for them.
    domogik_manager::sys::signals::block_early();
    std::process::exit(domogik_manager::cli::main_with_args(std::env::args().skip(1)));
}
