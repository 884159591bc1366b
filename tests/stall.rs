//! A packages_dir that stalls (an SD card under write load, a hung NFS or
//! SMB server): the manager answers from what it knows, says once that a
//! scan is stuck, and stops at once on SIGTERM.
//!
//! The slow disk is a real FUSE folder, tests/stallfs.py (fusepy over
//! Debian's libfuse2, package `fuse`), whose operations wait while told to.
//! fusepy is installed by the test with pip into `target/tmp/fusepy` when
//! `python3` lacks it. Skipped, saying why, where /dev/fuse, libfuse2,
//! python3 or the right to mount are missing (.ci/run installs `fuse`, so
//! CI runs it).

use crate::util::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// What the manager says of a scan stuck longer than its limit.
const STUCK: &str = "has not finished after";

/// A FUSE view of a backing folder that stalls on order.
struct StallFs {
    child: Child,
    stdin: Option<ChildStdin>,
    said: Lines,
    mountpoint: PathBuf,
}

impl StallFs {
    /// Mounts a view of `backing` at `mountpoint`; `None` (said on stderr)
    /// when this machine cannot.
    fn mount(test: &str, backing: &Path, mountpoint: &Path) -> Option<StallFs> {
        let skip = |why: String| {
            eprintln!("SKIPPED stall::{test}: {why}");
            None
        };
        if !Path::new("/dev/fuse").exists() {
            return skip("no /dev/fuse on this machine".into());
        }
        let fusepy = match fusepy_path() {
            Ok(path) => path,
            Err(why) => return skip(why),
        };
        std::fs::create_dir_all(mountpoint).unwrap();
        let mut command = Command::new("python3");
        if let Some(path) = fusepy {
            command.env("PYTHONPATH", path);
        }
        let mut child = command
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/stallfs.py"))
            .arg(backing)
            .arg(mountpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let said = Lines::read(child.stdout.take().unwrap());
        let errors = Lines::read(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        let mut fs = StallFs {
            child,
            stdin,
            said,
            mountpoint: mountpoint.to_owned(),
        };
        if fs
            .said
            .find_from(0, Instant::now() + DEADLINE, |line| line == "mounted")
            .is_none()
        {
            // Let its error out (no right to mount, no libfuse2...).
            let _ = exit_within(&mut fs.child, Duration::from_secs(2));
            return skip(format!(
                "tests/stallfs.py could not mount: {}",
                errors.all().join(" | ")
            ));
        }
        Some(fs)
    }

    fn order(&mut self, order: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{order}").unwrap();
        stdin.flush().unwrap();
    }

    /// Every operation waits from now on; returns once one does (a
    /// process is then stuck in the kernel on this folder).
    fn stall_and_wait_for_a_victim(&mut self) -> String {
        let from = self.said.all().len();
        self.order("stall");
        match self
            .said
            .find_from(from, Instant::now() + DEADLINE, |line| line.starts_with("blocked "))
        {
            Some((_, line)) => line,
            None => panic!(
                "nothing touched the stalled folder within {DEADLINE:?}: {:?}",
                self.said.all()
            ),
        }
    }
}

impl StallFs {
    /// Stalls, then runs `start` (which touches the folder, or starts what
    /// will) and returns what it gave once an operation waits.
    fn stall_and_wait_for_a_victim_of<T>(&mut self, start: impl FnOnce() -> T) -> T {
        let from = self.said.all().len();
        self.order("stall");
        let started = start();
        match self
            .said
            .find_from(from, Instant::now() + DEADLINE, |line| line.starts_with("blocked "))
        {
            Some(_) => started,
            None => panic!(
                "nothing touched the stalled folder within {DEADLINE:?}: {:?}",
                self.said.all()
            ),
        }
    }
}

impl Drop for StallFs {
    fn drop(&mut self) {
        // quit (releasing what waits) and a lazy unmount, whatever happens.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        if exit_within(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let path = std::ffi::CString::new(self.mountpoint.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: umount2 reads a NUL-terminated path; failure is harmless.
        unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Where fusepy is: `Ok(None)` when `python3` imports it as it is, else
/// the folder pip installed it into; `Err` says why there is none.
fn fusepy_path() -> Result<Option<PathBuf>, String> {
    static FUSEPY: std::sync::OnceLock<Result<Option<PathBuf>, String>> = std::sync::OnceLock::new();
    FUSEPY.get_or_init(find_or_install_fusepy).clone()
}

fn find_or_install_fusepy() -> Result<Option<PathBuf>, String> {
    // fusepy loads libfuse2 when imported: this checks both.
    let imports = |path: Option<&Path>| -> Result<(bool, String), String> {
        let mut command = Command::new("python3");
        command.args(["-c", "import fuse"]);
        if let Some(path) = path {
            command.env("PYTHONPATH", path);
        }
        let output = command.output().map_err(|e| format!("python3 does not run ({e})"))?;
        Ok((
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    };
    if imports(None)?.0 {
        return Ok(None);
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fusepy");
    if !target.join("fuse.py").exists() {
        let partial = target.with_extension(format!("partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&partial);
        let pip = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&partial)
            .arg("fusepy")
            .output()
            .map_err(|e| format!("python3 -m pip does not run ({e})"))?;
        if !pip.status.success() {
            return Err(format!(
                "pip cannot install fusepy: {}",
                String::from_utf8_lossy(&pip.stderr).trim()
            ));
        }
        if std::fs::rename(&partial, &target).is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
    }
    match imports(Some(&target))? {
        (true, _) => Ok(Some(target)),
        (false, why) => Err(format!(
            "fusepy does not load (libfuse2 missing? apt-get install fuse): {}",
            why.lines().last().unwrap_or_default()
        )),
    }
}

/// A config on the stalling folder, rescanned every second.
fn config_on(packages: &Path) -> String {
    standalone_config(packages, "rescan_interval = 1\n")
}

/// One request on a fresh socket that must be answered within `within`:
/// the reply's body.
fn ask_within(daemon: &Daemon, action: &str, body: &str, within: Duration) -> Result<serde_json::Value, String> {
    let socket = daemon.context().socket(zmq::REQ).unwrap();
    socket.set_linger(0).unwrap();
    socket.set_rcvtimeo(within.as_millis() as i32).unwrap();
    socket.connect(&daemon.rep).unwrap();
    socket.send_multipart([action.as_bytes(), body.as_bytes()], 0).unwrap();
    match socket.recv_multipart(0) {
        Ok(frames) if frames.len() == 2 => Ok(body_of(&frames[1])),
        Ok(frames) => Err(format!("unexpected reply {frames:?}")),
        Err(e) => Err(format!("no reply to {action} within {within:?}: {e}")),
    }
}

/// `clients.list.get`, answered within `within`: the clients.
fn list_within(daemon: &Daemon, within: Duration) -> Result<serde_json::Value, String> {
    ask_within(daemon, "clients.list.get", "{}", within).map(|body| body["clients"].clone())
}

#[test]
fn a_stalled_packages_dir_leaves_requests_answered_and_sigterm_immediate() {
    let dir = TempDir::new("stall");
    let backing = copy_fixtures(&dir);
    let mountpoint = dir.join("mnt");
    let Some(mut fs) = StallFs::mount(
        "a_stalled_packages_dir_leaves_requests_answered_and_sigterm_immediate",
        &backing,
        &mountpoint,
    ) else {
        return;
    };
    let mut daemon = Daemon::start(&dir, &config_on(&mountpoint));
    assert_eq!(daemon.clients("clients.list.get").as_object().unwrap().len(), 4);

    // The disk stalls; the next rescan gets stuck in the kernel.
    let victim = fs.stall_and_wait_for_a_victim();
    let stalled_at = Instant::now();
    // Every request is answered at once, from the known state, for longer
    // than the stuck-scan limit (a request every 100 ms, 1 s each at most).
    let mut answered = 0;
    while stalled_at.elapsed() < Duration::from_secs(7) {
        let clients = list_within(&daemon, Duration::from_secs(1))
            .unwrap_or_else(|e| panic!("request {} after {victim}: {e}", answered + 1));
        assert_eq!(clients.as_object().unwrap().len(), 4, "{clients}");
        answered += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    // The stuck scan is said, once.
    daemon.wait_for_log(STUCK);
    // A start request is judged from the last scan too (the fixture has
    // no bin/rfxcom.py), not from a stat that would wait for the disk.
    let start = r#"{"type": "plugin", "name": "rfxcom", "host": "testhost"}"#;
    let refusal = ask_within(&daemon, "plugin.start.do", start, Duration::from_secs(1)).unwrap();
    assert_eq!(refusal["status"], false, "{refusal}");
    assert!(
        refusal["reason"].as_str().unwrap().contains("bin/rfxcom.py is missing"),
        "{refusal}"
    );

    // A package installed meanwhile is found once the disk answers again.
    let new = backing.join("plugin_late");
    std::fs::create_dir(&new).unwrap();
    std::fs::write(
        new.join("info.json"),
        r#"{"identity": {"type": "plugin", "name": "late"}}"#,
    )
    .unwrap();
    fs.order("release");
    daemon.await_client(
        "clients.list.get",
        "domogik-late.testhost",
        "found after the stall",
        |c| !c.is_null(),
    );
    let stuck_lines = daemon.log().iter().filter(|line| line.contains(STUCK)).count();
    assert_eq!(stuck_lines, 1, "said once: {:#?}", daemon.log());

    // Stuck again: SIGTERM ends the manager within a second all the same.
    fs.stall_and_wait_for_a_victim();
    let signalled = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(1));
    assert!(status.success(), "{status:?}");
    eprintln!(
        "stalled folder: {answered} requests answered during the stall, exit {:?} after SIGTERM",
        signalled.elapsed()
    );
}

#[test]
fn a_manager_started_on_a_stalled_packages_dir_serves_and_stops_at_once() {
    let dir = TempDir::new("stall-start");
    let backing = copy_fixtures(&dir);
    let mountpoint = dir.join("mnt");
    let Some(mut fs) = StallFs::mount(
        "a_manager_started_on_a_stalled_packages_dir_serves_and_stops_at_once",
        &backing,
        &mountpoint,
    ) else {
        return;
    };
    fs.order("stall");
    // Ready (and READY=1 for systemd) once the first scan is taken for
    // stuck; requests are answered meanwhile, with what is known: nothing.
    let mut daemon = Daemon::start(&dir, &config_on(&mountpoint));
    daemon.wait_for_log(STUCK);
    let clients = list_within(&daemon, Duration::from_secs(1)).unwrap();
    assert_eq!(clients.as_object().unwrap().len(), 0, "{clients}");
    daemon.signal("TERM");
    assert!(daemon.wait_exit(Duration::from_secs(1)).success());
}

/// The manager's packages scanner, from /proc: its pid.
fn scanner_of(manager: u32) -> Option<u32> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let scanner = cmdline.split(|&b| b == 0).nth(1) == Some(b"--packages-scanner");
        (ppid == manager && scanner).then_some(pid)
    })
}

#[test]
fn a_scanner_that_dies_is_started_again_and_misses_no_removal() {
    let dir = TempDir::new("scanner-dies");
    let packages = copy_fixtures(&dir);
    let mut daemon = Daemon::start(&dir, &standalone_config(&packages, "rescan_interval = 3600\n"));
    let first = scanner_of(daemon.pid()).expect("a packages scanner runs");
    send_signal(first, "KILL");
    // The package goes while no scanner runs; the next one must say so.
    std::fs::remove_dir_all(packages.join("plugin_ebusd")).unwrap();
    let before = daemon.log().len();
    daemon.signal("HUP");
    daemon.wait_for_new_log("package removed: domogik-ebusd.testhost", before);
    let second = scanner_of(daemon.pid()).expect("a new packages scanner runs");
    assert_ne!(first, second);
    assert_eq!(daemon.clients("clients.list.get").as_object().unwrap().len(), 3);
    // Its end was seen (said at error, or found dead when asked), and
    // never taken for a stranger's.
    let log = daemon.log();
    assert!(
        log.iter()
            .any(|line| line.contains("packages scanner") && line.contains("started again")),
        "{log:#?}"
    );
    assert!(
        !log.iter().any(|line| line.contains("not one of the plugins")),
        "{log:#?}"
    );
    assert_eq!(daemon.stop().code(), Some(0));
}

#[test]
fn sigterm_while_the_first_scan_is_stuck_exits_at_once() {
    let dir = TempDir::new("stall-first");
    let backing = copy_fixtures(&dir);
    let mountpoint = dir.join("mnt");
    let Some(mut fs) = StallFs::mount(
        "sigterm_while_the_first_scan_is_stuck_exits_at_once",
        &backing,
        &mountpoint,
    ) else {
        return;
    };
    let mut daemon = fs.stall_and_wait_for_a_victim_of(|| {
        let path = dir.join("manager.cfg");
        std::fs::write(&path, config_on(&mountpoint)).unwrap();
        Daemon::spawn(&path)
    });
    // Before ready: the first scan is stuck in the kernel.
    assert!(
        !daemon.log().iter().any(|line| line.contains("ready:")),
        "{:#?}",
        daemon.log()
    );
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(1));
    assert!(status.success(), "{status:?}: {:#?}", daemon.log());
}
