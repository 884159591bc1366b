//! Whether the forwarder relays, from the protocol above ZMTP: every
//! `plugin.status` the manager publishes through the forwarder (its own
//! every status interval, a client's `dead`) must come back on its SUB,
//! which subscribes to `plugin`. Pure: links, subscriptions, the messages
//! sent and received and the clock in; "reopen both links" out.
//!
//! Why not ZMTP heartbeats (`ZMQ_HEARTBEAT_IVL`): libzmq (4.2 to 4.3.5,
//! `stream_engine_base_t::mechanism_ready`) sends its PING command to any
//! peer once the handshake is done, whatever the peer's minor version in
//! its greeting (`zmtp_engine.cpp` reads it only to choose how to send
//! subscriptions). A ZMTP 3.0 peer (libzmq 4.0 and 4.1, pyzmq up to 16:
//! what Domogik 0.4/0.5 hosts run) knows no PING (RFC 37/ZMTP 3.1 added
//! PING and PONG to RFC 23/ZMTP 3.0) and delivers it to its application as
//! a data frame (`stream_engine_t::decode_and_push` in 4.1 pushes every
//! frame after the handshake to the session): Domogik's broker dies of it
//! (`IndexError` in `on_message`), its forwarder relays it to every
//! publisher or subscriber, and no PONG ever comes back, so our side of the
//! link timed out and reconnected every few seconds. libzmq gives the
//! application no way to learn the peer's version before it sends. So no
//! connecting socket asks libzmq for ZMTP heartbeats: a broker gone is
//! noticed by the MDP heartbeat (`bus::mdp`), and a forwarder gone without
//! a FIN, or alive but no longer relaying, by this echo. (TCP keepalive
//! would never reach a peer's ZMTP layer, but the libzmq the zmq crate
//! builds ignores `ZMQ_TCP_KEEPALIVE`: zeromq-src compiles it without.)
//!
//! A message is awaited only when it can come back: both links up for
//! `settle` (our SUB's subscription has reached the forwarder), and a
//! subscription covering `plugin.status` relayed to our XPUB since its
//! link came up. Not heard back within `timeout`: the session
//! (`super::session`) asks for new sockets for both links (which one is
//! broken cannot be told), says so once, and quietly again until an echo
//! comes back.

use std::time::{Duration, Instant};

/// The category our SUB receives and the echo is looked for in.
pub(crate) const CATEGORY: &[u8] = b"plugin.status";

/// At most this many messages awaited at once (an echo of any of them
/// proves both links); older ones are forgotten, not their time.
const MAX_AWAITED: usize = 8;

/// What a missed echo asks for: new SUB and PUB sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// The first since an echo was last heard (or since start): say it.
    First,
    /// Missed again without an echo in between: quietly.
    Again,
}

/// The echo's state.
#[derive(Debug, Clone)]
pub(crate) struct Echo {
    timeout: Duration,
    settle: Duration,
    sub_up_since: Option<Instant>,
    pub_up_since: Option<Instant>,
    /// A subscription covering [`CATEGORY`] came to the XPUB since its
    /// link came up (and no unsubscription after it).
    subscribed: bool,
    /// Messages published and not heard back, oldest first.
    awaited: Vec<Vec<Vec<u8>>>,
    /// When the oldest unanswered one was sent.
    since: Option<Instant>,
    /// Echoes missed since one was last heard.
    missed: u32,
}

impl Echo {
    /// From the heartbeat interval (Domogik's 1 s, or the test knob's): an
    /// echo is awaited for 5 intervals, once both links have been up for
    /// one.
    pub(crate) fn new(heartbeat: Duration) -> Echo {
        Echo {
            timeout: heartbeat * 5,
            settle: heartbeat,
            sub_up_since: None,
            pub_up_since: None,
            subscribed: false,
            awaited: Vec::new(),
            since: None,
            missed: 0,
        }
    }

