//! The plugin processes the manager started (PROTOCOL.md §9), as pure
//! state: which pid is whose, when a plugin that asked to stop must be
//! killed, what an exit means, and when a crashed plugin is started again.
//!
//! Pids, announced statuses, exits and the clock go in; [`Order`]s (signal
//! a process group, start a plugin) and [`Ended`] reports come out. The
//! system calls are `src/daemon/processes.rs`'s; the loop asks
//! [`Children::next_deadline`] for its poll timeout (no tick).

use crate::core::status::Status;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

/// Domogik kills a plugin still running this long after its `stop-request`.
pub(crate) const DEFAULT_KILL_DELAY: Duration = Duration::from_secs(15);
/// After the SIGTERM that follows the kill delay, SIGKILL comes this long
/// later at most (sooner when the kill delay itself is shorter).
pub(crate) const MAX_TERM_GRACE: Duration = Duration::from_secs(5);
/// The first restart of a crashed plugin waits this long...
pub(crate) const RESTART_FIRST_DELAY: Duration = Duration::from_secs(1);
/// ...each further crash in a row doubles the wait, up to this.
pub(crate) const RESTART_MAX_DELAY: Duration = Duration::from_secs(300);
/// A run at least this long before a crash starts the doubling over.
pub(crate) const RESTART_STABLE_RUN: Duration = Duration::from_secs(60);

/// Which plugins are started again after they die (config `restart`).
/// Off by default, as in Domogik.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum RestartSet {
    #[default]
    Nobody,
    Everyone,
    Only(BTreeSet<String>),
}

impl RestartSet {
    pub(crate) fn includes(&self, name: &str) -> bool {
        match self {
            RestartSet::Nobody => false,
            RestartSet::Everyone => true,
            RestartSet::Only(names) => names.contains(name),
        }
    }
}

/// How long to wait before killing, and whom to restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    pub kill_delay: Duration,
    pub restart: RestartSet,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            kill_delay: DEFAULT_KILL_DELAY,
            restart: RestartSet::Nobody,
        }
    }
}

/// How a process ended, from `waitpid`'s status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal(signal) => match signal_name(signal) {
                Some(name) => write!(f, "killed by signal {signal} ({name})"),
                None => write!(f, "killed by signal {signal}"),
            },
        }
    }
}

/// The names of the signals a plugin is likely to die of.
fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

/// The signals the manager sends to a plugin's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kill {
    Term,
    Kill,
}

impl Kill {
    pub(crate) fn number(self) -> i32 {
        match self {
            Kill::Term => libc::SIGTERM,
            Kill::Kill => libc::SIGKILL,
        }
    }
}

/// Something the loop must do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Order {
    /// Send `signal` to process group `group` (the plugin's pid), because
    /// it did not exit `waited` after its `stop-request`.
    Signal {
        name: String,
        group: u32,
        signal: Kill,
        waited: Duration,
    },
    /// Start plugin `name` again (the restart policy); `auto`: with `-m`.
    Start { name: String, auto: bool },
}

/// A plugin process that exited, and what it means for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ended {
    pub name: String,
    pub pid: u32,
    /// `stopped` for a clean stop, `dead` otherwise.
    pub status: Status,
    /// One line: how it exited and why that is clean or not.
    pub comment: String,
    /// When the restart policy starts it again, from now.
    pub restart_in: Option<Duration>,
}

#[derive(Debug, Clone)]
struct Run {
    pid: u32,
    auto: bool,
    started: Instant,
    /// The plugin announced `stop-request` (or the manager asked it to stop).
    stop_requested: bool,
    /// The last status it announced since it was started.
    last: Option<Status>,
    /// When the kill delay began: the first `stop-request` or `stopped`.
    stop_since: Option<Instant>,
    term_sent: Option<Instant>,
    kill_sent: bool,
}

#[derive(Debug, Clone, Default)]
struct Entry {
    run: Option<Run>,
    restart_at: Option<Instant>,
    /// Crashes in a row, for the backoff.
    failures: u32,
    auto: bool,
}

/// Every plugin process the manager started, by plugin name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Children {
    policy: Policy,
    by_name: BTreeMap<String, Entry>,
}

impl Children {
    pub(crate) fn new(policy: Policy) -> Children {
        Children {
            policy,
            by_name: BTreeMap::new(),
        }
    }

