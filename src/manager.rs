//! The manager's core, without I/O: requests in, replies out; status
//! messages, package changes, `dbmgr` answers and the clock in,
//! publications and `dbmgr` questions out.
//!
//! The event loop feeds it decoded frames and the time ([`Manager::set_now`]
//! at each turn), and sends what it returns. Everything here is tested
//! without a socket. Both dialects (PROTOCOL.md §4 and §8) are views of one
//! clients map, each serialised once per change and cached.

use crate::bus::dbmgr::{self, Answer, Questions};
use crate::clients::{Applied, Clients, StatusRejected};
use crate::liveness::{self, Now, OwnStatus};
use crate::packages::PackageChange;
use crate::status::Status;
use crate::views::{seed, v05};
use crate::wire::{self, BadRequest, BadStatusMessage, Request};
use serde_json::value::RawValue;
use serde_json::Value;
use std::time::{Duration, Instant};

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

/// The 0.5 dialect's actions (PROTOCOL.md §8): request, reply.
pub const V05_ACTIONS: [(&str, &str); 7] = [
    ("client.list.get", "client.list.result"),
    ("client.detail.get", "client.detail.result"),
    ("client.conversion.get", "client.conversion.result"),
    ("client.history.get", "client.history.result"),
    ("datatype.get", "datatype.result"),
    ("device_types.get", "device_types.result"),
    ("package.detail.get", "package.detail.result"),
];
/// The 0.5 dialect's publications after a change, in this order.
pub const V05_LIST_CATEGORY: &str = "client.list";
pub const V05_DETAIL_CATEGORY: &str = "client.detail";
pub const V05_CONVERSION_CATEGORY: &str = "client.conversion";
pub const PACKAGE_DETAIL_CATEGORY: &str = "package.detail";
/// Every category the manager publishes the views under.
pub const VIEW_CATEGORIES: [&str; 6] = [
    LIST_CATEGORY,
    DETAIL_CATEGORY,
    V05_LIST_CATEGORY,
    V05_DETAIL_CATEGORY,
    V05_CONVERSION_CATEGORY,
    PACKAGE_DETAIL_CATEGORY,
];
/// The manager's own client (PROTOCOL.md §8): type `core`, name `manager`.
pub const OWN_TYPE: &str = "core";
pub const OWN_NAME: &str = "manager";

/// What became of a message received on the SUB socket, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOutcome {
    Changed {
        id: String,
        status: crate::status::Status,
    },
    Unchanged,
    /// Not a status message (another category or client type; a
    /// `plugin.configuration` update is one, which makes `dbmgr` asked).
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

/// The views, serialised on first use after a change.
#[derive(Debug, Default)]
struct Cache {
    seed_list: Option<String>,
    seed_detail: Option<String>,
    v05_list: Option<String>,
    v05_detail: Option<String>,
    conversion: Option<String>,
    package_detail: Option<String>,
}

/// One publication owed, built when the iterator reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    SeedList,
    SeedDetail,
    V05List,
    V05Detail,
    Conversion,
    PackageDetail,
}

/// The clients map, the service name, the timers, and the serialised
/// views, which are computed once per change however many requests and
/// publications use them.
#[derive(Debug)]
pub struct Manager {
    clients: Clients,
    service: String,
    now: Now,
    dead_after: Duration,
    own: OwnStatus,
    /// `None` standalone: no `dbmgr` to ask, `configured` stays null.
    dbmgr: Option<Questions>,
    datatypes: Option<Box<RawValue>>,
    /// The maps changed since the last publication.
    dirty: bool,
    /// A package was added or changed since the last publication.
    packages_dirty: bool,
    /// `plugin.status` messages owed (dead clients, our own status).
    statuses: Vec<Vec<Vec<u8>>>,
    cache: Cache,
}

impl Manager {
    pub fn new(host: impl Into<String>, service: impl Into<String>) -> Manager {
        let now = Now::system();
        Manager {
            clients: Clients::new(host),
            service: service.into(),
            now,
            dead_after: liveness::DEFAULT_DEAD_AFTER,
            own: OwnStatus::new(liveness::DEFAULT_STATUS_INTERVAL, now.mono),
            dbmgr: None,
            datatypes: None,
            dirty: false,
            packages_dirty: false,
            statuses: Vec::new(),
            cache: Cache::default(),
        }
    }

