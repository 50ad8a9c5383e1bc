//! The task messages with real semantics (xapi's `xapi_task.ml`, spec §4).
//!
//! Each mutating message is one decision ([`crate::db::Tx`]): it reads the rows it needs,
//! checks, and leaves the rows it writes; the store commits that plan only if what it read
//! is still current (see [`crate::db::backend`]), so a check cannot go stale before its
//! write, on one server or on many. Base permissions were checked by the dispatcher; here
//! come only the checks that depend on state: ownership (`task.destroy/any` for other
//! users' tasks) and, for `set_other_config`, the protected keys the new map would change.

use super::datamodel::TASK_PROTECTED_KEYS;
use super::dispatch::{Ctx, db_error, require_caller};
use super::error::ApiError;
use super::marshal::arg;
use super::rbac;
use crate::db::{DbError, NULL_REF, TaskRow, TaskStatus, Tx, maps, new_ref, new_uuid, now};
use crate::wire::value::Value;

/// `task.create(label, description)`: a pending task owned by the caller's session.
///
/// Its parent is the task named by the HTTP `task-id` header (xapi: the call runs inside
/// that task), else the one named by `subtask-of` (our extension). A parent that does not
/// exist is refused with `HANDLE_INVALID` rather than stored as a dangling link.
pub async fn create(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let caller = ctx.caller();
    let parent = ctx
        .meta
        .task_id
        .as_deref()
        .or(ctx.meta.subtask_of.as_deref());
    let (label, description) = (arg::string(&args[0]), arg::string(&args[1]));
    ctx.svc
        .db
        .transact(|tx| {
            require_caller(ctx, tx)?;
            let host = &tx.untracked().host_ref;
            let mut task = TaskRow::new(label, description, &caller.session_ref, host);
            if let Some(parent) = parent.filter(|p| *p != NULL_REF) {
                if tx.task(parent).is_none() {
                    return Err(ApiError::handle_invalid("task", parent));
                }
                task.subtask_of = parent.into();
            }
            ctx.svc.check_task_room(tx.untracked(), &task)?;
            let r = new_ref();
            tx.insert_task(r.clone(), task);
            Ok(Value::String(r))
        })
        .await
}

/// The caller's own checks on a task it is about to change: its session, ownership, the
/// task itself (`HANDLE_INVALID` for a privileged caller naming a task that is gone).
fn owned_task<'t>(ctx: &Ctx<'_>, tx: &mut Tx<'t>, r: &str) -> Result<&'t TaskRow, ApiError> {
    require_caller(ctx, tx)?;
    rbac::assert_task_owner(&ctx.svc.api, tx, ctx.caller(), r)?;
    tx.task(r)
        .ok_or_else(|| ApiError::handle_invalid("task", r))
}

/// Ownership check, then `change` on a copy of the task, written back if it changed.
async fn mutate(
    ctx: &Ctx<'_>,
    task_ref: &str,
    change: impl Fn(&mut TaskRow) -> Result<(), DbError> + Send + Sync,
) -> Result<(), ApiError> {
    ctx.svc
        .db
        .transact(|tx| {
            let mut row = owned_task(ctx, tx, task_ref)?.clone();
            change(&mut row).map_err(db_error)?;
            tx.update_task(task_ref, row).map_err(db_error)?;
            Ok(())
        })
        .await
}

/// `task.destroy`: a completed task is deleted; an unfinished one only gets the marker
/// `current_operations["task"] = "destroy"`, and the GC deletes it once it completes.
/// A second destroy of an unfinished task is `MAP_DUPLICATE_KEY` (xapi's non-idempotent map add).
pub async fn destroy(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]);
    ctx.svc
        .db
        .transact(|tx| {
            let task = owned_task(ctx, tx, r)?;
            if task.status.is_completed() {
                tx.delete_task(r);
            } else {
                let mut row = task.clone();
                maps::add(
                    &mut row.current_operations,
                    "task",
                    "current_operations",
                    r,
                    "task",
                    "destroy",
                )
                .map_err(db_error)?;
                tx.update_task(r, row).map_err(db_error)?;
            }
            Ok(Value::void())
        })
        .await
}

