//! The in-memory clients map (PROTOCOL.md §2): one client per installed
//! plugin package, with its status, and its list and detail views.
//!
//! Pure state: no I/O, no clock. Every mutator says whether the map
//! changed, so the caller knows when to publish.

use crate::packages::Package;
use crate::pyjson;
use crate::status::Status;
use crate::wire;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// One plugin package and what we know of its process.
#[derive(Debug, Clone)]
struct Client {
    status: Status,
    package: Package,
    /// The `comment` of the last status message, if it had one.
    status_comment: Option<String>,
    /// The pid of the plugin's process when the manager started it, else 0.
    pid: u32,
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

/// The client id of plugin `name` on `host`: `domogik-<name>.<host>`.
fn client_id(name: &str, host: &str) -> String {
    format!("domogik-{name}.{host}")
}

/// Every plugin client of this host, keyed by plugin name.
#[derive(Debug, Clone)]
pub struct Clients {
    host: String,
    by_name: BTreeMap<String, Client>,
}

impl Clients {
    pub fn new(host: impl Into<String>) -> Clients {
        Clients {
            host: host.into(),
            by_name: BTreeMap::new(),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The client id of plugin `name` on this host.
    pub fn client_id(&self, name: &str) -> String {
        client_id(name, &self.host)
    }

    pub fn status(&self, name: &str) -> Option<Status> {
        self.by_name.get(name).map(|client| client.status)
    }

    /// Adds a package, or replaces the data of a known one.
    ///
    /// A valid package keeps its client's status; a broken one is
    /// `invalid`; one that was broken and is fixed starts again as `unknown`.
    /// Returns whether anything a user interface sees changed.
    pub fn upsert_package(&mut self, name: &str, package: Package) -> bool {
        let fresh_status = match package {
            Package::Valid { .. } => Status::Unknown,
            Package::Invalid { .. } => Status::Invalid,
        };
        let Some(client) = self.by_name.get_mut(name) else {
            let client = Client {
                status: fresh_status,
                package,
                status_comment: None,
                pid: 0,
            };
            self.by_name.insert(name.to_owned(), client);
            return true;
        };
        if client.package == package {
            return false;
        }
        let was_valid = matches!(client.package, Package::Valid { .. });
        let is_valid = matches!(package, Package::Valid { .. });
        if !(was_valid && is_valid) {
            client.status = fresh_status;
            client.status_comment = None;
        }
        client.package = package;
        true
    }

    /// Removes the client of a package whose folder is gone.
    pub fn remove_package(&mut self, name: &str) -> bool {
        self.by_name.remove(name).is_some()
    }

    /// Applies a status announced by plugin `name` running on `host`.
    /// `Ok(false)`: the status is the current one, nothing changes.
    pub fn set_status(
        &mut self,
        name: &str,
        host: &str,
        status: Status,
        comment: Option<String>,
    ) -> Result<bool, StatusRejected> {
        let id = || client_id(name, host);
        let client = match self.by_name.get_mut(name) {
            Some(client) if host == self.host => client,
            _ => return Err(StatusRejected::UnknownClient(id())),
        };
        if matches!(client.package, Package::Invalid { .. }) {
            return Err(StatusRejected::InvalidPackage(id()));
        }
        if client.status == status {
            return Ok(false);
        }
        client.status = status;
        client.status_comment = comment;
        Ok(true)
    }

    /// The pid of plugin `name`'s process, 0 when the manager did not start it.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).map(|client| client.pid)
    }

    /// The manager started plugin `name` as process `pid`: it is `starting`.
    pub fn process_started(&mut self, name: &str, pid: u32) -> bool {
        let Some(client) = self.by_name.get_mut(name) else {
            return false;
        };
        client.pid = pid;
        client.status = Status::Starting;
        client.status_comment = Some(format!("started by the manager, pid {pid}"));
        true
    }

    /// Plugin `name`'s process exited: `status` (`stopped` or `dead`),
    /// `comment` saying how. A client removed meanwhile, or whose package
    /// broke, is left alone.
    pub fn process_ended(&mut self, name: &str, status: Status, comment: String) -> bool {
        let Some(client) = self.by_name.get_mut(name) else {
            return false;
        };
        client.pid = 0;
        if matches!(client.package, Package::Invalid { .. }) {
            return false;
        }
        client.status = status;
        client.status_comment = Some(comment);
        true
    }

    /// The list view, `{ID: LIST_ENTRY, ...}`, as Python's json.dumps writes it.
    pub fn list_json(&self) -> String {
        pyjson::to_string(&View {
            clients: self,
            detail: false,
        })
    }

    /// The detail view, `{ID: DETAIL_ENTRY, ...}`, as Python's json.dumps writes it.
    pub fn detail_json(&self) -> String {
        pyjson::to_string(&View {
            clients: self,
            detail: true,
        })
    }
}

/// Serialises the map without building an intermediate JSON tree.
struct View<'a> {
    clients: &'a Clients,
    detail: bool,
}

/// One entry; the list and detail views share every field but the last
/// two, so they cannot drift apart.
#[derive(serde::Serialize)]
struct Entry<'a> {
    status: Status,
    host: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    /// Domogik read this from its database, which this manager has not.
    configured: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
}

