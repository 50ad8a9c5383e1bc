//! The task messages with real semantics (xapi's `xapi_task.ml`, spec §4).
//!
//! Each mutating message takes the database write lock once and does its ownership check
//! and its write under it, so a check cannot go stale before the write. Base permissions
//! were checked by the dispatcher; here come only the checks that depend on state:
//! ownership (`task.destroy/any` for other users' tasks) and, for `set_other_config`,
//! the protected keys the new map would change.

use super::datamodel::TASK_PROTECTED_KEYS;
use super::dispatch::{Ctx, db_error};
use super::error::ApiError;
use super::marshal::arg;
use super::rbac;
use crate::db::{DbError, NULL_REF, TaskRow, TaskStatus, maps, new_ref, new_uuid, now};
use crate::wire::value::Value;

/// `task.create(label, description)`: a pending task owned by the caller's session.
///
/// Its parent is the task named by the HTTP `task-id` header (xapi: the call runs inside
/// that task), else the one named by `subtask-of` (our extension). A parent that does not
/// exist is refused with `HANDLE_INVALID` rather than stored as a dangling link.
pub fn create(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let caller = ctx.caller();
    let parent = ctx
        .meta
        .task_id
        .as_deref()
        .or(ctx.meta.subtask_of.as_deref());
    let mut tables = ctx.svc.db.write();
    let host = tables.host_ref.clone();
    let mut task = TaskRow::new(
        arg::string(&args[0]),
        arg::string(&args[1]),
        &caller.session_ref,
        &host,
    );
    if let Some(parent) = parent.filter(|p| *p != NULL_REF) {
        if tables.task(parent).is_none() {
            return Err(ApiError::handle_invalid("task", parent));
        }
        task.subtask_of = parent.into();
    }
    ctx.svc.check_task_room(&tables, &task)?;
    let r = new_ref();
    tables.insert_task(r.clone(), task);
    Ok(Value::String(r))
}

/// Ownership check, then `change` on the task under the same lock.
fn mutate<T>(
    ctx: &Ctx<'_>,
    task_ref: &str,
    change: impl FnOnce(&mut TaskRow) -> Result<T, DbError>,
) -> Result<T, ApiError> {
    let mut tables = ctx.svc.db.write();
    rbac::assert_task_owner(&ctx.svc.api, &tables, ctx.caller(), task_ref)?;
    tables.update_task(task_ref, change).map_err(db_error)
}

/// `task.destroy`: a completed task is deleted; an unfinished one only gets the marker
/// `current_operations["task"] = "destroy"`, and the GC deletes it once it completes.
/// A second destroy of an unfinished task is `MAP_DUPLICATE_KEY` (xapi's non-idempotent map add).
pub fn destroy(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]);
    let mut tables = ctx.svc.db.write();
    rbac::assert_task_owner(&ctx.svc.api, &tables, ctx.caller(), r)?;
    let status = tables
        .task(r)
        .map(|t| t.status)
        .ok_or_else(|| ApiError::handle_invalid("task", r))?;
    if status.is_completed() {
        tables.delete_task(r).map_err(db_error)?;
    } else {
        tables
            .update_task(r, |t| {
                maps::add(
                    &mut t.current_operations,
                    "task",
                    "current_operations",
                    r,
                    "task",
                    "destroy",
                )
            })
            .map_err(db_error)?;
    }
    Ok(Value::void())
}

/// `task.cancel`: records the request and nothing else. It never fails on state; it
/// replaces `current_operations` with `{<cancelling call's task>: cancel}`: the task the
/// call runs in (`task-id` header, or an `Async.task.cancel`'s own task), else, as for a
/// sync task call in xapi, a non-database `DummyRef:|<uuid>|task.cancel`.
/// The task's owner notices and finishes it (e.g. `set_status cancelled`).
pub fn cancel(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]);
    let key = match &ctx.current_task {
        Some(t) => t.clone(),
        None => format!("DummyRef:|{}|task.cancel", new_uuid()),
    };
    mutate(ctx, r, |t| {
        t.current_operations = thin_vec::thin_vec![(key, "cancel".to_string())];
        Ok(())
    })?;
    Ok(Value::void())
}

