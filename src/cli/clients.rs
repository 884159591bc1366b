//! `dmg_manager clients`: asks the running manager for its clients and
//! prints them as a table, or the reply body as it came (`--json`);
//! `--history NAME` prints one client's history instead (PROTOCOL.md §9).

use super::endpoints::{self, Peer};
use super::render::{colour, table};
use super::{net, stdout_failed, ToolError, Unexpected};
use crate::core::config::Config;
use crate::core::manager::{DETAIL_GET, DETAIL_RESULT, ERROR_ACTION, LIST_GET, LIST_RESULT};
use crate::core::wire::{self, ReceivedReply};
use crate::sys::log::Zone;
use serde_json::{Map, Value};
use std::io::Write;
use std::time::Duration;

/// The options of `clients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientsOptions {
    /// Ask for `clients.detail` and show version, author, description.
    pub detail: bool,
    /// Print the reply body unchanged instead of the table.
    pub json: bool,
    /// Print this plugin's history (`client.history.get`) instead.
    pub history: Option<String>,
    /// The history's times in local time or UTC (`--utc`).
    pub zone: Zone,
    /// Show only this host's clients.
    pub host: Option<String>,
    pub timeout: Duration,
}

/// The manager's answer: the body's text, and the clients map in it.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub body: String,
    pub clients: Map<String, Value>,
}

