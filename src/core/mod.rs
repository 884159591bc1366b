//! The pure core: no sockets, no clock, no filesystem, no processes. Frames,
//! bytes and the time come in as values; replies, publications and what to
//! do next go out as values. Everything here is unit-tested without I/O.

pub(crate) mod autostart;
pub(crate) mod bus;
pub(crate) mod child_output;
pub(crate) mod children;
pub mod kind;
pub(crate) mod launch;
pub(crate) mod clients;
pub mod config;
pub(crate) mod config_warnings;
pub(crate) mod datatypes;
pub mod hosts;
pub mod envelope;
pub(crate) mod expected;
pub(crate) mod instance;
pub mod liveness;
pub(crate) mod log_policy;
pub mod manager;
pub mod packages;
pub(crate) mod pyjson;
pub(crate) mod scan_schedule;
pub mod status;
pub(crate) mod views;
pub(crate) mod watchdog;
pub mod xpl;
pub mod wire;
