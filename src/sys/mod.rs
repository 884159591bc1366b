//! The edge to the operating system, apart from the disk and the sockets:
//! signals, systemd notifications, the log, the hostname and interfaces,
//! the clock.

// An edge of the crate: it does I/O and reads the clock for the core
// (clippy.toml forbids both in src/core/).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub mod clock;
pub(crate) mod host;
pub(crate) mod instance;
pub(crate) mod log;
pub(crate) mod notify;
pub mod signals;
