//! Parameter unmarshalling: wire values → values of the datamodel type, with xapi's
//! coercions and xapi's error texts.
//!
//! xapi's generated unmarshallers (ocaml-rpc's `rpc.ml` and ppx_deriving_rpc) raise OCaml
//! `Failure`s, which surface as `INTERNAL_ERROR ["Failure(\"Expected float, got 'B(true)'\")"]`.
//! Clients and tests see these strings, so they are reproduced here. Coercions: ints from
//! decimal strings, floats from ints and numeric strings, enums case-insensitively, dates
//! from strings as well as dateTime values.

use std::borrow::Cow;

use super::datamodel::Ty;
use super::error::ApiError;
use crate::wire::value::Value;

/// OCaml's `String.escaped`, as `Printexc.to_string` shows `Failure` messages with `%S`.
pub fn ocaml_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            8 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out
}

/// `INTERNAL_ERROR ["Failure(\"<msg>\")"]`, the form of every unmarshalling error.
pub fn failure(msg: &str) -> ApiError {
    ApiError::internal(format!("Failure(\"{}\")", ocaml_escaped(msg)))
}

fn expected(what: &str, got: &Value) -> ApiError {
    failure(&format!("Expected {what}, got '{}'", got.debug_rendering()))
}

/// OCaml's `Int64.of_string`: optional sign, decimal or 0x/0o/0b prefixed, `_` separators.
pub fn ocaml_int64(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = match body.get(..2) {
        Some("0x" | "0X") => (16, &body[2..]),
        Some("0o" | "0O") => (8, &body[2..]),
        Some("0b" | "0B") => (2, &body[2..]),
        _ => (10, body),
    };
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from_str_radix(&digits, radix).ok()?;
    let v = if neg { -magnitude } else { magnitude };
    i64::try_from(v).ok()
}

/// OCaml's `float_of_string` (decimal and special forms; `_` separators allowed).
fn ocaml_float(s: &str) -> Option<f64> {
    let cleaned: String = s.chars().filter(|c| *c != '_').collect();
    match cleaned.as_str() {
        "nan" | "+nan" | "-nan" => return Some(f64::NAN),
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if cleaned.is_empty()
        || cleaned
            .chars()
            .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return None;
    }
    cleaned.parse::<f64>().ok()
}

/// [`unmarshal`] of a `string` or ref argument, borrowed: the session argument of every
/// call is only looked up, so it is not copied first. Same errors.
pub fn unmarshal_str(v: &Value) -> Result<&str, ApiError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(expected("string", v)),
    }
}

/// [`unmarshal`], borrowing `v` when it already is what `unmarshal` would make of it (a
/// string for a string or ref, an int for an int, a float for a float, a bool for a
/// bool: nearly every argument a client sends), so that the call's arguments need not be
/// copied. Same results, same errors.
pub fn unmarshal_borrowed<'v>(ty: &Ty, v: &'v Value) -> Result<Cow<'v, Value>, ApiError> {
    match (ty, v) {
        (Ty::String | Ty::Ref(_), Value::String(_))
        | (Ty::Int, Value::Int(_))
        | (Ty::Float, Value::Double(_))
        | (Ty::Bool, Value::Bool(_)) => Ok(Cow::Borrowed(v)),
        _ => unmarshal(ty, v).map(Cow::Owned),
    }
}

/// Converts one argument to the datamodel type `ty`. The result uses one canonical
/// variant per type: `String` for strings, refs, enums (lower-cased) and dates, `Int`,
/// `Double`, `Bool`, `Array` for sets, `Struct` for maps.
pub fn unmarshal(ty: &Ty, v: &Value) -> Result<Value, ApiError> {
    match ty {
        Ty::String | Ty::Ref(_) => match v {
            Value::String(_) => Ok(v.clone()),
            _ => Err(expected("string", v)),
        },
        Ty::Int => match v {
            Value::Int(_) => Ok(v.clone()),
            Value::String(s) => ocaml_int64(s)
                .map(Value::Int)
                .ok_or_else(|| failure("Int64.of_string")),
            _ => Err(expected("int64", v)),
        },
        Ty::Float => match v {
            Value::Double(_) => Ok(v.clone()),
            Value::Int(i) => Ok(Value::Double(*i as f64)),
            Value::Int32(i) => Ok(Value::Double(f64::from(*i))),
            Value::String(s) => ocaml_float(s)
                .map(Value::Double)
                .ok_or_else(|| failure("float_of_string")),
            _ => Err(expected("float", v)),
        },
        Ty::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => Err(expected("bool", v)),
        },
        Ty::DateTime => match v {
            Value::DateTime(s) | Value::String(s) => Ok(Value::String(s.clone())),
            _ => Err(expected("DateTime", v)),
        },
        Ty::Enum(e) => match v {
            Value::String(s) => {
                let lower = s.to_ascii_lowercase();
                if e.values.iter().any(|(name, _)| *name == lower) {
                    Ok(Value::String(lower))
                } else {
                    Err(failure("Unknown tag/contents"))
                }
            }
            _ => Err(failure("Unknown tag/contents")),
        },
        Ty::Set(inner) => match v {
            Value::Array(items) => items
                .iter()
                .map(|i| unmarshal(inner, i))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            _ => Err(failure(&format!(
                "Expecting Rpc.Enum, but found '{}'",
                v.debug_rendering()
            ))),
        },
        Ty::Map(k, val) => match v {
            Value::Struct(members) => {
                let mut out = Vec::with_capacity(members.len());
                for (key, value) in members {
                    let key = unmarshal(k, &Value::String(key.clone()))?;
                    let Value::String(key) = key else {
                        return Err(failure("map keys must be strings"));
                    };
                    out.push((key, unmarshal(val, value)?));
                }
                Ok(Value::Struct(out))
            }
            _ => Err(failure(&format!(
                "Expecting Rpc.Dict, but found '{}'",
                v.debug_rendering()
            ))),
        },
        Ty::Record(_) | Ty::RecordMap(_) | Ty::Opaque(_) | Ty::Void => {
            Err(failure("type cannot be a parameter"))
        }
    }
}

