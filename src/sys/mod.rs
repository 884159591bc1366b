//! The edge to the operating system, apart from the disk and the sockets:
//! signals, systemd notifications, the log, the hostname and interfaces.

pub(crate) mod host;
pub(crate) mod log;
pub(crate) mod notify;
pub mod signals;
