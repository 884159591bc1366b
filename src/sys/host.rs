//! This machine, as the config's defaults need it: its hostname
//! (`gethostname(2)`) and the IPv4 addresses of its interfaces
//! (`getifaddrs(3)`). Judging them is pure (`core::config`).

use std::net::Ipv4Addr;

/// This machine's hostname, as the kernel knows it (`gethostname(2)`: the
/// UTS name, which every sandbox keeps readable; `/proc/sys/kernel/hostname`
/// is hidden by systemd's `ProcSubset=pid`). Empty if the call fails or the
/// name is not UTF-8.
pub(crate) fn system_hostname() -> String {
    // HOST_NAME_MAX is 64 on Linux; the rest is room for the NUL.
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer given.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return String::new();
    }
    // POSIX leaves a truncated name without its NUL: take what is there.
    let name = buffer.split(|&byte| byte == 0).next().unwrap_or(&[]);
    std::str::from_utf8(name).unwrap_or("").trim().to_owned()
}

/// The IPv4 addresses of this machine's interfaces that are up, in the
/// kernel's order (`getifaddrs(3)`); empty if the call fails.
pub(crate) fn interface_ipv4s() -> Vec<(std::net::Ipv4Addr, bool)> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below;
    // each node and its address are valid until freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut node = list;
        while let Some(entry) = node.as_ref() {
            let up = entry.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
            let loopback = entry.ifa_flags & (libc::IFF_LOOPBACK as libc::c_uint) != 0;
            if let Some(address) = entry.ifa_addr.as_ref() {
                if up && i32::from(address.sa_family) == libc::AF_INET {
                    let inet = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    found.push((std::net::Ipv4Addr::from(u32::from_be(inet.sin_addr.s_addr)), loopback));
                }
            }
            node = entry.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

/// The IPv4 address to bind for `interface` and that interface's
/// broadcast address: `lo`, `eth0`...; `*` is Domogik's: the first
/// interface that is not a loopback one, or the loopback when it is the
/// only one.
pub(crate) fn interface_address(interface: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let found = interfaces();
    let pick = match interface {
        "*" => found
            .iter()
            .find(|entry| !entry.address.is_loopback())
            .or_else(|| found.first()),
        name => found.iter().find(|entry| entry.name == name),
    };
    match pick {
        Some(entry) => Ok((
            entry.address,
            Ipv4Addr::from(u32::from(entry.address) | !u32::from(entry.netmask)),
        )),
        None => Err(format!(
            "no such interface with an IPv4 address that is up (there are: {})",
            found
                .iter()
                .map(|entry| entry.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

struct Interface {
    name: String,
    address: Ipv4Addr,
    netmask: Ipv4Addr,
}

/// The interfaces that are up with an IPv4 address, in the kernel's order.
fn interfaces() -> Vec<Interface> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below;
    // each node, its name and its addresses are valid until freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut node = list;
        while let Some(entry) = node.as_ref() {
            let up = entry.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
            let inet = |pointer: *mut libc::sockaddr| {
                pointer
                    .as_ref()
                    .filter(|address| i32::from(address.sa_family) == libc::AF_INET)
                    .map(|_| Ipv4Addr::from(u32::from_be((*(pointer as *const libc::sockaddr_in)).sin_addr.s_addr)))
            };
            if let (true, Some(address), false) = (up, inet(entry.ifa_addr), entry.ifa_name.is_null()) {
                found.push(Interface {
                    name: std::ffi::CStr::from_ptr(entry.ifa_name).to_string_lossy().into_owned(),
                    address,
                    netmask: inet(entry.ifa_netmask).unwrap_or(Ipv4Addr::BROADCAST),
                });
            }
            node = entry.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_interface_binds_127_0_0_1_and_broadcasts_on_127_255_255_255() {
        assert_eq!(
            interface_address("lo"),
            Ok((Ipv4Addr::LOCALHOST, Ipv4Addr::new(127, 255, 255, 255)))
        );
        let error = interface_address("nope0").unwrap_err();
        assert!(
            error.starts_with("no such interface") && error.contains("lo"),
            "{error}"
        );
        assert!(interface_address("*").is_ok());
    }
}
