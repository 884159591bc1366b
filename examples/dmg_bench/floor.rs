//! The floor: a bare ZeroMQ server with the manager's three sockets and
//! none of its logic. It answers each request with canned frames (the
//! manager's own reply to that action, so the bytes moved are the same),
//! or sends the request back when its action is [`ECHO_ACTION`],
//! and after each turn in which status messages arrived it publishes one
//! canned `clients.list` body whose msg_id carries the count received.
//!
//! The benchmark runs it as a child process (`dmg-bench --floor-server
//! FILE`), so it pays what the daemon pays: its own process, its own
//! ZeroMQ I/O thread. It stops when its stdin closes.

use super::Failure;
use domogik_manager::daemon::{
    MAX_REQUESTS_PER_TURN, MAX_STATUSES_PER_TURN, PUB_SNDHWM, REP_MAX_MSG_BYTES, REP_RCVHWM, REP_SNDHWM,
    SUB_MAX_MSG_BYTES, SUB_RCVHWM,
};
use domogik_manager::core::manager::STATUS_SUBSCRIPTION;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

const SLOT_SUB: usize = 0;
const SLOT_REP: usize = 1;
const SLOT_STDIN: usize = 2;

/// The request the floor echoes: the bare REP echo.
pub const ECHO_ACTION: &str = "echo";

/// What the floor answers, written by the benchmark as JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct Canned {
    /// Reply frames by request action; frames are UTF-8 text.
    pub replies: BTreeMap<String, Vec<String>>,
    /// The body of every publication.
    pub publication: String,
}

pub fn write_canned(canned: &Canned, path: &Path) -> Result<(), Failure> {
    let text = serde_json::to_string(canned).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The `msg_id` of a floor publication after `count` status messages.
pub fn msg_id(count: u64) -> String {
    format!("clients.list.{count}.0_1")
}

/// The count a floor publication's `msg_id` carries.
pub fn count_of(msg_id: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(msg_id).ok()?;
    text.strip_prefix("clients.list.")?.strip_suffix(".0_1")?.parse().ok()
}

/// Runs the floor server until stdin closes.
pub fn serve(canned_path: &Path) -> Result<(), Failure> {
    let text =
        std::fs::read_to_string(canned_path).map_err(|e| format!("cannot read {}: {e}", canned_path.display()))?;
    let canned: Canned = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", canned_path.display()))?;
    let context = zmq::Context::new();
    let socket =
        |kind, role: &str, configure: &dyn Fn(&zmq::Socket) -> zmq::Result<()>| -> Result<zmq::Socket, Failure> {
            let socket = context.socket(kind).map_err(|e| format!("{role} socket: {e}"))?;
            socket.set_linger(0).map_err(|e| e.to_string())?;
            configure(&socket).map_err(|e| format!("{role} socket options: {e}"))?;
            socket
                .bind("tcp://127.0.0.1:*")
                .map_err(|e| format!("cannot bind the {role} socket: {e}"))?;
            let endpoint = socket
                .get_last_endpoint()
                .ok()
                .and_then(Result::ok)
                .ok_or_else(|| format!("the {role} socket has no endpoint"))?;
            eprintln!("{role} socket bound to {endpoint}");
            Ok(socket)
        };
    // The daemon's own socket options and per-turn bounds (its constants,
    // not copies: a copy had kept the SUB queue at 10 000 after the daemon's
    // went to 100), so that queues and the memory they hold compare like
    // with like.
    let sub = socket(zmq::SUB, "sub", &|s| {
        s.set_maxmsgsize(SUB_MAX_MSG_BYTES)?;
        s.set_rcvhwm(SUB_RCVHWM)?;
        s.set_subscribe(STATUS_SUBSCRIPTION.as_bytes())
    })?;
    let rep = socket(zmq::REP, "rep", &|s| {
        s.set_maxmsgsize(REP_MAX_MSG_BYTES)?;
        s.set_rcvhwm(REP_RCVHWM)?;
        s.set_sndhwm(REP_SNDHWM)
    })?;
    let publisher = socket(zmq::PUB, "pub", &|s| s.set_sndhwm(PUB_SNDHWM))?;
    eprintln!("ready: floor server");

    let mut received: u64 = 0;
    loop {
        let mut items = [
            sub.as_poll_item(zmq::POLLIN),
            rep.as_poll_item(zmq::POLLIN),
            zmq::PollItem::from_fd(0, zmq::POLLIN),
        ];
        match zmq::poll(&mut items, -1) {
            Ok(_) | Err(zmq::Error::EINTR) => {}
            Err(e) => return Err(format!("floor poll failed: {e}")),
        }
        // End of file on a pipe is POLLHUP, which zmq_poll reports as an error.
        if items[SLOT_STDIN].is_readable() || items[SLOT_STDIN].is_error() {
            return Ok(());
        }
        if items[SLOT_REP].is_readable() {
            answer(&rep, &canned)?;
        }
        if items[SLOT_SUB].is_readable() {
            let count = drain(&sub)?;
            if count > 0 {
                received += count;
                let frames = [msg_id(received).into_bytes(), canned.publication.as_bytes().to_vec()];
                publisher
                    .send_multipart(frames, zmq::DONTWAIT)
                    .map_err(|e| format!("floor publish failed: {e}"))?;
            }
        }
    }
}

fn answer(rep: &zmq::Socket, canned: &Canned) -> Result<(), Failure> {
    for _ in 0..MAX_REQUESTS_PER_TURN {
        let frames = match rep.recv_multipart(zmq::DONTWAIT) {
            Ok(frames) => frames,
            Err(zmq::Error::EAGAIN) => return Ok(()),
            Err(e) => return Err(format!("floor receive failed: {e}")),
        };
        let action = frames
            .first()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .unwrap_or_default();
        let sent = if action == ECHO_ACTION {
            rep.send_multipart(frames, 0)
        } else {
            let reply = canned
                .replies
                .get(&action)
                .ok_or("the floor got a request it has no canned reply for")?;
            // One copy per frame into ZeroMQ, as the daemon's cached views cost.
            rep.send_multipart(reply.iter().map(|frame| frame.as_bytes()), 0)
        };
        sent.map_err(|e| format!("floor reply failed: {e}"))?;
    }
    Ok(())
}

fn drain(sub: &zmq::Socket) -> Result<u64, Failure> {
    let mut count = 0;
    for _ in 0..MAX_STATUSES_PER_TURN {
        match sub.recv_multipart(zmq::DONTWAIT) {
            Ok(_) => count += 1,
            Err(zmq::Error::EAGAIN) => break,
            Err(e) => return Err(format!("floor receive failed: {e}")),
        }
    }
    Ok(count)
}
