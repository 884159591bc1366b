//! Domogik's `datatypes.json` (PROTOCOL.md §8, `datatype.get`): the data
//! types every plugin and user interface asks for. Read at start and
//! again at a rescan when its `stat` changed (`disk::datatypes`); [`parse`]
//! judges the bytes.

use crate::core::pyjson;
use serde_json::value::RawValue;
use serde_json::Value;

/// Larger files are refused (Domogik's is about 20 KiB).
pub(crate) const MAX_BYTES: u64 = 4 * 1024 * 1024;

/// Judges the bytes of the file: a JSON object, re-serialised as Python would.
pub(crate) fn parse(bytes: &[u8]) -> Result<Box<RawValue>, String> {
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!("is larger than {MAX_BYTES} bytes"));
    }
    let bytes = pyjson::without_bom(bytes);
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value @ Value::Object(_)) => {
            RawValue::from_string(pyjson::to_string(&value)).map_err(|e| format!("cannot be stored: {e}"))
        }
        Ok(_) => Err("is not a JSON object".into()),
        Err(error) => Err(format!("has a JSON error: {error}")),
    }
}

/// How a missing datatypes_file is worded.
pub(crate) const MISSING_PREFIX: &str = "no datatypes_file";
