//! The Domogik 0.5 dialect's views (PROTOCOL.md §8): `client.list`,
//! `client.detail`, `client.conversion`, `package.detail`, the device
//! types and a client's history, keyed `plugin-<name>.<host>`.
//!
//! What depends only on the package and its configuration (the detail
//! `data` with Domogik's additions, the xpl fields) is [`derive`]d once
//! when those change and kept in the client, so that a status change
//! costs a copy of each client's data, not a rebuild of it.

use crate::core::clients::{Client, Clients, HistoryEntry};
use crate::core::kind::{self, Kind};
use crate::core::packages::Package;
use crate::core::packages::PackageFiles;
use crate::core::pyjson;
use crate::core::status::Status;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};

/// The parameter Domogik 0.5 adds first to every plugin's `configuration`
/// (unless `xpl_clients_only`); the wording is ours.
pub(crate) const AUTO_STARTUP: &str = "auto_startup";

/// What the 0.5 views need of a package, computed by [`derive`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Derived {
    /// `plugin-<name>.<host>`, `domogik-<name>.<host>`, `plugin-<name>`:
    /// made once, not at every view.
    client_id: String,
    xpl_source: String,
    package_id: String,
    /// The detail `data`; `None` for `{}` (an invalid package).
    data: Option<Box<RawValue>>,
    /// The package's own JSON as `package.detail` and `device_types`
    /// show it (0.5.2's `PackageJson`): `data` without the configured
    /// values and the udev rules, which 0.5.2 adds to the client only.
    package: Option<Box<RawValue>>,
    /// `identity.compliant_xpl_clients`; `None` for `[]`.
    compliant_xpl_clients: Option<Box<RawValue>>,
    xpl_clients_only: bool,
    /// The keys of the package's `device_types` object.
    device_types: Vec<String>,
}

/// The [`Derived`] data of every client, each made again only when its
/// client's package, files or configuration changed
/// ([`Client::revision`]); kept by the manager, not the clients map, so
/// that the model stores no dialect's cache.
#[derive(Debug, Default)]
pub(crate) struct Derivations {
    by_name: BTreeMap<String, (u64, Derived)>,
}

impl Derivations {
    /// Brings every client's derived data up to date with `clients`.
    pub(crate) fn sync(&mut self, clients: &Clients) {
        let host = clients.host();
        self.by_name.retain(|name, _| clients.get(name).is_some());
        for (name, client) in clients.iter() {
            let stale = self
                .by_name
                .get(name)
                .is_none_or(|(revision, _)| *revision != client.revision);
            if stale {
                let derived = derive(name, host, &client.package, &client.files, &client.configuration.values);
                self.by_name.insert(name.to_owned(), (client.revision, derived));
            }
        }
    }

    /// The derived data of plugin `name`, as at the last [`Derivations::sync`].
    fn of(&self, name: &str) -> &Derived {
        self.by_name.get(name).map_or(&NOT_DERIVED, |(_, derived)| derived)
    }
}

/// What a client not synced yet shows (never, after a sync).
static NOT_DERIVED: Derived = Derived {
    client_id: String::new(),
    xpl_source: String::new(),
    package_id: String::new(),
    data: None,
    package: None,
    compliant_xpl_clients: None,
    xpl_clients_only: false,
    device_types: Vec::new(),
};

/// The 0.5 client id of client key `name`: `<kind>-<name>.<host>`.
pub(crate) fn client_id(name: &str, host: &str) -> String {
    kind::client_id_v05(name, host)
}

/// The 0.5 package id of client key `name`: `<kind>-<name>`.
pub(crate) fn package_id(name: &str) -> String {
    let (kind, name) = kind::split(name);
    format!("{kind}-{name}")
}

/// How the 0.5 dialect spells a status. The one internal status of a
/// client the manager has not heard from, `unknown`, is `stopped` here
/// (Domogik 0.5 starts every client as `stopped`); docs/PROTOCOL.md.
pub(crate) fn spelling(status: Status) -> &'static str {
    match status {
        Status::Unknown => Status::Stopped.as_str(),
        other => other.as_str(),
    }
}