    /// The delays of src/liveness.rs (30 s and 15 s unless configured).
    pub fn set_timers(&mut self, dead_after: Duration, status_interval: Duration) {
        self.dead_after = dead_after;
        self.own = OwnStatus::new(status_interval, self.now.mono);
    }

    /// Asks `dbmgr` for each client's configuration (on a Domogik bus).
    pub fn enable_dbmgr(&mut self, limits: dbmgr::Limits) {
        let mut questions = Questions::new(self.clients.host(), limits);
        for (name, _) in self.clients.iter() {
            questions.ask(name, self.now.mono);
        }
        self.dbmgr = Some(questions);
    }

    /// The time of this turn of the loop.
    pub fn set_now(&mut self, now: Now) {
        self.now = now;
    }

    pub fn clients(&self) -> &Clients {
        &self.clients
    }

    /// For the children supervisor: a plugin's process id (0: none).
    pub fn set_pid(&mut self, name: &str, pid: u32) {
        if self.clients.set_pid(name, pid) {
            self.mark_v05_changed();
        }
    }

    /// `datatypes.json` as read, or `None` when unreadable (`datatype.get`
    /// then answers `null`).
    pub fn set_datatypes(&mut self, datatypes: Option<Box<RawValue>>) {
        self.datatypes = datatypes;
    }

    /// The nearest deadline of every timer: a client's death, our own
    /// status, a `dbmgr` question. The loop's poll waits at most until then.
    pub fn next_deadline(&self) -> Instant {
        let deaths = self.clients.next_death(self.dead_after);
        let questions = self.dbmgr.as_ref().and_then(Questions::deadline);
        [deaths, questions]
            .into_iter()
            .flatten()
            .fold(self.own.deadline(), Instant::min)
    }

    /// Runs the timers that are due: dead clients (each with a `dead`
    /// `plugin.status` owed) and our own status. Returns the names that died.
    pub fn run_timers(&mut self) -> Vec<String> {
        let dead = self.clients.expire(self.dead_after, self.now);
        for name in &dead {
            let frames = wire::encode_status_of("plugin", name, self.clients.host(), Status::Dead, None, self.now.unix);
            self.statuses.push(frames);
        }
        if !dead.is_empty() {
            self.mark_changed();
        }
        if let Some(status) = self.own.due(self.now.mono) {
            self.statuses.push(self.own_status(status));
        }
        dead
    }

    /// Our own `plugin.status`, e.g. `stopped` as the loop leaves.
    pub fn own_status(&self, status: Status) -> Vec<Vec<u8>> {
        wire::encode_status_of(OWN_TYPE, OWN_NAME, self.clients.host(), status, None, self.now.unix)
    }

    /// The `dbmgr` questions to send now (DEALER frames); none standalone.
    pub fn take_dbmgr_requests(&mut self) -> Vec<Vec<Vec<u8>>> {
        let now = self.now.mono;
        self.dbmgr
            .as_mut()
            .map(|questions| questions.due(now))
            .unwrap_or_default()
    }

    /// Applies a reply received from `dbmgr`; the name of the plugin whose
    /// configuration it gave, or why it was not used (for the log).
    pub fn handle_dbmgr_reply(&mut self, frames: &[Vec<u8>]) -> Result<String, dbmgr::BadAnswer> {
        let Some(questions) = self.dbmgr.as_mut() else {
            return Err(dbmgr::BadAnswer::Unexpected("no question was asked".into()));
        };
        let (name, answer) = questions.handle_reply(frames, self.now.mono)?;
        let Some(client) = self.clients.get(&name) else {
            return Err(dbmgr::BadAnswer::Unexpected(format!(
                "no client {}",
                wire::truncate(&name, 40)
            )));
        };
        let configuration = match answer {
            Answer::All(configuration) => configuration,
            Answer::One { key, value } => {
                let mut configuration = client.configuration.clone();
                match value {
                    Some(value) => configuration.values.insert(key, value),
                    None => configuration.values.remove(&key),
                };
                configuration.configured = Some(
                    configuration
                        .values
                        .get("configured")
                        .is_some_and(crate::clients::is_true),
                );
                configuration
            }
        };
        if self.clients.set_configuration(&name, configuration) {
            self.mark_changed();
            self.packages_dirty = true;
        }
        Ok(name)
    }

