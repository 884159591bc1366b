//! The manager on a Domogik bus (PROTOCOL.md §7, §8): its protocol state
//! machines, each pure and unit-tested with a fake clock (the daemon does
//! their I/O).
//!
//! [`mdp`]: the MDP worker role towards the broker.
//! [`links`]: the state of each connection the manager opens, from libzmq's
//! monitor events, so that none is lost for good.
//! [`dbmgr`]: the conversations with the broker's other services.

pub(crate) mod dbmgr;
pub(crate) mod links;
pub(crate) mod mdp;
