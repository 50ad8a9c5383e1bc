//! Who is calling: Redfish sessions (`X-Auth-Token`) and HTTP Basic authentication, both
//! mapped onto XAPI sessions so that XAPI's users, roles, session GC and ownership rule
//! apply unchanged.
//!
//! - A Redfish session *is* an XAPI session: `POST …/Sessions` calls
//!   `session.login_with_password` (originator `redfish`), the `X-Auth-Token` is the
//!   session ref (`OpaqueRef:` + a uuid v4, unguessable) and the Redfish session `Id` is
//!   the session's uuid (path-safe, and not a credential). Any XAPI session ref works as
//!   a token, so an XML-RPC client can hand its session to a Redfish tool.
//! - Basic credentials map to cached XAPI sessions (originator `redfish-basic`) through
//!   the cache every face shares (`face/basic.rs`: bounded, never a password, a lease per
//!   request so no session is logged out under a request in flight).
//!
//! Every check goes through the XAPI pipeline (`session.get_uuid` with the session
//! itself), so an expired or logged-out session is refused exactly as on XML-RPC.

use std::sync::Arc;

use hyper::HeaderMap;

use super::protocol::{self, Answer};
use crate::api::dispatch::Service;
use crate::api::error::ApiError;
use crate::face::basic::{self, Lease};
use crate::face::xapi::{field, xapi};
use crate::wire::value::Value;

pub use crate::face::basic::{login, logout};

/// `originator` of sessions made by `POST …/Sessions`.
pub const ORIGINATOR_SESSION: &str = "redfish";
/// `originator` of sessions made for Basic authentication (not listed as Redfish sessions).
pub const ORIGINATOR_BASIC: &str = "redfish-basic";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The XAPI session every call of this request uses.
    pub session_ref: String,
    /// The session's uuid: its Redfish `Id`.
    pub uuid: String,
    /// True when the caller came in with Basic credentials rather than a token.
    pub basic: bool,
    /// A Basic caller's hold on its cached session: the session is logged out only once
    /// the cache has dropped it and no request holds it any more.
    pub lease: Option<Arc<Lease>>,
}

impl Caller {
    /// The session's record (`session.get_record`), for the Session resources; fetched
    /// only by them, since every other resource needs just the session's validity.
    pub async fn record(&self, svc: &Arc<Service>) -> Result<Value, ApiError> {
        let s = Value::str(&self.session_ref);
        xapi(svc, "session.get_record", vec![s.clone(), s]).await
    }
}

/// The user a session record belongs to.
pub fn user_name(record: &Value) -> String {
    field(record, "auth_user_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Administrator in Redfish terms: the local superuser or a pool-admin (the roles that
/// may act on other users' sessions), from the session's record.
pub fn is_admin(record: &Value) -> bool {
    let superuser = matches!(field(record, "is_local_superuser"), Some(Value::Bool(true)));
    let pool_admin = matches!(field(record, "rbac_permissions"), Some(Value::Array(p))
        if p.iter().any(|x| x.as_str() == Some("pool-admin")));
    superuser || pool_admin
}

/// Authenticates a request: `X-Auth-Token` first, then `Authorization: Basic`.
/// The error is the answer to send: 401, saying nothing about why, or, for Basic
/// credentials the login guard could not check because of load, 503 with `Retry-After`
/// (the credentials may be right: a 401 would tell the client they are wrong).
pub async fn authenticate(svc: &Arc<Service>, headers: &HeaderMap) -> Result<Caller, Answer> {
    if let Some(token) = token(headers) {
        return check(svc, token, false)
            .await
            .map_err(|_| protocol::unauthorized());
    }
    let Some((user, password)) = basic::credentials(headers) else {
        return Err(protocol::unauthorized());
    };
    let lease = basic::session(svc, ORIGINATOR_BASIC, &user, &password)
        .await
        .map_err(|e| refusal(&e))?;
    Ok(Caller {
        session_ref: lease.session_ref().to_string(),
        uuid: lease.uuid().to_string(),
        basic: true,
        lease: Some(lease),
    })
}

/// The answer to a Basic login that failed, as session creation answers the same error
/// (`protocol::from_api`): 503 if the login guard refused it for load, 401 for
/// credentials that are not valid, and the server's own failures (an unreadable users
/// file: `INTERNAL_ERROR`) as what they are, not as a wrong password. A login names no
/// resource, so no answer here names a URI.
fn refusal(e: &ApiError) -> Answer {
    protocol::from_api("", e)
}

/// The `X-Auth-Token` a request authenticates with, if it has one (one that is not text
/// is no token: the request may still bring Basic credentials).
pub fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        // A name made at compile time: a `&str` key is parsed (and its case checked)
        // on every lookup.
        .get(const { hyper::header::HeaderName::from_static("x-auth-token") })
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Validates a session ref through the pipeline (`session.get_uuid`: the session check
/// of any call with it, and the uuid the Session resources are named by).
pub async fn check(svc: &Arc<Service>, session_ref: &str, basic: bool) -> Result<Caller, ApiError> {
    let uuid = xapi(
        svc,
        "session.get_uuid",
        vec![Value::str(session_ref), Value::str(session_ref)],
    )
    .await?;
    Ok(Caller {
        session_ref: session_ref.to_string(),
        uuid: uuid.as_str().unwrap_or_default().to_string(),
        basic,
        lease: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::codes;
    use hyper::StatusCode;

    /// A Basic login's failure gets the status session creation gives the same error.
    #[test]
    fn a_basic_login_failure_is_answered_as_session_creation_answers_it() {
        let wrong = ApiError::new(
            codes::SESSION_AUTHENTICATION_FAILED,
            ["root", "Authentication failure"],
        );
        assert_eq!(refusal(&wrong).status, StatusCode::UNAUTHORIZED);
        let busy = ApiError::new(
            codes::SESSION_AUTHENTICATION_FAILED,
            ["root", "too many failed logins"],
        );
        assert_eq!(refusal(&busy).status, StatusCode::SERVICE_UNAVAILABLE);
        let broken = ApiError::internal("the users file cannot be read".to_string());
        assert_eq!(refusal(&broken).status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
