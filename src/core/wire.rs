//! Codecs between ZeroMQ frames and typed messages (PROTOCOL.md §1, §4).
//!
//! Pure functions only: frames in, values out, and back. The event loop
//! does the sending and receiving.

use crate::core::kind::Kind;
use crate::core::pyjson;
use crate::core::status::Status;
use serde_json::{Map, Value};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A multipart ZeroMQ message: its frames, in order.
pub(crate) type Frames = Vec<Vec<u8>>;

/// The seed dialect's client id of plugin `name` on `host`, which is also
/// its xPL source in Domogik 0.5: `domogik-<name>.<host>`.
pub(crate) fn xpl_source(name: &str, host: &str) -> String {
    format!("domogik-{name}.{host}")
}

/// Last part of every pub/sub `msg_id`.
pub(crate) const MSG_VERSION: &str = "0_1";
/// First frame of a request in Domogik's MDP client framing.
pub(crate) const MDP_CLIENT_HEADER: &[u8] = b"MDPC01";
/// The largest request we parse. Real requests are a few bytes; anything
/// larger is answered with an error without looking inside.
pub(crate) const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// `<category>.<timestamp>.0_1`, the timestamp being Python's
/// `str(time.time())` with `_` for the decimal point.
pub(crate) fn format_msg_id(category: &str, unix_time: f64) -> String {
    let timestamp = pyjson::python_float_repr(unix_time).replace('.', "_");
    format!("{category}.{timestamp}.{MSG_VERSION}")
}

/// The category of a `msg_id`: all but its last two dot-separated parts.
pub(crate) fn category_of(msg_id: &str) -> Option<&str> {
    let (rest, _version) = msg_id.rsplit_once('.')?;
    let (category, _timestamp) = rest.rsplit_once('.')?;
    (!category.is_empty()).then_some(category)
}

/// Seconds since the Unix epoch, as a msg_id carries them (0 before 1970).
pub(crate) fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64())
}

/// Encodes a pub/sub message: `[msg_id, body]`.
pub(crate) fn encode_publication(category: &str, unix_time: f64, body: String) -> Vec<Vec<u8>> {
    vec![format_msg_id(category, unix_time).into_bytes(), body.into_bytes()]
}

// ---------------------------------------------------------------------------
// Plugins -> manager: status messages

/// A plugin's announcement of its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub name: String,
    /// `None` for the seed's `plugin` shape, which means "this host".
    pub host: Option<String>,
    pub status: Status,
    pub comment: Option<String>,
}

/// Why a message under the `plugin` prefix was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadStatusMessage {
    FrameCount(usize),
    NotUtf8,
    BadMsgId,
    BodyNotJson(String),
    BodyNotObject,
    MissingField(&'static str),
    UnknownStatus(String),
}

impl fmt::Display for BadStatusMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameCount(n) => write!(f, "expected 2 frames (msg_id, body), got {n}"),
            Self::NotUtf8 => f.write_str("a frame is not UTF-8 text"),
            Self::BadMsgId => f.write_str("msg_id is not <category>.<timestamp>.<version>"),
            Self::BodyNotJson(error) => write!(f, "body is not JSON: {error}"),
            Self::BodyNotObject => f.write_str("body is not a JSON object"),
            Self::MissingField(field) => write!(f, "body has no text field \"{field}\""),
            Self::UnknownStatus(status) => write!(f, "unknown status \"{}\"", truncate(status, 40)),
        }
    }
}

/// Decodes a message received on the SUB socket.
///
/// `Ok(None)` means "not a status message, ignore it quietly": another
/// category under the `plugin` prefix, or a client type other than plugin.
#[cfg(test)]
pub(crate) fn decode_status(frames: &[Vec<u8>]) -> Result<Option<StatusUpdate>, BadStatusMessage> {
    Ok(decode_client_status(frames)?.and_then(|(kind, update)| (kind == Kind::Plugin).then_some(update)))
}

