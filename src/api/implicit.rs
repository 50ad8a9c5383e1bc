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
use crate::wire::encode::{Codec, Encoder};
use crate::wire::jsonrpc::JsonEncoder;
use crate::wire::value::Value;
use crate::wire::xmlrpc::XmlEncoder;

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
            let perms = match row {
                Row::Session(s) => Some(session_permissions(ctx, s)),
                _ => None,
            };
            // The whole result: straight into the reply's buffer if the server lent it.
            Ok(record::result_record(
                ctx.meta.codec,
                &ctx.meta.reply,
                class,
                row,
                perms.as_deref(),
            ))
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
            let mut refs = Vec::new();
            scan(ctx, class, 1, |r, row| {
                if field_value(row, field).as_ref().and_then(Value::as_str) == Some(label) {
                    refs.push(Value::str(r));
                }
                Ok(())
            })
            .await?;
            Ok(Value::Array(refs))
        }
        Implicit::GetAll => {
            let refs = ctx.svc.db.read().refs(class.name);
            Ok(Value::Array(
                refs.iter().map(|r| Value::str(&**r)).collect(),
            ))
        }
        Implicit::GetAllRecords if ctx.meta.codec == Some(Codec::XmlRpc) => {
            let mut out = Vec::new();
            encode_all_records(ctx, class, &mut XmlEncoder { out: &mut out }).await?;
            Ok(Value::Encoded(Codec::XmlRpc, out.into()))
        }
        Implicit::GetAllRecords if ctx.meta.codec == Some(Codec::JsonRpc) => {
            let mut out = Vec::new();
            encode_all_records(ctx, class, &mut JsonEncoder::new(&mut out)).await?;
            Ok(Value::Encoded(Codec::JsonRpc, out.into()))
        }
        Implicit::GetAllRecords => {
            let mut members = Vec::new();
            scan(ctx, class, RECORD_COST, |r, row| {
                members.push((r.to_string(), record_of(ctx, class, row)));
                Ok(())
            })
            .await?;
            Ok(Value::Struct(members))
        }
        Implicit::GetAllWhere | Implicit::GetAllRecordsWhere => {
            let expr_text = arg::string(&args[0]);
            let expr = parse_filter(ctx, expr_text)?;
            let shape = expr.shape();
            let columns: Vec<Column> = shape.columns.iter().map(|c| Column::of(class, c)).collect();
            let index: std::collections::HashMap<&str, usize> = shape
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (*c, i))
                .collect();
            let records = matches!(imp, Implicit::GetAllRecordsWhere);
            let cost = shape.nodes + if records { RECORD_COST } else { 0 };
            let mut out = Vec::new();
            scan(ctx, class, cost, |r, row| {
                // Each column's string form is made at most once per row, and only if
                // the evaluation reaches it.
                let cells: Vec<std::cell::OnceCell<Option<String>>> =
                    columns.iter().map(|_| std::cell::OnceCell::new()).collect();
                let mut lookup = |c: &str| {
                    let i = *index.get(c)?;
                    cells[i].get_or_init(|| columns[i].value(r, row)).as_deref()
                };
                let keep = expr.eval(&mut lookup).map_err(|missing| {
                    ApiError::new(
                        codes::INTERNAL_ERROR,
                        ["missing field".to_string(), missing, String::new()],
                    )
                })?;
                if keep {
                    out.push(if records {
                        (r.to_string(), Some(record_of(ctx, class, row)))
                    } else {
                        (r.to_string(), None)
                    });
                }
                Ok(())
            })
            .await?;
            Ok(if records {
                Value::Struct(
                    out.into_iter()
                        .map(|(r, v)| (r, v.unwrap_or(Value::Nil)))
                        .collect(),
                )
            } else {
                Value::Array(out.into_iter().map(|(r, _)| Value::String(r)).collect())
            })
        }
        Implicit::Set(field) | Implicit::AddToMap(field) | Implicit::RemoveFromMap(field) => {
            set_field(ctx, class, field, imp, args).await
        }
    }
}

/// `get_all_records` written straight into the reply's codec: a struct of ref → record.
async fn encode_all_records<E: Encoder>(
    ctx: &Ctx<'_>,
    class: &Class,
    e: &mut E,
) -> Result<(), ApiError> {
    e.begin_struct();
    scan(ctx, class, RECORD_COST, |r, row| {
        e.member(r);
        encode_record_of(ctx, class, row, e);
        e.end_member();
        Ok(())
    })
    .await?;
    e.end_struct();
    Ok(())
}

/// What building one record costs, in filter terms (for [`scan`]'s budget).
const RECORD_COST: usize = 32;

/// Work per read-lock hold in a scan, in filter terms evaluated (a record counts as
/// [`RECORD_COST`]): about a millisecond, so a writer waits at most that long behind a
/// query, however many rows it reads.
const SCAN_BUDGET: usize = 16 * 1024;

