//! The MDP worker role (Majordomo 0.1 as Domogik's broker speaks it,
//! PROTOCOL.md §7), without I/O: frames and the clock in; frames to send,
//! requests to answer and "reconnect now" out.
//!
//! The daemon owns the DEALER socket. It calls [`Worker::connected`] after
//! opening one (and sends the READY it returns), hands every received
//! message to [`Worker::receive`], calls [`Worker::handle_timeout`] when
//! [`Worker::poll_timeout`] is reached, and sends each reply built by
//! [`Worker::reply`]. When told to reconnect it drops the socket, opens a
//! new one and calls `connected` again. On a clean stop it sends the
//! DISCONNECT of [`Worker::disconnect`] before it exits.

pub(crate) use crate::core::wire::Frames;
use std::time::{Duration, Instant};

/// Second frame of every worker message.
pub(crate) const WORKER_HEADER: &[u8] = b"MDPW01";
pub(crate) const READY: u8 = 0x01;
pub(crate) const REQUEST: u8 = 0x02;
pub(crate) const REPLY: u8 = 0x03;
pub(crate) const HEARTBEAT: u8 = 0x04;
pub(crate) const DISCONNECT: u8 = 0x05;

/// How often we heartbeat, and how long a silent broker is given.
///
/// A HEARTBEAT answers the broker's: it goes out at the first turn after
/// the broker was heard once half an interval has passed since we last
/// sent, so an idle worker wakes once per broker heartbeat, not twice (the
/// broker's beat and a timer of our own a few milliseconds apart). Without
/// a word from the broker, one goes out 1.5 intervals after the last at
/// the latest: well inside the 5 s after which Domogik's broker drops a
/// silent worker (PROTOCOL.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// The broker's heartbeat interval and ours (Domogik: 1 s).
    pub heartbeat: Duration,
    /// A broker heard from for this long is taken for dead: new socket,
    /// READY again (Domogik's workers: 3 to 4 s).
    pub broker_silence: Duration,
    /// How long without a word from the broker before the user is told,
    /// once, that no broker answers: 30 s (a host booting may start
    /// Domogik's broker a few seconds after the manager, which is not
    /// worth a warning).
    pub no_broker_warning: Duration,
}

impl Timing {
    /// Domogik's: a heartbeat a second, a broker dead after 3.5 s.
    #[cfg(test)]
    pub(crate) const DOMOGIK: Timing = Timing {
        heartbeat: Duration::from_secs(1),
        broker_silence: Duration::from_millis(3500),
        no_broker_warning: Duration::from_secs(30),
    };

    /// The same proportions from another heartbeat interval (the test-only
    /// knob, docs/RELIABILITY.md).
    pub(crate) fn scaled(heartbeat: Duration) -> Timing {
        Timing {
            heartbeat,
            broker_silence: heartbeat * 7 / 2,
            no_broker_warning: heartbeat * 30,
        }
    }
}

/// What a message from the broker asks of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// A client's request: answer `body` (action, body, after a leading
    /// `None` timeout frame was dropped) with `Worker::reply(envelope, ...)`.
    Request { envelope: Frames, body: Frames },
    /// Nothing to do (a heartbeat, or liveness noted).
    Nothing,
    /// The broker sent DISCONNECT: drop the socket, open a new one.
    Reconnect,
    /// Our own READY came back: no broker listens there, and TCP connected
    /// the DEALER to itself (a connect to a free port of the ephemeral
    /// range, as Domogik's 40410 is, can be given that very port as its
    /// source). Not a word from a broker: drop the socket (which frees the
    /// port for the real broker) and open a new one.
    ConnectedToItself,
    /// Not a message a broker sends; dropped, with why.
    Malformed(&'static str),
}

/// What a deadline asks of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    Send(Frames),
    /// The broker was silent for `broker_silence`: drop the socket, open a
    /// new one. What to tell the user goes with it.
    Reconnect(Silence),
}

