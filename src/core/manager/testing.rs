//! The manager's unit-test helpers: frames, a manager with packages, a
//! reply's body, one request asked.

use super::Manager;
use crate::core::packages::{Package, PackageChange};
use serde_json::value::RawValue;
use serde_json::Value;

pub(super) fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|part| part.to_vec()).collect()
}

pub(super) fn manager_with(names: &[&str]) -> Manager {
    let mut manager = Manager::new("box", "manager", crate::sys::clock::now());
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

pub(super) fn body(frame: &[u8]) -> Value {
    serde_json::from_slice(frame).unwrap()
}

pub(super) fn ask(manager: &mut Manager, action: &str, body: &str) -> (String, Value) {
    let reply = manager.handle_request(&[action.as_bytes().to_vec(), body.as_bytes().to_vec()]);
    (
        String::from_utf8(reply.frames[0].clone()).unwrap(),
        self::body(&reply.frames[1]),
    )
}