    /// Answers one request's frames, in whichever framing they came
    /// (plain or MDP client, §1; the MDP worker hands over the frames after
    /// the broker's envelope, which are plain). Always returns a reply: a
    /// client that gets none waits for good. The framing is the codec's
    /// ([`wire`]); what is answered is [`Manager::answer`]'s.
    pub fn handle_request(&mut self, frames: &[Vec<u8>]) -> Reply {
        self.handle_request_with(frames, &mut NoStarter)
    }

    /// [`Manager::handle_request`], with `starter` for `plugin.start.do`.
    pub fn handle_request_with(&mut self, frames: &[Vec<u8>], starter: &mut dyn Starter) -> Reply {
        let (framing, answer) = match wire::decode_request(frames) {
            Ok(request) => {
                let answer = self.answer_with(&request, starter);
                (request.framing, answer)
            }
            Err(BadRequest { framing, reason }) => (framing, Err(reason)),
        };
        match answer {
            Ok((action, body)) => Reply {
                frames: wire::encode_reply(framing, action, body),
                error: None,
            },
            Err(reason) => Reply {
                frames: wire::encode_reply(framing, ERROR_ACTION, wire::error_body(&reason)),
                error: Some(reason),
            },
        }
    }

    /// The reply action and body to a decoded request, or the one-line
    /// reason of its `error` reply (unknown service or action, bad body).
    pub fn answer(&mut self, request: &Request) -> Result<(&'static str, String), String> {
        self.answer_with(request, &mut NoStarter)
    }

    /// [`Manager::answer`], with `starter` for `plugin.start.do`.
    pub fn answer_with(
        &mut self,
        request: &Request,
        starter: &mut dyn Starter,
    ) -> Result<(&'static str, String), String> {
        if let Some(service) = request.service() {
            if service != self.service.as_bytes() {
                return Err(format!(
                    "unknown service \"{}\", this is \"{}\"",
                    wire::truncate(&String::from_utf8_lossy(service), 40),
                    self.service
                ));
            }
        }
        match request.action.as_str() {
            LIST_GET => Ok((LIST_RESULT, clients_body(self.view(View::SeedList)))),
            DETAIL_GET => Ok((DETAIL_RESULT, clients_body(self.view(View::SeedDetail)))),
            START_DO => Ok((START_RESULT, self.start_request(&request.body, starter))),
            other => self.route_v05(other, request),
        }
    }

    /// The 0.5 dialect's requests (PROTOCOL.md §8).
    fn route_v05(&mut self, action: &str, request: &Request) -> Result<(&'static str, String), String> {
        let Some((_, result)) = V05_ACTIONS.iter().find(|(get, _)| *get == action) else {
            return Err(format!(
                "unknown action \"{}\" (expected {LIST_GET}, {DETAIL_GET} or one of {})",
                wire::truncate(action, 40),
                V05_ACTIONS.map(|(get, _)| get).join(", ")
            ));
        };
        let body = match action {
            "client.list.get" => self.view(View::V05List).to_owned(),
            "client.detail.get" => self.view(View::V05Detail).to_owned(),
            "client.conversion.get" => self.view(View::Conversion).to_owned(),
            "package.detail.get" => self.view(View::PackageDetail).to_owned(),
            "client.history.get" => self.history(&request.body)?,
            "datatype.get" => {
                let datatypes = self.datatypes.as_deref().map_or("null", RawValue::get);
                format!("{{\"datatypes\": {datatypes}}}")
            }
            _ => match request.body.get("device_type") {
                None => v05::device_types_json(&self.clients, None),
                Some(Value::String(wanted)) => v05::device_types_json(&self.clients, Some(wanted)),
                Some(_) => return Err("device_type is not text".into()),
            },
        };
        Ok((result, body))
    }

