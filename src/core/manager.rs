//! The manager's core, without I/O: requests in, replies out; status
//! messages, package changes, `dbmgr` answers and the clock in,
//! publications and `dbmgr` questions out.
//!
//! The event loop feeds it decoded frames and the time ([`Manager::set_now`]
//! at each turn), and sends what it returns. Everything here is tested
//! without a socket. Both dialects (PROTOCOL.md §4 and §8) are views of one
//! clients map, each serialised once per change and cached.
//!
//! This file holds the [`Manager`] and what changes its clients map: status
//! messages, package changes, the timers, `dbmgr` answers. By concern, the
//! rest is in `src/core/manager/`: `requests.rs` answers requests in both
//! dialects (`plugin.start.do` too), `plugins.rs` starts plugin processes
//! and shows their ends, `publications.rs` builds and caches the views and
//! says what is owed to subscribers.

mod plugins;
mod publications;
mod requests;
#[cfg(test)]
mod testing;

pub(crate) use plugins::{NoProcesses, ProcessEvent, Processes, SpawnError};
pub use publications::{Publications, LIST_CATEGORY};
pub(crate) use publications::{DETAIL_CATEGORY, V05_LIST_CATEGORY, VIEW_CATEGORIES};
pub use requests::{Reply, DETAIL_GET, LIST_GET};
pub(crate) use requests::{DETAIL_RESULT, ERROR_ACTION, LIST_RESULT, START_DO, START_RESULT};

use crate::core::bus::dbmgr::{self, Answer, Questions};
use crate::core::autostart::AutoStart;
use crate::core::children::{Children, Policy};
use crate::core::clients::{Applied, Clients, StatusRejected};
use crate::core::hosts::{self, Handled, Hosts};
use crate::core::launch::Launch;
use crate::core::liveness::{self, Now, OwnStatus};
use crate::core::packages::PackageChange;
use crate::core::status::Status;
use crate::core::views::v05;
use crate::core::wire::{self, BadStatusMessage};
use crate::core::xpl::devices::Heard;
use publications::Cache;
use serde_json::value::RawValue;
use std::time::{Duration, Instant};

/// The prefix the manager subscribes to.
pub const STATUS_SUBSCRIPTION: &str = "plugin";
/// The manager's own client (PROTOCOL.md §8): type `core`, name `manager`.
pub(crate) const OWN_TYPE: &str = "core";
pub(crate) const OWN_NAME: &str = "manager";

/// What became of a message received on the SUB socket, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusOutcome {
    Changed {
        id: String,
        status: Status,
    },
    Unchanged,
    /// Not a status message (another category or client type; a
    /// `plugin.configuration` update is one, which makes `dbmgr` asked).
    NotForUs,
    Malformed(BadStatusMessage),
    Rejected(StatusRejected),
}

/// The clients map, the service name, the timers, and the serialised
/// views, which are computed once per change however many requests and
/// publications use them.
#[derive(Debug)]
pub struct Manager {
    clients: Clients,
    service: String,
    now: Now,
    dead_after: Duration,
    own: OwnStatus,
    /// `None` standalone: no `dbmgr` to ask, `configured` stays null.
    dbmgr: Option<Questions>,
    datatypes: Option<Box<RawValue>>,
    /// The maps changed since the last publication.
    dirty: bool,
    /// Only the 0.5 maps changed (an xPL device, which the seed's maps do
    /// not show): they alone are owed.
    v05_dirty: bool,
    /// A package was added or changed since the last publication.
    packages_dirty: bool,
    /// `plugin.status` messages owed (dead clients, our own status).
    statuses: Vec<Vec<Vec<u8>>>,
    cache: Cache,
    /// What the 0.5 views derive from each package, made again on change.
    v05: v05::Derivations,
    /// The other managers' clients (PROTOCOL.md §13); `None` off a bus.
    hosts: Option<Hosts>,
    /// The processes of the clients (the one model of them, §10).
    children: Children,
    /// How a client's process is started.
    launch: Launch,
    /// Which clients `auto_startup` has decided already.
    autostart: AutoStart,
    /// The core components still to start (at the first turn).
    core_pending: Vec<String>,
}

