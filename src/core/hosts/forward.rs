//! Actions for another host's client (PROTOCOL.md §13): a `*.do` request
//! (or `client.history.get`)
//! naming another host is forwarded to that host's manager
//! (`manager.do`), which runs it as its own request and answers
//! (`manager.done`); the answer is relayed to the user interface that
//! asked, or, after [`FORWARD_DEADLINE`], a refusal with the reason. An
//! unknown or silent host is refused at once.

use super::{Event, Hosts};
use crate::core::pyjson;
use crate::core::wire::{self, Frames, Framing};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// "Run this request of yours": `{"host", "instance", "to", "id", "action", "body"}`.
pub(crate) const DO_CATEGORY: &str = "manager.do";
/// "Here is its answer": `{"host", "instance", "to", "to_instance", "id", "action", "body"}`.
pub(crate) const DONE_CATEGORY: &str = "manager.done";
/// How long a forwarded request waits for its answer: well inside the
/// 10 s Domogik's admin waits for its own.
pub(crate) const FORWARD_DEADLINE: Duration = Duration::from_secs(5);
/// Forwarded requests waiting at once, and others' requests run per turn.
const MAX_WAITING: usize = 64;

/// What became of a request: ours to answer, answered at once, or forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Forward {
    /// Not for another host: answer it here (its envelope handed back).
    Local(Frames),
    /// Refused at once: the reply for this envelope.
    Reply(Frames, Frames),
    /// Forwarded: its reply comes from [`Hosts::take_relayed`].
    Waiting,
}

/// A request of ours waiting for another host's answer.
#[derive(Debug)]
pub(super) struct Waiting {
    envelope: Frames,
    framing: Framing,
    host: String,
    action: String,
    body: Map<String, Value>,
    deadline: Instant,
}

/// Another manager's request to run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incoming {
    pub(crate) from: String,
    from_instance: String,
    id: u64,
    /// `[action, body]`, plain framing.
    pub(crate) frames: Frames,
}

#[derive(Deserialize)]
struct DoMessage {
    host: String,
    instance: String,
    to: String,
    id: u64,
    action: String,
    body: Map<String, Value>,
}

#[derive(Deserialize)]
struct DoneMessage {
    host: String,
    instance: String,
    to: String,
    to_instance: String,
    id: u64,
    action: String,
    body: Box<RawValue>,
}

/// The `.get` forwarded too: a client's history is kept by its host's manager.
const HISTORY_GET: &str = "client.history.get";

/// Whether `action` is answered by the manager of the host its body names.
fn forwarded(action: &str) -> bool {
    action.ends_with(".do") || action == HISTORY_GET
}

/// `plugin.start.do` → `plugin.start.result`, `client.history.get` →
/// `client.history.result`.
fn result_action(action: &str) -> String {
    let stem = action.strip_suffix(".do").or_else(|| action.strip_suffix(".get"));
    format!("{}.result", stem.unwrap_or(action))
}

/// The refusal of `action`: its body, `status` false and the reason.
fn refusal(framing: Framing, action: &str, mut body: Map<String, Value>, reason: String) -> Frames {
    body.insert("status".into(), Value::Bool(false));
    body.insert("reason".into(), Value::String(reason));
    if action == HISTORY_GET {
        body.insert("history".into(), Value::Array(Vec::new()));
    }
    wire::encode_reply(framing, &result_action(action), pyjson::to_string(&body))
}