/// `task.set_status`: any value from any value; `progress` stays as it is.
///
/// Deliberately unlike xapi (whose `set_status` writes the status only, leaving `finished`
/// at the epoch): a task that goes from unfinished to completed is stamped `finished =
/// now`. In xapi only xapi itself completes tasks, and it stamps them; here external
/// clients (XAPI, Redfish, XClarity) complete them through this message, and without the
/// stamp such a task shows no end time anywhere and the GC removes it at its next pass
/// instead of `completed_task_timeout` after it finished. `Async.` completions stamp in
/// [`super::dispatch::complete_task`]; every other status change comes through here.
pub fn set_status(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let status = TaskStatus::parse(arg::string(&args[1]))
        .ok_or_else(|| super::marshal::failure("Unknown tag/contents"))?;
    let at = now();
    mutate(ctx, arg::string(&args[0]), |t| {
        if completes(t.status, status) {
            t.finished = at;
        }
        t.status = status;
        Ok(())
    })?;
    Ok(Value::void())
}

/// Whether a change of status from `old` to `new` completes the task: it was pending or
/// cancelling and is now success, failure or cancelled. A change between two completed
/// statuses keeps the first `finished`; a task reopened and completed again gets a new one.
fn completes(old: TaskStatus, new: TaskStatus) -> bool {
    new.is_completed() && !old.is_completed()
}

/// `task.set_progress`: stored as given, without a range check (xapi does none).
pub fn set_progress(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let progress = arg::float(&args[1]);
    mutate(ctx, arg::string(&args[0]), |t| {
        t.progress = progress;
        Ok(())
    })?;
    Ok(Value::void())
}

pub fn set_result(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let result = arg::string(&args[1]).to_string();
    mutate(ctx, arg::string(&args[0]), |t| {
        t.result = result.into();
        Ok(())
    })?;
    Ok(Value::void())
}

pub fn set_error_info(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let info = arg::strings(&args[1]);
    mutate(ctx, arg::string(&args[0]), |t| {
        t.error_info = info.into();
        Ok(())
    })?;
    Ok(Value::void())
}

/// `task.add_to_other_config`: the key's permission was checked by the dispatcher; then
/// ownership; an existing key is `MAP_DUPLICATE_KEY` even with the same value.
pub fn add_to_other_config(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]);
    let key = arg::string(&args[1]);
    maps::check_key(key).map_err(db_error)?;
    let value = arg::string(&args[2]);
    mutate(ctx, r, |t| {
        maps::add(&mut t.other_config, "task", "other_config", r, key, value)
    })?;
    Ok(Value::void())
}

/// `task.remove_from_other_config`: a missing key is not an error.
pub fn remove_from_other_config(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let key = arg::string(&args[1]).to_string();
    mutate(ctx, arg::string(&args[0]), |t| {
        t.other_config.retain(|(k, _)| *k != key);
        Ok(())
    })?;
    Ok(Value::void())
}

/// `task.set_other_config`: ownership first, then xapi's diff rule
/// (`Helpers.set_map_with_rbac`): every protected key the new map adds or changes needs
/// its `add_to_other_config/key:` permission, every one it drops its
/// `remove_from_other_config/key:` permission; unchanged protected entries pass.
pub fn set_other_config(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]);
    let new_map = arg::string_map(&args[1]);
    maps::check_keys(&new_map).map_err(db_error)?;
    let mut tables = ctx.svc.db.write();
    let caller = ctx.caller();
    rbac::assert_task_owner(&ctx.svc.api, &tables, caller, r)?;
    let old_map = tables
        .task(r)
        .map(|t| t.other_config.clone())
        .ok_or_else(|| ApiError::handle_invalid("task", r))?;
    check_protected_diff(ctx, &old_map, &new_map)?;
    tables
        .update_task(r, |t| {
            t.other_config = new_map.into();
            Ok(())
        })
        .map_err(db_error)?;
    Ok(Value::void())
}

fn check_protected_diff(
    ctx: &Ctx<'_>,
    old: &[(String, String)],
    new: &[(String, String)],
) -> Result<(), ApiError> {
    let get =
        |m: &[(String, String)], k: &str| m.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    for (key, _) in TASK_PROTECTED_KEYS {
        let (before, after) = (get(old, key), get(new, key));
        let permission = match (&before, &after) {
            (_, Some(a)) if before.as_ref() != Some(a) => "task.add_to_other_config",
            (Some(_), None) => "task.remove_from_other_config",
            _ => continue,
        };
        let permission = format!("{permission}/key:{}", key.to_lowercase());
        rbac::check(&ctx.svc.api, ctx.caller(), &permission)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_step_from_unfinished_to_completed_stamps_finished() {
        use TaskStatus::*;
        let all = [Pending, Cancelling, Success, Failure, Cancelled];
        for old in all {
            for new in all {
                let expected = matches!(old, Pending | Cancelling)
                    && matches!(new, Success | Failure | Cancelled);
                assert_eq!(completes(old, new), expected, "{old:?} -> {new:?}");
            }
        }
    }
}