    /// `client.history.result`; an `error` reply when the body does not
    /// name a client at all, `status` false when it names none of ours.
    fn history(&self, body: &serde_json::Map<String, Value>) -> Result<String, String> {
        let text = |field: &str| match body.get(field) {
            Some(Value::String(text)) => Ok(text.as_str()),
            _ => Err(format!("client.history.get needs a text \"{field}\"")),
        };
        let (kind, name, host) = (text("type")?, text("name")?, text("host")?);
        let history = match self.clients.history(name) {
            Some(history) if kind == "plugin" && host == self.clients.host() => Ok(history),
            _ => Err(format!(
                "no client {}",
                wire::truncate(&format!("{kind}-{name}.{host}"), 80)
            )),
        };
        Ok(v05::history_json(kind, name, host, history))
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
        if self.clients.process_started(name, pid, self.now) {
            self.mark_changed();
        }
        Ok(pid)
    }

    /// A plugin process the manager started has exited (src/children.rs
    /// says what `status` that means); its client shows it.
    /// A `dead` one is also announced as `plugin.status` `dead`, as the
    /// dead rule does (§8: other components listen for it).
    pub fn process_ended(&mut self, name: &str, status: crate::status::Status, comment: String) -> bool {
        let changed = self.clients.process_ended(name, status, comment, self.now);
        if changed {
            if status == crate::status::Status::Dead {
                let frames = wire::encode_status_of("plugin", name, self.clients.host(), status, None, self.now.unix);
                self.statuses.push(frames);
            }
            self.mark_changed();
        }
        changed
    }

    /// Applies one message received on the SUB socket.
    pub fn handle_status_message(&mut self, frames: &[Vec<u8>]) -> StatusOutcome {
        let update = match wire::decode_status(frames) {
            Ok(Some(update)) => update,
            Ok(None) => {
                self.configuration_updated(frames);
                return StatusOutcome::NotForUs;
            }
            Err(error) => return StatusOutcome::Malformed(error),
        };
        let host = update.host.unwrap_or_else(|| self.clients.host().to_owned());
        match self
            .clients
            .set_status(&update.name, &host, update.status, update.comment, self.now)
        {
            Ok(Applied::Changed) => {
                self.mark_changed();
                StatusOutcome::Changed {
                    id: self.clients.client_id(&update.name),
                    status: update.status,
                }
            }
            Ok(Applied::Heard) => {
                // last_seen moved: the 0.5 views are stale, nothing to publish.
                self.cache.v05_list = None;
                self.cache.v05_detail = None;
                StatusOutcome::Unchanged
            }
            Err(rejected) => StatusOutcome::Rejected(rejected),
        }
    }

    /// `plugin.configuration` `updated` for one of our clients: ask `dbmgr` again.
    fn configuration_updated(&mut self, frames: &[Vec<u8>]) {
        let Some((name, host)) = wire::decode_configuration_updated(frames) else {
            return;
        };
        if host == self.clients.host() && self.clients.get(&name).is_some() {
            if let Some(questions) = self.dbmgr.as_mut() {
                questions.ask(&name, self.now.mono);
            }
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
            PackageChange::Updated { name, package } => {
                let is_new = self.clients.get(&name).is_none();
                let changed = self.clients.upsert_package(&name, package, self.now);
                if let (true, Some(questions)) = (is_new, self.dbmgr.as_mut()) {
                    questions.ask(&name, self.now.mono);
                }
                changed
            }
            PackageChange::Files { name, files } => self.clients.set_files(&name, files),
            PackageChange::Removed { name } => {
                if let Some(questions) = self.dbmgr.as_mut() {
                    questions.forget(&name);
                }
                self.clients.remove_package(&name)
            }
        };
        if changed {
            self.mark_changed();
            self.packages_dirty = true;
        }
        changed
    }

