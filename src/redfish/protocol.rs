//! Redfish protocol details (DSP0266), in one place: the headers every response carries,
//! the extended-error body, the Base registry messages we use, and how XAPI errors become
//! HTTP statuses.
//!
//! Handlers build an [`Answer`] (status, JSON body, extra headers, the schema it is
//! described by); [`finish`] turns it into the HTTP response, so no handler can forget
//! `OData-Version`, `Cache-Control`, `Link` or `ETag`.

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use hyper::HeaderMap;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value as Json, json};

use crate::api::error::{ApiError, codes};

/// The Base registry version our messages cite (DMTF `Base.1.22.1`).
pub const BASE: &str = "Base.1.22.1";
/// The task event registry (DMTF `TaskEvent.1.0.5`).
pub const TASK_EVENT: &str = "TaskEvent.1.0.5";

/// A response before the protocol headers are added.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Body,
    /// Our own literals (`Allow`, …) are kept borrowed: no copy, and no allocation to
    /// make a header value of them.
    pub headers: Vec<(HeaderName, Cow<'static, str>)>,
    /// The `Allow` of a success, written after `headers` (a field rather than one more
    /// of them: the hot GETs then push into no vector, and the literal needs no check).
    pub allow: Option<&'static HeaderValue>,
}

/// What goes in the body.
#[derive(Debug)]
pub enum Body {
    /// A resource or an error. Resources with an `@odata.type` get a `Link` header that
    /// names their JSON schema and an `ETag`.
    Json(Json),
    /// A resource already written as JSON (`json_out`), with its type's prepared
    /// headers.
    Written(Vec<u8>, &'static Prepared),
    /// `$metadata` (CSDL).
    Xml(String),
    Empty,
}

impl Answer {
    pub fn json(status: StatusCode, body: Json) -> Answer {
        Answer {
            status,
            body: Body::Json(body),
            headers: Vec::new(),
            allow: None,
        }
    }

    pub fn ok(body: Json) -> Answer {
        Answer::json(StatusCode::OK, body)
    }

    /// 200 with a resource written by `json_out`, of the type `kind` describes.
    pub fn ok_written(bytes: Vec<u8>, kind: &'static Prepared) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: Body::Written(bytes, kind),
            headers: Vec::new(),
            allow: None,
        }
    }

    pub fn empty(status: StatusCode) -> Answer {
        Answer {
            status,
            body: Body::Empty,
            headers: Vec::new(),
            allow: None,
        }
    }

