//! Interoperability with Domogik's Python side: pyzmq plays the MDP
//! client, a plugin and a user interface against the real daemon.
//!
//! pyzmq comes from the machine when `python3` has it; otherwise the test
//! installs it itself with pip into `target/tmp/pyzmq` (once, reused by
//! later runs), so `cargo test --locked` needs no step before it. When it
//! cannot (no python3, no pip, no network to PyPI) the test fails, saying
//! why and what to do: a skipped interop test would hide the one check that
//! Domogik's own library understands us (decision in docs/INSTALL.md).

use crate::util::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[test]
fn python_pyzmq_peers_talk_to_the_manager() {
    let python_path = pyzmq_path();
    let dir = TempDir::new("interop");
    let packages = copy_fixtures(&dir);
    let daemon = Daemon::start(&dir, &standalone_config(&packages, ""));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop.py");
    let mut python = Command::new("python3");
    if let Some(path) = &python_path {
        python.env("PYTHONPATH", path);
    }
    let output = python
        .arg(script)
        .args([
            &daemon.rep,
            daemon.sub.as_ref().unwrap(),
            daemon.publisher.as_ref().unwrap(),
            "testhost",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "interop.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("interop OK"), "{stdout}");
}

/// Where pyzmq is: `None` when `python3` imports it as it is, else the
/// directory pip installed it into (for `PYTHONPATH`). Panics, with the
/// reason and the fix, when there is no way to get it. Every test that
/// runs pyzmq (here, tests/bus.rs, tests/children.rs) takes it from here.
///
/// Found or installed once per test process: the tests run in parallel
/// threads of one process, and two pip runs into the same partial folder
/// (its name carries the pid) undid each other.
pub fn pyzmq_path() -> Option<PathBuf> {
    static PYZMQ: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    PYZMQ.get_or_init(find_or_install_pyzmq).clone()
}

fn find_or_install_pyzmq() -> Option<PathBuf> {
    const FIX: &str = "install python3 and pip (apt-get install -y python3-pip) or pyzmq \
                       (apt-get install -y python3-zmq), or skip this test: \
                       cargo test --locked -- --skip python_pyzmq";
    let imports_zmq = |path: Option<&Path>| -> Result<bool, std::io::Error> {
        let mut command = Command::new("python3");
        command.args(["-c", "import zmq"]);
        if let Some(path) = path {
            command.env("PYTHONPATH", path);
        }
        Ok(command.output()?.status.success())
    };
    match imports_zmq(None) {
        Ok(true) => return None,
        Ok(false) => {}
        Err(error) => panic!("the Python interop test needs python3, which does not run ({error}): {FIX}"),
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyzmq");
    if imports_zmq(Some(&target)).unwrap_or(false) {
        return Some(target);
    }
    // Not captured by the test harness: the user sees why the run waits.
    let _ = writeln!(
        std::io::stderr(),
        "interop: python3 has no pyzmq; installing it with pip into {} (once)",
        target.display()
    );
    // Into a directory of this process, renamed into place when complete,
    // so that a concurrent run never sees half an install.
    let partial = target.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    let pip = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
        ])
        .arg(&partial)
        .arg("pyzmq")
        .output();
    let failure = |output: &Output| String::from_utf8_lossy(&output.stderr).trim().to_owned();
    match pip {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "the Python interop test needs pyzmq; `python3 -m pip install --target {} pyzmq` failed:\n{}\n{FIX}",
            partial.display(),
            failure(&output)
        ),
        Err(error) => panic!("the Python interop test needs pyzmq; python3 -m pip does not run ({error}): {FIX}"),
    }
    if std::fs::rename(&partial, &target).is_err() {
        // Another run got there first: keep its copy.
        let _ = std::fs::remove_dir_all(&partial);
    }
    assert!(
        imports_zmq(Some(&target)).unwrap_or(false),
        "pip installed pyzmq into {} but python3 cannot import it: {FIX}",
        target.display()
    );
    Some(target)
}