/// [`decode_status`] for every kind of client that announces a status
/// (plugin, interface, core; PROTOCOL.md §12): the kind with the update;
/// `None` for another type (a brain has none) or category.
pub(crate) fn decode_client_status(frames: &[Vec<u8>]) -> Result<Option<(Kind, StatusUpdate)>, BadStatusMessage> {
    let [msg_id, body] = frames else {
        return Err(BadStatusMessage::FrameCount(frames.len()));
    };
    let msg_id = std::str::from_utf8(msg_id).map_err(|_| BadStatusMessage::NotUtf8)?;
    let category = category_of(msg_id).ok_or(BadStatusMessage::BadMsgId)?;
    let seed_shape = match category {
        "plugin" => true,
        "plugin.status" => false,
        _ => return Ok(None),
    };
    let mut body = parse_json_object(body).map_err(|error| match error {
        JsonObjectError::NotUtf8 => BadStatusMessage::NotUtf8,
        JsonObjectError::NotJson(text) => BadStatusMessage::BodyNotJson(text),
        JsonObjectError::NotObject => BadStatusMessage::BodyNotObject,
    })?;
    // Fields are moved out of the parsed body, not copied: a comment can
    // be most of a 1 MiB message, and most statuses change nothing.
    let mut text = |field: &'static str| match body.remove(field) {
        Some(Value::String(text)) => Ok(text),
        _ => Err(BadStatusMessage::MissingField(field)),
    };
    let kind = match Kind::parse(&text("type")?) {
        Some(kind) if kind.runs() && !(seed_shape && kind != Kind::Plugin) => kind,
        _ => return Ok(None),
    };
    let (name, host) = if seed_shape {
        (text("id")?, None)
    } else {
        (text("name")?, Some(text("host")?))
    };
    let event = text("event")?;
    let status = Status::parse(&event).ok_or(BadStatusMessage::UnknownStatus(event))?;
    let comment = text("comment").ok();
    Ok(Some((
        kind,
        StatusUpdate {
            name,
            host,
            status,
            comment,
        },
    )))
}

/// Encodes a status message in the later Domogik shape (`plugin.status`).
pub fn encode_status(update: &StatusUpdate, host: &str, unix_time: f64) -> Vec<Vec<u8>> {
    let host = update.host.as_deref().unwrap_or(host);
    encode_status_of(
        "plugin",
        &update.name,
        host,
        update.status,
        update.comment.as_deref(),
        unix_time,
    )
}

/// Encodes `plugin.status` `{"type": kind, "name", "host", "event", "comment"?}`
/// for any client type: the manager's own (`core`) or a dead plugin's.
pub(crate) fn encode_status_of(
    kind: &str,
    name: &str,
    host: &str,
    status: Status,
    comment: Option<&str>,
    unix_time: f64,
) -> Vec<Vec<u8>> {
    #[derive(serde::Serialize)]
    struct StatusBody<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        name: &'a str,
        host: &'a str,
        event: Status,
        #[serde(skip_serializing_if = "Option::is_none")]
        comment: Option<&'a str>,
    }
    let body = StatusBody {
        kind,
        name,
        host,
        event: status,
        comment,
    };
    encode_publication("plugin.status", unix_time, pyjson::to_string(&body))
}

/// Decodes `plugin.configuration` `{"type": "plugin", "name", "host",
/// "event": "updated"}` (PROTOCOL.md §8; type `interface` or `brain` too):
/// the client key whose configuration changed, with its host. `None` for
/// any other message.
pub(crate) fn decode_configuration_updated(frames: &[Vec<u8>]) -> Option<(String, String)> {
    let [msg_id, body] = frames else { return None };
    if category_of(std::str::from_utf8(msg_id).ok()?)? != "plugin.configuration" {
        return None;
    }
    let mut body = parse_json_object(body).ok()?;
    let mut text = |field: &str| match body.remove(field) {
        Some(Value::String(text)) => Some(text),
        _ => None,
    };
    let kind = Kind::parse(&text("type")?).filter(|kind| kind.is_package())?;
    if text("event")? != "updated" {
        return None;
    }
    Some((crate::core::kind::key(kind, &text("name")?), text("host")?))
}

