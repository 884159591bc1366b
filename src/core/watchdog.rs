//! systemd's watchdog (`WatchdogSec=` in the unit, `sd_watchdog_enabled(3)`):
//! when the loop owes systemd a `WATCHDOG=1`. Pure: the interval and the
//! clock in, "ping now" out; the loop sends it (`sys::notify::notify`) at the
//! end of a turn, and only there, so that a loop stuck anywhere stops the
//! pings and systemd kills and restarts the service.

use std::time::{Duration, Instant};

/// When the next `WATCHDOG=1` is due.
#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    every: Duration,
    next: Instant,
}

impl Watchdog {
    /// `interval` is systemd's (`WATCHDOG_USEC`): a ping every half of it,
    /// as sd_watchdog_enabled(3) advises, the first at once. `None` for a
    /// zero interval (no watchdog).
    pub(crate) fn new(interval: Duration, now: Instant) -> Option<Watchdog> {
        (!interval.is_zero()).then(|| Watchdog {
            every: interval / 2,
            next: now,
        })
    }

    /// When the next ping is due: the poll waits no longer.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.next
    }

    /// Whether a ping is due at `now`; the next is then due half an
    /// interval after `now` (a loop that was held up sends one, not a burst).
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.every;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_at_once_then_every_half_interval_never_a_burst() {
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut watchdog = Watchdog::new(Duration::from_secs(30), start).unwrap();
        assert!(watchdog.handle_timeout(start), "at once, after READY=1");
        assert!(!watchdog.handle_timeout(start));
        assert_eq!(watchdog.poll_timeout(), ms(15_000));
        assert!(!watchdog.handle_timeout(ms(14_999)));
        assert!(watchdog.handle_timeout(ms(15_000)));
        // The loop was held up for a minute: one ping, the next 15 s later.
        assert!(watchdog.handle_timeout(ms(75_000)));
        assert!(!watchdog.handle_timeout(ms(75_001)));
        assert_eq!(watchdog.poll_timeout(), ms(90_000));
    }

    #[test]
    fn a_zero_interval_is_no_watchdog() {
        assert!(Watchdog::new(Duration::ZERO, Instant::now()).is_none());
    }
}
