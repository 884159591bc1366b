//! The socket of the questions to `dbmgr` (PROTOCOL.md §8; the state
//! machine is src/core/bus/dbmgr.rs): a DEALER connected to the broker as an
//! MDP client, on a Domogik bus only (standalone, nothing is asked).

use super::sockets::{for_each_queued, DBMGR_RCVHWM};
use super::state::State;
use crate::core::bus::dbmgr::BadAnswer;
use crate::core::bus::session::Session;
use crate::debug;

/// Applies the queued answers (for at most one turn's work). One of our own
/// questions coming back means the socket is connected to itself (nothing
/// listens at the broker's port): the session has it reopened.
pub(super) fn read_answers(socket: &zmq::Socket, state: &mut State, session: &mut Session) {
    let mut own_question = false;
    let read = for_each_queued(socket, DBMGR_RCVHWM as usize, |frames| {
        match state.manager.handle_dbmgr_reply(&frames) {
            Ok(name) => debug!("dbmgr answered for plugin {name}"),
            Err(BadAnswer::OwnQuestion) => own_question = true,
            Err(why) => state.log_bad_input(format_args!("{why}")),
        }
    });
    if let Err(e) = read {
        state.log_bad_input(format_args!("cannot receive a dbmgr answer: {e}"));
    }
    if own_question {
        session.handle_own_question(&BadAnswer::OwnQuestion.to_string());
    }
}

/// Hands the questions due now to the session, which has them sent on
/// the dbmgr DEALER. With no DEALER (the broker not answering yet) none is
/// due: they wait for it and go out in the turn it opens, rather than
/// being spent on no socket and asked again when they time out.
pub(super) fn ask_due(session: &mut Session, state: &mut State) {
    let reachable = session.dbmgr_reachable();
    state.manager.set_dbmgr_reachable(reachable);
    if !reachable {
        return;
    }
    for frames in state.manager.take_dbmgr_requests() {
        session.ask_dbmgr(frames);
    }
}
