//! The seed dialect's views (PROTOCOL.md §2, §4): `clients.list` and
//! `clients.detail`, keyed `domogik-<name>.<host>`.

use crate::core::clients::Clients;
use crate::core::packages::Package;
use crate::core::pyjson;
use crate::core::status::Status;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;

/// The list view, `{ID: LIST_ENTRY, ...}`, as Python's json.dumps writes it.
pub(crate) fn list_json(clients: &Clients) -> String {
    pyjson::to_string(&View { clients, detail: false })
}

/// The detail view, `{ID: DETAIL_ENTRY, ...}`, as Python's json.dumps writes it.
pub(crate) fn detail_json(clients: &Clients) -> String {
    pyjson::to_string(&View { clients, detail: true })
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
    /// From `dbmgr` (PROTOCOL.md §8); `null` while unknown.
    configured: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<&'a str>,
}

impl Serialize for View<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let empty = super::empty_object()?;
        // The seed dialect knows plugins only (its §2); the other kinds
        // are in the 0.5 views.
        let plugins = self
            .clients
            .iter()
            .filter(|(name, _)| crate::core::kind::split(name).0 == crate::core::kind::Kind::Plugin);
        let mut map = serializer.serialize_map(None)?;
        for (name, client) in plugins {
            let data = match &client.package {
                Package::Valid { data } => &**data,
                Package::Invalid { .. } => empty,
            };
            let entry = Entry {
                status: client.status(),
                host: self.clients.host(),
                kind: "plugin",
                id: name,
                configured: client.configuration.configured,
                data: self.detail.then_some(data),
                comment: if self.detail { client.comment() } else { None },
            };
            map.serialize_entry(&self.clients.client_id(name), &entry)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::liveness::Now;
    use serde_json::{json, Value};
    use std::time::Instant;

    fn valid(json: &str) -> Package {
        Package::Valid {
            data: RawValue::from_string(json.to_owned()).unwrap(),
        }
    }

    fn now() -> Now {
        Now {
            mono: Instant::now(),
            unix: 1.0,
        }
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn new_client_starts_unknown_and_matches_the_seed_example() {
        let mut clients = Clients::new("darkstar");
        assert!(clients.upsert_package("diskfree", valid("{}"), now()));
        assert_eq!(
            list_json(&clients),
            r#"{"domogik-diskfree.darkstar": {"status": "unknown", "host": "darkstar", "type": "plugin", "id": "diskfree", "configured": null}}"#
        );
        assert_eq!(
            detail_json(&clients),
            r#"{"domogik-diskfree.darkstar": {"status": "unknown", "host": "darkstar", "type": "plugin", "id": "diskfree", "configured": null, "data": {}}}"#
        );
    }

    #[test]
    fn list_and_detail_agree_after_every_change() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid(r#"{"x": 1}"#), now());
        clients.upsert_package(
            "b",
            Package::Invalid {
                reason: "broken".into(),
            },
            now(),
        );
        clients.set_status("a", "h", Status::Alive, None, now()).unwrap();
        let list = parse(&list_json(&clients));
        let detail = parse(&detail_json(&clients));
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
    fn configured_from_dbmgr_shows_in_the_seed_dialect_too() {
        let mut clients = Clients::new("h");
        clients.upsert_package("a", valid("{}"), now());
        let configuration = crate::core::clients::Configuration {
            configured: Some(false),
            ..Default::default()
        };
        clients.set_configuration("a", configuration);
        assert_eq!(parse(&list_json(&clients))["domogik-a.h"]["configured"], false);
    }

    #[test]
    fn empty_map() {
        assert_eq!(list_json(&Clients::new("h")), "{}");
    }
}
