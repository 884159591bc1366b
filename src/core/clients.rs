//! The in-memory clients map (PROTOCOL.md §2, §8): one client per plugin
//! package installed on this host, with its status, when it was last
//! heard, its history, its configuration as `dbmgr` knows it, and the
//! package's files. The one source of truth that every view serialises
//! (src/core/views/); what only one dialect needs is derived and kept there.
//!
//! Pure state: no I/O, and the time comes from the caller ([`Now`]).
//! Every mutator says whether the map changed, so the caller knows when to
//! publish.

use crate::core::liveness::{self, Now};
use crate::core::packages::Package;
use crate::core::packages::PackageFiles;
use crate::core::status::Status;
use crate::core::wire;
use crate::core::xpl::devices::{Devices, DEFAULT_MAX_DEVICES};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// At most this many history entries per client (PROTOCOL.md §8).
pub(crate) const MAX_HISTORY: usize = 20;
/// A status comment longer than this many characters is cut (with `...`):
/// it is kept in the history and shown in four views, and a peer could
/// otherwise make each status change cost megabytes (docs/PROTOCOL.md §7).
pub(crate) const MAX_COMMENT_CHARS: usize = 1000;

/// `comment`, cut to [`MAX_COMMENT_CHARS`].
fn bounded(comment: String) -> String {
    match comment.char_indices().nth(MAX_COMMENT_CHARS) {
        None => comment,
        Some((end, _)) => {
            let mut cut = comment;
            cut.truncate(end);
            cut.push_str("...");
            cut
        }
    }
}

/// One change of a client's status.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct HistoryEntry {
    pub status: Status,
    /// The comment of the status message, or the manager's reason (a dead
    /// client, a broken package); `None` when there was none.
    pub comment: Option<String>,
    /// Unix seconds.
    pub timestamp: f64,
}

/// What `dbmgr` says of a client's configuration (PROTOCOL.md §8).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Configuration {
    /// `None` while unknown (standalone, or `dbmgr` has not answered).
    pub configured: Option<bool>,
    /// Parameter values by key; a key `dbmgr` says is unset is absent.
    pub values: BTreeMap<String, Value>,
}

/// One plugin package and what we know of its process.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) status: Status,
    pub(crate) package: Package,
    pub(crate) files: PackageFiles,
    /// The `comment` of the status that made the current status.
    pub(crate) status_comment: Option<String>,
    /// Unix seconds of the last accepted status but `dead`; the client's
    /// creation until then.
    pub(crate) last_seen: f64,
    /// `last_seen` as Python writes it, made once per status rather than
    /// once per client in every view built (`None`: write the float).
    pub(crate) last_seen_json: Option<Box<serde_json::value::RawValue>>,
    /// The same moment on the monotonic clock, for the dead rule.
    heard_at: Instant,
    /// The plugin's process id when the manager started it, else 0.
    pub(crate) pid: u32,
    /// Newest first, at most [`MAX_HISTORY`].
    pub(crate) history: VecDeque<HistoryEntry>,
    pub(crate) configuration: Configuration,
    /// Changes, unique in the map, whenever the package, its files or its
    /// configuration change (never on a status change): what a view derives
    /// from them and keeps is stale when this moved (`views::v05::Derivations`).
    pub(crate) revision: u64,
}

impl Client {
    pub(crate) fn status(&self) -> Status {
        self.status
    }

    pub(crate) fn is_valid(&self) -> bool {
        matches!(self.package, Package::Valid { .. })
    }

    /// The detail `comment`: an invalid package's reason, or the comment
    /// of the status message that set the current status.
    pub(crate) fn comment(&self) -> Option<&str> {
        match &self.package {
            Package::Invalid { reason } => Some(reason),
            Package::Valid { .. } => self.status_comment.as_deref(),
        }
    }

    fn seen(&mut self, now: Now) {
        self.last_seen = now.unix;
        self.heard_at = now.mono;
        self.last_seen_json =
            serde_json::value::RawValue::from_string(crate::core::pyjson::python_float_repr(now.unix)).ok();
    }

    /// Changes the status, recording it in the history.
    fn change_status(&mut self, status: Status, comment: Option<String>, now: f64) {
        self.status = status;
        self.history.push_front(HistoryEntry {
            status,
            comment: comment.clone(),
            timestamp: now,
        });
        self.history.truncate(MAX_HISTORY);
        self.status_comment = comment;
    }
}

