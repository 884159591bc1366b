//! The processes of the clients that run (plugins, interfaces, core
//! components; PROTOCOL.md §10), as pure state, the one model of them: which
//! pid is whose (a child the manager started, or one found already
//! running), when one that asked to stop must be killed, what an exit
//! means, and when a crashed one is started again.
//!
//! Pids, announced statuses (from the manager, as it applies them: no sync
//! per turn), exits and the clock go in; [`Order`]s (kill everything of a
//! client, terminate a child, start one) and [`Ended`] reports come out. The
//! system calls are `src/daemon/processes.rs`'s; the manager asks
//! [`Children::poll_timeout`] for its own (no tick).

use crate::core::kind::{self, Kind};
use crate::core::status::Status;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

/// Domogik kills a plugin still running this long after its `stop-request`.
pub(crate) const DEFAULT_KILL_DELAY: Duration = Duration::from_secs(15);
/// When the manager stops, its children get SIGTERM, then SIGKILL this
/// long later at most (sooner when the kill delay itself is shorter).
pub(crate) const MAX_TERM_GRACE: Duration = Duration::from_secs(5);
/// The first restart of a crashed plugin waits this long...
pub(crate) const RESTART_FIRST_DELAY: Duration = Duration::from_secs(1);
/// ...each further crash in a row doubles the wait, up to this.
pub(crate) const RESTART_MAX_DELAY: Duration = Duration::from_secs(300);
/// A run at least this long before a crash starts the doubling over.
pub(crate) const RESTART_STABLE_RUN: Duration = Duration::from_secs(60);

/// Which plugins are started again after they die (config `restart`).
/// Off by default, as in Domogik. Core components always are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum RestartSet {
    #[default]
    Nobody,
    Everyone,
    Only(BTreeSet<String>),
}

impl RestartSet {
    /// Whether client key `name` is restarted: a core component always, a
    /// plugin or interface as configured (by its name).
    pub(crate) fn includes(&self, name: &str) -> bool {
        let (kind, bare) = kind::split(name);
        if kind == Kind::Core {
            return true;
        }
        match self {
            RestartSet::Nobody => false,
            RestartSet::Everyone => true,
            RestartSet::Only(names) => names.contains(bare),
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

/// Something to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Order {
    /// SIGKILL to every process of client `name` (its script's, found by
    /// command line, and our child's process group `group` when it is
    /// ours), because it did not exit `waited` after its `stop-request`
    /// (Domogik 0.5.2's kill after 15 s).
    Kill {
        name: String,
        group: Option<u32>,
        waited: Duration,
    },
    /// SIGTERM to our child `name`'s process group (the manager stops).
    Terminate { name: String, group: u32 },
    /// Start client `name` again (the restart policy).
    Start { name: String, auto: bool },
}

/// A child that exited, and what it means for its client.
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
    /// Our child (we reap it), or a process found running (we do not).
    ours: bool,
    auto: bool,
    started: Instant,
    /// The client announced `stop-request` (or the manager asked it to stop).
    stop_requested: bool,
    /// The last status it announced since it was started.
    last: Option<Status>,
    /// When the kill delay began: the first `stop-request` or `stopped`.
    stop_since: Option<Instant>,
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

/// Every process of a client the manager knows, by client key.
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

    /// The pid of client `name`'s process, ours or found.
    pub(crate) fn pid(&self, name: &str) -> Option<u32> {
        self.by_name.get(name)?.run.as_ref().map(|run| run.pid)
    }

    /// Whether client `name` runs as a child of ours.
    pub(crate) fn is_ours(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .and_then(|entry| entry.run.as_ref())
            .is_some_and(|run| run.ours)
    }

    /// Every running child of ours: `(name, pid)`.
    pub(crate) fn running(&self) -> impl Iterator<Item = (&str, u32)> + '_ {
        self.by_name.iter().filter_map(|(name, entry)| {
            entry
                .run
                .as_ref()
                .filter(|run| run.ours)
                .map(|run| (name.as_str(), run.pid))
        })
    }

