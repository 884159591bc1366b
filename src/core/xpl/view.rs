//! The xPL devices in the 0.5 views (docs/PROTOCOL.md §11): one entry per
//! device, keyed by its xPL source, shaped as Domogik 0.5.2's
//! `_register_xpl_client` makes it (`Clients.add(instance, "xpl_client",
//! "vendor-device", source, source, None, None, None)`): `data` and the
//! conversions `null`, the xpl fields empty lists, `configured` null.

use super::devices::{Device, Devices};
use serde::ser::SerializeMap;

/// The client type of a device in the 0.5 views.
pub const XPL_CLIENT: &str = "xpl_client";

#[derive(serde::Serialize)]
struct Entry<'a> {
    host: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    xpl_source: &'a str,
    package_id: &'a str,
    pid: u32,
    last_seen: f64,
    status: &'static str,
    configured: Option<bool>,
    /// The list's two xpl fields: `[]` each (0.5.2's for a client without data).
    #[serde(skip_serializing_if = "Option::is_none")]
    compliant_xpl_clients: Option<[(); 0]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    xpl_clients_only: Option<[(); 0]>,
    /// The detail's `data`: `null`, present.
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<()>,
}

/// Adds each device's entry (the list's, or with `detail` the detail's)
/// to a 0.5 map being written.
pub(crate) fn add_entries<M: SerializeMap>(devices: &Devices, detail: bool, map: &mut M) -> Result<(), M::Error> {
    for device in devices.iter() {
        let name = name(device);
        let package_id = format!("{XPL_CLIENT}-{name}");
        let entry = Entry {
            host: device.source().instance(),
            kind: XPL_CLIENT,
            name: &name,
            xpl_source: device.source().as_str(),
            package_id: &package_id,
            pid: 0,
            last_seen: device.last_seen(),
            status: device.status().as_str(),
            configured: None,
            compliant_xpl_clients: (!detail).then_some([]),
            xpl_clients_only: (!detail).then_some([]),
            data: detail.then_some(()),
        };
        map.serialize_entry(device.source().as_str(), &entry)?;
    }
    Ok(())
}

/// Adds each device's `client.conversion` entry: `SOURCE: null`.
pub(crate) fn add_conversions<M: SerializeMap>(devices: &Devices, map: &mut M) -> Result<(), M::Error> {
    for device in devices.iter() {
        map.serialize_entry(device.source().as_str(), &())?;
    }
    Ok(())
}

/// `VENDOR-DEVICE`, the device's 0.5 `name`.
fn name(device: &Device) -> String {
    format!("{}-{}", device.source().vendor(), device.source().device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::liveness::Now;
    use crate::core::xpl::message::decode;
    use serde::ser::Serializer;
    use std::time::{Duration, Instant};

    fn view(devices: &Devices, what: &str) -> String {
        struct View<'a>(&'a Devices, &'a str);
        impl serde::Serialize for View<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                match self.1 {
                    "list" => add_entries(self.0, false, &mut map)?,
                    "detail" => add_entries(self.0, true, &mut map)?,
                    _ => add_conversions(self.0, &mut map)?,
                }
                map.end()
            }
        }
        crate::core::pyjson::to_string(&View(devices, what))
    }

    #[test]
    fn entries_are_shaped_as_domogik_0_5_2s() {
        let mut devices = Devices::new(8, Duration::from_secs(60));
        let hbeat = "xpl-stat\n{\nhop=1\nsource=acme-sensor.kitchen\ntarget=*\n}\nhbeat.app\n{\ninterval=5\n}\n";
        let now = Now {
            mono: Instant::now(),
            unix: 1796506892.614512,
        };
        devices.handle_message(&decode(hbeat.as_bytes()).unwrap(), now);
        assert_eq!(
            view(&devices, "list"),
            r#"{"acme-sensor.kitchen": {"host": "kitchen", "type": "xpl_client", "name": "acme-sensor", "xpl_source": "acme-sensor.kitchen", "package_id": "xpl_client-acme-sensor", "pid": 0, "last_seen": 1796506892.614512, "status": "alive", "configured": null, "compliant_xpl_clients": [], "xpl_clients_only": []}}"#
        );
        assert_eq!(
            view(&devices, "detail"),
            r#"{"acme-sensor.kitchen": {"host": "kitchen", "type": "xpl_client", "name": "acme-sensor", "xpl_source": "acme-sensor.kitchen", "package_id": "xpl_client-acme-sensor", "pid": 0, "last_seen": 1796506892.614512, "status": "alive", "configured": null, "data": null}}"#
        );
        assert_eq!(view(&devices, "conversion"), r#"{"acme-sensor.kitchen": null}"#);
    }
}
