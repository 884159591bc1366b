//! The edge to the disk: one capped read ([`read_capped`]), one `stat`
//! fingerprint ([`Stat`]), the package scanner ([`scanner`]) and the
//! files it reads, `datatypes.json` ([`datatypes`]), the process those
//! reads run in, away from the loop ([`scanner_process`]), and the config
//! file ([`load_config`]). What the bytes mean is judged by the pure core.

// An edge of the crate: it does I/O and reads the clock for the core
// (clippy.toml forbids both in src/core/).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

pub(crate) mod datatypes;
pub(crate) mod package_files;
pub mod scanner;
pub(crate) mod scanner_process;

use crate::core::config::{
    first_non_loopback_ipv4, parse_on, Config, ConfigError, ConfigProblem, Machine, MAX_CONFIG_BYTES,
};
use crate::sys::host;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What `stat` says of a file: if this is unchanged, so is the file.
/// Times are nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) size: u64,
    pub(crate) mtime_ns: i128,
    pub(crate) ctime_ns: i128,
    pub(crate) inode: u64,
    pub(crate) device: u64,
}

impl Stat {
    pub(crate) fn of(metadata: &fs::Metadata) -> Stat {
        let nanos = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
        Stat {
            size: metadata.len(),
            mtime_ns: nanos(metadata.mtime(), metadata.mtime_nsec()),
            ctime_ns: nanos(metadata.ctime(), metadata.ctime_nsec()),
            inode: metadata.ino(),
            device: metadata.dev(),
        }
    }
}

/// The [`Stat`] of `path` (symbolic links followed), `None` when it cannot
/// be examined.
pub(crate) fn stat(path: &Path) -> Option<Stat> {
    fs::metadata(path).ok().map(|metadata| Stat::of(&metadata))
}

/// How [`read_capped`] opens its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opening {
    /// A rescan's reads (`info.json`, a package's files, `datatypes.json`):
    /// opened with `O_NONBLOCK`, so that a FIFO put in a file's place cannot
    /// make the open wait for a writer (and every rescan after it), and
    /// refused unless what was opened is a regular file (it may have been
    /// swapped since `stat` said it was one).
    RegularFileOnly,
    /// The config file, read once before the loop: whatever the path names,
    /// a FIFO waited for (`--config <(generate-config)`; tests/sandbox.rs
    /// starts the daemon on one to send signals while it starts), a device
    /// capped like a file.
    AnyFile,
}

/// Reads at most one byte more than `limit`, so that a file larger than
/// the limit (or one that grew after `stat`, or a device with no end) is
/// refused by the caller without reading it whole. The cap is on what is
/// read, not on what `stat` says.
pub(crate) fn read_capped(path: &Path, limit: u64, opening: Opening) -> io::Result<Vec<u8>> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    if opening == Opening::RegularFileOnly {
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    if opening == Opening::RegularFileOnly && !file.metadata()?.is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads and validates the config file at `path` (at most
/// [`MAX_CONFIG_BYTES`] read, whatever it is: `--config /dev/zero` is
/// refused, not read for ever).
pub(crate) fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let error = |problem: ConfigProblem| ConfigError {
        path: path.to_owned(),
        problem,
    };
    let bytes = read_capped(path, MAX_CONFIG_BYTES, Opening::AnyFile)
        .map_err(|e| error(ConfigProblem::Unreadable(e.to_string())))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(error(ConfigProblem::TooLarge));
    }
    let text = String::from_utf8(bytes).map_err(|_| error(ConfigProblem::NotUtf8))?;
    let machine = Machine {
        hostname: host::system_hostname(),
        ipv4: first_non_loopback_ipv4(&host::interface_ipv4s()),
    };
    parse_on(&text, path, &machine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_refuses_an_endless_file_after_reading_at_most_the_limit() {
        let error = load_config(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(error, "/dev/zero: the config file is larger than 1048576 bytes");
    }

    #[test]
    fn load_reports_a_missing_file() {
        let error = load_config(Path::new("/nonexistent/manager.cfg"))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("/nonexistent/manager.cfg: cannot read"), "{error}");
    }
}
