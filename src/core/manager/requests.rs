//! Answering requests (PROTOCOL.md §4, §8, §9): the seed's
//! `clients.list.get` and `clients.detail.get`, the 0.5 dialect's actions
//! and `plugin.start.do`, in whichever framing they came; exactly one reply
//! each, an `error` one for what cannot be answered.

use super::publications::View;
use super::{Manager, NoProcesses, Processes};
use crate::core::views::v05;
use crate::core::wire::{self, BadRequest, Request};
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

pub const LIST_GET: &str = "clients.list.get";
pub(crate) const LIST_RESULT: &str = "clients.list.result";
pub const DETAIL_GET: &str = "clients.detail.get";
pub(crate) const DETAIL_RESULT: &str = "clients.detail.result";
pub(crate) const ERROR_ACTION: &str = "error";
pub(crate) const START_DO: &str = "plugin.start.do";
pub(crate) const START_RESULT: &str = "plugin.start.result";

/// The 0.5 dialect's actions (PROTOCOL.md §8): request, reply.
pub(crate) const V05_ACTIONS: [(&str, &str); 7] = [
    ("client.list.get", "client.list.result"),
    ("client.detail.get", "client.detail.result"),
    ("client.conversion.get", "client.conversion.result"),
    ("client.history.get", "client.history.result"),
    ("datatype.get", "datatype.result"),
    ("device_types.get", "device_types.result"),
    ("package.detail.get", "package.detail.result"),
];

/// A reply to send, and the problem to log when it is an `error` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub frames: Vec<Vec<u8>>,
    pub error: Option<String>,
}

/// Why a request gets an `error` reply; displayed as its one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The frames are no request (the codec's reason: `wire::BadRequest`).
    Malformed(String),
    /// An MDP request for another service: the one named (shortened), ours.
    UnknownService(String, String),
    /// An action we do not answer (shortened).
    UnknownAction(String),
    /// `client.history.get` without this text field.
    HistoryNeeds(&'static str),
    DeviceTypeNotText,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(reason) => f.write_str(reason),
            Refusal::UnknownService(named, ours) => write!(f, "unknown service \"{named}\", this is \"{ours}\""),
            Refusal::UnknownAction(action) => write!(
                f,
                "unknown action \"{action}\" (expected {LIST_GET}, {DETAIL_GET} or one of {})",
                V05_ACTIONS.map(|(get, _)| get).join(", ")
            ),
            Refusal::HistoryNeeds(field) => write!(f, "client.history.get needs a text \"{field}\""),
            Refusal::DeviceTypeNotText => f.write_str("device_type is not text"),
        }
    }
}

impl std::error::Error for Refusal {}

impl Manager {
    /// Answers one request's frames, in whichever framing they came
    /// (plain or MDP client, §1; the MDP worker hands over the frames after
    /// the broker's envelope, which are plain). Always returns a reply: a
    /// client that gets none waits for good. The framing is the codec's
    /// ([`wire`]); what is answered is [`Manager::answer_with`]'s.
    pub fn handle_request(&mut self, frames: &[Vec<u8>]) -> Reply {
        self.handle_request_with(frames, &mut NoProcesses)
    }

    /// [`Manager::handle_request`], with `starter` for `plugin.start.do`.
    pub(crate) fn handle_request_with(&mut self, frames: &[Vec<u8>], starter: &mut dyn Processes) -> Reply {
        let (framing, answer) = match wire::decode_request(frames) {
            Ok(request) => {
                let answer = self.answer_with(&request, starter);
                (request.framing, answer)
            }
            Err(BadRequest { framing, reason }) => (framing, Err(Refusal::Malformed(reason))),
        };
        match answer {
            Ok((action, body)) => Reply {
                frames: wire::encode_reply(framing, action, body),
                error: None,
            },
            Err(refusal) => {
                let reason = refusal.to_string();
                Reply {
                    frames: wire::encode_reply(framing, ERROR_ACTION, wire::error_body(&reason)),
                    error: Some(reason),
                }
            }
        }
    }

    /// The reply action and body to a decoded request, or the one-line
    /// reason of its `error` reply (unknown service or action, bad body);
    /// `starter` starts the plugin of a `plugin.start.do`.
    pub(crate) fn answer_with(
        &mut self,
        request: &Request,
        starter: &mut dyn Processes,
    ) -> Result<(&'static str, String), Refusal> {
        if let Some(service) = request.service() {
            if service != self.service.as_bytes() {
                return Err(Refusal::UnknownService(
                    wire::truncate(&String::from_utf8_lossy(service), 40),
                    self.service.clone(),
                ));
            }
        }
        match request.action.as_str() {
            LIST_GET => Ok((LIST_RESULT, clients_body(self.view(View::SeedList)))),
            DETAIL_GET => Ok((DETAIL_RESULT, clients_body(self.view(View::SeedDetail)))),
            START_DO => Ok((START_RESULT, self.start_request(&request.body, starter))),
            other => self.route_v05(other, request),
        }
    }

