//! The manager as an xPL application (docs/PROTOCOL.md §11): its own
//! `hbeat.app`, which registers it with the host's xPL hub (the hub then
//! relays every message to the port it gives), on the schedule the xPL
//! specification gives applications: while no hub has echoed it (hub
//! discovery), every 3 s for the first minute, then every 30 s; once the
//! hub has relayed it back to us, every interval (5 minutes, Domogik
//! 0.5.2's). On registering it also sends one `hbeat.request`, which asks
//! every device to heartbeat at once: the devices are listed within
//! seconds of the start instead of within their own interval. An
//! `hbeat.request` from someone else is answered with our heartbeat.
//! Leaving, it sends `hbeat.end`.
//!
//! Pure: what to send is returned as a [`Message`] for the loop to encode
//! and send; the time comes from the caller.

use super::message::{Address, Kind, Message, Schema, Target};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Our heartbeat interval, in minutes, once registered (Domogik 0.5.2's
/// `STATUS_HBEAT_XPL`).
pub const INTERVAL_MINUTES: u32 = 5;
/// Hub discovery: a heartbeat this often...
const DISCOVERY_FAST: Duration = Duration::from_secs(3);
/// ...for this long after the start, then...
const DISCOVERY_FAST_FOR: Duration = Duration::from_secs(60);
/// ...this often until a hub answers.
const DISCOVERY_SLOW: Duration = Duration::from_secs(30);

/// What [`OwnHeartbeat`] knows of the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hub {
    /// No echo of our heartbeat yet.
    Searching,
    /// The hub relayed our heartbeat back: we are registered.
    Found,
}

/// Our heartbeat schedule.
#[derive(Debug, Clone)]
pub struct OwnHeartbeat {
    source: Address,
    ip: Ipv4Addr,
    port: u16,
    /// `INTERVAL_MINUTES` minutes (shorter in tests).
    interval: Duration,
    started: Instant,
    next: Instant,
    hub: Hub,
    /// An `hbeat.request` is owed (registered just now).
    request_owed: bool,
    /// No hub after this long (an xPL minute) is worth a warning, once: a
    /// booting host may start its hub a little after the manager.
    no_hub_after: Duration,
    no_hub_said: bool,
    /// When our last heartbeat went out: an `hbeat.request` is answered
    /// at most once per [`DISCOVERY_FAST`], so a flood of them makes no
    /// flood of ours.
    last_sent: Option<Instant>,
}

impl OwnHeartbeat {
    /// For `source` (ours: `domogik-manager.<host>`), listening on
    /// `ip:port`; `minute` is 60 s but in tests. The first heartbeat is
    /// due at once.
    pub fn new(source: Address, ip: Ipv4Addr, port: u16, minute: Duration, now: Instant) -> OwnHeartbeat {
        OwnHeartbeat {
            source,
            ip,
            port,
            interval: minute * INTERVAL_MINUTES,
            started: now,
            next: now,
            hub: Hub::Searching,
            request_owed: false,
            no_hub_after: minute,
            no_hub_said: false,
            last_sent: None,
        }
    }

    pub fn source(&self) -> &Address {
        &self.source
    }

    pub fn hub(&self) -> Hub {
        self.hub
    }

    /// When something is next due: a message, or the no-hub warning.
    pub fn poll_timeout(&self) -> Instant {
        if self.request_owed {
            return self.started; // in the past: due now
        }
        match self.hub == Hub::Searching && !self.no_hub_said {
            true => self.next.min(self.started + self.no_hub_after),
            false => self.next,
        }
    }

    /// How long no hub has answered, once, when that is a minute or more:
    /// worth a warning. `None` before, after, and once a hub has answered.
    pub fn poll_no_hub(&mut self, now: Instant) -> Option<Duration> {
        let searching = self.searching_for(now)?;
        if self.no_hub_said || searching < self.no_hub_after {
            return None;
        }
        self.no_hub_said = true;
        Some(searching)
    }

    /// A message of ours came back through the hub. Returns true the first
    /// time, when we are now registered.
    pub fn handle_echo(&mut self, message: &Message, now: Instant) -> bool {
        if message.source != self.source || message.schema.as_str() != "hbeat.app" || self.hub == Hub::Found {
            return false;
        }
        self.hub = Hub::Found;
        self.request_owed = true;
        self.next = now + self.interval;
        true
    }

