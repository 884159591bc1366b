//! The questions the manager asks `dbmgr` (PROTOCOL.md §8): `config.get`
//! for each client, as an MDP client through the broker. Pure: frames and
//! the time in, frames out; the loop owns the socket.
//!
//! A question is asked when a client appears and when its plugin's
//! configuration is `updated`; at most `max_in_flight` wait for an answer
//! at once; one unanswered after `timeout` (dbmgr down, slow, or the broker
//! gone) is asked again later, `retry_after` doubling up to `max_retry`
//! while dbmgr keeps failing. Nothing here ever waits.

use crate::core::clients::Configuration;
use crate::core::kind::{self, Kind};
use crate::core::wire::{self, JsonObjectError};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

pub(crate) const SERVICE: &str = "dbmgr";
pub(crate) const CONFIG_GET: &str = "config.get";
pub(crate) const CONFIG_RESULT: &str = "config.result";

/// How many questions and how long to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_in_flight: usize,
    /// An answer later than this counts as none (it is still used if it comes).
    pub timeout: Duration,
    /// The first delay before asking again after a failure; doubles.
    pub retry_after: Duration,
    pub max_retry: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::with_timeout(Duration::from_secs(5))
    }
}

impl Limits {
    /// Config `dbmgr_timeout`: the first retry after as long again,
    /// doubling up to a minute (or the timeout, if longer).
    pub(crate) fn with_timeout(timeout: Duration) -> Limits {
        Limits {
            max_in_flight: 4,
            timeout,
            retry_after: timeout,
            max_retry: timeout.max(Duration::from_secs(60)),
        }
    }
}

/// A `config.result` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BadAnswer {
    Frames(String),
    Body(String),
    /// It names no question we asked.
    Unexpected(String),
    /// One of our own questions came back: no broker listens there, and
    /// TCP connected the DEALER to itself (see `mdp::Incoming::ConnectedToItself`).
    /// The socket must be reopened.
    OwnQuestion,
    /// `status` false: dbmgr could not answer (the question is asked again later).
    Refused {
        name: String,
        reason: String,
    },
}

impl fmt::Display for BadAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frames(why) => write!(f, "dbmgr reply dropped: {why}"),
            Self::Body(why) => write!(f, "dbmgr reply dropped: body {why}"),
            Self::Unexpected(why) => write!(f, "dbmgr reply dropped: {why}"),
            Self::OwnQuestion => write!(f, "our own dbmgr question came back: the socket is connected to itself"),
            Self::Refused { name, reason } => write!(
                f,
                "dbmgr has no configuration for plugin {}: {}; asking again later",
                wire::truncate(name, 40),
                wire::truncate(reason, 120)
            ),
        }
    }
}

/// An answer for plugin `name`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// Every key (a question without `key`): the whole configuration.
    All(Configuration),
    /// One key's value (`None`: unset).
    One { key: String, value: Option<Value> },
}

/// The questions waiting to be asked and those waiting for an answer.
#[derive(Debug, Clone)]
pub(crate) struct Questions {
    host: String,
    limits: Limits,
    /// Plugin names to ask about, with the earliest time to ask.
    wanted: BTreeMap<String, Instant>,
    /// Asked, oldest first, with the time asked.
    in_flight: VecDeque<(String, Instant)>,
    /// Consecutive failures per plugin, for the back-off.
    failures: BTreeMap<String, u32>,
    /// Every plugin asked about and not forgotten since: an answer about
    /// one of them is used even late; about any other, it is dropped.
    asked: BTreeSet<String>,
    /// Whether a socket to the broker is there to carry the questions
    /// (true until said otherwise): while it is not, nothing is due, so
    /// that no question is spent, and timed out, on a socket that does
    /// not exist (PROTOCOL.md §9: the first questions go out as soon as
    /// the broker answers).
    reachable: bool,
}

