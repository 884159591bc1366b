//! Other hosts' clients (PROTOCOL.md §13): what the other managers on the
//! bus published of their own clients, their liveness per host, the views
//! merged with ours (each client once), and what we owe them (a hello, our
//! own clients). Pure: frames and the time come in, events and frames go
//! out; the manager (`src/core/manager.rs`) feeds it.
//!
//! A host is held from its first message (its manager's periodic status,
//! a `manager.hello`, a `manager.clients`) until it has been silent for
//! `forget_after`; silent for more than `silent_after` its running clients
//! are shown `dead`. At most `max_hosts` hosts and `max_clients` clients
//! per host are held. Nothing naming our own host is ever taken.

mod forward;

pub(crate) use forward::{Forward, Incoming};

use crate::core::pyjson;
use crate::core::wire::{self, Frames};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Our own clients, per view, for the other managers.
pub(crate) const CLIENTS_CATEGORY: &str = "manager.clients";
/// "Publish your own clients now": a manager that (re)joins the bus.
pub(crate) const HELLO_CATEGORY: &str = "manager.hello";
/// What the SUB subscribes to, besides the plugins' statuses.
pub const SUBSCRIPTION: &str = "manager.";
/// The categories a subscription relayed by the forwarder may name.
pub(crate) const CATEGORIES: [&str; 2] = [CLIENTS_CATEGORY, HELLO_CATEGORY];
/// The views merged with the other hosts' clients, in this index order.
pub(crate) const MERGED_VIEWS: [&str; 5] = [
    "clients.list",
    "clients.detail",
    "client.list",
    "client.detail",
    "client.conversion",
];
/// The detail views, whose entries get the silence's `comment`.
const DETAIL_VIEWS: [usize; 2] = [1, 3];
/// The conversion view: entries without a `host` field.
const CONVERSION_VIEW: usize = 4;
/// A `manager.clients` message holds at most this much of entries (one
/// larger entry alone): well under the SUB's 1 MiB `ZMQ_MAXMSGSIZE`.
pub(crate) const PART_BYTES: usize = 256 * 1024;
/// An entry larger than this is not sent to the other managers (their
/// SUB would drop its connection to the forwarder for a message over 1 MiB).
pub(crate) const MAX_ENTRY_BYTES: usize = 900 * 1024;
/// The most parts one view is sent in (4096 × 256 KiB: 1 GiB).
const MAX_PARTS: usize = 4096;
/// A hello asked for a host whose clients we lack, at most this often.
const HELLO_GAP: Duration = Duration::from_secs(2);

/// The bounds and delays (PROTOCOL.md §13, `[manager]` keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Other hosts held (`max_hosts`, 64).
    pub max_hosts: usize,
    /// Clients held per other host (`max_host_clients`, 1024).
    pub max_clients: usize,
    /// Not heard for more than this: silent (`dead_after`, 30 s).
    pub silent_after: Duration,
    /// Not heard for more than this: forgotten (`forget_host_after`, a day).
    pub forget_after: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_hosts: 64,
            max_clients: 1024,
            silent_after: Duration::from_secs(30),
            forget_after: Duration::from_secs(86_400),
        }
    }
}

/// What happened to the other hosts, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// First heard of (info).
    Joined { host: String },
    /// Its manager started again: another instance (info).
    Restarted { host: String },
    /// Silent: its running clients shown `dead` (warning; info when its
    /// manager said it `stopped`).
    Silent { host: String, why: String, stopped: bool },
    /// Heard again after it was silent (info).
    Back { host: String },
    /// Silent for longer than `forget_after` (info).
    Forgotten { host: String, silent_for: Duration },
    /// Not held: `max_hosts` reached (warning, once while it lasts).
    TooManyHosts { host: String, max: usize },
    /// Its clients after the first `max` not held (warning, once per host).
    TooManyClients { host: String, max: usize },
    /// A view of it not held: the other hosts' entries would pass
    /// [`MAX_HELD_BYTES`] (warning, once per host).
    TooLarge { host: String },
    /// A message naming our own host from another manager (bad input).
    Forged { instance: String },
    /// A `manager.*` message that cannot be used (bad input).
    Malformed { reason: String },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Joined { host } => write!(f, "host {host} joined: its manager's clients are shown"),
            Event::Restarted { host } => write!(f, "the manager of host {host} started again"),
            Event::Silent { why, .. } => write!(f, "{why}: its running clients are shown dead"),
            Event::Back { host } => write!(f, "host {host} is heard again"),
            Event::Forgotten { host, silent_for } => write!(
                f,
                "host {host} forgotten after {} s of silence: its clients are no longer shown",
                silent_for.as_secs()
            ),
            Event::TooManyHosts { host, max } => write!(
                f,
                "host {host} not shown: {max} other hosts are held already (max_hosts; said once while it lasts)"
            ),
            Event::TooManyClients { host, max } => write!(
                f,
                "host {host} has more than {max} clients: the others are not shown (max_host_clients; said once)"
            ),
            Event::TooLarge { host } => write!(
                f,
                "host {host}'s clients not all shown: the other hosts' entries would pass {} MiB (said once)",
                MAX_HELD_BYTES / (1024 * 1024)
            ),
            Event::Forged { instance } => write!(
                f,
                "a manager.* message names our own host from another manager (instance {}): ignored, \
                 our clients are ours",
                wire::truncate(instance, 40)
            ),
            Event::Malformed { reason } => write!(f, "manager.* message dropped: {reason}"),
        }
    }
}