/// Why the worker reconnects, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Silence {
    /// The broker had answered on this socket, then went silent.
    Lost,
    /// Not heard from since start or since it was last heard, for less
    /// than [`Timing::no_broker_warning`] (or it was already said).
    Unanswered,
    /// Not heard from for this long: say it once.
    LongUnanswered(Duration),
}

/// One worker's state: when we last heard from the broker and last sent.
#[derive(Debug, Clone)]
pub(crate) struct Worker {
    service: Vec<u8>,
    timing: Timing,
    last_heard: Instant,
    last_sent: Instant,
    /// Heard anything since the last `connected`: the first message after a
    /// (re)connection is logged as "registered".
    heard_since_connect: bool,
    /// Start, or the last word from the broker over any socket.
    silent_since: Instant,
    /// [`Silence::LongUnanswered`] given since `silent_since`.
    told_unanswered: bool,
    /// DISCONNECT was sent: the worker has left, nothing more is due.
    left: bool,
    /// Our own READY came back on this socket: whatever else it brings is
    /// our own too, until the next `connected`.
    talking_to_itself: bool,
}

impl Worker {
    pub(crate) fn new(service: &str, timing: Timing, now: Instant) -> Worker {
        Worker {
            service: service.as_bytes().to_vec(),
            timing,
            last_heard: now,
            last_sent: now,
            heard_since_connect: false,
            silent_since: now,
            told_unanswered: false,
            left: false,
            talking_to_itself: false,
        }
    }

    /// A new socket is connected: the READY to send on it first.
    pub(crate) fn connected(&mut self, now: Instant) -> Frames {
        self.last_heard = now;
        self.last_sent = now;
        self.heard_since_connect = false;
        self.left = false;
        self.talking_to_itself = false;
        vec![Vec::new(), WORKER_HEADER.to_vec(), vec![READY], self.service.clone()]
    }

