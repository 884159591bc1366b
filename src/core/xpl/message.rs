//! The xPL message codec: one UDP datagram to a typed [`Message`] and
//! back. Pure: bytes in, values or a typed [`DecodeError`] out.
//!
//! The wire form (the xPL Protocol specification, xplproject.org.uk), each
//! line ending with a line feed (10):
//!
//! ```text
//! xpl-stat                     type: xpl-cmnd, xpl-stat or xpl-trig
//! {
//! hop=1                        1 to 9
//! source=acme-sensor.kitchen   vendor-device.instance
//! target=*                     `*` or vendor-device.instance
//! }
//! hbeat.app                    schema: class.type
//! {
//! interval=5                   name=value lines, in order, names may repeat
//! port=50000
//! remote-ip=127.0.0.1
//! }
//! ```
//!
//! Limits (the specification's, read as Domogik 0.5.2's parser
//! `xpl/common/xplmessage.py` reads them where the two differ):
//! - a datagram is at most [`MAX_DATAGRAM`] bytes (1500, the xPL MTU);
//! - vendor id 1 to 8 of `a-z0-9`; device id 1 to 8 of `a-z0-9_` (Domogik
//!   accepts `_`); instance id 1 to 16 of `a-z0-9-`;
//! - schema class and type 1 to 8 of `a-z0-9-` each;
//! - body names 1 to 16 of `a-z0-9-`; values at most 128 characters, any
//!   but control characters (the specification's printable ASCII, and
//!   beyond it UTF-8 text, which Domogik's parser lets through too);
//! - the header's three lines are all present, in the order hop, source,
//!   target; the body may be empty (Domogik's parser refuses that; the
//!   specification does not), and a value may be empty.
//!
//! Strict where Domogik is: no `\r`, no upper case, nothing after the
//! closing `}` but one line feed. What Domogik's hub would not relay never
//! reaches us through it, so being as strict loses no device.

use std::fmt;

/// At most this many bytes in one xPL datagram (the specification's 1500:
/// Ethernet's MTU; Domogik reads 1500 bytes per datagram).
pub const MAX_DATAGRAM: usize = 1500;
/// At most this many characters in a body value.
pub const MAX_VALUE_CHARS: usize = 128;
/// At most this many characters in a body name.
pub const MAX_NAME_CHARS: usize = 16;

/// The three kinds of xPL message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `xpl-cmnd`: a command.
    Command,
    /// `xpl-stat`: a status (heartbeats are these).
    Status,
    /// `xpl-trig`: a trigger, a change just seen.
    Trigger,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Command => "xpl-cmnd",
            Kind::Status => "xpl-stat",
            Kind::Trigger => "xpl-trig",
        }
    }

    fn parse(text: &str) -> Option<Kind> {
        [Kind::Command, Kind::Status, Kind::Trigger]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// An xPL address, `vendor-device.instance`, e.g. `acme-sensor.kitchen`.
/// Only valid ones exist ([`Address::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    text: String,
    /// Where the `-` and the `.` are in `text`.
    dash: usize,
    dot: usize,
}

