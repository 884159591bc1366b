//! The processes of the clients (PROTOCOL.md §10): starting plugins,
//! interfaces and core components, what their exits mean, the kill after
//! a stop-request, restarts, and processes found already running. The
//! state is the manager's one model of them (`core::children`); the
//! daemon only executes what is decided here, through [`Processes`]
//! (spawn, kill), and reports exits ([`Manager::handle_exit`]) and what it
//! found running ([`Manager::set_found`]).

use super::Manager;
use crate::core::children::{Ended, Exit, Order};
use crate::core::kind::{self, Kind};
use crate::core::launch::Spawn;
use crate::core::status::Status;
use crate::core::wire;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a process was not spawned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SpawnError {
    /// A process of that script runs already (not ours): its pid.
    AlreadyRunning(u32),
    /// One line: the file missing, the interpreter not found...
    Failed(String),
}

/// The executor of process effects: `src/daemon/processes.rs` in the
/// daemon, a fake in tests.
pub(crate) trait Processes {
    /// Starts `spawn` as a child; its pid, or why not.
    fn spawn(&mut self, spawn: &Spawn) -> Result<u32, SpawnError>;
    /// SIGKILL to every process of client `name`: our child's process
    /// group `group`, and each process whose command line runs `script`
    /// (checked again just before its kill). The pids killed.
    fn kill(&mut self, name: &str, group: Option<u32>, script: Option<&Path>) -> Vec<u32>;
}

/// The executor of a manager that starts nothing.
pub(crate) struct NoProcesses;

impl Processes for NoProcesses {
    fn spawn(&mut self, _spawn: &Spawn) -> Result<u32, SpawnError> {
        Err(SpawnError::Failed("this manager does not start plugins".into()))
    }

    fn kill(&mut self, _name: &str, _group: Option<u32>, _script: Option<&Path>) -> Vec<u32> {
        Vec::new()
    }
}

/// What happened to the processes, for the log (the daemon words it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProcessEvent {
    Started {
        name: String,
        pid: u32,
        why: &'static str,
    },
    NotStarted {
        name: String,
        reason: String,
        retry_in: Option<Duration>,
    },
    /// Not started on the manager's own initiative: it runs already (ours or found).
    AlreadyRunning {
        name: String,
        pid: u32,
    },
    Killed {
        name: String,
        pids: Vec<u32>,
        waited: Duration,
    },
}

impl Manager {
    /// Starts client `name` (a client key) of `host` through `processes`,
    /// unless it is not one that runs here or already runs; its status
    /// becomes `starting`. `auto`: on the manager's own initiative
    /// (auto_startup, a restart, a core component). Returns its pid, or
    /// why it was not started.
    pub(crate) fn start_client(
        &mut self,
        name: &str,
        host: &str,
        auto: bool,
        processes: &mut dyn Processes,
    ) -> Result<u32, String> {
        let (kind, bare) = kind::split(name);
        let shown = format!("{kind} {}", wire::truncate(bare, 40));
        if host != self.clients.host() {
            return Err(format!(
                "{shown} is on host {}, this is {}",
                wire::truncate(host, 40),
                self.clients.host()
            ));
        }
        if !kind.runs() {
            return Err(format!("{shown} is data only: a brain never runs"));
        }
        if kind == Kind::Core && !auto {
            return Err(format!("{shown} is started by the manager itself"));
        }
        match self.clients.status(name) {
            None => {
                return Err(format!(
                    "no {kind} {} is installed on {}",
                    wire::truncate(bare, 40),
                    self.clients.host()
                ))
            }
            Some(Status::Invalid) => return Err(format!("the package of {shown} is invalid (see its comment)")),
            _ => {}
        }
        if let Some(pid) = self.children.pid(name) {
            return Err(format!("{shown} is already running (pid {pid})"));
        }
        if let Some(status @ (Status::Starting | Status::Alive | Status::StopRequest)) = self.clients.status(name) {
            if kind != Kind::Core {
                return Err(format!("{shown} is already running (its status is {status})"));
            }
        }
        let test_option = self.test_option(name);
        let spawn = match self.launch.spawn(name, test_option.as_deref()) {
            Ok(spawn) => spawn,
            Err(reason) => return Err(self.not_started(name, reason)),
        };
        match processes.spawn(&spawn) {
            Ok(pid) => {
                self.children.spawned(name, pid, auto, self.now.mono);
                if self.clients.process_started(name, pid, self.now) {
                    self.mark_changed();
                }
                Ok(pid)
            }
            Err(SpawnError::AlreadyRunning(pid)) => {
                self.set_found(name, Some(pid));
                Err(format!("{shown} is already running (pid {pid})"))
            }
            Err(SpawnError::Failed(reason)) => Err(self.not_started(name, reason)),
        }
    }

