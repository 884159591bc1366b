//! The socket of the questions to `dbmgr` (PROTOCOL.md §8; the state
//! machine is src/bus/dbmgr.rs): a DEALER connected to the broker as an
//! MDP client, on a Domogik bus only (standalone, nothing is asked).

use super::{StartError, State, MAX_WORK_PER_TURN};
use crate::config::{Config, Direction};
use crate::{debug, info};
use std::time::Instant;

/// Answers queued for us at most (dbmgr sends one per question).
const RCVHWM: i32 = 100;
/// Questions queued while the broker is away; past this they are dropped,
/// and asked again when they time out.
const SNDHWM: i32 = 100;

/// The DEALER, connected to the broker (`rep_endpoint` when it connects);
/// `None` standalone. No `ZMQ_MAXMSGSIZE`: past it libzmq would drop the
/// connection for good, and only the broker, relaying dbmgr, writes here.
pub fn open(context: &zmq::Context, config: &Config) -> Result<Option<zmq::Socket>, StartError> {
    if config.rep_endpoint.direction != Direction::Connect {
        return Ok(None);
    }
    let setup =
        |result: zmq::Result<()>| result.map_err(|e| StartError(format!("cannot set up the dbmgr socket: {e}")));
    let socket = context
        .socket(zmq::DEALER)
        .map_err(|e| StartError(format!("cannot create the dbmgr socket: {e}")))?;
    setup(socket.set_linger(0))?;
    setup(socket.set_rcvhwm(RCVHWM))?;
    setup(socket.set_sndhwm(SNDHWM))?;
    setup(socket.set_ipv6(config.rep_endpoint.address.contains('[')))?;
    socket.connect(&config.rep_endpoint.address).map_err(|e| {
        StartError(format!(
            "cannot connect the dbmgr socket to {}: {e}",
            config.rep_endpoint.address
        ))
    })?;
    info!(
        "dbmgr questions go through the broker at {}",
        config.rep_endpoint.address
    );
    Ok(Some(socket))
}

/// Applies the queued answers (for at most one turn's work).
pub fn read_answers(socket: &zmq::Socket, state: &mut State) {
    let started = Instant::now();
    while started.elapsed() < MAX_WORK_PER_TURN {
        let Ok(frames) = socket.recv_multipart(zmq::DONTWAIT) else {
            return;
        };
        match state.manager.handle_dbmgr_reply(&frames) {
            Ok(name) => debug!("dbmgr answered for plugin {name}"),
            Err(why) => state.log_bad_input(format_args!("{why}")),
        }
    }
}

/// Sends the questions due now; one that cannot be queued is asked again
/// when it times out.
pub fn send_due(socket: &zmq::Socket, state: &mut State) {
    for frames in state.manager.take_dbmgr_requests() {
        if let Err(e) = socket.send_multipart(frames, zmq::DONTWAIT) {
            debug!("dbmgr question not sent ({e}): asked again later");
        }
    }
}
