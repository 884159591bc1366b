//! Interoperability with Domogik's Python side: pyzmq plays the MDP
//! client, a plugin and a user interface against the real daemon.

use crate::util::*;
use std::process::Command;

#[test]
fn python_pyzmq_peers_talk_to_the_manager() {
    let dir = TempDir::new("interop");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, ""));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.py");
    let output = Command::new("python3")
        .arg(script)
        .args([
            &daemon.rep,
            daemon.sub.as_ref().unwrap(),
            daemon.publisher.as_ref().unwrap(),
            "testhost",
        ])
        .output()
        .expect("python3 runs (the README and .ci/run install python3 with pyzmq)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "interop.py failed{}:\n{stdout}\n{stderr}",
        if stderr.contains("No module named 'zmq'") {
            " (install pyzmq: pip install pyzmq)"
        } else {
            ""
        }
    );
    assert!(stdout.contains("interop OK"), "{stdout}");
}