    /// The publications owed since the last call: the `plugin.status` of
    /// clients that died and our own, then `clients.list`, `clients.detail`
    /// (the seed's), `client.list`, `client.detail`, `client.conversion`,
    /// and `package.detail` after a package change; once however many
    /// changes happened meanwhile. Each view is built when the iterator
    /// reaches it, so one can be sent before the next is serialised. They
    /// are no longer owed once this returns: whatever of the iterator is
    /// left unconsumed is not published until the next change.
    pub fn take_publications(&mut self, unix_time: f64) -> Option<Publications<'_>> {
        let dirty = std::mem::take(&mut self.dirty);
        if !dirty && self.statuses.is_empty() {
            return None;
        }
        let mut views = Vec::new();
        if dirty {
            views.extend([
                View::SeedList,
                View::SeedDetail,
                View::V05List,
                View::V05Detail,
                View::Conversion,
            ]);
            if std::mem::take(&mut self.packages_dirty) {
                views.push(View::PackageDetail);
            }
        }
        let statuses = std::mem::take(&mut self.statuses);
        Some(Publications {
            manager: self,
            unix_time,
            statuses: statuses.into_iter(),
            views: views.into_iter(),
        })
    }

    /// Owes every view to subscribers again although nothing changed: a
    /// subscriber appeared (the PUB's link came up, or came back, at the
    /// forwarder) and must not wait for the next change.
    pub fn republish(&mut self) {
        self.dirty = true;
        self.packages_dirty = true;
    }

    fn mark_changed(&mut self) {
        self.dirty = true;
        self.cache = Cache::default();
    }

    /// A change only the 0.5 views show (a pid).
    fn mark_v05_changed(&mut self) {
        self.dirty = true;
        self.cache.v05_list = None;
        self.cache.v05_detail = None;
    }

    fn view(&mut self, view: View) -> &str {
        let clients = &self.clients;
        let (slot, build): (&mut Option<String>, fn(&Clients) -> String) = match view {
            View::SeedList => (&mut self.cache.seed_list, seed::list_json),
            View::SeedDetail => (&mut self.cache.seed_detail, seed::detail_json),
            View::V05List => (&mut self.cache.v05_list, v05::list_json),
            View::V05Detail => (&mut self.cache.v05_detail, v05::detail_json),
            View::Conversion => (&mut self.cache.conversion, v05::conversion_json),
            View::PackageDetail => (&mut self.cache.package_detail, v05::package_detail_json),
        };
        slot.get_or_insert_with(|| build(clients))
    }
}

impl View {
    fn category(self) -> &'static str {
        match self {
            View::SeedList => LIST_CATEGORY,
            View::SeedDetail => DETAIL_CATEGORY,
            View::V05List => V05_LIST_CATEGORY,
            View::V05Detail => V05_DETAIL_CATEGORY,
            View::Conversion => V05_CONVERSION_CATEGORY,
            View::PackageDetail => PACKAGE_DETAIL_CATEGORY,
        }
    }
}

/// The publications of one turn, each `[msg_id, body]`, serialised (or
/// taken from the cache) on demand.
pub struct Publications<'a> {
    manager: &'a mut Manager,
    unix_time: f64,
    statuses: std::vec::IntoIter<Vec<Vec<u8>>>,
    views: std::vec::IntoIter<View>,
}

impl Publications<'_> {
    /// Whether the views are among them (else only `plugin.status` messages).
    pub fn views_owed(&self) -> bool {
        self.views.len() > 0
    }
}