    /// How long we have been looking for the hub, while no hub has
    /// answered; `None` once one has.
    pub fn searching_for(&self, now: Instant) -> Option<Duration> {
        (self.hub == Hub::Searching).then(|| now.saturating_duration_since(self.started))
    }

    /// Someone asked every application to heartbeat (`hbeat.request`,
    /// to everyone or to us): ours is due now, or 3 s after the last one
    /// if that was sooner. Our own request, relayed back by the hub, is
    /// not one.
    pub fn handle_request(&mut self, message: &Message, now: Instant) {
        let for_us = match &message.target {
            Target::Everyone => true,
            Target::One(address) => *address == self.source,
        };
        let from_us = message.source == self.source;
        if message.schema.as_str() == "hbeat.request" && message.kind == Kind::Command && for_us && !from_us {
            let earliest = self.last_sent.map_or(now, |sent| now.max(sent + DISCOVERY_FAST));
            self.next = self.next.min(earliest);
        }
    }

    /// What to send now, if anything (call until `None`).
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Message> {
        if self.request_owed {
            self.request_owed = false;
            let mut request = self.message(Kind::Command, "hbeat.request");
            let _ = request.push("command", "request");
            return Some(request);
        }
        if now < self.next {
            return None;
        }
        self.last_sent = Some(now);
        self.next = now
            + match self.hub {
                Hub::Found => self.interval,
                Hub::Searching if now.saturating_duration_since(self.started) < DISCOVERY_FAST_FOR => DISCOVERY_FAST,
                Hub::Searching => DISCOVERY_SLOW,
            };
        Some(self.heartbeat("hbeat.app"))
    }

    /// Our `hbeat.end`, to send when the manager leaves.
    pub fn end(&self) -> Message {
        self.heartbeat("hbeat.end")
    }

    fn heartbeat(&self, schema: &'static str) -> Message {
        let mut message = self.message(Kind::Status, schema);
        let minutes = INTERVAL_MINUTES.to_string();
        for (name, value) in [
            ("interval", minutes.as_str()),
            ("port", &self.port.to_string()),
            ("remote-ip", &self.ip.to_string()),
        ] {
            // Cannot fail: short names, digits and dots.
            let _ = message.push(name, value);
        }
        message
    }