impl Manager {
    /// A manager of `host`'s clients registered as MDP `service`, at `now`
    /// (the edge reads it: `sys::clock::now`).
    pub fn new(host: impl Into<String>, service: impl Into<String>, now: Now) -> Manager {
        Manager {
            clients: Clients::new(host),
            service: service.into(),
            now,
            dead_after: liveness::DEFAULT_DEAD_AFTER,
            own: OwnStatus::new(liveness::DEFAULT_STATUS_INTERVAL, now.mono),
            dbmgr: None,
            datatypes: None,
            dirty: false,
            v05_dirty: false,
            packages_dirty: false,
            statuses: Vec::new(),
            cache: Cache::default(),
            v05: v05::Derivations::default(),
            hosts: None,
            children: Children::new(Policy::default()),
            launch: Launch::default(),
            autostart: AutoStart::default(),
            core_pending: Vec::new(),
        }
    }

    /// Shows the other managers' clients and publishes ours for them, as
    /// `instance` (on a bus: PROTOCOL.md §13).
    pub(crate) fn enable_hosts(&mut self, instance: &str, limits: hosts::Limits) {
        self.hosts = Some(Hosts::new(self.clients.host(), instance, limits));
    }

    /// A request's frames and envelope: answered here
    /// ([`hosts::Forward::Local`]), refused at once, or forwarded to the
    /// manager of the host its body names (PROTOCOL.md §13).
    pub(crate) fn forward_request(&mut self, frames: &[Vec<u8>], envelope: wire::Frames) -> hosts::Forward {
        match self.hosts.as_mut() {
            Some(hosts) => hosts.forward(frames, envelope, &self.service, self.now.mono),
            None => hosts::Forward::Local(envelope),
        }
    }

    /// The other managers' requests to run here (then
    /// [`Manager::answer_incoming`] with the reply).
    pub(crate) fn take_incoming(&mut self) -> Vec<hosts::Incoming> {
        self.hosts.as_mut().map(Hosts::take_incoming).unwrap_or_default()
    }

    /// Our reply (plain frames) to another manager's request.
    pub(crate) fn answer_incoming(&mut self, incoming: &hosts::Incoming, reply: &[Vec<u8>]) {
        if let Some(hosts) = self.hosts.as_mut() {
            hosts.answer_incoming(incoming, reply);
        }
    }

    /// Replies owed to forwarded requests: (envelope, frames).
    pub(crate) fn take_relayed(&mut self) -> Vec<(wire::Frames, wire::Frames)> {
        self.hosts.as_mut().map(Hosts::take_relayed).unwrap_or_default()
    }

    /// What happened to the other hosts since the last call, for the log.
    pub(crate) fn take_host_events(&mut self) -> Vec<hosts::Event> {
        self.hosts.as_mut().map(Hosts::take_events).unwrap_or_default()
    }

    /// How clients are started, and the kill delay and restart policy.
    pub(crate) fn set_processes(&mut self, launch: Launch, policy: Policy) {
        self.launch = launch;
        self.children = Children::new(policy);
    }

    /// The delays of src/core/liveness.rs (30 s and 15 s unless configured).
    /// How long a running plugin may stay silent before it is `dead`.
    pub(crate) fn dead_after(&self) -> Duration {
        self.dead_after
    }

    pub(crate) fn set_timers(&mut self, dead_after: Duration, status_interval: Duration) {
        self.dead_after = dead_after;
        self.own = OwnStatus::new(status_interval, self.now.mono);
    }

    /// Asks `dbmgr` for each client's configuration (on a Domogik bus).
    pub(crate) fn enable_dbmgr(&mut self, limits: dbmgr::Limits) {
        let mut questions = Questions::new(self.clients.host(), limits);
        // Core components have no configuration in dbmgr (0.5.2 asks none).
        for (name, _) in self.clients.iter().filter(|(name, _)| crate::core::kind::split(name).0.is_package()) {
            questions.ask(name, self.now.mono);
        }
        self.dbmgr = Some(questions);
    }

