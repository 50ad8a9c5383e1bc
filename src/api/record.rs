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
    let fmt = format_description!("[year][month][day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|d| d.format(fmt).ok())
        .unwrap_or_else(|| "19700101T00:00:00Z".to_string())
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
            revision: 0,
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
}
