//! When to scan `packages_dir`, and what to say of a scan that takes long:
//! the decisions about rescans, apart from the scanner process that does
//! the disk reads (src/disk/scanner.rs) and from the loop that carries
//! them out. Pure: the time is given.
//!
//! One scan at a time. A scan is due at start, `rescan_interval` after the
//! last one started (never before the last one ended), and at once on
//! SIGHUP (a SIGHUP during a scan is one more scan when it ends: several
//! coalesce). A scan still running [`STUCK_AFTER`] after it started is said
//! once (a hung NFS server, an SD card under write load): the loop keeps
//! answering from what it knows. The manager opens its sockets once the
//! first scan is over: done, or taken for stuck ([`Schedule::first_scan_over`]).

use std::time::{Duration, Instant};

/// A scan running longer than this is said in the log, once.
pub(crate) const STUCK_AFTER: Duration = Duration::from_secs(5);

/// The rescan timer and the scan in flight.
#[derive(Debug)]
pub(crate) struct Schedule {
    interval: Duration,
    next: Instant,
    /// The scan in flight: when it started, and whether it was said stuck.
    running: Option<Running>,
    /// A SIGHUP came during the scan in flight: scan again when it ends.
    again: bool,
    /// Whether the first scan ended or was taken for stuck.
    first_over: bool,
    /// Scans lost with their scanner in a row: the pause before asking
    /// again doubles with each (see [`Schedule::lost`]).
    losses: u32,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    since: Instant,
    stuck_said: bool,
    /// Started by SIGHUP: its end (or its being stuck) ends the reload.
    reload: bool,
}

/// What the loop is to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    /// Ask the scanner for a scan (`reload`: SIGHUP's, systemd waits).
    Scan {
        reload: bool,
    },
    /// The scan in flight started this long ago: say it, once.
    /// (`reload`: a SIGHUP's, which systemd is told is over.)
    Stuck {
        after: Duration,
        reload: bool,
    },
}

/// What the end of a scan means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended {
    pub(crate) took: Duration,
    /// It had been said stuck: say that it ended.
    pub(crate) was_stuck: bool,
    /// A SIGHUP's scan: systemd is told the reload is over.
    pub(crate) reload_over: bool,
}

impl Schedule {
    /// The first scan is due at once.
    pub(crate) fn new(interval: Duration, now: Instant) -> Schedule {
        Schedule {
            interval,
            next: now,
            running: None,
            again: false,
            first_over: false,
            losses: 0,
        }
    }

    /// Whether the first scan ended, or was taken for stuck.
    pub(crate) fn first_scan_over(&self) -> bool {
        self.first_over
    }

    /// When [`Schedule::due`] has something to do; `None` while a scan said
    /// stuck goes on (its end, through the scanner's pipe, wakes the loop).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match self.running {
            Some(running) if !running.stuck_said => Some(running.since + STUCK_AFTER),
            Some(_) => None,
            None => Some(self.next),
        }
    }

    /// SIGHUP: a scan now, or right after the one in flight.
    pub(crate) fn rescan_now(&mut self, now: Instant) {
        self.again = true;
        if self.running.is_none() {
            self.next = self.next.min(now);
        }
    }

    /// What is due at `now`; a scan is taken as started when returned.
    pub(crate) fn due(&mut self, now: Instant) -> Due {
        if let Some(running) = &mut self.running {
            let after = now.saturating_duration_since(running.since);
            if !running.stuck_said && after >= STUCK_AFTER {
                running.stuck_said = true;
                self.first_over = true;
                return Due::Stuck {
                    after,
                    reload: running.reload,
                };
            }
            return Due::Nothing;
        }
        if now < self.next && !self.again {
            return Due::Nothing;
        }
        let reload = std::mem::take(&mut self.again);
        self.running = Some(Running {
            since: now,
            stuck_said: false,
            reload,
        });
        self.next = now + self.interval;
        Due::Scan { reload }
    }

    /// The scan in flight ended (with a report or a failure) at `now`.
    pub(crate) fn ended(&mut self, now: Instant) -> Option<Ended> {
        let ended = self.finish(now)?;
        self.losses = 0;
        Some(ended)
    }

    /// The scan in flight is lost with its scanner (killed, crashed, its
    /// pipe broken) at `now`: it ends, and is asked again (of a new
    /// scanner) after [`MIN_PAUSE`], doubled with each loss in a row up to
    /// the interval, so a scanner that cannot live is not started in a
    /// loop. `None` when no scan was in flight: the next one starts a new
    /// scanner anyway. Returns the pause with the end.
    pub(crate) fn lost(&mut self, now: Instant) -> Option<(Ended, Duration)> {
        let ended = self.finish(now)?;
        let pause = MIN_PAUSE
            .saturating_mul(1 << self.losses.min(16))
            .min(self.interval.max(MIN_PAUSE));
        self.losses = self.losses.saturating_add(1);
        self.next = now + pause;
        Some((ended, pause))
    }

    fn finish(&mut self, now: Instant) -> Option<Ended> {
        let running = self.running.take()?;
        // A slow scan is not followed at once by the next periodic one.
        self.next = self.next.max(now + MIN_PAUSE.min(self.interval));
        self.first_over = true;
        Some(Ended {
            took: now.saturating_duration_since(running.since),
            was_stuck: running.stuck_said,
            reload_over: running.reload && !running.stuck_said,
        })
    }
}