/// `task.cancel`: records the request and nothing else. It never fails on state; it
/// replaces `current_operations` with `{<cancelling call's task>: cancel}`: the task the
/// call runs in (`task-id` header, or an `Async.task.cancel`'s own task), else, as for a
/// sync task call in xapi, a non-database `DummyRef:|<uuid>|task.cancel`.
/// The task's owner notices and finishes it (e.g. `set_status cancelled`).
pub async fn cancel(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]);
    let key = match &ctx.current_task {
        Some(t) => t.clone(),
        None => format!("DummyRef:|{}|task.cancel", new_uuid()),
    };
    mutate(ctx, r, |t| {
        t.current_operations = thin_vec::thin_vec![(key.clone(), "cancel".to_string())];
        Ok(())
    })
    .await?;
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
pub async fn set_status(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let status = TaskStatus::parse(arg::string(&args[1]))
        .ok_or_else(|| super::marshal::failure("Unknown tag/contents"))?;
    let at = now();
    mutate(ctx, arg::string(&args[0]), |t| {
        if completes(t.status, status) {
            t.finished = at;
        }
        t.status = status;
        Ok(())
    })
    .await?;
    Ok(Value::void())
}

/// Whether a change of status from `old` to `new` completes the task: it was pending or
/// cancelling and is now success, failure or cancelled. A change between two completed
/// statuses keeps the first `finished`; a task reopened and completed again gets a new one.
fn completes(old: TaskStatus, new: TaskStatus) -> bool {
    new.is_completed() && !old.is_completed()
}

/// `task.set_progress`: stored as given, without a range check (xapi does none).
pub async fn set_progress(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let progress = arg::float(&args[1]);
    mutate(ctx, arg::string(&args[0]), |t| {
        t.progress = progress;
        Ok(())
    })
    .await?;
    Ok(Value::void())
}

pub async fn set_result(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let result = arg::string(&args[1]);
    mutate(ctx, arg::string(&args[0]), |t| {
        t.result = result.into();
        Ok(())
    })
    .await?;
    Ok(Value::void())
}

pub async fn set_error_info(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let info = arg::strings(&args[1]);
    mutate(ctx, arg::string(&args[0]), |t| {
        t.error_info = info.as_slice().into();
        Ok(())
    })
    .await?;
    Ok(Value::void())
}

/// `task.add_to_other_config`: the key's permission was checked by the dispatcher; then
/// ownership; an existing key is `MAP_DUPLICATE_KEY` even with the same value.
pub async fn add_to_other_config(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]);
    let key = arg::string(&args[1]);
    maps::check_key(key).map_err(db_error)?;
    let value = arg::string(&args[2]);
    mutate(ctx, r, |t| {
        maps::add(&mut t.other_config, "task", "other_config", r, key, value)
    })
    .await?;
    Ok(Value::void())
}

/// `task.remove_from_other_config`: a missing key is not an error.
pub async fn remove_from_other_config(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let key = arg::string(&args[1]);
    mutate(ctx, arg::string(&args[0]), |t| {
        t.other_config.retain(|(k, _)| k != key);
        Ok(())
    })
    .await?;
    Ok(Value::void())
}

/// `task.set_other_config`: ownership first, then xapi's diff rule
/// (`Helpers.set_map_with_rbac`): every protected key the new map adds or changes needs
/// its `add_to_other_config/key:` permission, every one it drops its
/// `remove_from_other_config/key:` permission; unchanged protected entries pass.
pub async fn set_other_config(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let r = arg::string(&args[0]);
    let new_map = arg::string_map(&args[1]);
    maps::check_keys(&new_map).map_err(db_error)?;
    ctx.svc
        .db
        .transact(|tx| {
            let task = owned_task(ctx, tx, r)?;
            check_protected_diff(ctx, &task.other_config, &new_map)?;
            let mut row = task.clone();
            row.other_config = new_map.as_slice().into();
            tx.update_task(r, row).map_err(db_error)?;
            Ok(Value::void())
        })
        .await
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