    /// Whether the socket that carries the `dbmgr` questions is open (the
    /// broker answers): questions wait for it rather than time out, and
    /// go out at once when it opens.
    pub(crate) fn set_dbmgr_reachable(&mut self, reachable: bool) {
        let now = self.now.mono;
        if let Some(questions) = self.dbmgr.as_mut() {
            questions.set_reachable(reachable, now);
        }
    }

    /// The time of this turn of the loop.
    pub(crate) fn set_now(&mut self, now: Now) {
        self.now = now;
    }

    pub(crate) fn clients(&self) -> &Clients {
        &self.clients
    }

    /// `datatypes.json` as read, or `None` when unreadable (`datatype.get`
    /// then answers `null`).
    pub(crate) fn set_datatypes(&mut self, datatypes: Option<Box<RawValue>>) {
        self.datatypes = datatypes;
    }

    /// The nearest deadline of every timer: a client's death, our own
    /// status, a `dbmgr` question. The loop's poll waits at most until then.
    pub(crate) fn poll_timeout(&self) -> Instant {
        let deaths = self.clients.poll_timeout(self.dead_after);
        let questions = self.dbmgr.as_ref().and_then(Questions::poll_timeout);
        let children = self.children.poll_timeout();
        let hosts = self.hosts.as_ref().and_then(Hosts::poll_timeout);
        let xpl_deaths = self.clients.devices().poll_timeout();
        [deaths, questions, children, hosts, xpl_deaths]
            .into_iter()
            .flatten()
            .fold(self.own.poll_timeout(), Instant::min)
    }

    /// Runs the timers that are due: dead clients (each with a `dead`
    /// `plugin.status` owed) and our own status. Returns the names that died.
    pub(crate) fn handle_timeout(&mut self) -> Vec<String> {
        let dead = self.clients.handle_timeout(self.dead_after, self.now);
        for name in &dead {
            let (kind, bare) = crate::core::kind::split(name);
            let frames = wire::encode_status_of(kind.as_str(), bare, self.clients.host(), Status::Dead, None, self.now.unix);
            self.statuses.push(frames);
        }
        if !dead.is_empty() {
            self.mark_changed();
        }
        if let Some(hosts) = self.hosts.as_mut() {
            hosts.handle_timeout(self.now.mono);
        }
        if let Some(status) = self.own.handle_timeout(self.now.mono) {
            self.statuses.push(self.own_status(status));
        }
        dead
    }

    /// The xPL devices' limits (docs/PROTOCOL.md §12): at most `max`, and
    /// the length of an xPL minute (60 s but in tests).
    pub(crate) fn set_xpl_limits(&mut self, max: usize, minute: Duration) {
        *self.clients.devices_mut() = crate::core::xpl::devices::Devices::new(max, minute);
    }

    /// Applies one xPL message (docs/PROTOCOL.md §12): a device added,
    /// changed or forgotten is published; a repeated heartbeat only moves
    /// its `last_seen`.
    pub(crate) fn handle_xpl_message(&mut self, message: &crate::core::xpl::message::Message) -> Heard {
        let heard = self.clients.devices_mut().handle_message(message, self.now);
        match &heard {
            Heard::Added { .. } | Heard::Changed { .. } => self.mark_v05_changed(),
            Heard::Seen => self.cache.forget_v05(),
            Heard::Ignored => {}
        }
        heard
    }

    /// The xPL devices silent for too long become dead; their sources.
    pub(crate) fn handle_xpl_timeout(&mut self) -> Vec<String> {
        let dead = self.clients.devices_mut().handle_timeout(self.now.mono);
        if !dead.is_empty() {
            self.mark_v05_changed();
        }
        dead
    }

    /// Our own `plugin.status`, e.g. `stopped` as the loop leaves.
    pub(crate) fn own_status(&self, status: Status) -> Vec<Vec<u8>> {
        wire::encode_status_of(OWN_TYPE, OWN_NAME, self.clients.host(), status, None, self.now.unix)
    }

    /// The `dbmgr` questions to send now (DEALER frames); none standalone.
    pub(crate) fn take_dbmgr_requests(&mut self) -> Vec<Vec<Vec<u8>>> {
        let now = self.now.mono;
        self.dbmgr
            .as_mut()
            .map(|questions| questions.handle_timeout(now))
            .unwrap_or_default()
    }