    /// Records a process just spawned for client `name`; a pending restart
    /// of it is void.
    pub(crate) fn spawned(&mut self, name: &str, pid: u32, auto: bool, now: Instant) {
        let entry = self.by_name.entry(name.to_owned()).or_default();
        entry.restart_at = None;
        entry.auto = auto;
        entry.run = Some(Run {
            pid,
            ours: true,
            auto,
            started: now,
            stop_requested: false,
            last: None,
            stop_since: None,
            kill_sent: false,
        });
    }

    /// A process of client `name` that we did not start runs as `pid`
    /// (`None`: none any more). A child of ours is not replaced. Whether
    /// what is known of it changed.
    pub(crate) fn found(&mut self, name: &str, pid: Option<u32>, now: Instant) -> bool {
        let entry = self.by_name.entry(name.to_owned()).or_default();
        match (&mut entry.run, pid) {
            (Some(run), _) if run.ours => false,
            (Some(run), Some(pid)) if run.pid == pid => false,
            (Some(run), Some(pid)) => {
                run.pid = pid;
                true
            }
            (run @ Some(_), None) => {
                *run = None;
                true
            }
            (run @ None, Some(pid)) => {
                *run = Some(Run {
                    pid,
                    ours: false,
                    auto: false,
                    started: now,
                    stop_requested: false,
                    last: None,
                    stop_since: None,
                    kill_sent: false,
                });
                true
            }
            (None, None) => false,
        }
    }

    /// A status client `name` announced. `stop-request` (or `stopped`, in
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

    /// The manager stops: every child of ours is asked to stop (SIGTERM to
    /// its group, returned), and its exit will be a clean one.
    pub(crate) fn stop_all(&mut self) -> Vec<Order> {
        let mut orders = Vec::new();
        for (name, entry) in &mut self.by_name {
            entry.restart_at = None;
            if let Some(run) = entry.run.as_mut().filter(|run| run.ours) {
                run.stop_requested = true;
                orders.push(Order::Terminate {
                    name: name.clone(),
                    group: run.pid,
                });
            }
        }
        orders
    }

    /// Process `pid` exited (reaped). `None` if it is no child of ours.
    pub(crate) fn exited(&mut self, pid: u32, exit: Exit, now: Instant) -> Option<Ended> {
        let kill_delay = self.policy.kill_delay;
        let name = self
            .by_name
            .iter()
            .find(|(_, entry)| entry.run.as_ref().is_some_and(|run| run.ours && run.pid == pid))
            .map(|(name, _)| name.clone())?;
        let run = self.by_name.get_mut(&name)?.run.take()?;
        let clean = run.stop_requested || (run.last == Some(Status::Stopped) && exit == Exit::Code(0));
        let (status, comment) = if clean {
            let how = if run.kill_sent {
                let waited = kill_delay.as_secs_f64();
                format!("did not exit within {waited} s of stop-request: {exit}")
            } else if run.stop_requested {
                format!("exited after stop-request: {exit}")
            } else {
                // A plugin that leaves on its own (diskfree with no device).
                format!("exited after announcing stopped: {exit}")
            };
            (Status::Stopped, how)
        } else if run.last == Some(Status::Stopped) {
            (Status::Dead, format!("{exit} after announcing stopped"))
        } else {
            (Status::Dead, exit.to_string())
        };
        let restart_in = if status == Status::Dead {
            self.schedule_restart(&name, Some(run.started), run.auto, now)
        } else {
            if let Some(entry) = self.by_name.get_mut(&name) {
                entry.failures = 0;
            }
            None
        };
        Some(Ended {
            name,
            pid,
            status,
            comment,
            restart_in,
        })
    }

