//! Role-based access control, in one place (xapi's `rbac.ml` and `TaskHelper.assert_op_valid`).
//!
//! A permission is a lower-cased wire name (`task.cancel`), a protected-key variant
//! (`task.add_to_other_config/key:applies_to`) or an extra permission (`task.destroy/any`).
//! The dispatcher checks the message's permission before any handler runs; handlers call
//! [`check`] again only for the permissions whose name depends on state (ownership of a
//! task, the keys a `set_other_config` changes).

use std::borrow::Cow;

use super::Api;
use super::error::{ApiError, codes};
use crate::db::Tx;

/// Who is calling: the parts of the session that access checks need, copied out of the
/// session row so that no lock is held while a handler runs. The session's ref is the
/// call's own argument, borrowed for the call ([`Caller::into_owned`] for work that
/// outlives it, an `Async.` call's task).
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    pub session_ref: Cow<'a, str>,
    pub auth_user_sid: String,
    pub is_local_superuser: bool,
    /// The user's role at login (None for the local superuser).
    pub role: Option<String>,
}

impl Caller<'_> {
    /// The caller with its session's ref copied, for work that outlives the call.
    pub fn into_owned(self) -> Caller<'static> {
        Caller {
            session_ref: Cow::Owned(self.session_ref.into_owned()),
            auth_user_sid: self.auth_user_sid,
            is_local_superuser: self.is_local_superuser,
            role: self.role,
        }
    }
}

/// `RBAC_PERMISSION_DENIED [perm; "No permission in user session. (Roles with this permission: …)"]`.
pub fn denied(api: &Api, permission: &str) -> ApiError {
    let roles = api.roles_for(permission).names().join(", ");
    ApiError::new(
        codes::RBAC_PERMISSION_DENIED,
        [
            permission.to_string(),
            format!("No permission in user session. (Roles with this permission: {roles})"),
        ],
    )
}

/// Whether the caller holds `permission`. The local superuser holds everything.
pub fn allowed(api: &Api, caller: &Caller, permission: &str) -> bool {
    if caller.is_local_superuser {
        return true;
    }
    let Some(role) = caller.role.as_deref() else {
        return false;
    };
    match super::datamodel::Roles::of_name(role) {
        Some(bit) => api.roles_for(permission).contains(bit),
        None => false,
    }
}

/// Checks one permission; the denial carries xapi's message.
pub fn check(api: &Api, caller: &Caller, permission: &str) -> Result<(), ApiError> {
    if allowed(api, caller, permission) {
        Ok(())
    } else {
        Err(denied(api, permission))
    }
}

/// [`check`] for a permission whose name has to be made (lower-cased, keyed): the local
/// superuser, who holds everything, is let through without making it.
pub fn check_named(
    api: &Api,
    caller: &Caller,
    permission: impl FnOnce() -> String,
) -> Result<(), ApiError> {
    if caller.is_local_superuser {
        return Ok(());
    }
    check(api, caller, &permission())
}

/// The permission a call needs: its lower-cased wire name, or for a message with
/// protected map keys whose `key` argument is one of them, `<wire>/key:<lower key>`.
pub fn permission_for(
    wire: &str,
    map_keys: &[(&str, super::datamodel::Roles)],
    key: Option<&str>,
) -> String {
    let base = wire.to_lowercase();
    match key {
        Some(k) if map_keys.iter().any(|(pk, _)| *pk == k) => {
            format!("{base}/key:{}", k.to_lowercase())
        }
        _ => base,
    }
}

/// xapi's task ownership rule (`TaskHelper.assert_op_valid`): the caller owns a task when
/// the task's creating session still exists and has the same `auth_user_sid` as the
/// caller's. Otherwise `task.destroy/any` is required. A missing task counts as not
/// owned, so unprivileged callers get `RBAC_PERMISSION_DENIED` for it and privileged
/// callers fall through to the handler's `HANDLE_INVALID`. What it reads (the task, its
/// owner's session) is part of the caller's decision, so an ownership that ends before the
/// write commits (the owner logs out) makes the decision run again.
pub fn assert_task_owner(
    api: &Api,
    tx: &mut Tx<'_>,
    caller: &Caller,
    task_ref: &str,
) -> Result<(), ApiError> {
    let owner = tx.task(task_ref).map(|t| t.session.as_str());
    let owner_sid = owner
        .and_then(|s| tx.session_fixed(s))
        .map(|s| s.auth_user_sid.as_str());
    if owner_sid == Some(caller.auth_user_sid.as_str()) {
        return Ok(());
    }
    check(api, caller, "task.destroy/any")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Option<&str>, superuser: bool) -> Caller<'static> {
        Caller {
            session_ref: "OpaqueRef:s".into(),
            auth_user_sid: "sid".into(),
            is_local_superuser: superuser,
            role: role.map(str::to_string),
        }
    }

    #[test]
    fn denial_message_lists_roles_in_xapi_order() {
        let api = Api::build();
        let e = check(&api, &caller(Some("read-only"), false), "task.destroy/any").unwrap_err();
        assert_eq!(
            e.description(),
            vec![
                "RBAC_PERMISSION_DENIED",
                "task.destroy/any",
                "No permission in user session. (Roles with this permission: pool-admin, pool-operator)"
            ]
        );
    }

    #[test]
    fn check_named_makes_the_name_only_for_those_it_checks() {
        let api = Api::build();
        let made = std::cell::Cell::new(0);
        let name = || {
            made.set(made.get() + 1);
            "task.destroy/any".to_string()
        };
        assert!(check_named(&api, &caller(None, true), name).is_ok());
        assert_eq!(made.get(), 0);
        let read_only = caller(Some("read-only"), false);
        assert_eq!(
            check_named(&api, &read_only, name),
            check(&api, &read_only, "task.destroy/any")
        );
        assert_eq!(made.get(), 1);
        assert!(check_named(&api, &caller(Some("pool-admin"), false), name).is_ok());
    }

    #[test]
    fn superuser_passes_everything_and_roles_are_graded() {
        let api = Api::build();
        assert!(allowed(&api, &caller(None, true), "task_get_record"));
        assert!(!allowed(
            &api,
            &caller(Some("pool-admin"), false),
            "task_get_record"
        ));
        assert!(allowed(
            &api,
            &caller(Some("pool-operator"), false),
            "task.destroy/any"
        ));
        assert!(!allowed(
            &api,
            &caller(Some("vm-admin"), false),
            "task.destroy/any"
        ));
        assert!(allowed(
            &api,
            &caller(Some("vm-operator"), false),
            "task.add_to_other_config/key:applies_to"
        ));
        assert!(!allowed(
            &api,
            &caller(Some("read-only"), false),
            "task.add_to_other_config/key:applies_to"
        ));
        assert!(!allowed(&api, &caller(None, false), "task.create"));
    }

    #[test]
    fn protected_key_permission_names() {
        let keys = crate::api::datamodel::TASK_PROTECTED_KEYS;
        assert_eq!(
            permission_for("task.add_to_other_config", keys, Some("XenCenterUUID")),
            "task.add_to_other_config/key:xencenteruuid"
        );
        // Matching is case-sensitive: a differently cased key is an ordinary key.
        assert_eq!(
            permission_for("task.add_to_other_config", keys, Some("xencenteruuid")),
            "task.add_to_other_config"
        );
    }
}