    /// Applies a reply received from `dbmgr`; the name of the plugin whose
    /// configuration it gave, or why it was not used (for the log).
    pub(crate) fn handle_dbmgr_reply(&mut self, frames: &[Vec<u8>]) -> Result<String, dbmgr::BadAnswer> {
        let Some(questions) = self.dbmgr.as_mut() else {
            return Err(dbmgr::BadAnswer::Unexpected("no question was asked".into()));
        };
        let (name, answer) = questions.handle_reply(frames, self.now.mono)?;
        let Some(client) = self.clients.get(&name) else {
            return Err(dbmgr::BadAnswer::Unexpected(format!(
                "no client {}",
                wire::truncate(&name, 40)
            )));
        };
        let configuration = match answer {
            Answer::All(configuration) => configuration,
            Answer::One { key, value } => {
                let mut configuration = client.configuration.clone();
                match value {
                    Some(value) => configuration.values.insert(key, value),
                    None => configuration.values.remove(&key),
                };
                configuration.configured = Some(
                    configuration
                        .values
                        .get("configured")
                        .is_some_and(crate::core::clients::is_true),
                );
                configuration
            }
        };
        if self.clients.set_configuration(&name, configuration) {
            self.mark_changed();
            self.packages_dirty = true;
        }
        Ok(name)
    }

    /// Applies one message received on the SUB socket.
    pub fn handle_status_message(&mut self, frames: &[Vec<u8>]) -> StatusOutcome {
        if let Some(hosts) = self.hosts.as_mut() {
            if hosts.handle_message(frames, self.now.mono) == Handled::Taken {
                return StatusOutcome::NotForUs;
            }
        }
        let (kind, update) = match wire::decode_client_status(frames) {
            Ok(Some(decoded)) => decoded,
            Ok(None) => {
                self.configuration_updated(frames);
                return StatusOutcome::NotForUs;
            }
            Err(error) => return StatusOutcome::Malformed(error),
        };
        let key = crate::core::kind::key(kind, &update.name);
        if kind == crate::core::kind::Kind::Core && self.clients.get(&key).is_none() {
            // Our own status heard back, or a core component we do not run.
            return StatusOutcome::NotForUs;
        }
        let host = update.host.unwrap_or_else(|| self.clients.host().to_owned());
        if host != self.clients.host() {
            // Another host's plugin: its own manager's business (§13).
            return StatusOutcome::NotForUs;
        }
        let applied = self
            .clients
            .set_status(&key, &host, update.status, update.comment, self.now);
        if applied.is_ok() {
            // The one model of the process hears it at once (§10).
            self.children.observe(&key, update.status, self.now.mono);
        }
        match applied {
            Ok(Applied::Changed) => {
                self.mark_changed();
                if key == "core-dbmgr" && update.status == Status::Alive {
                    // The dbmgr we run is up: what it could not answer is asked now.
                    if let Some(questions) = self.dbmgr.as_mut() {
                        questions.dbmgr_came(self.now.mono);
                    }
                }
                StatusOutcome::Changed {
                    id: self.clients.client_id(&key),
                    status: update.status,
                }
            }
            Ok(Applied::Heard) => {
                // last_seen moved: the 0.5 views are stale, nothing to publish.
                self.cache.forget_v05();
                StatusOutcome::Unchanged
            }
            Err(rejected) => StatusOutcome::Rejected(rejected),
        }
    }

    /// `plugin.configuration` `updated` for one of our clients: ask `dbmgr` again.
    fn configuration_updated(&mut self, frames: &[Vec<u8>]) {
        let Some((name, host)) = wire::decode_configuration_updated(frames) else {
            return;
        };
        if host == self.clients.host() && self.clients.get(&name).is_some() {
            if let Some(questions) = self.dbmgr.as_mut() {
                questions.ask(&name, self.now.mono);
            }
        }
    }

    /// Applies what a rescan found.
    pub fn apply_package_changes(&mut self, changes: Vec<PackageChange>) {
        for change in changes {
            self.apply_package_change(change);
        }
    }

