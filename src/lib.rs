//! xapi-taskd: long-running task objects behind XAPI's wire protocol.
//!
//! Layers, outermost first (each only uses the ones below it):
//! - [`server`]: HTTP (routing, limits, headers), hyper on tokio.
//! - [`wire`]: XML-RPC bytes ↔ [`wire::value::Value`]; knows nothing of tasks.
//! - [`face`]: the shape of a REST face; [`server`] routes between the faces.
//!   `json_out` writes the JSON documents the REST faces serve most, directly.
//! - [`redfish`]: the DMTF Redfish TaskService face, a REST client of the [`api`] pipeline.
//! - [`xclarity`]: the Lenovo XClarity (LXCA) jobs face for pylxca, likewise.
//! - [`web`]: the live task page at `/` (embedded files; the page itself is a JSON-RPC client).
//! - [`api`]: the datamodel table, the dispatch pipeline, RBAC, the class implementations.
//! - [`db`]: the in-memory object database; knows nothing of XML, callers or roles.
//! - [`connection`]: the one flag a client connection carries into the pipeline and the
//!   store (whether it synced with the cluster); below both, so neither imports the other.
//! - [`users`]: local users and their argon2 password hashes.
//! - [`cli`]: the client subcommands (`watch`, `tasks`, `task-list`, …), which talk to a
//!   running server over its API.

pub mod alloc;
pub mod api;
pub mod cli;
pub mod cli_cluster;
pub mod cli_store;
pub mod cli_user;
#[cfg(feature = "etcd")]
pub mod cluster;
pub mod config;
pub mod connection;
pub mod db;
pub mod face;
pub(crate) mod json_out;
pub mod per_address;
pub mod printf;
pub mod redfish;
pub mod serve;
pub mod server;
pub mod tls;
pub mod users;
pub mod web;
pub mod wire;
pub mod xclarity;
