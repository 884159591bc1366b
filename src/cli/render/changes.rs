//! What changed between two `clients.detail` maps, as `watch` prints it:
//! one line per change, `TIME CLIENT WHAT`. Pure, so it is tested on
//! literal JSON.

use super::colour;
use super::table::clean;
use serde_json::{Map, Value};

/// One change of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    Added {
        status: String,
    },
    Removed,
    Status {
        old: String,
        new: String,
        comment: Option<String>,
    },
    /// The package's data changed (or, for an invalid package, the reason).
    Reloaded,
}

/// The changes from `old` to `new`, by client id in order. A client whose
/// status and data both changed (a broken package fixed) gets two.
pub(crate) fn diff(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<(String, Change)> {
    let mut ids: Vec<&String> = old.keys().chain(new.keys()).collect();
    ids.sort();
    ids.dedup();
    let mut changes = Vec::new();
    for id in ids {
        match (old.get(id), new.get(id)) {
            (None, Some(entry)) => changes.push((
                id.clone(),
                Change::Added {
                    status: status_of(entry),
                },
            )),
            (Some(_), None) => changes.push((id.clone(), Change::Removed)),
            (Some(before), Some(after)) => {
                changes.extend(
                    entry_changes(before, after)
                        .into_iter()
                        .map(|change| (id.clone(), change)),
                );
            }
            (None, None) => {}
        }
    }
    changes
}

fn entry_changes(before: &Value, after: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    let (old, new) = (status_of(before), status_of(after));
    let status_changed = old != new;
    if status_changed {
        let comment = after.get("comment").and_then(Value::as_str).map(str::to_owned);
        changes.push(Change::Status { old, new, comment });
    }
    // A comment changes alone only when an invalid package's reason does;
    // with a status change it is the status message's, shown above.
    let comment_changed = !status_changed && before.get("comment") != after.get("comment");
    if before.get("data") != after.get("data") || comment_changed {
        changes.push(Change::Reloaded);
    }
    changes
}

fn status_of(entry: &Value) -> String {
    match entry.get("status") {
        Some(Value::String(status)) => status.clone(),
        Some(other) => other.to_string(),
        None => "-".into(),
    }
}

/// `TIME CLIENT WHAT`, e.g. `2026-11-24T16:05:01.123Z domogik-x.box unknown → alive`.
pub(crate) fn line(time: &str, id: &str, change: &Change, colour: bool) -> String {
    let paint = |status: &str| colour::status(&clean(status), colour);
    let what = match change {
        Change::Added { status } => format!("added ({})", paint(status)),
        Change::Removed => "removed".into(),
        Change::Status { old, new, comment } => {
            let comment = comment
                .as_deref()
                .map(|text| format!(": {}", clean(text)))
                .unwrap_or_default();
            format!("{} → {}{comment}", paint(old), paint(new))
        }
        Change::Reloaded => "reloaded".into(),
    };
    format!("{time} {} {what}", clean(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::json_map as map;
    use serde_json::json;

    fn entry(status: &str, data: Value) -> Value {
        json!({"status": status, "host": "h", "type": "plugin", "id": "x", "configured": null, "data": data})
    }

    #[test]
    fn nothing_changed_is_no_line() {
        let state = map(json!({"a": entry("alive", json!({"v": 1}))}));
        assert_eq!(diff(&state, &state), vec![]);
    }

    #[test]
    fn added_removed_status_and_reload() {
        let old = map(json!({
            "a": entry("unknown", json!({"v": 1})),
            "b": entry("alive", json!({})),
            "c": entry("alive", json!({"v": 1})),
        }));
        let mut dead = entry("dead", json!({}));
        dead["comment"] = json!("no device");
        let new = map(json!({
            "a": entry("alive", json!({"v": 1})),
            "b": dead,
            "c": entry("alive", json!({"v": 2})),
            "d": entry("unknown", json!({})),
        }));
        let status = |old: &str, new: &str, comment: Option<&str>| Change::Status {
            old: old.into(),
            new: new.into(),
            comment: comment.map(str::to_owned),
        };
        assert_eq!(
            diff(&old, &new),
            vec![
                ("a".into(), status("unknown", "alive", None)),
                ("b".into(), status("alive", "dead", Some("no device"))),
                ("c".into(), Change::Reloaded),
                (
                    "d".into(),
                    Change::Added {
                        status: "unknown".into()
                    }
                ),
            ]
        );
        assert_eq!(diff(&new, &old)[3], ("d".into(), Change::Removed));
    }

    #[test]
    fn a_fixed_package_changes_status_and_data() {
        let mut broken = entry("invalid", json!({}));
        broken["comment"] = json!("plugin_x/info.json is missing");
        let old = map(json!({"x": broken.clone()}));
        let fixed = map(json!({"x": entry("unknown", json!({"v": 1}))}));
        let kinds: Vec<Change> = diff(&old, &fixed).into_iter().map(|(_, change)| change).collect();
        assert_eq!(kinds.len(), 2);
        assert!(matches!(kinds[1], Change::Reloaded));
        // Broken differently: same status and data, another reason.
        broken["comment"] = json!("plugin_x/info.json has a JSON error");
        assert_eq!(
            diff(&old, &map(json!({"x": broken}))),
            vec![("x".into(), Change::Reloaded)]
        );
    }

    #[test]
    fn lines() {
        let time = "2026-11-24T16:05:01.123Z";
        let change = Change::Status {
            old: "alive".into(),
            new: "dead".into(),
            comment: Some("bad\x1b[2Jthing".into()),
        };
        assert_eq!(
            line(time, "domogik-x.h", &change, false),
            "2026-11-24T16:05:01.123Z domogik-x.h alive → dead: bad [2Jthing"
        );
        assert_eq!(line(time, "i", &Change::Removed, false), format!("{time} i removed"));
        assert_eq!(
            line(time, "i", &Change::Added { status: "alive".into() }, true),
            format!("{time} i added (\x1b[32malive\x1b[0m)")
        );
        assert_eq!(line(time, "i", &Change::Reloaded, false), format!("{time} i reloaded"));
    }
}
