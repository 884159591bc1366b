//! The xPL devices of the house as clients (docs/PROTOCOL.md §11): one per
//! xPL source heard heartbeating that is not Domogik's own (vendor
//! `domogik`), `alive` at each heartbeat, `dead` after 2 × its own
//! heartbeat interval + 1 minute of silence, `stopped` at its `hbeat.end`.
//! At most a configured number are kept: past it, the one silent for the
//! longest is forgotten to make room. A source whose vendor is a Domogik
//! client type (`plugin`, `core`, `brain`) is no device either: it reads
//! as a client id (docs/PROTOCOL.md §11).
//!
//! Pure state: the time comes from the caller ([`Now`]); the length of a
//! minute too, so that tests need not wait minutes.

use super::message::{Address, Message};
use crate::core::liveness::Now;
use crate::core::status::Status;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Devices kept at most, unless the config says otherwise.
pub const DEFAULT_MAX_DEVICES: usize = 256;
/// The vendor id of Domogik's own components: those are not xPL clients
/// (Domogik 0.5.2's `DMG_VENDOR_ID`).
pub const DOMOGIK_VENDOR: &str = "domogik";
/// The heartbeat interval, in minutes, assumed when a heartbeat gives none
/// that can be read (Domogik 0.5.2's `STATUS_HBEAT_XPL`, which it assumed
/// for every device).
pub const DEFAULT_INTERVAL_MINUTES: u64 = 5;
/// A heartbeat's `interval` is taken within these minutes: a device that
/// announces 0 or a week is still checked within the hour.
pub const INTERVAL_MINUTES: std::ops::RangeInclusive<u64> = 1..=60;

/// One xPL device.
#[derive(Debug, Clone)]
pub struct Device {
    source: Address,
    status: Status,
    /// Its last heartbeat's interval.
    interval: Duration,
    /// When it was last heard (heartbeat or `hbeat.end`), monotonic.
    heard_at: Instant,
    /// The same moment in Unix seconds, for the views' `last_seen`.
    last_seen: f64,
}

impl Device {
    pub fn source(&self) -> &Address {
        &self.source
    }

    /// `alive`, `dead` or `stopped`.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Unix seconds of its last heartbeat (or `hbeat.end`).
    pub fn last_seen(&self) -> f64 {
        self.last_seen
    }

    /// Its last heartbeat's interval (within [`INTERVAL_MINUTES`]).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// When it becomes dead if it stays silent; `None` unless alive.
    fn dead_at(&self, minute: Duration) -> Option<Instant> {
        (self.status == Status::Alive).then(|| self.heard_at + self.interval * 2 + minute)
    }
}

/// What one message did to the devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Not a heartbeat or an `hbeat.end`, Domogik's own, or an `hbeat.end`
    /// of a device not known: nothing changed.
    Ignored,
    /// A new device, `alive`; `forgotten` made room for it.
    Added { source: String, forgotten: Option<String> },
    /// A known device changed status (to `alive` again, or `stopped`).
    Changed { source: String, status: Status },
    /// A heartbeat of an `alive` device: only `last_seen` moved, which the
    /// views show but which is not worth a publication.
    Seen,
}

/// Every xPL device heard, by source.
#[derive(Debug, Clone)]
pub struct Devices {
    by_source: BTreeMap<String, Device>,
    max: usize,
    minute: Duration,
}

impl Devices {
    /// At most `max` devices (at least 1); `minute` is 60 s but in tests.
    pub fn new(max: usize, minute: Duration) -> Devices {
        Devices {
            by_source: BTreeMap::new(),
            max: max.max(1),
            minute,
        }
    }

    pub fn len(&self) -> usize {
        self.by_source.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_source.is_empty()
    }

    /// The devices in source order.
    pub fn iter(&self) -> impl Iterator<Item = &Device> {
        self.by_source.values()
    }

    pub fn get(&self, source: &str) -> Option<&Device> {
        self.by_source.get(source)
    }