impl Address {
    /// Parses `vendor-device.instance` within the limits of the module doc.
    pub fn parse(text: &str) -> Result<Address, FieldError> {
        let (vendor, rest) = text.split_once('-').ok_or(FieldError::Address)?;
        let (device, instance) = rest.split_once('.').ok_or(FieldError::Address)?;
        let ok = word(vendor, 8, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && word(device, 8, |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && word(instance, 16, |c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
            });
        if !ok {
            return Err(FieldError::Address);
        }
        Ok(Address {
            text: text.to_owned(),
            dash: vendor.len(),
            dot: vendor.len() + 1 + device.len(),
        })
    }

    /// The whole address, as on the wire.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The vendor id, e.g. `acme` (`domogik` for Domogik's components).
    pub fn vendor(&self) -> &str {
        self.text.get(..self.dash).unwrap_or_default()
    }

    /// The device id, e.g. `sensor`.
    pub fn device(&self) -> &str {
        self.text.get(self.dash + 1..self.dot).unwrap_or_default()
    }

    /// The instance id, e.g. `kitchen`.
    pub fn instance(&self) -> &str {
        self.text.get(self.dot + 1..).unwrap_or_default()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A message's target: everyone (`*`) or one address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Everyone,
    One(Address),
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, FieldError> {
        match text {
            "*" => Ok(Target::Everyone),
            _ => Address::parse(text).map(Target::One).map_err(|_| FieldError::Target),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Target::Everyone => "*",
            Target::One(address) => address.as_str(),
        }
    }
}

/// A schema, `class.type`, e.g. `hbeat.app`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Schema {
    text: String,
}

impl Schema {
    pub fn parse(text: &str) -> Result<Schema, FieldError> {
        let schema_word = |part: &str| word(part, 8, |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        match text.split_once('.') {
            Some((class, kind)) if schema_word(class) && schema_word(kind) => Ok(Schema { text: text.to_owned() }),
            _ => Err(FieldError::Schema),
        }
    }

    /// One of our own constant schemas (`hbeat.app`...), known to be valid.
    pub(crate) fn from_static(text: &'static str) -> Schema {
        debug_assert!(Schema::parse(text).is_ok(), "{text}");
        Schema { text: text.to_owned() }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// `text` is 1 to `max` characters, each one `allowed`.
fn word(text: &str, max: usize, allowed: impl Fn(char) -> bool) -> bool {
    !text.is_empty() && text.len() <= max && text.chars().all(allowed)
}

/// A field that breaks the specification's limits (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// Not `vendor-device.instance` within the limits.
    Address,
    /// Neither `*` nor an address.
    Target,
    /// Not `class.type` within the limits.
    Schema,
    /// A body name that is not 1 to 16 of `a-z0-9-`.
    Name,
    /// A body value over 128 characters.
    ValueTooLong,
    /// A body value with a control character (a line feed included).
    ValueControl,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldError::Address => "not an xPL address vendor-device.instance (a-z0-9, at most 8-8.16 characters)",
            FieldError::Target => "not * nor an xPL address",
            FieldError::Schema => "not an xPL schema class.type (a-z0-9-, at most 8.8 characters)",
            FieldError::Name => "not a body name (1 to 16 of a-z0-9-)",
            FieldError::ValueTooLong => "a body value over 128 characters",
            FieldError::ValueControl => "a control character in a body value",
        })
    }
}

/// One xPL message. Every field is valid by construction, so [`encode`]
/// only fails on size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: Kind,
    /// 1 to 9.
    hop: u8,
    pub source: Address,
    pub target: Target,
    pub schema: Schema,
    /// The body's `name=value` pairs, in order; a name may repeat.
    body: Vec<(String, String)>,
}

impl Message {
    /// A message with hop 1 and an empty body.
    pub fn new(kind: Kind, source: Address, target: Target, schema: Schema) -> Message {
        Message {
            kind,
            hop: 1,
            source,
            target,
            schema,
            body: Vec::new(),
        }
    }

    pub fn hop(&self) -> u8 {
        self.hop
    }

    /// Appends `name=value` to the body.
    pub fn push(&mut self, name: &str, value: &str) -> Result<(), FieldError> {
        check_name(name)?;
        check_value(value)?;
        self.body.push((name.to_owned(), value.to_owned()));
        Ok(())
    }

    /// The body's pairs, in order.
    pub fn body(&self) -> impl Iterator<Item = (&str, &str)> {
        self.body.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The first value of `name` in the body.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.body().find(|(n, _)| *n == name).map(|(_, value)| value)
    }
}

fn check_name(name: &str) -> Result<(), FieldError> {
    match word(name, MAX_NAME_CHARS, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    }) {
        true => Ok(()),
        false => Err(FieldError::Name),
    }
}

fn check_value(value: &str) -> Result<(), FieldError> {
    if value.chars().any(char::is_control) {
        return Err(FieldError::ValueControl);
    }
    match value.chars().count() <= MAX_VALUE_CHARS {
        true => Ok(()),
        false => Err(FieldError::ValueTooLong),
    }
}

