//! `dmg_manager status NAME EVENT [--comment TEXT]`: announces a plugin's
//! status the way a plugin does, in the later Domogik shape
//! (`plugin.status`, with this host from the config), for shell-script
//! plugins and operators.
//!
//! Why an XPUB and not a PUB: ZeroMQ pub/sub connects asynchronously, and a
//! PUB silently drops what it sends before the subscriber's subscription has
//! reached it. A one-shot publisher that sends right after `connect` loses
//! its message nearly every time, and sleeping "long enough" is a guess that
//! fails on a loaded host. An XPUB is a PUB that also hands us the
//! subscriptions it receives: once one that lets our message through has
//! arrived (from the manager's SUB, or from the MQ forwarder, which passes
//! on its subscribers' subscriptions), the link is up and a message sent now
//! is delivered. So: connect, wait for that subscription (up to the
//! timeout), send, and close with a short linger so the message leaves
//! before the process exits. The manager itself is unchanged: to it, this is
//! one more plugin publisher.

use super::endpoints::{self, Peer};
use super::{net, seconds, ToolError};
use crate::core::config::Config;
use crate::core::status::Status;
use crate::core::wire::{self, StatusUpdate};
use std::time::{Duration, Instant, SystemTime};

/// The arguments of `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StatusOptions {
    /// The plugin's name, e.g. `diskfree` (checked by the command line).
    pub name: String,
    pub status: Status,
    pub comment: Option<String>,
    /// How long to wait for a subscriber.
    pub timeout: Duration,
}

/// How long closing may wait for the message to leave.
const FLUSH_LINGER_MS: i32 = 1000;

/// Runs `status`.
pub(crate) fn run(config: &Config, options: &StatusOptions) -> Result<(), ToolError> {
    let target = endpoints::target(Peer::StatusIntake, config)?;
    let deadline = Instant::now() + options.timeout;
    let context = zmq::Context::new();
    let socket = net::connect(&context, zmq::XPUB, &target)?;
    let update = StatusUpdate {
        name: options.name.clone(),
        host: None,
        status: options.status,
        comment: options.comment.clone(),
    };
    let frames = wire::encode_status(&update, &config.host, wire::unix_seconds(SystemTime::now()));
    let msg_id = frames.first().map_or(&[][..], Vec::as_slice);
    if !subscriber_appeared(&socket, msg_id, deadline)? {
        return Err(ToolError(format!(
            "no subscriber for plugin status messages at {} within {} ({}): is the manager running?",
            target.address,
            seconds(options.timeout),
            target.origin
        )));
    }
    let failed = |e: zmq::Error| ToolError(format!("cannot send the status message to {}: {e}", target.address));
    socket.set_linger(FLUSH_LINGER_MS).map_err(failed)?;
    socket.send_multipart(frames, zmq::DONTWAIT).map_err(failed)?;
    // Dropping the socket, then the context, waits (at most the linger)
    // until the message is written out.
    Ok(())
}

/// Reads subscription messages until one lets `msg_id` through, or the
/// deadline passes.
fn subscriber_appeared(socket: &zmq::Socket, msg_id: &[u8], deadline: Instant) -> Result<bool, ToolError> {
    while net::readable_before(socket, deadline)? {
        match socket.recv_bytes(zmq::DONTWAIT) {
            Ok(frame) if lets_through(&frame, msg_id) => return Ok(true),
            Ok(_) | Err(zmq::Error::EAGAIN) => {}
            Err(e) => return Err(ToolError(format!("cannot read subscriptions: {e}"))),
        }
    }
    Ok(false)
}

/// Whether an XPUB subscription message (byte 1, then the prefix) lets a
/// message with this `msg_id` through. Byte 0 is an unsubscription.
fn lets_through(frame: &[u8], msg_id: &[u8]) -> bool {
    matches!(frame.split_first(), Some((1, prefix)) if msg_id.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_that_let_a_status_through() {
        let msg_id = b"plugin.status.1371071554_16.0_1";
        assert!(lets_through(b"\x01plugin", msg_id), "the manager's subscription");
        assert!(lets_through(b"\x01", msg_id), "everything");
        assert!(lets_through(b"\x01plugin.status", msg_id));
        assert!(!lets_through(b"\x01clients", msg_id), "a user interface's");
        assert!(!lets_through(b"\x00plugin", msg_id), "an unsubscription");
        assert!(!lets_through(b"", msg_id));
    }
}
