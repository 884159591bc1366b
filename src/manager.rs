//! The manager's core, without I/O: requests in, replies out; status
//! messages and package changes in, publications out.
//!
//! The event loop feeds it decoded frames and the clock, and sends what it
//! returns. Everything here is tested without a socket.

use crate::clients::{Clients, StatusRejected};
use crate::packages::PackageChange;
use crate::wire::{self, BadRequest, BadStatusMessage, Framing, Request};

pub const LIST_GET: &str = "clients.list.get";
pub const LIST_RESULT: &str = "clients.list.result";
pub const DETAIL_GET: &str = "clients.detail.get";
pub const DETAIL_RESULT: &str = "clients.detail.result";
pub const ERROR_ACTION: &str = "error";
pub const LIST_CATEGORY: &str = "clients.list";
pub const DETAIL_CATEGORY: &str = "clients.detail";
/// The prefix the manager subscribes to.
pub const STATUS_SUBSCRIPTION: &str = "plugin";
pub const START_DO: &str = "plugin.start.do";
pub const START_RESULT: &str = "plugin.start.result";

/// Starts plugin processes for the manager: `src/processes.rs` in the
/// daemon, a fake in tests.
pub trait Starter {
    /// Starts plugin `name` (`auto`: on the manager's own initiative, run
    /// with `-m`); its pid, or one line saying why not.
    fn start(&mut self, name: &str, auto: bool) -> Result<u32, String>;
}

/// The starter of a manager that starts no process.
pub struct NoStarter;

impl Starter for NoStarter {
    fn start(&mut self, _name: &str, _auto: bool) -> Result<u32, String> {
        Err("this manager does not start plugins".into())
    }
}

/// What became of a message received on the SUB socket, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOutcome {
    Changed {
        id: String,
        status: crate::status::Status,
    },
    Unchanged,
    /// Not a status message (another category or client type).
    NotForUs,
    Malformed(BadStatusMessage),
    Rejected(StatusRejected),
}

/// A reply to send, and the problem to log when it is an `error` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub frames: Vec<Vec<u8>>,
    pub error: Option<String>,
}

/// The clients map, the service name, and the serialised views, which are
/// computed once per change however many requests and publications use them.
#[derive(Debug)]
pub struct Manager {
    clients: Clients,
    service: String,
    /// Changed since the last publication.
    dirty: bool,
    cached_list: Option<String>,
    cached_detail: Option<String>,
}

impl Manager {
    pub fn new(host: impl Into<String>, service: impl Into<String>) -> Manager {
        Manager {
            clients: Clients::new(host),
            service: service.into(),
            dirty: false,
            cached_list: None,
            cached_detail: None,
        }
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// Answers one request. Always returns a reply: a REP socket that does
    /// not answer is stuck for good.
    pub fn handle_request(&mut self, frames: &[Vec<u8>]) -> Reply {
        self.handle_request_with(frames, &mut NoStarter)
    }

    /// [`Manager::handle_request`], with `starter` for `plugin.start.do`.
    pub fn handle_request_with(&mut self, frames: &[Vec<u8>], starter: &mut dyn Starter) -> Reply {
        match wire::decode_request(frames).and_then(|request| self.route(request, starter)) {
            Ok((framing, action, body)) => Reply {
                frames: wire::encode_reply(framing, action, body),
                error: None,
            },
            Err(BadRequest { framing, reason }) => Reply {
                frames: wire::encode_reply(framing, ERROR_ACTION, wire::error_body(&reason)),
                error: Some(reason),
            },
        }
    }

    fn route(
        &mut self,
        request: Request,
        starter: &mut dyn Starter,
    ) -> Result<(Framing, &'static str, String), BadRequest> {
        if let Some(service) = request.service() {
            if service != self.service.as_bytes() {
                let reason = format!(
                    "unknown service \"{}\", this is \"{}\"",
                    wire::truncate(&String::from_utf8_lossy(service), 40),
                    self.service
                );
                return Err(BadRequest {
                    framing: request.framing,
                    reason,
                });
            }
        }
        if request.action == START_DO {
            let body = self.start_request(&request.body, starter);
            return Ok((request.framing, START_RESULT, body));
        }
        let (action, view) = match request.action.as_str() {
            LIST_GET => (LIST_RESULT, self.list_json()),
            DETAIL_GET => (DETAIL_RESULT, self.detail_json()),
            other => {
                let reason = format!(
                    "unknown action \"{}\" (expected {LIST_GET} or {DETAIL_GET})",
                    wire::truncate(other, 40)
                );
                return Err(BadRequest {
                    framing: request.framing,
                    reason,
                });
            }
        };
        Ok((request.framing, action, clients_body(view)))
    }

    /// Answers `plugin.start.do` `{"type", "name", "host"}` (PROTOCOL.md
    /// §9) with the body of `plugin.start.result`: the same three fields,
    /// `status` and `reason` (empty when started).
    fn start_request(
        &mut self,
        body: &serde_json::Map<String, serde_json::Value>,
        starter: &mut dyn Starter,
    ) -> String {
        let text = |key: &str| body.get(key).and_then(serde_json::Value::as_str);
        let kind = text("type").unwrap_or("plugin");
        let name = text("name").unwrap_or("");
        let host = text("host").unwrap_or(self.clients.host()).to_owned();
        let outcome = if kind != "plugin" {
            Err(format!("only plugins are started, not a {}", wire::truncate(kind, 20)))
        } else if name.is_empty() {
            Err("no plugin name in the request".to_owned())
        } else {
            self.start_plugin(name, &host, false, starter).map(|_| ())
        };
        #[derive(serde::Serialize)]
        struct StartResult<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            name: &'a str,
            host: &'a str,
            status: bool,
            reason: &'a str,
        }
        let reason = outcome.as_ref().err().map_or("", String::as_str);
        crate::pyjson::to_string(&StartResult {
            kind,
            name,
            host: &host,
            status: outcome.is_ok(),
            reason,
        })
    }

