//! Bounds the API layer puts on what one call may cost everyone else: filters, legacy
//! event subscriptions and the event queue, password checks. Defaults here are the ones
//! documented in `config.rs`, docs/operations.md and docs/security.md.

use std::net::IpAddr;

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
    /// Password verifications run at once.
    pub max_concurrent_logins: usize,
    /// Failed logins per user and per address before answers are delayed.
    pub login_free_failures: u32,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            max_event_subscriptions: 256,
            max_event_queue_bytes: 10 * 1024 * 1024,
            max_filter_bytes: 32 * 1024,
            max_filter_nodes: 2048,
            max_concurrent_logins: 4,
            login_free_failures: 5,
        }
    }
}

/// The client address of the current request, if the server set one (in-process
/// callers and tests have none): every face (XML-RPC, JSON-RPC, Redfish, later ones)
/// reaching `session.login_with_password` through the dispatcher is throttled per
/// address without passing it along. `server.rs` sets it with the request's connection
/// ([`crate::connection::on`]; one task-local for both).
pub fn peer() -> Option<IpAddr> {
    crate::connection::peer()
}

/// The address a client is counted under (failed logins, connections): IPv4 as it is,
/// IPv6 by its /64 (one host typically owns a whole /64, so counting single addresses
/// would count nothing).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_prefix_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
