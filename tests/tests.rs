//! Integration tests: the built `dmg_manager` on loopback sockets, real
//! files in temp dirs, checked from the outside as a user would.

mod util;

mod bus;
mod children;
mod cli;
mod dbmgr;
mod docs;
mod faults;
mod flood;
mod host052;
mod fuzz_regressions;
mod interop;
mod layouts;
mod netns;
mod packages;
mod requests;
mod sandbox;
mod statuses;
mod systemd;
mod tools;
mod v05;
mod watch;
