//! The commands' socket work: connecting to a [`Target`], waiting with a
//! deadline, and one request/reply exchange.

use super::endpoints::Target;
use super::{seconds, ToolError};
use crate::core::wire::{self, Framing, ReceivedReply};
use std::time::{Duration, Instant};

/// The largest frame a command accepts. A reply or a `clients.detail`
/// publication holds every client's `info.json` (at most 1 MiB each), so
/// this is generous; it keeps a hostile publisher next to a forwarder from
/// making `watch` allocate whatever size a frame header announces.
const MAX_FRAME_BYTES: i64 = 256 * 1024 * 1024;

/// A socket of `kind` connected to `target`. Linger 0: a command that gives
/// up must exit at once, not wait for a manager that is not there.
pub(super) fn connect(
    context: &zmq::Context,
    kind: zmq::SocketType,
    target: &Target,
) -> Result<zmq::Socket, ToolError> {
    let failed = |e: zmq::Error| ToolError(format!("cannot connect to {} ({}): {e}", target.address, target.origin));
    let socket = context.socket(kind).map_err(failed)?;
    socket.set_linger(0).map_err(failed)?;
    socket.set_maxmsgsize(MAX_FRAME_BYTES).map_err(failed)?;
    // libzmq refuses an IPv6 address ("No such device") unless told.
    socket.set_ipv6(target.address.contains('[')).map_err(failed)?;
    socket.connect(&target.address).map_err(failed)?;
    Ok(socket)
}

/// Whether `socket` became readable before `deadline`. A signal that
/// interrupts the poll (EINTR) just polls again for the time left.
pub(super) fn readable_before(socket: &zmq::Socket, deadline: Instant) -> Result<bool, ToolError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let millis = i64::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i64::MAX);
        match socket.poll(zmq::POLLIN, millis) {
            Ok(0) if Instant::now() >= deadline => return Ok(false),
            Ok(0) | Err(zmq::Error::EINTR) => continue,
            Ok(_) => return Ok(true),
            Err(e) => return Err(ToolError(format!("cannot poll a socket: {e}"))),
        }
    }
}

/// Sends `action` with an empty body in Domogik's MDP framing (what its
/// `MQSyncReq` sends) and returns the reply, or says which endpoint did
/// not answer within `timeout`.
pub(super) fn request(
    context: &zmq::Context,
    target: &Target,
    service: &str,
    action: &str,
    timeout: Duration,
) -> Result<ReceivedReply, ToolError> {
    request_with(context, target, service, action, "{}", timeout)
}

/// [`request`] with a body (a JSON object's text).
pub(super) fn request_with(
    context: &zmq::Context,
    target: &Target,
    service: &str,
    action: &str,
    body: &str,
    timeout: Duration,
) -> Result<ReceivedReply, ToolError> {
    let deadline = Instant::now() + timeout;
    let socket = connect(context, zmq::REQ, target)?;
    let framing = Framing::Mdp {
        service: service.as_bytes().to_vec(),
    };
    let no_reply = || {
        let waited = seconds(timeout);
        ToolError(if target.broker {
            format!(
                "no reply from service \"{service}\" through the broker at {} within {waited} ({}): \
                 is Domogik's broker running there, and the manager registered with it? \
                 (its log says \"service registered\" when it is: journalctl -u domogik-manager)",
                target.address, target.origin
            )
        } else {
            format!(
                "no reply from the manager at {} within {waited} ({}): is it running?",
                target.address, target.origin
            )
        })
    };
    // A connecting REQ queues the request even before the link is up.
    match socket.send_multipart(wire::encode_request(&framing, action, body), zmq::DONTWAIT) {
        Ok(()) => {}
        Err(zmq::Error::EAGAIN) => return Err(no_reply()),
        Err(e) => return Err(ToolError(format!("cannot send a request to {}: {e}", target.address))),
    }
    if !readable_before(&socket, deadline)? {
        return Err(no_reply());
    }
    let frames = socket
        .recv_multipart(0)
        .map_err(|e| ToolError(format!("cannot receive the reply from {}: {e}", target.address)))?;
    wire::decode_reply(&frames).map_err(|why| ToolError(format!("unexpected reply from {}: {why}", target.address)))
}
