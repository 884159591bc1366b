//! Signals as a file descriptor in the poll loop (signal-hook's self-pipe):
//! SIGTERM and SIGINT (stop), SIGHUP (rescan), SIGCHLD (a plugin exited).
//!
//! Each handled signal sets its flag, then writes a byte into a socket
//! pair whose read end sits in the same `zmq_poll` as the ZeroMQ sockets.
//! The loop drains the pipe first and reads the flags after, so a signal
//! that arrives meanwhile is seen now or wakes the next poll: none is lost.
//!
//! The handled signals are blocked in this thread except while it waits in
//! [`SignalPipe::while_waiting`]. A handler that runs while libzmq works on a
//! socket makes the call fail with `EINTR` (even a non-blocking one: libzmq
//! checks its command mailbox first), and the `zmq` crate's multipart send and
//! receive give up mid-message: a SIGHUP storm cost clients their replies.
//! Blocked, a signal stays pending until the next wait unblocks it; its handler
//! then runs at once and its byte makes that poll return: the wake-up is not
//! lost. libzmq's own threads block every signal themselves.
//!
//! [`block_early`] blocks them from the first line of `main`, before the
//! config is read: without it a SIGHUP in the first milliseconds (before
//! [`SignalPipe::install`]) took its default action and killed the daemon.
//! Held pending, it is handled at the loop's first wait. What no code of
//! ours can cover is the dynamic loader's work before `main` (a fraction of
//! a millisecond); systemd sends `ExecReload=` only once the service is
//! READY.

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The signals received since the last [`SignalPipe::take`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// SIGTERM or SIGINT: leave the loop.
    pub terminate: bool,
    /// SIGHUP: rescan now.
    pub rescan: bool,
    /// SIGCHLD: a plugin process exited (or more than one): reap them.
    pub child_exited: bool,
}

/// The signals the daemon handles: SIGTERM and SIGINT stop, SIGHUP rescans,
/// SIGCHLD reaps (a plugin's exit must not interrupt libzmq either).
const HANDLED: [libc::c_int; 4] = [SIGTERM, SIGINT, SIGHUP, SIGCHLD];

/// Blocks the handled signals in the calling thread (and the threads it
/// starts later): call it first in `main`. A failure (only for an invalid
/// set) leaves them with their default action, as before.
pub fn block_early() {
    let _ = set_mask(libc::SIG_BLOCK, &signal_set(HANDLED));
}

/// Gives the handled signals back to their default action, pending ones
/// included: for the commands that do not install a [`SignalPipe`] (a
/// `clients` that waits for a manager ends on Ctrl-C at once).
pub(crate) fn unblock() {
    let _ = set_mask(libc::SIG_UNBLOCK, &signal_set(HANDLED));
}

pub(crate) struct SignalPipe {
    read_end: UnixStream,
    terminate: Arc<AtomicBool>,
    rescan: Arc<AtomicBool>,
    child_exited: Arc<AtomicBool>,
    /// The handled signals, as the set `pthread_sigmask` takes: built once,
    /// used twice per wait.
    handled: libc::sigset_t,
}

impl SignalPipe {
    pub(crate) fn install() -> io::Result<SignalPipe> {
        let (read_end, write_end) = UnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        write_end.set_nonblocking(true)?;
        let terminate = Arc::new(AtomicBool::new(false));
        let rescan = Arc::new(AtomicBool::new(false));
        let child_exited = Arc::new(AtomicBool::new(false));
        let signals = [
            (SIGTERM, &terminate),
            (SIGINT, &terminate),
            (SIGHUP, &rescan),
            (SIGCHLD, &child_exited),
        ];
        for (signal, flag) in signals {
            // Flag first: handlers run in registration order, so the flag
            // is set before the byte that wakes the loop is written.
            signal_hook::flag::register(signal, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(signal, write_end.try_clone()?)?;
        }
        let handled = signal_set(HANDLED);
        set_mask(libc::SIG_BLOCK, &handled)?;
        Ok(SignalPipe {
            read_end,
            terminate,
            rescan,
            child_exited,
            handled,
        })
    }

    /// Runs `wait` (a poll that includes [`SignalPipe::fd`]) with the handled
    /// signals unblocked: the only place where their handlers may run.
    pub(crate) fn while_waiting<T>(&self, wait: impl FnOnce() -> T) -> T {
        // Failing to unblock would only cost the wake-up (the byte never
        // comes): the poll's timeout still ends it. Failing to block again
        // brings back EINTR, which the callers survive, if less gracefully.
        let _ = set_mask(libc::SIG_UNBLOCK, &self.handled);
        let outcome = wait();
        let _ = set_mask(libc::SIG_BLOCK, &self.handled);
        outcome
    }

    /// The descriptor to poll for readability.
    pub(crate) fn fd(&self) -> RawFd {
        self.read_end.as_raw_fd()
    }

    /// Drains the pipe, then reports and clears the flags.
    pub(crate) fn take(&mut self) -> Received {
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
            child_exited: self.child_exited.swap(false, Ordering::SeqCst),
        }
    }
}

/// The set of `signals`, for `pthread_sigmask`.
fn signal_set<const N: usize>(signals: [libc::c_int; N]) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set it is given (it fails only on
    // a null pointer); sigaddset only writes into it (it fails only on an
    // invalid signal number, and these are signal-hook's constants).
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        for signal in signals {
            libc::sigaddset(set.as_mut_ptr(), signal);
        }
        set.assume_init()
    }
}

/// Blocks (`SIG_BLOCK`) or unblocks (`SIG_UNBLOCK`) `set` in the calling thread.
fn set_mask(how: libc::c_int, set: &libc::sigset_t) -> io::Result<()> {
    // SAFETY: pthread_sigmask only reads the set and changes this thread's mask.
    match unsafe { libc::pthread_sigmask(how, set, std::ptr::null_mut()) } {
        0 => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}
