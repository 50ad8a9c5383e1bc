//! LXCA sessions: login (`POST /sessions`), logout (`DELETE /sessions`), the session
//! and `csrf` cookies, the CSRF check, and `GET /aicc`.
//!
//! An LXCA session *is* an XAPI session: the login is `session.login_with_password`
//! (originator `xclarity`), so users, roles, logout and the session GC are XAPI's.
//!
//! - The session cookie's value is the XAPI session ref (`OpaqueRef:` + a uuid v4 from the
//!   OS CSPRNG, 122 random bits). That is safe because a session ref is already a bearer
//!   credential that only its holder ever sees: the login returns it to the client that
//!   logged in and nothing else shows it (sessions have no `get_all`, no events, and a
//!   task's `session` field is internal). The cookie is `HttpOnly`, so a page's scripts
//!   cannot read it either; any XAPI session ref works as the cookie, as it works as a
//!   Redfish token.
//! - The CSRF token is a hash of the session ref (BLAKE2b, domain-separated): a site that
//!   makes a browser send the cookie cannot know it, knowing it does not reveal the ref,
//!   it needs no storage, and it stays valid as long as the session (across restarts, as
//!   sessions are durable). Every state-changing request (POST, PUT, DELETE, the login
//!   excepted) must carry it in `X-Csrf-Token`, compared in constant time.
//! - HTTP Basic authentication (LXCA documents it; Lenovo's Ruby client `xclarity_client`
//!   uses it with `auth_type 'basic_auth'`, sending the header on every request and no
//!   cookie) works on every resource when a request has no session cookie: the
//!   credentials map to a cached XAPI session (originator `xclarity-basic`) through the
//!   cache every face shares (`face/basic.rs`), so the password is checked (argon2, the
//!   login guard) once a minute, not per request. Such a request needs no CSRF token:
//!   CSRF is a browser sending a credential it holds for the site on its own, and the only
//!   such credential here is the cookie. A browser holds Basic credentials for a site only
//!   after a `WWW-Authenticate: Basic` challenge, which this face never sends (the
//!   Redfish face sends one to non-browser clients, and a browser uses what it learnt
//!   there only under `/redfish/`). What keeps a held credential from being used
//!   cross-site anyway is the rest: POST and PUT need a JSON body type, which a page
//!   cannot send to another site without a CORS pre-flight, and xapi's `OPTIONS` answer
//!   never allows credentials. If that answer ever echoed the origin and allowed
//!   credentials, this face would need a CSRF token with Basic too.

use std::sync::Arc;

use blake2::{Blake2b512, Digest};
use hyper::{HeaderMap, StatusCode};
use serde_json::{Value as Json, json};

use super::protocol::{self, Answer, Cookie};
use crate::api::dispatch::Service;
use crate::api::error::codes;
use crate::face::basic::{self, Lease};
use crate::face::xapi::{text, xapi};
use crate::wire::value::Value;

/// The session cookie (its value: the XAPI session ref).
pub const SESSION_COOKIE: &str = "lxca_session";
/// The CSRF cookie pylxca copies into `X-Csrf-Token` (`lxca_connection.py`).
pub const CSRF_COOKIE: &str = "csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// `originator` of the XAPI sessions this face makes.
pub const ORIGINATOR: &str = "xclarity";
/// `originator` of the XAPI sessions made for Basic authentication.
pub const ORIGINATOR_BASIC: &str = "xclarity-basic";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The XAPI session every call of this request uses.
    pub session_ref: String,
    /// `auth_user_name`: the default `createdBy` of the jobs it creates.
    pub user: String,
    /// A Basic caller's hold on its cached session (None for the session cookie): the
    /// session is logged out only once the cache has dropped it and no request holds it.
    pub lease: Option<Arc<Lease>>,
}

impl Caller {
    /// The caller authenticated with Basic credentials, not the session cookie.
    pub fn is_basic(&self) -> bool {
        self.lease.is_some()
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    // Borrowed from the header: the hot GET only passes it on (a copy was an
    // allocation per request).
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().trim_matches('"'))
}