    /// The pid of plugin `name`'s process, while it has not exited.
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        self.by_name.get(name)?.run.as_ref().map(|run| run.pid)
    }

    /// Every running child: `(name, pid)`.
    pub(crate) fn running(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.by_name
            .iter()
            .filter_map(|(name, entry)| entry.run.as_ref().map(|run| (name.as_str(), run.pid)))
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.running().next().is_none()
    }

    /// Records a process just spawned for plugin `name`; a pending restart
    /// of it is void.
    pub(crate) fn spawned(&mut self, name: &str, pid: u32, auto: bool, now: Instant) {
        let entry = self.by_name.entry(name.to_owned()).or_default();
        entry.restart_at = None;
        entry.auto = auto;
        entry.run = Some(Run {
            pid,
            auto,
            started: now,
            stop_requested: false,
            last: None,
            stop_since: None,
            term_sent: None,
            kill_sent: false,
        });
    }

    /// A status plugin `name` announced. `stop-request` (or `stopped`, in
    /// case the `stop-request` was missed) starts the kill delay.
    pub(crate) fn observe(&mut self, name: &str, status: Status, now: Instant) {
        let Some(run) = self.by_name.get_mut(name).and_then(|entry| entry.run.as_mut()) else {
            return;
        };
        run.last = Some(status);
        if status == Status::StopRequest {
            run.stop_requested = true;
        }
        if matches!(status, Status::StopRequest | Status::Stopped) && run.stop_since.is_none() {
            run.stop_since = Some(now);
        }
    }

    /// The manager stops: every child is asked to stop (SIGTERM to its
    /// group, returned), and its exit will be a clean one.
    pub(crate) fn stop_all(&mut self) -> Vec<Order> {
        let mut orders = Vec::new();
        for (name, entry) in &mut self.by_name {
            entry.restart_at = None;
            if let Some(run) = &mut entry.run {
                run.stop_requested = true;
                orders.push(Order::Signal {
                    name: name.clone(),
                    group: run.pid,
                    signal: Kill::Term,
                    waited: Duration::ZERO,
                });
            }
        }
        orders
    }

    /// Process `pid` exited (reaped). `None` if it is no child of ours.
    pub(crate) fn exited(&mut self, pid: u32, exit: Exit, now: Instant) -> Option<Ended> {
        let (name, entry) = self
            .by_name
            .iter_mut()
            .find(|(_, entry)| entry.run.as_ref().is_some_and(|run| run.pid == pid))?;
        let run = entry.run.take()?;
        let killed = run.term_sent.is_some();
        let clean = run.stop_requested || (run.last == Some(Status::Stopped) && exit == Exit::Code(0));
        let (status, comment) = if clean {
            let how = if killed {
                let waited = self.policy.kill_delay.as_secs_f64();
                format!("did not exit within {waited} s of stop-request: {exit}")
            } else {
                format!("exited after stop-request: {exit}")
            };
            (Status::Stopped, how)
        } else if run.last == Some(Status::Stopped) {
            (Status::Dead, format!("{exit} after announcing stopped"))
        } else {
            (Status::Dead, exit.to_string())
        };
        let mut restart_in = None;
        if status == Status::Dead && self.policy.restart.includes(name) {
            let stable = now.saturating_duration_since(run.started) >= RESTART_STABLE_RUN;
            entry.failures = if stable { 1 } else { entry.failures.saturating_add(1) };
            let delay = backoff(entry.failures);
            entry.restart_at = Some(now + delay);
            entry.auto = run.auto;
            restart_in = Some(delay);
        } else {
            entry.failures = 0;
        }
        Some(Ended {
            name: name.clone(),
            pid,
            status,
            comment,
            restart_in,
        })
    }

    /// Plugin `name`'s package is gone: no restart of it is pending any more.
    pub(crate) fn forget(&mut self, name: &str) {
        if let Some(entry) = self.by_name.get_mut(name) {
            entry.restart_at = None;
            if entry.run.is_none() {
                self.by_name.remove(name);
            }
        }
    }

    /// The nearest time at which [`Children::due`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_name
            .values()
            .filter_map(|entry| {
                let kill = entry.run.as_ref().and_then(|run| self.kill_deadline(run));
                [kill, entry.restart_at].into_iter().flatten().min()
            })
            .min()
    }

    /// How long a process group may take to exit after SIGTERM before SIGKILL.
    pub(crate) fn term_grace(&self) -> Duration {
        self.policy.kill_delay.min(MAX_TERM_GRACE)
    }

    fn kill_deadline(&self, run: &Run) -> Option<Instant> {
        match (run.stop_since, run.term_sent, run.kill_sent) {
            (_, _, true) => None,
            (_, Some(term), false) => Some(term + self.term_grace()),
            (Some(since), None, false) => Some(since + self.policy.kill_delay),
            (None, None, false) => None,
        }
    }

    /// What is due at `now`: signals to send, plugins to start again.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Order> {
        let (kill_delay, grace) = (self.policy.kill_delay, self.term_grace());
        let mut orders = Vec::new();
        for (name, entry) in &mut self.by_name {
            if entry.restart_at.is_some_and(|at| at <= now) {
                entry.restart_at = None;
                orders.push(Order::Start {
                    name: name.clone(),
                    auto: entry.auto,
                });
            }
            let Some(run) = &mut entry.run else { continue };
            let signal = match (run.stop_since, run.term_sent, run.kill_sent) {
                (Some(since), None, false) if since + kill_delay <= now => {
                    run.term_sent = Some(now);
                    Kill::Term
                }
                (_, Some(term), false) if term + grace <= now => {
                    run.kill_sent = true;
                    Kill::Kill
                }
                _ => continue,
            };
            orders.push(Order::Signal {
                name: name.clone(),
                group: run.pid,
                signal,
                waited: run
                    .stop_since
                    .map_or(Duration::ZERO, |since| now.saturating_duration_since(since)),
            });
        }
        orders
    }
}