    /// Client `name` could not be started (its file missing, its
    /// interpreter not found): its status says so, `dead` with the reason
    /// in `comment`, whoever asked. Returns the reason.
    fn not_started(&mut self, name: &str, reason: String) -> String {
        self.process_ended(name, Status::Dead, format!("not started: {reason}"));
        reason
    }

    /// `-T <test_option>` when dbmgr says `test_mode` is true (§12).
    fn test_option(&self, name: &str) -> Option<String> {
        if self.clients.parameter_is_true(name, "test_mode") != Some(true) {
            return None;
        }
        match self.clients.parameter_value(name, "test_option") {
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(serde_json::Value::Null) | None => Some(String::new()),
            Some(other) => Some(other.to_string()),
        }
    }

    /// Starts the core components `names` (in that order) as clients
    /// `core-<name>.<host>`: each spawned at once; one that cannot be is
    /// `dead` with the reason, and tried again with the backoff.
    pub(crate) fn start_core(&mut self, names: &[String], processes: &mut dyn Processes) -> Vec<ProcessEvent> {
        let mut events = Vec::new();
        for name in names {
            let key = kind::key(Kind::Core, name);
            if self.clients.add_core(name, self.now) {
                self.mark_changed();
            }
            events.push(self.start_on_own(&key, "a core component of this host", processes));
        }
        events
    }

    /// Starts `name` on the manager's own initiative; a failure shows on
    /// its client and, for a core component, is tried again.
    fn start_on_own(&mut self, name: &str, why: &'static str, processes: &mut dyn Processes) -> ProcessEvent {
        let host = self.clients.host().to_owned();
        match self.start_client(name, &host, true, processes) {
            Ok(pid) => ProcessEvent::Started {
                name: name.to_owned(),
                pid,
                why,
            },
            Err(_) if self.children.pid(name).is_some() => ProcessEvent::AlreadyRunning {
                name: name.to_owned(),
                pid: self.children.pid(name).unwrap_or(0),
            },
            Err(reason) => {
                // A core component that could not be started (not one found
                // running already) is tried again.
                let failed = self.children.pid(name).is_none() && self.clients.status(name) == Some(Status::Dead);
                let retry_in = if kind::split(name).0 == Kind::Core && failed {
                    self.children.spawn_failed(name, true, self.now.mono)
                } else {
                    None
                };
                ProcessEvent::NotStarted {
                    name: name.to_owned(),
                    reason,
                    retry_in,
                }
            }
        }
    }

    /// The core components to start at the next turn (`run -a -d -x -s
    /// -b`, `[manager] core`), in order.
    pub(crate) fn set_core(&mut self, names: Vec<String>) {
        self.core_pending = names;
    }

    /// Starts each plugin or interface whose `auto_startup` from dbmgr is
    /// known for the first time and true (`core::autostart`).
    fn auto_start(&mut self, processes: &mut dyn Processes) -> Vec<ProcessEvent> {
        let clients = &self.clients;
        let values = clients
            .iter()
            .filter(|(name, client)| client.is_valid() && kind::split(name).0.user_started())
            .map(|(name, _)| (name, clients.parameter_is_true(name, "auto_startup")));
        let due = self.autostart.due(values);
        due.iter()
            .map(|name| self.start_on_own(name, "its auto_startup is true", processes))
            .collect()
    }

