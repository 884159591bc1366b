//! domogik-manager: the manager of a Domogik installation.
//!
//! It keeps the map of plugin clients found on disk, follows their status
//! over ZeroMQ, answers user interfaces and publishes every change. The
//! contract is docs/PROTOCOL.md. Pure logic (codecs, clients, packages,
//! config) lives apart from the one module that does I/O, [`daemon`].
//! [`tools`] holds the commands that talk to a running manager (`clients`,
//! `watch`, `status`), their pure parts apart from their sockets too.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod log;

pub mod cli;
pub mod clients;
pub mod config;
pub mod daemon;
pub mod manager;
pub mod notify;
pub mod packages;
pub mod pyjson;
pub mod signals;
pub mod status;
pub mod tools;
pub mod wire;
