//! The two endpoint layouts: next to Domogik's MQ forwarder (the default,
//! derived from `[mq]`), and standalone (the manager binds).

use crate::util::commands::ipc_config;
use crate::util::*;
use std::path::Path;

/// A config for the forwarder layout: only the `[mq]` ports of `forwarder`,
/// so the sub and pub endpoints take their defaults (connect to it); the
/// request endpoint on an ephemeral loopback port. (Also used by
/// tests/faults.rs; a candidate for tests/util.)
pub fn forwarder_config(forwarder: &Forwarder, packages: &Path) -> String {
    let (xsub_port, xpub_port) = forwarder.ports();
    format!(
        "[mq]\nip = 127.0.0.1\npub_port = {xsub_port}\nsub_port = {xpub_port}\n\
         [manager]\nhost = testhost\npackages_dir = {}\nrep_endpoint = @tcp://127.0.0.1:*\n",
        packages.display()
    )
}

#[test]
fn forwarder_layout_from_mq_ports() {
    let forwarder = Forwarder::start(None);
    let (xsub_port, xpub_port) = forwarder.ports();
    let dir = TempDir::new("forwarder");
    let packages = copy_fixtures(&dir);
    let mut daemon = Daemon::start(&dir, &forwarder_config(&forwarder, &packages));
    daemon.wait_for_log(&format!("sub socket connecting to tcp://127.0.0.1:{xpub_port}"));
    daemon.wait_for_log(&format!("pub socket connecting to tcp://127.0.0.1:{xsub_port}"));

    // Plugins publish to the forwarder; user interfaces subscribe to it.
    let plugin = publisher(daemon.context(), &forwarder.xsub);
    let ui = subscriber(daemon.context(), &forwarder.xpub, "clients");
    connect_pubsub(&plugin, &ui);
    plugin
        .send_multipart(later_status("rfxcom", "testhost", "alive"), 0)
        .unwrap();
    let list = await_publication(&ui, "rfxcom alive", |p| p.category() == "clients.list");
    assert_eq!(list.body["domogik-rfxcom.testhost"]["status"], "alive");
    assert_eq!(
        daemon.clients("clients.list.get")["domogik-rfxcom.testhost"]["status"],
        "alive"
    );
}

#[test]
fn standalone_layout_binds_where_plugins_and_uis_connect() {
    let dir = TempDir::new("standalone");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, ""));
    // The manager bound all three: a plugin's PUB and a UI's SUB connect.
    let (plugin, ui) = (daemon.plugin_publisher(), daemon.ui_subscriber());
    connect_pubsub(&plugin, &ui);
    plugin.send_multipart(seed_status("ebusd", "stop-request"), 0).unwrap();
    let list = await_publication(&ui, "ebusd stop-request", |p| p.category() == "clients.list");
    assert_eq!(list.body["domogik-ebusd.testhost"]["status"], "stop-request");
}

#[test]
fn ipc_endpoints_work_too() {
    let dir = TempDir::new("ipc");
    let packages = copy_fixtures(&dir);
    let mut daemon = Daemon::start(&dir, &ipc_config(&dir, &packages, ""));
    assert_eq!(daemon.rep, format!("ipc://{}/rep", dir.path().display()));
    assert_eq!(daemon.clients("clients.list.get").as_object().unwrap().len(), 4);
    // The socket files go with the daemon (it does not close its sockets
    // at exit, so it removes them itself: src/daemon/sockets.rs).
    assert_eq!(daemon.stop().code(), Some(0));
    for name in ["sub", "pub", "rep"] {
        assert!(!dir.join(name).exists(), "ipc://.../{name} left behind");
    }
}