impl Questions {
    pub(crate) fn new(host: impl Into<String>, limits: Limits) -> Questions {
        Questions {
            host: host.into(),
            limits,
            wanted: BTreeMap::new(),
            in_flight: VecDeque::new(),
            failures: BTreeMap::new(),
            asked: BTreeSet::new(),
            reachable: true,
        }
    }

    /// The socket to the broker is there (`true`) or gone (`false`). Either
    /// way, the questions in flight may be lost with the old link: they
    /// are asked again, at once once it is there.
    pub(crate) fn set_reachable(&mut self, reachable: bool, now: Instant) {
        if self.reachable == reachable {
            return;
        }
        self.reachable = reachable;
        for (name, _) in std::mem::take(&mut self.in_flight) {
            self.wanted.insert(name, now);
        }
        if reachable {
            for at in self.wanted.values_mut() {
                *at = (*at).min(now);
            }
            self.failures.clear();
        }
    }

    /// dbmgr has just come up (its own `plugin.status` says `alive`): every
    /// question not answered yet is asked again now, rather than after
    /// the timeout and back-off of those it could not answer while down.
    pub(crate) fn dbmgr_came(&mut self, now: Instant) {
        for (name, _) in std::mem::take(&mut self.in_flight) {
            self.wanted.insert(name, now);
        }
        for at in self.wanted.values_mut() {
            *at = (*at).min(now);
        }
        self.failures.clear();
    }

    /// Asks about plugin `name` as soon as a slot is free. Asked again
    /// while a question is in flight, it is asked once more after the
    /// answer: the first answer may predate the change.
    pub(crate) fn ask(&mut self, name: &str, now: Instant) {
        self.failures.remove(name);
        self.wanted.insert(name.to_owned(), now);
    }