/// Runs `clients`.
pub(crate) fn run(config: &Config, options: &ClientsOptions) -> Result<(), ToolError> {
    let context = zmq::Context::new();
    let text = match &options.history {
        Some(name) => history(&context, config, name, options)?,
        None => {
            let mut fetched = fetch(&context, config, options.detail, options.timeout)?;
            if let Some(host) = &options.host {
                fetched.clients = of_host(std::mem::take(&mut fetched.clients), host);
            }
            if options.json {
                format!("{}\n", fetched.body)
            } else {
                // The 0.5 list has last_seen and pid; a manager without it
                // (an older one) leaves those columns "-".
                let v05 = fetch_v05_list(&context, config, options.timeout).unwrap_or_default();
                let now = wire::unix_seconds(std::time::SystemTime::now());
                let rows = table::rows(&fetched.clients, options.detail, &v05, now);
                table::render(&rows, options.detail, colour::enabled_for_stdout())
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) => stdout_failed(error).map_or(Ok(()), Err),
    }
}

/// The clients whose `host` is `host`.
fn of_host(clients: Map<String, Value>, host: &str) -> Map<String, Value> {
    clients
        .into_iter()
        .filter(|(_, entry)| entry.get("host").and_then(Value::as_str) == Some(host))
        .collect()
}

/// Asks for the list (or the detail) and checks the reply.
pub(crate) fn fetch(
    context: &zmq::Context,
    config: &Config,
    detail: bool,
    timeout: Duration,
) -> Result<Fetched, ToolError> {
    let target = endpoints::target(Peer::Requests, config)?;
    let (action, result) = if detail {
        (DETAIL_GET, DETAIL_RESULT)
    } else {
        (LIST_GET, LIST_RESULT)
    };
    let reply = net::request(context, &target, &config.service, action, timeout)?;
    clients_of(reply, result).map_err(|why| ToolError(format!("{why} (from {})", target.address)))
}

/// The 0.5 list, `{plugin-NAME.HOST: ENTRY, ...}`; `None` if the manager
/// does not answer it.
pub(crate) fn fetch_v05_list(context: &zmq::Context, config: &Config, timeout: Duration) -> Option<Map<String, Value>> {
    let target = endpoints::target(Peer::Requests, config).ok()?;
    let reply = net::request(context, &target, &config.service, "client.list.get", timeout).ok()?;
    match serde_json::from_str(&reply.body) {
        Ok(Value::Object(list)) if reply.action == "client.list.result" => Some(list),
        _ => None,
    }
}

/// `--history NAME`: the reply body (`--json`) or one line per change,
/// newest first: `TIME  STATUS  COMMENT`, TIME in UTC as in the log.
fn history(context: &zmq::Context, config: &Config, name: &str, options: &ClientsOptions) -> Result<String, ToolError> {
    let target = endpoints::target(Peer::Requests, config)?;
    let body = serde_json::json!({"type": "plugin", "name": name, "host": config.host}).to_string();
    let reply = net::request_with(
        context,
        &target,
        &config.service,
        "client.history.get",
        &body,
        options.timeout,
    )?;
    history_text(&reply, options.json, options.zone).map_err(|why| ToolError(format!("{why} (from {})", target.address)))
}

/// The text `--history` prints for a `client.history.result` reply.
fn history_text(reply: &ReceivedReply, json: bool, zone: Zone) -> Result<String, Unexpected> {
    let body: Value = serde_json::from_str(&reply.body).map_err(|e| Unexpected::NotJson(e.to_string()))?;
    let reason = || match body.get("reason") {
        Some(Value::String(reason)) => table::clean(reason),
        _ => "no reason given".into(),
    };
    if reply.action == ERROR_ACTION {
        return Err(Unexpected::Refused(reason()));
    }
    if reply.action != "client.history.result" {
        return Err(Unexpected::Action {
            action: wire::truncate(&reply.action, 40),
            expected: "client.history.result".into(),
            hint: " (a manager older than Domogik 0.5's dialect?)",
        });
    }
    if body.get("status") != Some(&Value::Bool(true)) {
        return Err(Unexpected::NoSuchClient(reason()));
    }
    if json {
        return Ok(format!("{}\n", reply.body));
    }
    let mut out = String::new();
    for entry in body.get("history").and_then(Value::as_array).into_iter().flatten() {
        let time = entry
            .get("timestamp")
            .and_then(Value::as_f64)
            // From the reply: a value no time can hold is shown as `-`.
            .and_then(|t| Duration::try_from_secs_f64(t).ok())
            .and_then(|since| std::time::UNIX_EPOCH.checked_add(since))
            .map_or("-".into(), |time| crate::sys::log::timestamp(time, zone));
        let text = |field: &str| {
            entry
                .get(field)
                .and_then(Value::as_str)
                .map(table::clean)
                .unwrap_or_default()
        };
        let line = format!("{time}  {:<12}  {}", text("status"), text("comment"));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if out.is_empty() {
        out.push_str("no change of status since the manager started\n");
    }
    Ok(out)
}

/// The clients map of a `*.result` reply, or what is wrong with the reply.
fn clients_of(reply: ReceivedReply, expected: &str) -> Result<Fetched, Unexpected> {
    let body = serde_json::from_str::<Value>(&reply.body);
    if reply.action == ERROR_ACTION {
        let reason = match body.as_ref().ok().and_then(|body| body.get("reason")) {
            Some(Value::String(reason)) => table::clean(reason),
            // truncate escapes control characters itself.
            _ => wire::truncate(&reply.body, 200),
        };
        return Err(Unexpected::Refused(reason));
    }
    let body = body.map_err(|e| Unexpected::NotJson(e.to_string()))?;
    if reply.action != expected {
        return Err(Unexpected::Action {
            action: wire::truncate(&reply.action, 40),
            expected: expected.to_owned(),
            hint: "",
        });
    }
    match body {
        Value::Object(mut object) => match object.remove("clients") {
            Some(Value::Object(clients)) => Ok(Fetched {
                body: reply.body,
                clients,
            }),
            _ => Err(Unexpected::NoClients),
        },
        _ => Err(Unexpected::NotAnObject),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::plain_reply as reply;

    #[test]
    fn history_lines_newest_first_and_refusals() {
        let body = r#"{"type": "plugin", "name": "a", "host": "h", "status": true, "reason": null, "history": [{"status": "dead", "comment": "no status\nreceived", "timestamp": 1371071554.25}, {"status": "alive", "comment": "", "timestamp": 1371071500.0}]}"#;
        let text = history_text(&reply("client.history.result", body), false, Zone::Utc).unwrap();
        assert_eq!(
            text,
            "2013-06-12T21:12:34.250Z  dead          no status received\n2013-06-12T21:11:40.000Z  alive\n"
        );
        assert_eq!(
            history_text(&reply("client.history.result", body), true, Zone::Utc).unwrap(),
            format!("{body}\n")
        );
        let empty = r#"{"status": true, "history": []}"#;
        assert!(history_text(&reply("client.history.result", empty), false, Zone::Utc)
            .unwrap()
            .starts_with("no change"));
        let refused = r#"{"status": false, "reason": "no client plugin-zz.h", "history": []}"#;
        assert_eq!(
            history_text(&reply("client.history.result", refused), false, Zone::Utc)
                .unwrap_err()
                .to_string(),
            "the manager has no such client: no client plugin-zz.h"
        );
        let old = history_text(
            &reply("error", r#"{"status": false, "reason": "unknown action"}"#),
            false,
            Zone::Utc,
        );
        assert_eq!(
            old.unwrap_err().to_string(),
            "the manager answered error: unknown action"
        );
    }

    #[test]
    fn a_timestamp_no_time_can_hold_is_a_dash() {
        for timestamp in ["1e300", "1e19", "-1", "1e-9999"] {
            let body = format!(
                r#"{{"status": true, "history": [{{"status": "dead", "comment": "", "timestamp": {timestamp}}}]}}"#
            );
            let text = history_text(&reply("client.history.result", &body), false, Zone::Utc).unwrap();
            assert!(
                text.starts_with('-') || text.starts_with("1970-01-01T00:00:00.000Z"),
                "{timestamp}: {text}"
            );
        }
    }

    #[test]
    fn host_keeps_that_hosts_clients_only() {
        let clients = match serde_json::json!({
            "domogik-a.box": {"host": "box"},
            "domogik-a.garage": {"host": "garage"},
            "domogik-b.garage": {"host": "garage"},
            "broken": null
        }) {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let kept: Vec<String> = of_host(clients, "garage").into_iter().map(|(id, _)| id).collect();
        assert_eq!(kept, ["domogik-a.garage", "domogik-b.garage"]);
    }

    #[test]
    fn result_keeps_the_body_text() {
        let body = r#"{"clients": {"a": {"status": "alive"}}}"#;
        let fetched = clients_of(reply(LIST_RESULT, body), LIST_RESULT).unwrap();
        assert_eq!(fetched.body, body);
        assert_eq!(fetched.clients["a"]["status"], "alive");
    }

    #[test]
    fn error_replies_give_their_reason() {
        let error = clients_of(
            reply("error", r#"{"status": false, "reason": "unknown service \"x\""}"#),
            LIST_RESULT,
        );
        assert_eq!(
            error.unwrap_err().to_string(),
            "the manager answered error: unknown service \"x\""
        );
    }

    #[test]
    fn malformed_replies() {
        for (action, body, expected) in [
            (LIST_RESULT, "nope", "not JSON"),
            (LIST_RESULT, "[]", "not a JSON object"),
            (LIST_RESULT, r#"{"clients": []}"#, "no \"clients\""),
            (DETAIL_RESULT, "{}", "unexpected reply action"),
            ("error", "oops", "answered error: oops"),
        ] {
            let error = clients_of(reply(action, body), LIST_RESULT).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