/// What [`Hosts::handle_message`] made of a SUB message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Not a manager's message: the plugins' statuses are the manager's.
    NotOurs,
    /// Taken (or dropped, with an event).
    Taken,
}

/// One view's entries as a host published them, by client id.
type Entries = BTreeMap<String, Box<RawValue>>;

/// A view arriving in parts.
#[derive(Debug)]
struct Pending {
    instance: String,
    parts: usize,
    next: usize,
    entries: Entries,
}

/// One other host.
#[derive(Debug)]
struct Host {
    instance: String,
    heard: Instant,
    /// Why it is shown silent, while it is.
    silent: Option<String>,
    views: [Entries; 5],
    pending: [Option<Pending>; 5],
    /// Whether its `client.list` came: it needs no hello.
    has_clients: bool,
    cut_said: bool,
    /// Bytes of the entries held and pending (ids and JSON text).
    bytes: usize,
    large_said: bool,
}

/// The other hosts' entries held at most, all hosts together: whatever
/// their managers publish, our memory for them stays under this.
pub(crate) const MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

fn entries_bytes(entries: &Entries) -> usize {
    entries.iter().map(|(id, entry)| id.len() + entry.get().len()).sum()
}

impl Host {
    fn count_bytes(&mut self) {
        let pending = self
            .pending
            .iter()
            .flatten()
            .map(|pending| entries_bytes(&pending.entries));
        self.bytes = self.views.iter().map(entries_bytes).chain(pending).sum();
    }
}