/// Visits every row of `class` (that still exists when its turn comes), taking the read
/// lock for chunks of rows whose cost (`cost_per_row` each) fits [`SCAN_BUDGET`] and
/// releasing it between chunks. So one query over many rows never holds writers off for
/// long; the price is that rows written during the scan are seen either before or after
/// the write (each row is read whole under the lock). Between chunks the call yields to
/// the runtime, so a long scan does not keep other requests off its worker thread either.
async fn scan(
    ctx: &Ctx<'_>,
    class: &Class,
    cost_per_row: usize,
    mut visit: impl FnMut(&str, Row<'_>) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let refs = ctx.svc.db.read().refs(class.name);
    let per_hold = (SCAN_BUDGET / cost_per_row.max(1)).max(1);
    for (i, chunk) in refs.chunks(per_hold).enumerate() {
        if i > 0 {
            tokio::task::yield_now().await;
        }
        let tables = ctx.svc.db.read();
        for r in chunk {
            if let Some(row) = tables.row(class.name, r) {
                visit(r, row)?;
            }
        }
    }
    Ok(())
}

/// A filter column, resolved once per query rather than once per row and comparison.
enum Column {
    Ref,
    Field(&'static Field),
    Missing,
}

impl Column {
    fn of(class: &'static Class, column: &str) -> Column {
        if column == "_ref" {
            return Column::Ref;
        }
        match class.fields.iter().find(|f| f.column == column) {
            Some(f) => Column::Field(f),
            None => Column::Missing,
        }
    }

    /// The row's database string form of this column (None: no such column).
    fn value(&self, r: &str, row: Row<'_>) -> Option<String> {
        match self {
            Column::Ref => Some(r.to_string()),
            Column::Field(f) => field_value(row, f).map(|v| record::db_string(f, &v)),
            Column::Missing => None,
        }
    }
}

/// Parses a `*_where` expression within `max-filter-bytes` and `max-filter-nodes` (and a
/// nesting depth of [`MAX_FILTER_DEPTH`]); xapi has no bound. Refusals are
/// `INVALID_VALUE [expr; reason]`, like xapi's parse errors, with the expression cut to
/// its first 100 bytes when it is over the byte bound.
fn parse_filter(ctx: &Ctx<'_>, text: &str) -> Result<filter::Expr, ApiError> {
    let limits = &ctx.svc.limits;
    if text.len() > limits.max_filter_bytes {
        let mut cut = 100.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        return Err(ApiError::new(
            codes::INVALID_VALUE,
            [
                format!("{}…", &text[..cut]),
                format!(
                    "filter of {} bytes is longer than the limit of {} bytes (max-filter-bytes)",
                    text.len(),
                    limits.max_filter_bytes
                ),
            ],
        ));
    }
    let expr = filter::parse(text)
        .map_err(|why| ApiError::new(codes::INVALID_VALUE, [text.to_string(), why]))?;
    let shape = expr.shape();
    if shape.nodes > limits.max_filter_nodes || shape.depth > MAX_FILTER_DEPTH {
        return Err(ApiError::new(
            codes::INVALID_VALUE,
            [
                text.to_string(),
                format!(
                    "filter of {} terms nested {} deep is over the limit of {} terms \
                     (max-filter-nodes) or {MAX_FILTER_DEPTH} levels",
                    shape.nodes, shape.depth, limits.max_filter_nodes
                ),
            ],
        ));
    }
    Ok(expr)
}

/// Deepest nesting of a `*_where` expression. `and`/`or` chains nest to the left, so a
/// flat chain within the default term bound (2,048 terms) is 1,024 deep: it fits.
/// Evaluation never recurses, so this only refuses needless `not not not …` towers.
pub const MAX_FILTER_DEPTH: usize = 1024;

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

/// [`record_of`], told to an encoder instead of built.
fn encode_record_of<E: Encoder>(ctx: &Ctx<'_>, class: &Class, row: Row<'_>, e: &mut E) {
    let perms = match row {
        Row::Session(s) => Some(session_permissions(ctx, s)),
        _ => None,
    };
    record::encode_record(class, row, perms.as_deref(), e);
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
            // A session's map is bounded like a task's fields (`max-task-field-bytes`), so
            // that 500 sessions per user cannot each hold an unbounded map.
            let limit = tx.untracked().ledger.limits.field_bytes;
            let bytes: usize = s.other_config.iter().map(|(k, v)| k.len() + v.len()).sum();
            if bytes > limit {
                return Err(db_error(crate::db::DbError::TooLarge {
                    field: "other_config",
                    bytes,
                    limit,
                }));
            }
            tx.put_session(r.clone(), s);
            Ok(Value::void())
        })
        .await
}