/// The detail `data` of client key `name`: its `info.json` with Domogik
/// 0.5's additions (PROTOCOL.md §9), and the xpl fields of its list entry;
/// a core component's data is `{}`, as 0.5.2 shows it.
pub(crate) fn derive(
    name: &str,
    host: &str,
    package: &Package,
    files: &PackageFiles,
    values: &BTreeMap<String, Value>,
) -> Derived {
    let (kind, bare) = kind::split(name);
    let data = if kind == Kind::Core {
        Derived {
            data: RawValue::from_string("{}".to_owned()).ok(),
            ..Derived::default()
        }
    } else {
        derive_data(name, package, files, values)
    };
    Derived {
        client_id: client_id(name, host),
        xpl_source: crate::core::wire::xpl_source(bare, host),
        package_id: package_id(name),
        ..data
    }
}

fn derive_data(name: &str, package: &Package, files: &PackageFiles, values: &BTreeMap<String, Value>) -> Derived {
    let Package::Valid { data } = package else {
        return Derived::default();
    };
    let Ok(Value::Object(mut root)) = serde_json::from_str::<Value>(data.get()) else {
        return Derived::default(); // cannot happen: packages.rs wrote it
    };
    let identity = root.entry("identity").or_insert_with(|| Value::Object(Map::new()));
    let (xpl_clients_only, compliant) = match identity {
        Value::Object(identity) => {
            identity.insert("package_id".into(), package_id(name).into());
            identity.insert("icon_file".into(), files.icon_file.clone().into());
            let only = identity.entry("xpl_clients_only").or_insert(Value::Bool(false));
            let only = crate::core::clients::is_true(only);
            let compliant = identity.entry("compliant_xpl_clients").or_insert_with(|| json!([]));
            (only, compliant.clone())
        }
        _ => (false, json!([])),
    };
    let configuration = root.entry("configuration").or_insert_with(|| json!([]));
    if let Value::Array(parameters) = configuration {
        // Plugins and interfaces get it (a brain never runs).
        if !xpl_clients_only && kind::split(name).0.user_started() {
            // The package's own auto_startup (if any) wins, moved first.
            let position = parameters
                .iter()
                .position(|parameter| parameter.get("key").and_then(Value::as_str) == Some(AUTO_STARTUP));
            let auto_startup = match position {
                Some(position) => parameters.remove(position),
                None => auto_startup_parameter(),
            };
            parameters.insert(0, auto_startup);
        }
    }
    let package = RawValue::from_string(pyjson::to_string(&root)).ok();
    if let Some(Value::Array(parameters)) = root.get_mut("configuration") {
        for parameter in parameters.iter_mut() {
            let Value::Object(parameter) = parameter else { continue };
            let value = parameter
                .get("key")
                .and_then(Value::as_str)
                .and_then(|key| values.get(key));
            if let Some(value) = value.cloned() {
                parameter.insert("value".into(), value);
            }
        }
    }
    let udev_rules: Map<String, Value> = files
        .udev_rules
        .iter()
        .map(|(stem, text)| (stem.clone(), Value::String(text.clone())))
        .collect();
    root.insert("udev_rules".into(), Value::Object(udev_rules));
    let device_types = match root.get("device_types") {
        Some(Value::Object(types)) => types.keys().cloned().collect(),
        _ => Vec::new(),
    };
    Derived {
        client_id: String::new(),
        xpl_source: String::new(),
        package_id: String::new(),
        data: RawValue::from_string(pyjson::to_string(&root)).ok(),
        package,
        compliant_xpl_clients: RawValue::from_string(pyjson::to_string(&compliant)).ok(),
        xpl_clients_only,
        device_types,
    }
}

fn auto_startup_parameter() -> Value {
    json!({
        "key": AUTO_STARTUP,
        "name": "Start the client with Domogik",
        "type": "boolean",
        "default": false,
        "required": true,
        "description": "Automatically start the client at Domogik startup"
    })
}

fn data_of<E: serde::ser::Error>(derived: &Derived) -> Result<&RawValue, E> {
    match &derived.data {
        Some(data) => Ok(data),
        None => super::empty_object(),
    }
}

/// `client.list`: `{CLIENT_ID: LIST_ENTRY, ...}`.
pub(crate) fn list_json(clients: &Clients, derived: &Derivations) -> String {
    pyjson::to_string(&Entries {
        clients,
        derived,
        detail: false,
    })
}

