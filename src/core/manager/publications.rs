//! What the manager publishes (PROTOCOL.md §4, §8): the views of its
//! clients map in both dialects, each serialised once per change and
//! cached for requests and publications alike, and the publications owed
//! after a change, `plugin.status` messages first.

use super::Manager;
use crate::core::clients::Clients;
use crate::core::views::{seed, v05};
use crate::core::wire;

/// The seed dialect's publications after a change, in this order.
pub const LIST_CATEGORY: &str = "clients.list";
pub(crate) const DETAIL_CATEGORY: &str = "clients.detail";
/// The 0.5 dialect's publications after a change, in this order.
pub(crate) const V05_LIST_CATEGORY: &str = "client.list";
pub(crate) const V05_DETAIL_CATEGORY: &str = "client.detail";
pub(crate) const V05_CONVERSION_CATEGORY: &str = "client.conversion";
pub(crate) const PACKAGE_DETAIL_CATEGORY: &str = "package.detail";
/// Every category the manager publishes the views under.
pub(crate) const VIEW_CATEGORIES: [&str; 6] = [
    LIST_CATEGORY,
    DETAIL_CATEGORY,
    V05_LIST_CATEGORY,
    V05_DETAIL_CATEGORY,
    V05_CONVERSION_CATEGORY,
    PACKAGE_DETAIL_CATEGORY,
];

/// The views, serialised on first use after a change.
#[derive(Debug, Default)]
pub(super) struct Cache {
    seed_list: Option<String>,
    seed_detail: Option<String>,
    v05_list: Option<String>,
    v05_detail: Option<String>,
    conversion: Option<String>,
    package_detail: Option<String>,
}

/// One publication owed, built when the iterator reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum View {
    SeedList,
    SeedDetail,
    V05List,
    V05Detail,
    Conversion,
    PackageDetail,
}

impl Cache {
    /// The 0.5 views are stale (a pid or `last_seen` moved); the seed's are not.
    pub(super) fn forget_v05(&mut self) {
        self.v05_list = None;
        self.v05_detail = None;
    }
}

impl Manager {
    /// The publications owed since the last call: the `plugin.status` of
    /// clients that died and our own, then `clients.list`, `clients.detail`
    /// (the seed's; not after a change only the 0.5 maps show, an xPL
    /// device's), `client.list`, `client.detail`, `client.conversion`,
    /// and `package.detail` after a package change; once however many
    /// changes happened meanwhile. Each view is built when the iterator
    /// reaches it, so one can be sent before the next is serialised. They
    /// are no longer owed once this returns: whatever of the iterator is
    /// left unconsumed is not published until the next change.
    pub fn take_publications(&mut self, unix_time: f64) -> Option<Publications<'_>> {
        let host_change = self.hosts.as_mut().is_some_and(|hosts| hosts.take_publish_owed());
        let dirty = std::mem::take(&mut self.dirty) || host_change;
        let v05_dirty = std::mem::take(&mut self.v05_dirty) || dirty;
        let (hello, own) = self.hosts.as_mut().map_or((false, false), |hosts| hosts.take_owed());
        let mut others = std::collections::VecDeque::new();
        if let Some(hosts) = self.hosts.as_mut() {
            if hello {
                others.push_back(hosts.hello(unix_time));
            }
            others.extend(hosts.take_outgoing(unix_time));
        }
        let own_views = if own { OWN_VIEWS.len() } else { 0 };
        if !v05_dirty && self.statuses.is_empty() && others.is_empty() && own_views == 0 {
            return None;
        }
        let mut views = Vec::new();
        if dirty {
            views.extend([View::SeedList, View::SeedDetail]);
        }
        if v05_dirty {
            views.extend([View::V05List, View::V05Detail, View::Conversion]);
        }
        if dirty && std::mem::take(&mut self.packages_dirty) {
            views.push(View::PackageDetail);
        }
        let statuses = std::mem::take(&mut self.statuses);
        Some(Publications {
            manager: self,
            unix_time,
            statuses: statuses.into_iter(),
            views: views.into_iter(),
            others,
            own_views: OWN_VIEWS.get(..own_views).unwrap_or_default().iter(),
        })
    }

    /// Owes every view to subscribers again although nothing changed: a
    /// subscriber appeared (the PUB's link came up, or came back, at the
    /// forwarder) and must not wait for the next change.
    pub(crate) fn republish(&mut self) {
        self.dirty = true;
        self.packages_dirty = true;
        if let Some(hosts) = self.hosts.as_mut() {
            hosts.joined_bus();
        }
    }

    /// Every view changed: all owed again, none cached.
    pub(super) fn mark_changed(&mut self) {
        self.dirty = true;
        self.cache = Cache::default();
        if let Some(hosts) = self.hosts.as_mut() {
            hosts.own_changed();
        }
    }

    /// Only the 0.5 maps changed (an xPL device): they alone are owed, and
    /// the seed's stay cached.
    pub(super) fn mark_v05_changed(&mut self) {
        self.v05_dirty = true;
        self.cache.forget_v05();
        self.cache.conversion = None;
        if let Some(hosts) = self.hosts.as_mut() {
            hosts.own_changed();
        }
    }

    /// `view` as JSON, serialised if the cache has none since the last
    /// change, with the other hosts' clients after ours (PROTOCOL.md §13).
    pub(super) fn view(&mut self, view: View) -> &str {
        let fresh = self.cache.slot(view).is_none();
        let own = own_view(&mut self.cache, &self.clients, &mut self.v05, view);
        match (self.hosts.as_mut(), OWN_VIEWS.iter().position(|own| *own == view)) {
            (Some(hosts), Some(index)) => hosts.merged(index, own, fresh),
            _ => own,
        }
    }
}

