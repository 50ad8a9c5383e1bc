//! The implicit messages every class gets from the datamodel: getters, `get_record`,
//! `get_by_uuid`, `get_by_name_label`, `get_all*` (with xapi's filter language) and the
//! setters of RW fields. One implementation serves every class.

use super::datamodel::{Class, Field, Ty};
use super::dispatch::Ctx;
use super::dispatch::db_error;
use super::error::{ApiError, codes};
use super::handlers::Implicit;
use super::marshal::arg;
use super::record::{self, field_value};
use crate::db::{Row, Tables};
use crate::db::{filter, maps};
use crate::wire::value::Value;

pub async fn call(ctx: &Ctx<'_>, imp: Implicit, args: &[Value]) -> Result<Value, ApiError> {
    let class = ctx.msg.class;
    match imp {
        Implicit::Get(field) => {
            let tables = ctx.svc.db.read();
            let row = row_of(&tables, class, arg::string(&args[0]))?;
            Ok(value_of(ctx, row, field))
        }
        Implicit::GetRecord => {
            let tables = ctx.svc.db.read();
            let row = row_of(&tables, class, arg::string(&args[0]))?;
            Ok(record_of(ctx, class, row))
        }
        Implicit::GetByUuid => {
            let uuid = arg::string(&args[0]);
            let tables = ctx.svc.db.read();
            tables
                .ref_by_uuid(class.name, uuid)
                .map(Value::str)
                .ok_or_else(|| ApiError::new(codes::UUID_INVALID, [class.name, uuid]))
        }
        Implicit::GetByNameLabel => {
            let label = arg::string(&args[0]);
            let field = class_field(class, "name_label");
            let tables = ctx.svc.db.read();
            let refs = tables
                .rows(class.name)
                .into_iter()
                .filter(|(_, row)| {
                    field_value(*row, field).as_ref().and_then(Value::as_str) == Some(label)
                })
                .map(|(r, _)| Value::str(r))
                .collect();
            Ok(Value::Array(refs))
        }
        Implicit::GetAll => {
            let tables = ctx.svc.db.read();
            let refs = tables
                .rows(class.name)
                .into_iter()
                .map(|(r, _)| Value::str(r))
                .collect();
            Ok(Value::Array(refs))
        }
        Implicit::GetAllRecords => {
            let tables = ctx.svc.db.read();
            let members = tables
                .rows(class.name)
                .into_iter()
                .map(|(r, row)| (r.to_string(), record_of(ctx, class, row)))
                .collect();
            Ok(Value::Struct(members))
        }
        Implicit::GetAllWhere | Implicit::GetAllRecordsWhere => {
            let expr_text = arg::string(&args[0]);
            let expr = filter::parse(expr_text).map_err(|text| {
                ApiError::new(codes::INVALID_VALUE, [expr_text.to_string(), text])
            })?;
            let tables = ctx.svc.db.read();
            let mut members = Vec::new();
            for (r, row) in tables.rows(class.name) {
                let mut lookup = |column: &str| record::column(class, r, row, column);
                let keep = expr.eval(&mut lookup).map_err(|missing| {
                    ApiError::new(
                        codes::INTERNAL_ERROR,
                        ["missing field".to_string(), missing, String::new()],
                    )
                })?;
                if keep {
                    members.push((r.to_string(), row));
                }
            }
            Ok(match imp {
                Implicit::GetAllWhere => {
                    Value::Array(members.into_iter().map(|(r, _)| Value::String(r)).collect())
                }
                _ => Value::Struct(
                    members
                        .into_iter()
                        .map(|(r, row)| (r, record_of(ctx, class, row)))
                        .collect(),
                ),
            })
        }
        Implicit::Set(field) | Implicit::AddToMap(field) | Implicit::RemoveFromMap(field) => {
            set_field(ctx, class, field, imp, args).await
        }
    }
}

fn class_field(class: &'static Class, name: &str) -> &'static Field {
    class
        .fields
        .iter()
        .find(|f| f.name == name)
        .expect("the datamodel declares this field")
}

/// The row, or `HANDLE_INVALID [table; ref as sent]`.
fn row_of<'t>(tables: &'t Tables, class: &Class, r: &str) -> Result<Row<'t>, ApiError> {
    tables
        .row(class.name, r)
        .ok_or_else(|| ApiError::handle_invalid(class.name, r))
}

/// One field's value; a session's `rbac_permissions` comes from the permission table.
fn value_of(ctx: &Ctx<'_>, row: Row<'_>, field: &Field) -> Value {
    if let (Row::Session(s), "rbac_permissions") = (row, field.name) {
        let perms = session_permissions(ctx, s);
        return Value::Array(perms.into_iter().map(Value::String).collect());
    }
    field_value(row, field).unwrap_or_else(Value::void)
}

pub fn record_of(ctx: &Ctx<'_>, class: &Class, row: Row<'_>) -> Value {
    let perms = match row {
        Row::Session(s) => Some(session_permissions(ctx, s)),
        _ => None,
    };
    record::record(class, row, perms)
}

/// xapi: the local superuser's session has no permission list; others have their role
/// name followed by the role's permissions.
fn session_permissions(ctx: &Ctx<'_>, s: &crate::db::SessionRow) -> Vec<String> {
    match (&s.role, s.is_local_superuser) {
        (Some(role), false) => ctx.svc.api.permissions_of_role(role).to_vec(),
        _ => Vec::new(),
    }
}

/// Generated setters for RW map fields (only `session.other_config` in this datamodel).
async fn set_field(
    ctx: &Ctx<'_>,
    class: &Class,
    field: &Field,
    imp: Implicit,
    args: &[Value],
) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]).to_string();
    if class.name != "session" || field.name != "other_config" || !matches!(field.ty, Ty::Map(..)) {
        return Err(ApiError::internal(format!(
            "no setter for {}.{}",
            class.name, field.name
        )));
    }
    let key = args.get(1).and_then(Value::as_str).unwrap_or_default();
    ctx.svc
        .db
        .transact(|tx| {
            let mut s = tx
                .session(&r)
                .ok_or_else(|| ApiError::handle_invalid("session", &r))?
                .fields();
            match imp {
                Implicit::Set(_) => {
                    let map = arg::string_map(&args[1]);
                    maps::check_keys(&map).map_err(db_error)?;
                    s.other_config = map;
                }
                Implicit::AddToMap(_) => maps::add(
                    &mut s.other_config,
                    "session",
                    field.name,
                    &r,
                    key,
                    arg::string(&args[2]),
                )
                .map_err(db_error)?,
                _ => s.other_config.retain(|(k, _)| k != key),
            }
            tx.put_session(r.clone(), s);
            Ok(Value::void())
        })
        .await
}
