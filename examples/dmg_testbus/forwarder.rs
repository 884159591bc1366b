//! Domogik's MQ forwarder for the tests and `dmg-testbus`: an XSUB where
//! publishers connect, an XPUB where subscribers connect, messages
//! downstream and subscriptions upstream, until told to stop.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};

/// Binds the two sides (`tcp://HOST:PORT`, `*` for a free port) and
/// returns them with their bound endpoints.
pub fn bind(context: &zmq::Context, xsub_at: &str, xpub_at: &str) -> zmq::Result<(zmq::Socket, zmq::Socket, String, String)> {
    let xsub = context.socket(zmq::XSUB)?;
    let xpub = context.socket(zmq::XPUB)?;
    for (socket, at) in [(&xsub, xsub_at), (&xpub, xpub_at)] {
        socket.set_linger(0)?;
        if at.contains('[') {
            socket.set_ipv6(true)?;
        }
        socket.bind(at)?;
    }
    let xsub_endpoint = xsub.get_last_endpoint()?.unwrap_or_default();
    let xpub_endpoint = xpub.get_last_endpoint()?.unwrap_or_default();
    Ok((xsub, xpub, xsub_endpoint, xpub_endpoint))
}

/// Forwards both ways until `stop` is set (looked at every 50 ms).
pub fn forward(xsub: &zmq::Socket, xpub: &zmq::Socket, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let mut items = [xsub.as_poll_item(zmq::POLLIN), xpub.as_poll_item(zmq::POLLIN)];
        if zmq::poll(&mut items, 50).is_err() {
            continue;
        }
        let (from_publishers, from_subscribers) = (items[0].is_readable(), items[1].is_readable());
        if from_publishers {
            if let Ok(frames) = xsub.recv_multipart(0) {
                let _ = xpub.send_multipart(frames, 0);
            }
        }
        if from_subscribers {
            // Subscriptions travel upstream to the publishers.
            if let Ok(frames) = xpub.recv_multipart(0) {
                let _ = xsub.send_multipart(frames, 0);
            }
        }
    }
}