    /// Starts plugin `name` of `host` through `starter`, unless it is not
    /// ours to start or already runs; its status becomes `starting`.
    /// Returns its pid, or why it was not started.
    pub fn start_plugin(
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
            Some(crate::status::Status::Invalid) => {
                return Err(format!(
                    "the package of plugin {name_shown} is invalid (see its comment)"
                ))
            }
            Some(
                status @ (crate::status::Status::Starting
                | crate::status::Status::Alive
                | crate::status::Status::StopRequest),
            ) => {
                return Err(format!(
                    "plugin {name_shown} is already running (its status is {status})"
                ))
            }
            Some(_) => {}
        }
        let pid = starter.start(name, auto)?;
        if self.clients.process_started(name, pid) {
            self.mark_changed();
        }
        Ok(pid)
    }

    /// A plugin process the manager started has exited (src/children.rs
    /// says what `status` that means); its client shows it.
    pub fn process_ended(&mut self, name: &str, status: crate::status::Status, comment: String) -> bool {
        let changed = self.clients.process_ended(name, status, comment);
        if changed {
            self.mark_changed();
        }
        changed
    }

    /// Applies one message received on the SUB socket.
    pub fn handle_status_message(&mut self, frames: &[Vec<u8>]) -> StatusOutcome {
        let update = match wire::decode_status(frames) {
            Ok(Some(update)) => update,
            Ok(None) => return StatusOutcome::NotForUs,
            Err(error) => return StatusOutcome::Malformed(error),
        };
        let host = update.host.unwrap_or_else(|| self.clients.host().to_owned());
        match self
            .clients
            .set_status(&update.name, &host, update.status, update.comment)
        {
            Ok(true) => {
                self.mark_changed();
                StatusOutcome::Changed {
                    id: self.clients.client_id(&update.name),
                    status: update.status,
                }
            }
            Ok(false) => StatusOutcome::Unchanged,
            Err(rejected) => StatusOutcome::Rejected(rejected),
        }
    }

    /// Applies what a rescan found.
    pub fn apply_package_changes(&mut self, changes: Vec<PackageChange>) {
        for change in changes {
            self.apply_package_change(change);
        }
    }

    /// Applies one change of a rescan; `false` when it changed no client
    /// (a package re-read to the same content, a removal of an unknown one).
    pub fn apply_package_change(&mut self, change: PackageChange) -> bool {
        let changed = match change {
            PackageChange::Updated { name, package } => self.clients.upsert_package(&name, package),
            PackageChange::Removed { name } => self.clients.remove_package(&name),
        };
        if changed {
            self.mark_changed();
        }
        changed
    }

    /// The publications owed since the last call: `clients.list` then
    /// `clients.detail`, once however many changes happened meanwhile.
    /// Each is built when the iterator reaches it, so the list can be sent
    /// before the detail (megabytes with many plugins) is serialised. They
    /// are no longer owed once this returns: whatever of the iterator is
    /// left unconsumed is not published until the next change.
    pub fn take_publications(&mut self, unix_time: f64) -> Option<Publications<'_>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        Some(Publications {
            manager: self,
            unix_time,
            next: Some(LIST_CATEGORY),
        })
    }

    fn mark_changed(&mut self) {
        self.dirty = true;
        self.cached_list = None;
        self.cached_detail = None;
    }

    fn list_json(&mut self) -> &str {
        self.cached_list.get_or_insert_with(|| self.clients.list_json())
    }

    fn detail_json(&mut self) -> &str {
        self.cached_detail.get_or_insert_with(|| self.clients.detail_json())
    }
}