/// Why a status message was not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusRejected {
    /// No package of that name on this host.
    UnknownClient(String),
    /// The package is broken; it stays `invalid` until its file is fixed.
    InvalidPackage(String),
}

impl std::fmt::Display for StatusRejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The id holds a name and a host that a peer chose: quote it
            // short and printable, as every log line about foreign input.
            Self::UnknownClient(id) => write!(f, "no client {}", wire::truncate(id, 80)),
            Self::InvalidPackage(id) => write!(f, "client {id} has an invalid package; its status stays invalid"),
        }
    }
}

/// What an accepted status message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The status changed: publish.
    Changed,
    /// The same status again (a heartbeat): only `last_seen` moved, which
    /// the 0.5 replies show but which is not worth a publication.
    Heard,
}

use crate::core::kind::{self, Kind};

/// The id a log line and the seed dialect give client `key`: a plugin's
/// `domogik-<name>.<host>`, any other's its 0.5 id `<kind>-<name>.<host>`
/// (the seed dialect lists plugins only).
fn client_id(key: &str, host: &str) -> String {
    match kind::split(key) {
        (Kind::Plugin, name) => crate::core::wire::xpl_source(name, host),
        _ => kind::client_id_v05(key, host),
    }
}

/// Every plugin client of this host, keyed by plugin name, and the xPL
/// devices of the house (src/core/xpl/devices.rs).
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    host: String,
    by_name: BTreeMap<String, Client>,
    /// The last [`Client::revision`] given.
    revisions: u64,
    devices: Devices,
}

impl Clients {
    pub(crate) fn new(host: impl Into<String>) -> Clients {
        Clients {
            host: host.into(),
            by_name: BTreeMap::new(),
            revisions: 0,
            devices: Devices::new(DEFAULT_MAX_DEVICES, Duration::from_secs(60)),
        }
    }

    fn next_revision(&mut self) -> u64 {
        next_revision(&mut self.revisions)
    }

    /// The xPL devices (docs/PROTOCOL.md §11).
    pub(crate) fn devices(&self) -> &Devices {
        &self.devices
    }

    pub(crate) fn devices_mut(&mut self) -> &mut Devices {
        &mut self.devices
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) fn len(&self) -> usize {
        self.by_name.len()
    }

    /// The clients by plugin name, in name order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Client)> {
        self.by_name.iter().map(|(name, client)| (name.as_str(), client))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Client> {
        self.by_name.get(name)
    }

    /// The seed dialect's client id of plugin `name` on this host.
    pub(crate) fn client_id(&self, name: &str) -> String {
        client_id(name, &self.host)
    }

    pub(crate) fn status(&self, name: &str) -> Option<Status> {
        self.by_name.get(name).map(|client| client.status)
    }

    /// The history of plugin `name`, newest first.
    pub(crate) fn history(&self, name: &str) -> Option<&VecDeque<HistoryEntry>> {
        self.by_name.get(name).map(|client| &client.history)
    }

    /// Adds a package, or replaces the data of a known one.
    ///
    /// A valid package keeps its client's status; a broken one is
    /// `invalid`; one that was broken and is fixed starts again as `unknown`.
    /// Returns whether anything a user interface sees changed.
    pub(crate) fn upsert_package(&mut self, name: &str, package: Package, now: Now) -> bool {
        let fresh_status = match package {
            Package::Valid { .. } => Status::Unknown,
            Package::Invalid { .. } => Status::Invalid,
        };
        let Some(client) = self.by_name.get_mut(name) else {
            let mut client = Client {
                status: fresh_status,
                package,
                files: PackageFiles::default(),
                status_comment: None,
                last_seen: now.unix,
                last_seen_json: None,
                heard_at: now.mono,
                pid: 0,
                history: VecDeque::new(),
                configuration: Configuration::default(),
                revision: self.next_revision(),
            };
            client.seen(now);
            self.by_name.insert(name.to_owned(), client);
            return true;
        };
        if client.package == package {
            return false;
        }
        let was_valid = client.is_valid();
        client.package = package;
        if !(was_valid && client.is_valid()) && client.status != fresh_status {
            let reason = match &client.package {
                Package::Invalid { reason } => Some(reason.clone()),
                Package::Valid { .. } => Some("package fixed".to_owned()),
            };
            client.change_status(fresh_status, reason, now.unix);
            client.status_comment = None;
        }
        client.revision = next_revision(&mut self.revisions);
        true
    }