    /// Forgets a client that is gone.
    pub(crate) fn forget(&mut self, name: &str) {
        self.wanted.remove(name);
        self.in_flight.retain(|(asked, _)| asked != name);
        self.failures.remove(name);
        self.asked.remove(name);
    }

    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When [`Questions::handle_timeout`] has something to do: an answer overdue, or a
    /// question to send while a slot is free.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if !self.reachable {
            return None;
        }
        let overdue = self.in_flight.front().map(|(_, asked)| *asked + self.limits.timeout);
        let next_ask = if self.in_flight.len() < self.limits.max_in_flight {
            self.wanted
                .iter()
                .filter(|(name, _)| !self.is_in_flight(name))
                .map(|(_, at)| *at)
                .min()
        } else {
            None
        };
        [overdue, next_ask].into_iter().flatten().min()
    }

    fn is_in_flight(&self, name: &str) -> bool {
        self.in_flight.iter().any(|(asked, _)| asked == name)
    }

    /// Gives up on overdue questions (to be asked again after a back-off),
    /// and returns the requests to send now, as DEALER frames.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<Vec<Vec<u8>>> {
        if !self.reachable {
            return Vec::new();
        }
        while let Some((name, asked)) = self.in_flight.front().cloned() {
            if now < asked + self.limits.timeout {
                break;
            }
            self.in_flight.pop_front();
            let delay = self.failed(&name);
            self.wanted.entry(name).or_insert(now + delay);
        }
        let mut requests = Vec::new();
        while self.in_flight.len() < self.limits.max_in_flight {
            let next = self
                .wanted
                .iter()
                .filter(|(name, at)| **at <= now && !self.is_in_flight(name))
                .min_by_key(|(_, at)| **at)
                .map(|(name, _)| name.clone());
            let Some(name) = next else { break };
            self.wanted.remove(&name);
            requests.push(self.request(&name));
            self.asked.insert(name.clone());
            self.in_flight.push_back((name, now));
        }
        requests
    }

    /// Counts a failure; the delay before asking again.
    fn failed(&mut self, name: &str) -> Duration {
        let failures = self.failures.entry(name.to_owned()).or_insert(0);
        *failures = failures.saturating_add(1);
        let factor = 1u32 << (*failures - 1).min(16);
        self.limits
            .retry_after
            .saturating_mul(factor)
            .min(self.limits.max_retry)
    }

    /// `["", "MDPC01", "dbmgr", "config.get", {"type", "name", "host"}]`.
    fn request(&self, name: &str) -> Vec<Vec<u8>> {
        let (kind, bare) = kind::split(name);
        let body = json!({"type": kind.as_str(), "name": bare, "host": self.host});
        vec![
            Vec::new(),
            wire::MDP_CLIENT_HEADER.to_vec(),
            SERVICE.as_bytes().to_vec(),
            CONFIG_GET.as_bytes().to_vec(),
            crate::core::pyjson::to_string(&body).into_bytes(),
        ]
    }

    /// Reads a reply received on the DEALER: `["", "MDPC01", "dbmgr",
    /// "config.result", body]`. The plugin is the one the body names; a
    /// body naming none is the answer to the oldest question (one dbmgr
    /// answers in order). A late answer is used all the same.
    pub(crate) fn handle_reply(&mut self, frames: &[Vec<u8>], now: Instant) -> Result<(String, Answer), BadAnswer> {
        let body = match frames {
            [empty, header, service, action, body]
                if empty.is_empty() && header.as_slice() == wire::MDP_CLIENT_HEADER =>
            {
                if service.as_slice() != SERVICE.as_bytes() {
                    return Err(BadAnswer::Frames(format!(
                        "from service \"{}\"",
                        wire::truncate(&String::from_utf8_lossy(service), 40)
                    )));
                }
                if action.as_slice() == CONFIG_GET.as_bytes() {
                    return Err(BadAnswer::OwnQuestion);
                }
                if action.as_slice() != CONFIG_RESULT.as_bytes() {
                    return Err(BadAnswer::Frames(format!(
                        "action \"{}\", expected {CONFIG_RESULT}",
                        wire::truncate(&String::from_utf8_lossy(action), 40)
                    )));
                }
                body
            }
            _ => {
                return Err(BadAnswer::Frames(format!(
                    "expected 5 frames (\"\", MDPC01, dbmgr, action, body), got {}",
                    frames.len()
                )))
            }
        };
        let body = wire::parse_json_object(body).map_err(|e: JsonObjectError| BadAnswer::Body(e.to_string()))?;
        // The client key: the type the answer names (a plugin's if none).
        let kind = match body.get("type") {
            Some(Value::String(kind)) => Kind::parse(kind).unwrap_or(Kind::Plugin),
            _ => Kind::Plugin,
        };
        let named = match (body.get("name"), body.get("host")) {
            (Some(Value::String(name)), Some(Value::String(host))) if *host == self.host => Some(kind::key(kind, name)),
            (Some(Value::String(name)), None) => Some(kind::key(kind, name)),
            (Some(_), _) => return Err(BadAnswer::Unexpected("it names another host or no text name".into())),
            (None, _) => None,
        };
        let name = match named {
            Some(name) => {
                self.in_flight.retain(|(asked, _)| *asked != name);
                // Asked (an answer late is used all the same); anything
                // else (a plugin forgotten meanwhile, a name made up) must
                // not be asked about again.
                if !self.asked.contains(&name) {
                    return Err(BadAnswer::Unexpected(format!(
                        "it is about plugin {}, which no question asked about",
                        wire::truncate(&name, 40)
                    )));
                }
                name
            }
            None => match self.in_flight.pop_front() {
                Some((name, _)) => name,
                None => return Err(BadAnswer::Unexpected("no question is waiting".into())),
            },
        };
        if body.get("status") != Some(&Value::Bool(true)) {
            let reason = match body.get("reason") {
                Some(Value::String(reason)) => reason.clone(),
                _ => "no reason given".to_owned(),
            };
            let delay = self.failed(&name);
            self.wanted.entry(name.clone()).or_insert(now + delay);
            return Err(BadAnswer::Refused { name, reason });
        }
        match read_answer(&body) {
            Some(answer) => {
                self.failures.remove(&name);
                Ok((name, answer))
            }
            None => {
                let delay = self.failed(&name);
                self.wanted.entry(name.clone()).or_insert(now + delay);
                Err(BadAnswer::Body(format!(
                    "for plugin {} has neither \"data\" (an object) nor \"key\" and \"value\"",
                    wire::truncate(&name, 40)
                )))
            }
        }
    }
}

