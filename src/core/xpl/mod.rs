//! xPL (docs/PROTOCOL.md §11): the house's own xPL devices as clients.
//! [`message`] is the codec, [`devices`] the state of the devices heard
//! (alive, dead, stopped; bounded), [`heartbeat`] our own `hbeat.app`
//! schedule, which registers the manager with the host's xPL hub.

pub mod devices;
pub mod heartbeat;
pub mod message;
pub mod view;