    /// Replaces a package's extra files; whether they changed.
    pub(crate) fn set_files(&mut self, name: &str, files: PackageFiles) -> bool {
        match self.by_name.get_mut(name) {
            Some(client) if client.files != files => {
                client.files = files;
                client.revision = next_revision(&mut self.revisions);
                true
            }
            _ => false,
        }
    }

    /// Removes the client of a package whose folder is gone.
    pub(crate) fn remove_package(&mut self, name: &str) -> bool {
        self.by_name.remove(name).is_some()
    }

    /// Applies a status announced by plugin `name` running on `host`.
    /// Every accepted status but `dead` updates `last_seen`, repeats included.
    pub(crate) fn set_status(
        &mut self,
        name: &str,
        host: &str,
        status: Status,
        comment: Option<String>,
        now: Now,
    ) -> Result<Applied, StatusRejected> {
        let id = || client_id(name, host);
        let client = match self.by_name.get_mut(name) {
            // A brain is data only: it has no status of its own (§12).
            Some(_) if kind::split(name).0 == Kind::Brain => return Err(StatusRejected::UnknownClient(id())),
            Some(client) if host == self.host => client,
            _ => return Err(StatusRejected::UnknownClient(id())),
        };
        if !client.is_valid() {
            return Err(StatusRejected::InvalidPackage(id()));
        }
        if status != Status::Dead {
            client.seen(now);
        }
        if client.status == status {
            return Ok(Applied::Heard);
        }
        client.change_status(status, comment.map(bounded), now.unix);
        Ok(Applied::Changed)
    }

    /// Makes `dead` every client silent for more than `dead_after`
    /// (src/core/liveness.rs) and returns their names.
    pub(crate) fn handle_timeout(&mut self, dead_after: Duration, now: Now) -> Vec<String> {
        let mut dead = Vec::new();
        for (name, client) in &mut self.by_name {
            if liveness::is_dead(client.status, client.heard_at, dead_after, now.mono) {
                client.change_status(Status::Dead, Some(liveness::dead_comment(dead_after)), now.unix);
                dead.push(name.clone());
            }
        }
        dead
    }

    /// When the next client becomes dead if it stays silent; `None` if none can.
    pub(crate) fn poll_timeout(&self, dead_after: Duration) -> Option<Instant> {
        self.by_name
            .values()
            .filter_map(|client| liveness::dead_at(client.status, client.heard_at, dead_after))
            .min()
    }

    /// Adds core component `name` (key `core-<name>`): no package, data
    /// `{}`, never invalid; `false` if it is there already.
    pub(crate) fn add_core(&mut self, name: &str, now: Now) -> bool {
        let key = kind::key(Kind::Core, name);
        if self.by_name.contains_key(&key) {
            return false;
        }
        let empty = serde_json::value::RawValue::from_string("{}".to_owned());
        let Ok(data) = empty else { return false };
        self.upsert_package(&key, Package::Valid { data }, now)
    }

    /// A process of client `name` that the manager did not start runs as
    /// `pid` (0: none is seen any more): the listed pid; whether it changed.
    pub(crate) fn set_found_pid(&mut self, name: &str, pid: u32) -> bool {
        match self.by_name.get_mut(name) {
            Some(client) if client.pid != pid => {
                client.pid = pid;
                true
            }
            _ => false,
        }
    }

    /// The manager started plugin `name` as process `pid`: it is
    /// `starting`, and the dead rule counts from now.
    pub(crate) fn process_started(&mut self, name: &str, pid: u32, now: Now) -> bool {
        let Some(client) = self.by_name.get_mut(name) else {
            return false;
        };
        client.pid = pid;
        client.seen(now);
        client.change_status(
            Status::Starting,
            Some(format!("started by the manager, pid {pid}")),
            now.unix,
        );
        true
    }