/// The caller of a request, from its session cookie, checked through the pipeline
/// (`session.get_auth_user_name` with the session itself: the session check of any call,
/// and the one field a job needs, not the whole record), so an expired or logged-out
/// session is refused exactly as on XML-RPC.
///
/// Without a session cookie, `Authorization: Basic` credentials are the caller's: wrong
/// ones are answered as a wrong login is (401, "The user ID or password is not valid."),
/// a login the guard refuses for load as one (503). A cookie, when there is one, is the
/// credential (as on LXCA, where a browser may hold both).
pub async fn authenticate(svc: &Arc<Service>, headers: &HeaderMap) -> Result<Caller, Answer> {
    let Some(session_ref) = cookie(headers, SESSION_COOKIE) else {
        return basic_caller(svc, headers).await;
    };
    let session_ref = session_ref.to_string();
    let s = Value::str(&session_ref);
    let user = xapi(svc, "session.get_auth_user_name", vec![s.clone(), s])
        .await
        .map_err(|_| protocol::unauthorized())?;
    Ok(Caller {
        user: user.as_str().unwrap_or_default().to_string(),
        session_ref,
        lease: None,
    })
}

/// The caller of a request by its Basic credentials (401 without any).
async fn basic_caller(svc: &Arc<Service>, headers: &HeaderMap) -> Result<Caller, Answer> {
    let (user, password) = basic::credentials(headers).ok_or_else(protocol::unauthorized)?;
    match basic::session(svc, ORIGINATOR_BASIC, &user, &password).await {
        Ok(lease) => Ok(Caller {
            session_ref: lease.session_ref().to_string(),
            user: lease.user().to_string(),
            lease: Some(lease),
        }),
        // A cached session that ended between its check and its use, or the like.
        Err(e) if e.code == codes::SESSION_INVALID => Err(protocol::unauthorized()),
        Err(e) => Err(protocol::from_api("The session", &e)),
    }
}

