//! Liveness (PROTOCOL.md §8): when a silent client is dead, and when the
//! manager's own `core`/`manager` status is due. Pure: every function takes
//! the time from its caller (a fake clock in tests, the loop's in the daemon).

use crate::core::status::Status;
use std::time::{Duration, Instant};

/// Domogik 0.5 declares a client dead after this long without a status.
pub(crate) const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(30);
/// Domogik's components publish their status again this often.
pub(crate) const DEFAULT_STATUS_INTERVAL: Duration = Duration::from_secs(15);

/// One moment, as both clocks see it: `mono` for deadlines (immune to the
/// wall clock being set), `unix` (seconds, a float) for what is shown:
/// `last_seen`, history timestamps, msg_ids. The system's is read by the
/// edges (`sys::clock::now`); the core is handed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Now {
    pub mono: Instant,
    pub unix: f64,
}

impl Now {
    /// `seconds` later on both clocks (for tests and fake clocks).
    #[cfg(test)]
    pub(crate) fn later(self, by: Duration) -> Now {
        Now {
            mono: self.mono + by,
            unix: self.unix + by.as_secs_f64(),
        }
    }
}

/// Whether a client in `status` is expected to keep talking, and so
/// becomes `dead` when it stops: `starting`, `alive` and `stop-request`.
/// Every other status (`unknown`, `stopped`, `invalid`, `dead`,
/// `not-configured`) is one a silent plugin may stay in for ever.
pub(crate) fn can_die(status: Status) -> bool {
    matches!(status, Status::Starting | Status::Alive | Status::StopRequest)
}

/// When a client in `status`, last heard at `heard_at`, becomes dead;
/// `None` if it never does.
pub(crate) fn dead_at(status: Status, heard_at: Instant, dead_after: Duration) -> Option<Instant> {
    can_die(status).then(|| heard_at + dead_after)
}

/// Whether a client is dead at `now` ("not heard from for *more than*
/// `dead_after`": at exactly `dead_after` it is still alive).
pub(crate) fn is_dead(status: Status, heard_at: Instant, dead_after: Duration, now: Instant) -> bool {
    dead_at(status, heard_at, dead_after).is_some_and(|deadline| now > deadline)
}

/// The `comment` of a status the manager decides itself: Domogik gave none.
pub(crate) fn dead_comment(dead_after: Duration) -> String {
    format!("no status received for more than {} s", seconds_text(dead_after))
}

/// `duration` in seconds as Python prints them, without a `.0` (`30`, `0.5`).
pub(crate) fn seconds_text(duration: Duration) -> String {
    crate::core::pyjson::python_float_repr(duration.as_secs_f64())
        .trim_end_matches(".0")
        .to_owned()
}

/// The manager's own status as a Domogik client (type `core`, name
/// `manager`): `starting` once, then `alive` every interval, and `stopped`
/// when it leaves (sent by the loop on its way out, not scheduled here).
#[derive(Debug, Clone)]
pub(crate) struct OwnStatus {
    interval: Duration,
    next: Instant,
    started: bool,
}

impl OwnStatus {
    /// The first status (`starting`) is due at once.
    pub(crate) fn new(interval: Duration, now: Instant) -> OwnStatus {
        OwnStatus {
            interval,
            next: now,
            started: false,
        }
    }

    /// When the next status is due.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.next
    }

    /// The status to publish now, if one is due: `starting` the first
    /// time, `alive` after. The next one is due an interval after `now`, so
    /// a loop that was held up does not publish a burst to catch up.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Option<Status> {
        if now < self.next {
            return None;
        }
        self.next = now + self.interval;
        let status = if self.started { Status::Alive } else { Status::Starting };
        self.started = true;
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_alive_and_stop_request_die_after_30_s_others_never() {
        let t0 = Instant::now();
        for status in Status::ALL {
            let dies = matches!(status, Status::Starting | Status::Alive | Status::StopRequest);
            assert!(
                !is_dead(status, t0, DEFAULT_DEAD_AFTER, t0 + Duration::from_secs(29)),
                "{status}"
            );
            assert!(
                !is_dead(status, t0, DEFAULT_DEAD_AFTER, t0 + DEFAULT_DEAD_AFTER),
                "{status} at exactly 30 s"
            );
            assert_eq!(
                is_dead(status, t0, DEFAULT_DEAD_AFTER, t0 + Duration::from_millis(30_001)),
                dies,
                "{status}"
            );
            assert_eq!(
                is_dead(status, t0, DEFAULT_DEAD_AFTER, t0 + Duration::from_secs(3600)),
                dies,
                "{status} an hour later"
            );
            assert_eq!(dead_at(status, t0, DEFAULT_DEAD_AFTER).is_some(), dies);
        }
    }

    #[test]
    fn own_status_is_starting_then_alive_every_interval_without_catching_up() {
        let t0 = Instant::now();
        let mut own = OwnStatus::new(DEFAULT_STATUS_INTERVAL, t0);
        assert_eq!(own.poll_timeout(), t0);
        assert_eq!(own.handle_timeout(t0), Some(Status::Starting));
        assert_eq!(own.handle_timeout(t0 + Duration::from_secs(14)), None);
        assert_eq!(own.poll_timeout(), t0 + DEFAULT_STATUS_INTERVAL);
        assert_eq!(own.handle_timeout(t0 + DEFAULT_STATUS_INTERVAL), Some(Status::Alive));
        // Held up for a minute: one status, then the next a full interval on.
        let late = t0 + Duration::from_secs(75);
        assert_eq!(own.handle_timeout(late), Some(Status::Alive));
        assert_eq!(own.handle_timeout(late), None);
        assert_eq!(own.poll_timeout(), late + DEFAULT_STATUS_INTERVAL);
    }

    #[test]
    fn dead_comment_names_the_delay() {
        assert_eq!(
            dead_comment(DEFAULT_DEAD_AFTER),
            "no status received for more than 30 s"
        );
        assert_eq!(
            dead_comment(Duration::from_millis(500)),
            "no status received for more than 0.5 s"
        );
    }

    #[test]
    fn now_moves_both_clocks() {
        let now = Now {
            mono: Instant::now(),
            unix: 100.0,
        };
        let later = now.later(Duration::from_millis(1500));
        assert_eq!(later.unix, 101.5);
        assert_eq!(later.mono - now.mono, Duration::from_millis(1500));
    }
}
