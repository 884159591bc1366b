//! Domogik's `datatypes.json` (PROTOCOL.md §8, `datatype.get`): the data
//! types every plugin and user interface asks for. Read at start and
//! again at a rescan when its `stat` changed (`disk::datatypes`); [`parse`]
//! judges the bytes.

use crate::core::pyjson;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

/// Larger files are refused (Domogik's is about 20 KiB).
pub(crate) const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// What is wrong with the bytes of the file; displayed after its name
/// (`datatypes_file X is not a JSON object`).
#[derive(Debug)]
pub(crate) enum DatatypesError {
    /// Over [`MAX_BYTES`].
    TooLarge,
    NotAnObject,
    Json(serde_json::Error),
    /// The re-serialised text could not be kept (cannot happen with valid JSON).
    NotStored(serde_json::Error),
}

impl fmt::Display for DatatypesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatatypesError::TooLarge => write!(f, "is larger than {MAX_BYTES} bytes"),
            DatatypesError::NotAnObject => f.write_str("is not a JSON object"),
            DatatypesError::Json(error) => write!(f, "has a JSON error: {error}"),
            DatatypesError::NotStored(error) => write!(f, "cannot be stored: {error}"),
        }
    }
}

impl std::error::Error for DatatypesError {}

/// Judges the bytes of the file: a JSON object, re-serialised as Python would.
pub(crate) fn parse(bytes: &[u8]) -> Result<Box<RawValue>, DatatypesError> {
    if bytes.len() as u64 > MAX_BYTES {
        return Err(DatatypesError::TooLarge);
    }
    let bytes = pyjson::without_bom(bytes);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value @ Value::Object(_)) => {
            RawValue::from_string(pyjson::to_string(&value)).map_err(DatatypesError::NotStored)
        }
        Ok(_) => Err(DatatypesError::NotAnObject),
        Err(error) => Err(DatatypesError::Json(error)),
    }
}
