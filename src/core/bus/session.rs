//! The manager's session on the bus, without I/O: which of its sockets to
//! open, close or reopen, and what to send on them, decided from what they
//! received, from their monitors' events and from the clock.
//!
//! quinn-proto's shape: the daemon hands every event in with the time
//! (`handle_worker_message`, `handle_link_event`, `handle_own_question`,
//! `handle_opened`, `handle_reopened`, and [`Session::handle_timeout`] once
//! [`Session::poll_timeout`] is reached), then carries out, in order, each
//! [`Action`] that [`Session::poll_action`] gives, and reports how an
//! `Open` or a `Reopen` went. The decisions were in the daemon's socket
//! code before (issue 19); here they are unit-tested with a fake clock:
//! - the broker answers the MDP worker: open the `dbmgr` DEALER;
//! - the broker sends DISCONNECT, or the worker's DEALER gets its own READY
//!   back (TCP connected it to itself): a new DEALER, READY on it;
//! - the broker is silent too long: close the `dbmgr` DEALER and reconnect;
//! - libzmq gave a connection up: reopen its socket, saying so once;
//! - our own status did not come back through the forwarder (`echo`):
//!   reopen the SUB and the PUB, saying so once;
//! - a reply to a request, a heartbeat, READY, are frames to send.

use super::echo::{Echo, Missed};
use super::links::{self, Change, GiveUp, Link};
use super::mdp::{Due, Incoming, Silence, Timing, Worker};
use crate::core::config::{Config, Direction};
use crate::core::log_policy::Level;
use crate::core::wire::Frames;
use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

/// What a socket is for: its type and options follow (the daemon's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Status messages in (SUB).
    Sub,
    /// Publications out: PUB when bound; XPUB when connected to a
    /// forwarder, to learn when a subscriber is there (links.rs).
    Pub,
    /// Requests: a ROUTER when bound (standalone), the MDP worker's DEALER
    /// when connected to a broker.
    Requests,
    /// Questions to dbmgr: a DEALER connected to the broker as an MDP
    /// client (src/daemon/questions.rs).
    Dbmgr,
}

impl Role {
    /// The socket's name in the log (`sub socket connected to ...`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Sub => "sub",
            Role::Pub => "pub",
            Role::Requests => "rep",
            Role::Dbmgr => "dbmgr",
        }
    }

    /// The config key of its endpoint.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Role::Sub => "sub_endpoint",
            Role::Pub => "pub_endpoint",
            Role::Requests | Role::Dbmgr => "rep_endpoint",
        }
    }
}

/// One thing for the daemon to do, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Send `frames` on the socket of the role, never waiting (a DEALER to
    /// a broker that is not there queues, or drops past its high-water mark).
    Send(Role, Frames),
    /// Open the socket of the role (the `dbmgr` DEALER), then report with
    /// [`Session::handle_opened`].
    Open(Role),
    /// Close the socket of the role (the `dbmgr` DEALER while the broker is
    /// taken for dead: the questions it had in flight time out and are
    /// asked again).
    Close(Role),
    /// Replace the socket of the role by a new one on the same endpoint,
    /// then report with [`Session::handle_reopened`].
    Reopen(Role),
    /// A line for the log; `peer` is the address it is about (the `PEER`
    /// journal field).
    Log {
        level: Level,
        peer: Option<String>,
        line: String,
    },
    /// A line about what a peer sent, for the daemon's rate-limited log.
    BadInput(String),
}

/// A client's request the MDP worker received: answer `body` (action, body)
/// and hand the reply to [`Session::reply`] with `envelope`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) envelope: Frames,
    pub(crate) body: Frames,
}

/// The session: the MDP worker (on a Domogik bus), the links of the
/// sockets that connect, whether the `dbmgr` DEALER is open, and the
/// actions owed.
#[derive(Debug)]
pub(crate) struct Session {
    /// `None` standalone (a bound ROUTER answers requests: no broker).
    worker: Option<Worker>,
    timing: Timing,
    sub: Link,
    publisher: Link,
    requests: Link,
    dbmgr: Link,
    /// Whether questions are asked to `dbmgr` at all (the worker layout).
    dbmgr_wanted: bool,
    dbmgr_open: bool,
    /// Whether the forwarder relays (src/core/bus/echo.rs): when both the
    /// SUB and the PUB connect to one.
    echo: Option<Echo>,
    /// The endpoint addresses, by role, for the log lines.
    addresses: [String; 3],
    actions: VecDeque<Action>,
}

