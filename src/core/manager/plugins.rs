//! Plugin processes the manager starts (PROTOCOL.md §9, §10): the
//! [`Starter`] that runs them, the refusals checked before it is asked, and
//! a process's end shown on its client.

use super::Manager;
use crate::core::status::Status;
use crate::core::wire;

/// Starts plugin processes for the manager: `src/daemon/processes.rs` in the
/// daemon, a fake in tests.
pub(crate) trait Starter {
    /// Starts plugin `name` (`auto`: on the manager's own initiative, run
    /// with `-m`); its pid, or one line saying why not.
    fn start(&mut self, name: &str, auto: bool) -> Result<u32, String>;
}

/// The starter of a manager that starts no process.
pub(crate) struct NoStarter;

impl Starter for NoStarter {
    fn start(&mut self, _name: &str, _auto: bool) -> Result<u32, String> {
        Err("this manager does not start plugins".into())
    }
}

impl Manager {
    /// Starts plugin `name` of `host` through `starter`, unless it is not
    /// ours to start or already runs; its status becomes `starting`.
    /// Returns its pid, or why it was not started.
    pub(crate) fn start_plugin(
        &mut self,
        name: &str,
        host: &str,
        auto: bool,
        starter: &mut dyn Starter,
    ) -> Result<u32, String> {
        let name_shown = wire::truncate(name, 40);
        if host != self.clients.host() {
            return Err(format!(
                "plugin {name_shown} is on host {}, this is {}",
                wire::truncate(host, 40),
                self.clients.host()
            ));
        }
        match self.clients.status(name) {
            None => {
                return Err(format!(
                    "no plugin {name_shown} is installed on {}",
                    self.clients.host()
                ))
            }
            Some(Status::Invalid) => {
                return Err(format!(
                    "the package of plugin {name_shown} is invalid (see its comment)"
                ))
            }
            Some(status @ (Status::Starting | Status::Alive | Status::StopRequest)) => {
                return Err(format!(
                    "plugin {name_shown} is already running (its status is {status})"
                ))
            }
            Some(_) => {}
        }
        let pid = starter.start(name, auto)?;
        if self.clients.process_started(name, pid, self.now) {
            self.mark_changed();
        }
        Ok(pid)
    }

    /// A plugin process the manager started has exited (src/core/children.rs
    /// says what `status` that means); its client shows it.
    /// A `dead` one is also announced as `plugin.status` `dead`, as the
    /// dead rule does (§8: other components listen for it).
    pub(crate) fn process_ended(&mut self, name: &str, status: Status, comment: String) -> bool {
        let changed = self.clients.process_ended(name, status, comment, self.now);
        if changed {
            if status == Status::Dead {
                let frames = wire::encode_status_of("plugin", name, self.clients.host(), status, None, self.now.unix);
                self.statuses.push(frames);
            }
            self.mark_changed();
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{body, frames, manager_with};
    use super::*;
    use crate::core::packages::{Package, PackageChange};
    use serde_json::Value;

    /// Starts every plugin as pid 100, 101..., or refuses with `refusal`.
    struct FakeStarter {
        next_pid: u32,
        refusal: Option<String>,
        started: Vec<(String, bool)>,
    }

    impl Starter for FakeStarter {
        fn start(&mut self, name: &str, auto: bool) -> Result<u32, String> {
            if let Some(reason) = &self.refusal {
                return Err(reason.clone());
            }
            self.started.push((name.to_owned(), auto));
            self.next_pid += 1;
            Ok(self.next_pid)
        }
    }

    fn start_request(manager: &mut Manager, starter: &mut FakeStarter, body: &str) -> Value {
        let reply = manager.handle_request_with(
            &frames(&[b"MDPC01", b"manager", b"plugin.start.do", body.as_bytes()]),
            starter,
        );
        assert_eq!(
            &reply.frames[..3],
            &frames(&[b"MDPC01", b"manager", b"plugin.start.result"])[..]
        );
        body_of(&reply.frames[3])
    }

    fn body_of(frame: &[u8]) -> Value {
        body(frame)
    }

    #[test]
    fn plugin_start_starts_once_and_refuses_with_a_reason() {
        let mut manager = manager_with(&["a"]);
        manager.apply_package_change(PackageChange::Updated {
            name: "broken".into(),
            package: Package::Invalid { reason: "bad".into() },
        });
        manager.take_publications(0.0);
        let mut starter = FakeStarter {
            next_pid: 99,
            refusal: None,
            started: Vec::new(),
        };
        let result = start_request(
            &mut manager,
            &mut starter,
            r#"{"type": "plugin", "name": "a", "host": "box"}"#,
        );
        assert_eq!(
            result,
            serde_json::json!({"type": "plugin", "name": "a", "host": "box", "status": true, "reason": ""})
        );
        assert_eq!(starter.started, [("a".to_owned(), false)]);
        assert_eq!(manager.clients().status("a"), Some(Status::Starting));
        assert_eq!(manager.clients().get("a").map(|client| client.pid), Some(100));
        assert!(manager.take_publications(1.0).is_some(), "the start is published");

        let refusals = [
            (r#"{"type": "plugin", "name": "a", "host": "box"}"#, "already running"),
            (r#"{"type": "plugin", "name": "zz", "host": "box"}"#, "no plugin zz"),
            (
                r#"{"type": "plugin", "name": "a", "host": "elsewhere"}"#,
                "on host elsewhere",
            ),
            (r#"{"type": "plugin", "name": "broken", "host": "box"}"#, "invalid"),
            (r#"{"type": "core", "name": "a", "host": "box"}"#, "only plugins"),
            (r#"{"type": "plugin", "host": "box"}"#, "no plugin name"),
        ];
        for (body, reason) in refusals {
            let result = start_request(&mut manager, &mut starter, body);
            assert_eq!(result["status"], false, "{body}");
            assert!(result["reason"].as_str().unwrap().contains(reason), "{body}: {result}");
        }
        assert_eq!(starter.started.len(), 1, "nothing else was started");

        // The starter's own refusal (its process runs, its script is missing) is the reply's.
        manager.process_ended("a", Status::Dead, "exit status 1".into());
        assert_eq!(manager.clients().get("a").map(|client| client.pid), Some(0));
        starter.refusal = Some("bin/a.py is missing".into());
        let result = start_request(
            &mut manager,
            &mut starter,
            r#"{"type": "plugin", "name": "a", "host": "box"}"#,
        );
        assert_eq!(
            (result["status"].clone(), result["reason"].clone()),
            (Value::Bool(false), "bin/a.py is missing".into())
        );
        assert_eq!(manager.clients().status("a"), Some(Status::Dead));
    }
}
