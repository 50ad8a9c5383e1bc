//! Rows → values, driven by the datamodel's field list.
//!
//! The one place where a typed row meets the table: [`field_value`] names each stored
//! field once, and getters, records, event snapshots and filter strings all go through it.
//! A unit test checks that every declared field of every class is covered.

use time::OffsetDateTime;
use time::macros::format_description;

use super::datamodel::{Class, Field, Ty};
use crate::db::{Row, dbstring};
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

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn set(items: &[String]) -> Value {
    Value::Array(items.iter().map(|i| s(i)).collect())
}

fn map(pairs: &[(String, String)]) -> Value {
    Value::Struct(pairs.iter().map(|(k, v)| (k.clone(), s(v))).collect())
}

fn date(t: i64) -> Value {
    Value::DateTime(format_date(t))
}

/// The value of one field of a row, or None if the row's class has no such field.
pub fn field_value(row: Row<'_>, field: &Field) -> Option<Value> {
    let v = match row {
        Row::Task(t) => match field.name {
            "uuid" => Value::String(t.uuid.hyphenated().to_string()),
            "name_label" => s(&t.name_label),
            "name_description" => s(&t.name_description),
            "allowed_operations" => set(&t.allowed_operations),
            "current_operations" => map(&t.current_operations),
            "created" => date(t.created),
            "finished" => date(t.finished),
            "status" => s(t.status.as_str()),
            "session" => s(&t.session),
            "resident_on" => s(&t.resident_on),
            "progress" => Value::Double(t.progress),
            "externalpid" => Value::Int(t.externalpid),
            "stunnelpid" => Value::Int(t.stunnelpid),
            "forwarded" => Value::Bool(t.forwarded),
            "forwarded_to" => s(&t.forwarded_to),
            "type" => s(&t.type_),
            "result" => s(&t.result),
            "error_info" => set(&t.error_info),
            "other_config" => map(&t.other_config),
            "subtask_of" => s(&t.subtask_of),
            "subtasks" => set(&t.subtasks),
            "backtrace" => s(&t.backtrace),
            _ => return None,
        },
        Row::Session(x) => match field.name {
            "uuid" => s(&x.uuid),
            "this_host" => s(&x.this_host),
            "this_user" => s(&x.this_user),
            "last_active" => date(x.last_active),
            "pool" => Value::Bool(x.pool),
            "other_config" => map(&x.other_config),
            "is_local_superuser" => Value::Bool(x.is_local_superuser),
            "subject" => s(&x.subject),
            "validation_time" => date(x.validation_time),
            "auth_user_sid" => s(&x.auth_user_sid),
            "auth_user_name" => s(&x.auth_user_name),
            // Filled in by the caller, which knows the API's permission table.
            "rbac_permissions" => Value::Array(Vec::new()),
            "tasks" => {
                let mut refs: Vec<&str> = x.tasks.iter().map(|t| &**t).collect();
                refs.sort_unstable();
                Value::Array(refs.into_iter().map(s).collect())
            }
            "parent" => s(&x.parent),
            "originator" => s(&x.originator),
            "client_certificate" => Value::Bool(x.client_certificate),
            _ => return None,
        },
        Row::Pool(p) => match field.name {
            "uuid" => s(&p.uuid),
            "name_label" => s(&p.name_label),
            "name_description" => s(&p.name_description),
            "master" => s(&p.master),
            "other_config" => map(&p.other_config),
            _ => return None,
        },
        Row::Host(h) => match field.name {
            "uuid" => s(&h.uuid),
            "name_label" => s(&h.name_label),
            "name_description" => s(&h.name_description),
            "API_version_major" => Value::Int(h.api_version_major),
            "API_version_minor" => Value::Int(h.api_version_minor),
            "API_version_vendor" => s(&h.api_version_vendor),
            "API_version_vendor_implementation" => map(&h.api_version_vendor_implementation),
            "enabled" => Value::Bool(h.enabled),
            "software_version" => map(&h.software_version),
            "other_config" => map(&h.other_config),
            "hostname" => s(&h.hostname),
            "address" => s(&h.address),
            _ => return None,
        },
    };
    Some(v)
}

/// The record of a row: every non-internal field in datamodel order.
///
/// `rbac_permissions` of a session depends on the API's permission table, so the caller
/// passes it in (`None` for other classes).
pub fn record(class: &Class, row: Row<'_>, rbac_permissions: Option<Vec<String>>) -> Value {
    let mut members = Vec::with_capacity(class.fields.len());
    for f in class.fields.iter().filter(|f| !f.internal) {
        let v = if f.name == "rbac_permissions" {
            let perms = rbac_permissions.clone().unwrap_or_default();
            Value::Array(perms.into_iter().map(Value::String).collect())
        } else {
            field_value(row, f).unwrap_or_else(Value::void)
        };
        members.push((f.name.to_string(), v));
    }
    Value::Struct(members)
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