/// A value as Domogik's database gives it: the text `None` means unset.
fn set_value(value: &Value) -> Option<Value> {
    match value {
        Value::String(text) if text == "None" => None,
        Value::Null => None,
        other => Some(other.clone()),
    }
}

fn read_answer(body: &Map<String, Value>) -> Option<Answer> {
    if let Some(Value::Object(data)) = body.get("data") {
        let values: BTreeMap<String, Value> = data
            .iter()
            .filter_map(|(key, value)| Some((key.clone(), set_value(value)?)))
            .collect();
        // A plugin never configured has no `configured` key at all.
        let configured = Some(values.get("configured").is_some_and(crate::core::clients::is_true));
        return Some(Answer::All(Configuration { configured, values }));
    }
    match (body.get("key"), body.get("value")) {
        (Some(Value::String(key)), Some(value)) => Some(Answer::One {
            key: key.clone(),
            value: set_value(value),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_answer_about_a_plugin_never_asked_about_or_forgotten_asks_nothing() {
        let t0 = std::time::Instant::now();
        let mut questions = super::Questions::new("h", super::Limits::default());
        questions.ask("a", t0);
        let _ = questions.handle_timeout(t0);
        questions.forget("a");
        for name in ["a", "made-up"] {
            let refused = format!(r#"{{"status": false, "reason": "x", "name": "{name}", "host": "h"}}"#);
            let frames: Vec<Vec<u8>> = [&b""[..], b"MDPC01", b"dbmgr", b"config.result", refused.as_bytes()]
                .iter()
                .map(|frame| frame.to_vec())
                .collect();
            assert!(
                matches!(
                    questions.handle_reply(&frames, t0),
                    Err(super::BadAnswer::Unexpected(_))
                ),
                "{name}"
            );
        }
        assert_eq!(questions.poll_timeout(), None, "nothing to ask");
    }

    #[test]
    fn our_own_question_coming_back_is_a_socket_connected_to_itself() {
        let start = std::time::Instant::now();
        let mut questions = super::Questions::new("h", super::Limits::default());
        questions.ask("a", start);
        let asked = questions.handle_timeout(start);
        assert_eq!(asked.len(), 1);
        let echoed = asked.into_iter().next().unwrap_or_default();
        assert_eq!(
            questions.handle_reply(&echoed, start),
            Err(super::BadAnswer::OwnQuestion)
        );
    }

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_in_flight: 2,
            timeout: Duration::from_secs(5),
            retry_after: Duration::from_secs(5),
            max_retry: Duration::from_secs(20),
        }
    }

    fn reply(body: &str) -> Vec<Vec<u8>> {
        [&b""[..], b"MDPC01", b"dbmgr", b"config.result", body.as_bytes()]
            .iter()
            .map(|frame| frame.to_vec())
            .collect()
    }

    fn names(requests: &[Vec<Vec<u8>>]) -> Vec<String> {
        requests
            .iter()
            .map(|frames| {
                let body: Value = serde_json::from_slice(&frames[4]).unwrap();
                body["name"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn nothing_is_asked_without_a_socket_and_everything_at_once_when_it_comes() {
        let t0 = Instant::now();
        let mut questions = Questions::new("h", limits());
        questions.set_reachable(false, t0);
        questions.ask("a", t0);
        assert_eq!(
            questions.poll_timeout(),
            None,
            "no wake-up for a socket that is not there"
        );
        assert!(questions.handle_timeout(t0 + Duration::from_secs(30)).is_empty());
        let t1 = t0 + Duration::from_secs(31);
        questions.set_reachable(true, t1);
        assert!(questions.poll_timeout().is_some_and(|at| at <= t1), "at once");
        assert_eq!(names(&questions.handle_timeout(t1)), ["a"]);
        // The link goes and comes back: what was in flight is asked again at once.
        questions.set_reachable(false, t1);
        assert_eq!(questions.in_flight(), 0);
        let t2 = t1 + Duration::from_secs(1);
        questions.set_reachable(true, t2);
        assert_eq!(names(&questions.handle_timeout(t2)), ["a"]);
        questions.set_reachable(true, t2);
        assert!(questions.handle_timeout(t2).is_empty(), "said twice changes nothing");
    }

    #[test]
    fn dbmgr_coming_up_has_every_unanswered_question_asked_at_once() {
        let t0 = Instant::now();
        let mut questions = Questions::new("h", limits());
        questions.ask("a", t0);
        assert_eq!(names(&questions.handle_timeout(t0)), ["a"]);
        let t1 = t0 + Duration::from_secs(6);
        assert!(questions.handle_timeout(t1).is_empty(), "timed out: backing off");
        questions.dbmgr_came(t1);
        assert_eq!(names(&questions.handle_timeout(t1)), ["a"], "asked again at once");
    }

    #[test]
    fn questions_are_dealer_frames_bounded_in_flight() {
        let t0 = Instant::now();
        let mut questions = Questions::new("h", limits());
        for name in ["a", "b", "c"] {
            questions.ask(name, t0);
        }
        assert_eq!(questions.poll_timeout(), Some(t0));
        let sent = questions.handle_timeout(t0);
        assert_eq!(
            sent[0],
            [
                &b""[..],
                b"MDPC01",
                b"dbmgr",
                b"config.get",
                br#"{"host": "h", "name": "a", "type": "plugin"}"#
            ]
            .iter()
            .map(|f| f.to_vec())
            .collect::<Vec<_>>()
        );
        assert_eq!(names(&sent), ["a", "b"], "two in flight at most");
        assert_eq!(
            questions.poll_timeout(),
            Some(t0 + Duration::from_secs(5)),
            "full: the next deadline is a timeout"
        );
        let (name, _) = questions
            .handle_reply(
                &reply(r#"{"status": true, "reason": "", "type": "plugin", "name": "a", "host": "h", "data": {}}"#),
                t0,
            )
            .unwrap();
        assert_eq!(name, "a");
        assert_eq!(names(&questions.handle_timeout(t0)), ["c"]);
    }

    #[test]
    fn answers_value_none_all_keys() {
        let t0 = Instant::now();
        let mut questions = Questions::new("h", limits());
        questions.ask("a", t0);
        questions.handle_timeout(t0);
        let all = r#"{"status": true, "reason": "", "type": "plugin", "name": "a", "host": "h", "data": {"configured": "True", "interval": "5", "device": "None"}}"#;
        let (_, answer) = questions.handle_reply(&reply(all), t0).unwrap();
        let Answer::All(configuration) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(configuration.configured, Some(true));
        assert_eq!(configuration.values.get("interval"), Some(&json!("5")));
        assert!(!configuration.values.contains_key("device"), "None is unset");

        questions.ask("a", t0);
        questions.handle_timeout(t0);
        let never = r#"{"status": true, "reason": "", "name": "a", "host": "h", "data": {}}"#;
        let (_, Answer::All(configuration)) = questions.handle_reply(&reply(never), t0).unwrap() else {
            panic!()
        };
        assert_eq!(configuration.configured, Some(false), "never configured");

        questions.ask("a", t0);
        questions.handle_timeout(t0);
        let one = r#"{"status": true, "reason": "", "name": "a", "host": "h", "key": "interval", "value": "None"}"#;
        assert_eq!(
            questions.handle_reply(&reply(one), t0).unwrap(),
            (
                "a".to_owned(),
                Answer::One {
                    key: "interval".into(),
                    value: None
                }
            )
        );
        questions.ask("a", t0);
        questions.handle_timeout(t0);
        // No name: the oldest question's answer.
        let nameless = r#"{"status": true, "reason": "", "key": "configured", "value": "1"}"#;
        assert_eq!(
            questions.handle_reply(&reply(nameless), t0).unwrap(),
            (
                "a".to_owned(),
                Answer::One {
                    key: "configured".into(),
                    value: Some(json!("1"))
                }
            )
        );
        assert_eq!(questions.in_flight(), 0);
    }

    #[test]
    fn status_false_and_garbage_are_asked_again_later() {
        let t0 = Instant::now();
        let mut questions = Questions::new("h", limits());
        questions.ask("a", t0);
        questions.handle_timeout(t0);
        let refused = r#"{"status": false, "reason": "database down", "name": "a", "host": "h"}"#;
        let error = questions.handle_reply(&reply(refused), t0).unwrap_err();
        assert!(error.to_string().contains("database down"), "{error}");
        assert_eq!(questions.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        assert!(questions.handle_timeout(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(names(&questions.handle_timeout(t0 + Duration::from_secs(5))), ["a"]);

        for garbage in [
            reply("not json"),
            reply("[1]"),
            vec![b"x".to_vec()],
            [&b""[..], b"MDPC01", b"other", b"config.result", b"{}"]
                .iter()
                .map(|f| f.to_vec())
                .collect(),
            [&b""[..], b"MDPC01", b"dbmgr", b"error", b"{}"]
                .iter()
                .map(|f| f.to_vec())
                .collect(),
            reply(r#"{"status": true, "name": "a", "host": "elsewhere", "data": {}}"#),
        ] {
            let error = questions.handle_reply(&garbage, t0).unwrap_err();
            assert!(!error.to_string().contains('\n'), "{error}");
        }
        assert_eq!(questions.in_flight(), 1, "garbage answers nothing");
        let no_data = reply(r#"{"status": true, "name": "a", "host": "h"}"#);
        assert!(matches!(questions.handle_reply(&no_data, t0), Err(BadAnswer::Body(_))));
        assert_eq!(questions.in_flight(), 0);
        assert!(matches!(
            questions.handle_reply(&reply(r#"{"status": true, "data": {}}"#), t0),
            Err(BadAnswer::Unexpected(_))
        ));
    }

    #[test]
    fn unanswered_questions_time_out_and_back_off() {
        let t0 = Instant::now();
        let mut questions = Questions::new("h", limits());
        questions.ask("a", t0);
        assert_eq!(names(&questions.handle_timeout(t0)), ["a"]);
        let mut at = t0;
        // Timeout 5 s, then back-off 5, 10, 20, 20 s.
        for delay in [5, 10, 20, 20] {
            at += Duration::from_secs(5);
            assert!(
                questions.handle_timeout(at).is_empty(),
                "timed out, not yet asked again"
            );
            assert_eq!(questions.poll_timeout(), Some(at + Duration::from_secs(delay)));
            at += Duration::from_secs(delay);
            assert_eq!(names(&questions.handle_timeout(at)), ["a"]);
        }
        // A late answer still counts, and resets the back-off.
        let late = r#"{"status": true, "reason": "", "name": "a", "host": "h", "data": {"configured": "1"}}"#;
        assert!(questions.handle_reply(&reply(late), at).is_ok());
        assert_eq!(questions.poll_timeout(), None);
    }

    #[test]
    fn asked_again_while_in_flight_is_asked_once_more_after() {
        let t0 = Instant::now();
        let mut questions = Questions::new("h", limits());
        questions.ask("a", t0);
        questions.handle_timeout(t0);
        questions.ask("a", t0);
        assert!(
            questions.handle_timeout(t0).is_empty(),
            "one question per plugin in flight"
        );
        let answer = r#"{"status": true, "reason": "", "name": "a", "host": "h", "data": {}}"#;
        questions.handle_reply(&reply(answer), t0).unwrap();
        assert_eq!(names(&questions.handle_timeout(t0)), ["a"]);
        questions.forget("a");
        assert_eq!(questions.in_flight(), 0);
        assert_eq!(questions.poll_timeout(), None);
    }
}