impl Iterator for Publications<'_> {
    type Item = Vec<Vec<u8>>;

    fn next(&mut self) -> Option<Vec<Vec<u8>>> {
        if let Some(status) = self.statuses.next() {
            return Some(status);
        }
        let view = self.views.next()?;
        let body = self.manager.view(view).to_owned();
        Some(wire::encode_publication(view.category(), self.unix_time, body))
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

    #[test]
    fn a_manager_without_starter_refuses_to_start() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"plugin.start.do", br#"{"name": "a"}"#]));
        assert_eq!(reply.frames[0], b"plugin.start.result");
        assert_eq!(body(&reply.frames[1])["host"], "box", "this host when none is named");
        assert_eq!(body(&reply.frames[1])["status"], false);
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
        let rest: Vec<Vec<u8>> = publications.map(|frames| frames[0].clone()).collect();
        assert_eq!(
            rest,
            [
                b"client.list.1371071844_17.0_1".to_vec(),
                b"client.detail.1371071844_17.0_1".to_vec(),
                b"client.conversion.1371071844_17.0_1".to_vec()
            ],
            "the seed's two, then the 0.5 dialect's three"
        );
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

    fn at(unix: f64, mono: std::time::Instant) -> Now {
        Now { mono, unix }
    }

    fn ask(manager: &mut Manager, action: &str, body: &str) -> (String, Value) {
        let reply = manager.handle_request(&[action.as_bytes().to_vec(), body.as_bytes().to_vec()]);
        (
            String::from_utf8(reply.frames[0].clone()).unwrap(),
            self::body(&reply.frames[1]),
        )
    }

    #[test]
    fn every_v05_request_is_answered_with_its_result_action() {
        let mut manager = manager_with(&["a"]);
        for (get, result) in V05_ACTIONS {
            let body = if get == "client.history.get" {
                r#"{"type": "plugin", "name": "a", "host": "box"}"#
            } else {
                "{}"
            };
            let (action, _) = ask(&mut manager, get, body);
            assert_eq!(action, result, "{get}");
            let reply = manager.handle_request(&frames(&[
                b"MDPC01",
                b"manager",
                b"None",
                get.as_bytes(),
                body.as_bytes(),
            ]));
            assert_eq!(reply.frames[2], result.as_bytes(), "{get} in MDP framing");
        }
        let (_, list) = ask(&mut manager, "client.list.get", "{}");
        assert_eq!(list["plugin-a.box"]["status"], "stopped", "unknown is spelled stopped");
        assert_eq!(list["plugin-a.box"]["xpl_source"], "domogik-a.box");
        let (_, datatypes) = ask(&mut manager, "datatype.get", "{}");
        assert_eq!(datatypes, serde_json::json!({"datatypes": null}));
        manager.set_datatypes(Some(RawValue::from_string("{\"DT_Bool\": {}}".into()).unwrap()));
        let (_, datatypes) = ask(&mut manager, "datatype.get", "{}");
        assert_eq!(datatypes, serde_json::json!({"datatypes": {"DT_Bool": {}}}));
    }

    #[test]
    fn history_requests() {
        let mut manager = manager_with(&["a"]);
        manager.handle_status_message(&frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "alive", "comment": "hi"}"#,
        ]));
        let (action, history) = ask(
            &mut manager,
            "client.history.get",
            r#"{"type": "plugin", "name": "a", "host": "box"}"#,
        );
        assert_eq!(action, "client.history.result");
        assert_eq!(history["status"], true);
        assert_eq!(history["history"][0]["status"], "alive");
        assert_eq!(history["history"][0]["comment"], "hi");
        let (action, history) = ask(
            &mut manager,
            "client.history.get",
            r#"{"type": "plugin", "name": "zz", "host": "box"}"#,
        );
        assert_eq!(action, "client.history.result");
        assert_eq!(history["status"], false);
        assert_eq!(history["reason"], "no client plugin-zz.box");
        let (action, error) = ask(&mut manager, "client.history.get", "{}");
        assert_eq!(action, "error");
        assert_eq!(error["reason"], "client.history.get needs a text \"type\"");
        let (action, _) = ask(&mut manager, "device_types.get", r#"{"device_type": 3}"#);
        assert_eq!(action, "error");
    }

    #[test]
    fn a_silent_client_dies_once_and_its_dead_status_is_published_first() {
        let mut manager = manager_with(&["a"]);
        let t0 = std::time::Instant::now();
        manager.set_now(at(100.0, t0));
        manager.set_timers(Duration::from_secs(30), Duration::from_secs(15));
        manager.run_timers();
        let own: Vec<Vec<Vec<u8>>> = manager.take_publications(100.0).unwrap().collect();
        assert_eq!(own[0][0], b"plugin.status.100_0.0_1");
        assert_eq!(
            own[0][1],
            br#"{"type": "core", "name": "manager", "host": "box", "event": "starting"}"#
        );
        manager.handle_status_message(&frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "alive"}"#,
        ]));
        manager.take_publications(100.0);
        assert_eq!(
            manager.next_deadline(),
            t0 + Duration::from_secs(15),
            "our own status first"
        );
        manager.set_now(at(115.0, t0 + Duration::from_secs(15)));
        assert!(manager.run_timers().is_empty());
        let alive: Vec<Vec<Vec<u8>>> = manager.take_publications(115.0).unwrap().collect();
        assert_eq!(alive.len(), 1, "only our own status: nothing else changed");
        assert!(String::from_utf8_lossy(&alive[0][1]).contains("\"event\": \"alive\""));
        assert_eq!(manager.next_deadline(), t0 + Duration::from_secs(30));

        manager.set_now(at(130.5, t0 + Duration::from_millis(30_500)));
        assert_eq!(manager.run_timers(), ["a"]);
        let published: Vec<Vec<Vec<u8>>> = manager.take_publications(130.5).unwrap().collect();
        assert_eq!(published[0][0], b"plugin.status.130_5.0_1");
        assert_eq!(
            published[0][1],
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "dead"}"#
        );
        assert!(
            String::from_utf8_lossy(&published[1][1]).contains("\"type\": \"core\""),
            "our own, due too"
        );
        let dead_message = published[0].clone();
        let published = &published[1..];
        let categories: Vec<String> = published[1..]
            .iter()
            .map(|frames| {
                wire::category_of(std::str::from_utf8(&frames[0]).unwrap())
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            categories,
            [
                "clients.list",
                "clients.detail",
                "client.list",
                "client.detail",
                "client.conversion"
            ]
        );
        assert_eq!(body(&published[1][1])["domogik-a.box"]["status"], "dead");
        assert_eq!(body(&published[3][1])["plugin-a.box"]["status"], "dead");
        assert!(manager.run_timers().is_empty(), "dead once");
        // Our own dead status, heard back through the forwarder, changes nothing.
        assert_eq!(manager.handle_status_message(&dead_message), StatusOutcome::Unchanged);
        assert_eq!(
            manager.handle_status_message(&published[0]),
            StatusOutcome::NotForUs,
            "our own is a core client"
        );
    }

    #[test]
    fn a_heartbeat_publishes_nothing_but_moves_last_seen() {
        let mut manager = manager_with(&["a"]);
        let t0 = std::time::Instant::now();
        let alive = frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "alive"}"#,
        ]);
        manager.set_now(at(10.0, t0));
        manager.handle_status_message(&alive);
        manager.take_publications(10.0);
        let (_, before) = ask(&mut manager, "client.list.get", "{}");
        manager.set_now(at(25.0, t0 + Duration::from_secs(15)));
        assert_eq!(manager.handle_status_message(&alive), StatusOutcome::Unchanged);
        assert!(manager.take_publications(25.0).is_none());
        let (_, after) = ask(&mut manager, "client.list.get", "{}");
        assert_eq!(before["plugin-a.box"]["last_seen"], 10.0);
        assert_eq!(after["plugin-a.box"]["last_seen"], 25.0);
    }

    #[test]
    fn dbmgr_is_asked_for_new_clients_and_after_a_configuration_update() {
        let mut manager = manager_with(&["a"]);
        assert!(manager.take_dbmgr_requests().is_empty(), "standalone: nothing asked");
        manager.enable_dbmgr(dbmgr::Limits::default());
        let asked = manager.take_dbmgr_requests();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0][3], b"config.get");
        manager.take_publications(1.0);
        let answer = frames(&[
            b"",
            b"MDPC01",
            b"dbmgr",
            b"config.result",
            br#"{"status": true, "reason": "", "type": "plugin", "name": "a", "host": "box", "data": {"configured": "True", "auto_startup": "True"}}"#,
        ]);
        assert_eq!(manager.handle_dbmgr_reply(&answer), Ok("a".to_owned()));
        assert_eq!(manager.clients().parameter_is_true("a", "auto_startup"), Some(true));
        let published: Vec<Vec<Vec<u8>>> = manager.take_publications(2.0).unwrap().collect();
        assert_eq!(body(&published[0][1])["domogik-a.box"]["configured"], true);
        assert_eq!(body(&published[2][1])["plugin-a.box"]["configured"], true);
        assert_eq!(published.len(), 6, "and package.detail: the data's values changed");

        manager.handle_status_message(&frames(&[
            b"plugin.configuration.1_2.0_1",
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "updated"}"#,
        ]));
        assert_eq!(manager.take_dbmgr_requests().len(), 1, "asked again");
        manager.apply_package_change(PackageChange::Updated {
            name: "b".into(),
            package: Package::Valid {
                data: RawValue::from_string("{}".into()).unwrap(),
            },
        });
        assert_eq!(manager.take_dbmgr_requests().len(), 1, "a new client is asked about");
    }
}