impl Hosts {
    /// A request's frames (as answered by `Manager::handle_request`) for
    /// `service`: a `*.do` whose body names another host is forwarded to
    /// it, or refused when that host is unknown, silent, or too many wait.
    pub(crate) fn forward(&mut self, frames: &[Vec<u8>], envelope: Frames, service: &str, now: Instant) -> Forward {
        let Ok(request) = wire::decode_request(frames) else {
            return Forward::Local(envelope);
        };
        let host = match request.body.get("host") {
            Some(Value::String(host)) if *host != self.own => host.clone(),
            _ => return Forward::Local(envelope),
        };
        if !forwarded(&request.action) || request.service().is_some_and(|s| s != service.as_bytes()) {
            return Forward::Local(envelope);
        }
        let refuse = |reason: String| {
            let reply = refusal(request.framing.clone(), &request.action, request.body.clone(), reason);
            Forward::Reply(envelope.clone(), reply)
        };
        let shown = wire::truncate(&host, 40);
        let Some(held) = self.hosts.get(&host) else {
            return refuse(format!("no manager of host {shown} on the bus"));
        };
        if let Some(why) = &held.silent {
            return refuse(format!("{why}: the request is not forwarded"));
        }
        if self.waiting.len() >= MAX_WAITING {
            return refuse(format!("{MAX_WAITING} requests wait for other hosts already"));
        }
        let id = self.next_id;
        self.next_id += 1;
        #[derive(serde::Serialize)]
        struct Do<'a> {
            host: &'a str,
            instance: &'a str,
            to: &'a str,
            id: u64,
            action: &'a str,
            body: &'a Map<String, Value>,
        }
        let message = pyjson::to_string(&Do {
            host: &self.own,
            instance: &self.instance,
            to: &host,
            id,
            action: &request.action,
            body: &request.body,
        });
        self.outgoing.push((DO_CATEGORY, message));
        self.waiting.insert(
            id,
            Waiting {
                envelope,
                framing: request.framing,
                host,
                action: request.action,
                body: request.body,
                deadline: now + FORWARD_DEADLINE,
            },
        );
        Forward::Waiting
    }

    /// A `manager.do`: run it if it is for us.
    pub(super) fn handle_do(&mut self, body: &[u8], now: Instant) {
        let message = match serde_json::from_slice::<DoMessage>(body) {
            Ok(message) => message,
            Err(e) => return self.malformed(format!("manager.do: {e}")),
        };
        if !self.heard(&message.host, Some(&message.instance), now) || message.to != self.own {
            return;
        }
        if self.incoming.len() >= MAX_WAITING {
            return self.malformed(format!("more than {MAX_WAITING} forwarded requests in one turn"));
        }
        self.incoming.push(Incoming {
            from: message.host,
            from_instance: message.instance,
            id: message.id,
            frames: vec![
                message.action.into_bytes(),
                pyjson::to_string(&message.body).into_bytes(),
            ],
        });
    }

    /// A `manager.done`: the answer to one of ours, relayed.
    pub(super) fn handle_done(&mut self, body: &[u8], now: Instant) {
        let message = match serde_json::from_slice::<DoneMessage>(body) {
            Ok(message) => message,
            Err(e) => return self.malformed(format!("manager.done: {e}")),
        };
        if !self.heard(&message.host, Some(&message.instance), now)
            || message.to != self.own
            || message.to_instance != self.instance
        {
            return;
        }
        let Some(waiting) = self.waiting.remove(&message.id) else {
            // Answered after its deadline: the refusal went already.
            return;
        };
        if waiting.host != message.host {
            self.events.push(Event::Malformed {
                reason: format!("host {} answered a request for host {}", message.host, waiting.host),
            });
            self.waiting.insert(message.id, waiting);
            return;
        }
        let reply = wire::encode_reply(waiting.framing, &message.action, message.body.get().to_owned());
        self.relayed.push((waiting.envelope, reply));
    }

    /// The other managers' requests to run here, since the last call.
    pub(crate) fn take_incoming(&mut self) -> Vec<Incoming> {
        std::mem::take(&mut self.incoming)
    }

    /// Our answer (`reply`, plain frames `[action, body]`) to `incoming`.
    pub(crate) fn answer_incoming(&mut self, incoming: &Incoming, reply: &[Vec<u8>]) {
        let [action, body] = reply else {
            return;
        };
        #[derive(serde::Serialize)]
        struct Done<'a> {
            host: &'a str,
            instance: &'a str,
            to: &'a str,
            to_instance: &'a str,
            id: u64,
            action: &'a str,
            body: &'a RawValue,
        }
        let action = String::from_utf8_lossy(action);
        let Ok(body) = serde_json::from_slice::<Box<RawValue>>(body) else {
            return;
        };
        let message = pyjson::to_string(&Done {
            host: &self.own,
            instance: &self.instance,
            to: &incoming.from,
            to_instance: &incoming.from_instance,
            id: incoming.id,
            action: &action,
            body: &body,
        });
        self.outgoing.push((DONE_CATEGORY, message));
    }

    /// The replies to send now (envelope, reply frames): answers relayed,
    /// refusals of requests past their deadline.
    pub(crate) fn take_relayed(&mut self) -> Vec<(Frames, Frames)> {
        std::mem::take(&mut self.relayed)
    }

    /// The `manager.do` and `manager.done` messages owed.
    pub(crate) fn take_outgoing(&mut self, unix_time: f64) -> Vec<Frames> {
        std::mem::take(&mut self.outgoing)
            .into_iter()
            .map(|(category, body)| wire::encode_publication(category, unix_time, body))
            .collect()
    }

    /// The nearest deadline of a forwarded request.
    pub(super) fn forward_timeout(&self) -> Option<Instant> {
        self.waiting.values().map(|waiting| waiting.deadline).min()
    }

    /// Forwarded requests past their deadline refused.
    pub(super) fn expire_forwarded(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiting)| now >= waiting.deadline)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(waiting) = self.waiting.remove(&id) {
                let reason = format!(
                    "the manager of host {} did not answer within {} s",
                    waiting.host,
                    FORWARD_DEADLINE.as_secs()
                );
                let reply = refusal(waiting.framing, &waiting.action, waiting.body, reason);
                self.relayed.push((waiting.envelope, reply));
            }
        }
    }
}