    pub fn header(mut self, name: HeaderName, value: impl Into<Cow<'static, str>>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

/// One Base-registry message, as `@Message.ExtendedInfo` carries it.
pub fn base_message(id: &str, args: &[&str]) -> Json {
    let (text, severity, resolution) = base_text(id);
    let mut message = text.to_string();
    for (i, a) in args.iter().enumerate() {
        message = message.replace(&format!("%{}", i + 1), a);
    }
    json!({
        "@odata.type": "#Message.v1_3_0.Message",
        "MessageId": format!("{BASE}.{id}"),
        "Message": message,
        "MessageArgs": args,
        "MessageSeverity": severity,
        "Resolution": resolution,
    })
}

/// The texts of the Base messages this face sends (from DMTF's `Base.1.22.1.json`;
/// copied here because the server reads no registry files at run time).
fn base_text(id: &str) -> (&'static str, &'static str, &'static str) {
    match id {
        "ResourceNotFound" => (
            "The requested resource of type %1 named '%2' was not found.",
            "Critical",
            "Provide a valid resource identifier and resubmit the request.",
        ),
        "ResourceMissingAtURI" => (
            "The resource at the URI '%1' was not found.",
            "Critical",
            "Place a valid resource at the URI or correct the URI and resubmit the request.",
        ),
        "NoValidSession" => (
            "There is no valid session established with the implementation.",
            "Critical",
            "Establish a session before attempting any operations.",
        ),
        "InsufficientPrivilege" => (
            "There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.",
            "Critical",
            "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed.",
        ),
        "OperationNotAllowed" => (
            "The HTTP method is not allowed on this resource.",
            "Critical",
            "None.",
        ),
        "MalformedJSON" => (
            "The request body submitted was malformed JSON and could not be parsed by the receiving service.",
            "Critical",
            "Ensure that the request body is valid JSON and resubmit the request.",
        ),
        "PropertyMissing" => (
            "The property %1 is a required property and must be included in the request.",
            "Warning",
            "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed.",
        ),
        "PropertyValueTypeError" => (
            "The value '%1' for the property %2 is not a type that the property can accept.",
            "Warning",
            "Correct the value for the property in the request body and resubmit the request if the operation failed.",
        ),
        "QueryParameterUnsupported" => (
            "Query parameter '%1' is not supported.",
            "Warning",
            "Correct or remove the query parameter and resubmit the request.",
        ),
        "HeaderInvalid" => (
            "Header '%1' is invalid.",
            "Critical",
            "Resubmit the request with a valid request header.",
        ),
        "CreateLimitReachedForResource" => (
            "The create operation failed because the resource has reached the limit of possible resources.",
            "Critical",
            "Either delete resources and resubmit the request if the operation failed or do not resubmit the request.",
        ),
        "InternalError" => (
            "The request failed due to an internal service error.  The service is still operational.",
            "Critical",
            "Resubmit the request.  If the problem persists, consider resetting the service.",
        ),
        "UnrecognizedRequestBody" => (
            "The service detected a malformed request body that it was unable to interpret.",
            "Warning",
            "Correct the request body and resubmit the request if it failed.",
        ),
        "PayloadTooLarge" => (
            "The supplied payload exceeds the maximum size supported by the service.",
            "Critical",
            "Check that the supplied payload is correct and supported by this service.",
        ),
        "ServiceTemporarilyUnavailable" => (
            "The service is temporarily unavailable.  Retry in %1 seconds.",
            "Critical",
            "Wait for the indicated retry duration and retry the operation.",
        ),
        "Success" => ("The request completed successfully.", "OK", "None."),
        _ => (
            "A general error has occurred.  See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.",
            "Critical",
            "None.",
        ),
    }
}

/// The Redfish error body: `error.code`/`error.message` from the first message, all of
/// them in `@Message.ExtendedInfo`.
pub fn error_body(messages: Vec<Json>) -> Json {
    let first = messages.first().cloned().unwrap_or(Json::Null);
    json!({
        "error": {
            "code": first.get("MessageId").cloned().unwrap_or(Json::Null),
            "message": first.get("Message").cloned().unwrap_or(Json::Null),
            "@Message.ExtendedInfo": messages,
        }
    })
}

/// An error answer with one Base message.
pub fn error(status: StatusCode, id: &str, args: &[&str]) -> Answer {
    let a = Answer::json(status, error_body(vec![base_message(id, args)]));
    if status == StatusCode::UNAUTHORIZED {
        a.header(header::WWW_AUTHENTICATE, r#"Basic realm="xapi-taskd""#)
    } else {
        a
    }
}

/// 401: no or bad credentials. Says nothing about which part was wrong.
pub fn unauthorized() -> Answer {
    error(StatusCode::UNAUTHORIZED, "NoValidSession", &[])
}

/// Whether a request comes from a browser's page, which bmcweb (`forward_unauthorized`)
/// never sends a `WWW-Authenticate: Basic` challenge: a challenge makes the browser
/// prompt and then attach the credentials by itself to every later request to this
/// origin, another site's forms included. A browser is an `Accept` that names
/// `text/html` before any `*/*` (what a navigation sends; scripts and Redfish clients
/// send `*/*` or `application/json`), or an `X-Requested-With` (which script libraries
/// add). Redfish clients do not need the challenge: they send Basic credentials
/// unasked (DSP0266 still asks for the header, and the protocol validator checks it).
pub fn from_browser(headers: &HeaderMap) -> bool {
    if headers
        .get(const { HeaderName::from_static("x-requested-with") })
        .is_some_and(|v| !v.is_empty())
    {
        return true;
    }
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|range| range.split(';').next().unwrap_or_default().trim())
        .find(|t| t.eq_ignore_ascii_case("text/html") || *t == "*/*")
        .is_some_and(|t| t != "*/*")
}

/// Drops the Basic challenge of a 401 (for [`from_browser`] requests).
pub fn without_challenge(mut a: Answer) -> Answer {
    a.headers.retain(|(n, _)| *n != header::WWW_AUTHENTICATE);
    a
}

/// Whether a request body's `Content-Type` says JSON: `application/json` (any case),
/// with parameters or none, as bmcweb's `parseRequestAsJson` asks of every body it
/// reads. Everything else is refused, a missing type included: a page on another site
/// can send a form (`application/x-www-form-urlencoded`, `multipart/form-data`),
/// `text/plain`, or a body-less `fetch` with no type at all, and a browser would attach
/// its cached Basic credentials to any of them; a JSON type it cannot send without a
/// CORS pre-flight, which this server never grants with credentials. The Redfish
/// clients always send the type: sushy and DMTF's `redfish` with every body (DMTF's
/// tools send `{}` to an action without parameters), redfishtool on every POST.
pub fn is_json_type(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(ct), None) = (types.next(), types.next()) else {
        return false;
    };
    let Ok(ct) = ct.to_str() else {
        return false;
    };
    let mut parts = ct.split(';');
    let mime = parts.next().unwrap_or_default().trim();
    // Parameters are `name=value` (RFC 9110 §8.3.1); anything else makes the type
    // unreadable, as in bmcweb.
    mime.eq_ignore_ascii_case("application/json")
        && parts.all(|p| {
            p.split_once('=')
                .is_some_and(|(n, v)| !n.trim().is_empty() && !v.trim().is_empty())
        })
}

/// 415 for a body that is not declared JSON: Base's `UnrecognizedRequestBody` (the
/// registry has no message for a media type; bmcweb sends this one, with 400; DSP0266
/// gives 415 to a `Content-Type` the service does not support).
pub fn not_json() -> Answer {
    error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnrecognizedRequestBody",
        &[],
    )
}