/// Typed accessors for unmarshalled arguments (whose variants [`unmarshal`] guarantees).
pub mod arg {
    use crate::wire::value::Value;

    pub fn string(v: &Value) -> &str {
        v.as_str().unwrap_or_default()
    }

    pub fn float(v: &Value) -> f64 {
        match v {
            Value::Double(f) => *f,
            _ => 0.0,
        }
    }

    pub fn strings(v: &Value) -> Vec<String> {
        match v {
            Value::Array(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn string_map(v: &Value) -> Vec<(String, String)> {
        match v {
            Value::Struct(members) => members
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::datamodel::TASK_STATUS;

    fn err_text(r: Result<Value, ApiError>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.code, "INTERNAL_ERROR");
        e.params[0].clone()
    }

    /// The borrowing form gives what `unmarshal` gives, and borrows only where that is
    /// the value itself (an enum is lower-cased, a date re-tagged, an int parsed from a
    /// string: those must be copies).
    #[test]
    fn borrowed_arguments_are_what_unmarshal_makes() {
        let values = [
            Value::str("OpaqueRef:a"),
            Value::str("PENDING"),
            Value::str("42"),
            Value::str("2.5"),
            Value::Int(7),
            Value::Int32(3),
            Value::Double(0.5),
            Value::Bool(true),
            Value::DateTime("20240101T00:00:00Z".into()),
            Value::Array(vec![Value::str("x")]),
            Value::Struct(vec![("k".into(), Value::str("v"))]),
            Value::Nil,
        ];
        let types = [
            Ty::String,
            Ty::Ref("task"),
            Ty::Int,
            Ty::Float,
            Ty::Bool,
            Ty::DateTime,
            Ty::Enum(&TASK_STATUS),
            Ty::Set(&Ty::String),
            Ty::Map(&Ty::String, &Ty::String),
        ];
        let mut borrowed = 0;
        for ty in &types {
            for v in &values {
                let b = unmarshal_borrowed(ty, v);
                if let Ok(Cow::Borrowed(kept)) = &b {
                    assert!(std::ptr::eq(*kept, v));
                    borrowed += 1;
                }
                assert_eq!(b.map(Cow::into_owned), unmarshal(ty, v), "{ty:?} of {v:?}");
            }
        }
        // Strings for the string and ref types, and one each of int, float, bool.
        assert_eq!(borrowed, 2 * 4 + 3);
    }

    #[test]
    fn xapi_failure_texts() {
        assert_eq!(
            err_text(unmarshal(&Ty::Float, &Value::Bool(true))),
            "Failure(\"Expected float, got 'B(true)'\")"
        );
        assert_eq!(
            err_text(unmarshal(&Ty::String, &Value::Int(5))),
            "Failure(\"Expected string, got 'I(5)'\")"
        );
        assert_eq!(
            err_text(unmarshal_str(&Value::Int(5)).map(Value::str)),
            err_text(unmarshal(&Ty::String, &Value::Int(5))),
        );
        assert_eq!(
            err_text(unmarshal(&Ty::Set(&Ty::String), &Value::str("x"))),
            "Failure(\"Expecting Rpc.Enum, but found 'S(x)'\")"
        );
        assert_eq!(
            err_text(unmarshal(&Ty::Enum(&TASK_STATUS), &Value::str("done"))),
            "Failure(\"Unknown tag/contents\")"
        );
        assert_eq!(
            err_text(unmarshal(&Ty::Float, &Value::str("abc"))),
            "Failure(\"float_of_string\")"
        );
    }

    #[test]
    fn coercions() {
        assert_eq!(
            unmarshal(&Ty::Float, &Value::Int(1)),
            Ok(Value::Double(1.0))
        );
        assert_eq!(
            unmarshal(&Ty::Float, &Value::str("0.5")),
            Ok(Value::Double(0.5))
        );
        assert_eq!(unmarshal(&Ty::Int, &Value::str("-42")), Ok(Value::Int(-42)));
        assert_eq!(unmarshal(&Ty::Int, &Value::str("0x10")), Ok(Value::Int(16)));
        assert_eq!(
            unmarshal(&Ty::Enum(&TASK_STATUS), &Value::str("SUCCESS")),
            Ok(Value::str("success"))
        );
        assert_eq!(
            unmarshal(&Ty::DateTime, &Value::DateTime("20240101T00:00:00Z".into())),
            Ok(Value::str("20240101T00:00:00Z"))
        );
    }

    #[test]
    fn escaping_like_ocaml() {
        assert_eq!(ocaml_escaped("a\"b\\c\n"), "a\\\"b\\\\c\\n");
        assert_eq!(ocaml_escaped("é"), "\\195\\169");
    }
}
