//! One manager per host and bus (issue 21): `sudo dmg_manager` on a host
//! whose service runs would register a second MDP worker for the same host
//! with the broker, which then hands requests to both at random. The
//! daemon takes a lock first and refuses to start when another holds it,
//! naming its pid.
//!
//! The lock is a POSIX record lock (`fcntl(F_SETLK)`) on a file of the
//! runtime directory: the kernel drops it when its holder dies, however it
//! dies, and tells a second process the holder's pid (`F_GETLK`). The file
//! is named after the host and the request endpoint
//! (`crate::core::instance::lock_file_name`);
//! the pid is also written in it, for a human. Which directory:
//! `$RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`, the service's
//! `/run/domogik-manager`; the tests give each manager its own), else
//! `/run/domogik-manager` when it exists (so that a manager started by
//! hand meets the service's lock; the unit keeps the folder between runs,
//! `RuntimeDirectoryPreserve=yes`, so that it is there once the service
//! ran since boot, and a stop never removes a lock that a manager started
//! by hand holds), else `$XDG_RUNTIME_DIR`, else the temporary directory.
//! It is never made here: a manager run by hand on a machine without the
//! service leaves nothing in /run.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The service's runtime directory (debian/domogik-manager.service).
pub(crate) const SERVICE_RUNTIME_DIR: &str = "/run/domogik-manager";

/// Where the lock goes (see the module's doc).
pub(crate) fn runtime_dir() -> PathBuf {
    if let Some(dirs) = std::env::var_os("RUNTIME_DIRECTORY") {
        // systemd separates several directories with ':'.
        if let Some(first) = std::env::split_paths(&dirs)
            .next()
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            return first;
        }
    }
    if Path::new(SERVICE_RUNTIME_DIR).is_dir() {
        return PathBuf::from(SERVICE_RUNTIME_DIR);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::temp_dir(),
    }
}

/// The lock, held until the process exits.
#[derive(Debug)]
pub(crate) struct InstanceLock {
    pub(crate) path: PathBuf,
    _file: File,
}

/// Takes the lock `name` in `dir` for a manager described by `what` (for
/// the refusal: `host testhost on tcp://...`), or says why not: held by
/// another manager (its pid), or not possible (the system's reason).
pub(crate) fn acquire(dir: &Path, name: &str, what: &str) -> Result<InstanceLock, String> {
    let path = dir.join(name);
    let shown = path.display();
    let held_by = |pid: Option<i32>| {
        let holder = pid.map_or_else(|| "another process".to_owned(), |pid| format!("pid {pid}"));
        format!(
            "another manager runs for {what}: {holder} holds {shown} (the broker would hand requests to both \
             at random): stop it first (the service: systemctl stop domogik-manager)"
        )
    };
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            // Another user's lock file: readable is enough to see its holder.
            return Err(match File::open(&path).ok().and_then(|file| holder(&file)) {
                Some(pid) => held_by(Some(pid)),
                None => format!(
                    "cannot take the lock {shown} ({error}): is a manager of another user running? \
                     (the service: systemctl status domogik-manager)"
                ),
            });
        }
        Err(error) => return Err(format!("cannot create the lock {shown}: {error}")),
    };
    match lock(&file) {
        Ok(()) => {}
        Err(error) if matches!(error.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
            return Err(held_by(holder(&file)));
        }
        Err(error) => return Err(format!("cannot lock {shown}: {error}")),
    }
    // For a human who looks: the holder's pid. The lock is what counts.
    let _ = file.set_len(0).and_then(|()| writeln!(&file, "{}", std::process::id()));
    Ok(InstanceLock { path, _file: file })
}

fn whole_file(kind: libc::c_int) -> libc::flock {
    // SAFETY: flock is plain data; all-zero is a valid value of it.
    let mut region: libc::flock = unsafe { std::mem::zeroed() };
    region.l_type = kind as libc::c_short;
    region.l_whence = libc::SEEK_SET as libc::c_short;
    region
}

/// A write lock on the whole file, without waiting.
fn lock(file: &File) -> io::Result<()> {
    let region = whole_file(libc::F_WRLCK);
    // SAFETY: fcntl reads the flock we give it, on a descriptor we own.
    match unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &region) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The pid of the process holding a lock on the file, if any.
fn holder(file: &File) -> Option<i32> {
    let mut region = whole_file(libc::F_WRLCK);
    // SAFETY: fcntl writes into the flock we give it.
    let status = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut region) };
    (status == 0 && region.l_type != libc::F_UNLCK as libc::c_short && region.l_pid > 0).then_some(region.l_pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder() {
        // The holder must be another process: POSIX locks are per process.
        let dir = std::env::temp_dir().join(format!("dmg-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut holder = std::process::Command::new("python3")
            .args([
                "-c",
                "import fcntl, sys; f = open(sys.argv[1], 'w'); fcntl.lockf(f, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            ])
            .arg(dir.join("manager-x.lock"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn();
        let Ok(child) = holder.as_mut() else {
            eprintln!("SKIPPED: no python3 to hold the lock");
            return;
        };
        let mut line = String::new();
        io::BufRead::read_line(&mut io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "held");
        let refused = acquire(&dir, "manager-x.lock", "host x").unwrap_err();
        assert!(
            refused.contains(&format!("pid {}", child.id())) && refused.contains("host x"),
            "{refused}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        let taken = acquire(&dir, "manager-x.lock", "host x").unwrap();
        assert_eq!(
            std::fs::read_to_string(&taken.path).unwrap().trim(),
            std::process::id().to_string()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
