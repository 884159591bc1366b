//! `dmg_manager start NAME`: asks the running manager to start plugin NAME
//! of this host (`plugin.start.do`, PROTOCOL.md §9) and says whether it did.

use super::endpoints::{self, Peer};
use super::render::table;
use super::{net, ToolError, Unexpected};
use crate::core::config::Config;
use crate::core::manager::{ERROR_ACTION, START_DO, START_RESULT};
use crate::core::wire::{self, ReceivedReply};
use serde_json::Value;
use std::time::Duration;

/// The arguments of `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartOptions {
    /// The plugin's name, e.g. `diskfree` (checked by the command line).
    pub name: String,
    pub timeout: Duration,
}

/// Runs `start`: prints `started plugin NAME on HOST` and succeeds, or
/// fails with the manager's reason.
pub(crate) fn run(config: &Config, options: &StartOptions) -> Result<(), ToolError> {
    let target = endpoints::target(Peer::Requests, config)?;
    let context = zmq::Context::new();
    let body = request_body(&options.name, &config.host);
    let reply = net::request_with(&context, &target, &config.service, START_DO, &body, options.timeout)?;
    let line = outcome(&reply, &options.name, &config.host).map_err(|why| ToolError(why.to_string()))?;
    println!("{line}");
    Ok(())
}

/// `{"type": "plugin", "name": NAME, "host": HOST}`.
pub(crate) fn request_body(name: &str, host: &str) -> String {
    serde_json::json!({"type": "plugin", "name": name, "host": host}).to_string()
}

/// What a `plugin.start.result` (or `error`) reply means, as one line.
pub(crate) fn outcome(reply: &ReceivedReply, name: &str, host: &str) -> Result<String, Unexpected> {
    let body: Value = serde_json::from_str(&reply.body).map_err(|e| Unexpected::NotJson(e.to_string()))?;
    let reason = || match body.get("reason") {
        Some(Value::String(reason)) if !reason.is_empty() => table::clean(reason),
        _ => "no reason given".to_owned(),
    };
    if reply.action == ERROR_ACTION {
        return Err(Unexpected::Refused(reason()));
    }
    if reply.action != START_RESULT {
        return Err(Unexpected::Action {
            action: wire::truncate(&reply.action, 40),
            expected: START_RESULT.to_owned(),
            hint: "",
        });
    }
    match body.get("status") {
        Some(Value::Bool(true)) => Ok(format!("started plugin {name} on {host}")),
        Some(Value::Bool(false)) => Err(Unexpected::NotStarted {
            name: name.to_owned(),
            reason: reason(),
        }),
        _ => Err(Unexpected::NoStatus),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::plain_reply as reply;

    #[test]
    fn a_start_result_reads_as_one_line() {
        let ok = reply(
            START_RESULT,
            r#"{"type": "plugin", "name": "a", "host": "h", "status": true, "reason": ""}"#,
        );
        assert_eq!(outcome(&ok, "a", "h"), Ok("started plugin a on h".into()));
        let refused = reply(
            START_RESULT,
            r#"{"status": false, "reason": "plugin a is already running (pid 7)"}"#,
        );
        assert_eq!(
            outcome(&refused, "a", "h").map_err(|e| e.to_string()),
            Err("plugin a not started: plugin a is already running (pid 7)".into())
        );
        let error = reply(ERROR_ACTION, r#"{"status": false, "reason": "unknown action"}"#);
        assert_eq!(
            outcome(&error, "a", "h").map_err(|e| e.to_string()),
            Err("the manager answered error: unknown action".into())
        );
        assert!(outcome(&reply("x", "{}"), "a", "h")
            .unwrap_err()
            .to_string()
            .contains("unexpected reply action"));
        assert!(outcome(&reply(START_RESULT, "{}"), "a", "h")
            .unwrap_err()
            .to_string()
            .contains("boolean"));
    }

    #[test]
    fn the_request_names_the_plugin_and_this_host() {
        let body: Value = serde_json::from_str(&request_body("diskfree", "darkstar")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "plugin", "name": "diskfree", "host": "darkstar"})
        );
    }
}
