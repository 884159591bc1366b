//! systemd's readiness protocol (`sd_notify`), in a few lines of std.
//!
//! With `Type=notify`, systemd waits for `READY=1` before it calls the
//! service started, and shows `RELOADING=1` / `STOPPING=1` in its status.
//! Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::os::unix::net::UnixDatagram;

pub const READY: &str = "READY=1";
pub const RELOADING: &str = "RELOADING=1";
pub const STOPPING: &str = "STOPPING=1";

/// Sends `state` to systemd if it listens. Failures are logged at debug
/// level only: a lost notification must never stop the daemon.
pub fn notify(state: &str) {
    let Some(socket_path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(error) = send(&socket_path, state) {
        crate::debug!("sd_notify {state:?} failed: {error}");
    }
}

fn send(socket_path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    let bytes = socket_path.as_bytes();
    // A leading '@' names a socket in the abstract namespace.
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &address)?;
    } else {
        socket.send_to(state.as_bytes(), socket_path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("dmg-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.as_os_str(), READY).unwrap();
        let mut buffer = [0u8; 64];
        let n = listener.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