    /// Client `name` could not even be started (its file missing, its
    /// interpreter not found): when the restart policy says so, it is tried
    /// again after the backoff, which is returned.
    pub(crate) fn spawn_failed(&mut self, name: &str, auto: bool, now: Instant) -> Option<Duration> {
        self.by_name.entry(name.to_owned()).or_default();
        self.schedule_restart(name, None, auto, now)
    }

    fn schedule_restart(&mut self, name: &str, started: Option<Instant>, auto: bool, now: Instant) -> Option<Duration> {
        let includes = self.policy.restart.includes(name);
        let entry = self.by_name.get_mut(name)?;
        if !includes {
            entry.failures = 0;
            return None;
        }
        let stable = started.is_some_and(|started| now.saturating_duration_since(started) >= RESTART_STABLE_RUN);
        entry.failures = if stable { 1 } else { entry.failures.saturating_add(1) };
        let delay = backoff(entry.failures);
        entry.restart_at = Some(now + delay);
        entry.auto = auto;
        Some(delay)
    }

    /// The kill of a client that is not our child was carried out: it is
    /// no longer known to run.
    pub(crate) fn killed_found(&mut self, name: &str) {
        if let Some(entry) = self.by_name.get_mut(name) {
            if entry.run.as_ref().is_some_and(|run| !run.ours) {
                entry.run = None;
            }
        }
    }

    /// Client `name` is gone (its package removed): no restart of it is
    /// pending any more, and a process found for it is forgotten.
    pub(crate) fn forget(&mut self, name: &str) {
        if let Some(entry) = self.by_name.get_mut(name) {
            entry.restart_at = None;
            if !entry.run.as_ref().is_some_and(|run| run.ours) {
                self.by_name.remove(name);
            }
        }
    }