impl Session {
    /// The session of `config`'s layout, its sockets just opened at `now`:
    /// on a Domogik bus, the worker's READY is the first action.
    pub(crate) fn new(config: &Config, timing: Timing, now: Instant) -> Session {
        let worker_layout = config.rep_endpoint.direction == Direction::Connect;
        let forwarder =
            config.sub_endpoint.direction == Direction::Connect && config.pub_endpoint.direction == Direction::Connect;
        let mut session = Session {
            worker: worker_layout.then(|| Worker::new(&config.service, timing, now)),
            timing,
            sub: Link::new(),
            publisher: Link::new(),
            requests: Link::new(),
            dbmgr: Link::new(),
            dbmgr_wanted: worker_layout,
            dbmgr_open: false,
            echo: forwarder.then(|| Echo::new(timing.heartbeat)),
            addresses: [
                config.sub_endpoint.address.clone(),
                config.pub_endpoint.address.clone(),
                config.rep_endpoint.address.clone(),
            ],
            actions: VecDeque::new(),
        };
        if let Some(worker) = &mut session.worker {
            let ready = worker.connected(now);
            session.actions.push_back(Action::Send(Role::Requests, ready));
            let broker = session.addresses[2].clone();
            session.log(
                Level::Info,
                Some(&broker),
                format!(
                    "MDP worker: READY sent to the broker at {broker} for service \"{}\"",
                    config.service
                ),
            );
        }
        session
    }

    /// Whether requests come through a broker (the MDP worker), not on a
    /// bound ROUTER.
    pub(crate) fn is_worker(&self) -> bool {
        self.worker.is_some()
    }

    /// Whether this layout asks `dbmgr` questions (a broker is configured).
    pub(crate) fn dbmgr_wanted(&self) -> bool {
        self.dbmgr_wanted
    }

