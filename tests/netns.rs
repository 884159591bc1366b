//! A link cut without a FIN (a peer's host losing power, a cable pulled):
//! the manager runs in its own network namespace, joined to the test's by
//! a veth pair (addresses from 198.18.0.0/15, reserved for tests), and the
//! pair is cut and restored. Needs root (CI runs as root); prints a skip
//! line otherwise.

use crate::util::*;
use std::process::Command;

/// A network namespace and a veth pair into it, removed when dropped.
struct Namespace {
    name: String,
    host_ip: String,
    inner_link: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()))
    }
}

impl Namespace {
    /// Namespace `index` (0 or 1) for test `test`, or `None` after a
    /// SKIPPED line: not root, or a machine without iproute2 or without
    /// the right to make namespaces (the fresh-machine check's chroot).
    /// Each test has a namespace of its own, so two never clash.
    fn for_test(test: &str, index: u32) -> Option<Namespace> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED netns::{test}: needs root (ip netns)");
            return None;
        }
        Namespace::create(index)
            .map_err(|why| eprintln!("SKIPPED netns::{test}: {why}"))
            .ok()
    }

    /// Namespace `index` (0 or 1) of this test process.
    fn create(index: u32) -> Result<Namespace, String> {
        let pid = std::process::id();
        // One /30 of 198.18.0.0/15 per test and test process: parallel
        // runs and the tests of one run differ.
        let base = (198u32 << 24 | 18 << 16) + ((pid % 16384) * 2 + index % 2) * 4;
        let addr = |n: u32| std::net::Ipv4Addr::from(base + n).to_string();
        let (host_ip, inner_ip) = (addr(1), addr(2));
        let namespace = Namespace {
            name: format!("dmgtest{pid}x{index}"),
            host_ip: host_ip.clone(),
            inner_link: format!("dmgn{pid}x{index}"),
        };
        let host_link = format!("dmgh{pid}x{index}");
        ip(&["netns", "add", &namespace.name])?;
        ip(&["link", "add", &host_link, "type", "veth", "peer", "name", &namespace.inner_link])?;
        ip(&["link", "set", &namespace.inner_link, "netns", &namespace.name])?;
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_link])?;
        ip(&["link", "set", &host_link, "up"])?;
        namespace.exec(&["addr", "add", &format!("{inner_ip}/30"), "dev", &namespace.inner_link])?;
        namespace.exec(&["link", "set", &namespace.inner_link, "up"])?;
        namespace.exec(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// How to start the manager inside the namespace, with the test's
    /// heartbeats.
    fn manager_command(&self) -> impl Fn(&std::path::Path) -> Command {
        let name = self.name.clone();
        move |path| {
            let mut command = Command::new("ip");
            command
                .args(["netns", "exec", &name, BIN, "--config"])
                .arg(path)
                .env("DMG_MANAGER_TEST_HEARTBEAT_MS", TEST_HEARTBEAT_MS.to_string())
                .env("RUNTIME_DIRECTORY", path.parent().unwrap_or(std::path::Path::new(".")))
                .env_remove("JOURNAL_STREAM")
                .env_remove("NOTIFY_SOCKET")
                .stdin(std::process::Stdio::null());
            command
        }
    }

    fn exec(&self, args: &[&str]) -> Result<(), String> {
        ip(&[&["-n", self.name.as_str()][..], args].concat())
    }

    /// Cuts (or restores) the link inside the namespace: no FIN, no RST
    /// reaches either side, packets just vanish.
    fn set_link(&self, up: bool) {
        self.exec(&["link", "set", &self.inner_link, if up { "up" } else { "down" }]).unwrap();
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = ip(&["netns", "del", &self.name]);
    }
}

