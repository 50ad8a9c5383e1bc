//! Wire codecs: bytes ↔ [`value::Value`].

pub mod jsonrpc;
pub mod value;
pub mod xmlchars;
pub mod xmlrpc;