const EMPTY_DATA: &str = "{}";

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let empty: &RawValue = serde_json::from_str(EMPTY_DATA).map_err(serde::ser::Error::custom)?;
        let mut map = serializer.serialize_map(Some(self.clients.by_name.len()))?;
        for (name, client) in &self.clients.by_name {
            let (data, comment) = match &client.package {
                Package::Valid { data } => (&**data, client.status_comment.as_deref()),
                Package::Invalid { reason } => (empty, Some(reason.as_str())),
            };
            let entry = Entry {
                status: client.status,
                host: &self.clients.host,
                kind: "plugin",
                id: name,
                configured: None,
                data: self.detail.then_some(data),
                comment: if self.detail { comment } else { None },
            };
            map.serialize_entry(&self.clients.client_id(name), &entry)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn valid(json: &str) -> Package {
        Package::Valid {
            data: RawValue::from_string(json.to_owned()).unwrap(),
        }
    }

    fn invalid(reason: &str) -> Package {
        Package::Invalid {
            reason: reason.to_owned(),
        }
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn new_client_starts_unknown_and_matches_the_seed_example() {
        let mut clients = Clients::new("darkstar");
        assert!(clients.upsert_package("diskfree", valid("{}")));
        assert_eq!(
            clients.list_json(),
            r#"{"domogik-diskfree.darkstar": {"status": "unknown", "host": "darkstar", "type": "plugin", "id": "diskfree", "configured": null}}"#
        );
        assert_eq!(
            clients.detail_json(),
            r#"{"domogik-diskfree.darkstar": {"status": "unknown", "host": "darkstar", "type": "plugin", "id": "diskfree", "configured": null, "data": {}}}"#
        );
    }

    #[test]
    fn list_and_detail_agree_after_every_change() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid(r#"{"x": 1}"#));
        clients.upsert_package("b", invalid("broken"));
        clients.set_status("a", "h", Status::Alive, None).unwrap();
        let list = parse(&clients.list_json());
        let detail = parse(&clients.detail_json());
        for (id, entry) in list.as_object().unwrap() {
            let mut detailed = detail[id].as_object().unwrap().clone();
            detailed.remove("data");
            detailed.remove("comment");
            assert_eq!(&Value::Object(detailed), entry, "{id}");
        }
        assert_eq!(detail["domogik-a.h"]["data"], json!({"x": 1}));
        assert_eq!(detail["domogik-b.h"]["data"], json!({}));
        assert_eq!(detail["domogik-b.h"]["comment"], "broken");
        assert_eq!(list["domogik-b.h"]["status"], "invalid");
    }

    #[test]
    fn status_changes_only_when_different() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid("{}"));
        assert_eq!(clients.set_status("a", "h", Status::Alive, None), Ok(true));
        assert_eq!(clients.set_status("a", "h", Status::Alive, None), Ok(false));
        assert_eq!(clients.status("a"), Some(Status::Alive));
    }

    #[test]
    fn status_for_unknown_name_or_other_host_is_rejected() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid("{}"));
        assert_eq!(
            clients.set_status("zz", "h", Status::Alive, None),
            Err(StatusRejected::UnknownClient("domogik-zz.h".into()))
        );
        assert_eq!(
            clients.set_status("a", "other", Status::Alive, None),
            Err(StatusRejected::UnknownClient("domogik-a.other".into()))
        );
    }

    #[test]
    fn rejection_quotes_a_foreign_id_short_and_on_one_line() {
        let mut clients = Clients::new("h");
        let name = format!("x\n{}", "y".repeat(100_000));
        let error = clients.set_status(&name, "h", Status::Alive, None).unwrap_err();
        let line = error.to_string();
        assert!(line.starts_with("no client domogik-x\\ny"), "{line}");
        assert!(line.len() < 100, "{} bytes", line.len());
    }

    #[test]
    fn invalid_package_keeps_invalid_status() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", invalid("bad"));
        assert!(matches!(
            clients.set_status("a", "h", Status::Alive, None),
            Err(StatusRejected::InvalidPackage(_))
        ));
        assert_eq!(clients.status("a"), Some(Status::Invalid));
    }

    #[test]
    fn reload_keeps_status_break_and_fix_reset_it() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid(r#"{"v": 1}"#));
        clients.set_status("a", "h", Status::Alive, Some("ok".into())).unwrap();
        assert!(
            !clients.upsert_package("a", valid(r#"{"v": 1}"#)),
            "same data is no change"
        );
        assert!(clients.upsert_package("a", valid(r#"{"v": 2}"#)));
        assert_eq!(clients.status("a"), Some(Status::Alive));
        assert_eq!(parse(&clients.detail_json())["domogik-a.h"]["comment"], "ok");
        assert!(clients.upsert_package("a", invalid("broken")));
        assert_eq!(clients.status("a"), Some(Status::Invalid));
        assert!(clients.upsert_package("a", invalid("broken differently")));
        assert!(clients.upsert_package("a", valid(r#"{"v": 3}"#)));
        assert_eq!(clients.status("a"), Some(Status::Unknown));
        assert!(parse(&clients.detail_json())["domogik-a.h"].get("comment").is_none());
    }

    #[test]
    fn removal() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid("{}"));
        assert!(clients.remove_package("a"));
        assert!(!clients.remove_package("a"));
        assert_eq!(clients.list_json(), "{}");
    }
}