// ---------------------------------------------------------------------------
// UIs -> manager: requests

/// How a request was framed, so that its reply uses the same framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// `[action, body]`
    Plain,
    /// `["MDPC01", service, (timeout,) action, body]`; the service is echoed
    /// back as received, since Domogik's client checks it.
    Mdp { service: Vec<u8> },
}

/// A well-formed request: which action, and through which service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub framing: Framing,
    pub action: String,
    /// The body, a JSON object (`{}` for most actions).
    pub body: Map<String, Value>,
}

impl Request {
    /// The service the request was addressed to; plain requests name none.
    pub(crate) fn service(&self) -> Option<&[u8]> {
        match &self.framing {
            Framing::Plain => None,
            Framing::Mdp { service } => Some(service),
        }
    }
}

/// A request that cannot be served, with the framing to answer it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest {
    pub framing: Framing,
    pub reason: String,
}

/// Decodes the frames of one request received on the REP socket.
pub(crate) fn decode_request(frames: &[Vec<u8>]) -> Result<Request, BadRequest> {
    let framing = match frames {
        [first, service, ..] if first.as_slice() == MDP_CLIENT_HEADER => Framing::Mdp {
            service: service.clone(),
        },
        _ => Framing::Plain,
    };
    let bad = |reason: String| BadRequest {
        framing: framing.clone(),
        reason,
    };

    let total: usize = frames.iter().map(Vec::len).sum();
    if total > MAX_REQUEST_BYTES {
        return Err(bad(format!(
            "request too large: {total} bytes, at most {MAX_REQUEST_BYTES}"
        )));
    }
    let (action, body) = match (&framing, frames) {
        (Framing::Plain, [action, body]) => (action, body),
        (Framing::Plain, _) => {
            return Err(bad(format!("expected 2 frames (action, body), got {}", frames.len())));
        }
        (Framing::Mdp { .. }, [_, _, action, body]) => (action, body),
        (Framing::Mdp { .. }, [_, _, timeout, action, body]) => {
            if !is_mdp_timeout(timeout) {
                return Err(bad("timeout frame is not a number of seconds or None".into()));
            }
            (action, body)
        }
        (Framing::Mdp { .. }, _) => {
            return Err(bad(format!(
                "expected 4 or 5 frames (MDPC01, service, [timeout,] action, body), got {}",
                frames.len()
            )));
        }
    };
    let action = std::str::from_utf8(action).map_err(|_| bad("action is not UTF-8 text".into()))?;
    let body = parse_json_object(body).map_err(|error| bad(format!("body {error}")))?;
    Ok(Request {
        framing,
        action: action.to_owned(),
        body,
    })
}

/// Whether the optional MDP timeout frame is valid: a decimal number of
/// seconds or `None`.
fn is_mdp_timeout(frame: &[u8]) -> bool {
    std::str::from_utf8(frame)
        .map(|text| text == "None" || text.parse::<f64>().map(|t| t.is_finite() && t >= 0.0).unwrap_or(false))
        .unwrap_or(false)
}

/// Encodes a reply in the request's framing, which it consumes: the
/// service frame moves into the reply instead of being copied again.
pub(crate) fn encode_reply(framing: Framing, action: &str, body: String) -> Vec<Vec<u8>> {
    match framing {
        Framing::Plain => vec![action.as_bytes().to_vec(), body.into_bytes()],
        Framing::Mdp { service } => {
            vec![
                MDP_CLIENT_HEADER.to_vec(),
                service,
                action.as_bytes().to_vec(),
                body.into_bytes(),
            ]
        }
    }
}

/// The body of an `error` reply: `{"status": false, "reason": ...}`.
pub(crate) fn error_body(reason: &str) -> String {
    #[derive(serde::Serialize)]
    struct ErrorBody<'a> {
        status: bool,
        reason: &'a str,
    }
    pyjson::to_string(&ErrorBody { status: false, reason })
}