    fn message(&self, kind: Kind, schema: &'static str) -> Message {
        Message::new(kind, self.source.clone(), Target::Everyone, Schema::from_static(schema))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::xpl::message::{decode, encode};

    const MINUTE: Duration = Duration::from_secs(60);

    fn own(now: Instant) -> OwnHeartbeat {
        let source = Address::parse("domogik-manager.box").unwrap();
        OwnHeartbeat::new(source, Ipv4Addr::LOCALHOST, 41234, MINUTE, now)
    }

    #[test]
    fn the_heartbeat_is_the_specifications_hbeat_app() {
        let t0 = Instant::now();
        let mut own = own(t0);
        let message = own.poll_transmit(t0).unwrap();
        assert_eq!(
            String::from_utf8(encode(&message).unwrap()).unwrap(),
            "xpl-stat\n{\nhop=1\nsource=domogik-manager.box\ntarget=*\n}\nhbeat.app\n{\ninterval=5\nport=41234\nremote-ip=127.0.0.1\n}\n"
        );
        let end = encode(&own.end()).unwrap();
        assert!(String::from_utf8(end)
            .unwrap()
            .contains("\n}\nhbeat.end\n{\ninterval=5\nport=41234\n"));
    }

    #[test]
    fn discovery_every_3_s_for_a_minute_then_30_s_then_the_interval_once_echoed() {
        let t0 = Instant::now();
        let mut own = own(t0);
        assert_eq!(own.poll_timeout(), t0);
        assert!(own.poll_transmit(t0).is_some());
        assert!(own.poll_transmit(t0).is_none(), "once per deadline");
        assert_eq!(own.poll_timeout(), t0 + Duration::from_secs(3));
        assert!(own.poll_transmit(t0 + Duration::from_secs(2)).is_none());
        assert_eq!(
            own.searching_for(t0 + Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
        let late = t0 + Duration::from_secs(61);
        assert!(own.poll_transmit(late).is_some());
        assert_eq!(own.poll_timeout(), t0 + MINUTE, "the no-hub warning is due");
        assert!(own.poll_no_hub(late).is_some());
        assert_eq!(own.poll_timeout(), late + Duration::from_secs(30));
        // The hub relays our heartbeat back: registered, one hbeat.request
        // at once, then the 5 min interval.
        let echo = own.heartbeat("hbeat.app");
        let found = late + Duration::from_secs(1);
        assert!(own.handle_echo(&echo, found));
        assert_eq!(own.hub(), Hub::Found);
        assert_eq!(own.searching_for(found), None);
        assert!(!own.handle_echo(&echo, found), "registered once");
        assert!(own.poll_timeout() <= found);
        let request = own.poll_transmit(found).unwrap();
        assert_eq!(
            (request.kind, request.schema.as_str()),
            (Kind::Command, "hbeat.request")
        );
        assert_eq!(request.target, Target::Everyone);
        assert!(own.poll_transmit(found).is_none());
        assert_eq!(own.poll_timeout(), found + MINUTE * 5);
        assert!(own.poll_transmit(found + MINUTE * 5).is_some());
        assert_eq!(own.poll_timeout(), found + MINUTE * 10);
    }

    #[test]
    fn no_hub_after_a_minute_is_said_once_and_never_once_a_hub_answered() {
        let t0 = Instant::now();
        let mut own = own(t0);
        own.poll_transmit(t0);
        assert_eq!(own.poll_no_hub(t0 + Duration::from_secs(59)), None);
        assert!(own.poll_timeout() <= t0 + MINUTE);
        assert_eq!(
            own.poll_no_hub(t0 + Duration::from_secs(61)),
            Some(Duration::from_secs(61))
        );
        assert_eq!(own.poll_no_hub(t0 + Duration::from_secs(3600)), None, "once");
        let mut found = super::OwnHeartbeat::new(own.source.clone(), Ipv4Addr::LOCALHOST, 1, MINUTE, t0);
        found.handle_echo(&found.heartbeat("hbeat.app"), t0 + Duration::from_secs(1));
        assert_eq!(found.poll_no_hub(t0 + Duration::from_secs(3600)), None);
    }

    #[test]
    fn someone_elses_heartbeat_is_no_echo_and_a_request_for_us_is_answered_at_once() {
        let t0 = Instant::now();
        let mut own = own(t0);
        own.poll_transmit(t0);
        let other = decode(b"xpl-stat\n{\nhop=1\nsource=acme-a.b\ntarget=*\n}\nhbeat.app\n{\ninterval=5\n}\n").unwrap();
        assert!(!own.handle_echo(&other, t0));
        assert_eq!(own.hub(), Hub::Searching);
        // Registered: the next heartbeat is 5 min away.
        let echo = own.heartbeat("hbeat.app");
        own.handle_echo(&echo, t0);
        own.poll_transmit(t0); // the hbeat.request owed once registered
        let at = t0 + Duration::from_secs(10);
        assert!(own.poll_transmit(at).is_none());
        for (text, answered) in [
            (
                "xpl-cmnd\n{\nhop=1\nsource=acme-a.b\ntarget=*\n}\nhbeat.request\n{\ncommand=request\n}\n",
                true,
            ),
            (
                "xpl-cmnd\n{\nhop=1\nsource=acme-a.b\ntarget=domogik-manager.box\n}\nhbeat.request\n{\n}\n",
                true,
            ),
            (
                "xpl-cmnd\n{\nhop=1\nsource=acme-a.b\ntarget=acme-x.y\n}\nhbeat.request\n{\n}\n",
                false,
            ),
            (
                "xpl-stat\n{\nhop=1\nsource=acme-a.b\ntarget=*\n}\nhbeat.request\n{\n}\n",
                false,
            ),
            // Our own, relayed back by the hub.
            (
                "xpl-cmnd\n{\nhop=1\nsource=domogik-manager.box\ntarget=*\n}\nhbeat.request\n{\n}\n",
                false,
            ),
        ] {
            let mut own = own.clone();
            own.handle_request(&decode(text.as_bytes()).unwrap(), at);
            assert_eq!(own.poll_transmit(at).is_some(), answered, "{text}");
        }
        // A flood of requests: one heartbeat per 3 s.
        let request = decode(b"xpl-cmnd\n{\nhop=1\nsource=acme-a.b\ntarget=*\n}\nhbeat.request\n{\n}\n").unwrap();
        own.handle_request(&request, at);
        assert!(own.poll_transmit(at).is_some());
        let soon = at + Duration::from_secs(1);
        own.handle_request(&request, soon);
        assert!(own.poll_transmit(soon).is_none());
        assert_eq!(own.poll_timeout(), at + Duration::from_secs(3));
    }
}