    /// Applies one change of a rescan; `false` when it changed no client
    /// (a package re-read to the same content, a removal of an unknown one).
    pub(crate) fn apply_package_change(&mut self, change: PackageChange) -> bool {
        let changed = match change {
            PackageChange::Updated { name, package } => {
                let is_new = self.clients.get(&name).is_none();
                let changed = self.clients.upsert_package(&name, package, self.now);
                if let (true, Some(questions)) = (is_new, self.dbmgr.as_mut()) {
                    questions.ask(&name, self.now.mono);
                }
                changed
            }
            PackageChange::Files { name, files } => self.clients.set_files(&name, files),
            PackageChange::Removed { name } => {
                if let Some(questions) = self.dbmgr.as_mut() {
                    questions.forget(&name);
                }
                self.children.forget(&name);
                self.autostart.forget(&name);
                self.clients.remove_package(&name)
            }
        };
        if changed {
            self.mark_changed();
            self.packages_dirty = true;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{ask, body, frames, manager_with};
    use super::*;
    use crate::core::packages::Package;
    use serde_json::value::RawValue;

    #[test]
    fn an_xpl_device_is_published_when_added_or_dead_and_its_heartbeats_only_move_last_seen() {
        let mut manager = manager_with(&["a"]);
        manager.set_xpl_limits(8, Duration::from_secs(60));
        let t0 = manager.now;
        manager.take_publications(1.0);
        let hbeat = crate::core::xpl::message::decode(
            b"xpl-stat\n{\nhop=1\nsource=acme-sensor.kitchen\ntarget=*\n}\nhbeat.app\n{\ninterval=1\n}\n",
        )
        .unwrap();
        assert!(matches!(manager.handle_xpl_message(&hbeat), Heard::Added { .. }));
        let published: Vec<Vec<Vec<u8>>> = manager.take_publications(2.0).unwrap().collect();
        let ids: Vec<String> = published
            .iter()
            .map(|frames| String::from_utf8_lossy(&frames[0]).into_owned())
            .collect();
        assert!(
            ids.iter().all(|id| id.starts_with("client.")),
            "the 0.5 maps only (the seed's show no device): {ids:?}"
        );
        assert_eq!(published.len(), 3);
        let list = published
            .iter()
            .find(|frames| frames[0].starts_with(b"client.list."))
            .unwrap();
        assert_eq!(body(&list[1])["acme-sensor.kitchen"]["status"], "alive");
        let conversion = published
            .iter()
            .find(|frames| frames[0].starts_with(b"client.conversion."))
            .unwrap();
        assert_eq!(body(&conversion[1])["acme-sensor.kitchen"], serde_json::Value::Null);
        // A heartbeat again: last_seen in the replies, nothing published.
        manager.set_now(Now {
            mono: t0.mono + Duration::from_secs(30),
            unix: t0.unix + 30.0,
        });
        assert_eq!(manager.handle_xpl_message(&hbeat), Heard::Seen);
        assert!(manager.take_publications(3.0).is_none());
        let (_, list) = ask(&mut manager, "client.list.get", "{}");
        assert_eq!(list["acme-sensor.kitchen"]["last_seen"], t0.unix + 30.0);
        // Dead at 2 × 1 min + 1 min of silence: the poll's timeout says when.
        let death = t0.mono + Duration::from_secs(210);
        assert_eq!(manager.clients.devices().poll_timeout(), Some(death));
        assert!(manager.poll_timeout() <= death);
        manager.set_now(Now {
            mono: t0.mono + Duration::from_secs(211),
            unix: t0.unix + 211.0,
        });
        assert_eq!(manager.handle_xpl_timeout(), ["acme-sensor.kitchen"]);
        let published: Vec<Vec<Vec<u8>>> = manager.take_publications(4.0).unwrap().collect();
        let list = published
            .iter()
            .find(|frames| frames[0].starts_with(b"client.list."))
            .unwrap();
        assert_eq!(body(&list[1])["acme-sensor.kitchen"]["status"], "dead");
        assert!(
            !published.iter().any(|frames| frames[0].starts_with(b"plugin.status")),
            "no plugin.status for a device"
        );
    }

    #[test]
    fn a_package_change_that_changes_no_client_says_so_and_publishes_nothing() {
        let mut manager = manager_with(&["a"]);
        assert!(manager.take_publications(1.0).is_some(), "package added");
        let same = PackageChange::Updated {
            name: "a".into(),
            package: Package::Valid {
                data: RawValue::from_string("{\"n\": \"a\"}".into()).unwrap(),
            },
        };
        assert!(!manager.apply_package_change(same), "same content again");
        assert!(!manager.apply_package_change(PackageChange::Removed { name: "zz".into() }));
        assert!(manager.take_publications(2.0).is_none());
        let broken = PackageChange::Updated {
            name: "a".into(),
            package: Package::Invalid {
                reason: "broken".into(),
            },
        };
        assert!(manager.apply_package_change(broken.clone()));
        assert!(!manager.apply_package_change(broken), "failing the same way again");
        assert!(manager.apply_package_change(PackageChange::Removed { name: "a".into() }));
    }

    #[test]
    fn bad_status_messages_change_nothing() {
        let mut manager = manager_with(&["a"]);
        manager.take_publications(0.0);
        let outcomes = [
            manager.handle_status_message(&frames(&[b"plugin.1_2.0_1"])),
            manager.handle_status_message(&frames(&[b"plugin.1_2.0_1", b"nope"])),
            manager.handle_status_message(&frames(&[
                b"plugin.1_2.0_1",
                br#"{"type": "plugin", "id": "zz", "event": "alive"}"#,
            ])),
            manager.handle_status_message(&frames(&[
                b"plugin.1_2.0_1",
                br#"{"type": "plugin", "id": "a", "event": "zzz"}"#,
            ])),
            manager.handle_status_message(&frames(&[
                b"plugin.status.1_2.0_1",
                br#"{"type": "plugin", "name": "zz", "host": "box", "event": "alive"}"#,
            ])),
            manager.handle_status_message(&frames(&[
                b"plugin.status.1_2.0_1",
                br#"{"type": "plugin", "name": "a", "host": "elsewhere", "event": "alive"}"#,
            ])),
        ];
        assert!(matches!(outcomes[0], StatusOutcome::Malformed(_)));
        assert!(matches!(outcomes[1], StatusOutcome::Malformed(_)));
        assert!(matches!(outcomes[2], StatusOutcome::Rejected(_)));
        assert!(matches!(outcomes[3], StatusOutcome::Malformed(_)));
        assert!(matches!(outcomes[4], StatusOutcome::Rejected(_)));
        assert_eq!(
            outcomes[5],
            StatusOutcome::NotForUs,
            "another host's plugin: its manager's"
        );
        assert!(manager.take_publications(1.0).is_none());
        assert_eq!(manager.clients().status("a"), Some(Status::Unknown));
    }

    fn at(unix: f64, mono: std::time::Instant) -> Now {
        Now { mono, unix }
    }

    #[test]
    fn a_silent_client_dies_once_and_its_dead_status_is_published_first() {
        let mut manager = manager_with(&["a"]);
        let t0 = std::time::Instant::now();
        manager.set_now(at(100.0, t0));
        manager.set_timers(Duration::from_secs(30), Duration::from_secs(15));
        manager.handle_timeout();
        let own: Vec<Vec<Vec<u8>>> = manager.take_publications(100.0).unwrap().collect();
        assert_eq!(own[0][0], b"plugin.status.100_0.0_1");
        assert_eq!(
            own[0][1],
            br#"{"type": "core", "name": "manager", "host": "box", "event": "starting"}"#
        );
        manager.handle_status_message(&frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "alive"}"#,
        ]));
        manager.take_publications(100.0);
        assert_eq!(
            manager.poll_timeout(),
            t0 + Duration::from_secs(15),
            "our own status first"
        );
        manager.set_now(at(115.0, t0 + Duration::from_secs(15)));
        assert!(manager.handle_timeout().is_empty());
        let alive: Vec<Vec<Vec<u8>>> = manager.take_publications(115.0).unwrap().collect();
        assert_eq!(alive.len(), 1, "only our own status: nothing else changed");
        assert!(String::from_utf8_lossy(&alive[0][1]).contains("\"event\": \"alive\""));
        assert_eq!(manager.poll_timeout(), t0 + Duration::from_secs(30));

