//! The shape every REST face has (Redfish, XClarity, and the next one), so that
//! `server.rs` routes between them by walking one short list instead of growing a special
//! case per face.
//!
//! The rule: XML-RPC (and JSON-RPC on `/jsonrpc`) owns every request that no face claims,
//! as xapi's longest-prefix routing gives every POST path to XML-RPC. A face claims a
//! request by its method, path and headers ([`Face::owns`]); the first face in
//! `server::FACES` that claims it answers it ([`Face::handle`]). A face must claim only
//! what no XAPI client sends: its own path prefixes, and on paths an XML-RPC client could
//! post to, not a POST whose body is XML.
//!
//! The server reads a request's body (within its size and time limits) before it hands
//! the request to a face, so that no answer a face gives (a 401, a 405) ever leaves an
//! unread body behind: hyper would then close the keep-alive connection under a client
//! that is already sending its next request. A face only says how a body that could not
//! be read is answered in its protocol ([`Face::body_error`]), as it says how a request
//! head over the server's limit is ([`Face::head_too_large`]): the server decides that a
//! request is refused, the face writes the refusal.
//!
//! This module is the faces' shared vocabulary and imports none of them, so no face
//! depends on another; [`xapi`] is how they call the pipeline and read its task records.

pub mod basic;
pub mod xapi;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::{HeaderMap, Method, Request, Response};

use crate::api::dispatch::Service;
use crate::server::Limits;

/// What a face may need to know about the connection a request came on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conn {
    /// The request came over the TLS listener (cookies can then be `Secure`).
    pub tls: bool,
}

/// One face: a predicate that claims requests and the handler that answers them. Both are
/// plain functions so that the list of faces is a `const`.
pub struct Face {
    /// For logs and docs.
    pub name: &'static str,
    /// Whether this face answers the request (decided before the body is read).
    pub owns: fn(&Method, &str, &HeaderMap) -> bool,
    /// Answers a request this face owns, its body already read. Never panics on client
    /// input and never answers 500 for a client's mistake.
    pub handle: Handler,
    /// The answer, in this face's protocol, to a request whose body could not be read.
    pub body_error: fn(&BodyError, &Limits, Conn) -> Reply,
    /// The answer, in this face's protocol, to a request whose head (URI and headers,
    /// `size` bytes) is over `max-header-bytes`: status 431. The server adds
    /// `Connection: close` (the body is left unread).
    pub head_too_large: fn(usize, &Limits, Conn) -> Reply,
}

/// A face's request handler (a plain function returning a boxed future).
pub type Handler =
    for<'a> fn(Arc<Service>, &'a Limits, Request<Bytes>, Conn) -> BoxFuture<'a, Reply>;

/// Why a request's body could not be read within the server's limits. The server adds
/// `Connection: close` to the answer where the rest of the body is left unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than `max_body_bytes` (as declared by `Content-Length`, or as sent).
    TooLarge,
    /// Not complete within `body_timeout`.
    Timeout,
    /// The connection failed while the body was read.
    Broken(String),
}

/// What a face answers.
pub type Reply = Response<Full<Bytes>>;

/// Whether a request's `Content-Type` says its body is XML (`text/xml`,
/// `application/xml`, `…+xml`): what XML-RPC clients send. Faces that share a path with
/// XML-RPC's "any POST path" leave such a request to XML-RPC.
pub fn is_xml(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("text/xml")
        || mime.eq_ignore_ascii_case("application/xml")
        || mime.to_ascii_lowercase().ends_with("+xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_content_types() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(hyper::header::CONTENT_TYPE, v.parse().unwrap());
            m
        };
        assert!(is_xml(&h("text/xml")));
        assert!(is_xml(&h("Text/XML; charset=utf-8")));
        assert!(is_xml(&h("application/xml")));
        assert!(is_xml(&h("application/soap+xml")));
        assert!(!is_xml(&h("application/json; charset=utf-8")));
        assert!(!is_xml(&HeaderMap::new()));
    }
}
