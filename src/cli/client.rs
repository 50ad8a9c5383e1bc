//! The connection every client subcommand shares: options, password, login, JSON-RPC calls,
//! logout.
//!
//! The client speaks JSON-RPC 2.0 on `<url>/jsonrpc` rather than XML-RPC: the reply is plain
//! JSON (serde_json, already a dependency), xapi's error shape there is one fixed object,
//! and the same endpoint is what xapi's own JSON clients use. HTTP is `ureq` (blocking: a
//! command does one thing at a time; `watch` keeps its one long `event.from` call in a thread).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

/// The password's environment variable; without it the password is prompted for.
pub const PASSWORD_ENV: &str = "XAPI_TASKD_PASSWORD";

/// What `session.login_with_password` is told about us (`originator`, shown in xapi's logs).
const ORIGINATOR: &str = "xapi-taskd-cli";

/// How long one HTTP exchange may take. `event.from` waits up to its own timeout (30 s in
/// `watch`) on the server, so this must be comfortably longer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(75);

/// Connection options shared by every client subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Server URL: http://host:port or https://host:port (JSON-RPC goes to <url>/jsonrpc).
    #[arg(long, env = "XAPI_TASKD_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// User to log in as (the password comes from XAPI_TASKD_PASSWORD, else a prompt).
    #[arg(long, env = "XAPI_TASKD_USER", default_value = "root")]
    pub user: String,
    /// Accept any TLS certificate (for the server's self-signed xapi-ssl.pem).
    #[arg(long)]
    pub insecure: bool,
}

/// A client-side failure, printed as one line (`error: …`) by the caller.
#[derive(Debug, Clone, PartialEq)]
pub enum CliError {
    /// The server answered with a XAPI error: its code and parameters.
    Api { code: String, params: Vec<String> },
    /// Anything else: usage, input, transport.
    Msg(String),
}

impl CliError {
    pub fn msg(s: impl Into<String>) -> CliError {
        CliError::Msg(s.into())
    }

    /// The XAPI error code, if this is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            CliError::Api { code, .. } => Some(code),
            CliError::Msg(_) => None,
        }
    }
}

impl std::fmt::Display for CliError {
    /// One line: xapi's `CODE param param…` (as `xe` prints the code first), or the message.
    /// Newlines inside parameters are flattened so the error stays one line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            CliError::Api { code, params } => {
                let mut s = code.clone();
                for p in params {
                    s.push(' ');
                    s.push_str(p);
                }
                s
            }
            CliError::Msg(m) => m.clone(),
        };
        f.write_str(&text.replace(['\n', '\r'], " "))
    }
}

impl From<String> for CliError {
    fn from(s: String) -> CliError {
        CliError::Msg(s)
    }
}

/// A logged-in session. `logout` is called by `Drop` too, so every exit path (errors
/// included) ends the session; `watch` calls it explicitly while its event thread still
/// holds a reference.
pub struct Client {
    agent: ureq::Agent,
    endpoint: String,
    session: String,
    next_id: AtomicU64,
    logged_out: AtomicBool,
}

impl Client {
    /// Builds the HTTP agent, gets the password and logs in.
    pub fn connect(conn: &Connection) -> Result<Client, CliError> {
        let endpoint = jsonrpc_endpoint(&conn.url)?;
        let password = password(&conn.user)?;
        let agent = agent(conn);
        let mut client = Client {
            agent,
            endpoint,
            session: String::new(),
            next_id: AtomicU64::new(1),
            // Nothing to log out from until the login succeeds.
            logged_out: AtomicBool::new(true),
        };
        let session = client.rpc(
            "session.login_with_password",
            vec![
                json!(conn.user),
                json!(password),
                json!("1.0"),
                json!(ORIGINATOR),
            ],
            None,
        )?;
        client.session = session
            .as_str()
            .ok_or_else(|| CliError::msg("the server's login reply is not a session reference"))?
            .to_string();
        client.logged_out.store(false, Ordering::SeqCst);
        Ok(client)
    }

    /// Calls `method(session, params…)`.
    pub fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, CliError> {
        self.call_in(method, params, None)
    }

    /// Calls `method(session, params…)` inside the task `task_ref` (xapi's `task-id` header):
    /// `task.create` then makes a subtask of it.
    pub fn call_in(
        &self,
        method: &str,
        params: Vec<Value>,
        task_ref: Option<&str>,
    ) -> Result<Value, CliError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(json!(self.session));
        all.extend(params);
        self.rpc(method, all, task_ref)
    }

    /// Ends the session (once; later calls do nothing). Failures are ignored: there is
    /// nothing useful to do about them on the way out.
    pub fn logout(&self) {
        if !self.logged_out.swap(true, Ordering::SeqCst) {
            let _ = self.rpc("session.logout", vec![json!(self.session)], None);
        }
    }

    fn rpc(
        &self,
        method: &str,
        params: Vec<Value>,
        task_ref: Option<&str>,
    ) -> Result<Value, CliError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id});
        let mut req = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json");
        if let Some(t) = task_ref {
            req = req.header("task-id", t);
        }
        let mut resp = req
            .send(body.to_string())
            .map_err(|e| transport_error(&self.endpoint, &e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| transport_error(&self.endpoint, &e))?;
        parse_reply(status, &text)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.logout();
    }
}