/// Between the end of a scan and the start of the next periodic one, at
/// least this (or the interval, if shorter).
const MIN_PAUSE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(30);

    fn at(start: Instant, secs: f64) -> Instant {
        start + Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_scan_lost_with_its_scanner_is_asked_again_after_a_pause_that_doubles() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(INTERVAL, t0);
        assert_eq!(schedule.due(t0), Due::Scan { reload: false });
        // Lost between two scans: nothing to ask again.
        assert_eq!(schedule.ended(at(t0, 0.1)).map(|e| e.took), Some(Duration::from_millis(100)));
        assert_eq!(schedule.lost(at(t0, 0.2)), None);
        schedule.rescan_now(at(t0, 1.0));
        assert_eq!(schedule.due(at(t0, 1.0)), Due::Scan { reload: true });
        let (ended, pause) = schedule.lost(at(t0, 1.0)).expect("a scan was in flight");
        assert!(ended.reload_over);
        assert_eq!(pause, Duration::from_secs(1));
        assert_eq!(schedule.deadline(), Some(at(t0, 2.0)));
        assert_eq!(schedule.due(at(t0, 1.9)), Due::Nothing);
        assert_eq!(schedule.due(at(t0, 2.0)), Due::Scan { reload: false });
        assert_eq!(schedule.lost(at(t0, 2.0)).map(|(_, pause)| pause), Some(Duration::from_secs(2)));
        assert_eq!(schedule.due(at(t0, 4.0)), Due::Scan { reload: false });
        // A reply ends the losses: the next loss pauses 1 s again.
        assert!(schedule.ended(at(t0, 4.5)).is_some());
        assert_eq!(schedule.due(at(t0, 34.0)), Due::Scan { reload: false });
        assert_eq!(schedule.lost(at(t0, 34.0)).map(|(_, pause)| pause), Some(Duration::from_secs(1)));
        // Never more than the interval.
        for _ in 0..20 {
            let now = schedule.deadline().unwrap();
            assert_eq!(schedule.due(now), Due::Scan { reload: false });
            let (_, pause) = schedule.lost(now).unwrap();
            assert!(pause <= INTERVAL, "{pause:?}");
        }
    }

    #[test]
    fn the_first_scan_is_due_at_once_then_every_interval_from_its_start() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(INTERVAL, t0);
        assert_eq!(schedule.deadline(), Some(t0));
        assert_eq!(schedule.due(t0), Due::Scan { reload: false });
        assert_eq!(schedule.due(at(t0, 0.1)), Due::Nothing, "one at a time");
        assert!(!schedule.first_scan_over());
        let ended = schedule.ended(at(t0, 0.2)).unwrap();
        assert!(schedule.first_scan_over());
        assert!(!ended.was_stuck && !ended.reload_over);
        assert_eq!(schedule.deadline(), Some(at(t0, 30.0)));
        assert_eq!(schedule.due(at(t0, 29.9)), Due::Nothing);
        assert_eq!(schedule.due(at(t0, 30.0)), Due::Scan { reload: false });
    }

    #[test]
    fn a_stuck_scan_is_said_once_and_ends_the_first_scan_wait() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(INTERVAL, t0);
        schedule.due(t0);
        assert_eq!(schedule.deadline(), Some(t0 + STUCK_AFTER));
        assert_eq!(schedule.due(at(t0, 4.9)), Due::Nothing);
        assert!(!schedule.first_scan_over());
        assert_eq!(
            schedule.due(at(t0, 5.0)),
            Due::Stuck {
                after: STUCK_AFTER,
                reload: false
            }
        );
        assert!(schedule.first_scan_over());
        // Said: no more wake-ups for it, and no second scan meanwhile,
        // however long it takes (the periodic one included).
        assert_eq!(schedule.deadline(), None);
        for secs in [6.0, 31.0, 100.0, 1000.0] {
            assert_eq!(schedule.due(at(t0, secs)), Due::Nothing, "{secs}");
        }
        let ended = schedule.ended(at(t0, 1000.5)).unwrap();
        assert_eq!(ended.took, Duration::from_secs_f64(1000.5));
        assert!(ended.was_stuck);
        // The next periodic scan pauses after the slow one.
        assert_eq!(schedule.deadline(), Some(at(t0, 1001.5)));
    }

    #[test]
    fn a_later_scan_is_said_stuck_too() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(INTERVAL, t0);
        schedule.due(t0);
        schedule.ended(t0);
        assert_eq!(schedule.due(at(t0, 30.0)), Due::Scan { reload: false });
        assert_eq!(
            schedule.due(at(t0, 36.0)),
            Due::Stuck {
                after: Duration::from_secs(6),
                reload: false
            }
        );
    }

    #[test]
    fn sighup_scans_now_or_right_after_the_scan_in_flight_and_coalesces() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(INTERVAL, t0);
        schedule.due(t0);
        schedule.ended(at(t0, 0.1));
        schedule.rescan_now(at(t0, 10.0));
        assert_eq!(schedule.deadline(), Some(at(t0, 10.0)));
        assert_eq!(schedule.due(at(t0, 10.0)), Due::Scan { reload: true });
        // Three SIGHUPs during it: one more scan, right after it.
        for secs in [10.1, 10.2, 10.3] {
            schedule.rescan_now(at(t0, secs));
        }
        assert_eq!(schedule.due(at(t0, 10.4)), Due::Nothing);
        let ended = schedule.ended(at(t0, 10.5)).unwrap();
        assert!(ended.reload_over);
        assert_eq!(schedule.due(at(t0, 10.5)), Due::Scan { reload: true });
        schedule.ended(at(t0, 10.6));
        assert_eq!(schedule.due(at(t0, 10.7)), Due::Nothing, "coalesced into one");
        assert_eq!(schedule.deadline(), Some(at(t0, 40.5)));
    }

    #[test]
    fn a_reload_taken_for_stuck_is_over_for_systemd_when_said() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(INTERVAL, t0);
        schedule.due(t0);
        schedule.ended(t0);
        schedule.rescan_now(at(t0, 1.0));
        assert_eq!(schedule.due(at(t0, 1.0)), Due::Scan { reload: true });
        assert!(matches!(schedule.due(at(t0, 6.0)), Due::Stuck { reload: true, .. }));
        assert!(
            !schedule.ended(at(t0, 9.0)).unwrap().reload_over,
            "said over when stuck"
        );
    }

    #[test]
    fn an_end_without_a_scan_in_flight_means_nothing() {
        let t0 = Instant::now();
        let mut schedule = Schedule::new(INTERVAL, t0);
        assert_eq!(schedule.ended(t0), None);
    }
}
