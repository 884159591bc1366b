//! What the loop does with each socket the poll found ready: requests
//! answered (bound ROUTER or MDP worker), status messages applied,
//! subscriptions noted; and the publications owed, sent. Each reads only
//! what is queued, within one turn's budget, and never waits.

use super::sockets::{for_each_queued, Sockets, MAX_REQUESTS_PER_TURN, MAX_STATUSES_PER_TURN, MAX_WORK_PER_TURN};
use super::state::{suppressed_note, State};
use crate::core::bus::{echo, links};
use crate::core::bus::session::Session;
use crate::core::envelope;
use crate::core::hosts::Forward;
use crate::core::log_policy::Verdict;
use crate::core::manager::{StatusOutcome, VIEW_CATEGORIES};
use crate::core::wire;
use crate::{debug, info, warn};
use std::time::{Instant, SystemTime};

/// Answers the queued requests, each before the next is read: on the
/// bound ROUTER in the envelope each came in (src/core/envelope.rs), or as
/// the MDP worker through the broker (the session decides what else the
/// broker's messages ask: src/core/bus/session.rs; its actions are carried
/// out by the caller). One request path: the manager answers the frames
/// either way.
pub(super) fn serve_requests(sockets: &Sockets, session: &mut Session, state: &mut State) {
    let socket = &sockets.requests.socket;
    let read = if session.is_worker() {
        for_each_queued(socket, MAX_REQUESTS_PER_TURN, |message| {
            if let Some(request) = session.handle_worker_message(message, Instant::now()) {
                // Another host's client: its manager answers (§13).
                match state.manager.forward_request(&request.body, request.envelope) {
                    Forward::Local(envelope) => {
                        let reply = state.answer(&request.body);
                        session.reply(envelope, reply);
                    }
                    Forward::Reply(envelope, reply) => session.reply(envelope, reply),
                    Forward::Waiting => {}
                }
            }
        })
    } else {
        for_each_queued(socket, MAX_REQUESTS_PER_TURN, |message| {
            let Some((envelope, frames)) = envelope::split(message) else {
                // REP drops these too: no REQ or DEALER client sends them.
                state.log_bad_input(format_args!("message without a request envelope dropped"));
                return;
            };
            let reply = state.answer(&frames);
            // ROUTER never blocks on send: a reply to a vanished client, or to
            // one that leaves REP_SNDHWM replies unread, is dropped.
            if let Err(e) = socket.send_multipart(envelope::wrap(envelope, reply), 0) {
                state.log_bad_input(format_args!("cannot send a reply: {e}"));
            }
        })
    };
    log_receive_error(state, "request", read);
}

/// Requests forwarded between managers (PROTOCOL.md §13): the other
/// managers' run here and answered, the answers to ours (or their
/// refusals past the deadline) relayed to the user interfaces that asked.
pub(super) fn forwarded(session: &mut Session, state: &mut State) {
    for incoming in state.manager.take_incoming() {
        let reply = state.answer(&incoming.frames);
        info!("request forwarded by the manager of host {} answered", incoming.from);
        state.manager.answer_incoming(&incoming, &reply);
    }
    for (envelope, reply) in state.manager.take_relayed() {
        session.reply(envelope, reply);
    }
}

/// Subscriptions arriving on the connected XPUB: a subscriber to our
/// publications is (back) at the forwarder, so the current state is owed.
/// Each is also the session's, for the forwarder's echo (src/core/bus/echo.rs).
pub(super) fn read_subscriptions(publisher: &zmq::Socket, session: &mut Session, state: &mut State) {
    let read = for_each_queued(publisher, MAX_REQUESTS_PER_TURN, |frames| {
        let Some(message) = frames.first() else { return };
        session.handle_subscription(message);
        if links::subscribes_to_ours(message, &VIEW_CATEGORIES)
            || links::subscribes_to_ours(message, &crate::core::hosts::CATEGORIES)
        {
            state.manager.republish();
        }
    });
    log_receive_error(state, "subscription", read);
}