    /// The socket's TCP connection (and ZMTP handshake) is up: the broker
    /// gets its `broker_silence` from now, not from when the socket was
    /// opened. Without this, a broker that came up late in that span was
    /// taken for dead before its first heartbeat (a second after our
    /// READY), and kept the abandoned registration as a second worker of
    /// `manager` for its 5 s expiry, handing it requests that were lost.
    pub(crate) fn link_up(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// Whether the broker said anything since the last `connected` (asked
    /// before `receive`, it tells the first word after a (re)connection).
    pub(crate) fn heard_since_connect(&self) -> bool {
        self.heard_since_connect
    }

    /// Reads one message from the broker: `["", "MDPW01", command, ...]`.
    /// Any message is a sign of life.
    pub(crate) fn receive(&mut self, mut frames: Frames, now: Instant) -> Incoming {
        if self.talking_to_itself {
            return Incoming::ConnectedToItself;
        }
        let mut rest = frames.drain(..);
        let incoming = match (rest.next(), rest.next(), rest.next()) {
            (Some(empty), Some(header), Some(command)) if empty.is_empty() && header == WORKER_HEADER => {
                let rest: Frames = rest.collect();
                match command.as_slice() {
                    [REQUEST] => split_request(rest),
                    [HEARTBEAT] => Incoming::Nothing,
                    [DISCONNECT] => Incoming::Reconnect,
                    [READY] => {
                        self.talking_to_itself = true;
                        return Incoming::ConnectedToItself;
                    }
                    _ => Incoming::Malformed("unknown MDP worker command"),
                }
            }
            // Not a broker speaking: no sign of life either.
            _ => return Incoming::Malformed("not an MDP worker message (\"\", MDPW01, command, ...)"),
        };
        self.last_heard = now;
        self.heard_since_connect = true;
        self.silent_since = now;
        self.told_unanswered = false;
        incoming
    }

    /// The REPLY carrying `reply` (action, body) back to the client of
    /// `envelope`. It does not count as a heartbeat: Domogik's broker
    /// keeps a worker alive on its HEARTBEATs only (domogik-mq's
    /// reqrep/broker.py resets a worker's liveness on HEARTBEAT, not on
    /// REPLY), so a busy worker heartbeats all the same.
    pub(crate) fn reply(&self, envelope: Frames, reply: Frames) -> Frames {
        let mut frames = Vec::with_capacity(4 + envelope.len() + reply.len());
        frames.extend([Vec::new(), WORKER_HEADER.to_vec(), vec![REPLY]]);
        frames.extend(envelope);
        frames.push(Vec::new());
        frames.extend(reply);
        frames
    }

    /// The DISCONNECT `["", "MDPW01", 0x05]` to send as the worker leaves
    /// (a clean stop, PROTOCOL.md §7): the broker drops the worker at once
    /// instead of after its heartbeat expiry, so a request it routes
    /// meanwhile waits for the next worker instead of being lost with this
    /// one. Nothing is due after it (MDP: a worker sends nothing more after
    /// DISCONNECT), until a new socket's `connected`.
    pub(crate) fn disconnect(&mut self, now: Instant) -> Frames {
        self.left = true;
        self.last_sent = now;
        vec![Vec::new(), WORKER_HEADER.to_vec(), vec![DISCONNECT]]
    }

    /// The next time `handle_timeout` has something to do of its own accord (it may
    /// also have something at an earlier turn: see [`Timing`]); `None`
    /// once the worker has left.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.left {
            return None;
        }
        Some((self.last_sent + self.timing.heartbeat * 3 / 2).min(self.last_heard + self.timing.broker_silence))
    }

    /// What is due at `now`, called at every turn of the loop: reconnect if
    /// the broker was silent too long, else a heartbeat if one is owed
    /// ([`Timing`]).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Due {
        if self.left {
            return Due::Nothing;
        }
        if now >= self.last_heard + self.timing.broker_silence {
            return Due::Reconnect(self.silence(now));
        }
        let since_sent = now.saturating_duration_since(self.last_sent);
        let answers_the_broker = self.last_heard > self.last_sent && since_sent >= self.timing.heartbeat / 2;
        if answers_the_broker || since_sent >= self.timing.heartbeat * 3 / 2 {
            self.last_sent = now;
            return Due::Send(vec![Vec::new(), WORKER_HEADER.to_vec(), vec![HEARTBEAT]]);
        }
        Due::Nothing
    }
}

impl Worker {
    fn silence(&mut self, now: Instant) -> Silence {
        let unanswered = now.saturating_duration_since(self.silent_since);
        if self.heard_since_connect {
            Silence::Lost
        } else if unanswered >= self.timing.no_broker_warning && !self.told_unanswered {
            self.told_unanswered = true;
            Silence::LongUnanswered(unanswered)
        } else {
            Silence::Unanswered
        }
    }
}

