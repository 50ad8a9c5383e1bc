//! Rows → values, driven by the datamodel's field list.
//!
//! The one place where a typed row meets the table: [`encode_field`] names each stored
//! field once, and getters, records, event snapshots and filter strings all go through it
//! (as a [`Value`] through [`field_value`] and [`record`], or straight into a reply's
//! codec through [`encode_record`]). A unit test checks that every declared field of
//! every class is covered.

use time::OffsetDateTime;
use time::macros::format_description;

use super::datamodel::{Class, Field, Ty};
use crate::db::{Row, dbstring};
use crate::wire::encode::{Builder, Encoder};
use crate::wire::value::Value;

/// xapi's date form, `Date.to_rfc3339`: `YYYYMMDDTHH:MM:SSZ`, always UTC.
pub fn format_date(unix: i64) -> String {
    with_date(unix, str::to_string)
}

/// Calls `f` with the date text. Every record carries two dates, so the usual years (0 to
/// 9999) are formatted by hand from the day number, on the stack (the `time` crate's
/// formatter cost 1,500 instructions a date); other years go through `time`, which
/// decides their form.
fn with_date<T>(unix: i64, f: impl FnOnce(&str) -> T) -> T {
    const YEAR_0: i64 = -62_167_219_200; // 0000-01-01T00:00:00Z
    const YEAR_10000: i64 = 253_402_300_800;
    if (YEAR_0..YEAR_10000).contains(&unix) {
        let text = civil_date(unix);
        return f(std::str::from_utf8(&text).expect("ASCII digits"));
    }
    let fmt = format_description!("[year][month][day]T[hour]:[minute]:[second]Z");
    let text = OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|d| d.format(fmt).ok())
        .unwrap_or_else(|| "19700101T00:00:00Z".to_string());
    f(&text)
}

/// `YYYYMMDDTHH:MM:SSZ` for a time in years 0 to 9999 (Howard Hinnant's
/// `civil_from_days`, proleptic Gregorian calendar, as `time` uses).
fn civil_date(unix: i64) -> [u8; 18] {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000mmddThh:mm:ssZ";
    let mut put = |at: usize, value: i64, width: usize| {
        let mut v = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, year, 4);
    put(4, month, 2);
    put(6, day, 2);
    put(9, secs / 3600, 2);
    put(12, secs / 60 % 60, 2);
    put(15, secs % 60, 2);
    out
}

fn strings<E: Encoder>(e: &mut E, items: &[String]) {
    e.begin_array();
    for i in items {
        e.string(i);
    }
    e.end_array();
}

fn pairs<E: Encoder>(e: &mut E, pairs: &[(String, String)]) {
    e.begin_struct();
    for (k, v) in pairs {
        e.member(k);
        e.string(v);
        e.end_member();
    }
    e.end_struct();
}

fn date<E: Encoder>(e: &mut E, t: i64) {
    with_date(t, |text| e.date_time(text));
}

