//! The database string form of field values: what `get_all_records_where` /
//! `get_all_where` compare literals against (see [`crate::db::filter`]).
//!
//! xapi stores every column as a `Schema.Value.t` (a string, a string set or string pairs)
//! and, when a filter names a column, compares `Schema.Value.marshal` of it with the
//! literal, byte for byte (`ocaml/database/db_cache_impl.ml`). The strings come from the
//! generated `DM_to_String` module (`ocaml/idl/ocaml_backend/gen_db_actions.ml`,
//! `dm_to_string`):
//!
//! | datamodel type | string form | here |
//! |---|---|---|
//! | string | itself | — |
//! | ref | itself (`OpaqueRef:…`, `OpaqueRef:NULL`) | — |
//! | enum | the datamodel name verbatim (`pending`, `cancel`) | — |
//! | bool | `string_of_bool`: `true` / `false` | [`bool`] |
//! | int | `Int64.to_string` | [`int`] |
//! | float | `Printf.sprintf "%0.18g"` | [`float`] |
//! | datetime | `Date.to_rfc3339`: `YYYYMMDDTHH:MM:SSZ` | [`datetime`] |
//! | `t set` | S-expression of the items' string forms: `('a' 'b')` | [`set`] |
//! | `(k → v) map` | S-expression of pairs: `(('k' 'v'))` | [`map`] |
//! | `ref option` | a set of zero or one ref | [`set`] |
//!
//! Sets and maps go through `String_marshall_helper` and `SExpr.string_of`
//! (`ocaml/database/string_marshall_helper.ml`, `ocaml/libs/sexpr/sExpr.ml`).

use crate::printf::format_g;

/// `string_of_bool`.
pub fn bool(b: bool) -> String {
    if b { "true" } else { "false" }.to_string()
}

/// `Int64.to_string`: plain decimal, `-` for negatives, no `+`.
pub fn int(i: i64) -> String {
    i.to_string()
}

/// `Printf.sprintf "%0.18g"`: the `0` flag has no effect without a width, so this is C's
/// `%.18g` — 18 significant digits, enough to show the binary value's decimal tail
/// (`0.1` is stored as `0.100000000000000006`, `1.0` as `1`, NaN as `nan`). A filter
/// literal must therefore spell a float exactly this way to match.
pub fn float(f: f64) -> String {
    format_g(f, 18)
}

/// `Date.to_rfc3339` of a UTC time given as seconds since the epoch: `%04i%02i%02iT%02i:%02i:%02iZ`,
/// no dashes, no fraction (e.g. `19700101T00:00:00Z`). xapi only stores UTC dates, which
/// it prints with the `Z` suffix.
pub fn datetime(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `String_marshall_helper.set`: a `SExpr.Node` of `SExpr.String`s, e.g. `('a' 'b')`, `()`
/// for the empty set. Items are separated by one space; each is quoted as [`sexpr_string`]
/// does, after truncation to its longest XML-legal prefix.
pub fn set(items: &[impl AsRef<str>]) -> String {
    let mut out = String::from("(");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_sexpr_string(&mut out, xml_prefix(item.as_ref()));
    }
    out.push(')');
    out
}

/// `String_marshall_helper.map`: a node of two-element nodes, e.g. `(('k' 'v') ('k2' 'v2'))`,
/// `()` for the empty map. Order is the stored order. xapi raises `Empty_key_in_map` for an
/// empty key here; keys are validated when maps are written, so this just prints them.
pub fn map(pairs: &[(impl AsRef<str>, impl AsRef<str>)]) -> String {
    let mut out = String::from("(");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push('(');
        push_sexpr_string(&mut out, xml_prefix(k.as_ref()));
        out.push(' ');
        push_sexpr_string(&mut out, xml_prefix(v.as_ref()));
        out.push(')');
    }
    out.push(')');
    out
}

/// One `SExpr.String` as `SExpr.string_of` prints it: in single quotes, with `\` written
/// `\\` and `'` written `\'`; every other character (double quotes, spaces, parentheses,
/// newlines, UTF-8) is copied unchanged.
pub fn sexpr_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_sexpr_string(&mut out, s);
    out
}

fn push_sexpr_string(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
}

/// `Utf8.XML.longest_valid_prefix` (via `ensure_utf8_xml`): the string up to its first
/// character that XML forbids, i.e. a control character other than tab, LF and CR.
/// (A `&str` is valid UTF-8 already, the other half of xapi's check.)
fn xml_prefix(s: &str) -> &str {
    match s.find(|c: char| c < ' ' && !matches!(c, '\t' | '\n' | '\r')) {
        Some(i) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars() {
        assert_eq!(bool(true), "true");
        assert_eq!(bool(false), "false");
        assert_eq!(int(-1), "-1");
        assert_eq!(int(i64::MAX), "9223372036854775807");
    }

    #[test]
    fn floats_use_18_significant_digits() {
        assert_eq!(float(0.1), "0.100000000000000006");
        assert_eq!(float(1.0), "1");
        assert_eq!(float(0.0), "0");
        assert_eq!(float(0.5), "0.5");
        assert_eq!(float(1.0 / 3.0), "0.333333333333333315");
        assert_eq!(float(1e17), "100000000000000000");
        assert_eq!(float(1e20), "1e+20");
        assert_eq!(float(-2.5e-7), "-2.49999999999999989e-07");
        assert_eq!(float(f64::NAN), "nan");
    }

    #[test]
    fn datetimes() {
        assert_eq!(datetime(0), "19700101T00:00:00Z");
        assert_eq!(datetime(1_586_248_112), "20200407T08:28:32Z");
        assert_eq!(datetime(951_782_400), "20000229T00:00:00Z");
        assert_eq!(datetime(-1), "19691231T23:59:59Z");
    }

    #[test]
    fn sets_and_maps() {
        let none: [&str; 0] = [];
        assert_eq!(set(&none), "()");
        assert_eq!(set(&["a"]), "('a')");
        assert_eq!(set(&["a", "b", "c"]), "('a' 'b' 'c')");
        let no_pairs: [(&str, &str); 0] = [];
        assert_eq!(map(&no_pairs), "()");
        assert_eq!(map(&[("k", "v")]), "(('k' 'v'))");
        assert_eq!(
            map(&[("task", "destroy"), ("x", "")]),
            "(('task' 'destroy') ('x' ''))"
        );
        let owned = vec![String::from("OpaqueRef:1")];
        assert_eq!(set(&owned), "('OpaqueRef:1')");
    }

    #[test]
    fn sexpr_escapes_only_backslash_and_single_quote() {
        assert_eq!(sexpr_string(r"it's"), r"'it\'s'");
        assert_eq!(sexpr_string(r"a\b"), r"'a\\b'");
        assert_eq!(sexpr_string(r"\'"), r"'\\\''");
        assert_eq!(sexpr_string("\"(x y)\"\n\t é"), "'\"(x y)\"\n\t é'");
        assert_eq!(set(&["'q'"]), r"('\'q\'')");
        assert_eq!(map(&[("k'", r"v\")]), r"(('k\'' 'v\\'))");
    }

    #[test]
    fn items_are_cut_at_the_first_xml_illegal_character() {
        assert_eq!(set(&["ab\u{1}cd", "ok\r\n"]), "('ab' 'ok\r\n')");
        assert_eq!(map(&[("k\u{0}x", "\u{1f}")]), "(('k' ''))");
    }
}
