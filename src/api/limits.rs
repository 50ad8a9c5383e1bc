//! Bounds the API layer puts on what one call may cost everyone else: filters, legacy
//! event subscriptions and the event queue. Defaults here are the ones
//! documented in `config.rs`, docs/operations.md and docs/security.md.

/// The API layer's bounds (the task limits live with the tables, `db::quota`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiLimits {
    /// Entries one session's `event.register` list may hold (duplicates are merged).
    pub max_event_subscriptions: usize,
    /// Bytes of row snapshots the legacy `event.next` queue keeps.
    pub max_event_queue_bytes: usize,
    /// Longest `*_where` expression.
    pub max_filter_bytes: usize,
    /// Most terms in a `*_where` expression.
    pub max_filter_nodes: usize,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            max_event_subscriptions: 256,
            max_event_queue_bytes: 10 * 1024 * 1024,
            max_filter_bytes: 32 * 1024,
            max_filter_nodes: 2048,
        }
    }
}