    /// A child of ours exited (the daemon reaped it): its client shows how
    /// (src/core/children.rs says what `status` that means). A `dead` one
    /// is also announced as `plugin.status` `dead`, as the dead rule does
    /// (§9: other components listen for it). `None` if `pid` is no child
    /// of ours.
    pub(crate) fn handle_exit(&mut self, pid: u32, exit: Exit) -> Option<Ended> {
        let ended = self.children.exited(pid, exit, self.now.mono)?;
        self.process_ended(&ended.name, ended.status, ended.comment.clone());
        Some(ended)
    }

    /// Client `name`'s process ended with `status`, `comment` saying how.
    pub(crate) fn process_ended(&mut self, name: &str, status: Status, comment: String) -> bool {
        let changed = self.clients.process_ended(name, status, comment, self.now);
        if changed {
            if status == Status::Dead {
                let (kind, bare) = kind::split(name);
                let frames =
                    wire::encode_status_of(kind.as_str(), bare, self.clients.host(), status, None, self.now.unix);
                self.statuses.push(frames);
            }
            self.mark_changed();
        }
        changed
    }

    /// What is to be done with the processes now, carried out through
    /// `processes`: the core components at the first call, the kills and
    /// restarts that are due, and `auto_startup`'s starts.
    pub(crate) fn handle_process_timeouts(&mut self, processes: &mut dyn Processes) -> Vec<ProcessEvent> {
        let mut events = Vec::new();
        if !self.core_pending.is_empty() {
            let core = std::mem::take(&mut self.core_pending);
            events.extend(self.start_core(&core, processes));
        }
        for order in self.children.handle_timeout(self.now.mono) {
            match order {
                Order::Start { name, .. } => {
                    events.push(self.start_on_own(&name, "the restart policy", processes));
                }
                Order::Kill { name, group, waited } => {
                    let script = self.launch.script(&name);
                    let pids = processes.kill(&name, group, script.as_deref());
                    if group.is_none() {
                        // Found running, not ours: no exit will say it.
                        self.children.killed_found(&name);
                        let secs = waited.as_secs_f64();
                        let comment = if pids.is_empty() {
                            format!("exited within {secs} s of stop-request")
                        } else {
                            format!("did not exit within {secs} s of stop-request: killed (SIGKILL)")
                        };
                        self.process_ended(&name, Status::Stopped, comment);
                    }
                    events.push(ProcessEvent::Killed { name, pids, waited });
                }
                Order::Terminate { .. } => {}
            }
        }
        events.extend(self.auto_start(processes));
        events
    }

    /// The scripts of the clients that run and have no child of ours: the
    /// daemon looks for processes running them (`set_found`).
    pub(crate) fn scripts_to_find(&self) -> Vec<(String, PathBuf)> {
        self.clients
            .iter()
            .filter(|(name, client)| kind::split(name).0.runs() && client.is_valid() && !self.children.is_ours(name))
            .filter_map(|(name, _)| Some((name.to_owned(), self.launch.script(name)?)))
            .collect()
    }

    /// A process not started by us runs client `name` as `pid` (`None`:
    /// none any more). Its pid is listed; a stop-request then kills it.
    pub(crate) fn set_found(&mut self, name: &str, pid: Option<u32>) -> bool {
        if self.children.is_ours(name) || self.clients.get(name).is_none() {
            return false;
        }
        let changed = self.children.found(name, pid, self.now.mono);
        if self.clients.set_found_pid(name, pid.unwrap_or(0)) {
            self.mark_changed();
        }
        changed
    }

    /// The manager stops: SIGTERM orders for each child of ours.
    pub(crate) fn stop_children(&mut self) -> Vec<(String, u32)> {
        self.children
            .stop_all()
            .into_iter()
            .filter_map(|order| match order {
                Order::Terminate { name, group } => Some((name, group)),
                _ => None,
            })
            .collect()
    }

    /// Our children still running: `(name, pid)`.
    pub(crate) fn running_children(&self) -> Vec<(String, u32)> {
        self.children
            .running()
            .map(|(name, pid)| (name.to_owned(), pid))
            .collect()
    }

