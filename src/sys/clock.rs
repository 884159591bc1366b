//! The system's clocks, read here and at the other edges only: the core is
//! handed the time ([`Now`]), so that it runs on a fake clock in tests.

use crate::core::liveness::Now;
use crate::core::wire;
use std::time::{Instant, SystemTime};

/// Both clocks now: the monotonic one for deadlines, the wall clock (Unix
/// seconds) for what is shown.
pub fn now() -> Now {
    Now {
        mono: Instant::now(),
        unix: wire::unix_seconds(SystemTime::now()),
    }
}
