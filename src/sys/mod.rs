//! The edge to the operating system, apart from the disk and the sockets:
//! signals, systemd notifications, the log, the hostname and interfaces.

pub mod host;
pub mod log;
pub mod notify;
pub mod signals;