#[test]
fn a_link_cut_without_a_fin_comes_back_and_requests_and_statuses_flow_again() {
    let Some(namespace) = Namespace::for_test("a_link_cut_without_a_fin_comes_back_and_requests_and_statuses_flow_again", 0) else {
        return;
    };
    // The broker and the forwarder on the test's side of the veth; the
    // plugin, the UI and the client reach them on the same address, so the
    // cut only separates the manager.
    let broker = TestBroker::start_on(&namespace.host_ip, None);
    let forwarder = Forwarder::start_on(&namespace.host_ip, None);
    let (xsub_port, xpub_port) = forwarder.ports();
    let dir = TempDir::new("netns");
    let packages = copy_fixtures(&dir);
    let config = format!(
        "[mq]\nip = {}\nreq_rep_port = {}\npub_port = {xsub_port}\nsub_port = {xpub_port}\n\
         [manager]\nhost = testhost\npackages_dir = {}\nstatus_interval = 0.5\n",
        namespace.host_ip,
        broker.port(),
        packages.display()
    );
    let mut daemon = Daemon::start_with(&dir, &config, namespace.manager_command());
    let plugin = publisher(daemon.context(), &forwarder.xsub);
    let ui = subscriber(daemon.context(), &forwarder.xpub, "clients");
    connect_pubsub(&plugin, &ui);
    await_broker_clients(daemon.context(), &broker, "clients.list.get");

    let before = daemon.log().len();
    namespace.set_link(false);
    // Noticed without any FIN: by our own status not coming back through
    // the forwarder (SUB, PUB: new sockets; it goes out every 0.5 s here),
    // and by the MDP heartbeat (the worker's DEALER).
    daemon.wait_for_new_log("the forwarder did not relay our status back", before);
    daemon.wait_for_new_log("is silent; reconnecting and registering again", before);
    namespace.set_link(true);
    daemon.wait_for_new_log("sub socket connected again", before);
    daemon.wait_for_new_log("pub socket connected again", before);
    // The questions to dbmgr wait for the broker: their DEALER, closed
    // while it was taken for dead, is opened again once it answers.
    daemon.wait_for_new_log("dbmgr socket connected to", before);
    // Registered again with the broker: a client's request is answered.
    await_broker_clients(daemon.context(), &broker, "clients.list.get");
    connect_pubsub(&plugin, &ui);
    plugin.send_multipart(later_status("ebusd", "testhost", "alive"), 0).unwrap();
    await_publication(&ui, "ebusd alive after the cut", |p| {
        p.category() == "clients.list" && p.body["domogik-ebusd.testhost"]["status"] == "alive"
    });
}

#[test]
fn a_dealer_that_tcp_connected_to_itself_lets_the_connection_go() {
    let Some(namespace) = Namespace::for_test("a_dealer_that_tcp_connected_to_itself_lets_the_connection_go", 1) else {
        return;
    };
    // No broker on the host, and the broker's port inside a narrowed
    // ephemeral range (a namespace's own sysctl; odd ports, which Linux
    // gives connects first): a connect to 40411 is soon given 40411 as its
    // source, and TCP connects the DEALER to itself. What it then hears is
    // its own READY. (Domogik's 40410 is inside the default range too.)
    // (/proc/sys/net is the namespace's own; no procps needed.)
    let range = ["sh", "-c", "echo 40411 40413 > /proc/sys/net/ipv4/ip_local_port_range"];
    let status = Command::new("ip").args(["netns", "exec", &namespace.name]).args(range).status().unwrap();
    assert!(status.success(), "sysctl ip_local_port_range in the namespace");
    let dir = TempDir::new("netns-self");
    let packages = copy_fixtures(&dir);
    let config = format!(
        "[mq]\nip = 127.0.0.1\nreq_rep_port = 40411\npub_port = 40420\nsub_port = 40421\n\
         [manager]\nhost = testhost\npackages_dir = {}\nlog_level = debug\n",
        packages.display()
    );
    let mut daemon = Daemon::start_with(&dir, &config, namespace.manager_command());
    daemon.wait_for_log("got its own READY back");
    // The connection to itself is let go at once (a later connect may take
    // the port again for a moment: look until a deadline for a moment
    // without one). Kept, it would hold Domogik's port against its broker
    // for as long as it lasts. (What is left after the close is a TCP
    // TIME-WAIT of 60 s, docs/INSTALL.md.)
    let self_connected = |ss: &str| {
        ss.lines()
            .any(|line| line.starts_with("ESTAB") && line.matches("127.0.0.1:40411").count() == 2)
    };
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let output = Command::new("ip").args(["netns", "exec", &namespace.name, "ss", "-tna"]).output().unwrap();
        let ss = String::from_utf8_lossy(&output.stdout).into_owned();
        if !self_connected(&ss) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still connected to itself:\n{ss}\n{}", daemon.log().join("\n"));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = daemon.log().join("\n");
    assert!(!log.contains("answers (service registered)"), "took itself for a broker:\n{log}");
}
