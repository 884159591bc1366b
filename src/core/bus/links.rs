//! The state of one connection the manager opened (to the broker or the
//! forwarder), from libzmq's socket monitor events, without I/O: events
//! and the clock in; log lines and "reopen the socket" out.
//!
//! Why: libzmq reconnects by itself after a network error, but ends for
//! good a connection it initiated after a protocol error (a message over
//! `ZMQ_MAXMSGSIZE`, a bad handshake): it reports DISCONNECTED and then
//! nothing. A link lost and not retrying within [`REOPEN_GRACE`] is
//! reopened by the daemon (a new socket to the same endpoint).

use std::time::{Duration, Instant};
use zmq::SocketEvent;

/// How long a lost link may stay without libzmq's retry event before we
/// take it as given up and reopen it. libzmq's retry comes within
/// milliseconds of the loss.
pub(crate) const REOPEN_GRACE: Duration = Duration::from_millis(500);

/// A link given up again and again without ever coming up (a peer that is
/// not what the config says, whose handshake fails each time) is reopened
/// after twice as long each time, up to this.
pub(crate) const MAX_REOPEN_DELAY: Duration = Duration::from_secs(30);

/// What a given-up link asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GiveUp {
    /// Reopen it, and say so: the first give-up since the link was up (or
    /// since start).
    First,
    /// Reopen it quietly: given up again without coming up in between;
    /// the next reopening waits twice as long.
    Again,
}

/// The monitor events the daemon asks for (`zmq_socket_monitor`'s mask).
pub(crate) const EVENTS: i32 = SocketEvent::CONNECT_DELAYED as i32
    | SocketEvent::CONNECT_RETRIED as i32
    | SocketEvent::DISCONNECTED as i32
    | SocketEvent::HANDSHAKE_SUCCEEDED as i32;

/// One monitor event, as far as links care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// The ZMTP handshake succeeded: messages flow.
    Up,
    /// The TCP connection (or the handshake) ended.
    Lost,
    /// libzmq will try again (or is trying): not given up.
    Retrying,
    /// An event we do not follow.
    Other,
}

/// Decodes a monitor message: `[event (u16 LE) + value (u32 LE), endpoint]`.
pub(crate) fn decode_event(frames: &[Vec<u8>]) -> Option<(Event, String)> {
    let [head, endpoint] = frames else {
        return None;
    };
    let code = u16::from_le_bytes([*head.first()?, *head.get(1)?]);
    // Not SocketEvent::from_raw: it panics on a code it does not know.
    let event = if code == SocketEvent::HANDSHAKE_SUCCEEDED.to_raw() {
        Event::Up
    } else if code == SocketEvent::DISCONNECTED.to_raw() {
        Event::Lost
    } else if code == SocketEvent::CONNECT_DELAYED.to_raw() || code == SocketEvent::CONNECT_RETRIED.to_raw() {
        Event::Retrying
    } else {
        Event::Other
    };
    Some((event, String::from_utf8_lossy(endpoint).into_owned()))
}

/// What to log about a link's change (each change once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Up for the first time.
    Connected,
    /// Up again after a loss.
    Back,
    Lost,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Never up yet (the peer may not be there yet: libzmq retries).
    Connecting,
    Up,
    /// Lost at this time, no retry seen yet.
    Lost(Instant),
    /// Lost, and libzmq said it retries.
    Retrying,
}

/// One connection's state.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    state: State,
    ever_up: bool,
    /// Give-ups since the link was last up.
    give_ups: u32,
}

impl Default for Link {
    fn default() -> Link {
        Link::new()
    }
}

impl Link {
    pub(crate) fn new() -> Link {
        Link {
            state: State::Connecting,
            ever_up: false,
            give_ups: 0,
        }
    }

    /// Whether messages flow (the forwarder's echo asks, src/core/bus/echo.rs).
    pub(crate) fn is_up(&self) -> bool {
        self.state == State::Up
    }

    /// Applies one monitor event; the change to log, if any.
    pub(crate) fn handle_event(&mut self, event: Event, now: Instant) -> Option<Change> {
        match (event, self.state) {
            (Event::Up, State::Up) => None,
            (Event::Up, _) => {
                self.state = State::Up;
                self.give_ups = 0;
                let change = if self.ever_up { Change::Back } else { Change::Connected };
                self.ever_up = true;
                Some(change)
            }
            (Event::Lost, State::Up) => {
                self.state = State::Lost(now);
                Some(Change::Lost)
            }
            // A handshake that failed before we were up: libzmq's retry
            // event follows unless it gave up; no new log line.
            (Event::Lost, State::Connecting | State::Retrying) => {
                self.state = State::Lost(now);
                None
            }
            (Event::Lost, State::Lost(_)) => None,
            (Event::Retrying, State::Lost(_)) => {
                self.state = State::Retrying;
                None
            }
            (Event::Retrying | Event::Other, _) => None,
        }
    }

    /// When the link must be reopened unless libzmq retries first.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Lost(since) => Some(since + self.reopen_delay()),
            _ => None,
        }
    }

    /// [`REOPEN_GRACE`], doubled for each give-up since the link was last
    /// up, at most [`MAX_REOPEN_DELAY`].
    fn reopen_delay(&self) -> Duration {
        REOPEN_GRACE
            .saturating_mul(1 << self.give_ups.min(10))
            .min(MAX_REOPEN_DELAY)
    }

    /// True when the link is lost for good at `now`: reopen it (the state
    /// is then that of a new connection, its first Up logged as "back").
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<GiveUp> {
        match self.state {
            State::Lost(since) if now >= since + self.reopen_delay() => {
                self.state = State::Connecting;
                self.give_ups = self.give_ups.saturating_add(1);
                Some(if self.give_ups == 1 {
                    GiveUp::First
                } else {
                    GiveUp::Again
                })
            }
            _ => None,
        }
    }

    /// A new socket replaced the old one (the daemon reopened it on its
    /// own, e.g. the MDP worker after a silent broker).
    pub(crate) fn reopened(&mut self) {
        self.state = State::Connecting;
    }
}