    /// Plugin `name`'s process exited: `status` (`stopped` or `dead`), with
    /// `comment` saying how, recorded even when the status is already the
    /// same (a plugin the dead rule had declared dead: its exit says why).
    /// A client whose package broke meanwhile keeps `invalid`.
    pub(crate) fn process_ended(&mut self, name: &str, status: Status, comment: String, now: Now) -> bool {
        let Some(client) = self.by_name.get_mut(name) else {
            return false;
        };
        client.pid = 0;
        if client.is_valid() {
            client.change_status(status, Some(comment), now.unix);
        }
        true
    }

    /// A parameter's value as `dbmgr` gave it (`auto_startup`: `"True"`...);
    /// `None` while unknown or unset.
    pub(crate) fn parameter_value(&self, name: &str, key: &str) -> Option<&Value> {
        self.by_name.get(name)?.configuration.values.get(key)
    }

    /// Whether a parameter's value is true as Domogik reads it (`1`,
    /// `true`, `True`, or the JSON true); `None` while unknown.
    pub(crate) fn parameter_is_true(&self, name: &str, key: &str) -> Option<bool> {
        self.parameter_value(name, key).map(is_true)
    }

    /// Replaces what `dbmgr` said of plugin `name`; whether it changed.
    pub(crate) fn set_configuration(&mut self, name: &str, configuration: Configuration) -> bool {
        match self.by_name.get_mut(name) {
            Some(client) if client.configuration != configuration => {
                client.configuration = configuration;
                client.revision = next_revision(&mut self.revisions);
                true
            }
            _ => false,
        }
    }
}

/// A new [`Client::revision`] (a field apart, so that it can be taken while
/// a client of the map is borrowed).
fn next_revision(revisions: &mut u64) -> u64 {
    *revisions += 1;
    *revisions
}