    /// The nearest time at which [`Children::handle_timeout`] has something to do.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.by_name
            .values()
            .filter_map(|entry| {
                let kill = entry.run.as_ref().and_then(|run| self.kill_deadline(run));
                [kill, entry.restart_at].into_iter().flatten().min()
            })
            .min()
    }

    /// How long a child may take to exit after SIGTERM (the manager
    /// stopping) before SIGKILL.
    pub(crate) fn term_grace(&self) -> Duration {
        self.policy.kill_delay.min(MAX_TERM_GRACE)
    }

    fn kill_deadline(&self, run: &Run) -> Option<Instant> {
        match (run.stop_since, run.kill_sent) {
            (Some(since), false) => Some(since + self.policy.kill_delay),
            _ => None,
        }
    }

    /// What is due at `now`: kills, clients to start again.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<Order> {
        let kill_delay = self.policy.kill_delay;
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
            match run.stop_since {
                Some(since) if !run.kill_sent && since + kill_delay <= now => {
                    run.kill_sent = true;
                    orders.push(Order::Kill {
                        name: name.clone(),
                        group: run.ours.then_some(run.pid),
                        waited: now.saturating_duration_since(since),
                    });
                }
                _ => {}
            }
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
        assert_eq!(kids.poll_timeout(), None);
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
        assert_eq!(kids.poll_timeout(), None, "the first run's kill delay went with it");
    }

    #[test]
    fn stop_request_then_hang_is_killed_after_the_delay_ours_or_found() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Everyone);
        kids.spawned("a", 9, false, t0);
        kids.observe("a", Status::Alive, t0);
        assert_eq!(kids.poll_timeout(), None, "nothing to wait for while it runs");
        kids.observe("a", Status::StopRequest, t0 + secs(10));
        kids.observe("a", Status::StopRequest, t0 + secs(12));
        assert_eq!(kids.poll_timeout(), Some(t0 + secs(25)), "from the first stop-request");
        assert!(kids.handle_timeout(t0 + secs(24)).is_empty());
        assert_eq!(
            kids.handle_timeout(t0 + secs(25)),
            vec![Order::Kill {
                name: "a".into(),
                group: Some(9),
                waited: secs(15)
            }]
        );
        assert!(
            kids.handle_timeout(t0 + secs(26)).is_empty(),
            "SIGKILL once, then wait for the exit"
        );
        assert_eq!(kids.poll_timeout(), None);
        let ended = kids.exited(9, Exit::Signal(libc::SIGKILL), t0 + secs(25)).unwrap();
        assert_eq!(ended.status, Status::Stopped);
        assert_eq!(
            ended.comment,
            "did not exit within 15 s of stop-request: killed by signal 9 (SIGKILL)"
        );
        assert_eq!(ended.restart_in, None, "a plugin asked to stop is not restarted");

        // Found running (not ours): the same kill, with no group, and no exit to wait for.
        assert!(kids.found("b", Some(70), t0));
        assert!(!kids.found("b", Some(70), t0), "the same again changes nothing");
        assert_eq!(kids.pid("b"), Some(70));
        assert!(!kids.is_ours("b"));
        assert!(
            kids.exited(70, Exit::Code(0), t0).is_none(),
            "never reaped: not our child"
        );
        kids.observe("b", Status::StopRequest, t0);
        assert_eq!(
            kids.handle_timeout(t0 + secs(15)),
            vec![Order::Kill {
                name: "b".into(),
                group: None,
                waited: secs(15)
            }]
        );
        kids.killed_found("b");
        assert_eq!(kids.pid("b"), None);
        // A child of ours is never taken for a found one.
        kids.spawned("c", 5, false, t0);
        assert!(!kids.found("c", Some(6), t0));
        assert!(!kids.found("c", None, t0));
        assert_eq!(kids.pid("c"), Some(5));
    }

    #[test]
    fn core_components_are_always_restarted_and_a_failed_spawn_is_tried_again() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Nobody);
        kids.spawned("core-dbmgr", 3, true, t0);
        let ended = kids.exited(3, Exit::Signal(libc::SIGKILL), t0).unwrap();
        assert_eq!(ended.restart_in, Some(secs(1)));
        assert_eq!(kids.spawn_failed("core-dbmgr", true, t0 + secs(1)), Some(secs(2)));
        assert_eq!(kids.spawn_failed("plugin", false, t0), None, "plugins as configured");
        assert!(RestartSet::Only(["x".to_owned()].into()).includes("interface-x"));
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
            assert_eq!(kids.poll_timeout(), Some(now + wait));
            assert!(kids.handle_timeout(now + wait - Duration::from_millis(1)).is_empty());
            now += wait;
            assert_eq!(
                kids.handle_timeout(now),
                vec![Order::Start {
                    name: "a".into(),
                    auto: true
                }]
            );
            assert!(kids.handle_timeout(now).is_empty(), "one start per crash");
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
        assert!(
            kids.handle_timeout(t0 + secs(10)).is_empty(),
            "started by hand meanwhile"
        );
        kids.exited(2, Exit::Code(1), t0).unwrap();
        kids.forget("a");
        assert_eq!(kids.poll_timeout(), None);
        assert!(kids.handle_timeout(t0 + secs(10)).is_empty());
    }

    #[test]
    fn stopping_the_manager_terminates_every_child_cleanly() {
        let t0 = Instant::now();
        let mut kids = children(RestartSet::Everyone);
        kids.spawned("a", 1, false, t0);
        kids.spawned("b", 2, false, t0);
        kids.exited(2, Exit::Code(1), t0).unwrap();
        let orders = kids.stop_all();
        assert_eq!(
            orders,
            [Order::Terminate {
                name: "a".into(),
                group: 1
            }]
        );
        assert_eq!(kids.poll_timeout(), None, "no restart while stopping");
        let ended = kids.exited(1, Exit::Signal(libc::SIGTERM), t0).unwrap();
        assert_eq!(ended.status, Status::Stopped);
        assert_eq!(kids.running().count(), 0);
    }
}
