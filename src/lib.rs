//! domogik-manager: the manager of a Domogik installation.
//!
//! It keeps the map of plugin clients found on disk, follows their status
//! over ZeroMQ, answers user interfaces and publishes every change. The
//! contract is docs/PROTOCOL.md. Pure logic (codecs, clients, packages,
//! config) lives apart from the one module that does I/O, [`daemon`].
//! [`tools`] holds the commands that talk to a running manager (`clients`,
//! `watch`, `status`), their pure parts apart from their sockets too.

// Nothing from the network, the disk or the config may reach a panic:
// no unwrap, no panic!, and no index or slice that could be out of range
// (use .get(), patterns, or iterators). Tests may do all of these.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::string_slice
    )
)]

pub mod log;
/// The log facade's macros, so that `use crate::{info, warn};` and
/// `crate::info!` name them; fields are `info!(client_id = id; "...")`
/// (src/log.rs lists the field names).
pub use ::log::{debug, error, info, trace, warn};

pub mod autostart;
pub mod bus;
pub mod child_output;
pub mod children;
pub mod cli;
pub mod clients;
pub mod config;
pub mod daemon;
pub mod datatypes;
pub mod envelope;
pub mod liveness;
pub mod manager;
pub mod notify;
pub mod package_files;
pub mod packages;
pub mod processes;
pub mod pyjson;
pub mod signals;
pub mod status;
pub mod tools;
pub mod views;
pub mod wire;
pub mod xpl;
