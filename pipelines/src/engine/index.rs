//! Compact hash indexes of the engine: an IPv4 key is packed into one integer (an address into
//! a `u32`, an endpoint into a `u64`, a (local, remote) endpoint pair into a `u128`) instead of
//! hashing and storing `IpAddr`/`SocketAddr` enums (17 and 32 bytes each); IPv6 keys keep their
//! full form in a second map. Values are packed too ([`PathRef`]: 8 bytes, not 16). One entry of
//! the UDP-tunnel index is 24 bytes instead of 80, and hashing a `u128` is a few instructions.

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};

type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// (client slot, path index), packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathRef {
    ci: u32,
    pi: u32,
}

impl PathRef {
    pub(crate) fn new((ci, pi): (usize, usize)) -> Self {
        PathRef {
            ci: ci as u32,
            pi: pi as u32,
        }
    }
    pub(crate) fn get(self) -> (usize, usize) {
        (self.ci as usize, self.pi as usize)
    }
}

/// A key with a packed IPv4 form.
pub(crate) trait CompactKey: Copy + Eq + Hash {
    type V4: Copy + Eq + Hash;
    fn v4(&self) -> Option<Self::V4>;
}

fn sock4(s: &SocketAddr) -> Option<u64> {
    match s {
        SocketAddr::V4(a) => Some((u64::from(u32::from(*a.ip())) << 16) | u64::from(a.port())),
        SocketAddr::V6(_) => None,
    }
}

impl CompactKey for IpAddr {
    type V4 = u32;
    fn v4(&self) -> Option<u32> {
        match self {
            IpAddr::V4(a) => Some(u32::from(*a)),
            IpAddr::V6(_) => None,
        }
    }
}

impl CompactKey for SocketAddr {
    type V4 = u64;
    fn v4(&self) -> Option<u64> {
        sock4(self)
    }
}

impl CompactKey for (SocketAddr, SocketAddr) {
    type V4 = u128;
    fn v4(&self) -> Option<u128> {
        // Each endpoint is 48 bits (address, port).
        Some((u128::from(sock4(&self.0)?) << 48) | u128::from(sock4(&self.1)?))
    }
}

/// A hash map whose IPv4 keys are stored packed.
#[derive(Debug)]
pub(crate) struct CompactMap<K: CompactKey, V> {
    v4: HashMap<K::V4, V>,
    other: HashMap<K, V>,
}

impl<K: CompactKey, V: Copy> Default for CompactMap<K, V> {
    fn default() -> Self {
        CompactMap {
            v4: HashMap::default(),
            other: HashMap::default(),
        }
    }
}

impl<K: CompactKey, V: Copy> CompactMap<K, V> {
    pub(crate) fn get(&self, k: &K) -> Option<V> {
        match k.v4() {
            Some(p) => self.v4.get(&p).copied(),
            None => self.other.get(k).copied(),
        }
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        match k.v4() {
            Some(p) => self.v4.insert(p, v),
            None => self.other.insert(k, v),
        }
    }

    /// Inserts unless the key is present; returns whether it inserted.
    pub(crate) fn insert_if_absent(&mut self, k: K, v: V) -> bool {
        let mut inserted = false;
        match k.v4() {
            Some(p) => {
                self.v4.entry(p).or_insert_with(|| {
                    inserted = true;
                    v
                });
            }
            None => {
                self.other.entry(k).or_insert_with(|| {
                    inserted = true;
                    v
                });
            }
        }
        inserted
    }

    /// Removes the key only while it still maps to `v` (another owner's entry stays).
    pub(crate) fn remove_if(&mut self, k: &K, v: V)
    where
        V: PartialEq,
    {
        if self.get(k) == Some(v) {
            self.remove(k);
        }
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        match k.v4() {
            Some(p) => self.v4.remove(&p),
            None => self.other.remove(k),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.v4.len() + self.other.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room for `n` more IPv4 keys (the common case).
    pub(crate) fn reserve(&mut self, n: usize) {
        self.v4.reserve(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn packed_and_full_keys_do_not_collide_and_round_trip() {
        let mut m: CompactMap<(SocketAddr, SocketAddr), PathRef> = CompactMap::default();
        let a = (sa("192.0.2.1:10021"), sa("198.51.100.10:40001"));
        // Swapped, and differing only in a port: distinct keys.
        let b = (a.1, a.0);
        let c = (sa("192.0.2.1:10021"), sa("198.51.100.10:40002"));
        let d = (sa("[2001:db8::1]:10021"), sa("[2001:db8::2]:40001"));
        for (i, k) in [a, b, c, d].into_iter().enumerate() {
            assert_eq!(m.insert(k, PathRef::new((i, i + 1))), None);
        }
        assert_eq!(m.len(), 4);
        for (i, k) in [a, b, c, d].into_iter().enumerate() {
            assert_eq!(m.get(&k).map(PathRef::get), Some((i, i + 1)));
        }
        assert!(!m.insert_if_absent(a, PathRef::new((9, 9))));
        assert_eq!(m.get(&a).map(PathRef::get), Some((0, 1)));
        assert_eq!(m.remove(&d).map(PathRef::get), Some((3, 4)));
        assert_eq!(m.get(&d), None);
        let mut ips: CompactMap<IpAddr, u32> = CompactMap::default();
        ips.insert("10.0.0.2".parse().unwrap(), 1);
        ips.insert("::ffff:10.0.0.2".parse().unwrap(), 2);
        assert_eq!(ips.get(&"10.0.0.2".parse().unwrap()), Some(1));
        assert_eq!(ips.get(&"::ffff:10.0.0.2".parse().unwrap()), Some(2));
    }
}
