//! Integration tests: the built `dmg_manager` on loopback sockets, real
//! files in temp dirs, checked from the outside as a user would.

// Tests and tools, not the core: they may do I/O and read the clock
// (clippy.toml).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod util;

mod bus;
mod children;
mod cli;
mod dbmgr;
mod docs;
mod faults;
mod flood;
mod host052;
mod hosts;
mod fuzz_regressions;
mod instances;
mod interop;
mod layers;
mod layouts;
mod netns;
mod oldbus;
mod packages;
mod requests;
mod sandbox;
mod stall;
mod statuses;
mod systemd;
mod tools;
mod v05;
mod watch;
mod xpl;
