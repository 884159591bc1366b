//! The manager on a Domogik bus: its protocol state machines, pure and
//! unit-tested with a fake clock (the daemon does their I/O).
//!
//! [`mdp`]: the MDP worker role towards the broker (PROTOCOL.md §7).
//! [`links`]: the state of each connection the manager opens, from libzmq's
//! monitor events, so that none is lost for good.

pub mod links;
pub mod mdp;