/// The CSRF token of a session (64 hex digits).
pub fn csrf_token(session_ref: &str) -> String {
    let mut h = Blake2b512::new();
    h.update(b"xapi-taskd xclarity csrf\0");
    h.update(session_ref.as_bytes());
    h.finalize()[..32]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Equal bytes, in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// A state-changing request with the session cookie must carry the session's CSRF token:
/// 403 otherwise. A Basic request needs none (the module's comment says why).
pub fn check_csrf(headers: &HeaderMap, caller: &Caller) -> Result<(), Answer> {
    if caller.is_basic() {
        return Ok(());
    }
    let sent = headers
        .get(CSRF_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if same(sent, csrf_token(&caller.session_ref).as_bytes()) {
        return Ok(());
    }
    Err(protocol::error(
        StatusCode::FORBIDDEN,
        "The request has no valid CSRF token.",
        "Requests that change something must carry the value of the csrf cookie in the X-Csrf-Token header.",
        "Send the X-Csrf-Token header with the csrf cookie that the login set.",
    ))
}

fn session_cookies(session_ref: &str) -> [Cookie; 2] {
    [
        Cookie {
            name: SESSION_COOKIE,
            value: session_ref.to_string(),
            http_only: true,
            max_age: None,
        },
        Cookie {
            name: CSRF_COOKIE,
            value: csrf_token(session_ref),
            http_only: false,
            max_age: None,
        },
    ]
}

/// `POST /sessions` `{"UserId", "password"}`: exactly 200 (pylxca copies the `csrf`
/// cookie into its header only on 200) with the two cookies; 401 for bad credentials.
pub async fn login(svc: &Arc<Service>, body: &Json) -> Answer {
    let mut creds = Vec::new();
    for name in ["UserId", "password"] {
        match body.get(name) {
            Some(Json::String(s)) => creds.push(s.clone()),
            None | Some(Json::Null) => {
                return protocol::bad_request(&format!("{name}: is required to log in"));
            }
            Some(_) => return protocol::bad_request(&format!("{name}: must be a string")),
        }
    }
    let login = xapi(
        svc,
        "session.login_with_password",
        vec![
            Value::str(&creds[0]),
            Value::str(&creds[1]),
            Value::str("1.0"),
            Value::str(ORIGINATOR),
        ],
    )
    .await;
    let session_ref = match login {
        Ok(v) => v.as_str().unwrap_or_default().to_string(),
        Err(e) => return protocol::from_api("The session", &e),
    };
    let s = Value::str(&session_ref);
    let uuid = match xapi(svc, "session.get_uuid", vec![s.clone(), s]).await {
        Ok(v) => v.as_str().unwrap_or_default().to_string(),
        Err(e) => return protocol::from_api("The session", &e),
    };
    let mut body = protocol::success_body();
    body["response"] = json!({
        "pwChangeRequired": false,
        "session": {"id": uuid, "UserId": creds[0]},
    });
    let [session, csrf] = session_cookies(&session_ref);
    Answer::ok(body).cookie(session).cookie(csrf)
}

/// `DELETE /sessions`: `session.logout`, a JSON body (pylxca parses it), and both
/// cookies cleared. The old cookie is refused from then on, as the session is gone.
///
/// A Basic caller has no session of its own to end: its cached session serves every
/// request with the same credentials (some may be in flight), so it is left to the cache,
/// and the answer is the same success.
pub async fn logout(svc: &Arc<Service>, caller: &Caller) -> Answer {
    if !caller.is_basic()
        && let Err(e) = xapi(svc, "session.logout", vec![Value::str(&caller.session_ref)]).await
    {
        return protocol::from_api("The session", &e);
    }
    let [mut session, mut csrf] = session_cookies("");
    session.max_age = Some(0);
    csrf.max_age = Some(0);
    Answer::success().cookie(session).cookie(csrf)
}

/// `GET /aicc`: the appliance (the shape of LXCA's, `lenovo/xclarity_client`
/// `docs/apib/aicc.apib`); pylxca reads it to check that the login worked.
pub async fn aicc(svc: &Arc<Service>, caller: &Caller) -> Answer {
    let s = Value::str(&caller.session_ref);
    let pools = match xapi(svc, "pool.get_all_records", vec![s]).await {
        Ok(Value::Struct(p)) => p,
        Ok(_) => Vec::new(),
        Err(e) => return protocol::from_api("The appliance", &e),
    };
    let uuid = pools
        .first()
        .map(|(_, rec)| text(rec, "uuid"))
        .unwrap_or_default();
    Answer::ok(json!({
        "appliance": {
            "name": "xapi-taskd",
            "status": "Normal",
            "version": env!("CARGO_PKG_VERSION"),
            "build": "",
            "uuid": uuid,
            "runlevel": 3,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_in_any_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(hyper::header::COOKIE, "a=1; csrf=abc".parse().unwrap());
        h.append(
            hyper::header::COOKIE,
            "lxca_session=\"OpaqueRef:x\"".parse().unwrap(),
        );
        assert_eq!(cookie(&h, "csrf"), Some("abc"));
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("OpaqueRef:x"));
        assert_eq!(cookie(&h, "nope"), None);
    }

    #[test]
    fn csrf_tokens_are_per_session_and_checked() {
        let a = csrf_token("OpaqueRef:a");
        assert_eq!(a.len(), 64);
        assert_eq!(a, csrf_token("OpaqueRef:a"));
        assert_ne!(a, csrf_token("OpaqueRef:b"));
        assert!(!a.contains("OpaqueRef"));
        let caller = Caller {
            session_ref: "OpaqueRef:a".into(),
            user: "root".into(),
            lease: None,
        };
        let mut h = HeaderMap::new();
        assert!(check_csrf(&h, &caller).is_err());
        h.insert(CSRF_HEADER, csrf_token("OpaqueRef:b").parse().unwrap());
        let refused = check_csrf(&h, &caller).unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        h.insert(CSRF_HEADER, a.parse().unwrap());
        assert!(check_csrf(&h, &caller).is_ok());
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
