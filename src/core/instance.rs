//! One manager per host and bus: the name of the lock that says so
//! (taken by `crate::sys::instance`). Pure.

use crate::core::config::{Direction, Endpoint};

/// The lock's file name for a manager of `host` whose requests come
/// through `rep`; `None` when no lock is needed: a TCP endpoint the
/// manager binds refuses a second manager by itself (the address is in
/// use), unlike an `ipc://` path (libzmq takes it over) or a broker (it
/// takes every worker).
pub(crate) fn lock_file_name(host: &str, rep: &Endpoint) -> Option<String> {
    if rep.direction == Direction::Bind && rep.address.starts_with("tcp://") {
        return None;
    }
    let key = format!("{host}@{}", rep.address);
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '@' {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A long ipc:// path: cut, the whole key's hash keeping names apart.
    if name.len() > 120 {
        name.truncate(100);
        name.push_str(&format!("-{:016x}", fnv1a(key.as_bytes())));
    }
    Some(format!("manager-{name}.lock"))
}

/// FNV-1a, 64 bits: a stable hash (std's is seeded per process).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_is_named_after_host_and_request_endpoint_when_one_is_needed() {
        let broker = Endpoint::connect("tcp://127.0.0.1:40410");
        assert_eq!(
            lock_file_name("domohost", &broker).as_deref(),
            Some("manager-domohost@tcp___127.0.0.1_40410.lock")
        );
        assert_ne!(lock_file_name("other", &broker), lock_file_name("domohost", &broker));
        assert_eq!(
            lock_file_name("domohost", &Endpoint::bind("tcp://127.0.0.1:40410")),
            None
        );
        let ipc = lock_file_name("h", &Endpoint::bind("ipc:///run/domogik-manager/rep")).unwrap();
        assert_eq!(ipc, "manager-h@ipc____run_domogik-manager_rep.lock");
        let long = |tail: &str| lock_file_name("h", &Endpoint::bind(format!("ipc:///{}{tail}", "x".repeat(200))));
        let (a, b) = (long("a").unwrap(), long("b").unwrap());
        assert!(a.len() < 140 && a != b, "{a} {b}");
    }
}
