//! JSON text exactly as Domogik's Python side writes it.
//!
//! Domogik serialises every message body with Python's `json.dumps` and its
//! defaults: `", "` between items, `": "` after keys, every character
//! outside printable ASCII escaped as `\uXXXX`, floats written as Python's
//! `repr`. Writing the same bytes keeps our messages indistinguishable from
//! the original manager's, which matters to anything that compares or
//! logs them verbatim.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io::{self, Write};

/// `bytes` without the UTF-8 byte-order mark that editors on some systems
/// put first: it is no error in a file Domogik reads (`info.json`,
/// `datatypes.json`).
pub(crate) fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes)
}

/// A `serde_json` formatter reproducing Python's `json.dumps` defaults.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, writer: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    /// `serde_json` hands quotes, backslashes and control characters to
    /// `write_char_escape` (whose default matches Python's); everything else
    /// arrives here, where Python's `ensure_ascii` escapes what is not
    /// printable ASCII (DEL included).
    fn write_string_fragment<W: ?Sized + Write>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (index, ch) in fragment.char_indices() {
            if (' '..='~').contains(&ch) {
                continue;
            }
            // `start` and `index` come from char_indices: always boundaries.
            writer.write_all(fragment.get(start..index).unwrap_or_default().as_bytes())?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{:04x}", unit)?;
            }
            start = index + ch.len_utf8();
        }
        writer.write_all(fragment.get(start..).unwrap_or_default().as_bytes())
    }

    fn write_f64<W: ?Sized + Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        writer.write_all(python_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + Write>(&mut self, writer: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(writer, f64::from(value))
    }
}

/// Serialises `value` as Python's `json.dumps(value)` would.
pub(crate) fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(128);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    // Our values are plain data (strings, numbers, maps with string keys):
    // serialising them into memory cannot fail, but never panic if it did.
    if value.serialize(&mut serializer).is_err() {
        return "null".to_owned();
    }
    // Every byte written is ASCII by construction (see write_string_fragment).
    String::from_utf8(out).unwrap_or_else(|_| "null".to_owned())
}

/// Python's `repr(float)`: the shortest digits that round-trip, in fixed
/// notation when the decimal exponent is in -4..16, else as `1.5e+16`.
pub(crate) fn python_float_repr(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits: "-1.2345e-7".
    let scientific = format!("{:e}", value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..16).contains(&exponent) {
        fixed_notation(&digits, exponent)
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{exponent_sign}{:02}", exponent.abs())
    };
    format!("{sign}{body}")
}

fn fixed_notation(digits: &str, exponent: i32) -> String {
    if exponent < 0 {
        let zeros = "0".repeat((-exponent - 1) as usize);
        return format!("0.{zeros}{digits}");
    }
    let integer_len = exponent as usize + 1;
    if digits.len() <= integer_len {
        let zeros = "0".repeat(integer_len - digits.len());
        format!("{digits}{zeros}.0")
    } else {
        let (integer, fraction) = digits.split_at(integer_len);
        format!("{integer}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn separators_match_python_defaults() {
        let value = json!({"a": [1, 2, {"b": null}], "c": true});
        assert_eq!(to_string(&value), r#"{"a": [1, 2, {"b": null}], "c": true}"#);
    }

    #[test]
    fn empty_containers() {
        assert_eq!(to_string(&json!({"a": {}, "b": []})), r#"{"a": {}, "b": []}"#);
    }

    #[test]
    fn non_ascii_is_escaped_like_ensure_ascii() {
        // json.dumps("é€\x7f😀\n\"\\") in Python:
        let value = json!("é€\u{7f}😀\n\"\\\u{1}");
        assert_eq!(to_string(&value), r#""\u00e9\u20ac\u007f\ud83d\ude00\n\"\\\u0001""#);
    }

    #[test]
    fn floats_match_python_repr() {
        let cases = [
            (0.0, "0.0"),
            (1.0, "1.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1371071554.16, "1371071554.16"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.0, "123456789012345.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.25e-7, "1.25e-07"),
            (1e100, "1e+100"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(value), expected, "repr({value})");
        }
    }

    #[test]
    fn integers_stay_integers() {
        assert_eq!(
            to_string(&json!([0, -3, 18446744073709551615u64])),
            "[0, -3, 18446744073709551615]"
        );
    }
}
