//! Signals as a file descriptor in the poll loop (signal-hook's self-pipe).
//!
//! Each handled signal sets its flag, then writes a byte into a socket
//! pair whose read end sits in the same `zmq_poll` as the ZeroMQ sockets.
//! The loop drains the pipe first and reads the flags after, so a signal
//! that arrives meanwhile is seen now or wakes the next poll: none is lost.

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use std::io::{self, Read};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The signals received since the last [`SignalPipe::take`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// SIGTERM or SIGINT: leave the loop.
    pub terminate: bool,
    /// SIGHUP: rescan now.
    pub rescan: bool,
}

pub struct SignalPipe {
    read_end: UnixStream,
    terminate: Arc<AtomicBool>,
    rescan: Arc<AtomicBool>,
}

impl SignalPipe {
    pub fn install() -> io::Result<SignalPipe> {
        let (read_end, write_end) = UnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        write_end.set_nonblocking(true)?;
        let terminate = Arc::new(AtomicBool::new(false));
        let rescan = Arc::new(AtomicBool::new(false));
        for (signal, flag) in [(SIGTERM, &terminate), (SIGINT, &terminate), (SIGHUP, &rescan)] {
            // Flag first: handlers run in registration order, so the flag
            // is set before the byte that wakes the loop is written.
            signal_hook::flag::register(signal, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(signal, write_end.try_clone()?)?;
        }
        Ok(SignalPipe {
            read_end,
            terminate,
            rescan,
        })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.read_end.as_raw_fd()
    }

    /// Drains the pipe, then reports and clears the flags.
    pub fn take(&mut self) -> Received {
        let mut buffer = [0u8; 64];
        loop {
            match self.read_end.read(&mut buffer) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: drained.
            }
        }
        Received {
            terminate: self.terminate.swap(false, Ordering::SeqCst),
            rescan: self.rescan.swap(false, Ordering::SeqCst),
        }
    }
}