/// The views merged with the other hosts', in `hosts::MERGED_VIEWS`'s order.
const OWN_VIEWS: [View; 5] = [
    View::SeedList,
    View::SeedDetail,
    View::V05List,
    View::V05Detail,
    View::Conversion,
];

impl Cache {
    fn slot(&mut self, view: View) -> &mut Option<String> {
        match view {
            View::SeedList => &mut self.seed_list,
            View::SeedDetail => &mut self.seed_detail,
            View::V05List => &mut self.v05_list,
            View::V05Detail => &mut self.v05_detail,
            View::Conversion => &mut self.conversion,
            View::PackageDetail => &mut self.package_detail,
        }
    }
}

/// Our own clients' `view`, from the cache or serialised into it.
fn own_view<'a>(cache: &'a mut Cache, clients: &Clients, derived: &mut v05::Derivations, view: View) -> &'a str {
    {
        type Build = fn(&Clients, &v05::Derivations) -> String;
        let build: Build = match view {
            View::SeedList => |clients, _| seed::list_json(clients),
            View::SeedDetail => |clients, _| seed::detail_json(clients),
            View::V05List => v05::list_json,
            View::V05Detail => v05::detail_json,
            View::Conversion => v05::conversion_json,
            View::PackageDetail => v05::package_detail_json,
        };
        let slot = cache.slot(view);
        slot.get_or_insert_with(|| {
            derived.sync(clients);
            build(clients, derived)
        })
    }
}

impl View {
    fn category(self) -> &'static str {
        match self {
            View::SeedList => LIST_CATEGORY,
            View::SeedDetail => DETAIL_CATEGORY,
            View::V05List => V05_LIST_CATEGORY,
            View::V05Detail => V05_DETAIL_CATEGORY,
            View::Conversion => V05_CONVERSION_CATEGORY,
            View::PackageDetail => PACKAGE_DETAIL_CATEGORY,
        }
    }
}

/// The publications of one turn, each `[msg_id, body]`, serialised (or
/// taken from the cache) on demand.
pub struct Publications<'a> {
    manager: &'a mut Manager,
    unix_time: f64,
    statuses: std::vec::IntoIter<Vec<Vec<u8>>>,
    views: std::vec::IntoIter<View>,
    /// Our hello, then our own clients' parts (§13), as they are built.
    others: std::collections::VecDeque<Vec<Vec<u8>>>,
    own_views: std::slice::Iter<'static, View>,
}

impl Publications<'_> {
    /// Whether the views are among them (else only `plugin.status` messages).
    pub(crate) fn views_owed(&self) -> bool {
        self.views.len() > 0
    }
}

impl Iterator for Publications<'_> {
    type Item = Vec<Vec<u8>>;

    fn next(&mut self) -> Option<Vec<Vec<u8>>> {
        if let Some(status) = self.statuses.next() {
            return Some(status);
        }
        if let Some(view) = self.views.next() {
            let body = self.manager.view(view).to_owned();
            return Some(wire::encode_publication(view.category(), self.unix_time, body));
        }
        loop {
            if let Some(message) = self.others.pop_front() {
                return Some(message);
            }
            let view = *self.own_views.next()?;
            let index = OWN_VIEWS.iter().position(|own| *own == view)?;
            let manager = &mut *self.manager;
            let own = own_view(&mut manager.cache, &manager.clients, &mut manager.v05, view);
            if let Some(hosts) = manager.hosts.as_ref() {
                self.others.extend(hosts.clients_messages(index, own, self.unix_time));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{body, frames, manager_with};
    use super::super::StatusOutcome;
    use crate::core::status::Status;

    #[test]
    fn status_change_is_published_once_list_then_detail() {
        let mut manager = manager_with(&["a", "b"]);
        assert!(manager.take_publications(1.0).is_some(), "packages added");
        assert!(manager.take_publications(1.0).is_none());

        let seed = frames(&[b"plugin.1_2.0_1", br#"{"type": "plugin", "id": "a", "event": "alive"}"#]);
        let later = frames(&[
            b"plugin.status.1_2.0_1",
            br#"{"type": "plugin", "name": "b", "host": "box", "event": "dead"}"#,
        ]);
        assert_eq!(
            manager.handle_status_message(&seed),
            StatusOutcome::Changed {
                id: "domogik-a.box".into(),
                status: Status::Alive
            }
        );
        assert!(matches!(
            manager.handle_status_message(&later),
            StatusOutcome::Changed { .. }
        ));
        let mut publications = manager.take_publications(1371071844.17).unwrap();
        let (list, detail) = (publications.next().unwrap(), publications.next().unwrap());
        let rest: Vec<Vec<u8>> = publications.map(|frames| frames[0].clone()).collect();
        assert_eq!(
            rest,
            [
                b"client.list.1371071844_17.0_1".to_vec(),
                b"client.detail.1371071844_17.0_1".to_vec(),
                b"client.conversion.1371071844_17.0_1".to_vec()
            ],
            "the seed's two, then the 0.5 dialect's three"
        );
        assert_eq!(list[0], b"clients.list.1371071844_17.0_1");
        assert_eq!(detail[0], b"clients.detail.1371071844_17.0_1");
        assert_eq!(body(&list[1])["domogik-a.box"]["status"], "alive");
        assert_eq!(body(&detail[1])["domogik-b.box"]["status"], "dead");
        assert!(manager.take_publications(2.0).is_none());

        assert_eq!(manager.handle_status_message(&seed), StatusOutcome::Unchanged);
        assert!(
            manager.take_publications(3.0).is_none(),
            "same status publishes nothing"
        );
    }
}