/// How long a client refused for load is asked to wait (`Retry-After`, seconds); the
/// XClarity face asks the same.
pub const RETRY_AFTER: &str = "1";

/// 503 for a login refused for load, with `Retry-After` and Base's
/// `ServiceTemporarilyUnavailable` (its argument is the same number of seconds), the
/// XAPI error (with the guard's reason) following.
pub fn login_busy(e: &ApiError) -> Answer {
    let messages = vec![
        base_message("ServiceTemporarilyUnavailable", &[RETRY_AFTER]),
        xapi_error_message(e),
    ];
    Answer::json(StatusCode::SERVICE_UNAVAILABLE, error_body(messages))
        .header(header::RETRY_AFTER, RETRY_AFTER)
}

pub fn not_found(uri: &str) -> Answer {
    error(StatusCode::NOT_FOUND, "ResourceMissingAtURI", &[uri])
}

/// 405 with the methods the resource does allow.
pub fn method_not_allowed(allow: &'static str) -> Answer {
    error(StatusCode::METHOD_NOT_ALLOWED, "OperationNotAllowed", &[]).header(header::ALLOW, allow)
}

/// An XAPI error from the pipeline, as Redfish sees it. `uri` names the resource the
/// request addressed (for 404s). The XAPI code and parameters are kept in a second
/// message so that nothing XAPI said is lost.
pub fn from_api(uri: &str, e: &ApiError) -> Answer {
    let (status, first) = match e.code {
        codes::SESSION_AUTHENTICATION_FAILED if e.is_login_refused_for_load() => {
            return login_busy(e);
        }
        codes::SESSION_INVALID | codes::SESSION_AUTHENTICATION_FAILED => {
            return unauthorized();
        }
        codes::RBAC_PERMISSION_DENIED | codes::SESSION_AUTHORIZATION_FAILED => (
            StatusCode::FORBIDDEN,
            base_message("InsufficientPrivilege", &[]),
        ),
        codes::HANDLE_INVALID | codes::UUID_INVALID => (
            StatusCode::NOT_FOUND,
            base_message("ResourceMissingAtURI", &[uri]),
        ),
        codes::TOO_MANY_PENDING_TASKS => (
            StatusCode::SERVICE_UNAVAILABLE,
            base_message("CreateLimitReachedForResource", &[]),
        ),
        codes::MAP_DUPLICATE_KEY | codes::OPERATION_NOT_ALLOWED => {
            (StatusCode::CONFLICT, base_message("GeneralError", &[]))
        }
        codes::INTERNAL_ERROR => (
            StatusCode::INTERNAL_SERVER_ERROR,
            base_message("InternalError", &[]),
        ),
        _ => (StatusCode::BAD_REQUEST, base_message("GeneralError", &[])),
    };
    Answer::json(status, error_body(vec![first, xapi_error_message(e)]))
}

/// An XAPI error as a Message: the code as `MessageId` under our own (unpublished)
/// registry prefix, its parameters as `MessageArgs`.
pub fn xapi_error_message(e: &ApiError) -> Json {
    xapi_error_list_message(&e.description())
}

