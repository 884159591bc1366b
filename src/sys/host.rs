//! This machine, as the config's defaults need it: its hostname
//! (`gethostname(2)`) and the IPv4 addresses of its interfaces
//! (`getifaddrs(3)`). Judging them is pure (`core::config`).

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