/// `client.detail`: `{CLIENT_ID: DETAIL_ENTRY, ...}`.
pub(crate) fn detail_json(clients: &Clients, derived: &Derivations) -> String {
    pyjson::to_string(&Entries {
        clients,
        derived,
        detail: true,
    })
}

struct Entries<'a> {
    clients: &'a Clients,
    derived: &'a Derivations,
    detail: bool,
}

/// The fields of both entries, in §8's order; the list's two xpl fields
/// and the detail's `data` and `comment` are the only differences.
#[derive(serde::Serialize)]
struct Entry<'a> {
    host: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    xpl_source: &'a str,
    package_id: &'a str,
    pid: u32,
    last_seen: LastSeen<'a>,
    status: &'static str,
    configured: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    compliant_xpl_clients: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    xpl_clients_only: Option<XplOnly<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
}

impl Serialize for Entries<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let host = self.clients.host();
        let mut map = serializer.serialize_map(Some(self.clients.len() + self.clients.devices().len()))?;
        for (name, client) in self.clients.iter() {
            let derived = self.derived.of(name);
            let compliant = match &derived.compliant_xpl_clients {
                Some(compliant) => &**compliant,
                None => super::empty_array()?,
            };
            let (kind, bare) = kind::split(name);
            let xpl_only = if kind == Kind::Core {
                XplOnly::List(super::empty_array()?)
            } else {
                XplOnly::Flag(derived.xpl_clients_only)
            };
            let entry = Entry {
                host,
                kind: kind.as_str(),
                name: bare,
                xpl_source: &derived.xpl_source,
                package_id: &derived.package_id,
                pid: client.pid,
                last_seen: LastSeen(client),
                status: spelling(client.status()),
                configured: client.configuration.configured,
                compliant_xpl_clients: (!self.detail).then_some(compliant),
                xpl_clients_only: (!self.detail).then_some(xpl_only),
                data: if self.detail { Some(data_of(derived)?) } else { None },
                comment: if self.detail { client.comment() } else { None },
            };
            map.serialize_entry(&derived.client_id, &entry)?;
        }
        crate::core::xpl::view::add_entries(self.clients.devices(), self.detail, &mut map)?;
        map.end()
    }
}

/// A list entry's `xpl_clients_only`: the package's flag, or `[]` for a
/// core component (0.5.2 takes it from data `{}` and falls back to a list).
#[derive(serde::Serialize)]
#[serde(untagged)]
enum XplOnly<'a> {
    Flag(bool),
    List(&'a RawValue),
}

/// `last_seen`, from the text made when it was set.
struct LastSeen<'a>(&'a Client);

impl Serialize for LastSeen<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.0.last_seen_json {
            Some(text) => text.serialize(serializer),
            None => serializer.serialize_f64(self.0.last_seen),
        }
    }
}

/// `client.conversion`: `{CLIENT_ID: {MODULE: SOURCE_TEXT, ...}, ...}`,
/// every client (`{}` for one without conversions).
pub(crate) fn conversion_json(clients: &Clients, derived: &Derivations) -> String {
    struct Conversions<'a>(&'a Clients, &'a Derivations);
    impl Serialize for Conversions<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(Some(self.0.len() + self.0.devices().len()))?;
            for (name, client) in self.0.iter() {
                map.serialize_entry(&self.1.of(name).client_id, &client.files.conversions)?;
            }
            crate::core::xpl::view::add_conversions(self.0.devices(), &mut map)?;
            map.end()
        }
    }
    pyjson::to_string(&Conversions(clients, derived))
}

/// `package.detail`: `{"plugin-<name>": DETAIL_DATA, ...}`, valid packages only.
pub(crate) fn package_detail_json(clients: &Clients, derived: &Derivations) -> String {
    struct Packages<'a>(&'a Clients, &'a Derivations);
    impl Serialize for Packages<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut map = serializer.serialize_map(None)?;
            for (name, _) in self.0.iter() {
                let derived = self.1.of(name);
                if let Some(data) = &derived.package {
                    map.serialize_entry(&derived.package_id, &**data)?;
                }
            }
            map.end()
        }
    }
    pyjson::to_string(&Packages(clients, derived))
}