    /// Takes in one decoded message: `hbeat.app` and `hbeat.basic` make
    /// their source `alive` (created if new), `hbeat.end` `stopped`.
    pub fn handle_message(&mut self, message: &Message, now: Now) -> Heard {
        // A vendor that is a client type (`plugin-diskfree.box`) reads as
        // a Domogik client id (`TYPE-NAME.HOST`): as a device it would be a
        // second entry of that key in the 0.5 maps, hiding the client.
        let vendor = message.source.vendor();
        if vendor == DOMOGIK_VENDOR || crate::core::kind::Kind::parse(vendor).is_some() {
            return Heard::Ignored;
        }
        match message.schema.as_str() {
            "hbeat.app" | "hbeat.basic" => self.heartbeat(message, now),
            "hbeat.end" => self.end(message.source.as_str(), now),
            _ => Heard::Ignored,
        }
    }

    fn heartbeat(&mut self, message: &Message, now: Now) -> Heard {
        let minutes = message
            .get("interval")
            .and_then(|text| text.parse::<u64>().ok())
            .map_or(DEFAULT_INTERVAL_MINUTES, |minutes| {
                minutes.clamp(*INTERVAL_MINUTES.start(), *INTERVAL_MINUTES.end())
            });
        let interval = self.minute * u32::try_from(minutes).unwrap_or(1);
        let source = message.source.as_str();
        if let Some(device) = self.by_source.get_mut(source) {
            device.interval = interval;
            device.heard_at = now.mono;
            device.last_seen = now.unix;
            if device.status == Status::Alive {
                return Heard::Seen;
            }
            device.status = Status::Alive;
            return Heard::Changed {
                source: source.to_owned(),
                status: Status::Alive,
            };
        }
        let forgotten = if self.by_source.len() >= self.max {
            self.forget_the_longest_silent()
        } else {
            None
        };
        self.by_source.insert(
            source.to_owned(),
            Device {
                source: message.source.clone(),
                status: Status::Alive,
                interval,
                heard_at: now.mono,
                last_seen: now.unix,
            },
        );
        Heard::Added {
            source: source.to_owned(),
            forgotten,
        }
    }

    fn forget_the_longest_silent(&mut self) -> Option<String> {
        let oldest = self
            .by_source
            .iter()
            .min_by_key(|(_, device)| device.heard_at)
            .map(|(source, _)| source.clone())?;
        self.by_source.remove(&oldest);
        Some(oldest)
    }

    fn end(&mut self, source: &str, now: Now) -> Heard {
        let Some(device) = self.by_source.get_mut(source) else {
            return Heard::Ignored;
        };
        device.heard_at = now.mono;
        device.last_seen = now.unix;
        if device.status == Status::Stopped {
            return Heard::Seen;
        }
        device.status = Status::Stopped;
        Heard::Changed {
            source: source.to_owned(),
            status: Status::Stopped,
        }
    }