/// Why a datagram is not an xPL message. `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Over [`MAX_DATAGRAM`] bytes (the size given).
    TooLarge(usize),
    /// Not UTF-8 text.
    NotUtf8,
    /// The text ends before the message does (at that line).
    Truncated { line: usize },
    /// The first line is not `xpl-cmnd`, `xpl-stat` or `xpl-trig`.
    Kind,
    /// A line that must be `{` or `}` is not.
    Brace { line: usize, expected: char },
    /// A header line is not `hop=`, `source=` or `target=` in that order.
    HeaderLine { line: usize, expected: &'static str },
    /// The hop count is not 1 to 9.
    Hop,
    /// A body line without `=`.
    BodyLine { line: usize },
    /// A field breaks the limits.
    Field { line: usize, error: FieldError },
    /// Something after the closing `}` and its line feed.
    Trailing,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::TooLarge(size) => write!(f, "{size} bytes, over xPL's {MAX_DATAGRAM}"),
            DecodeError::NotUtf8 => f.write_str("not UTF-8 text"),
            DecodeError::Truncated { line } => write!(f, "ends at line {line}, before the message does"),
            DecodeError::Kind => f.write_str("line 1 is not xpl-cmnd, xpl-stat or xpl-trig"),
            DecodeError::Brace { line, expected } => write!(f, "line {line} is not {expected}"),
            DecodeError::HeaderLine { line, expected } => write!(f, "line {line} is not {expected}=..."),
            DecodeError::Hop => f.write_str("hop is not 1 to 9"),
            DecodeError::BodyLine { line } => write!(f, "line {line} is not name=value"),
            DecodeError::Field { line, error } => write!(f, "line {line}: {error}"),
            DecodeError::Trailing => f.write_str("more after the closing }"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one datagram.
pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLarge(datagram.len()));
    }
    let text = std::str::from_utf8(datagram).map_err(|_| DecodeError::NotUtf8)?;
    // Every line ends with '\n': what follows the last one is checked apart.
    let (complete, rest) = match text.rfind('\n') {
        Some(end) => text.split_at(end + 1),
        None => ("", text),
    };
    let mut lines = Lines {
        lines: complete.split_terminator('\n'),
        number: 0,
    };
    let kind = Kind::parse(lines.take()?.1).ok_or(DecodeError::Kind)?;
    brace(lines.take()?, '{')?;
    let hop = match header(lines.take()?, "hop")?.1.as_bytes() {
        [digit @ b'1'..=b'9'] => digit - b'0',
        _ => return Err(DecodeError::Hop),
    };
    let (line, source) = header(lines.take()?, "source")?;
    let source = Address::parse(source).map_err(|error| DecodeError::Field { line, error })?;
    let (line, target) = header(lines.take()?, "target")?;
    let target = Target::parse(target).map_err(|error| DecodeError::Field { line, error })?;
    brace(lines.take()?, '}')?;
    let (line, schema) = lines.take()?;
    let schema = Schema::parse(schema).map_err(|error| DecodeError::Field { line, error })?;
    brace(lines.take()?, '{')?;
    let mut message = Message {
        kind,
        hop,
        source,
        target,
        schema,
        body: Vec::new(),
    };
    // The body, up to `}`: a line of its own, or the text after the last '\n'.
    loop {
        let (line, text) = match lines.take() {
            Ok(line) => line,
            Err(_) if rest == "}" => return Ok(message),
            Err(_) if rest.starts_with('}') => return Err(DecodeError::Trailing),
            Err(error) => return Err(error),
        };
        if text == "}" {
            break;
        }
        let (name, value) = text.split_once('=').ok_or(DecodeError::BodyLine { line })?;
        message
            .push(name, value)
            .map_err(|error| DecodeError::Field { line, error })?;
    }
    match (lines.lines.next(), rest) {
        (None, "") => Ok(message),
        _ => Err(DecodeError::Trailing),
    }
}

/// The complete lines of a datagram, numbered from 1.
struct Lines<'a> {
    lines: std::str::SplitTerminator<'a, char>,
    number: usize,
}

impl<'a> Lines<'a> {
    /// The next line and its number, or `Truncated`.
    fn take(&mut self) -> Result<(usize, &'a str), DecodeError> {
        self.number += 1;
        let line = self.lines.next().ok_or(DecodeError::Truncated { line: self.number })?;
        Ok((self.number, line))
    }
}