/// Encodes a request, as a user interface sends it (used by tests and tools).
pub fn encode_request(framing: &Framing, action: &str, body: &str) -> Vec<Vec<u8>> {
    encode_reply(framing.clone(), action, body.to_owned())
}

/// A reply as a user interface receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedReply {
    pub framing: Framing,
    pub action: String,
    /// The body's text, unparsed: `clients --json` prints it as it came.
    pub body: String,
}

/// Why frames received on a REQ socket are no reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadReply {
    /// Neither 2 nor 4 frames: how many there were.
    FrameCount(usize),
    /// The action or the body (named) is not UTF-8 text.
    NotUtf8(&'static str),
}

impl fmt::Display for BadReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadReply::FrameCount(count) => {
                write!(f, "expected 2 or 4 frames (MDPC01, service, action, body), got {count}")
            }
            BadReply::NotUtf8(what) => write!(f, "the {what} is not UTF-8 text"),
        }
    }
}

impl std::error::Error for BadReply {}

/// Decodes a reply received on a REQ socket: `[action, body]` or
/// `["MDPC01", service, action, body]`.
pub fn decode_reply(frames: &[Vec<u8>]) -> Result<ReceivedReply, BadReply> {
    let (framing, action, body) = match frames {
        [header, service, action, body] if header.as_slice() == MDP_CLIENT_HEADER => (
            Framing::Mdp {
                service: service.clone(),
            },
            action,
            body,
        ),
        [action, body] => (Framing::Plain, action, body),
        _ => return Err(BadReply::FrameCount(frames.len())),
    };
    let text = |frame: &[u8], what: &'static str| String::from_utf8(frame.to_vec()).map_err(|_| BadReply::NotUtf8(what));
    Ok(ReceivedReply {
        framing,
        action: text(action, "action")?,
        body: text(body, "body")?,
    })
}

// ---------------------------------------------------------------------------

/// Why a frame is not a JSON object; displayed as a predicate ("is not
/// JSON: ...") so that callers say which frame.
#[derive(Debug)]
pub(crate) enum JsonObjectError {
    NotUtf8,
    NotJson(String),
    NotObject,
}

impl fmt::Display for JsonObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("is not UTF-8 text"),
            Self::NotJson(error) => write!(f, "is not JSON: {error}"),
            Self::NotObject => f.write_str("is not a JSON object"),
        }
    }
}

/// A frame that must hold a JSON object (a request's or a publication's body).
pub(crate) fn parse_json_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonObjectError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonObjectError::NotUtf8)?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(JsonObjectError::NotObject),
        Err(error) => Err(JsonObjectError::NotJson(error.to_string())),
    }
}

