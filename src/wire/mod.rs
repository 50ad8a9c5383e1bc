//! Wire codecs: bytes ↔ [`value::Value`].

pub mod encode;
pub mod jsonrpc;
pub mod number;
pub(crate) mod scan;
pub mod value;
pub mod xmlchars;
pub mod xmlrpc;
