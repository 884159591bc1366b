//! The manager on a Domogik bus (PROTOCOL.md §7, §8): its protocol state
//! machines, each pure and unit-tested with a fake clock (the daemon does
//! their I/O).
//!
//! [`mdp`]: the MDP worker role towards the broker.
//! [`links`]: the state of each connection the manager opens, from libzmq's
//! monitor events, so that none is lost for good.
//! [`dbmgr`]: the conversations with the broker's other services.
//! [`echo`]: whether the forwarder relays (our own statuses coming back).
//! [`session`]: the three together as the daemon sees them: which socket to
//! open, close or reopen and what to send, as actions, with the next
//! deadline.

pub(crate) mod dbmgr;
pub(crate) mod echo;
pub(crate) mod links;
pub(crate) mod mdp;
pub(crate) mod session;
