//! REP's envelope rules, applied by hand to a ROUTER socket.
//!
//! libzmq's REP socket can lose the reply of a well-behaved client because
//! of another peer: when a request without an envelope delimiter comes from
//! a peer that is already gone (or whose queue is full), REP's rollback
//! leaves its ROUTER half believing a message is still being sent, and the
//! next reply, to an innocent client, goes nowhere. A non-ZeroMQ client or
//! a port scanner on the request port does this within seconds (see
//! docs/RELIABILITY.md and tests/faults.rs). So the daemon uses a ROUTER
//! socket and does here, exactly, what REP does: the same requests are
//! served, the same malformed ones dropped, the same bytes sent back.

// A request as a ROUTER socket delivers it: the routing id it prepends,
// then the peer's frames.
use crate::core::wire::Frames;

/// Splits a message received on a ROUTER socket as REP would: the envelope
/// is every frame up to and including the first empty frame that has more
/// frames after it (the routing id comes first); the request is the rest.
///
/// `None` when there is no such delimiter: REP drops that message without a
/// reply (a REQ or DEALER peer that follows the rules never sends one).
pub fn split(mut frames: Frames) -> Option<(Frames, Frames)> {
    // REP reads the envelope frame by frame while ZeroMQ's MORE flag is
    // set, i.e. over every frame but the last; the delimiter is the first
    // empty frame among them.
    let last = frames.len().checked_sub(1)?;
    let delimiter = frames.iter().take(last).position(Vec::is_empty)?;
    let request = frames.split_off(delimiter + 1);
    Some((frames, request))
}

/// The message to send on the ROUTER socket: the request's envelope, then
/// the reply. The ROUTER takes the routing id off and sends the rest to
/// that peer, or drops it if the peer is gone or its queue is full, as REP.
pub fn wrap(mut envelope: Frames, reply: Frames) -> Frames {
    envelope.extend(reply);
    envelope
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&[u8]]) -> Frames {
        parts.iter().map(|part| part.to_vec()).collect()
    }

    #[test]
    fn a_req_request_is_routing_id_delimiter_body() {
        let (envelope, request) = split(frames(&[b"\0\x01\x02\x03\x04", b"", b"clients.list.get", b"{}"])).unwrap();
        assert_eq!(envelope, frames(&[b"\0\x01\x02\x03\x04", b""]));
        assert_eq!(request, frames(&[b"clients.list.get", b"{}"]));
        assert_eq!(
            wrap(envelope, frames(&[b"clients.list.result", b"{}"])),
            frames(&[b"\0\x01\x02\x03\x04", b"", b"clients.list.result", b"{}"])
        );
    }

    #[test]
    fn a_deeper_envelope_is_kept_whole_and_ends_at_the_first_empty_frame() {
        let (envelope, request) = split(frames(&[b"id", b"hop1", b"hop2", b"", b"a", b"", b"b"])).unwrap();
        assert_eq!(envelope, frames(&[b"id", b"hop1", b"hop2", b""]));
        assert_eq!(request, frames(&[b"a", b"", b"b"]));
    }

    #[test]
    fn messages_rep_drops_are_dropped() {
        for message in [
            frames(&[]),
            frames(&[b"id"]),
            frames(&[b"id", b"clients.list.get", b"{}"]),
            // A delimiter with nothing after it has no MORE flag: not a delimiter.
            frames(&[b"id", b"x", b""]),
        ] {
            assert_eq!(split(message.clone()), None, "{message:?}");
        }
    }

    #[test]
    fn an_empty_request_frame_after_the_delimiter_is_a_request() {
        let (envelope, request) = split(frames(&[b"id", b"", b""])).unwrap();
        assert_eq!(envelope, frames(&[b"id", b""]));
        assert_eq!(request, frames(&[b""]));
    }
}