/// Domogik's truth of a configuration value, as `dbmgr` hands back what
/// was stored: `Y` (the admin's configuration form writes `Y`/`N`), `y`
/// (its device parameters, `y`/`n`), `1` and `True` (Domogik 0.5.2's
/// manager and plugins test `'1'`, `'Y'` and the boolean), `true` (a JSON
/// writer), and the JSON `true` and `1`. Anything else is false: `N`, `n`,
/// `0`, `False`, `None`, an empty text, `null`.
pub(crate) fn is_true(value: &Value) -> bool {
    match value {
        Value::Bool(value) => *value,
        Value::Number(number) => number.as_u64() == Some(1),
        Value::String(text) => matches!(text.as_str(), "1" | "Y" | "y" | "true" | "True"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json::value::RawValue;

    pub(crate) fn valid(json: &str) -> Package {
        Package::Valid {
            data: RawValue::from_string(json.to_owned()).unwrap(),
        }
    }

    fn invalid(reason: &str) -> Package {
        Package::Invalid {
            reason: reason.to_owned(),
        }
    }

    fn t0() -> Now {
        Now {
            mono: Instant::now(),
            unix: 1000.0,
        }
    }

    #[test]
    fn a_plugin_started_by_the_manager_is_seen_now_in_both_dialects() {
        let mut clients = Clients::new("h");
        let now = t0();
        clients.upsert_package("a", valid("{}"), now);
        let later = now.later(Duration::from_secs(5));
        assert!(clients.process_started("a", 42, later));
        let client = clients.get("a").unwrap();
        assert_eq!(client.last_seen, 1005.0);
        // The 0.5 views serialise this copy: it must say the same.
        assert_eq!(client.last_seen_json.as_ref().map(|raw| raw.get()), Some("1005.0"));
    }

    #[test]
    fn status_changes_only_when_different_and_repeats_are_heard() {
        let mut clients = Clients::new("h");
        let now = t0();
        clients.upsert_package("a", valid("{}"), now);
        assert_eq!(
            clients.get("a").unwrap().last_seen,
            1000.0,
            "last_seen starts at creation"
        );
        let later = now.later(Duration::from_secs(5));
        assert_eq!(
            clients.set_status("a", "h", Status::Alive, None, later),
            Ok(Applied::Changed)
        );
        assert_eq!(
            clients.set_status("a", "h", Status::Alive, None, later.later(Duration::from_secs(15))),
            Ok(Applied::Heard)
        );
        assert_eq!(clients.status("a"), Some(Status::Alive));
        assert_eq!(clients.get("a").unwrap().last_seen, 1020.0);
        assert_eq!(clients.history("a").unwrap().len(), 1, "a repeat is not history");
        clients
            .set_status("a", "h", Status::Dead, None, later.later(Duration::from_secs(40)))
            .unwrap();
        assert_eq!(
            clients.get("a").unwrap().last_seen,
            1020.0,
            "dead does not update last_seen"
        );
    }

    #[test]
    fn status_for_unknown_name_or_other_host_is_rejected() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid("{}"), t0());
        assert_eq!(
            clients.set_status("zz", "h", Status::Alive, None, t0()),
            Err(StatusRejected::UnknownClient("domogik-zz.h".into()))
        );
        assert_eq!(
            clients.set_status("a", "other", Status::Alive, None, t0()),
            Err(StatusRejected::UnknownClient("domogik-a.other".into()))
        );
    }

    #[test]
    fn rejection_quotes_a_foreign_id_short_and_on_one_line() {
        let mut clients = Clients::new("h");
        let name = format!("x\n{}", "y".repeat(100_000));
        let error = clients.set_status(&name, "h", Status::Alive, None, t0()).unwrap_err();
        let line = error.to_string();
        assert!(line.starts_with("no client domogik-x\\ny"), "{line}");
        assert!(line.len() < 100, "{} bytes", line.len());
    }

    #[test]
    fn invalid_package_keeps_invalid_status() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", invalid("bad"), t0());
        assert!(matches!(
            clients.set_status("a", "h", Status::Alive, None, t0()),
            Err(StatusRejected::InvalidPackage(_))
        ));
        assert_eq!(clients.status("a"), Some(Status::Invalid));
    }

    #[test]
    fn reload_keeps_status_break_and_fix_reset_it() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid(r#"{"v": 1}"#), t0());
        clients
            .set_status("a", "h", Status::Alive, Some("ok".into()), t0())
            .unwrap();
        assert!(
            !clients.upsert_package("a", valid(r#"{"v": 1}"#), t0()),
            "same data is no change"
        );
        assert!(clients.upsert_package("a", valid(r#"{"v": 2}"#), t0()));
        assert_eq!(clients.status("a"), Some(Status::Alive));
        assert_eq!(clients.get("a").unwrap().comment(), Some("ok"));
        assert!(clients.upsert_package("a", invalid("broken"), t0()));
        assert_eq!(clients.status("a"), Some(Status::Invalid));
        assert!(clients.upsert_package("a", invalid("broken differently"), t0()));
        assert!(clients.upsert_package("a", valid(r#"{"v": 3}"#), t0()));
        assert_eq!(clients.status("a"), Some(Status::Unknown));
        assert_eq!(clients.get("a").unwrap().comment(), None);
        let history: Vec<Status> = clients.history("a").unwrap().iter().map(|entry| entry.status).collect();
        assert_eq!(history, [Status::Unknown, Status::Invalid, Status::Alive]);
    }

    #[test]
    fn removal() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid("{}"), t0());
        assert!(clients.remove_package("a"));
        assert!(!clients.remove_package("a"));
        assert_eq!(clients.len(), 0);
    }

    #[test]
    fn history_is_newest_first_and_capped_at_20() {
        let mut clients = Clients::new("h");
        let now = t0();
        clients.upsert_package("a", valid("{}"), now);
        let statuses = [Status::Starting, Status::Alive];
        for step in 0..25u32 {
            let status = statuses[step as usize % 2];
            let at = now.later(Duration::from_secs(u64::from(step)));
            clients
                .set_status("a", "h", status, Some(format!("step {step}")), at)
                .unwrap();
        }
        let history = clients.history("a").unwrap();
        assert_eq!(history.len(), MAX_HISTORY);
        assert_eq!(history[0].comment.as_deref(), Some("step 24"));
        assert_eq!(history[0].timestamp, 1024.0);
        assert_eq!(history[0].status, Status::Starting);
        assert_eq!(history[19].comment.as_deref(), Some("step 5"));
        assert!(history
            .iter()
            .zip(history.iter().skip(1))
            .all(|(a, b)| a.timestamp > b.timestamp));
    }

    #[test]
    fn silent_clients_die_after_the_delay_with_a_fake_clock() {
        let mut clients = Clients::new("h");
        let now = t0();
        let dead_after = Duration::from_secs(30);
        for name in [
            "starting", "alive", "stopping", "stopped", "invalid", "unknown", "notconf",
        ] {
            clients.upsert_package(name, valid("{}"), now);
        }
        clients.upsert_package("invalid", invalid("bad"), now);
        for (name, status) in [
            ("starting", Status::Starting),
            ("alive", Status::Alive),
            ("stopping", Status::StopRequest),
            ("stopped", Status::Stopped),
            ("notconf", Status::NotConfigured),
        ] {
            clients.set_status(name, "h", status, None, now).unwrap();
        }
        assert_eq!(clients.poll_timeout(dead_after), Some(now.mono + dead_after));
        assert!(
            clients.handle_timeout(dead_after, now.later(dead_after)).is_empty(),
            "exactly 30 s: not yet"
        );
        // "alive" is heard again 10 s in: it dies 10 s after the others.
        clients
            .set_status("alive", "h", Status::Alive, None, now.later(Duration::from_secs(10)))
            .unwrap();
        let dead = clients.handle_timeout(dead_after, now.later(Duration::from_millis(30_001)));
        assert_eq!(dead, ["starting", "stopping"]);
        assert_eq!(clients.status("starting"), Some(Status::Dead));
        let entry = &clients.history("starting").unwrap()[0];
        assert_eq!(entry.comment.as_deref(), Some("no status received for more than 30 s"));
        assert_eq!(clients.poll_timeout(dead_after), Some(now.mono + Duration::from_secs(40)));
        let dead = clients.handle_timeout(dead_after, now.later(Duration::from_secs(3600)));
        assert_eq!(dead, ["alive"]);
        assert_eq!(clients.poll_timeout(dead_after), None, "no one left who can die");
        for (name, status) in [
            ("stopped", Status::Stopped),
            ("invalid", Status::Invalid),
            ("unknown", Status::Unknown),
            ("notconf", Status::NotConfigured),
        ] {
            assert_eq!(clients.status(name), Some(status), "{name} never dies");
        }
    }

    #[test]
    fn pid_and_parameter_values_for_the_children_supervisor() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid("{}"), t0());
        assert!(clients.process_started("a", 4242, t0()));
        assert!(!clients.process_started("zz", 1, t0()));
        assert_eq!(clients.get("a").unwrap().pid, 4242);
        assert_eq!(clients.parameter_is_true("a", "auto_startup"), None);
        let mut values = BTreeMap::new();
        values.insert("auto_startup".to_owned(), json!("True"));
        values.insert("interval".to_owned(), json!("5"));
        let configuration = Configuration {
            configured: Some(true),
            values,
        };
        assert!(clients.set_configuration("a", configuration.clone()));
        assert!(!clients.set_configuration("a", configuration));
        assert_eq!(clients.parameter_is_true("a", "auto_startup"), Some(true));
        assert_eq!(clients.parameter_value("a", "interval"), Some(&json!("5")));
    }

    #[test]
    fn long_comments_are_cut() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid("{}"), t0());
        let long = "é".repeat(900_000);
        clients.set_status("a", "h", Status::Alive, Some(long), t0()).unwrap();
        let kept = clients.get("a").unwrap().comment().unwrap();
        assert_eq!(kept.chars().count(), MAX_COMMENT_CHARS + 3);
        assert!(kept.ends_with("é..."));
        assert_eq!(clients.history("a").unwrap()[0].comment.as_deref(), Some(kept));
        assert_eq!(bounded("short".into()), "short");
    }

    #[test]
    fn domogik_truth() {
        // Every spelling dbmgr hands back: the admin's form (Y/N), its
        // device parameters (y/n), Domogik's own ('1', 'True'), JSON.
        for value in [
            json!("1"),
            json!("Y"),
            json!("y"),
            json!("true"),
            json!("True"),
            json!(true),
            json!(1),
        ] {
            assert!(is_true(&value), "{value}");
        }
        for value in [
            json!("0"),
            json!("N"),
            json!("n"),
            json!("False"),
            json!("false"),
            json!("None"),
            json!(""),
            json!(" Y"),
            json!(null),
            json!(false),
            json!(0),
            json!("yes"),
            json!("TRUE"),
            json!(2),
            json!([true]),
        ] {
            assert!(!is_true(&value), "{value}");
        }
    }
}