    /// How long an echo is awaited.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The links' states at `now` (after the monitors were read, or a
    /// socket reopened). A link down forgets what was awaited; the PUB's
    /// subscriptions come again when it is back.
    pub(crate) fn links(&mut self, sub_up: bool, pub_up: bool, now: Instant) {
        if !pub_up {
            self.subscribed = false;
        }
        for (up, since) in [(sub_up, &mut self.sub_up_since), (pub_up, &mut self.pub_up_since)] {
            if !up {
                *since = None;
            } else if since.is_none() {
                *since = Some(now);
            }
        }
        if !(sub_up && pub_up) {
            self.awaited.clear();
            self.since = None;
        }
    }

    /// A (un)subscription message received on the XPUB: `\x01` or `\x00`,
    /// then the prefix.
    pub(crate) fn subscription(&mut self, message: &[u8]) {
        match message.split_first() {
            Some((&flag, prefix)) if CATEGORY.starts_with(prefix) && flag <= 1 => self.subscribed = flag == 1,
            _ => {}
        }
    }

    /// A message published on the PUB at `now`: awaited back if it can come.
    pub(crate) fn sent(&mut self, frames: &[Vec<u8>], now: Instant) {
        let settled = |since: Option<Instant>| since.is_some_and(|since| now >= since + self.settle);
        let in_category = frames.first().is_some_and(|msg_id| msg_id.starts_with(CATEGORY));
        if !(in_category && self.subscribed && settled(self.sub_up_since) && settled(self.pub_up_since)) {
            return;
        }
        if self.awaited.len() == MAX_AWAITED {
            self.awaited.remove(0);
        }
        self.awaited.push(frames.to_vec());
        self.since.get_or_insert(now);
    }

    /// A message received on the SUB. True when it is one we published and
    /// awaited (the links work), and the first after missed echoes (say
    /// that the forwarder relays again).
    pub(crate) fn received(&mut self, frames: &[Vec<u8>]) -> bool {
        if self.awaited.is_empty() || !self.awaited.iter().any(|awaited| awaited == frames) {
            return false;
        }
        self.awaited.clear();
        self.since = None;
        let back = self.missed > 0;
        self.missed = 0;
        back
    }