/// The HTTP agent every client subcommand uses: HTTP errors are answers (the caller reads
/// their bodies), every exchange has a timeout, `--insecure` accepts any certificate.
pub fn agent(conn: &Connection) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        // `--insecure`: rustls with a verifier that accepts any certificate.
        .disable_verification(conn.insecure)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(HTTP_TIMEOUT))
        .timeout_connect(Some(Duration::from_secs(10)))
        .user_agent(concat!("xapi-taskd-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// `<url>/jsonrpc`, whatever path the URL has (xapi routes by path prefix; the API is at
/// the root). Only http and https are accepted, so a typo fails before a password prompt.
pub fn jsonrpc_endpoint(url: &str) -> Result<String, CliError> {
    Ok(format!("{}/jsonrpc", root_url(url)?))
}

/// The scheme and host of `url` (`http://h:8080`): where the APIs are, whatever path the
/// URL has.
pub fn root_url(url: &str) -> Result<String, CliError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            CliError::msg(format!("--url must start with http:// or https://: {url}"))
        })?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(CliError::msg(format!("--url has no host: {url}")));
    }
    let scheme_len = url.len() - rest.len();
    Ok(format!("{}{host}", &url[..scheme_len]))
}

/// Decodes a JSON-RPC reply: v2 `result`, v2 `error` with xapi's `{code: 1, message: CODE,
/// data: [params]}`, v1's `error: [CODE, params…]`, or a standard JSON-RPC error object.
pub fn parse_reply(status: u16, text: &str) -> Result<Value, CliError> {
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => {
            let head: String = text.chars().take(80).collect();
            return Err(CliError::msg(format!(
                "the server did not answer JSON-RPC (HTTP {status}): {head}"
            )));
        }
    };
    match v.get("error") {
        None | Some(Value::Null) => match v.get("result") {
            Some(r) => Ok(r.clone()),
            None => Err(CliError::msg(format!(
                "JSON-RPC reply without result or error (HTTP {status})"
            ))),
        },
        Some(Value::Object(e)) => {
            let code = match e.get("message") {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "UNKNOWN_ERROR".to_string(),
            };
            let params = match e.get("data") {
                Some(Value::Array(a)) => a.iter().map(value_text).collect(),
                Some(Value::Null) | None => vec![],
                Some(other) => vec![value_text(other)],
            };
            Err(CliError::Api { code, params })
        }
        Some(Value::Array(a)) if !a.is_empty() => Err(CliError::Api {
            code: value_text(&a[0]),
            params: a[1..].iter().map(value_text).collect(),
        }),
        Some(other) => Err(CliError::msg(format!("server error: {other}"))),
    }
}

/// A JSON value as text: strings without quotes, anything else as JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn transport_error(endpoint: &str, e: &ureq::Error) -> CliError {
    let text = e.to_string();
    let hint = if matches!(e, ureq::Error::Rustls(_) | ureq::Error::Tls(_))
        || text.contains("certificate")
    {
        " (for a self-signed certificate, add --insecure)"
    } else {
        ""
    };
    CliError::msg(format!("cannot talk to {endpoint}: {text}{hint}"))
}

/// The password: `XAPI_TASKD_PASSWORD`, else a no-echo prompt on the terminal. Without
/// either, a clear error rather than a read from a pipe that may hold something else.
pub fn password(user: &str) -> Result<String, CliError> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        return crate::cli_user::prompt_password(&format!("Password for {user}: "))
            .map_err(CliError::Msg);
    }
    Err(CliError::msg(format!(
        "no password: set {PASSWORD_ENV} or run from a terminal to be prompted"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_is_jsonrpc_at_the_root() {
        let e = |u: &str| jsonrpc_endpoint(u).unwrap();
        assert_eq!(e("http://h:8080"), "http://h:8080/jsonrpc");
        assert_eq!(e("http://h:8080/"), "http://h:8080/jsonrpc");
        assert_eq!(e("https://h/RPC2"), "https://h/jsonrpc");
        assert!(jsonrpc_endpoint("h:8080").is_err());
        assert!(jsonrpc_endpoint("http:///x").is_err());
    }

    #[test]
    fn replies_decode_in_every_shape() {
        assert_eq!(
            parse_reply(200, r#"{"jsonrpc":"2.0","result":"OpaqueRef:x","id":1}"#).unwrap(),
            json!("OpaqueRef:x")
        );
        let err = parse_reply(
            200,
            r#"{"jsonrpc":"2.0","error":{"code":1,"message":"HANDLE_INVALID","data":["task","OpaqueRef:y"]},"id":1}"#,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "HANDLE_INVALID task OpaqueRef:y");
        assert_eq!(err.code(), Some("HANDLE_INVALID"));
        let v1 = parse_reply(
            200,
            r#"{"result":null,"error":["SESSION_INVALID","r"],"id":1}"#,
        );
        assert_eq!(v1.unwrap_err().to_string(), "SESSION_INVALID r");
        let std = parse_reply(
            200,
            r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#,
        );
        assert_eq!(std.unwrap_err().to_string(), "Parse error");
        let html = parse_reply(404, "<html>not found</html>").unwrap_err();
        assert!(html.to_string().contains("HTTP 404"), "{html}");
    }

    #[test]
    fn errors_are_one_line() {
        let e = CliError::Api {
            code: "X".into(),
            params: vec!["a\nb".into()],
        };
        assert_eq!(e.to_string(), "X a b");
    }
}