    /// The next thing to do, in order; `None` once all are done.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`Session::handle_timeout`] has something to do: the MDP
    /// heartbeat or the broker's silence, a lost link to reopen, an echo
    /// awaited from the forwarder.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let dbmgr = self.dbmgr_open.then(|| self.dbmgr.poll_timeout()).flatten();
        [
            self.worker.as_ref().and_then(Worker::poll_timeout),
            self.sub.poll_timeout(),
            self.publisher.poll_timeout(),
            dbmgr,
            self.echo.as_ref().and_then(Echo::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// What is due at `now` (called at every turn): a link libzmq gave up is
    /// reopened; the MDP worker heartbeats, or reconnects to a silent broker
    /// (the `dbmgr` DEALER closed meanwhile).
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for role in [Role::Sub, Role::Pub, Role::Dbmgr] {
            if role == Role::Dbmgr && !self.dbmgr_open {
                continue;
            }
            let Some(give_up) = self.link_mut(role).handle_timeout(now) else {
                continue;
            };
            let (name, peer) = (role.name(), self.address(role).to_owned());
            match give_up {
                GiveUp::First => self.log(
                    Level::Warn,
                    Some(&peer),
                    format!(
                        "{name} socket: libzmq gave up the connection to {peer} (a protocol error: a message over the \
                         size limit, or a peer that is not what the config says): opening a new one (if it fails \
                         again, again later, quietly)"
                    ),
                ),
                GiveUp::Again => self.log(
                    Level::Debug,
                    Some(&peer),
                    format!("{name} socket: libzmq gave up the connection to {peer} again: opening a new one"),
                ),
            }
            self.actions.push_back(Action::Reopen(role));
        }
        if let Some(missed) = self.echo.as_mut().and_then(|echo| echo.handle_timeout(now)) {
            self.echo_missed(missed);
        }
        let Some(worker) = &mut self.worker else {
            return;
        };
        match worker.handle_timeout(now) {
            Due::Nothing => {}
            Due::Send(frames) => self.actions.push_back(Action::Send(Role::Requests, frames)),
            Due::Reconnect(silence) => {
                let broker = self.address(Role::Requests).to_owned();
                match silence {
                    Silence::Lost => self.log(
                        Level::Warn,
                        Some(&broker),
                        format!("MDP worker: the broker at {broker} is silent; reconnecting and registering again"),
                    ),
                    Silence::Unanswered => self.log(
                        Level::Debug,
                        None,
                        format!("MDP worker: no word from the broker at {broker}; reconnecting"),
                    ),
                    Silence::LongUnanswered(after) => self.log(
                        Level::Warn,
                        Some(&broker),
                        format!(
                            "MDP worker: no broker has answered at {broker} for {} s: no request can reach the \
                             manager (is Domogik's broker running there? a host without one sets rep_endpoint = \
                             @tcp://...); still trying every {:.1} s, and saying so when it answers",
                            after.as_secs(),
                            self.timing.broker_silence.as_secs_f64()
                        ),
                    ),
                }
                self.close_dbmgr();
                self.reconnect_worker();
            }
        }
    }

    /// One message the MDP worker's DEALER received: a request to answer,
    /// or what it asks of the sockets (queued as actions).
    pub(crate) fn handle_worker_message(&mut self, frames: Frames, now: Instant) -> Option<Request> {
        let worker = self.worker.as_mut()?;
        let first_word = !worker.heard_since_connect();
        let incoming = worker.receive(frames, now);
        let registered = first_word && worker.heard_since_connect();
        let broker = self.address(Role::Requests).to_owned();
        if registered {
            self.log(
                Level::Info,
                Some(&broker),
                format!("MDP worker: the broker at {broker} answers (service registered)"),
            );
            self.open_dbmgr();
        }
        match incoming {
            Incoming::Request { envelope, body } => return Some(Request { envelope, body }),
            Incoming::Nothing => {}
            Incoming::Reconnect => {
                self.log(
                    Level::Warn,
                    Some(&broker),
                    format!("MDP worker: the broker at {broker} sent DISCONNECT; registering again"),
                );
                self.reconnect_worker();
            }
            Incoming::ConnectedToItself => {
                // Said once per socket: whatever else it brings is ours too.
                if !self.actions.contains(&Action::Reopen(Role::Requests)) {
                    self.log(
                        Level::Debug,
                        Some(&broker),
                        format!(
                            "MDP worker: the DEALER got its own READY back (TCP connected it to itself: nothing \
                             listens at {broker}); reconnecting"
                        ),
                    );
                    self.reconnect_worker();
                }
            }
            Incoming::Malformed(why) => self
                .actions
                .push_back(Action::BadInput(format!("message from the broker dropped: {why}"))),
        }
        None
    }

    /// Whether what is published goes through a forwarder whose echo is
    /// watched: the daemon then hands each message it published to
    /// [`Session::handle_published`].
    pub(crate) fn watches_echo(&self) -> bool {
        self.echo.is_some()
    }

    /// A message published on the PUB at `now` (a `plugin.status` of ours
    /// is awaited back through the forwarder).
    pub(crate) fn handle_published(&mut self, frames: &[Vec<u8>], now: Instant) {
        if let Some(echo) = &mut self.echo {
            echo.sent(frames, now);
        }
    }

    /// A (un)subscription message received on the XPUB.
    pub(crate) fn handle_subscription(&mut self, message: &[u8]) {
        if let Some(echo) = &mut self.echo {
            echo.subscription(message);
        }
    }

    /// A status message received on the SUB: one of ours coming back is the
    /// forwarder's echo (said when it follows missed ones).
    pub(crate) fn handle_status(&mut self, frames: &[Vec<u8>]) {
        if self.echo.as_mut().is_some_and(|echo| echo.received(frames)) {
            let forwarder = self.address(Role::Sub).to_owned();
            self.log(
                Level::Info,
                Some(&forwarder),
                format!("the forwarder at {forwarder} relays our statuses again"),
            );
        }
    }

    /// The reply to a [`Request`], as the MDP worker sends it.
    pub(crate) fn reply(&mut self, envelope: Frames, reply: Frames) {
        if let Some(worker) = &self.worker {
            let frames = worker.reply(envelope, reply);
            self.actions.push_back(Action::Send(Role::Requests, frames));
        }
    }

    /// One monitor event of the socket of `role` (about `address`): each
    /// link change is logged once; the worker's broker gets its silence
    /// counted from when its DEALER's connection came up.
    pub(crate) fn handle_link_event(&mut self, role: Role, event: links::Event, address: &str, now: Instant) {
        let name = role.name();
        match self.link_mut(role).handle_event(event, now) {
            Some(Change::Connected) => {
                self.log(
                    Level::Info,
                    Some(address),
                    format!("{name} socket connected to {address}"),
                );
                self.link_came_up(role, now);
            }
            Some(Change::Back) => {
                self.log(
                    Level::Info,
                    Some(address),
                    format!("{name} socket connected again to {address}"),
                );
                self.link_came_up(role, now);
            }
            Some(Change::Lost) => self.log(
                Level::Warn,
                Some(address),
                format!("{name} socket lost its connection to {address}; reconnecting"),
            ),
            None => self.log(Level::Debug, None, format!("{name} socket: {event:?} {address}")),
        }
        self.note_links(now);
    }

    /// One of our own `dbmgr` questions came back on its DEALER: TCP
    /// connected it to itself (nothing listens at the broker's port); a new
    /// one.
    pub(crate) fn handle_own_question(&mut self, why: &str) {
        if self.dbmgr_open {
            self.log(Level::Debug, None, format!("{why}: reopening it"));
            self.actions.push_back(Action::Reopen(Role::Dbmgr));
        }
    }

    /// How an [`Action::Open`] went (`Err`: why it failed, said as one line).
    pub(crate) fn handle_opened<E: fmt::Display>(&mut self, role: Role, result: Result<(), E>) {
        if role != Role::Dbmgr {
            return;
        }
        match result {
            Ok(()) => {
                self.dbmgr_open = true;
                self.dbmgr = Link::new();
            }
            Err(e) => self.log(
                Level::Warn,
                None,
                format!("{e}; dbmgr is asked nothing until the broker answers again"),
            ),
        }
    }

    /// How an [`Action::Reopen`] went (`Err`: why it failed, said as one line): the
    /// new socket's link starts again; the worker's gets READY first. A
    /// failure keeps the old socket: the worker's silence deadline, or the
    /// link's reopening delay, tries again.
    pub(crate) fn handle_reopened<E: fmt::Display>(&mut self, role: Role, result: Result<(), E>, now: Instant) {
        match result {
            Ok(()) => {
                self.link_mut(role).reopened();
                self.note_links(now);
                if role == Role::Requests {
                    if let Some(worker) = &mut self.worker {
                        let ready = worker.connected(now);
                        self.actions.push_back(Action::Send(Role::Requests, ready));
                    }
                }
            }
            Err(e) if role == Role::Requests => {
                self.log(Level::Warn, None, e.to_string());
                if let Some(worker) = &mut self.worker {
                    worker.connected(now);
                }
            }
            Err(e) => {
                self.log(Level::Warn, None, format!("{e}; retrying"));
                self.link_mut(role).handle_event(links::Event::Lost, now);
            }
        }
    }

    /// A question to `dbmgr` (DEALER frames): sent on its DEALER, the one
    /// about to be opened too; with none (no broker has answered), dropped,
    /// and asked again when it times out (the question's state machine,
    /// `core::bus::dbmgr`, took it all the same, so that its deadline moves on).
    /// Whether a question handed over now is sent: the `dbmgr` DEALER is
    /// open, or opening in this turn.
    pub(crate) fn dbmgr_reachable(&self) -> bool {
        self.dbmgr_open || self.actions.contains(&Action::Open(Role::Dbmgr))
    }

    pub(crate) fn ask_dbmgr(&mut self, frames: Frames) {
        if self.dbmgr_open || self.actions.contains(&Action::Open(Role::Dbmgr)) {
            self.actions.push_back(Action::Send(Role::Dbmgr, frames));
        } else {
            self.log(
                Level::Debug,
                None,
                "dbmgr question not sent (no broker yet): asked again later".to_owned(),
            );
        }
    }

    /// The MDP worker leaves the broker (a clean stop, PROTOCOL.md §7): the
    /// DISCONNECT to send on its DEALER; `None` standalone.
    pub(crate) fn leave(&mut self, now: Instant) -> Option<Frames> {
        self.worker.as_mut().map(|worker| worker.disconnect(now))
    }

    fn open_dbmgr(&mut self) {
        if self.dbmgr_wanted && !self.dbmgr_open && !self.actions.contains(&Action::Open(Role::Dbmgr)) {
            self.actions.push_back(Action::Open(Role::Dbmgr));
        }
    }

    fn close_dbmgr(&mut self) {
        if self.dbmgr_open {
            self.dbmgr_open = false;
            self.actions.retain(|action| *action != Action::Reopen(Role::Dbmgr));
            self.actions.push_back(Action::Close(Role::Dbmgr));
            self.log(
                Level::Debug,
                None,
                "dbmgr socket closed until the broker answers again".to_owned(),
            );
        }
    }

    /// The echo learns the SUB's and the PUB's states.
    fn note_links(&mut self, now: Instant) {
        if let Some(echo) = &mut self.echo {
            echo.links(self.sub.is_up(), self.publisher.is_up(), now);
        }
    }

    /// Our statuses did not come back through the forwarder: new sockets
    /// for the SUB and the PUB (which one is broken cannot be told).
    fn echo_missed(&mut self, missed: Missed) {
        let (sub, publisher) = (self.address(Role::Sub).to_owned(), self.address(Role::Pub).to_owned());
        let timeout = self.echo.as_ref().map(Echo::timeout).unwrap_or_default();
        match missed {
            Missed::First => self.log(
                Level::Warn,
                Some(&sub),
                format!(
                    "the forwarder did not relay our status back within {:.1} s (published to {publisher}, \
                     subscribed at {sub}): opening new connections to it (again later, quietly, until it relays)",
                    timeout.as_secs_f64()
                ),
            ),
            Missed::Again => self.log(
                Level::Debug,
                Some(&sub),
                "our status did not come back through the forwarder again: new connections".to_owned(),
            ),
        }
        for role in [Role::Sub, Role::Pub] {
            if !self.actions.contains(&Action::Reopen(role)) {
                self.actions.push_back(Action::Reopen(role));
            }
        }
    }

    /// A new DEALER for the worker, once per batch of events.
    fn reconnect_worker(&mut self) {
        if !self.actions.contains(&Action::Reopen(Role::Requests)) {
            self.actions.push_back(Action::Reopen(Role::Requests));
        }
    }

    fn link_came_up(&mut self, role: Role, now: Instant) {
        match role {
            Role::Requests => {
                if let Some(worker) = &mut self.worker {
                    worker.link_up(now);
                }
            }
            Role::Pub => self.log(
                Level::Debug,
                None,
                "pub link up: the current state is owed to its subscribers".to_owned(),
            ),
            Role::Sub | Role::Dbmgr => {}
        }
    }

    fn link_mut(&mut self, role: Role) -> &mut Link {
        match role {
            Role::Sub => &mut self.sub,
            Role::Pub => &mut self.publisher,
            Role::Requests => &mut self.requests,
            Role::Dbmgr => &mut self.dbmgr,
        }
    }

    fn address(&self, role: Role) -> &str {
        let [sub, publisher, requests] = &self.addresses;
        match role {
            Role::Sub => sub,
            Role::Pub => publisher,
            Role::Requests | Role::Dbmgr => requests,
        }
    }

    fn log(&mut self, level: Level, peer: Option<&str>, line: String) {
        self.actions.push_back(Action::Log {
            level,
            peer: peer.map(str::to_owned),
            line,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::bus::mdp::{DISCONNECT, HEARTBEAT, READY, REQUEST, WORKER_HEADER};
    use std::path::Path;
    use std::time::Duration;

    const BROKER: &str = "tcp://127.0.0.1:40410";

    fn config(text: &str) -> Config {
        crate::core::config::parse(text, Path::new("/etc/domogik/manager.cfg"), "box").unwrap()
    }

    /// A session of the Domogik layout (an MDP worker), its READY taken.
    fn worker_session(now: Instant) -> Session {
        let mut session = Session::new(&config("[mq]\n"), Timing::DOMOGIK, now);
        assert_eq!(
            session.poll_action(),
            Some(Action::Send(Role::Requests, command(READY, b"manager")))
        );
        assert!(matches!(
            session.poll_action(),
            Some(Action::Log { level: Level::Info, .. })
        ));
        assert_eq!(session.poll_action(), None);
        session
    }

    fn command(command: u8, rest: &[u8]) -> Frames {
        let mut frames = vec![Vec::new(), WORKER_HEADER.to_vec(), vec![command]];
        if !rest.is_empty() {
            frames.push(rest.to_vec());
        }
        frames
    }

    /// Every action owed, the log lines apart (their text, in order).
    fn drain(session: &mut Session) -> (Vec<Action>, Vec<String>) {
        let (mut actions, mut lines) = (Vec::new(), Vec::new());
        while let Some(action) = session.poll_action() {
            match action {
                Action::Log { line, .. } => lines.push(line),
                other => actions.push(other),
            }
        }
        (actions, lines)
    }

    #[test]
    fn standalone_there_is_no_worker_nothing_to_ask_and_nothing_due() {
        let now = Instant::now();
        let mut session = Session::new(
            &config("[manager]\nrep_endpoint = @tcp://127.0.0.1:40410\n"),
            Timing::DOMOGIK,
            now,
        );
        assert!(!session.is_worker() && !session.dbmgr_wanted());
        assert_eq!(session.poll_action(), None);
        assert_eq!(session.poll_timeout(), None);
        assert_eq!(session.handle_worker_message(command(HEARTBEAT, b""), now), None);
        assert_eq!(session.leave(now), None);
    }

    #[test]
    fn the_broker_answering_opens_the_dbmgr_socket_once() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        assert!(session.is_worker() && session.dbmgr_wanted());
        assert_eq!(session.handle_worker_message(command(HEARTBEAT, b""), t0), None);
        let (actions, lines) = drain(&mut session);
        assert_eq!(actions, [Action::Open(Role::Dbmgr)]);
        assert_eq!(
            lines,
            [format!(
                "MDP worker: the broker at {BROKER} answers (service registered)"
            )]
        );
        session.handle_opened(Role::Dbmgr, Ok::<(), String>(()));
        // Heard again: registered already, the socket open.
        session.handle_worker_message(command(HEARTBEAT, b""), t0 + Duration::from_millis(900));
        assert_eq!(drain(&mut session), (vec![], vec![]));
    }

    #[test]
    fn a_dbmgr_socket_that_cannot_be_opened_is_said_and_tried_at_the_next_registration() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        session.handle_worker_message(command(HEARTBEAT, b""), t0);
        drain(&mut session);
        session.handle_opened(Role::Dbmgr, Err("cannot create the dbmgr socket: Too many open files"));
        let (_, lines) = drain(&mut session);
        assert_eq!(
            lines,
            ["cannot create the dbmgr socket: Too many open files; dbmgr is asked nothing until the broker answers again"]
        );
        // DISCONNECT, a new DEALER, the broker answers it: opened then.
        session.handle_worker_message(command(DISCONNECT, b""), t0);
        drain(&mut session);
        session.handle_reopened(Role::Requests, Ok::<(), String>(()), t0);
        drain(&mut session);
        session.handle_worker_message(command(HEARTBEAT, b""), t0);
        assert_eq!(drain(&mut session).0, [Action::Open(Role::Dbmgr)]);
    }

    #[test]
    fn a_request_is_handed_over_and_its_reply_sent_on_the_worker_socket() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        let mut request = command(REQUEST, b"client-1");
        request.extend([Vec::new(), b"clients.list.get".to_vec(), b"{}".to_vec()]);
        let Some(Request { envelope, body }) = session.handle_worker_message(request, t0) else {
            panic!("a request")
        };
        assert_eq!(body, [b"clients.list.get".to_vec(), b"{}".to_vec()]);
        drain(&mut session);
        session.reply(envelope, vec![b"clients.list.result".to_vec(), b"{}".to_vec()]);
        let mut reply = command(0x03, b"client-1");
        reply.extend([Vec::new(), b"clients.list.result".to_vec(), b"{}".to_vec()]);
        assert_eq!(drain(&mut session).0, [Action::Send(Role::Requests, reply)]);
    }

    #[test]
    fn disconnect_means_a_new_dealer_then_ready_on_it() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        session.handle_worker_message(command(HEARTBEAT, b""), t0);
        drain(&mut session);
        // Two in one batch: one new socket.
        session.handle_worker_message(command(DISCONNECT, b""), t0);
        session.handle_worker_message(command(DISCONNECT, b""), t0);
        let (actions, lines) = drain(&mut session);
        assert_eq!(actions, [Action::Reopen(Role::Requests)]);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines
            .iter()
            .all(|line| line.ends_with("sent DISCONNECT; registering again")));
        session.handle_reopened(Role::Requests, Ok::<(), String>(()), t0);
        assert_eq!(
            drain(&mut session).0,
            [Action::Send(Role::Requests, command(READY, b"manager"))]
        );
    }

    #[test]
    fn our_own_ready_coming_back_is_no_broker_but_a_new_dealer_said_once() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        session.handle_worker_message(command(READY, b"manager"), t0);
        session.handle_worker_message(command(HEARTBEAT, b""), t0);
        let (actions, lines) = drain(&mut session);
        assert_eq!(
            actions,
            [Action::Reopen(Role::Requests)],
            "no dbmgr socket: no broker answered"
        );
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("got its own READY back"), "{lines:?}");
    }

    #[test]
    fn a_silent_broker_closes_the_dbmgr_socket_and_reconnects_the_worker() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        session.handle_worker_message(command(HEARTBEAT, b""), t0);
        drain(&mut session);
        session.handle_opened(Role::Dbmgr, Ok::<(), String>(()));
        // Heartbeats while the broker is silent, then it is taken for dead.
        let mut now;
        loop {
            now = session.poll_timeout().expect("a worker always has a deadline");
            session.handle_timeout(now);
            let (actions, lines) = drain(&mut session);
            if actions.contains(&Action::Reopen(Role::Requests)) {
                assert_eq!(actions, [Action::Close(Role::Dbmgr), Action::Reopen(Role::Requests)]);
                assert!(lines
                    .iter()
                    .any(|line| line.ends_with("is silent; reconnecting and registering again")));
                break;
            }
            assert_eq!(actions, [Action::Send(Role::Requests, command(HEARTBEAT, b""))]);
        }
        assert_eq!(now, t0 + Timing::DOMOGIK.broker_silence);
        // A new DEALER that could not be made: the old one stays, and the
        // silence deadline tries again.
        session.handle_reopened(Role::Requests, Err("cannot create the rep socket: EMFILE"), now);
        let (actions, lines) = drain(&mut session);
        assert!(
            actions.is_empty() && lines == ["cannot create the rep socket: EMFILE"],
            "{actions:?} {lines:?}"
        );
        assert_eq!(session.poll_timeout(), Some(now + Timing::DOMOGIK.heartbeat * 3 / 2));
    }

    #[test]
    fn a_link_libzmq_gave_up_is_reopened_said_once_and_its_deadline_polled() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        session.handle_link_event(Role::Sub, links::Event::Up, "tcp://127.0.0.1:40412", t0);
        session.handle_link_event(Role::Sub, links::Event::Lost, "tcp://127.0.0.1:40412", t0);
        let (_, lines) = drain(&mut session);
        assert_eq!(
            lines,
            [
                "sub socket connected to tcp://127.0.0.1:40412",
                "sub socket lost its connection to tcp://127.0.0.1:40412; reconnecting"
            ]
        );
        let deadline = t0 + links::REOPEN_GRACE;
        assert!(session.poll_timeout().is_some_and(|at| at <= deadline));
        session.handle_timeout(deadline);
        let (actions, lines) = drain(&mut session);
        assert!(actions.contains(&Action::Reopen(Role::Sub)), "{actions:?}");
        assert!(lines
            .iter()
            .any(|line| line.starts_with("sub socket: libzmq gave up the connection")));
        session.handle_reopened(Role::Sub, Ok::<(), String>(()), deadline);
        // Given up again without coming up: reopened quietly (at debug).
        session.handle_link_event(Role::Sub, links::Event::Lost, "tcp://127.0.0.1:40412", deadline);
        session.handle_timeout(deadline + links::REOPEN_GRACE * 2);
        let mut again = Vec::new();
        while let Some(action) = session.poll_action() {
            again.push(action);
        }
        assert!(again.contains(&Action::Reopen(Role::Sub)));
        assert!(
            again
                .iter()
                .all(|action| !matches!(action, Action::Log { level: Level::Warn, .. })),
            "{again:?}"
        );
    }

    #[test]
    fn the_broker_gets_its_silence_from_when_the_dealer_connected() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        let late = t0 + Duration::from_secs(3);
        session.handle_link_event(Role::Requests, links::Event::Up, BROKER, late);
        drain(&mut session);
        session.handle_timeout(t0 + Timing::DOMOGIK.broker_silence);
        assert!(
            !drain(&mut session).0.contains(&Action::Reopen(Role::Requests)),
            "not dead yet"
        );
        session.handle_timeout(late + Timing::DOMOGIK.broker_silence);
        assert!(drain(&mut session).0.contains(&Action::Reopen(Role::Requests)));
    }

    #[test]
    fn our_own_dbmgr_question_coming_back_reopens_its_socket_only_while_open() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        session.handle_own_question("own question");
        assert_eq!(drain(&mut session), (vec![], vec![]));
        session.handle_worker_message(command(HEARTBEAT, b""), t0);
        drain(&mut session);
        session.handle_opened(Role::Dbmgr, Ok::<(), String>(()));
        session.handle_own_question("own question");
        assert_eq!(
            drain(&mut session),
            (
                vec![Action::Reopen(Role::Dbmgr)],
                vec!["own question: reopening it".to_owned()]
            )
        );
    }

    #[test]
    fn dbmgr_questions_go_out_once_its_socket_is_opened_even_in_the_same_turn() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        let question = vec![b"MDPC01".to_vec(), b"dbmgr".to_vec(), b"config.get".to_vec()];
        // No broker has answered: not sent, asked again when it times out.
        session.ask_dbmgr(question.clone());
        let (actions, lines) = drain(&mut session);
        assert!(actions.is_empty());
        assert_eq!(lines, ["dbmgr question not sent (no broker yet): asked again later"]);
        // The broker answers: the question follows the socket's opening.
        session.handle_worker_message(command(HEARTBEAT, b""), t0);
        session.ask_dbmgr(question.clone());
        assert_eq!(
            drain(&mut session).0,
            [Action::Open(Role::Dbmgr), Action::Send(Role::Dbmgr, question.clone())]
        );
        session.handle_opened(Role::Dbmgr, Ok::<(), String>(()));
        session.ask_dbmgr(question.clone());
        assert_eq!(drain(&mut session).0, [Action::Send(Role::Dbmgr, question)]);
    }

    #[test]
    fn leaving_is_a_disconnect_and_nothing_is_due_after_it() {
        let t0 = Instant::now();
        let mut session = worker_session(t0);
        assert_eq!(session.leave(t0), Some(command(DISCONNECT, b"")));
        assert_eq!(session.poll_timeout(), None);
    }

    /// The forwarder's echo (src/core/bus/echo.rs) as the session turns it
    /// into actions: our status not back in time reopens the SUB and the
    /// PUB, said once; back again, said.
    #[test]
    fn our_status_not_echoed_by_the_forwarder_reopens_the_sub_and_the_pub_said_once() {
        let start = Instant::now();
        let mut session = worker_session(start);
        assert!(session.watches_echo(), "both connect in the Domogik layout");
        let up = |session: &mut Session, at: Instant| {
            for role in [Role::Sub, Role::Pub] {
                session.handle_link_event(role, links::Event::Up, "tcp://127.0.0.1:40411", at);
            }
            session.handle_subscription(b"\x01plugin");
        };
        up(&mut session, start);
        drain(&mut session);
        let status = |n: u8| vec![format!("plugin.status.{n}_5.0_1").into_bytes(), b"{}".to_vec()];
        let mut now = start + Duration::from_secs(1);
        session.handle_published(&status(1), now);
        session.handle_status(&status(1));
        session.handle_timeout(now + Duration::from_secs(5));
        let (actions, _) = drain(&mut session);
        assert!(!actions.contains(&Action::Reopen(Role::Sub)), "heard back: {actions:?}");

        let mut said = Vec::new();
        for round in 2..4 {
            now += Duration::from_secs(1);
            session.handle_published(&status(round), now);
            assert_eq!(session.poll_timeout().map(|t| t <= now + Duration::from_secs(5)), Some(true));
            now += Duration::from_secs(5);
            session.handle_timeout(now);
            let (actions, lines) = drain(&mut session);
            for role in [Role::Sub, Role::Pub] {
                assert!(actions.contains(&Action::Reopen(role)), "{role:?}: {actions:?}");
                session.handle_reopened(role, Ok::<(), String>(()), now);
            }
            said.push(lines.iter().filter(|line| line.contains("did not relay our status back")).count());
            now += Duration::from_secs(1);
            up(&mut session, now);
            now += Duration::from_secs(1);
        }
        assert_eq!(said, [1, 0], "said once per outage");
        session.handle_published(&status(9), now);
        session.handle_status(&status(9));
        let (_, lines) = drain(&mut session);
        assert!(lines.iter().any(|line| line.contains("relays our statuses again")), "{lines:?}");
    }

    #[test]
    fn the_standalone_layout_watches_no_echo() {
        let session = Session::new(
            &config("[manager]\nsub_endpoint = @tcp://127.0.0.1:*\npub_endpoint = @tcp://127.0.0.1:*\n"),
            Timing::DOMOGIK,
            Instant::now(),
        );
        assert!(!session.watches_echo());
    }

}