    /// The 0.5 dialect's requests (PROTOCOL.md §8).
    fn route_v05(&mut self, action: &str, request: &Request) -> Result<(&'static str, String), Refusal> {
        let Some((_, result)) = V05_ACTIONS.iter().find(|(get, _)| *get == action) else {
            return Err(Refusal::UnknownAction(wire::truncate(action, 40)));
        };
        let body = match action {
            "client.list.get" => self.view(View::V05List).to_owned(),
            "client.detail.get" => self.view(View::V05Detail).to_owned(),
            "client.conversion.get" => self.view(View::Conversion).to_owned(),
            "package.detail.get" => self.view(View::PackageDetail).to_owned(),
            "client.history.get" => self.history(&request.body)?,
            "datatype.get" => {
                let datatypes = self.datatypes.as_deref().map_or("null", RawValue::get);
                format!("{{\"datatypes\": {datatypes}}}")
            }
            _ => {
                let wanted = match request.body.get("device_type") {
                    None => None,
                    Some(Value::String(wanted)) => Some(wanted.as_str()),
                    Some(_) => return Err(Refusal::DeviceTypeNotText),
                };
                self.v05.sync(&self.clients);
                v05::device_types_json(&self.clients, &self.v05, wanted)
            }
        };
        Ok((result, body))
    }

    /// `client.history.result`; an `error` reply when the body does not
    /// name a client at all, `status` false when it names none of ours.
    fn history(&self, body: &serde_json::Map<String, Value>) -> Result<String, Refusal> {
        let text = |field: &'static str| match body.get(field) {
            Some(Value::String(text)) => Ok(text.as_str()),
            _ => Err(Refusal::HistoryNeeds(field)),
        };
        let (kind, name, host) = (text("type")?, text("name")?, text("host")?);
        let key = crate::core::kind::Kind::parse(kind).map(|parsed| crate::core::kind::key(parsed, name));
        let history = key
            .as_deref()
            .and_then(|key| self.clients.history(key))
            .filter(|_| host == self.clients.host());
        Ok(v05::history_json(kind, name, host, history))
    }

    /// Answers `plugin.start.do` `{"type", "name", "host"}` (PROTOCOL.md
    /// §9) with the body of `plugin.start.result`: the same three fields,
    /// `status` and `reason` (empty when started).
    fn start_request(
        &mut self,
        body: &serde_json::Map<String, serde_json::Value>,
        starter: &mut dyn Processes,
    ) -> String {
        let text = |key: &str| body.get(key).and_then(serde_json::Value::as_str);
        let kind = text("type").unwrap_or("plugin");
        let name = text("name").unwrap_or("");
        let host = text("host").unwrap_or(self.clients.host()).to_owned();
        let outcome = match crate::core::kind::Kind::parse(kind) {
            None => Err(format!("no such type of client: {}", wire::truncate(kind, 20))),
            Some(_) if name.is_empty() => Err(format!("no {} name in the request", wire::truncate(kind, 20))),
            Some(parsed) => self
                .start_client(&crate::core::kind::key(parsed, name), &host, false, starter)
                .map(|_| ()),
        };
        #[derive(serde::Serialize)]
        struct StartResult<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            name: &'a str,
            host: &'a str,
            status: bool,
            reason: &'a str,
        }
        let reason = outcome.as_ref().err().map_or("", String::as_str);
        crate::core::pyjson::to_string(&StartResult {
            kind,
            name,
            host: &host,
            status: outcome.is_ok(),
            reason,
        })
    }
}

/// `{"clients": VIEW}`, copied once into a buffer of the exact size: the
/// detail view can be megabytes, and each extra copy or regrowth of it
/// showed in the reply time (docs/BENCHMARKS.md).
fn clients_body(view: &str) -> String {
    const OPEN: &str = "{\"clients\": ";
    let mut body = String::with_capacity(OPEN.len() + view.len() + 1);
    body.push_str(OPEN);
    body.push_str(view);
    body.push('}');
    body
}

#[cfg(test)]
mod tests {
    use super::super::testing::{ask, body, frames, manager_with};
    use super::*;

