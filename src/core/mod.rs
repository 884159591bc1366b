//! The pure core: no sockets, no clock, no filesystem, no processes. Frames,
//! bytes and the time come in as values; replies, publications and what to
//! do next go out as values. Everything here is unit-tested without I/O.

pub mod autostart;
pub mod bus;
pub mod child_output;
pub mod children;
pub mod clients;
pub mod config;
pub mod datatypes;
pub mod envelope;
pub mod liveness;
pub mod log_policy;
pub mod manager;
pub mod packages;
pub mod pyjson;
pub mod status;
pub mod views;
pub mod wire;