/// Tells `e` the value of one field of a row; false if the row's class has no such field.
pub fn encode_field<E: Encoder>(row: Row<'_>, field: &Field, e: &mut E) -> bool {
    match row {
        Row::Task(t) => match field.name {
            "uuid" => e.string(
                t.uuid
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            "name_label" => e.string(&t.name_label),
            "name_description" => e.string(&t.name_description),
            "allowed_operations" => strings(e, &t.allowed_operations),
            "current_operations" => pairs(e, &t.current_operations),
            "created" => date(e, t.created),
            "finished" => date(e, t.finished),
            "status" => e.string(t.status.as_str()),
            "session" => e.string(&t.session),
            "resident_on" => e.string(&t.resident_on),
            "progress" => e.double(t.progress),
            "externalpid" => e.int(t.externalpid),
            "stunnelpid" => e.int(t.stunnelpid),
            "forwarded" => e.bool(t.forwarded),
            "forwarded_to" => e.string(&t.forwarded_to),
            "type" => e.string(&t.type_),
            "result" => e.string(&t.result),
            "error_info" => strings(e, &t.error_info),
            "other_config" => pairs(e, &t.other_config),
            "subtask_of" => e.string(&t.subtask_of),
            "subtasks" => strings(e, &t.subtasks),
            "backtrace" => e.string(&t.backtrace),
            _ => return false,
        },
        Row::Session(x) => match field.name {
            "uuid" => e.string(&x.uuid),
            "this_host" => e.string(&x.this_host),
            "this_user" => e.string(&x.this_user),
            "last_active" => date(e, x.last_active),
            "pool" => e.bool(x.pool),
            "other_config" => pairs(e, &x.other_config),
            "is_local_superuser" => e.bool(x.is_local_superuser),
            "subject" => e.string(&x.subject),
            "validation_time" => date(e, x.validation_time),
            "auth_user_sid" => e.string(&x.auth_user_sid),
            "auth_user_name" => e.string(&x.auth_user_name),
            // Filled in by the caller, which knows the API's permission table.
            "rbac_permissions" => strings(e, &[]),
            "tasks" => {
                let mut refs: Vec<&str> = x.tasks.iter().map(|t| &**t).collect();
                refs.sort_unstable();
                e.begin_array();
                for r in refs {
                    e.string(r);
                }
                e.end_array();
            }
            "parent" => e.string(&x.parent),
            "originator" => e.string(&x.originator),
            "client_certificate" => e.bool(x.client_certificate),
            _ => return false,
        },
        Row::Pool(p) => match field.name {
            "uuid" => e.string(&p.uuid),
            "name_label" => e.string(&p.name_label),
            "name_description" => e.string(&p.name_description),
            "master" => e.string(&p.master),
            "other_config" => pairs(e, &p.other_config),
            _ => return false,
        },
        Row::Host(h) => match field.name {
            "uuid" => e.string(&h.uuid),
            "name_label" => e.string(&h.name_label),
            "name_description" => e.string(&h.name_description),
            "API_version_major" => e.int(h.api_version_major),
            "API_version_minor" => e.int(h.api_version_minor),
            "API_version_vendor" => e.string(&h.api_version_vendor),
            "API_version_vendor_implementation" => pairs(e, &h.api_version_vendor_implementation),
            "enabled" => e.bool(h.enabled),
            "software_version" => pairs(e, &h.software_version),
            "other_config" => pairs(e, &h.other_config),
            "hostname" => e.string(&h.hostname),
            "address" => e.string(&h.address),
            _ => return false,
        },
    }
    true
}

/// The value of one field of a row, or None if the row's class has no such field.
pub fn field_value(row: Row<'_>, field: &Field) -> Option<Value> {
    let mut known = false;
    let v = Builder::build(|b| known = encode_field(row, field, b));
    known.then_some(v)
}

/// Tells `e` the record of a row: every non-internal field in datamodel order.
///
/// `rbac_permissions` of a session depends on the API's permission table, so the caller
/// passes it in (`None` for other classes).
pub fn encode_record<E: Encoder>(
    class: &Class,
    row: Row<'_>,
    rbac_permissions: Option<&[String]>,
    e: &mut E,
) {
    e.begin_struct_of(class.fields.len());
    for f in class.fields.iter().filter(|f| !f.internal) {
        e.static_member(f.name);
        if f.name == "rbac_permissions" {
            strings(e, rbac_permissions.unwrap_or_default());
        } else if !encode_field(row, f, e) {
            e.string("");
        }
        e.end_member();
    }
    e.end_struct();
}

/// The record of a row as a [`Value`] ([`encode_record`]).
pub fn record(class: &Class, row: Row<'_>, rbac_permissions: Option<Vec<String>>) -> Value {
    Builder::build(|b| encode_record(class, row, rbac_permissions.as_deref(), b))
}

/// The database string form of a field (what `get_all_records_where` compares against).
pub fn db_string(field: &Field, value: &Value) -> String {
    match (field.ty, value) {
        (Ty::Float, Value::Double(f)) => dbstring::float(*f),
        (Ty::Bool, Value::Bool(b)) => dbstring::bool(*b),
        (Ty::Int, Value::Int(i)) => dbstring::int(*i),
        (_, Value::Array(items)) => {
            let items: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            dbstring::set(&items)
        }
        (_, Value::Struct(members)) => {
            let pairs: Vec<(&str, &str)> = members
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                .collect();
            dbstring::map(&pairs)
        }
        (_, Value::String(s) | Value::DateTime(s)) => s.clone(),
        (_, other) => other.debug_rendering(),
    }
}

/// Looks a filter column up in a row: DB column names (`name__label`), internal fields,
/// and `_ref`.
pub fn column(class: &Class, r: &str, row: Row<'_>, column: &str) -> Option<String> {
    if column == "_ref" {
        return Some(r.to_string());
    }
    let field = class.fields.iter().find(|f| f.column == column)?;
    let value = field_value(row, field)?;
    Some(db_string(field, &value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::datamodel::CLASSES;
    use crate::db::{HostRow, PoolRow, SessionRow, TaskRow};

    #[test]
    fn every_declared_field_is_stored() {
        let task = TaskRow::new("l", "d", "s", "h");
        let session = SessionRow {
            uuid: String::new(),
            this_host: String::new(),
            this_user: String::new(),
            last_active: 0,
            pool: false,
            other_config: vec![],
            is_local_superuser: true,
            subject: String::new(),
            validation_time: 0,
            auth_user_sid: String::new(),
            auth_user_name: String::new(),
            role: None,
            tasks: Default::default(),
            parent: String::new(),
            originator: String::new(),
            client_certificate: false,
            legacy_events: None,
        };
        let pool = PoolRow::default();
        let host = HostRow::default();
        for class in CLASSES.iter().filter(|c| c.implicit) {
            let row = match class.name {
                "task" => Row::Task(&task),
                "session" => Row::Session(&session),
                "pool" => Row::Pool(&pool),
                _ => Row::Host(&host),
            };
            for f in class.fields {
                assert!(field_value(row, f).is_some(), "{}.{}", class.name, f.name);
            }
        }
    }

    #[test]
    fn dates_in_xapi_form() {
        assert_eq!(format_date(0), "19700101T00:00:00Z");
        assert_eq!(format_date(1_586_248_112), "20200407T08:28:32Z");
    }

    /// The hand formatter says what the `time` crate says, over the whole range it
    /// covers (leap days, century years, before 1970) and at its edges.
    #[test]
    fn hand_formatted_dates_match_time() {
        let fmt = format_description!("[year][month][day]T[hour]:[minute]:[second]Z");
        let by_time = |unix: i64| {
            OffsetDateTime::from_unix_timestamp(unix)
                .ok()
                .and_then(|d| d.format(fmt).ok())
                .unwrap_or_else(|| "19700101T00:00:00Z".to_string())
        };
        let edges = [
            -62_167_219_200 - 1,
            -62_167_219_200,
            -1,
            0,
            951_782_400,   // 2000-02-29
            4_107_456_000, // 2100-02-28 (not a leap year)
            253_402_300_799,
            253_402_300_800,
            i64::MIN,
            i64::MAX,
        ];
        let mut unix = -62_167_219_200i64;
        let mut n = 0i64;
        let spread = edges.into_iter().chain(std::iter::from_fn(|| {
            // About 200,000 points, with a stride that lands on every hour and second.
            n += 1;
            unix += 1_577_836 + (n % 7) * 3_601;
            (unix < 253_402_300_800).then_some(unix)
        }));
        for t in spread {
            assert_eq!(format_date(t), by_time(t), "{t}");
        }
    }
}
