//! Connections held per client address (`max-connections-per-address`).
//!
//! `max-connections` is one server-wide pool, and a connection takes its place when it is
//! accepted, before any byte or credential arrives; an idle one keeps it for
//! `header-timeout`. Without a share per address, one client that opens that many
//! sockets (and reopens them as they time out) gets every other client a 503. So a
//! connection is also counted under its address (IPv6 by /64, as the login throttle
//! counts, `api::limits::address_key`), and one over the share is refused like one over
//! the pool. The map holds only addresses with a connection open, so it is bounded by
//! the connections themselves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::api::limits::address_key;

/// The count of open connections per address, shared by every listener.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's share, given back when dropped.
#[derive(Debug)]
pub struct Held {
    owner: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    pub fn new(limit: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            limit: limit.max(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for a new connection from `ip`, or `None` if its address holds the limit.
    pub fn hold(self: &Arc<Self>, ip: IpAddr) -> Option<Held> {
        let key = address_key(ip);
        let mut open = self.open.lock();
        let n = open.entry(key).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Held {
            owner: self.clone(),
            key,
        })
    }

    /// The limit, for the refusal's message.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock();
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_holds_at_most_its_share_and_gets_it_back() {
        let p = PerAddress::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = p.hold(a).unwrap();
        let _second = p.hold(a).unwrap();
        assert!(p.hold(a).is_none(), "a third from the same address");
        assert!(p.hold(b).is_some(), "another address is not affected");
        drop(first);
        assert!(
            p.hold(a).is_some(),
            "a closed connection gives its place back"
        );
        // One /64 is one client.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        let _x = p.hold(v6a).unwrap();
        let _y = p.hold(v6b).unwrap();
        assert!(p.hold(v6a).is_none());
    }

    #[test]
    fn the_map_keeps_only_addresses_with_a_connection_open() {
        let p = PerAddress::new(4);
        for i in 0..100u8 {
            drop(p.hold(IpAddr::from([10, 0, 0, i])).unwrap());
        }
        assert!(p.open.lock().is_empty());
    }
}