    /// Makes `dead` every `alive` device silent for more than 2 × its
    /// interval + 1 minute, and returns their sources.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<String> {
        let minute = self.minute;
        let mut dead = Vec::new();
        for (source, device) in &mut self.by_source {
            if device.dead_at(minute).is_some_and(|deadline| now > deadline) {
                device.status = Status::Dead;
                dead.push(source.clone());
            }
        }
        dead
    }

    /// When the next device becomes dead if it stays silent; `None` if
    /// none is alive.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.by_source
            .values()
            .filter_map(|device| device.dead_at(self.minute))
            .min()
    }

    /// The `comment` of a device the dead rule made dead.
    pub fn dead_comment(&self, source: &str) -> Option<String> {
        let device = self.by_source.get(source)?;
        let minutes = device.interval.as_secs_f64() / self.minute.as_secs_f64();
        Some(format!(
            "no xPL heartbeat for more than 2 × its {minutes} min interval + 1 min"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::xpl::message::decode;

    const MINUTE: Duration = Duration::from_secs(60);

    fn hbeat(source: &str, schema: &str, interval: &str) -> Message {
        let text = format!(
            "xpl-stat\n{{\nhop=1\nsource={source}\ntarget=*\n}}\n{schema}\n{{\ninterval={interval}\nport=5000\nremote-ip=127.0.0.1\n}}\n"
        );
        decode(text.as_bytes()).unwrap()
    }

    fn t0() -> Now {
        Now {
            mono: Instant::now(),
            unix: 1000.0,
        }
    }

    #[test]
    fn a_heartbeat_creates_an_alive_device_and_repeats_only_move_last_seen() {
        let mut devices = Devices::new(DEFAULT_MAX_DEVICES, MINUTE);
        let now = t0();
        let added = devices.handle_message(&hbeat("acme-sensor.kitchen", "hbeat.app", "5"), now);
        assert_eq!(
            added,
            Heard::Added {
                source: "acme-sensor.kitchen".into(),
                forgotten: None
            }
        );
        let device = devices.get("acme-sensor.kitchen").unwrap();
        assert_eq!(device.status(), Status::Alive);
        assert_eq!(device.interval(), MINUTE * 5);
        let later = now.later(MINUTE * 5);
        assert_eq!(
            devices.handle_message(&hbeat("acme-sensor.kitchen", "hbeat.basic", "5"), later),
            Heard::Seen
        );
        assert_eq!(devices.get("acme-sensor.kitchen").unwrap().last_seen(), 1300.0);
        assert_eq!(devices.len(), 1);
    }

    #[test]
    fn domogiks_own_other_schemas_and_unknown_ends_are_ignored() {
        let mut devices = Devices::new(DEFAULT_MAX_DEVICES, MINUTE);
        for message in [
            hbeat("domogik-diskfree.box", "hbeat.app", "5"),
            hbeat("acme-sensor.kitchen", "sensor.basic", "5"),
            hbeat("acme-sensor.kitchen", "hbeat.request", "5"),
            hbeat("acme-sensor.kitchen", "hbeat.end", "5"),
            hbeat("acme-sensor.kitchen", "config.app", "5"),
        ] {
            assert_eq!(devices.handle_message(&message, t0()), Heard::Ignored, "{message:?}");
        }
        assert!(devices.is_empty());
    }

    #[test]
    fn dead_after_twice_its_own_interval_and_a_minute_of_silence_deadline_based() {
        let mut devices = Devices::new(DEFAULT_MAX_DEVICES, MINUTE);
        let now = t0();
        devices.handle_message(&hbeat("acme-fast.a", "hbeat.app", "1"), now);
        devices.handle_message(&hbeat("acme-slow.b", "hbeat.app", "10"), now);
        // 1 min interval: 3 min; 10 min interval: 21 min.
        assert_eq!(devices.poll_timeout(), Some(now.mono + MINUTE * 3));
        assert!(
            devices.handle_timeout(now.mono + MINUTE * 3).is_empty(),
            "exactly at the deadline: not yet"
        );
        let dead = devices.handle_timeout(now.mono + MINUTE * 3 + Duration::from_millis(1));
        assert_eq!(dead, ["acme-fast.a"]);
        assert_eq!(devices.get("acme-fast.a").unwrap().status(), Status::Dead);
        assert_eq!(
            devices.dead_comment("acme-fast.a").unwrap(),
            "no xPL heartbeat for more than 2 × its 1 min interval + 1 min"
        );
        assert_eq!(devices.poll_timeout(), Some(now.mono + MINUTE * 21));
        // Heard again 20 min in: alive, and its deadline moves.
        let back = now.later(MINUTE * 20);
        assert_eq!(
            devices.handle_message(&hbeat("acme-fast.a", "hbeat.app", "1"), back),
            Heard::Changed {
                source: "acme-fast.a".into(),
                status: Status::Alive
            }
        );
        assert_eq!(devices.poll_timeout(), Some(now.mono + MINUTE * 21));
        assert_eq!(devices.handle_timeout(now.mono + MINUTE * 22), ["acme-slow.b"]);
        assert_eq!(devices.poll_timeout(), Some(back.mono + MINUTE * 3));
        assert_eq!(devices.handle_timeout(now.mono + MINUTE * 60), ["acme-fast.a"]);
        assert_eq!(devices.poll_timeout(), None, "no one alive, no deadline");
        assert!(devices.handle_timeout(now.mono + MINUTE * 600).is_empty(), "dead once");
    }

    #[test]
    fn the_interval_is_read_as_minutes_within_bounds_or_five() {
        let mut devices = Devices::new(DEFAULT_MAX_DEVICES, MINUTE);
        for (interval, minutes) in [("0", 1), ("30", 30), ("100000", 60), ("x", 5), ("-1", 5), ("", 5)] {
            devices.handle_message(&hbeat("acme-a.b", "hbeat.app", interval), t0());
            assert_eq!(
                devices.get("acme-a.b").unwrap().interval(),
                MINUTE * minutes,
                "{interval:?}"
            );
        }
        let text = "xpl-stat\n{\nhop=1\nsource=acme-c.d\ntarget=*\n}\nhbeat.basic\n{\n}\n";
        devices.handle_message(&decode(text.as_bytes()).unwrap(), t0());
        assert_eq!(
            devices.get("acme-c.d").unwrap().interval(),
            MINUTE * 5,
            "no interval at all"
        );
    }

    #[test]
    fn hbeat_end_stops_at_once_and_a_stopped_device_never_dies() {
        let mut devices = Devices::new(DEFAULT_MAX_DEVICES, MINUTE);
        let now = t0();
        devices.handle_message(&hbeat("acme-a.b", "hbeat.app", "1"), now);
        let end = now.later(Duration::from_secs(10));
        assert_eq!(
            devices.handle_message(&hbeat("acme-a.b", "hbeat.end", "1"), end),
            Heard::Changed {
                source: "acme-a.b".into(),
                status: Status::Stopped
            }
        );
        assert_eq!(devices.get("acme-a.b").unwrap().last_seen(), 1010.0);
        assert_eq!(
            devices.handle_message(&hbeat("acme-a.b", "hbeat.end", "1"), end),
            Heard::Seen
        );
        assert_eq!(devices.poll_timeout(), None);
        assert!(devices.handle_timeout(now.mono + MINUTE * 600).is_empty());
        assert_eq!(devices.get("acme-a.b").unwrap().status(), Status::Stopped);
        // And a dead one's end is a stop too.
        devices.handle_message(&hbeat("acme-c.d", "hbeat.app", "1"), now);
        devices.handle_timeout(now.mono + MINUTE * 10);
        assert_eq!(
            devices.handle_message(&hbeat("acme-c.d", "hbeat.end", "1"), now.later(MINUTE * 11)),
            Heard::Changed {
                source: "acme-c.d".into(),
                status: Status::Stopped
            }
        );
    }

    #[test]
    fn bounded_the_longest_silent_is_forgotten_first() {
        let mut devices = Devices::new(3, MINUTE);
        let now = t0();
        for (step, source) in ["acme-a.x", "acme-b.x", "acme-c.x"].into_iter().enumerate() {
            devices.handle_message(&hbeat(source, "hbeat.app", "5"), now.later(MINUTE * step as u32));
        }
        // a speaks again: b is now the longest silent.
        devices.handle_message(&hbeat("acme-a.x", "hbeat.app", "5"), now.later(MINUTE * 3));
        assert_eq!(
            devices.handle_message(&hbeat("acme-d.x", "hbeat.app", "5"), now.later(MINUTE * 4)),
            Heard::Added {
                source: "acme-d.x".into(),
                forgotten: Some("acme-b.x".into())
            }
        );
        assert_eq!(devices.len(), 3);
        assert!(devices.get("acme-b.x").is_none());
        // A known device's heartbeat forgets no one.
        assert_eq!(
            devices.handle_message(&hbeat("acme-c.x", "hbeat.app", "5"), now.later(MINUTE * 5)),
            Heard::Seen
        );
        assert_eq!(Devices::new(0, MINUTE).max, 1, "at least one");
    }
}
