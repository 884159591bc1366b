//! The executor of the core's actions: what the session on the bus
//! ([`Session`]) decided, carried out on the sockets in the order given,
//! and how an opening or a reopening went reported back.

use super::sockets::Sockets;
use super::state::State;
use crate::core::bus::session::{Action, Session};
use std::time::Instant;

/// Carries out every action the session owes, the ones its reports add too.
pub(super) fn execute(session: &mut Session, sockets: &mut Sockets, state: &mut State) {
    while let Some(action) = session.poll_action() {
        match action {
            Action::Send(role, frames) => sockets.send(role, frames),
            Action::Open(role) => {
                let opened = sockets.open_role(role);
                session.handle_opened(role, opened);
            }
            Action::Close(role) => sockets.close(role),
            Action::Reopen(role) => {
                let reopened = sockets.reopen(role);
                session.handle_reopened(role, reopened, Instant::now());
            }
            Action::Log { level, peer, line } => match peer {
                Some(peer) => ::log::log!(level.into(), peer = peer.as_str(); "{line}"),
                None => ::log::log!(level.into(), "{line}"),
            },
            Action::BadInput(line) => state.log_bad_input(format_args!("{line}")),
        }
    }
}
