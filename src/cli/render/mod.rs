//! What the commands print, pure: the clients table, the change lines of
//! `watch`, the colours (nothing here touches a socket).

pub(crate) mod changes;
pub(crate) mod colour;
pub(crate) mod table;