/// The other hosts, and what we owe them.
#[derive(Debug)]
pub(crate) struct Hosts {
    own: String,
    instance: String,
    limits: Limits,
    hosts: BTreeMap<String, Host>,
    /// The merged views, made again after any change.
    merged: [Option<String>; 5],
    events: Vec<Event>,
    hello_owed: bool,
    clients_owed: bool,
    /// The merged views changed for a reason subscribers must see.
    publish_owed: bool,
    last_hello: Option<Instant>,
    full_said: bool,
    /// Our requests forwarded to other hosts, by id (`forward.rs`).
    waiting: BTreeMap<u64, forward::Waiting>,
    next_id: u64,
    /// Other managers' requests to run here.
    incoming: Vec<Incoming>,
    /// Replies to send: (envelope, frames).
    relayed: Vec<(Frames, Frames)>,
    /// `manager.do` and `manager.done` owed: (category, body).
    outgoing: Vec<(&'static str, String)>,
    /// [`MAX_HELD_BYTES`] (smaller in tests).
    max_bytes: usize,
}

#[derive(Deserialize)]
struct ClientsMessage {
    host: String,
    instance: String,
    view: String,
    #[serde(default)]
    part: usize,
    #[serde(default = "one")]
    parts: usize,
    clients: Entries,
}

fn one() -> usize {
    1
}

#[derive(Deserialize)]
struct HelloMessage {
    host: String,
    instance: String,
}

#[derive(Deserialize)]
struct ManagerStatus {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    host: Option<String>,
    event: Option<String>,
}

#[derive(Deserialize)]
struct HostField {
    host: Option<Value>,
    #[serde(rename = "type")]
    kind: Option<Value>,
}

/// The type of the xPL devices' entries (§11): keyed by their xPL source,
/// their `host` the source's instance, seen by every manager of the LAN.
const XPL_CLIENT: &str = "xpl_client";

/// A host name as §2 accepts it: 1 to 16 letters, digits or `-`.
fn is_host_name(host: &str) -> bool {
    (1..=16).contains(&host.len()) && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Hosts {
    /// The other hosts of `own`'s manager, started as `instance`.
    pub(crate) fn new(own: impl Into<String>, instance: impl Into<String>, limits: Limits) -> Hosts {
        Hosts {
            own: own.into(),
            instance: instance.into(),
            limits,
            hosts: BTreeMap::new(),
            merged: Default::default(),
            events: Vec::new(),
            hello_owed: false,
            clients_owed: false,
            publish_owed: false,
            last_hello: None,
            full_said: false,
            waiting: BTreeMap::new(),
            next_id: 1,
            incoming: Vec::new(),
            relayed: Vec::new(),
            outgoing: Vec::new(),
            max_bytes: MAX_HELD_BYTES,
        }
    }

    /// The hosts held, by name, and whether each is silent.
    #[cfg(test)]
    pub(crate) fn hosts(&self) -> impl Iterator<Item = (&str, bool)> {
        self.hosts
            .iter()
            .map(|(name, host)| (name.as_str(), host.silent.is_some()))
    }

    /// What happened since the last call, for the log.
    pub(crate) fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Our own clients changed: the others are owed them (none while no
    /// other manager is heard: one that joins says hello).
    pub(crate) fn own_changed(&mut self) {
        if !self.hosts.is_empty() {
            self.clients_owed = true;
        }
    }

    /// Our publications reach the forwarder (again): say hello, and publish
    /// our own clients.
    pub(crate) fn joined_bus(&mut self) {
        self.hello_owed = true;
        self.clients_owed = true;
    }

    /// Whether a host's silence, return or end changed the merged views
    /// since the last call (subscribers are owed them).
    pub(crate) fn take_publish_owed(&mut self) -> bool {
        std::mem::take(&mut self.publish_owed)
    }

    /// The hello and our own clients, owed since the last call.
    pub(crate) fn take_owed(&mut self) -> (bool, bool) {
        (
            std::mem::take(&mut self.hello_owed),
            std::mem::take(&mut self.clients_owed),
        )
    }

    /// Our `manager.hello`.
    pub(crate) fn hello(&self, unix_time: f64) -> Vec<Vec<u8>> {
        #[derive(serde::Serialize)]
        struct Hello<'a> {
            host: &'a str,
            instance: &'a str,
        }
        let body = pyjson::to_string(&Hello {
            host: &self.own,
            instance: &self.instance,
        });
        wire::encode_publication(HELLO_CATEGORY, unix_time, body)
    }

    /// Our own clients of view `index` (`own`: the view's JSON, only our
    /// clients) as `manager.clients` messages of at most [`PART_BYTES`]
    /// of entries each.
    pub(crate) fn clients_messages(&self, index: usize, own: &str, unix_time: f64) -> Vec<Vec<Vec<u8>>> {
        let Some(view) = MERGED_VIEWS.get(index) else {
            return Vec::new();
        };
        let head = |part: usize, parts: usize| {
            format!(
                "{{\"host\": {}, \"instance\": {}, \"view\": \"{view}\", \"part\": {part}, \"parts\": {parts}, \"clients\": ",
                pyjson::to_string(&self.own),
                pyjson::to_string(&self.instance)
            )
        };
        let chunks: Vec<String> = if own.len() <= PART_BYTES {
            vec![own.to_owned()]
        } else {
            let Ok(PairsOf(entries)) = serde_json::from_str::<PairsOf>(own) else {
                return Vec::new();
            };
            let mut chunks = Vec::new();
            let mut chunk = String::from("{");
            for (id, entry) in entries {
                let item = format!("{}: {}", pyjson::to_string(&id), entry.get());
                if item.len() > MAX_ENTRY_BYTES {
                    continue;
                }
                if chunk.len() > 1 && chunk.len() + item.len() > PART_BYTES {
                    chunk.push('}');
                    chunks.push(std::mem::replace(&mut chunk, String::from("{")));
                }
                if chunk.len() > 1 {
                    chunk.push_str(", ");
                }
                chunk.push_str(&item);
            }
            chunk.push('}');
            chunks.push(chunk);
            chunks
        };
        let parts = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(part, chunk)| {
                let mut body = head(part, parts);
                body.push_str(&chunk);
                body.push('}');
                wire::encode_publication(CLIENTS_CATEGORY, unix_time, body)
            })
            .collect()
    }

    /// A message received on the SUB: another manager's status, hello or
    /// clients are taken; anything else is the manager's.
    pub(crate) fn handle_message(&mut self, frames: &[Vec<u8>], now: Instant) -> Handled {
        let [msg_id, body] = frames else {
            return Handled::NotOurs;
        };
        let Some(category) = std::str::from_utf8(msg_id).ok().and_then(wire::category_of) else {
            return Handled::NotOurs;
        };
        match category {
            "plugin.status" => self.manager_status(body, now),
            HELLO_CATEGORY => {
                match serde_json::from_slice::<HelloMessage>(body) {
                    Ok(hello) => {
                        if self.heard(&hello.host, Some(&hello.instance), now) {
                            self.clients_owed = true;
                        }
                    }
                    Err(e) => self.malformed(format!("manager.hello: {e}")),
                }
                Handled::Taken
            }
            CLIENTS_CATEGORY => {
                match serde_json::from_slice::<ClientsMessage>(body) {
                    Ok(message) => self.clients(message, now),
                    Err(e) => self.malformed(format!("manager.clients: {e}")),
                }
                Handled::Taken
            }
            forward::DO_CATEGORY => {
                self.handle_do(body, now);
                Handled::Taken
            }
            forward::DONE_CATEGORY => {
                self.handle_done(body, now);
                Handled::Taken
            }
            other if other.starts_with(SUBSCRIPTION) => Handled::Taken,
            _ => Handled::NotOurs,
        }
    }

    /// `plugin.status` of `type` `core`, `name` `manager`: that host is
    /// heard (or, `stopped`, silent at once). Others are not ours.
    fn manager_status(&mut self, body: &[u8], now: Instant) -> Handled {
        // Most are plugins' statuses: only parsed when they could be a manager's.
        if !body.windows(9).any(|w| w == b"\"manager\"") {
            return Handled::NotOurs;
        }
        let Ok(status) = serde_json::from_slice::<ManagerStatus>(body) else {
            return Handled::NotOurs;
        };
        if status.kind.as_deref() != Some("core") || status.name.as_deref() != Some("manager") {
            return Handled::NotOurs;
        }
        let Some(host) = status.host else {
            return Handled::NotOurs;
        };
        if host == self.own {
            // Ours, back through the forwarder (statuses carry no instance).
            return Handled::Taken;
        }
        if !self.heard(&host, None, now) {
            return Handled::Taken;
        }
        if status.event.as_deref() == Some("stopped") {
            self.set_silent(&host, format!("the manager of host {host} stopped"), true);
        } else if self.hosts.get(&host).is_some_and(|held| !held.has_clients) {
            // Its clients never came (a hello of ours lost on its way): ask again.
            if self.last_hello.is_none_or(|last| now.duration_since(last) >= HELLO_GAP) {
                self.last_hello = Some(now);
                self.hello_owed = true;
            }
        }
        Handled::Taken
    }

    /// `host` heard at `now` (with its `instance` when the message has
    /// one); whether it is held (not ours, a valid name, within bounds).
    fn heard(&mut self, host: &str, instance: Option<&str>, now: Instant) -> bool {
        if host == self.own {
            if let Some(instance) = instance.filter(|instance| *instance != self.instance) {
                self.events.push(Event::Forged {
                    instance: instance.to_owned(),
                });
            }
            return false;
        }
        if !is_host_name(host) {
            self.malformed(format!("host {} is not a host name", wire::truncate(host, 40)));
            return false;
        }
        if !self.hosts.contains_key(host) {
            if self.hosts.len() >= self.limits.max_hosts {
                if !std::mem::replace(&mut self.full_said, true) {
                    self.events.push(Event::TooManyHosts {
                        host: host.to_owned(),
                        max: self.limits.max_hosts,
                    });
                }
                return false;
            }
            self.hosts.insert(
                host.to_owned(),
                Host {
                    instance: instance.unwrap_or_default().to_owned(),
                    heard: now,
                    silent: None,
                    views: Default::default(),
                    pending: Default::default(),
                    has_clients: false,
                    cut_said: false,
                    bytes: 0,
                    large_said: false,
                },
            );
            self.events.push(Event::Joined { host: host.to_owned() });
            // Ours to it: a change of ours made while nobody was heard was
            // not published for the others.
            self.clients_owed = true;
            // Its clients at once, not after its next change.
            if self.last_hello.is_none_or(|last| now.duration_since(last) >= HELLO_GAP) {
                self.last_hello = Some(now);
                self.hello_owed = true;
            }
            return true;
        }
        let Some(held) = self.hosts.get_mut(host) else {
            return false;
        };
        held.heard = now;
        if let Some(instance) = instance {
            if held.instance != instance {
                if !held.instance.is_empty() {
                    self.events.push(Event::Restarted { host: host.to_owned() });
                }
                held.instance = instance.to_owned();
            }
        }
        if held.silent.take().is_some() {
            self.events.push(Event::Back { host: host.to_owned() });
            self.merged = Default::default();
            self.publish_owed = true;
        }
        true
    }

    fn malformed(&mut self, reason: String) {
        self.events.push(Event::Malformed { reason });
    }

    /// One part of another host's view.
    fn clients(&mut self, message: ClientsMessage, now: Instant) {
        let ClientsMessage {
            host,
            instance,
            view,
            part,
            parts,
            clients,
        } = message;
        let Some(index) = MERGED_VIEWS.iter().position(|known| *known == view) else {
            return self.malformed(format!("unknown view {}", wire::truncate(&view, 40)));
        };
        if parts == 0 || parts > MAX_PARTS || part >= parts {
            return self.malformed(format!("part {part} of {parts}"));
        }
        if !self.heard(&host, Some(&instance), now) {
            return;
        }
        let suffix = format!(".{host}");
        let mut foreign = 0usize;
        let entries: Entries = clients
            .into_iter()
            .filter(|(id, entry)| {
                let fits = if index == CONVERSION_VIEW {
                    // An xPL device's conversions are `null`.
                    id.ends_with(&suffix) || entry.get() == "null"
                } else {
                    serde_json::from_str::<HostField>(entry.get()).is_ok_and(|field| {
                        let xpl_device = field.kind.as_ref().and_then(Value::as_str) == Some(XPL_CLIENT);
                        xpl_device
                            || (id.ends_with(&suffix) && field.host.is_none_or(|h| h.as_str() == Some(host.as_str())))
                    })
                };
                foreign += usize::from(!fits);
                fits
            })
            .collect();
        if foreign > 0 {
            self.malformed(format!(
                "{foreign} entries of host {host}'s {view} name another host: not shown"
            ));
        }
        let max_clients = self.limits.max_clients;
        let held_bytes: usize = self.hosts.values().map(|held| held.bytes).sum();
        let Some(held) = self.hosts.get_mut(&host) else {
            return;
        };
        if held_bytes.saturating_add(entries_bytes(&entries)) > self.max_bytes {
            if let Some(slot) = held.pending.get_mut(index) {
                *slot = None;
            }
            held.count_bytes();
            if !std::mem::replace(&mut held.large_said, true) {
                self.events.push(Event::TooLarge { host });
            }
            return;
        }
        let Some(slot) = held.pending.get_mut(index) else {
            return;
        };
        let mut pending = match slot.take() {
            _ if part == 0 => Pending {
                instance,
                parts,
                next: 0,
                entries: Entries::new(),
            },
            Some(pending) if pending.instance == instance && pending.parts == parts && pending.next == part => pending,
            // A part lost (a slow subscriber's queue): wait for the next round.
            _ => return,
        };
        pending.entries.extend(entries);
        pending.next += 1;
        if pending.next < pending.parts {
            *slot = Some(pending);
            held.count_bytes();
            return;
        }
        let mut entries = pending.entries;
        if entries.len() > max_clients {
            let keep: Entries = std::mem::take(&mut entries).into_iter().take(max_clients).collect();
            entries = keep;
            if !std::mem::replace(&mut held.cut_said, true) {
                self.events.push(Event::TooManyClients {
                    host: host.clone(),
                    max: max_clients,
                });
            }
        }
        if let Some(shown) = held.views.get_mut(index) {
            *shown = entries;
        }
        if index == 2 {
            held.has_clients = true;
        }
        held.count_bytes();
        if let Some(merged) = self.merged.get_mut(index) {
            *merged = None;
        }
    }

    fn set_silent(&mut self, host: &str, why: String, stopped: bool) {
        let Some(held) = self.hosts.get_mut(host) else {
            return;
        };
        if held.silent.is_none() {
            held.silent = Some(why.clone());
            self.events.push(Event::Silent {
                host: host.to_owned(),
                why,
                stopped,
            });
            self.merged = Default::default();
            self.publish_owed = true;
        }
    }

    /// The nearest time a host becomes silent or is forgotten.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.hosts
            .values()
            .map(|held| match held.silent {
                None => held.heard + self.limits.silent_after,
                Some(_) => held.heard + self.limits.forget_after,
            })
            .chain(self.forward_timeout())
            .min()
    }