    /// How long children get after SIGTERM before SIGKILL, at shutdown.
    pub(crate) fn term_grace(&self) -> Duration {
        self.children.term_grace()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{body, frames, manager_with};
    use super::*;
    use crate::core::children::Policy;
    use crate::core::launch::Launch;
    use crate::core::packages::{Package, PackageChange};
    use serde_json::Value;

    /// Spawns every client as pid 100, 101..., or refuses with `refusal`;
    /// kills by listing what it was asked.
    #[derive(Default)]
    struct FakeProcesses {
        next_pid: u32,
        refusal: Option<SpawnError>,
        spawned: Vec<Spawn>,
        killed: Vec<(String, Option<u32>, Option<PathBuf>)>,
    }

    impl Processes for FakeProcesses {
        fn spawn(&mut self, spawn: &Spawn) -> Result<u32, SpawnError> {
            if let Some(refusal) = &self.refusal {
                return Err(refusal.clone());
            }
            self.spawned.push(spawn.clone());
            self.next_pid += 1;
            Ok(self.next_pid)
        }

        fn kill(&mut self, name: &str, group: Option<u32>, script: Option<&Path>) -> Vec<u32> {
            self.killed.push((name.to_owned(), group, script.map(Path::to_owned)));
            vec![7, 8]
        }
    }

    fn fake() -> FakeProcesses {
        FakeProcesses {
            next_pid: 99,
            ..FakeProcesses::default()
        }
    }

    fn with_launch(names: &[&str]) -> Manager {
        let mut manager = manager_with(names);
        manager.set_processes(
            Launch {
                python: "/py".into(),
                packages_dir: "/p".into(),
                core_bin_dir: Some("/bin".into()),
                ..Launch::default()
            },
            Policy {
                kill_delay: Duration::from_secs(15),
                ..Policy::default()
            },
        );
        manager
    }

    fn start_request(manager: &mut Manager, processes: &mut FakeProcesses, request: &str) -> Value {
        let reply = manager.handle_request_with(
            &frames(&[b"MDPC01", b"manager", b"plugin.start.do", request.as_bytes()]),
            processes,
        );
        assert_eq!(
            &reply.frames[..3],
            &frames(&[b"MDPC01", b"manager", b"plugin.start.result"])[..]
        );
        body(&reply.frames[3])
    }

    #[test]
    fn plugin_start_starts_once_and_refuses_with_a_reason() {
        let mut manager = with_launch(&["a"]);
        manager.apply_package_change(PackageChange::Updated {
            name: "broken".into(),
            package: Package::Invalid { reason: "bad".into() },
        });
        manager.take_publications(0.0);
        let mut processes = fake();
        let result = start_request(
            &mut manager,
            &mut processes,
            r#"{"type": "plugin", "name": "a", "host": "box"}"#,
        );
        assert_eq!(
            result,
            serde_json::json!({"type": "plugin", "name": "a", "host": "box", "status": true, "reason": ""})
        );
        assert_eq!(processes.spawned.len(), 1);
        assert_eq!(processes.spawned[0].script, PathBuf::from("/p/plugin_a/bin/a.py"));
        assert_eq!(processes.spawned[0].args, ["-f"]);
        assert_eq!(manager.clients().status("a"), Some(Status::Starting));
        assert_eq!(manager.clients().get("a").map(|client| client.pid), Some(100));
        assert!(manager.take_publications(1.0).is_some(), "the start is published");

        let refusals = [
            (
                r#"{"type": "plugin", "name": "a", "host": "box"}"#,
                "already running (pid 100)",
            ),
            (r#"{"type": "plugin", "name": "zz", "host": "box"}"#, "no plugin zz"),
            (
                r#"{"type": "plugin", "name": "a", "host": "elsewhere"}"#,
                "on host elsewhere",
            ),
            (r#"{"type": "plugin", "name": "broken", "host": "box"}"#, "invalid"),
            (
                r#"{"type": "core", "name": "a", "host": "box"}"#,
                "started by the manager itself",
            ),
            (r#"{"type": "brain", "name": "a", "host": "box"}"#, "a brain never runs"),
            (r#"{"type": "xpl", "name": "a", "host": "box"}"#, "no such type"),
            (r#"{"type": "plugin", "host": "box"}"#, "no plugin name"),
        ];
        for (body, reason) in refusals {
            let result = start_request(&mut manager, &mut processes, body);
            assert_eq!(result["status"], false, "{body}");
            assert!(result["reason"].as_str().unwrap().contains(reason), "{body}: {result}");
        }
        assert_eq!(processes.spawned.len(), 1, "nothing else was started");

        // Its exit is reported: dead, pid 0, and the executor's refusal is the reply's.
        let ended = manager.handle_exit(100, Exit::Code(1)).unwrap();
        assert_eq!((ended.status, ended.comment.as_str()), (Status::Dead, "exit status 1"));
        assert_eq!(manager.clients().get("a").map(|client| client.pid), Some(0));
        processes.refusal = Some(SpawnError::Failed("bin/a.py is missing".into()));
        let result = start_request(
            &mut manager,
            &mut processes,
            r#"{"type": "plugin", "name": "a", "host": "box"}"#,
        );
        assert_eq!(
            (result["status"].clone(), result["reason"].clone()),
            (Value::Bool(false), "bin/a.py is missing".into())
        );
        let history = manager.clients().history("a").unwrap();
        assert_eq!(
            (history[0].status, history[0].comment.as_deref()),
            (Status::Dead, Some("not started: bin/a.py is missing")),
            "the status says why"
        );
        // One found running: its pid listed, the start refused with it.
        processes.refusal = Some(SpawnError::AlreadyRunning(4242));
        let result = start_request(
            &mut manager,
            &mut processes,
            r#"{"type": "plugin", "name": "a", "host": "box"}"#,
        );
        assert!(
            result["reason"]
                .as_str()
                .unwrap()
                .contains("already running (pid 4242)"),
            "{result}"
        );
        assert_eq!(manager.clients().get("a").map(|client| client.pid), Some(4242));
    }

    fn status(manager: &mut Manager, kind: &str, name: &str, event: &str) {
        let body = format!(r#"{{"type": "{kind}", "name": "{name}", "host": "box", "event": "{event}"}}"#);
        manager.handle_status_message(&frames(&[b"plugin.status.1_2.0_1", body.as_bytes()]));
    }

    #[test]
    fn a_stop_request_kills_everything_of_the_plugin_after_the_delay_ours_or_found() {
        let mut manager = with_launch(&["a", "b"]);
        let mut processes = fake();
        let t0 = manager.now;
        let host = "box".to_owned();
        manager.start_client("a", &host, false, &mut processes).unwrap();
        assert!(manager.set_found("b", Some(555)));
        assert_eq!(manager.clients().get("b").map(|client| client.pid), Some(555));
        status(&mut manager, "plugin", "a", "stop-request");
        status(&mut manager, "plugin", "b", "stop-request");
        // No per-turn sync: the status itself set the deadline.
        assert_eq!(manager.children.poll_timeout(), Some(t0.mono + Duration::from_secs(15)));
        manager.set_now(t0.later(Duration::from_secs(14)));
        assert!(manager.handle_process_timeouts(&mut processes).is_empty());
        manager.set_now(t0.later(Duration::from_secs(15)));
        let events = manager.handle_process_timeouts(&mut processes);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            processes.killed,
            [
                ("a".to_owned(), Some(100), Some(PathBuf::from("/p/plugin_a/bin/a.py"))),
                ("b".to_owned(), None, Some(PathBuf::from("/p/plugin_b/bin/b.py"))),
            ]
        );
        // The found one is stopped now; ours when its exit is reaped.
        assert_eq!(manager.clients().get("b").map(|client| client.pid), Some(0));
        assert_eq!(manager.clients().status("b"), Some(Status::Stopped));
        let ended = manager.handle_exit(100, Exit::Signal(libc::SIGKILL)).unwrap();
        assert_eq!(ended.status, Status::Stopped);
        assert_eq!(
            ended.comment,
            "did not exit within 15 s of stop-request: killed by signal 9 (SIGKILL)"
        );
        assert!(manager.handle_process_timeouts(&mut processes).is_empty(), "once");
        assert_eq!(
            manager.start_client("b", &host, false, &mut processes),
            Ok(101),
            "starts again"
        );
    }

    #[test]
    fn auto_startup_starts_each_plugin_once_when_dbmgr_says_y() {
        let mut manager = with_launch(&["p", "q"]);
        manager.enable_dbmgr(crate::core::bus::dbmgr::Limits::default());
        manager.take_dbmgr_requests();
        let mut processes = fake();
        assert!(
            manager.handle_process_timeouts(&mut processes).is_empty(),
            "not known yet"
        );
        for (name, value) in [("p", "Y"), ("q", "N")] {
            let answer = format!(
                r#"{{"status": true, "reason": "", "type": "plugin", "name": "{name}", "host": "box", "data": {{"auto_startup": "{value}"}}}}"#
            );
            let reply = frames(&[b"", b"MDPC01", b"dbmgr", b"config.result", answer.as_bytes()]);
            assert_eq!(manager.handle_dbmgr_reply(&reply), Ok(name.to_owned()));
        }
        let events = manager.handle_process_timeouts(&mut processes);
        assert!(
            matches!(&events[..], [ProcessEvent::Started { pid: 100, .. }]),
            "{events:?}"
        );
        assert_eq!(processes.spawned[0].script, PathBuf::from("/p/plugin_p/bin/p.py"));
        assert_eq!(processes.spawned[0].args, ["-f"], "no -m");
        assert!(manager.handle_process_timeouts(&mut processes).is_empty(), "once");
    }

    #[test]
    fn the_dbmgr_we_run_coming_up_has_its_unanswered_questions_asked_at_once() {
        let mut manager = with_launch(&["p"]);
        manager.enable_dbmgr(crate::core::bus::dbmgr::Limits::default());
        let mut processes = fake();
        manager.start_core(&["dbmgr".into()], &mut processes);
        assert_eq!(
            manager.take_dbmgr_requests().len(),
            1,
            "asked at once, dbmgr not up yet"
        );
        let t0 = manager.now;
        manager.set_now(t0.later(Duration::from_secs(6)));
        assert!(manager.take_dbmgr_requests().is_empty(), "no answer: backing off");
        status(&mut manager, "core", "dbmgr", "starting");
        assert!(manager.take_dbmgr_requests().is_empty());
        status(&mut manager, "core", "dbmgr", "alive");
        assert_eq!(manager.take_dbmgr_requests().len(), 1, "asked again as dbmgr comes up");
    }

    #[test]
    fn core_components_start_in_order_come_back_when_they_die_and_a_missing_one_is_dead_with_why() {
        let mut manager = with_launch(&[]);
        let mut processes = fake();
        let events = manager.start_core(&["dbmgr".into(), "admin".into()], &mut processes);
        assert_eq!(events.len(), 2);
        let scripts: Vec<_> = processes.spawned.iter().map(|spawn| spawn.script.clone()).collect();
        assert_eq!(
            scripts,
            [PathBuf::from("/bin/dbmgr.py"), PathBuf::from("/bin/admin.py")]
        );
        assert_eq!(manager.clients().get("core-dbmgr").map(|client| client.pid), Some(100));
        status(&mut manager, "core", "dbmgr", "alive");
        assert_eq!(manager.clients().status("core-dbmgr"), Some(Status::Alive));
        status(&mut manager, "core", "manager", "alive");
        let t0 = manager.now;
        let ended = manager.handle_exit(100, Exit::Signal(libc::SIGKILL)).unwrap();
        assert_eq!(ended.restart_in, Some(Duration::from_secs(1)), "always restarted");
        let published: Vec<_> = manager.take_publications(1.0).unwrap().collect();
        assert_eq!(
            published[0][1],
            br#"{"type": "core", "name": "dbmgr", "host": "box", "event": "dead"}"#
        );
        manager.set_now(t0.later(Duration::from_secs(1)));
        let events = manager.handle_process_timeouts(&mut processes);
        assert!(
            matches!(&events[..], [ProcessEvent::Started { pid: 102, .. }]),
            "{events:?}"
        );

        processes.refusal = Some(SpawnError::Failed("/bin/scenario.py is missing".into()));
        let events = manager.start_core(&["scenario".into()], &mut processes);
        assert!(
            matches!(&events[..], [ProcessEvent::NotStarted { retry_in: Some(_), .. }]),
            "{events:?}"
        );
        assert_eq!(manager.clients().status("core-scenario"), Some(Status::Dead));
    }
}