fn brace((line, text): (usize, &str), expected: char) -> Result<(), DecodeError> {
    match text.len() == 1 && text.starts_with(expected) {
        true => Ok(()),
        false => Err(DecodeError::Brace { line, expected }),
    }
}

fn header<'a>((line, text): (usize, &'a str), name: &'static str) -> Result<(usize, &'a str), DecodeError> {
    text.strip_prefix(name)
        .and_then(|rest| rest.strip_prefix('='))
        .map(|value| (line, value))
        .ok_or(DecodeError::HeaderLine { line, expected: name })
}

/// The message as one datagram, each line ending with a line feed; an
/// error if it is over [`MAX_DATAGRAM`] bytes (the size it would have).
pub fn encode(message: &Message) -> Result<Vec<u8>, usize> {
    let mut text = format!(
        "{}\n{{\nhop={}\nsource={}\ntarget={}\n}}\n{}\n{{\n",
        message.kind.as_str(),
        message.hop,
        message.source,
        message.target.as_str(),
        message.schema.as_str()
    );
    for (name, value) in message.body() {
        text.push_str(name);
        text.push('=');
        text.push_str(value);
        text.push('\n');
    }
    text.push_str("}\n");
    match text.len() <= MAX_DATAGRAM {
        true => Ok(text.into_bytes()),
        false => Err(text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HBEAT: &str = "xpl-stat\n{\nhop=1\nsource=acme-sensor.kitchen\ntarget=*\n}\nhbeat.app\n{\ninterval=5\nport=50000\nremote-ip=127.0.0.1\n}\n";

    fn swap(from: &str, to: &str) -> Vec<u8> {
        assert!(HBEAT.contains(from), "{from}");
        HBEAT.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn a_heartbeat_decodes_field_by_field_and_encodes_back_byte_for_byte() {
        let message = decode(HBEAT.as_bytes()).unwrap();
        assert_eq!(message.kind, Kind::Status);
        assert_eq!(message.hop(), 1);
        assert_eq!(message.source.as_str(), "acme-sensor.kitchen");
        assert_eq!(
            (
                message.source.vendor(),
                message.source.device(),
                message.source.instance()
            ),
            ("acme", "sensor", "kitchen")
        );
        assert_eq!(message.target, Target::Everyone);
        assert_eq!(message.schema.as_str(), "hbeat.app");
        assert_eq!(
            message.body().collect::<Vec<_>>(),
            [("interval", "5"), ("port", "50000"), ("remote-ip", "127.0.0.1")]
        );
        assert_eq!(message.get("port"), Some("50000"));
        assert_eq!(message.get("nope"), None);
        assert_eq!(encode(&message).unwrap(), HBEAT.as_bytes());
    }

    #[test]
    fn every_kind_a_target_repeated_names_empty_values_and_an_empty_body() {
        let text = "xpl-cmnd\n{\nhop=9\nsource=xpl-xplhal.myhouse\ntarget=acme-cm12.server\n}\nx10.basic\n{\ncommand=dim\ndevice=a1\ndevice=a2\nlevel=\nnote=a=b c\n}\n";
        let message = decode(text.as_bytes()).unwrap();
        assert_eq!(message.kind, Kind::Command);
        assert_eq!(message.hop(), 9);
        assert_eq!(message.target.as_str(), "acme-cm12.server");
        assert_eq!(message.get("device"), Some("a1"), "the first of a repeated name");
        assert_eq!(message.body().filter(|(name, _)| *name == "device").count(), 2);
        assert_eq!(message.get("level"), Some(""));
        assert_eq!(message.get("note"), Some("a=b c"), "split at the first =");
        assert_eq!(encode(&message).unwrap(), text.as_bytes());
        let trig = swap("xpl-stat", "xpl-trig");
        assert_eq!(decode(&trig).unwrap().kind, Kind::Trigger);
        let empty = "xpl-stat\n{\nhop=1\nsource=a-b.c\ntarget=*\n}\nhbeat.end\n{\n}\n";
        assert_eq!(decode(empty.as_bytes()).unwrap().body().count(), 0);
        // Domogik's names ('_' in a device id, '-' in an instance) and a
        // value in UTF-8.
        let domogik = swap("acme-sensor.kitchen", "domogik-knx_ip.my-box-2");
        assert_eq!(decode(&domogik).unwrap().source.device(), "knx_ip");
        let utf8 = swap("port=50000", "room=séjour");
        assert_eq!(decode(&utf8).unwrap().get("room"), Some("séjour"));
    }

    #[test]
    fn the_last_line_feed_may_be_missing_nothing_else_may_follow() {
        let bare = HBEAT.strip_suffix('\n').unwrap();
        assert!(decode(bare.as_bytes()).is_ok());
        assert_eq!(decode(format!("{HBEAT}x").as_bytes()), Err(DecodeError::Trailing));
        assert_eq!(decode(format!("{HBEAT}\n").as_bytes()), Err(DecodeError::Trailing));
        assert_eq!(decode(format!("{HBEAT}}}\n").as_bytes()), Err(DecodeError::Trailing));
        assert_eq!(decode(format!("{bare}\0").as_bytes()), Err(DecodeError::Trailing));
    }

    #[test]
    fn every_malformed_shape_has_its_error() {
        let field = |line, error| Err(DecodeError::Field { line, error });
        let cases: Vec<(Vec<u8>, Result<Message, DecodeError>)> = vec![
            (
                vec![b'x'; MAX_DATAGRAM + 1],
                Err(DecodeError::TooLarge(MAX_DATAGRAM + 1)),
            ),
            (
                swap("kitchen", "kitch\u{7f}en")
                    .into_iter()
                    .map(|b| if b == 0x7f { 0xff } else { b })
                    .collect(),
                Err(DecodeError::NotUtf8),
            ),
            (Vec::new(), Err(DecodeError::Truncated { line: 1 })),
            (b"xpl-stat".to_vec(), Err(DecodeError::Truncated { line: 1 })),
            (
                b"xpl-stat\n{\nhop=1\n".to_vec(),
                Err(DecodeError::Truncated { line: 4 }),
            ),
            (
                HBEAT.get(..HBEAT.len() - 2).unwrap().as_bytes().to_vec(),
                Err(DecodeError::Truncated { line: 12 }),
            ),
            (swap("xpl-stat", "xpl-info"), Err(DecodeError::Kind)),
            (swap("xpl-stat", "XPL-STAT"), Err(DecodeError::Kind)),
            (swap("xpl-stat\n", "xpl-stat\r\n"), Err(DecodeError::Kind)),
            (
                swap("{\nhop", "[\nhop"),
                Err(DecodeError::Brace { line: 2, expected: '{' }),
            ),
            (
                swap("{\nhop", "{ \nhop"),
                Err(DecodeError::Brace { line: 2, expected: '{' }),
            ),
            (swap("*\n}", "*\n)"), Err(DecodeError::Brace { line: 6, expected: '}' })),
            (
                swap("app\n{", "app\n{{"),
                Err(DecodeError::Brace { line: 8, expected: '{' }),
            ),
            (
                swap("hop=1", "hops=1"),
                Err(DecodeError::HeaderLine {
                    line: 3,
                    expected: "hop",
                }),
            ),
            (
                swap("hop=1\nsource=acme-sensor.kitchen", "source=acme-sensor.kitchen\nhop=1"),
                Err(DecodeError::HeaderLine {
                    line: 3,
                    expected: "hop",
                }),
            ),
            (
                swap("source=", "source:"),
                Err(DecodeError::HeaderLine {
                    line: 4,
                    expected: "source",
                }),
            ),
            (
                swap("target=*\n", ""),
                Err(DecodeError::HeaderLine {
                    line: 5,
                    expected: "target",
                }),
            ),
            (swap("hop=1", "hop=0"), Err(DecodeError::Hop)),
            (swap("hop=1", "hop=10"), Err(DecodeError::Hop)),
            (swap("hop=1", "hop="), Err(DecodeError::Hop)),
            (swap("hop=1", "hop=1\r"), Err(DecodeError::Hop)),
            (
                swap("acme-sensor.kitchen", "acme.kitchen"),
                field(4, FieldError::Address),
            ),
            (
                swap("acme-sensor.kitchen", "acmesensor-x.kitchen"),
                field(4, FieldError::Address),
            ),
            (
                swap("acme-sensor.kitchen", "Acme-sensor.kitchen"),
                field(4, FieldError::Address),
            ),
            (
                swap("acme-sensor.kitchen", "acme-sensor.kitchen."),
                field(4, FieldError::Address),
            ),
            (
                swap("acme-sensor.kitchen", "acme-sensor."),
                field(4, FieldError::Address),
            ),
            (
                swap("acme-sensor.kitchen", "-sensor.kitchen"),
                field(4, FieldError::Address),
            ),
            (
                swap("acme-sensor.kitchen", "acme-sensors12.kitchen"),
                field(4, FieldError::Address),
            ),
            (
                swap("acme-sensor.kitchen", "acme-sensor.kitchen0123456789ab"),
                field(4, FieldError::Address),
            ),
            (
                swap("acme-sensor.kitchen", "acme-sen_sor.kit_chen"),
                field(4, FieldError::Address),
            ),
            (swap("target=*", "target=**"), field(5, FieldError::Target)),
            (swap("target=*", "target="), field(5, FieldError::Target)),
            (swap("hbeat.app", "hbeat"), field(7, FieldError::Schema)),
            (swap("hbeat.app", "hbeat.application"), field(7, FieldError::Schema)),
            (swap("hbeat.app", "hbeat.app.x"), field(7, FieldError::Schema)),
            (swap("hbeat.app", ".app"), field(7, FieldError::Schema)),
            (swap("interval=5", "interval"), Err(DecodeError::BodyLine { line: 9 })),
            (swap("interval=5", "=5"), field(9, FieldError::Name)),
            (swap("interval=5", "Interval=5"), field(9, FieldError::Name)),
            (swap("interval=5", "an-overly-long-name=5"), field(9, FieldError::Name)),
            (swap("interval=5", "int erval=5"), field(9, FieldError::Name)),
            (
                swap("interval=5", &format!("interval={}", "5".repeat(129))),
                field(9, FieldError::ValueTooLong),
            ),
            (swap("interval=5", "interval=5\r"), field(9, FieldError::ValueControl)),
            (swap("interval=5", "interval=5\t6"), field(9, FieldError::ValueControl)),
            (
                swap("interval=5", "interval=\u{7f}"),
                field(9, FieldError::ValueControl),
            ),
        ];
        for (datagram, expected) in cases {
            assert_eq!(decode(&datagram), expected, "{:?}", String::from_utf8_lossy(&datagram));
            if let Err(error) = decode(&datagram) {
                let line = error.to_string();
                assert!(!line.is_empty() && !line.contains('\n'), "{line:?}");
            }
        }
        // At the limits exactly: accepted.
        let at_limits = swap("acme-sensor.kitchen", "abcdefgh-abcdefgh.abcdefghijklmnop");
        assert!(decode(&at_limits).is_ok());
        let long_value = swap("interval=5", &format!("sixteen-chars-ab={}", "é".repeat(128)));
        assert!(decode(&long_value).is_ok());
    }

    #[test]
    fn the_builder_refuses_what_the_decoder_refuses_and_encode_refuses_the_oversized() {
        let source = Address::parse("domogik-manager.box").unwrap();
        let mut message = Message::new(
            Kind::Status,
            source,
            Target::Everyone,
            Schema::parse("hbeat.app").unwrap(),
        );
        assert_eq!(message.push("Bad", "1"), Err(FieldError::Name));
        assert_eq!(message.push("ok", "a\nb"), Err(FieldError::ValueControl));
        assert_eq!(message.push("ok", &"v".repeat(129)), Err(FieldError::ValueTooLong));
        message.push("interval", "5").unwrap();
        let bytes = encode(&message).unwrap();
        assert_eq!(decode(&bytes).unwrap(), message);
        for _ in 0..12 {
            message.push("filler", &"v".repeat(128)).unwrap();
        }
        let size = encode(&message).unwrap_err();
        assert!(size > MAX_DATAGRAM, "{size}");
        assert!(Address::parse("a-b").is_err());
        assert!(Target::parse("a-b.c").is_ok());
    }
}