    /// Hosts silent for more than `silent_after` marked, for more than
    /// `forget_after` forgotten.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.expire_forwarded(now);
        let silent_after = self.limits.silent_after;
        let forget_after = self.limits.forget_after;
        let mut newly_silent = Vec::new();
        let mut forgotten = Vec::new();
        for (name, held) in &self.hosts {
            let silent_for = now.saturating_duration_since(held.heard);
            if silent_for > forget_after {
                forgotten.push((name.clone(), silent_for));
            } else if held.silent.is_none() && silent_for > silent_after {
                newly_silent.push(name.clone());
            }
        }
        for name in newly_silent {
            let seconds = pyjson::python_float_repr(silent_after.as_secs_f64());
            let why = format!(
                "host {name} not heard from for more than {} s",
                seconds.trim_end_matches(".0")
            );
            self.set_silent(&name, why, false);
        }
        for (name, silent_for) in forgotten {
            self.hosts.remove(&name);
            self.events.push(Event::Forgotten { host: name, silent_for });
            self.merged = Default::default();
            self.publish_owed = true;
            self.full_said = false;
        }
    }

    /// View `index` with every other host's clients after ours (`own`,
    /// that view's JSON object; `own_fresh`: made again since the last
    /// call), each client id once, ours first.
    pub(crate) fn merged<'a>(&'a mut self, index: usize, own: &'a str, own_fresh: bool) -> &'a str {
        if self
            .hosts
            .values()
            .all(|held| held.views.get(index).is_none_or(BTreeMap::is_empty))
        {
            return own;
        }
        let Some(slot) = self.merged.get_mut(index) else {
            return own;
        };
        if own_fresh {
            *slot = None;
        }
        let hosts = &self.hosts;
        slot.get_or_insert_with(|| merge(index, own, hosts))
    }
}