    #[test]
    fn a_manager_without_starter_refuses_to_start() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"plugin.start.do", br#"{"name": "a"}"#]));
        assert_eq!(reply.frames[0], b"plugin.start.result");
        assert_eq!(body(&reply.frames[1])["host"], "box", "this host when none is named");
        assert_eq!(body(&reply.frames[1])["status"], false);
    }

    #[test]
    fn list_request_plain() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"clients.list.get", b"{}"]));
        assert_eq!(reply.error, None);
        assert_eq!(reply.frames[0], b"clients.list.result");
        assert_eq!(
            reply.frames[1],
            br#"{"clients": {"domogik-a.box": {"status": "unknown", "host": "box", "type": "plugin", "id": "a", "configured": null}}}"#
        );
    }

    #[test]
    fn detail_request_mdp() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"MDPC01", b"manager", b"5", b"clients.detail.get", b"{}"]));
        assert_eq!(
            &reply.frames[..3],
            &frames(&[b"MDPC01", b"manager", b"clients.detail.result"])[..]
        );
        assert_eq!(body(&reply.frames[3])["clients"]["domogik-a.box"]["data"]["n"], "a");
    }

    #[test]
    fn unknown_action_and_wrong_service_get_error_replies() {
        let mut manager = manager_with(&["a"]);
        let reply = manager.handle_request(&frames(&[b"clients.delete", b"{}"]));
        assert_eq!(reply.frames[0], b"error");
        assert_eq!(body(&reply.frames[1])["status"], false);
        assert!(reply.error.unwrap().contains("unknown action"));

        let reply = manager.handle_request(&frames(&[b"MDPC01", b"xpl", b"clients.list.get", b"{}"]));
        assert_eq!(&reply.frames[..3], &frames(&[b"MDPC01", b"xpl", b"error"])[..]);
        assert!(body(&reply.frames[3])["reason"]
            .as_str()
            .unwrap()
            .contains("unknown service"));
    }

    #[test]
    fn every_malformed_request_is_answered() {
        let mut manager = manager_with(&["a"]);
        for msg in [
            frames(&[]),
            frames(&[b"x"]),
            frames(&[b"a", b"b", b"c", b"d", b"e"]),
            frames(&[b"\xff", b"{}"]),
            frames(&[b"clients.list.get", b"not json"]),
        ] {
            let reply = manager.handle_request(&msg);
            assert_eq!(reply.frames[0], b"error", "{msg:?}");
            assert!(reply.error.is_some());
        }
    }

    #[test]
    fn replies_see_the_latest_state() {
        let mut manager = manager_with(&["a"]);
        let before = manager.handle_request(&frames(&[b"clients.list.get", b"{}"]));
        manager.handle_status_message(&frames(&[
            b"plugin.1_2.0_1",
            br#"{"type": "plugin", "id": "a", "event": "alive"}"#,
        ]));
        let after = manager.handle_request(&frames(&[b"clients.list.get", b"{}"]));
        assert_eq!(body(&before.frames[1])["clients"]["domogik-a.box"]["status"], "unknown");
        assert_eq!(body(&after.frames[1])["clients"]["domogik-a.box"]["status"], "alive");
    }

    #[test]
    fn every_v05_request_is_answered_with_its_result_action() {
        let mut manager = manager_with(&["a"]);
        for (get, result) in V05_ACTIONS {
            let body = if get == "client.history.get" {
                r#"{"type": "plugin", "name": "a", "host": "box"}"#
            } else {
                "{}"
            };
            let (action, _) = ask(&mut manager, get, body);
            assert_eq!(action, result, "{get}");
            let reply = manager.handle_request(&frames(&[
                b"MDPC01",
                b"manager",
                b"None",
                get.as_bytes(),
                body.as_bytes(),
            ]));
            assert_eq!(reply.frames[2], result.as_bytes(), "{get} in MDP framing");
        }
        let (_, list) = ask(&mut manager, "client.list.get", "{}");
        assert_eq!(list["plugin-a.box"]["status"], "stopped", "unknown is spelled stopped");
        assert_eq!(list["plugin-a.box"]["xpl_source"], "domogik-a.box");
        let (_, datatypes) = ask(&mut manager, "datatype.get", "{}");
        assert_eq!(datatypes, serde_json::json!({"datatypes": null}));
        manager.set_datatypes(Some(RawValue::from_string("{\"DT_Bool\": {}}".into()).unwrap()));
        let (_, datatypes) = ask(&mut manager, "datatype.get", "{}");
        assert_eq!(datatypes, serde_json::json!({"datatypes": {"DT_Bool": {}}}));
    }

    /// The `client.history.result` body for plugin `name` of host `box`.
    fn history_of(manager: &mut Manager, name: &str) -> Value {
        let request = format!(r#"{{"type": "plugin", "name": "{name}", "host": "box"}}"#);
        let (action, history) = ask(manager, "client.history.get", &request);
        assert_eq!(action, "client.history.result", "{history}");
        history
    }

    #[test]
    fn history_requests() {
        let mut manager = manager_with(&["a"]);
        manager.handle_status_message(&frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "alive", "comment": "hi"}"#,
        ]));
        let history = history_of(&mut manager, "a");
        assert_eq!(history["status"], true);
        assert_eq!(history["history"][0]["status"], "alive");
        assert_eq!(history["history"][0]["comment"], "hi");
        let history = history_of(&mut manager, "zz");
        assert_eq!(history["status"], false);
        assert_eq!(history["reason"], "no client plugin-zz.box");
        let (action, error) = ask(&mut manager, "client.history.get", "{}");
        assert_eq!(action, "error");
        assert_eq!(error["reason"], "client.history.get needs a text \"type\"");
        let (action, _) = ask(&mut manager, "device_types.get", r#"{"device_type": 3}"#);
        assert_eq!(action, "error");
    }
}
