//! The socket of the questions to `dbmgr` (PROTOCOL.md §8; the state
//! machine is src/bus/dbmgr.rs): a DEALER connected to the broker as an
//! MDP client, on a Domogik bus only (standalone, nothing is asked).

use super::handlers::for_each_queued;
use super::State;
use crate::bus::dbmgr::BadAnswer;
use crate::config::{Config, Direction};
use crate::debug;

/// Answers queued for us at most (dbmgr sends one per question).
pub const RCVHWM: i32 = 100;
/// Questions queued while the broker is away; past this they are dropped,
/// and asked again when they time out.
pub const SNDHWM: i32 = 100;
/// The largest answer read: a plugin's configuration is a few hundred
/// bytes; a larger message (a broken or hostile worker registered as
/// `dbmgr`) is refused by libzmq before it is allocated, the connection
/// with it, and the socket reopened (its monitor sees the loss).
pub const MAX_ANSWER_BYTES: i64 = 1024 * 1024;

/// Whether questions are asked at all: only when `rep_endpoint` connects
/// (a broker); standalone, nothing is asked. The DEALER itself is a
/// `sockets::Watched` of role `Dbmgr` (ZMTP heartbeats, monitor, reopened when
/// libzmq gives the connection up), opened by `Sockets::open_dbmgr`.
pub fn wanted(config: &Config) -> bool {
    config.rep_endpoint.direction == Direction::Connect
}

/// Applies the queued answers (for at most one turn's work). True when
/// one of our own questions came back: the socket is connected to itself
/// (nothing listens at the broker's port) and must be reopened.
pub fn read_answers(socket: &zmq::Socket, state: &mut State) -> bool {
    let mut own_question = false;
    for_each_queued(socket, RCVHWM as usize, state, "dbmgr answer", |state, frames| {
        match state.manager.handle_dbmgr_reply(&frames) {
            Ok(name) => debug!("dbmgr answered for plugin {name}"),
            Err(BadAnswer::OwnQuestion) => own_question = true,
            Err(why) => state.log_bad_input(format_args!("{why}")),
        }
    });
    if own_question {
        debug!("{}: reopening it", BadAnswer::OwnQuestion);
    }
    own_question
}

/// Sends the questions due now. Without a socket (the broker not
/// answering yet) none is due: they wait for it and go out in the turn it
/// opens. One that cannot be queued is asked again when it times out.
pub fn send_due(socket: Option<&zmq::Socket>, state: &mut State) {
    state.manager.set_dbmgr_reachable(socket.is_some());
    let Some(socket) = socket else { return };
    for frames in state.manager.take_dbmgr_requests() {
        if let Err(e) = socket.send_multipart(frames, zmq::DONTWAIT) {
            debug!("dbmgr question not sent ({e}): asked again later");
        }
    }
}
