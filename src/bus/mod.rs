//! The manager on a Domogik bus (PROTOCOL.md §7, §8): its conversations
//! with the broker's other services, each a pure state machine.

pub mod dbmgr;