/// `[address..., "", ("None",) action, body]` into the envelope (the
/// address frames, kept opaque) and the request proper.
fn split_request(mut frames: Frames) -> Incoming {
    let Some(delimiter) = frames.iter().position(Vec::is_empty) else {
        return Incoming::Malformed("REQUEST without an empty frame after the client address");
    };
    let mut body = frames.split_off(delimiter + 1);
    frames.pop();
    // Domogik's broker leaves a timeout frame it cannot parse as a number,
    // and its client sends the text None by default.
    if body.len() == 3 && body.first().is_some_and(|frame| frame == b"None") {
        body.remove(0);
    }
    Incoming::Request { envelope: frames, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(parts: &[&[u8]]) -> Frames {
        parts.iter().map(|part| part.to_vec()).collect()
    }

    fn worker(now: Instant) -> Worker {
        Worker::new("manager", Timing::DOMOGIK, now)
    }

    #[test]
    fn ready_names_the_service() {
        let now = Instant::now();
        assert_eq!(
            worker(now).connected(now),
            frames(&[b"", b"MDPW01", b"\x01", b"manager"])
        );
    }

    #[test]
    fn a_request_keeps_every_address_frame_and_its_reply_sends_them_back() {
        let now = Instant::now();
        let mut worker = worker(now);
        let request = frames(&[
            b"",
            b"MDPW01",
            b"\x02",
            b"client-1",
            b"hop",
            b"",
            b"clients.list.get",
            b"{}",
        ]);
        let Incoming::Request { envelope, body } = worker.receive(request, now) else {
            panic!("a request")
        };
        assert_eq!(envelope, frames(&[b"client-1", b"hop"]));
        assert_eq!(body, frames(&[b"clients.list.get", b"{}"]));
        assert_eq!(
            worker.reply(envelope, frames(&[b"clients.list.result", b"{}"])),
            frames(&[
                b"",
                b"MDPW01",
                b"\x03",
                b"client-1",
                b"hop",
                b"",
                b"clients.list.result",
                b"{}"
            ])
        );
    }

    #[test]
    fn a_leading_none_timeout_frame_is_absent_and_anything_else_is_left_to_the_codec() {
        let now = Instant::now();
        let mut worker = worker(now);
        let body_of = |worker: &mut Worker, parts: &[&[u8]]| {
            let mut message = frames(&[b"", b"MDPW01", b"\x02", b"c", b""]);
            message.extend(frames(parts));
            match worker.receive(message, now) {
                Incoming::Request { body, .. } => body,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            body_of(&mut worker, &[b"None", b"clients.list.get", b"{}"]),
            frames(&[b"clients.list.get", b"{}"])
        );
        assert_eq!(body_of(&mut worker, &[b"None", b"{}"]), frames(&[b"None", b"{}"]));
        assert_eq!(
            body_of(&mut worker, &[b"5", b"clients.list.get", b"{}"]),
            frames(&[b"5", b"clients.list.get", b"{}"])
        );
    }

    #[test]
    fn what_is_not_an_mdp_message_is_no_sign_of_a_broker() {
        let start = Instant::now();
        let mut worker = worker(start);
        worker.connected(start);
        let later = start + Duration::from_secs(3);
        assert!(matches!(
            worker.receive(frames(&[b"GET / HTTP/1.1"]), later),
            Incoming::Malformed(_)
        ));
        assert!(!worker.heard_since_connect());
        assert!(matches!(
            worker.handle_timeout(start + Duration::from_millis(3500)),
            Due::Reconnect(_)
        ));
    }

    #[test]
    fn disconnect_and_malformed_messages() {
        let now = Instant::now();
        let mut worker = worker(now);
        assert_eq!(
            worker.receive(frames(&[b"", b"MDPW01", b"\x05"]), now),
            Incoming::Reconnect
        );
        assert_eq!(
            worker.receive(frames(&[b"", b"MDPW01", b"\x04"]), now),
            Incoming::Nothing
        );
        for bad in [
            frames(&[]),
            frames(&[b"", b"MDPW02", b"\x04"]),
            frames(&[b"x", b"MDPW01", b"\x04"]),
            frames(&[b"", b"MDPW01", b"\x09"]),
            frames(&[b"", b"MDPW01", b"\x02", b"client", b"no delimiter"]),
        ] {
            assert!(
                matches!(worker.receive(bad.clone(), now), Incoming::Malformed(_)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn heartbeats_answer_the_brokers_and_come_by_themselves_when_it_is_quiet() {
        let heartbeat = frames(&[b"", b"MDPW01", b"\x04"]);
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut worker = worker(start);
        worker.connected(start);
        // The broker's heartbeat comes every second: each one is answered
        // at the turn it arrives, and our own deadline is never reached.
        for beat in 1..=3 {
            let at = ms(1000 * beat + 3 * beat);
            assert!(
                worker.poll_timeout() > Some(at),
                "beat {beat}: no wake-up of our own before the broker's"
            );
            worker.receive(heartbeat.clone(), at);
            assert_eq!(worker.handle_timeout(at), Due::Send(heartbeat.clone()), "beat {beat}");
            assert_eq!(worker.handle_timeout(at), Due::Nothing, "once per beat");
        }
        // Heard too soon after our last (at 3009): not answered, nothing owed.
        worker.receive(heartbeat.clone(), ms(3300));
        assert_eq!(worker.handle_timeout(ms(3300)), Due::Nothing);
        assert_eq!(
            worker.handle_timeout(ms(3509)),
            Due::Send(heartbeat.clone()),
            "half an interval on: answered"
        );
        // The broker goes quiet: one every 1.5 s by our own deadline.
        assert_eq!(worker.poll_timeout(), Some(ms(5009)));
        assert_eq!(worker.handle_timeout(ms(5008)), Due::Nothing);
        assert_eq!(worker.handle_timeout(ms(5009)), Due::Send(heartbeat.clone()));
        // A reply does not count as a heartbeat (Domogik's broker only
        // counts HEARTBEATs): the next one is due as if it had not been.
        let _ = worker.reply(Vec::new(), Vec::new());
        assert_eq!(worker.poll_timeout(), Some(ms(5009 + 1500)));
    }

    #[test]
    fn a_worker_that_leaves_says_disconnect_and_nothing_more_until_a_new_socket() {
        let start = Instant::now();
        let mut worker = worker(start);
        worker.connected(start);
        let heartbeat = frames(&[b"", b"MDPW01", b"\x04"]);
        worker.receive(heartbeat.clone(), start + Duration::from_millis(900));
        let leaving = start + Duration::from_secs(1);
        assert_eq!(worker.disconnect(leaving), frames(&[b"", b"MDPW01", b"\x05"]));
        assert_eq!(worker.poll_timeout(), None);
        // The broker's heartbeat is not answered, its silence is no reason
        // to reconnect: the worker has left.
        worker.receive(heartbeat.clone(), leaving);
        for later in [1, 2, 60] {
            assert_eq!(
                worker.handle_timeout(leaving + Duration::from_secs(later)),
                Due::Nothing,
                "{later} s on"
            );
        }
        // A new socket is a new conversation.
        let again = leaving + Duration::from_secs(61);
        worker.connected(again);
        assert_eq!(worker.poll_timeout(), Some(again + Duration::from_millis(1500)));
        assert_eq!(
            worker.handle_timeout(again + Duration::from_millis(1500)),
            Due::Send(heartbeat)
        );
    }

    #[test]
    fn a_broker_that_never_answers_is_said_once_after_30_s_and_again_after_it_came_and_went() {
        let start = Instant::now();
        let mut worker = worker(start);
        worker.connected(start);
        let mut now = start;
        let mut said = Vec::new();
        // Reconnecting every 3.5 s for two minutes, never answered.
        while now < start + Duration::from_secs(120) {
            now += Duration::from_millis(3500);
            match worker.handle_timeout(now) {
                Due::Reconnect(Silence::LongUnanswered(after)) => said.push(after),
                Due::Reconnect(Silence::Unanswered) => {}
                other => panic!("{other:?}"),
            }
            worker.connected(now);
        }
        assert_eq!(said, vec![Duration::from_millis(31_500)], "once, after 30 s");
        // It answers, then goes away for good: lost, then said again 30 s on.
        worker.receive(frames(&[b"", b"MDPW01", b"\x04"]), now);
        let heard = now;
        now += Duration::from_millis(3500);
        assert_eq!(worker.handle_timeout(now), Due::Reconnect(Silence::Lost));
        worker.connected(now);
        let mut again = None;
        while again.is_none() {
            now += Duration::from_millis(3500);
            if let Due::Reconnect(Silence::LongUnanswered(after)) = worker.handle_timeout(now) {
                again = Some(now - heard);
                assert_eq!(after, now - heard);
            }
            worker.connected(now);
        }
        assert!(again >= Some(Timing::DOMOGIK.no_broker_warning), "{again:?}");
    }

    /// Domogik's broker (domogik-mq, reqrep/broker.py) counts a worker's
    /// liveness down at each of its heartbeats (every second, from 5) and
    /// resets it on a HEARTBEAT only, not on a REPLY; at 0 the worker is
    /// unregistered. A manager answering a request every 400 ms must still
    /// send HEARTBEATs.
    #[test]
    fn a_busy_worker_still_heartbeats_for_domogiks_broker() {
        let heartbeat = frames(&[b"", b"MDPW01", b"\x04"]);
        let request = frames(&[b"", b"MDPW01", b"\x02", b"client", b"", b"clients.list.get", b"{}"]);
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut worker = worker(start);
        worker.connected(start);
        let mut liveness = 5;
        let mut lowest = liveness;
        let mut t = 0;
        while t < 20_000 {
            t += 1;
            let now = ms(t);
            let beat = t % 1000 == 3;
            let asked = t % 400 == 0;
            let due = worker.poll_timeout().is_some_and(|d| d <= now);
            if !(beat || asked || due) {
                continue;
            }
            if beat {
                liveness -= 1;
                lowest = lowest.min(liveness);
                worker.receive(heartbeat.clone(), now);
            }
            if asked {
                if let Incoming::Request { envelope, body } = worker.receive(request.clone(), now) {
                    worker.reply(envelope, body);
                }
            }
            if let Due::Send(frames) = worker.handle_timeout(now) {
                assert_eq!(frames, heartbeat);
                liveness = 5;
            }
        }
        assert!(
            lowest > 0,
            "Domogik's broker unregistered the busy worker (liveness reached {lowest})"
        );
    }

    /// On a host without a broker, the DEALER's connect to a port inside
    /// the ephemeral range (Domogik's 40410 is) can be given that port as
    /// its own source: TCP's simultaneous open connects it to itself, and
    /// what it hears is its own READY, then its own heartbeats. That is no
    /// broker: reconnect (which also frees the port for the real broker).
    #[test]
    fn our_own_ready_coming_back_is_a_connection_to_ourselves_not_a_broker() {
        let start = Instant::now();
        let mut worker = worker(start);
        let ready = worker.connected(start);
        assert_eq!(
            worker.receive(ready, start + Duration::from_millis(1)),
            Incoming::ConnectedToItself
        );
        assert!(
            !worker.heard_since_connect(),
            "our own READY is not the broker answering"
        );
        // Nor our own heartbeat behind it, on the same socket.
        let heartbeat = frames(&[b"", b"MDPW01", b"\x04"]);
        assert_eq!(
            worker.receive(heartbeat.clone(), start + Duration::from_millis(2)),
            Incoming::ConnectedToItself
        );
        assert!(!worker.heard_since_connect());
        // A new socket starts afresh.
        worker.connected(start + Duration::from_millis(3));
        assert_eq!(
            worker.receive(heartbeat, start + Duration::from_millis(4)),
            Incoming::Nothing
        );
        assert!(worker.heard_since_connect());
    }

    #[test]
    fn the_brokers_silence_counts_from_when_the_connection_is_up() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut worker = worker(start);
        worker.connected(start);
        // The broker starts 3 s after our socket: its first heartbeat comes
        // a second after our READY, later than 3.5 s after the socket.
        worker.link_up(ms(3000));
        assert!(!matches!(worker.handle_timeout(ms(3500)), Due::Reconnect(_)));
        worker.receive(frames(&[b"", b"MDPW01", b"\x04"]), ms(4000));
        assert!(worker.heard_since_connect());
        // Without a word after the link came up: reconnect 3.5 s after it.
        let mut quiet = super::Worker::new("manager", Timing::DOMOGIK, start);
        quiet.connected(start);
        quiet.link_up(ms(3000));
        assert!(!matches!(quiet.handle_timeout(ms(6499)), Due::Reconnect(_)));
        assert!(matches!(quiet.handle_timeout(ms(6500)), Due::Reconnect(_)));
    }

    #[test]
    fn scaled_timing_keeps_domogik_proportions() {
        assert_eq!(Timing::scaled(Duration::from_secs(1)), Timing::DOMOGIK);
        assert_eq!(
            Timing::scaled(Duration::from_millis(100)).broker_silence,
            Duration::from_millis(350)
        );
    }
}