/// `device_types.result`: `{DEVICE_TYPE: OWNING_PACKAGE'S_DATA, ...}` for
/// every device type of every valid package, or only `wanted`
/// (`{wanted: null}` when no package has it). When two packages declare
/// the same device type, the first by name owns it.
pub(crate) fn device_types_json(clients: &Clients, derived: &Derivations, wanted: Option<&str>) -> String {
    struct Types<'a>(&'a Clients, &'a Derivations, Option<&'a str>);
    impl Serialize for Types<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let mut owners: BTreeMap<&str, &RawValue> = BTreeMap::new();
            for (name, _) in self.0.iter() {
                let derived = self.1.of(name);
                let Some(data) = &derived.package else { continue };
                for device_type in &derived.device_types {
                    if self.2.is_none_or(|wanted| wanted == device_type) {
                        owners.entry(device_type).or_insert(data);
                    }
                }
            }
            let mut map = serializer.serialize_map(None)?;
            match self.2 {
                Some(wanted) => map.serialize_entry(wanted, &owners.get(wanted))?,
                None => {
                    for (device_type, data) in owners {
                        map.serialize_entry(device_type, data)?;
                    }
                }
            }
            map.end()
        }
    }
    pyjson::to_string(&Types(clients, derived, wanted))
}

/// `client.history.result` for the client named in the request (`type`,
/// `name`, `host` as received): `status` false with a `reason` when there
/// is no such client here.
pub(crate) fn history_json(kind: &str, name: &str, host: &str, history: Option<&VecDeque<HistoryEntry>>) -> String {
    #[derive(serde::Serialize)]
    struct Reply<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        name: &'a str,
        host: &'a str,
        status: bool,
        reason: Option<String>,
        history: History<'a>,
    }
    struct History<'a>(Option<&'a VecDeque<HistoryEntry>>);
    impl Serialize for History<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let entries = self.0.map_or(0, VecDeque::len);
            let mut seq = serializer.serialize_seq(Some(entries))?;
            for entry in self.0.into_iter().flatten() {
                seq.serialize_element(&json!({
                    "status": spelling(entry.status),
                    "comment": entry.comment.as_deref().unwrap_or(""),
                    "timestamp": entry.timestamp,
                }))?;
            }
            seq.end()
        }
    }
    // Not ours: the id asked for, shortened (anyone may ask).
    let reason = history.is_none().then(|| {
        format!(
            "no client {}",
            crate::core::wire::truncate(&format!("{kind}-{name}.{host}"), 80)
        )
    });
    let status = history.is_some();
    pyjson::to_string(&Reply {
        kind,
        name,
        host,
        status,
        reason,
        history: History(history),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clients::Configuration;
    use crate::core::liveness::Now;
    use crate::core::packages::parse_info_json;
    use std::path::Path;
    use std::time::{Duration, Instant};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v05/packages");

    fn now() -> Now {
        Now {
            mono: Instant::now(),
            unix: 1371071554.25,
        }
    }

    /// The derived data of `clients`, as the manager keeps it.
    fn derived(clients: &Clients) -> Derivations {
        let mut derived = Derivations::default();
        derived.sync(clients);
        derived
    }

    /// The fixture packages, read as the scanner reads them.
    fn fixture_clients() -> Clients {
        let mut clients = Clients::new("darkstar");
        for name in ["demo", "gate"] {
            let folder = Path::new(FIXTURES).join(format!("plugin_{name}"));
            let bytes = std::fs::read(folder.join("info.json")).unwrap();
            clients.upsert_package(name, parse_info_json(name, &bytes), now());
            let mut files = crate::disk::package_files::read(name, &folder);
            files.icon_file = format!("/pkgs/plugin_{name}/design/icon.png");
            clients.set_files(name, files);
        }
        clients
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn list_entries_field_for_field() {
        let clients = fixture_clients();
        let expected = r#"{"plugin-demo.darkstar": {"host": "darkstar", "type": "plugin", "name": "demo", "xpl_source": "domogik-demo.darkstar", "package_id": "plugin-demo", "pid": 0, "last_seen": 1371071554.25, "status": "stopped", "configured": null, "compliant_xpl_clients": [], "xpl_clients_only": false}, "plugin-gate.darkstar": {"host": "darkstar", "type": "plugin", "name": "gate", "xpl_source": "domogik-gate.darkstar", "package_id": "plugin-gate", "pid": 0, "last_seen": 1371071554.25, "status": "stopped", "configured": null, "compliant_xpl_clients": ["domogik-gate.other"], "xpl_clients_only": true}}"#;
        assert_eq!(list_json(&clients, &derived(&clients)), expected);
    }

    #[test]
    fn derived_data_follows_its_client_and_only_what_moved_is_derived_again() {
        let mut clients = fixture_clients();
        let mut derived = derived(&clients);
        let before = derived.of("demo").clone();
        assert_eq!(before.client_id, "plugin-demo.darkstar");
        // A status is no reason to derive again.
        let revision = clients.get("demo").unwrap().revision;
        clients
            .set_status("demo", "darkstar", Status::Alive, None, now())
            .unwrap();
        assert_eq!(
            clients.get("demo").unwrap().revision,
            revision,
            "a status moves no revision"
        );
        assert_eq!(derived.by_name["demo"].0, revision);
        // A configuration is: its value shows in the data.
        let mut values = BTreeMap::new();
        values.insert("interval".to_owned(), json!("15"));
        let configuration = Configuration {
            configured: Some(true),
            values,
        };
        assert!(clients.set_configuration("demo", configuration));
        assert_ne!(
            derived.by_name["demo"].0,
            clients.get("demo").unwrap().revision,
            "stale"
        );
        derived.sync(&clients);
        let data = derived.of("demo").data.as_ref().unwrap().get();
        assert!(data.contains(r#""value": "15""#), "{data}");
        assert!(!before.data.as_ref().unwrap().get().contains(r#""value": "15""#));
        // A package gone is forgotten, and one back under that name is new.
        assert!(clients.remove_package("demo"));
        derived.sync(&clients);
        assert!(!derived.by_name.contains_key("demo"));
        assert_eq!(derived.of("demo").client_id, "", "never derived");
    }

    #[test]
    fn detail_data_has_domogiks_additions() {
        let mut clients = fixture_clients();
        let mut values = BTreeMap::new();
        values.insert("interval".to_owned(), json!("15"));
        values.insert("auto_startup".to_owned(), json!("False"));
        clients.set_configuration(
            "demo",
            Configuration {
                configured: Some(true),
                values,
            },
        );
        let detail = parse(&detail_json(&clients, &derived(&clients)));
        let expected = json!({
            "host": "darkstar", "type": "plugin", "name": "demo",
            "xpl_source": "domogik-demo.darkstar", "package_id": "plugin-demo",
            "pid": 0, "last_seen": 1371071554.25, "status": "stopped", "configured": true,
            "data": {
                "json_version": 2,
                "identity": {
                    "type": "plugin", "name": "demo", "author": "Test", "version": "0.1",
                    "description": "A fixture plugin for the 0.5 views",
                    "package_id": "plugin-demo",
                    "icon_file": "/pkgs/plugin_demo/design/icon.png",
                    "xpl_clients_only": false,
                    "compliant_xpl_clients": []
                },
                "configuration": [
                    {"key": "auto_startup", "name": "Start the client with Domogik", "type": "boolean", "default": false, "required": true, "description": "Automatically start the client at Domogik startup", "value": "False"},
                    {"key": "interval", "name": "Interval", "type": "integer", "default": 60, "required": true, "description": "Seconds between two reads", "value": "15"},
                    {"key": "device", "name": "Device", "type": "string", "default": "/dev/ttyUSB0", "required": false, "description": "Serial port"}
                ],
                "device_types": {
                    "demo.thermometer": {"id": "demo.thermometer", "name": "Thermometer"},
                    "demo.switch": {"id": "demo.switch", "name": "Switch"}
                },
                "sensors": {},
                "commands": {},
                "udev_rules": {"demo": "SUBSYSTEM==\"tty\", ATTRS{idVendor}==\"0403\", SYMLINK+=\"demo\"\n"}
            }
        });
        assert_eq!(detail["plugin-demo.darkstar"], expected);
        // xpl_clients_only: no auto_startup added.
        let gate = &detail["plugin-gate.darkstar"]["data"];
        assert_eq!(gate["configuration"], json!([]));
        assert_eq!(gate["identity"]["xpl_clients_only"], true);
        assert_eq!(gate["udev_rules"], json!({}));
    }

    #[test]
    fn list_and_detail_agree_and_invalid_packages_are_empty() {
        let mut clients = fixture_clients();
        clients.upsert_package(
            "broken",
            Package::Invalid {
                reason: "plugin_broken/info.json is missing".into(),
            },
            now(),
        );
        clients
            .set_status(
                "demo",
                "darkstar",
                Status::Alive,
                None,
                now().later(Duration::from_secs(2)),
            )
            .unwrap();
        let list = parse(&list_json(&clients, &derived(&clients)));
        let detail = parse(&detail_json(&clients, &derived(&clients)));
        for (id, entry) in list.as_object().unwrap() {
            let mut entry = entry.as_object().unwrap().clone();
            entry.remove("compliant_xpl_clients");
            entry.remove("xpl_clients_only");
            let mut detailed = detail[id].as_object().unwrap().clone();
            detailed.remove("data");
            detailed.remove("comment");
            assert_eq!(detailed, entry, "{id}");
        }
        assert_eq!(list["plugin-demo.darkstar"]["status"], "alive");
        assert_eq!(list["plugin-demo.darkstar"]["last_seen"], 1371071556.25);
        let broken = &detail["plugin-broken.darkstar"];
        assert_eq!(broken["status"], "invalid");
        assert_eq!(broken["data"], json!({}));
        assert_eq!(broken["comment"], "plugin_broken/info.json is missing");
        assert_eq!(list["plugin-broken.darkstar"]["compliant_xpl_clients"], json!([]));
    }

    #[test]
    fn conversions_of_every_client() {
        let clients = fixture_clients();
        let expected = json!({
            "plugin-demo.darkstar": {"to_celsius": "def to_celsius(fahrenheit):\n    return (float(fahrenheit) - 32) * 5 / 9\n"},
            "plugin-gate.darkstar": {}
        });
        assert_eq!(parse(&conversion_json(&clients, &derived(&clients))), expected);
    }

    #[test]
    fn package_detail_and_device_types() {
        let clients = fixture_clients();
        let packages = parse(&package_detail_json(&clients, &derived(&clients)));
        assert_eq!(
            packages.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["plugin-demo", "plugin-gate"]
        );
        let detail = parse(&detail_json(&clients, &derived(&clients)));
        // The package's JSON as 0.5.2's PackageJson: the client's data
        // without the udev rules (nor values from dbmgr), which only the
        // client shows.
        let mut data = detail["plugin-demo.darkstar"]["data"].clone();
        assert!(data.as_object_mut().unwrap().remove("udev_rules").is_some());
        assert_eq!(packages["plugin-demo"], data);

        let all = parse(&device_types_json(&clients, &derived(&clients), None));
        assert_eq!(
            all.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["demo.switch", "demo.thermometer"]
        );
        assert_eq!(all["demo.switch"], packages["plugin-demo"]);
        let one = parse(&device_types_json(&clients, &derived(&clients), Some("demo.switch")));
        assert_eq!(one, json!({"demo.switch": packages["plugin-demo"]}));
        assert_eq!(
            device_types_json(&clients, &derived(&clients), Some("nope")),
            r#"{"nope": null}"#
        );
    }

    #[test]
    fn history_reply() {
        let mut clients = fixture_clients();
        let t = now();
        clients
            .set_status("demo", "darkstar", Status::Alive, Some("up".into()), t)
            .unwrap();
        clients
            .set_status(
                "demo",
                "darkstar",
                Status::Stopped,
                None,
                t.later(Duration::from_secs(1)),
            )
            .unwrap();
        let text = history_json("plugin", "demo", "darkstar", Some(clients.history("demo").unwrap()));
        assert_eq!(
            text,
            r#"{"type": "plugin", "name": "demo", "host": "darkstar", "status": true, "reason": null, "history": [{"comment": "", "status": "stopped", "timestamp": 1371071555.25}, {"comment": "up", "status": "alive", "timestamp": 1371071554.25}]}"#
        );
        let text = history_json("plugin", "zz", "darkstar", None);
        assert_eq!(
            text,
            r#"{"type": "plugin", "name": "zz", "host": "darkstar", "status": false, "reason": "no client plugin-zz.darkstar", "history": []}"#
        );
    }

    #[test]
    fn unknown_is_spelled_stopped_in_this_dialect() {
        assert_eq!(spelling(Status::Unknown), "stopped");
        for status in Status::ALL.into_iter().filter(|status| *status != Status::Unknown) {
            assert_eq!(spelling(status), status.as_str());
        }
    }
}