    /// When [`Echo::handle_timeout`] has something to do.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.since.map(|since| since + self.timeout)
    }

    /// An echo missed at `now`: reopen both links (what was awaited is
    /// forgotten; the links' new sockets start afresh).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Missed> {
        if self.poll_timeout().is_none_or(|deadline| now < deadline) {
            return None;
        }
        self.awaited.clear();
        self.since = None;
        self.missed = self.missed.saturating_add(1);
        Some(if self.missed == 1 { Missed::First } else { Missed::Again })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEARTBEAT: Duration = Duration::from_secs(1);

    fn status(n: u8) -> Vec<Vec<u8>> {
        vec![format!("plugin.status.17000000{n}_5.0_1").into_bytes(), b"{}".to_vec()]
    }

    /// Both links up at `start`, the forwarder's subscription relayed.
    fn settled(start: Instant) -> Echo {
        let mut echo = Echo::new(HEARTBEAT);
        echo.links(true, true, start);
        echo.subscription(b"\x01plugin");
        echo
    }

    #[test]
    fn an_echo_heard_back_in_time_asks_nothing() {
        let start = Instant::now();
        let mut echo = settled(start);
        let at = start + HEARTBEAT;
        echo.sent(&status(1), at);
        assert_eq!(echo.poll_timeout(), Some(at + HEARTBEAT * 5));
        assert!(!echo.received(&status(2)), "not ours");
        assert!(!echo.received(&status(1)), "ours, but nothing was missed before");
        assert_eq!(echo.poll_timeout(), None);
        assert_eq!(echo.handle_timeout(at + HEARTBEAT * 60), None);
    }

    #[test]
    fn a_missed_echo_reopens_said_once_until_one_comes_back() {
        let start = Instant::now();
        let mut echo = settled(start);
        let mut now = start + HEARTBEAT;
        let mut said = Vec::new();
        for round in 0..3 {
            echo.sent(&status(round), now);
            let deadline = echo.poll_timeout().unwrap();
            assert_eq!(echo.handle_timeout(deadline - Duration::from_millis(1)), None);
            said.push(echo.handle_timeout(deadline).unwrap());
            assert_eq!(echo.poll_timeout(), None, "forgotten once missed");
            // The daemon reopened both: down, then up again, subscribed again.
            echo.links(false, false, deadline);
            now = deadline + HEARTBEAT;
            echo.links(true, true, now);
            echo.subscription(b"\x01plugin");
            now += HEARTBEAT;
        }
        assert_eq!(said, [Missed::First, Missed::Again, Missed::Again]);
        echo.sent(&status(9), now);
        assert!(echo.received(&status(9)), "back: say it");
        echo.sent(&status(10), now + HEARTBEAT);
        assert_eq!(
            echo.handle_timeout(now + HEARTBEAT * 6),
            Some(Missed::First),
            "a new outage is said again"
        );
    }

    #[test]
    fn nothing_is_awaited_that_cannot_come_back() {
        let start = Instant::now();
        // No subscription relayed to the XPUB yet (the forwarder has no
        // subscriber, ours included): the XPUB drops what it publishes.
        let mut echo = Echo::new(HEARTBEAT);
        echo.links(true, true, start);
        echo.sent(&status(1), start + HEARTBEAT * 2);
        assert_eq!(echo.poll_timeout(), None, "no subscription");
        // Subscribed, but the links just came up: our SUB's subscription
        // may not have reached the forwarder.
        echo.subscription(b"\x01plugin.status");
        echo.links(true, true, start + HEARTBEAT * 2);
        echo.links(false, true, start + HEARTBEAT * 2);
        echo.links(true, true, start + HEARTBEAT * 3);
        echo.sent(&status(2), start + HEARTBEAT * 3);
        assert_eq!(echo.poll_timeout(), None, "the SUB came up less than a heartbeat ago");
        // Not a status: views go to user interfaces, not to our SUB.
        echo.sent(
            &[b"clients.list.1_2.0_1".to_vec(), b"{}".to_vec()],
            start + HEARTBEAT * 5,
        );
        assert_eq!(echo.poll_timeout(), None, "a view");
        // Unsubscribed (the last subscriber left the forwarder).
        echo.subscription(b"\x00plugin");
        echo.sent(&status(3), start + HEARTBEAT * 5);
        assert_eq!(echo.poll_timeout(), None, "unsubscribed");
        // A subscription to something else does not count.
        echo.subscription(b"\x01clients");
        echo.subscription(b"\x01plugin.status.x");
        echo.sent(&status(4), start + HEARTBEAT * 5);
        assert_eq!(echo.poll_timeout(), None, "another category");
        // Everything (an empty prefix) does.
        echo.subscription(b"\x01");
        echo.sent(&status(5), start + HEARTBEAT * 5);
        assert!(echo.poll_timeout().is_some());
    }

    #[test]
    fn a_link_lost_forgets_what_was_awaited_and_the_subscriptions_of_the_pub() {
        let start = Instant::now();
        let mut echo = settled(start);
        echo.sent(&status(1), start + HEARTBEAT);
        echo.links(true, false, start + HEARTBEAT * 2);
        assert_eq!(echo.poll_timeout(), None);
        assert_eq!(echo.handle_timeout(start + HEARTBEAT * 60), None);
        echo.links(true, true, start + HEARTBEAT * 3);
        echo.sent(&status(2), start + HEARTBEAT * 5);
        assert_eq!(
            echo.poll_timeout(),
            None,
            "the PUB's subscriptions come again with its link"
        );
        echo.subscription(b"\x01plugin");
        echo.sent(&status(3), start + HEARTBEAT * 5);
        assert!(echo.poll_timeout().is_some());
    }

    #[test]
    fn any_awaited_message_proves_the_links_and_the_oldest_one_sets_the_deadline() {
        let start = Instant::now();
        let mut echo = settled(start);
        for n in 0..20 {
            echo.sent(&status(n), start + HEARTBEAT + Duration::from_millis(u64::from(n)));
        }
        assert_eq!(echo.poll_timeout(), Some(start + HEARTBEAT * 6), "the first one's");
        assert!(!echo.received(&status(0)), "forgotten: only the last 8 are kept");
        echo.received(&status(19));
        assert_eq!(echo.poll_timeout(), None);
    }
}