/// True when an XPUB subscription message (`\x01` then the prefix) is for
/// our publications: the subscriber receives `clients.list` or
/// `clients.detail` with it.
pub(crate) fn subscribes_to_ours(message: &[u8], categories: &[&str]) -> bool {
    let Some((&1, prefix)) = message.split_first() else {
        return false;
    };
    // Either prefix of the other, `category.` against the subscription
    // (one of up to 64 a turn: no allocation).
    categories.iter().any(|category| {
        let category = category.as_bytes();
        if prefix.len() <= category.len() {
            category.starts_with(prefix)
        } else {
            prefix.starts_with(category) && prefix.get(category.len()) == Some(&b'.')
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor_message(event: SocketEvent, endpoint: &str) -> Vec<Vec<u8>> {
        let mut head = event.to_raw().to_le_bytes().to_vec();
        head.extend(7u32.to_le_bytes());
        vec![head, endpoint.as_bytes().to_vec()]
    }

    #[test]
    fn monitor_messages_decode() {
        let decoded = decode_event(&monitor_message(SocketEvent::DISCONNECTED, "tcp://1.2.3.4:5"));
        assert_eq!(decoded, Some((Event::Lost, "tcp://1.2.3.4:5".into())));
        assert_eq!(
            decode_event(&monitor_message(SocketEvent::HANDSHAKE_SUCCEEDED, "x"))
                .unwrap()
                .0,
            Event::Up
        );
        assert_eq!(
            decode_event(&monitor_message(SocketEvent::CONNECT_RETRIED, "x"))
                .unwrap()
                .0,
            Event::Retrying
        );
        assert_eq!(decode_event(&[vec![1]]), None);
        assert_eq!(decode_event(&[vec![1], vec![]]), None);
    }

    #[test]
    fn each_change_is_reported_once() {
        let now = Instant::now();
        let mut link = Link::new();
        assert_eq!(link.handle_event(Event::Retrying, now), None, "peer not there yet");
        assert_eq!(link.handle_event(Event::Up, now), Some(Change::Connected));
        assert_eq!(link.handle_event(Event::Up, now), None);
        assert_eq!(link.handle_event(Event::Lost, now), Some(Change::Lost));
        assert_eq!(link.handle_event(Event::Lost, now), None);
        assert_eq!(link.handle_event(Event::Retrying, now), None);
        assert_eq!(link.poll_timeout(), None, "libzmq retries: nothing to do");
        assert_eq!(link.handle_event(Event::Up, now), Some(Change::Back));
        assert!(link.is_up());
    }

    #[test]
    fn a_link_lost_without_a_retry_is_given_up_after_the_grace() {
        let now = Instant::now();
        let mut link = Link::new();
        link.handle_event(Event::Up, now);
        link.handle_event(Event::Lost, now);
        assert_eq!(link.poll_timeout(), Some(now + REOPEN_GRACE));
        assert_eq!(link.handle_timeout(now + REOPEN_GRACE - Duration::from_millis(1)), None);
        assert_eq!(link.handle_timeout(now + REOPEN_GRACE), Some(GiveUp::First));
        assert_eq!(link.poll_timeout(), None);
        assert_eq!(link.handle_timeout(now + REOPEN_GRACE * 2), None, "once");
        assert_eq!(link.handle_event(Event::Up, now), Some(Change::Back));
    }

    #[test]
    fn a_link_given_up_again_and_again_waits_longer_each_time_and_is_said_once() {
        let start = Instant::now();
        let mut link = Link::new();
        let mut now = start;
        let mut delays = Vec::new();
        let mut said = 0;
        // A handshake that fails each time (a peer of another socket type).
        for _ in 0..9 {
            link.handle_event(Event::Lost, now);
            let deadline = link.poll_timeout().unwrap();
            delays.push(deadline - now);
            now = deadline;
            if link.handle_timeout(now) == Some(GiveUp::First) {
                said += 1;
            }
        }
        let ms = |n: u64| Duration::from_millis(n);
        assert_eq!(
            delays,
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(16000),
                ms(30000),
                ms(30000),
                ms(30000)
            ]
        );
        assert_eq!(said, 1);
        // Up at last: the next loss is said again, after the short grace.
        link.handle_event(Event::Up, now);
        link.handle_event(Event::Lost, now);
        assert_eq!(link.poll_timeout(), Some(now + REOPEN_GRACE));
        assert_eq!(link.handle_timeout(now + REOPEN_GRACE), Some(GiveUp::First));
    }

    #[test]
    fn subscriptions_to_our_categories_are_recognised() {
        let ours = ["clients.list", "clients.detail"];
        for yes in [
            &b"\x01"[..],
            b"\x01clients",
            b"\x01clients.list",
            b"\x01clients.detail.1_2",
        ] {
            assert!(subscribes_to_ours(yes, &ours), "{yes:?}");
        }
        for no in [
            &b"\x00clients"[..],
            b"",
            b"\x01plugin",
            b"\x01clients.listing",
            b"\x01clients.x",
        ] {
            assert!(!subscribes_to_ours(no, &ours), "{no:?}");
        }
    }
}
