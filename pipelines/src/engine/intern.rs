//! Shared configuration records: clients configured alike (the usual case for an operator's
//! million clients, which differ in their addresses only) hold one copy of what they have in
//! common, reached through an [`Arc`] from their records. At 1M clients this removes most of
//! a client's configuration bytes and keeps the shared copy in cache for every packet.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Arc;

/// A set of distinct values, each held once; holders keep an [`Arc`] to it.
#[derive(Debug)]
pub(crate) struct Interner<T: Eq + Hash> {
    set: HashSet<Arc<T>, ahash::RandomState>,
}

impl<T: Eq + Hash> Default for Interner<T> {
    fn default() -> Self {
        Interner {
            set: HashSet::default(),
        }
    }
}

impl<T: Eq + Hash> Interner<T> {
    /// The shared copy of `v` (made if it is new).
    pub fn intern(&mut self, v: T) -> Arc<T> {
        if let Some(a) = self.set.get(&v) {
            return Arc::clone(a);
        }
        let a = Arc::new(v);
        self.set.insert(Arc::clone(&a));
        a
    }

    /// A holder lets go of `a`: the value leaves the set once no other holder has it. Call
    /// before dropping a holder's `Arc` (a value whose holders all dropped without this stays
    /// in the set).
    pub fn release(&mut self, a: &Arc<T>) {
        // Ours and the set's.
        if Arc::strong_count(a) == 2 {
            self.set.remove(&**a);
        }
    }

    /// Distinct values held.
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_share_one_copy_and_leave_with_their_last_holder() {
        let mut i = Interner::default();
        let a = i.intern(7u32);
        let b = i.intern(7u32);
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.intern(8u32);
        assert_eq!(i.len(), 2);
        i.release(&a);
        drop(a);
        assert_eq!(i.len(), 2, "b still holds 7");
        i.release(&b);
        drop(b);
        assert_eq!(i.len(), 1);
        i.release(&c);
        drop(c);
        assert_eq!(i.len(), 0);
    }
}
