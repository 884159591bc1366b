//! domogik-manager: the manager of a Domogik installation.
//!
//! It keeps the map of plugin clients found on disk, follows their status
//! over ZeroMQ, answers user interfaces and publishes every change. The
//! contract is docs/PROTOCOL.md.
//!
//! The layers, each using only those below it (tests/layers.rs checks):
//! - [`cli`]: the command line; `run` starts the daemon, the other
//!   commands talk to a running manager (their pure parts, the rendering,
//!   apart from their sockets);
//! - [`daemon`]: the event loop, its sockets and the plugin processes; it
//!   carries out what the core decides (the bus session's actions);
//! - [`disk`] and [`sys`]: the edges to the filesystem and to the
//!   operating system (signals, notifications, the log, the hostname);
//! - [`core`]: everything that decides, with no I/O: the clients model, the
//!   manager, the views, the codecs, the bus and children state machines,
//!   and the judging of packages, config and data types. Frames, bytes and
//!   the time come in as values; replies, publications and actions (open,
//!   close, reopen, send) go out as values, with the next deadline
//!   (`handle_*(event, now)`, `handle_timeout`, `poll_timeout`,
//!   `poll_action`). clippy.toml forbids the filesystem,
//!   processes, the clocks and sockets, which only the edges allow.
//!
//! Items are `pub(crate)` unless tests/, examples/ or fuzz/ use them
//! (`unreachable_pub` warns), so that the compiler flags dead code.

#![warn(unreachable_pub)]
// Unit tests may do I/O and read the clock (a fake clock starts somewhere);
// clippy.toml forbids both elsewhere in the core.
#![cfg_attr(test, allow(clippy::disallowed_methods, clippy::disallowed_types))]
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

pub mod cli;
pub mod core;
pub mod daemon;
pub mod disk;
pub mod sys;

/// The log facade's macros, so that `use crate::{info, warn};` and
/// `crate::info!` name them; fields are `info!(client_id = id; "...")`
/// (src/sys/log.rs lists the field names).
pub use ::log::{debug, error, info, trace, warn};
