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
#![warn(unreachable_pub)]
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

pub mod cli;
pub mod core;
pub mod daemon;
pub mod disk;
pub mod sys;

/// The log facade's macros, so that `use crate::{info, warn};` and
/// `crate::info!` name them; fields are `info!(client_id = id; "...")`
/// (src/sys/log.rs lists the field names).
pub use ::log::{debug, error, info, trace, warn};