/// The wait before the restart that follows `failures` crashes in a row:
/// 1 s, 2 s, 4 s... up to [`RESTART_MAX_DELAY`].
pub(crate) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    RESTART_FIRST_DELAY
        .saturating_mul(1 << doublings)
        .min(RESTART_MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn children(restart: RestartSet) -> Children {
        Children::new(Policy {
            kill_delay: secs(15),
            restart,
        })
    }

    #[test]
    fn a_crash_is_dead_with_its_exit_status_and_the_pid_is_forgotten() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Nobody);
        kids.spawned("a", 42, false, t0);
        assert_eq!(kids.pid("a"), Some(42));
        kids.observe("a", Status::Alive, t0);
        let ended = kids.exited(42, Exit::Code(3), t0 + secs(1)).unwrap();
        assert_eq!(ended.status, Status::Dead);
        assert_eq!(ended.comment, "exit status 3");
        assert_eq!(ended.restart_in, None, "no restart unless configured");
        assert_eq!(kids.pid("a"), None);
        assert!(kids.exited(42, Exit::Code(3), t0).is_none(), "reaped once");
        assert_eq!(kids.next_deadline(), None);
    }

    #[test]
    fn a_signal_is_named() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Nobody);
        kids.spawned("a", 7, false, t0);
        let ended = kids.exited(7, Exit::Signal(libc::SIGKILL), t0).unwrap();
        assert_eq!(
            (ended.status, ended.comment.as_str()),
            (Status::Dead, "killed by signal 9 (SIGKILL)")
        );
        assert_eq!(Exit::Signal(64).to_string(), "killed by signal 64");
    }

    #[test]
    fn which_exits_are_clean() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Everyone);
        let cases: [(&[Status], Exit, Status); 6] = [
            (&[Status::Alive, Status::StopRequest], Exit::Code(0), Status::Stopped),
            (&[Status::StopRequest], Exit::Code(1), Status::Stopped),
            (&[Status::Alive, Status::Stopped], Exit::Code(0), Status::Stopped),
            (&[Status::Alive, Status::Stopped], Exit::Code(2), Status::Dead),
            (&[Status::Alive], Exit::Code(0), Status::Dead),
            (&[], Exit::Code(0), Status::Dead),
        ];
        for (pid, (statuses, exit, expected)) in (1..).zip(cases) {
            kids.spawned("a", pid, false, t0);
            for status in statuses {
                kids.observe("a", *status, t0);
            }
            let ended = kids.exited(pid, exit, t0).unwrap();
            assert_eq!(ended.status, expected, "{statuses:?} then {exit}");
            assert_eq!(ended.restart_in.is_some(), expected == Status::Dead, "{statuses:?}");
        }
    }

    #[test]
    fn statuses_of_an_earlier_run_do_not_count() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Nobody);
        kids.spawned("a", 1, false, t0);
        kids.observe("a", Status::StopRequest, t0);
        kids.exited(1, Exit::Code(0), t0).unwrap();
        kids.spawned("a", 2, false, t0);
        assert_eq!(kids.exited(2, Exit::Code(1), t0).unwrap().status, Status::Dead);
        assert_eq!(kids.next_deadline(), None, "the first run's kill delay went with it");
    }

    #[test]
    fn stop_request_then_hang_is_terminated_then_killed() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Everyone);
        kids.spawned("a", 9, false, t0);
        kids.observe("a", Status::Alive, t0);
        assert_eq!(kids.next_deadline(), None, "nothing to wait for while it runs");
        kids.observe("a", Status::StopRequest, t0 + secs(10));
        kids.observe("a", Status::StopRequest, t0 + secs(12));
        assert_eq!(kids.next_deadline(), Some(t0 + secs(25)), "from the first stop-request");
        assert!(kids.due(t0 + secs(24)).is_empty());
        assert_eq!(
            kids.due(t0 + secs(25)),
            vec![Order::Signal {
                name: "a".into(),
                group: 9,
                signal: Kill::Term,
                waited: secs(15)
            }]
        );
        assert!(kids.due(t0 + secs(26)).is_empty(), "SIGTERM once");
        assert_eq!(kids.next_deadline(), Some(t0 + secs(30)));
        let orders = kids.due(t0 + secs(30));
        assert!(
            matches!(
                &orders[..],
                [Order::Signal {
                    signal: Kill::Kill,
                    group: 9,
                    ..
                }]
            ),
            "{orders:?}"
        );
        assert_eq!(kids.next_deadline(), None, "SIGKILL once, then wait for the exit");
        let ended = kids.exited(9, Exit::Signal(libc::SIGKILL), t0 + secs(30)).unwrap();
        assert_eq!(ended.status, Status::Stopped);
        assert_eq!(
            ended.comment,
            "did not exit within 15 s of stop-request: killed by signal 9 (SIGKILL)"
        );
        assert_eq!(ended.restart_in, None, "a plugin asked to stop is not restarted");
    }

    #[test]
    fn a_short_kill_delay_shortens_the_grace_too() {
        let t0 = Instant::now();
        let mut kids = Children::new(Policy {
            kill_delay: Duration::from_millis(500),
            restart: RestartSet::Nobody,
        });
        kids.spawned("a", 9, false, t0);
        kids.observe("a", Status::Stopped, t0);
        assert_eq!(kids.due(t0 + Duration::from_millis(500)).len(), 1);
        assert_eq!(kids.next_deadline(), Some(t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn restart_backs_off_exponentially_up_to_the_cap_and_resets_after_a_stable_run() {
        assert_eq!(
            (1..=12).map(|n| backoff(n).as_secs()).collect::<Vec<_>>(),
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]
        );
        assert_eq!(backoff(u32::MAX), RESTART_MAX_DELAY);

        let mut kids = children(RestartSet::Only(["a".to_owned()].into()));
        let mut now = Instant::now();
        let mut waits = Vec::new();
        // A plugin that crashes at once, ten times: the waits grow.
        for pid in 1..=10 {
            kids.spawned("a", pid, true, now);
            let ended = kids.exited(pid, Exit::Code(1), now).unwrap();
            let wait = ended.restart_in.unwrap();
            waits.push(wait.as_secs());
            assert_eq!(kids.next_deadline(), Some(now + wait));
            assert!(kids.due(now + wait - Duration::from_millis(1)).is_empty());
            now += wait;
            assert_eq!(
                kids.due(now),
                vec![Order::Start {
                    name: "a".into(),
                    auto: true
                }]
            );
            assert!(kids.due(now).is_empty(), "one start per crash");
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        // Once it ran a minute, the next crash is restarted after 1 s again.
        kids.spawned("a", 11, true, now);
        let ended = kids.exited(11, Exit::Code(1), now + RESTART_STABLE_RUN).unwrap();
        assert_eq!(ended.restart_in, Some(RESTART_FIRST_DELAY));

        // Others are not restarted.
        kids.spawned("b", 20, false, now);
        assert_eq!(kids.exited(20, Exit::Code(1), now).unwrap().restart_in, None);
    }

    #[test]
    fn a_start_or_a_removal_cancels_a_pending_restart() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Everyone);
        kids.spawned("a", 1, false, t0);
        kids.exited(1, Exit::Code(1), t0).unwrap();
        kids.spawned("a", 2, false, t0);
        assert!(kids.due(t0 + secs(10)).is_empty(), "started by hand meanwhile");
        kids.exited(2, Exit::Code(1), t0).unwrap();
        kids.forget("a");
        assert_eq!(kids.next_deadline(), None);
        assert!(kids.due(t0 + secs(10)).is_empty());
    }

    #[test]
    fn stopping_the_manager_terminates_every_child_cleanly() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Everyone);
        kids.spawned("a", 1, false, t0);
        kids.spawned("b", 2, false, t0);
        kids.exited(2, Exit::Code(1), t0).unwrap();
        let orders = kids.stop_all();
        assert!(
            matches!(
                &orders[..],
                [Order::Signal {
                    group: 1,
                    signal: Kill::Term,
                    ..
                }]
            ),
            "{orders:?}"
        );
        assert_eq!(kids.next_deadline(), None, "no restart while stopping");
        let ended = kids.exited(1, Exit::Signal(libc::SIGTERM), t0).unwrap();
        assert_eq!(ended.status, Status::Stopped);
        assert!(kids.is_empty());
    }
}