/// At most `max` characters of `text`, for log lines and error reasons
/// about foreign input. Control characters are written escaped (`\n`,
/// `\u{1b}`): a peer must not be able to start a fake log line or send
/// escape sequences to a terminal.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4) + 3);
    for (count, ch) in text.chars().enumerate() {
        if count == max {
            out.push_str("...");
            break;
        }
        if ch.is_control() {
            out.extend(ch.escape_debug());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_seconds_keep_the_fraction_and_stop_at_the_epoch() {
        use std::time::Duration;
        assert_eq!(
            unix_seconds(UNIX_EPOCH + Duration::from_millis(1_371_071_554_160)),
            1_371_071_554.16
        );
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), 0.0);
    }

    fn frames(parts: &[&[u8]]) -> Vec<Vec<u8>> {
        parts.iter().map(|part| part.to_vec()).collect()
    }

    #[test]
    fn msg_id_follows_domogik_format() {
        assert_eq!(
            format_msg_id("clients.list", 1371071844.17),
            "clients.list.1371071844_17.0_1"
        );
        assert_eq!(
            format_msg_id("clients.detail", 1371071844.0),
            "clients.detail.1371071844_0.0_1"
        );
    }

    #[test]
    fn category_is_msg_id_minus_two_parts() {
        assert_eq!(category_of("plugin.1371071554_16.0_1"), Some("plugin"));
        assert_eq!(category_of("plugin.status.1371071554_16.0_1"), Some("plugin.status"));
        assert_eq!(category_of("plugin.0_1"), None);
        assert_eq!(category_of("plugin"), None);
        assert_eq!(category_of(".1_2.0_1"), None);
    }

    #[test]
    fn seed_status_shape() {
        let msg = frames(&[
            b"plugin.1371071554_16.0_1",
            br#"{"type": "plugin", "id": "diskfree", "event": "starting"}"#,
        ]);
        let update = decode_status(&msg).unwrap().unwrap();
        assert_eq!(
            update,
            StatusUpdate {
                name: "diskfree".into(),
                host: None,
                status: Status::Starting,
                comment: None
            }
        );
    }

    #[test]
    fn later_status_shape_with_comment() {
        let msg = frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "rfxcom", "host": "darkstar", "event": "dead", "comment": "no device"}"#,
        ]);
        let update = decode_status(&msg).unwrap().unwrap();
        assert_eq!(update.host.as_deref(), Some("darkstar"));
        assert_eq!(update.status, Status::Dead);
        assert_eq!(update.comment.as_deref(), Some("no device"));
    }

    #[test]
    fn other_categories_and_types_are_ignored_quietly() {
        let config = frames(&[b"plugin.configuration.1_2.0_1", b"{}"]);
        assert_eq!(decode_status(&config), Ok(None));
        let core = frames(&[b"plugin.1_2.0_1", br#"{"type": "core", "id": "x", "event": "alive"}"#]);
        assert_eq!(decode_status(&core), Ok(None));
        // Other categories are not even parsed: their bodies are not ours.
        let garbage = frames(&[b"plugin.configuration.1_2.0_1", b"\xff"]);
        assert_eq!(decode_status(&garbage), Ok(None));
    }

    #[test]
    fn malformed_status_messages() {
        use BadStatusMessage::*;
        let cases: Vec<(Vec<Vec<u8>>, BadStatusMessage)> = vec![
            (frames(&[b"plugin.1_2.0_1"]), FrameCount(1)),
            (frames(&[b"plugin.1_2.0_1", b"{}", b"{}"]), FrameCount(3)),
            (frames(&[]), FrameCount(0)),
            (frames(&[b"\xffplugin.1_2.0_1", b"{}"]), NotUtf8),
            (frames(&[b"plugin", b"{}"]), BadMsgId),
            (frames(&[b"plugin.1_2.0_1", b"\xff\xfe"]), NotUtf8),
            (frames(&[b"plugin.1_2.0_1", b"[1, 2]"]), BodyNotObject),
            (
                frames(&[b"plugin.1_2.0_1", br#"{"id": "x", "event": "alive"}"#]),
                MissingField("type"),
            ),
            (
                frames(&[b"plugin.1_2.0_1", br#"{"type": "plugin", "event": "alive"}"#]),
                MissingField("id"),
            ),
            (
                frames(&[b"plugin.1_2.0_1", br#"{"type": "plugin", "id": 3, "event": "alive"}"#]),
                MissingField("id"),
            ),
            (
                frames(&[b"plugin.1_2.0_1", br#"{"type": "plugin", "id": "x"}"#]),
                MissingField("event"),
            ),
            (
                frames(&[
                    b"plugin.status.1_2.0_1",
                    br#"{"type": "plugin", "name": "x", "event": "alive"}"#,
                ]),
                MissingField("host"),
            ),
            (
                frames(&[
                    b"plugin.1_2.0_1",
                    br#"{"type": "plugin", "id": "x", "event": "sleepy"}"#,
                ]),
                UnknownStatus("sleepy".into()),
            ),
        ];
        for (msg, expected) in cases {
            assert_eq!(decode_status(&msg), Err(expected), "{msg:?}");
        }
        assert!(matches!(
            decode_status(&frames(&[b"plugin.1_2.0_1", b"{nope"])),
            Err(BodyNotJson(_))
        ));
    }

    #[test]
    fn status_encoding_round_trips() {
        let update = StatusUpdate {
            name: "test".into(),
            host: None,
            status: Status::StopRequest,
            comment: Some("bye".into()),
        };
        let msg = encode_status(&update, "box", 10.5);
        assert_eq!(msg[0], b"plugin.status.10_5.0_1");
        assert_eq!(
            String::from_utf8(msg[1].clone()).unwrap(),
            r#"{"type": "plugin", "name": "test", "host": "box", "event": "stop-request", "comment": "bye"}"#
        );
        let decoded = decode_status(&msg).unwrap().unwrap();
        assert_eq!(
            decoded,
            StatusUpdate {
                host: Some("box".into()),
                ..update
            }
        );
    }

    #[test]
    fn configuration_updated_is_recognised_and_nothing_else() {
        let updated = br#"{"type": "plugin", "name": "a", "host": "h", "event": "updated"}"#;
        assert_eq!(
            decode_configuration_updated(&frames(&[b"plugin.configuration.1_2.0_1", updated])),
            Some(("a".to_owned(), "h".to_owned()))
        );
        for msg in [
            frames(&[b"plugin.status.1_2.0_1", updated]),
            frames(&[
                b"plugin.configuration.1_2.0_1",
                br#"{"type": "plugin", "name": "a", "host": "h", "event": "other"}"#,
            ]),
            frames(&[
                b"plugin.configuration.1_2.0_1",
                br#"{"type": "core", "name": "a", "host": "h", "event": "updated"}"#,
            ]),
            frames(&[b"plugin.configuration.1_2.0_1", b"nope"]),
            frames(&[b"plugin.configuration.1_2.0_1"]),
        ] {
            assert_eq!(decode_configuration_updated(&msg), None, "{msg:?}");
        }
    }

    #[test]
    fn own_status_is_a_core_client() {
        let frames = encode_status_of("core", "manager", "h", Status::Alive, None, 1.5);
        assert_eq!(frames[0], b"plugin.status.1_5.0_1");
        assert_eq!(
            frames[1],
            br#"{"type": "core", "name": "manager", "host": "h", "event": "alive"}"#
        );
    }

    #[test]
    fn plain_request() {
        let request = decode_request(&frames(&[b"clients.list.get", b"{}"])).unwrap();
        assert_eq!(
            request,
            Request {
                framing: Framing::Plain,
                action: "clients.list.get".into(),
                body: Map::new(),
            }
        );
        assert_eq!(request.service(), None);
    }

    #[test]
    fn mdp_request_with_and_without_timeout() {
        let mdp = Framing::Mdp {
            service: b"manager".to_vec(),
        };
        for msg in [
            frames(&[b"MDPC01", b"manager", b"clients.detail.get", b"{}"]),
            frames(&[b"MDPC01", b"manager", b"10", b"clients.detail.get", b"{}"]),
            frames(&[b"MDPC01", b"manager", b"2.5", b"clients.detail.get", b"{}"]),
            frames(&[b"MDPC01", b"manager", b"None", b"clients.detail.get", b"{}"]),
        ] {
            let request = decode_request(&msg).unwrap();
            assert_eq!(
                request,
                Request {
                    framing: mdp.clone(),
                    action: "clients.detail.get".into(),
                    body: Map::new(),
                }
            );
        }
    }

    #[test]
    fn malformed_requests_keep_their_framing_when_recognisable() {
        let mdp = Framing::Mdp {
            service: b"manager".to_vec(),
        };
        let cases: Vec<(Vec<Vec<u8>>, Framing, &str)> = vec![
            (frames(&[b"garbage"]), Framing::Plain, "expected 2 frames"),
            (frames(&[]), Framing::Plain, "expected 2 frames"),
            (
                frames(&[b"a", b"b", b"c", b"d", b"e"]),
                Framing::Plain,
                "expected 2 frames",
            ),
            (frames(&[b"\xff\xfe", b"{}"]), Framing::Plain, "action is not UTF-8"),
            (
                frames(&[b"clients.list.get", b"\xff"]),
                Framing::Plain,
                "body is not UTF-8",
            ),
            (frames(&[b"clients.list.get", b"{"]), Framing::Plain, "body is not JSON"),
            (
                frames(&[b"clients.list.get", b"[]"]),
                Framing::Plain,
                "body is not a JSON object",
            ),
            (frames(&[b"MDPC01"]), Framing::Plain, "expected 2 frames"),
            (
                frames(&[b"MDPC01", b"manager", b"clients.list.get"]),
                mdp.clone(),
                "expected 4 or 5 frames",
            ),
            (
                frames(&[b"MDPC01", b"manager", b"a", b"b", b"c", b"d"]),
                mdp.clone(),
                "expected 4 or 5 frames",
            ),
            (
                frames(&[b"MDPC01", b"manager", b"soon", b"clients.list.get", b"{}"]),
                mdp.clone(),
                "timeout frame",
            ),
            (
                frames(&[b"MDPC01", b"manager", b"clients.list.get", b"nope"]),
                mdp.clone(),
                "body is not JSON",
            ),
            (
                frames(&[b"MDPC01", b"manager", b"\xff", b"{}"]),
                mdp,
                "action is not UTF-8",
            ),
        ];
        for (msg, framing, reason) in cases {
            let error = decode_request(&msg).unwrap_err();
            assert_eq!(error.framing, framing, "{msg:?}");
            assert!(error.reason.contains(reason), "{msg:?}: {}", error.reason);
        }
    }

    #[test]
    fn oversized_request_is_refused_before_parsing() {
        let big = vec![b'x'; 5 * 1024 * 1024];
        let error = decode_request(&[b"clients.list.get".to_vec(), big]).unwrap_err();
        assert!(error.reason.starts_with("request too large"), "{}", error.reason);
    }

    #[test]
    fn replies_use_the_request_framing() {
        assert_eq!(
            encode_reply(Framing::Plain, "x.result", "{}".into()),
            frames(&[b"x.result", b"{}"])
        );
        let mdp = Framing::Mdp {
            service: b"svc".to_vec(),
        };
        assert_eq!(
            encode_reply(mdp, "error", "{}".into()),
            frames(&[b"MDPC01", b"svc", b"error", b"{}"])
        );
    }

    #[test]
    fn replies_decode_in_both_framings() {
        let mdp = Framing::Mdp {
            service: b"manager".to_vec(),
        };
        let reply = decode_reply(&encode_reply(mdp.clone(), "clients.list.result", "{}".into())).unwrap();
        assert_eq!(
            reply,
            ReceivedReply {
                framing: mdp,
                action: "clients.list.result".into(),
                body: "{}".into()
            }
        );
        let plain = decode_reply(&frames(&[b"error", b"{\"status\": false}"])).unwrap();
        assert_eq!((plain.framing, plain.action.as_str()), (Framing::Plain, "error"));
        assert!(decode_reply(&frames(&[b"x"])).unwrap_err().to_string().contains("got 1"));
        assert!(decode_reply(&frames(&[b"a", b"b", b"c"])).is_err());
        assert!(decode_reply(&frames(&[b"x", b"\xff"]))
            .unwrap_err()
            .to_string()
            .contains("body is not UTF-8"));
    }

    #[test]
    fn error_body_is_one_python_json_object() {
        assert_eq!(
            error_body("no \"such\" action"),
            r#"{"status": false, "reason": "no \"such\" action"}"#
        );
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("ééé", 2), "éé...");
        assert_eq!(truncate("ab", 2), "ab");
    }

    #[test]
    fn truncate_escapes_control_characters() {
        assert_eq!(truncate("a\nb\u{1b}[2J\u{6}", 40), "a\\nb\\u{1b}[2J\\u{6}");
        assert_eq!(truncate("\r\r\r", 2), "\\r\\r...");
    }
}
