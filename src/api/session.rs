//! Session messages (xapi's `xapi_session.ml`, spec §3).

use super::dispatch::Ctx;
use super::error::{ApiError, WRONG_CREDENTIALS, codes};
use super::login_guard::Refusal;
use super::marshal::arg;
use crate::db::{NULL_REF, SessionRow, new_ref, new_uuid, now};
use crate::wire::value::Value;

/// `session.login_with_password(uname, pwd [, version [, originator]])`.
///
/// The password check (argon2) is deliberately slow, so it runs on the blocking pool and
/// never stalls the async workers, within the bounds of `login_guard.rs` (concurrency,
/// backoff, negative cache). `root` gets a local-superuser session
/// (`auth_user_sid = ""`, no permission list), like a PAM login on xapi; other users get
/// their role's permissions, fixed for the life of the session.
pub async fn login(ctx: &Ctx<'_>, args: &[Value]) -> Result<Value, ApiError> {
    let uname = arg::string(&args[0]).to_string();
    let pwd = arg::string(&args[1]).to_string();
    let originator = arg::string(&args[3]).to_string();
    let svc = ctx.svc.clone();
    let name = uname.clone();
    let credential = move || svc.users.credential(&name);
    let peer = super::limits::peer();
    let failed = |msg: &str| {
        ApiError::new(
            codes::SESSION_AUTHENTICATION_FAILED,
            [uname.clone(), msg.to_string()],
        )
    };
    let user = match ctx
        .svc
        .login_guard
        .login(credential, &uname, &pwd, peer)
        .await
    {
        Ok(u) => u,
        Err(Refusal::Failed) => return Err(failed(WRONG_CREDENTIALS)),
        Err(Refusal::Busy(why)) => return Err(failed(why)),
        Err(Refusal::Store(msg)) => {
            return Err(ApiError::new(
                codes::INTERNAL_ERROR,
                ["session.login_with_password".to_string(), msg],
            ));
        }
    };
    // The originator is kept with the session: bounded like a task field.
    let limit = ctx.svc.db.read().ledger.limits.field_bytes;
    if originator.len() > limit {
        return Err(super::dispatch::db_error(crate::db::DbError::TooLarge {
            field: "originator",
            bytes: originator.len(),
            limit,
        }));
    }
    let superuser = user.role.is_none();
    let t = now();
    let cap = ctx.svc.max_sessions_per_user;
    ctx.svc
        .db
        .transact(|tx| {
            let session = SessionRow {
                uuid: new_uuid(),
                this_host: tx.untracked().host_ref.clone(),
                this_user: NULL_REF.to_string(),
                last_active: t,
                pool: false,
                other_config: Vec::new(),
                is_local_superuser: superuser,
                subject: NULL_REF.to_string(),
                validation_time: t,
                auth_user_sid: if superuser {
                    String::new()
                } else {
                    user.id.clone()
                },
                auth_user_name: user.name.clone(),
                role: user.role.clone(),
                tasks: Default::default(),
                parent: NULL_REF.to_string(),
                originator: originator.clone(),
                client_certificate: false,
                legacy_events: None,
                revision: 0,
            };
            // Bound what one user can hold: at the cap, log out the least recently active
            // sessions that own no unfinished task (xapi never times out a session with a
            // pending task); if every one of them is busy, refuse this login (and log
            // nobody out). The count is kept by the tables, so below the cap this costs
            // nothing.
            if tx.untracked().usage(&user.name).sessions >= cap {
                let mine = tx.untracked().sessions_of_user(&user.name);
                let mut excess = (mine.len() + 1).saturating_sub(cap);
                for (old, _) in mine {
                    if excess == 0 {
                        break;
                    }
                    if tx.session(&old).is_some() && !tx.session_busy(&old) {
                        tx.delete_session(&old);
                        excess -= 1;
                    }
                }
                if excess > 0 {
                    return Err(failed(&format!(
                        "Too many sessions: {} already holds {cap} sessions that own unfinished \
                         tasks (max-sessions-per-user)",
                        user.name
                    )));
                }
            }
            let r = new_ref();
            tx.put_session(r.clone(), session);
            Ok(Value::String(r))
        })
        .await
}

/// `session.logout`: deletes the session. Its tasks stay (owned by nobody from now on).
/// Blocked event calls of this session wake, re-check it and answer `SESSION_INVALID`.
pub async fn logout(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    let r: &str = &ctx.caller().session_ref;
    ctx.svc
        .db
        .transact(|tx| {
            if tx.session_fixed(r).is_some() {
                tx.delete_session(r);
            }
            Ok(Value::void())
        })
        .await
}