/// The same for an `error_info` list (`[code, params…]`) as stored in a task.
pub fn xapi_error_list_message(error_info: &[String]) -> Json {
    let code = error_info.first().map(String::as_str).unwrap_or("UNKNOWN");
    let params = error_info.get(1..).unwrap_or_default();
    let text = if params.is_empty() {
        format!("XAPI error {code}.")
    } else {
        format!("XAPI error {code}: {}.", params.join("; "))
    };
    json!({
        "@odata.type": "#Message.v1_3_0.Message",
        "MessageId": format!("XapiTask.1.0.0.{code}"),
        "Message": text,
        "MessageArgs": params,
        "MessageSeverity": "Critical",
        "Resolution": "See the XAPI documentation of this error code.",
    })
}

/// The JSON schema file that describes a resource, from its `@odata.type`:
/// `#Task.v1_7_4.Task` → `Task.v1_7_4.json`, `#TaskCollection.TaskCollection` →
/// `TaskCollection.json`. The validators compare the version with `@odata.type`; they do
/// not fetch the link.
pub fn schema_link(odata_type: &str) -> Option<String> {
    let t = odata_type.strip_prefix('#')?;
    let (namespace, _) = t.rsplit_once('.')?;
    // Written from its pieces: `format!` costs several times the copying, per GET.
    let parts = [
        "<http://redfish.dmtf.org/schemas/v1/",
        namespace,
        ".json>; rel=describedby",
    ];
    Some(parts.concat())
}

/// A header value from ours (borrowed: a literal) or a computed one; `None` if it is not
/// a valid header value.
fn header_value(v: Cow<'static, str>) -> Option<HeaderValue> {
    match v {
        // `from_static` shares the literal (no copy); checked first, as it panics on
        // what `from_str` refuses.
        Cow::Borrowed(s) if s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) => {
            Some(HeaderValue::from_static(s))
        }
        Cow::Borrowed(_) => None,
        Cow::Owned(s) => HeaderValue::from_maybe_shared(Bytes::from(s)).ok(),
    }
}

/// `Content-Type` of our JSON bodies.
const JSON_TYPE: &str = "application/json;charset=utf-8";

/// A resource type whose documents `json_out` writes (the Task): its `@odata.type`, and
/// the protocol headers every 200 with such a body carries up to its `ETag`, built on
/// first use and cloned per response. A Task GET used to insert them one by one and
/// write the `Link` text anew (about 1.3k instructions of the 4.6k `finish` cost);
/// cloning the prepared map copies two small arrays. They are built by
/// [`protocol_headers`], as every other answer's are, so they cannot differ (a test
/// compares the two paths).
pub struct Prepared {
    pub odata_type: &'static str,
    headers: OnceLock<HeaderMap>,
}

impl Prepared {
    pub const fn new(odata_type: &'static str) -> Prepared {
        Prepared {
            odata_type,
            headers: OnceLock::new(),
        }
    }

    fn headers(&self) -> &HeaderMap {
        self.headers.get_or_init(|| {
            let link = schema_link(self.odata_type).and_then(|l| header_value(Cow::Owned(l)));
            let mut h = HeaderMap::new();
            protocol_headers(&mut h, Some(JSON_TYPE), link);
            h
        })
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.odata_type)
    }
}