/// Applies the queued status messages; each change is logged (within the
/// rate limit), each bad message warned about. One of our own coming back
/// through the forwarder is the echo that proves its links (the session's).
pub(super) fn absorb_statuses(sub: &zmq::Socket, session: &mut Session, state: &mut State) {
    let read = for_each_queued(sub, MAX_STATUSES_PER_TURN, |frames| {
        session.handle_status(&frames);
        match state.manager.handle_status_message(&frames) {
            StatusOutcome::Changed { id, status } => {
                if let Verdict::Write { suppressed } = state.status_log.check(Instant::now()) {
                    info!(client_id = id.as_str(); "{id} is {status}{}", suppressed_note(suppressed));
                }
            }
            StatusOutcome::Unchanged | StatusOutcome::NotForUs => {}
            StatusOutcome::Malformed(why) => state.log_bad_input(format_args!("status message dropped: {why}")),
            StatusOutcome::Rejected(why) => state.log_bad_input(format_args!("status message dropped: {why}")),
        }
    });
    log_receive_error(state, "status message", read);
}

/// A receive error that ended a socket's reading (`what`: the message kind).
fn log_receive_error(state: &mut State, what: &str, read: Result<(), zmq::Error>) {
    if let Err(e) = read {
        state.log_bad_input(format_args!("cannot receive a {what}: {e}"));
    }
}

/// Applies the xPL datagrams waiting (docs/PROTOCOL.md §12); each device
/// added, forgotten or changed is logged (within the status rate limit).
pub(super) fn absorb_xpl(xpl: &mut super::xpl::XplSocket, state: &mut State) {
    use crate::core::xpl::devices::Heard;
    let now = crate::sys::clock::now();
    for message in xpl.read(now, MAX_WORK_PER_TURN) {
        let (source, what) = match state.manager.handle_xpl_message(&message) {
            Heard::Added { source, forgotten } => {
                if let Some(forgotten) = forgotten {
                    warn!(
                        client_id = forgotten.as_str();
                        "xPL: forgot {forgotten}, silent the longest, to make room for {source} ([xpl] max_clients)"
                    );
                }
                (source, "a new xPL client, alive".to_owned())
            }
            Heard::Changed { source, status } => (source, status.to_string()),
            Heard::Seen | Heard::Ignored => continue,
        };
        if let Verdict::Write { suppressed } = state.status_log.check(Instant::now()) {
            info!(client_id = source.as_str(); "xPL: {source} is {what}{}", suppressed_note(suppressed));
        }
    }
}

/// Sends the publications owed, once, however many changes led to them.
pub(super) fn publish(sockets: &Sockets, session: &mut Session, state: &mut State) {
    let Some(publications) = state.manager.take_publications(wire::unix_seconds(SystemTime::now())) else {
        return;
    };
    let views = publications.views_owed();
    // Sent as built: the list goes out before the detail is serialised.
    // PUB never blocks: a subscriber past its high-water mark misses one.
    let mut failure = None;
    let now = Instant::now();
    for frames in publications {
        // A status sent through the forwarder is awaited back (src/core/bus/echo.rs).
        let probe = (session.watches_echo() && frames.first().is_some_and(|msg_id| msg_id.starts_with(echo::CATEGORY)))
            .then(|| frames.clone());
        match sockets.publisher.socket.send_multipart(frames, zmq::DONTWAIT) {
            Ok(()) => {
                if let Some(probe) = probe {
                    session.handle_published(&probe, now);
                }
            }
            Err(e) => failure = Some(e),
        }
    }
    if let Some(e) = failure {
        state.log_bad_input(format_args!("cannot publish: {e}"));
    }
    if views {
        debug!(
            "published clients.list and clients.detail, client.list, client.detail and client.conversion ({} clients)",
            state.manager.clients().len()
        );
    }
}
