//! XAPI errors: a code and its parameters, exactly as they go on the wire.
//!
//! Every failure a client can cause is an [`ApiError`]. The codec turns it into a
//! `Failure` envelope (`ErrorDescription = [code, params...]`) in one place.

use std::fmt;

/// The reason of `SESSION_AUTHENTICATION_FAILED` for wrong credentials, as xapi words it.
pub const WRONG_CREDENTIALS: &str = "Authentication failure";

/// A XAPI error: `ErrorDescription = [code, params...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub params: Vec<String>,
}

impl ApiError {
    pub fn new<I, S>(code: &'static str, params: I) -> ApiError
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ApiError {
            code,
            params: params.into_iter().map(Into::into).collect(),
        }
    }

    /// `INTERNAL_ERROR [msg]`, xapi's catch-all (type errors report OCaml exception text).
    pub fn internal(msg: impl Into<String>) -> ApiError {
        ApiError::new(codes::INTERNAL_ERROR, [msg.into()])
    }

    /// Whether this is a login the login guard refused for load (too many logins at once,
    /// too many in progress from one address, shutting down) rather than for its
    /// credentials: `SESSION_AUTHENTICATION_FAILED [user; reason]` whose reason is not
    /// xapi's [`WRONG_CREDENTIALS`]. Such a login may have the right password, so the
    /// REST faces answer it 503, not 401.
    pub fn is_login_refused_for_load(&self) -> bool {
        self.code == codes::SESSION_AUTHENTICATION_FAILED
            && self
                .params
                .get(1)
                .is_some_and(|why| why != WRONG_CREDENTIALS)
    }

    /// `HANDLE_INVALID [class; ref]`: the class is the DB table name (`task`, `session`...).
    pub fn handle_invalid(class: &str, reference: &str) -> ApiError {
        ApiError::new(codes::HANDLE_INVALID, [class, reference])
    }

    /// The ErrorDescription list: code first, then the parameters.
    pub fn description(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.params.len() + 1);
        out.push(self.code.to_string());
        out.extend(self.params.iter().cloned());
        out
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        for p in &self.params {
            write!(f, " {p:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// A store that could not commit (or, for a remote one, could not be reached): the
/// message says which, and whether the change was made.
impl From<crate::db::backend::BackendError> for ApiError {
    fn from(e: crate::db::backend::BackendError) -> ApiError {
        ApiError::internal(e.0)
    }
}

/// Error code strings, as in xen-api's `ocaml/xapi-consts/api_errors.ml`.
pub mod codes {
    pub const SESSION_AUTHENTICATION_FAILED: &str = "SESSION_AUTHENTICATION_FAILED";
    pub const SESSION_AUTHORIZATION_FAILED: &str = "SESSION_AUTHORIZATION_FAILED";
    pub const SESSION_INVALID: &str = "SESSION_INVALID";
    pub const HANDLE_INVALID: &str = "HANDLE_INVALID";
    pub const UUID_INVALID: &str = "UUID_INVALID";
    pub const MESSAGE_METHOD_UNKNOWN: &str = "MESSAGE_METHOD_UNKNOWN";
    pub const MESSAGE_PARAMETER_COUNT_MISMATCH: &str = "MESSAGE_PARAMETER_COUNT_MISMATCH";
    pub const RBAC_PERMISSION_DENIED: &str = "RBAC_PERMISSION_DENIED";
    pub const MAP_DUPLICATE_KEY: &str = "MAP_DUPLICATE_KEY";
    pub const INVALID_VALUE: &str = "INVALID_VALUE";
    pub const VALUE_NOT_SUPPORTED: &str = "VALUE_NOT_SUPPORTED";
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
    pub const OPERATION_NOT_ALLOWED: &str = "OPERATION_NOT_ALLOWED";
    pub const TASK_CANCELLED: &str = "TASK_CANCELLED";
    pub const TOO_MANY_PENDING_TASKS: &str = "TOO_MANY_PENDING_TASKS";
    pub const SESSION_NOT_REGISTERED: &str = "SESSION_NOT_REGISTERED";
    pub const EVENTS_LOST: &str = "EVENTS_LOST";
    pub const EVENT_FROM_TOKEN_PARSE_FAILURE: &str = "EVENT_FROM_TOKEN_PARSE_FAILURE";
    pub const XMLRPC_UNMARSHAL_FAILURE: &str = "XMLRPC_UNMARSHAL_FAILURE";
    /// Not an api_errors code: xapi's literal first element for "no async mode" (spec §1.5 step 9).
    pub const FAULT: &str = "Fault";
}