/// The publications of one change: `clients.list`, then `clients.detail`,
/// each `[msg_id, body]`, serialised (or taken from the cache) on demand.
pub struct Publications<'a> {
    manager: &'a mut Manager,
    unix_time: f64,
    next: Option<&'static str>,
}

impl Iterator for Publications<'_> {
    type Item = Vec<Vec<u8>>;

    fn next(&mut self) -> Option<Vec<Vec<u8>>> {
        let category = self.next?;
        let body = if category == LIST_CATEGORY {
            self.next = Some(DETAIL_CATEGORY);
            self.manager.list_json().to_owned()
        } else {
            self.next = None;
            self.manager.detail_json().to_owned()
        };
        Some(wire::encode_publication(category, self.unix_time, body))
    }
}

/// `{"clients": VIEW}`, copied once into a buffer of the exact size: the
/// detail view can be megabytes, and each extra copy or regrowth of it
/// showed in the reply time (docs/BENCHMARKS.md).
fn clients_body(view: &str) -> String {
    const OPEN: &str = "{\"clients\": ";
    let mut body = String::with_capacity(OPEN.len() + view.len() + 1);
    body.push_str(OPEN);
    body.push_str(view);
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packages::Package;
    use crate::status::Status;
    use serde_json::value::RawValue;
    use serde_json::Value;

    fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
        parts.iter().map(|part| part.to_vec()).collect()
    }

    fn manager_with(names: &[&str]) -> Manager {
        let mut manager = Manager::new("box", "manager");
        let changes = names
            .iter()
            .map(|name| PackageChange::Updated {
                name: name.to_string(),
                package: Package::Valid {
                    data: RawValue::from_string(format!("{{\"n\": \"{name}\"}}")).unwrap(),
                },
            })
            .collect();
        manager.apply_package_changes(changes);
        manager
    }

    fn body(frame: &[u8]) -> Value {
        serde_json::from_slice(frame).unwrap()
    }

    #[test]
    fn a_package_change_that_changes_no_client_says_so_and_publishes_nothing() {
        let mut manager = manager_with(&["a"]);
        assert!(manager.take_publications(1.0).is_some(), "package added");
        let same = PackageChange::Updated {
            name: "a".into(),
            package: Package::Valid {
                data: RawValue::from_string("{\"n\": \"a\"}".into()).unwrap(),
            },
        };
        assert!(!manager.apply_package_change(same), "same content again");
        assert!(!manager.apply_package_change(PackageChange::Removed { name: "zz".into() }));
        assert!(manager.take_publications(2.0).is_none());
        let broken = PackageChange::Updated {
            name: "a".into(),
            package: Package::Invalid {
                reason: "broken".into(),
            },
        };
        assert!(manager.apply_package_change(broken.clone()));
        assert!(!manager.apply_package_change(broken), "failing the same way again");
        assert!(manager.apply_package_change(PackageChange::Removed { name: "a".into() }));
    }

    #[test]
    fn list_request_plain() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"clients.list.get", b"{}"]));
        assert_eq!(reply.error, None);
        assert_eq!(reply.frames[0], b"clients.list.result");
        assert_eq!(
            reply.frames[1],
            br#"{"clients": {"domogik-a.box": {"status": "unknown", "host": "box", "type": "plugin", "id": "a", "configured": null}}}"#
        );
    }

    #[test]
    fn detail_request_mdp() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"MDPC01", b"manager", b"5", b"clients.detail.get", b"{}"]));
        assert_eq!(
            &reply.frames[..3],
            &frames(&[b"MDPC01", b"manager", b"clients.detail.result"])[..]
        );
        assert_eq!(body(&reply.frames[3])["clients"]["domogik-a.box"]["data"]["n"], "a");
    }

    #[test]
    fn unknown_action_and_wrong_service_get_error_replies() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"clients.delete", b"{}"]));
        assert_eq!(reply.frames[0], b"error");
        assert_eq!(body(&reply.frames[1])["status"], false);
        assert!(reply.error.unwrap().contains("unknown action"));

        let reply = manager.handle_request(&frames(&[b"MDPC01", b"xpl", b"clients.list.get", b"{}"]));
        assert_eq!(&reply.frames[..3], &frames(&[b"MDPC01", b"xpl", b"error"])[..]);
        assert!(body(&reply.frames[3])["reason"]
            .as_str()
            .unwrap()
            .contains("unknown service"));
    }

    #[test]
    fn every_malformed_request_is_answered() {
        let mut manager = manager_with(&["a"]);
        for msg in [
            frames(&[]),
            frames(&[b"x"]),
            frames(&[b"a", b"b", b"c", b"d", b"e"]),
            frames(&[b"\xff", b"{}"]),
            frames(&[b"clients.list.get", b"not json"]),
        ] {
            let reply = manager.handle_request(&msg);
            assert_eq!(reply.frames[0], b"error", "{msg:?}");
            assert!(reply.error.is_some());
        }
    }

    #[test]
    fn status_change_is_published_once_list_then_detail() {
        let mut manager = manager_with(&["a", "b"]);
        assert!(manager.take_publications(1.0).is_some(), "packages added");
        assert!(manager.take_publications(1.0).is_none());

        let seed = frames(&[b"plugin.1_2.0_1", br#"{"type": "plugin", "id": "a", "event": "alive"}"#]);
        let later = frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "b", "host": "box", "event": "dead"}"#,
        ]);
        assert_eq!(
            manager.handle_status_message(&seed),
            StatusOutcome::Changed {
                id: "domogik-a.box".into(),
                status: Status::Alive
            }
        );
        assert!(matches!(
            manager.handle_status_message(&later),
            StatusOutcome::Changed { .. }
        ));
        let mut publications = manager.take_publications(1371071844.17).unwrap();
        let (list, detail) = (publications.next().unwrap(), publications.next().unwrap());
        assert!(publications.next().is_none(), "two publications per change");
        assert_eq!(list[0], b"clients.list.1371071844_17.0_1");
        assert_eq!(detail[0], b"clients.detail.1371071844_17.0_1");
        assert_eq!(body(&list[1])["domogik-a.box"]["status"], "alive");
        assert_eq!(body(&detail[1])["domogik-b.box"]["status"], "dead");
        assert!(manager.take_publications(2.0).is_none());

        assert_eq!(manager.handle_status_message(&seed), StatusOutcome::Unchanged);
        assert!(
            manager.take_publications(3.0).is_none(),
            "same status publishes nothing"
        );
    }

    #[test]
    fn replies_see_the_latest_state() {
        let mut manager = manager_with(&["a"]);
        let before = manager.handle_request(&frames(&[b"clients.list.get", b"{}"]));
        manager.handle_status_message(&frames(&[
            b"plugin.1_2.0_1",
            br#"{"type": "plugin", "id": "a", "event": "alive"}"#,
        ]));
        let after = manager.handle_request(&frames(&[b"clients.list.get", b"{}"]));
        assert_eq!(body(&before.frames[1])["clients"]["domogik-a.box"]["status"], "unknown");
        assert_eq!(body(&after.frames[1])["clients"]["domogik-a.box"]["status"], "alive");
    }

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
        assert_eq!(manager.clients().pid("a"), Some(100));
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
        assert_eq!(manager.clients().pid("a"), Some(0));
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

    #[test]
    fn a_manager_without_starter_refuses_to_start() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"plugin.start.do", br#"{"name": "a"}"#]));
        assert_eq!(reply.frames[0], b"plugin.start.result");
        assert_eq!(body(&reply.frames[1])["host"], "box", "this host when none is named");
        assert_eq!(body(&reply.frames[1])["status"], false);
    }

    #[test]
    fn bad_status_messages_change_nothing() {
        let mut manager = manager_with(&["a"]);
        manager.take_publications(0.0);
        let outcomes = [
            manager.handle_status_message(&frames(&[b"plugin.1_2.0_1"])),
            manager.handle_status_message(&frames(&[b"plugin.1_2.0_1", b"nope"])),
            manager.handle_status_message(&frames(&[
                b"plugin.1_2.0_1",
                br#"{"type": "plugin", "id": "zz", "event": "alive"}"#,
            ])),
            manager.handle_status_message(&frames(&[
                b"plugin.1_2.0_1",
                br#"{"type": "plugin", "id": "a", "event": "zzz"}"#,
            ])),
            manager.handle_status_message(&frames(&[
                b"plugin.status.1_2.0_1",
                br#"{"type": "plugin", "name": "a", "host": "elsewhere", "event": "alive"}"#,
            ])),
        ];
        assert!(matches!(outcomes[0], StatusOutcome::Malformed(_)));
        assert!(matches!(outcomes[1], StatusOutcome::Malformed(_)));
        assert!(matches!(outcomes[2], StatusOutcome::Rejected(_)));
        assert!(matches!(outcomes[3], StatusOutcome::Malformed(_)));
        assert!(matches!(outcomes[4], StatusOutcome::Rejected(_)));
        assert!(manager.take_publications(1.0).is_none());
        assert_eq!(manager.clients().status("a"), Some(Status::Unknown));
    }
}
