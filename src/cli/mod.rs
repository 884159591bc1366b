//! The command line: its one definition ([`definition`]), and one file per
//! command: `run` (the daemon, [`run`]), `--check-config` ([`check_config`]),
//! and the commands that talk to a running manager, for people and
//! scripts: `clients` (ask), `watch` (follow), `status` (announce) (issue 6)
//! and `start` (start a plugin, issue 14).
//!
//! Each finds the manager from the same config file as the daemon
//! ([`endpoints`] inverts the daemon's directions). What is pure (where to
//! connect, the table, the change lines, the colours: [`render`]) is kept
//! apart from the few functions that use sockets (`net` and each command's
//! `run`).

// An edge of the crate: it does I/O and reads the clock for the core
// (clippy.toml forbids both in src/core/).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod check_config;
pub(crate) mod clients;
mod definition;
pub(crate) mod endpoints;
mod net;
pub(crate) mod render;
mod run;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod watch;

use crate::core::config;
use crate::disk;
pub use definition::{definition, synopsis};
use definition::{one_line, parse_args, Command};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// How long a command waits for the manager unless `--timeout` says otherwise.
#[cfg(test)]
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// A command that failed: one line for stderr, exit code 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ToolError(pub String);

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ToolError {}

/// What is wrong with what the manager sent back (a reply, a publication);
/// displayed as the line a command prints, before where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unexpected {
    /// The manager answered `error`, for this reason.
    Refused(String),
    /// The body is not JSON (the parser's reason).
    NotJson(String),
    NotAnObject,
    /// Another reply action than the one expected; `hint` ends the line.
    Action {
        action: String,
        expected: String,
        hint: &'static str,
    },
    /// `client.history.result` says the client is not the manager's.
    NoSuchClient(String),
    NoClients,
    /// `plugin.start.result` says the plugin was not started, and why.
    NotStarted {
        name: String,
        reason: String,
    },
    NoStatus,
    /// A publication of another number of frames than 2.
    FrameCount(usize),
    MsgIdNotUtf8,
    /// A publication of another category (its msg_id, shortened).
    MsgId(String),
    /// The publication's body is not a JSON object (why, as a predicate).
    Body(String),
}

impl fmt::Display for Unexpected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unexpected::Refused(reason) => write!(f, "the manager answered error: {reason}"),
            Unexpected::NotJson(why) => write!(f, "the reply body is not JSON: {why}"),
            Unexpected::NotAnObject => f.write_str("the reply body is not a JSON object"),
            Unexpected::Action { action, expected, hint } => {
                write!(f, "unexpected reply action \"{action}\", expected {expected}{hint}")
            }
            Unexpected::NoSuchClient(reason) => write!(f, "the manager has no such client: {reason}"),
            Unexpected::NoClients => f.write_str("the reply has no \"clients\" object"),
            Unexpected::NotStarted { name, reason } => write!(f, "plugin {name} not started: {reason}"),
            Unexpected::NoStatus => f.write_str("the reply has no boolean \"status\""),
            Unexpected::FrameCount(count) => write!(f, "expected 2 frames (msg_id, body), got {count}"),
            Unexpected::MsgIdNotUtf8 => f.write_str("the msg_id is not UTF-8 text"),
            Unexpected::MsgId(msg_id) => write!(f, "unexpected msg_id \"{msg_id}\""),
            Unexpected::Body(why) => write!(f, "the body {why}"),
        }
    }
}

impl std::error::Error for Unexpected {}

/// `3 s`, `0.5 s`: a timeout as a user wrote it.
pub(crate) fn seconds(duration: Duration) -> String {
    format!("{} s", duration.as_secs_f64())
}

/// What `stdout` writes failing on: a closed pipe (`watch | head -3`) is
/// the reader's way of saying "enough", not an error.
fn stdout_failed(error: std::io::Error) -> Option<ToolError> {
    (error.kind() != std::io::ErrorKind::BrokenPipe).then(|| ToolError(format!("cannot write to stdout: {error}")))
}

