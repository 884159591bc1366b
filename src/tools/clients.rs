//! `dmg_manager clients`: asks the running manager for its clients and
//! prints them as a table, or the reply body as it came (`--json`).

use super::endpoints::{self, Peer};
use super::{colour, net, stdout_failed, table, ToolError};
use crate::config::Config;
use crate::manager::{DETAIL_GET, DETAIL_RESULT, ERROR_ACTION, LIST_GET, LIST_RESULT};
use crate::wire::{self, ReceivedReply};
use serde_json::{Map, Value};
use std::io::Write;
use std::time::Duration;

/// The options of `clients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientsOptions {
    /// Ask for `clients.detail` and show version, author, description.
    pub detail: bool,
    /// Print the reply body unchanged instead of the table.
    pub json: bool,
    pub timeout: Duration,
}

/// The manager's answer: the body's text, and the clients map in it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: String,
    pub clients: Map<String, Value>,
}

/// Runs `clients`.
pub fn run(config: &Config, options: &ClientsOptions) -> Result<(), ToolError> {
    let context = zmq::Context::new();
    let fetched = fetch(&context, config, options.detail, options.timeout)?;
    let text = if options.json {
        format!("{}\n", fetched.body)
    } else {
        let rows = table::rows(&fetched.clients, options.detail);
        table::render(&rows, options.detail, colour::enabled_for_stdout())
    };
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) => stdout_failed(error).map_or(Ok(()), Err),
    }
}

/// Asks for the list (or the detail) and checks the reply.
pub fn fetch(context: &zmq::Context, config: &Config, detail: bool, timeout: Duration) -> Result<Fetched, ToolError> {
    let target = endpoints::target(Peer::Requests, config).map_err(ToolError)?;
    let (action, result) = if detail {
        (DETAIL_GET, DETAIL_RESULT)
    } else {
        (LIST_GET, LIST_RESULT)
    };
    let reply = net::request(context, &target, &config.service, action, timeout)?;
    clients_of(reply, result).map_err(|why| ToolError(format!("{why} (from {})", target.address)))
}

/// The clients map of a `*.result` reply, or what is wrong with the reply.
fn clients_of(reply: ReceivedReply, expected: &str) -> Result<Fetched, String> {
    let body = serde_json::from_str::<Value>(&reply.body);
    if reply.action == ERROR_ACTION {
        let reason = match body.as_ref().ok().and_then(|body| body.get("reason")) {
            Some(Value::String(reason)) => table::clean(reason),
            // truncate escapes control characters itself.
            _ => wire::truncate(&reply.body, 200),
        };
        return Err(format!("the manager answered error: {reason}"));
    }
    let body = body.map_err(|e| format!("the reply body is not JSON: {e}"))?;
    if reply.action != expected {
        return Err(format!(
            "unexpected reply action \"{}\", expected {expected}",
            wire::truncate(&reply.action, 40)
        ));
    }
    match body {
        Value::Object(mut object) => match object.remove("clients") {
            Some(Value::Object(clients)) => Ok(Fetched {
                body: reply.body,
                clients,
            }),
            _ => Err("the reply has no \"clients\" object".into()),
        },
        _ => Err("the reply body is not a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::plain_reply as reply;

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
        assert_eq!(error.unwrap_err(), "the manager answered error: unknown service \"x\"");
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
            let error = clients_of(reply(action, body), LIST_RESULT).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