/// An object's entries in their order, each value raw.
struct PairsOf(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for PairsOf {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PairsOf, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PairsOf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PairsOf, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, Box<RawValue>>()? {
                    pairs.push(pair);
                }
                Ok(PairsOf(pairs))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// The merged text: `own`'s entries, then each host's (by name) not shown yet.
fn merge(index: usize, own: &str, hosts: &BTreeMap<String, Host>) -> String {
    let own_ids: BTreeSet<String> = serde_json::from_str::<BTreeMap<String, serde::de::IgnoredAny>>(own)
        .map(|ids| ids.into_keys().collect())
        .unwrap_or_default();
    let trimmed = own.trim_end();
    let body = trimmed.strip_suffix('}').unwrap_or(trimmed);
    let mut out = String::with_capacity(own.len() + 1024);
    out.push_str(body);
    let mut first = own_ids.is_empty();
    let mut seen = own_ids;
    for held in hosts.values() {
        let Some(entries) = held.views.get(index) else {
            continue;
        };
        for (id, entry) in entries {
            if !seen.insert(id.clone()) {
                continue;
            }
            if !first {
                out.push_str(", ");
            }
            first = false;
            out.push_str(&pyjson::to_string(id));
            out.push_str(": ");
            match &held.silent {
                Some(why) if index != CONVERSION_VIEW => {
                    out.push_str(&marked(entry, why, DETAIL_VIEWS.contains(&index)))
                }
                _ => out.push_str(entry.get()),
            }
        }
    }
    out.push('}');
    out
}

/// A silent host's entry: `dead` if it was running, with `why` as the
/// detail's comment.
fn marked(entry: &RawValue, why: &str, detail: bool) -> String {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(entry.get()) else {
        return entry.get().to_owned();
    };
    let running = matches!(
        fields.get("status").and_then(Value::as_str),
        Some("starting" | "alive" | "stop-request")
    );
    if !running {
        return entry.get().to_owned();
    }
    fields.insert("status".into(), Value::String("dead".into()));
    if detail {
        fields.insert("comment".into(), Value::String(why.to_owned()));
    }
    pyjson::to_string(&fields)
}

#[cfg(test)]
mod tests;