/// Runs the program and returns its exit code.
pub fn main_with_args<I: IntoIterator<Item = String>>(args: I) -> i32 {
    let args: Vec<String> = args.into_iter().collect();
    // The daemon's packages scanner, a process it starts (not a command
    // for users: no --help names it): src/disk/scanner_process.rs.
    if args.first().map(String::as_str) == Some(crate::disk::scanner_process::ARG) {
        crate::sys::signals::unblock();
        return crate::disk::scanner_process::main(args.get(1..).unwrap_or_default());
    }
    let command = match parse_args(args) {
        Ok(command) => command,
        // --help and --version, on stdout.
        Err(error) if !error.use_stderr() => {
            // A closed stdout (`dmg_manager --help | head -0`) is no error.
            let _ = error.print();
            return 0;
        }
        Err(error) => {
            crate::sys::log::fatal(format_args!("{} (try 'dmg_manager --help')", one_line(&error)));
            return 2;
        }
    };
    // Blocked since main's first line (signals::block_early): the daemon
    // handles them in its loop; every other command gets their default
    // action back, so that Ctrl-C or a hang-up ends it at once.
    if !matches!(command, Command::Run { .. }) {
        crate::sys::signals::unblock();
    }
    match command {
        Command::CheckConfig { config } => with_config(&config, check_config::run),
        Command::Run { config, core } => with_config(&config, |config| {
            let mut config = config.clone();
            config.plugins.add_core(&core.iter().map(String::as_str).collect::<Vec<_>>());
            run::run(&config)
        }),
        Command::Clients { config, options } => {
            with_config(&config, |config| exit_code(clients::run(config, &options)))
        }
        Command::Watch { config, options } => with_config(&config, |config| exit_code(watch::run(config, &options))),
        Command::Status { config, options } => with_config(&config, |config| exit_code(status::run(config, &options))),
        Command::Start { config, options } => with_config(&config, |config| exit_code(start::run(config, &options))),
    }
}

/// Loads the config and runs a command with it; a config that cannot be
/// used is one line on stderr and exit code 1, whatever the command.
fn with_config(path: &Path, command: impl FnOnce(&config::Config) -> i32) -> i32 {
    match disk::load_config(path) {
        Ok(config) => command(&config),
        Err(error) => failed(format_args!("{error}{}", config_advice(path))),
    }
}

/// What to do about a config file that cannot be used, to end its line.
fn config_advice(path: &Path) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    // Non-blocking: opening a FIFO for reading must not wait for a writer.
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    match opened {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            " (run as root, or as a member of the file's group: the package's file is readable by group domogik, \
             joined with 'adduser USER domogik' and a new login)"
                .to_owned()
        }
        Err(_) => format!(
            " (give the file with --config FILE; the package installs {})",
            config::DEFAULT_PATH
        ),
        Ok(_) => format!(
            " (fix the file, check it with 'dmg_manager --config {} --check-config', then start the manager again: \
             'systemctl restart domogik-manager' for the service)",
            path.display()
        ),
    }
}

fn failed(error: impl std::fmt::Display) -> i32 {
    crate::sys::log::fatal(format_args!("{error}"));
    1
}

fn exit_code(result: Result<(), ToolError>) -> i32 {
    result.map_or_else(failed, |()| 0)
}

/// The map of a `json!({...})` literal, for the tests of the pure modules
/// (the table, the change lines), which take clients maps.
#[cfg(test)]
fn json_map(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

/// A reply in plain framing, for the tests of the commands that read replies.
#[cfg(test)]
fn plain_reply(action: &str, body: &str) -> crate::core::wire::ReceivedReply {
    crate::core::wire::ReceivedReply {
        framing: crate::core::wire::Framing::Plain,
        action: action.into(),
        body: body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_as_typed() {
        assert_eq!(seconds(Duration::from_secs(3)), "3 s");
        assert_eq!(seconds(Duration::from_millis(500)), "0.5 s");
    }
}