        manager.set_now(at(130.5, t0 + Duration::from_millis(30_500)));
        assert_eq!(manager.handle_timeout(), ["a"]);
        let published: Vec<Vec<Vec<u8>>> = manager.take_publications(130.5).unwrap().collect();
        assert_eq!(published[0][0], b"plugin.status.130_5.0_1");
        assert_eq!(
            published[0][1],
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "dead"}"#
        );
        assert!(
            String::from_utf8_lossy(&published[1][1]).contains("\"type\": \"core\""),
            "our own, due too"
        );
        let dead_message = published[0].clone();
        let published = &published[1..];
        let categories: Vec<String> = published[1..]
            .iter()
            .map(|frames| {
                wire::category_of(std::str::from_utf8(&frames[0]).unwrap())
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(
            categories,
            [
                "clients.list",
                "clients.detail",
                "client.list",
                "client.detail",
                "client.conversion"
            ]
        );
        assert_eq!(body(&published[1][1])["domogik-a.box"]["status"], "dead");
        assert_eq!(body(&published[3][1])["plugin-a.box"]["status"], "dead");
        assert!(manager.handle_timeout().is_empty(), "dead once");
        // Our own dead status, heard back through the forwarder, changes nothing.
        assert_eq!(manager.handle_status_message(&dead_message), StatusOutcome::Unchanged);
        assert_eq!(
            manager.handle_status_message(&published[0]),
            StatusOutcome::NotForUs,
            "our own is a core client"
        );
    }

    #[test]
    fn a_heartbeat_publishes_nothing_but_moves_last_seen() {
        let mut manager = manager_with(&["a"]);
        let t0 = std::time::Instant::now();
        let alive = frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "alive"}"#,
        ]);
        manager.set_now(at(10.0, t0));
        manager.handle_status_message(&alive);
        manager.take_publications(10.0);
        let (_, before) = ask(&mut manager, "client.list.get", "{}");
        manager.set_now(at(25.0, t0 + Duration::from_secs(15)));
        assert_eq!(manager.handle_status_message(&alive), StatusOutcome::Unchanged);
        assert!(manager.take_publications(25.0).is_none());
        let (_, after) = ask(&mut manager, "client.list.get", "{}");
        assert_eq!(before["plugin-a.box"]["last_seen"], 10.0);
        assert_eq!(after["plugin-a.box"]["last_seen"], 25.0);
    }

    #[test]
    fn dbmgr_is_asked_for_new_clients_and_after_a_configuration_update() {
        let mut manager = manager_with(&["a"]);
        assert!(manager.take_dbmgr_requests().is_empty(), "standalone: nothing asked");
        manager.enable_dbmgr(dbmgr::Limits::default());
        let asked = manager.take_dbmgr_requests();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0][3], b"config.get");
        manager.take_publications(1.0);
        let answer = frames(&[
            b"",
            b"MDPC01",
            b"dbmgr",
            b"config.result",
            br#"{"status": true, "reason": "", "type": "plugin", "name": "a", "host": "box", "data": {"configured": "True", "auto_startup": "True"}}"#,
        ]);
        assert_eq!(manager.handle_dbmgr_reply(&answer), Ok("a".to_owned()));
        assert_eq!(manager.clients().parameter_is_true("a", "auto_startup"), Some(true));
        let published: Vec<Vec<Vec<u8>>> = manager.take_publications(2.0).unwrap().collect();
        assert_eq!(body(&published[0][1])["domogik-a.box"]["configured"], true);
        assert_eq!(body(&published[2][1])["plugin-a.box"]["configured"], true);
        assert_eq!(published.len(), 6, "and package.detail: the data's values changed");

        manager.handle_status_message(&frames(&[
            b"plugin.configuration.1_2.0_1",
            br#"{"type": "plugin", "name": "a", "host": "box", "event": "updated"}"#,
        ]));
        assert_eq!(manager.take_dbmgr_requests().len(), 1, "asked again");
        manager.apply_package_change(PackageChange::Updated {
            name: "b".into(),
            package: Package::Valid {
                data: RawValue::from_string("{}".into()).unwrap(),
            },
        });
        assert_eq!(manager.take_dbmgr_requests().len(), 1, "a new client is asked about");
    }
}