/// The headers every response starts with, in this order (the order they are sent in):
/// `OData-Version`, `Cache-Control`, then the body's `Content-Type` and, for a success
/// with a typed body, the `Link` to its schema.
fn protocol_headers(
    h: &mut HeaderMap,
    content_type: Option<&'static str>,
    link: Option<HeaderValue>,
) {
    // Inline `const`s: the names and values are made at compile time, not parsed per
    // response (`from_static` validates its text when it runs).
    h.insert(
        const { HeaderName::from_static("odata-version") },
        const { HeaderValue::from_static("4.0") },
    );
    h.insert(
        header::CACHE_CONTROL,
        const { HeaderValue::from_static("no-cache") },
    );
    if let Some(ct) = content_type {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    if let Some(link) = link {
        h.insert(header::LINK, link);
    }
}

/// Adds the protocol headers and serializes the body. `head` drops the body (HEAD).
/// `if_none_match` is the request's `If-None-Match`: a 200 whose ETag it names becomes
/// 304 Not Modified without a body (RFC 7232), so a poller can ask cheaply whether a task
/// changed.
pub fn finish(a: Answer, head: bool, if_none_match: Option<&str>) -> Response<Full<Bytes>> {
    // Where the headers of a typed success come from: the type's prepared set, or a
    // `Link` made from the document's `@odata.type`.
    enum Heads {
        Prepared(&'static Prepared),
        Link(Option<HeaderValue>),
    }
    let success = a.status.is_success();
    let (bytes, content_type, heads) = match a.body {
        Body::Json(j) => {
            let bytes = crate::json_out::to_vec(&j);
            let link = (success && !bytes.is_empty())
                .then(|| {
                    j.get("@odata.type")
                        .and_then(Json::as_str)
                        .and_then(schema_link)
                })
                .flatten()
                .and_then(|l| header_value(Cow::Owned(l)));
            (bytes, Some(JSON_TYPE), Heads::Link(link))
        }
        Body::Written(bytes, kind) => (bytes, Some(JSON_TYPE), Heads::Prepared(kind)),
        Body::Xml(x) => (
            x.into_bytes(),
            Some("application/xml;charset=utf-8"),
            Heads::Link(None),
        ),
        Body::Empty => (Vec::new(), None, Heads::Link(None)),
    };
    let typed = success && !bytes.is_empty();
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = a.status;
    match heads {
        Heads::Prepared(kind) if typed => *resp.headers_mut() = kind.headers().clone(),
        Heads::Prepared(_) => protocol_headers(resp.headers_mut(), content_type, None),
        Heads::Link(link) => protocol_headers(resp.headers_mut(), content_type, link),
    }
    let h = resp.headers_mut();
    if typed {
        let tag = etag(&bytes);
        if let Ok(v) = HeaderValue::from_bytes(tag.as_bytes()) {
            h.insert(header::ETAG, v);
        }
        if a.status == StatusCode::OK
            && if_none_match.is_some_and(|m| etag_matches(m, tag.as_str()))
        {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            let h = resp.headers_mut();
            h.remove(header::CONTENT_TYPE);
            extra_headers(h, a.headers, a.allow);
            return resp;
        }
    }
    extra_headers(h, a.headers, a.allow);
    if head {
        // hyper keeps Content-Length for HEAD if we set it: say how long GET's body is.
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    } else {
        *resp.body_mut() = Full::new(Bytes::from(bytes));
    }
    resp
}

/// The answer's own headers, then its `Allow`.
fn extra_headers(
    h: &mut HeaderMap,
    headers: Vec<(HeaderName, Cow<'static, str>)>,
    allow: Option<&'static HeaderValue>,
) {
    for (name, value) in headers {
        if let Some(v) = header_value(value) {
            h.insert(name, v);
        }
    }
    if let Some(v) = allow {
        h.insert(header::ALLOW, v.clone());
    }
}

/// `If-None-Match`: `*`, or a list of entity tags compared weakly (RFC 7232 §3.2).
fn etag_matches(header: &str, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_string();
    header.trim() == "*" || header.split(',').any(|t| bare(t) == bare(tag))
}

/// An entity tag's text, `"` and 32 hex digits and `"`, on the stack.
pub struct Tag([u8; 34]);

impl Tag {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Quotes and hex digits only (`etag` writes nothing else).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// A strong ETag (RFC 7232 form) from the representation's bytes: it changes exactly
/// when what a client would see changes. The 128 bits are XXH3's: a tag needs a hash that
/// spreads, not one that resists forgery (MD5, used before, resists nothing either), and
/// XXH3 costs a tenth of MD5 on a Task (MD5 was an eighth of a GET's instructions). The
/// hex is written a byte (two digits) at a time into a stack array: pushing 32 `char`s
/// into a `String` cost as much as the hash.
pub fn etag(body: &[u8]) -> Tag {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = xxhash_rust::xxh3::xxh3_128(body).to_be_bytes();
    let mut tag = [b'"'; 34];
    for (i, b) in hash.iter().enumerate() {
        tag[1 + 2 * i] = HEX[usize::from(b >> 4)];
        tag[2 + 2 * i] = HEX[usize::from(b & 15)];
    }
    Tag(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names and values of a response's headers, in the order they are sent.
    fn heads(r: &Response<Full<Bytes>>) -> Vec<(String, String)> {
        r.headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect()
    }

    /// A type's prepared headers are the ones the general path makes from the same
    /// document's `@odata.type`: same names, values and order, for a GET, a HEAD, a 304
    /// and an answer with headers of its own.
    #[test]
    fn prepared_headers_are_the_general_paths() {
        static KIND: Prepared = Prepared::new("#Task.v1_7_4.Task");
        let doc = json!({"@odata.type": "#Task.v1_7_4.Task", "Id": "a", "Name": "b"});
        let bytes = crate::json_out::to_vec(&doc);
        let tag = etag(&bytes).as_str().to_string();
        let both = |f: &dyn Fn(Answer) -> Answer, head: bool, inm: Option<&str>| {
            let general = finish(f(Answer::ok(doc.clone())), head, inm);
            let prepared = finish(f(Answer::ok_written(bytes.clone(), &KIND)), head, inm);
            assert_eq!(general.status(), prepared.status());
            assert_eq!(heads(&general), heads(&prepared));
            assert_eq!(
                format!("{:?}", general.body()),
                format!("{:?}", prepared.body())
            );
            heads(&prepared)
        };
        let plain = both(&|a| a, false, None);
        let names: Vec<&str> = plain.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "odata-version",
                "cache-control",
                "content-type",
                "link",
                "etag"
            ]
        );
        assert_eq!(plain[3].1, schema_link(KIND.odata_type).unwrap());
        assert_eq!(plain[4].1, tag);
        static ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD, DELETE");
        let allowed = |a: Answer| Answer {
            allow: Some(&ALLOW),
            ..a.header(header::LOCATION, "/x")
        };
        let with = both(&allowed, false, None);
        assert_eq!(with[5], ("location".into(), "/x".into()));
        assert_eq!(with[6], ("allow".into(), "GET, HEAD, DELETE".into()));
        both(&allowed, true, None);
        let not_modified = both(&allowed, false, Some(&tag));
        assert!(!not_modified.iter().any(|(n, _)| n == "content-type"));
        // Not a success: no Link, no ETag, from the prepared type either.
        let failed = |a: Answer| Answer {
            status: StatusCode::BAD_REQUEST,
            ..a
        };
        let f = both(&failed, false, None);
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn link_follows_odata_type() {
        assert_eq!(
            schema_link("#Task.v1_7_4.Task").unwrap(),
            "<http://redfish.dmtf.org/schemas/v1/Task.v1_7_4.json>; rel=describedby"
        );
        assert_eq!(
            schema_link("#TaskCollection.TaskCollection").unwrap(),
            "<http://redfish.dmtf.org/schemas/v1/TaskCollection.json>; rel=describedby"
        );
        assert!(schema_link("Task").is_none());
    }

    #[test]
    fn api_errors_map_to_statuses() {
        let s = |code| from_api("/x", &ApiError::new(code, ["a"])).status;
        assert_eq!(s(codes::SESSION_INVALID), StatusCode::UNAUTHORIZED);
        assert_eq!(
            s(codes::SESSION_AUTHENTICATION_FAILED),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(s(codes::RBAC_PERMISSION_DENIED), StatusCode::FORBIDDEN);
        assert_eq!(s(codes::HANDLE_INVALID), StatusCode::NOT_FOUND);
        assert_eq!(s(codes::UUID_INVALID), StatusCode::NOT_FOUND);
        assert_eq!(s(codes::INTERNAL_ERROR), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(s(codes::INVALID_VALUE), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn unauthorized_says_how_to_authenticate_and_nothing_more() {
        let a = unauthorized();
        assert!(
            a.headers
                .iter()
                .any(|(n, v)| *n == header::WWW_AUTHENTICATE && v.starts_with("Basic realm="))
        );
        let Body::Json(j) = &a.body else {
            panic!("json body")
        };
        assert_eq!(j["error"]["code"], "Base.1.22.1.NoValidSession");
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn only_a_json_content_type_is_a_json_body() {
        let json = |v: &'static str| is_json_type(&headers(&[("content-type", v)]));
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json;charset=utf-8",
            "application/json; charset=UTF-8",
        ] {
            assert!(json(ok), "{ok}");
        }
        // What a page on another site can send without a pre-flight, and other types.
        for refused in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/plain; charset=utf-8",
            "application/jsonx",
            "application/json-patch+json",
            "application/octet-stream",
            "application/json; charset",
            "",
        ] {
            assert!(!json(refused), "{refused}");
        }
        // No type at all (a body-less `fetch`), and two types, are not JSON either.
        assert!(!is_json_type(&HeaderMap::new()));
        assert!(!is_json_type(&headers(&[
            ("content-type", "application/json"),
            ("content-type", "text/plain"),
        ])));
        let a = not_json();
        assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let Body::Json(j) = &a.body else {
            panic!("json body")
        };
        assert_eq!(j["error"]["code"], "Base.1.22.1.UnrecognizedRequestBody");
    }

    #[test]
    fn browsers_get_no_basic_challenge() {
        let browser = |pairs: &[(&'static str, &'static str)]| from_browser(&headers(pairs));
        // A navigation's Accept (Firefox, Chrome), and a script's X-Requested-With.
        assert!(browser(&[(
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )]));
        assert!(browser(&[("accept", "application/json, Text/HTML")]));
        assert!(browser(&[("x-requested-with", "XMLHttpRequest")]));
        // Redfish clients, curl, requests.
        assert!(!browser(&[]));
        assert!(!browser(&[("accept", "*/*")]));
        assert!(!browser(&[("accept", "application/json")]));
        assert!(!browser(&[("accept", "*/*, text/html")]));
        let a = without_challenge(unauthorized());
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert!(
            !a.headers
                .iter()
                .any(|(n, _)| *n == header::WWW_AUTHENTICATE)
        );
    }

    #[test]
    fn a_login_refused_for_load_is_503_not_a_wrong_password() {
        let login = |why: &str| {
            from_api(
                "/s",
                &ApiError::new(codes::SESSION_AUTHENTICATION_FAILED, ["root", why]),
            )
        };
        for why in [
            "Too many logins at once; try again later",
            "Too many logins in progress from this address; try again later",
            "the server is shutting down",
        ] {
            let a = login(why);
            assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{why}");
            assert!(
                a.headers
                    .iter()
                    .any(|(n, v)| *n == header::RETRY_AFTER && v == RETRY_AFTER)
            );
            assert!(
                !a.headers
                    .iter()
                    .any(|(n, _)| *n == header::WWW_AUTHENTICATE)
            );
            let Body::Json(j) = &a.body else {
                panic!("json body")
            };
            let info = &j["error"]["@Message.ExtendedInfo"];
            assert_eq!(
                info[0]["MessageId"],
                "Base.1.22.1.ServiceTemporarilyUnavailable"
            );
            assert_eq!(info[0]["MessageArgs"], json!([RETRY_AFTER]));
            assert_eq!(
                info[0]["Message"],
                "The service is temporarily unavailable.  Retry in 1 seconds."
            );
            assert_eq!(info[1]["MessageArgs"][1], why);
        }
        assert_eq!(
            login("Authentication failure").status,
            StatusCode::UNAUTHORIZED
        );
        let bare = ApiError::new(codes::SESSION_AUTHENTICATION_FAILED, ["root"]);
        assert_eq!(from_api("/s", &bare).status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn rbac_denial_keeps_the_xapi_error() {
        let e = ApiError::new(codes::RBAC_PERMISSION_DENIED, ["task.cancel", "no"]);
        let Body::Json(j) = from_api("/x", &e).body else {
            panic!("json body")
        };
        let info = j["error"]["@Message.ExtendedInfo"].as_array().unwrap();
        assert_eq!(info[0]["MessageId"], "Base.1.22.1.InsufficientPrivilege");
        assert_eq!(
            info[1]["MessageId"],
            "XapiTask.1.0.0.RBAC_PERMISSION_DENIED"
        );
        assert_eq!(info[1]["MessageArgs"][0], "task.cancel");
    }

    #[test]
    fn if_none_match_is_a_weak_comparison_over_a_list() {
        assert!(etag_matches("\"a\"", "\"a\""));
        assert!(etag_matches("\"x\", W/\"a\"", "\"a\""));
        assert!(etag_matches("*", "\"a\""));
        assert!(!etag_matches("\"b\"", "\"a\""));
    }

    #[test]
    fn etag_is_quoted_and_content_dependent() {
        // XXH3-128 of "{}", in 32 lower-case hex digits.
        assert_eq!(etag(b"{}").as_str(), "\"dc7048f8f8747f561349cde127705c16\"");
        let a = etag(b"{}");
        assert!(a.as_str().starts_with('"') && a.as_str().ends_with('"'));
        assert_ne!(a.as_str(), etag(b"{ }").as_str());
    }
}
