//! The views of the one clients map (src/core/clients.rs), one module per
//! dialect: [`seed`] (PROTOCOL.md §4, June 2013) and [`v05`] (§8, Domogik
//! 0.5). Each serialises the map straight into Python's JSON text
//! (src/core/pyjson.rs), without an intermediate tree; the manager caches each
//! text until the map changes.

pub(crate) mod seed;
pub(crate) mod v05;

use serde_json::value::RawValue;

/// `{}` as a raw JSON value, for invalid packages' `data`.
pub(crate) fn empty_object<E: serde::ser::Error>() -> Result<&'static RawValue, E> {
    serde_json::from_str("{}").map_err(E::custom)
}

/// `[]` as a raw JSON value.
pub(crate) fn empty_array<E: serde::ser::Error>() -> Result<&'static RawValue, E> {
    serde_json::from_str("[]").map_err(E::custom)
}
