//! The expiry index: every key with a deadline, ordered by deadline.

use crate::Timestamp;
use std::collections::BTreeMap;

/// Every key that has a deadline, ordered by deadline, so that
/// [`Backend::purge_expired`](crate::Backend::purge_expired) costs time in proportion to what
/// expired and [`Backend::next_expiry`](crate::Backend::next_expiry) is a lookup, not a scan.
///
/// A backend keeps it in step with its map: [`replace`](Self::replace) when a key's deadline may
/// change (a `set`), [`remove`](Self::remove) when a key goes, and [`pop_due`](Self::pop_due) to
/// purge. Each key may carry a value `V` (the memory backend keeps the key's hash).
///
/// ```
/// use braincache_core::{ExpiryIndex, Timestamp};
///
/// let t = Timestamp::from_unix_millis;
/// let mut index: ExpiryIndex<String> = ExpiryIndex::new();
/// index.replace("a".into(), None, Some(t(20)), ());
/// index.replace("b".into(), None, Some(t(10)), ());
/// index.replace("a".into(), Some(t(20)), Some(t(5)), ()); // "a" now expires first
/// assert_eq!(index.next_expiry(), Some(t(5)));
/// assert_eq!(index.pop_due(t(9)).map(|(_, k, _)| k).as_deref(), Some("a"));
/// assert_eq!(index.pop_due(t(9)), None); // "b" is due at 10
/// assert_eq!(index.len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryIndex<K, V = ()> {
    by_deadline: BTreeMap<(Timestamp, K), V>,
}

impl<K, V> Default for ExpiryIndex<K, V> {
    fn default() -> Self {
        ExpiryIndex {
            by_deadline: BTreeMap::new(),
        }
    }
}

impl<K: Ord, V> ExpiryIndex<K, V> {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        ExpiryIndex::default()
    }

    /// Adds `key` due at `deadline`; returns the value it replaced, if the pair was there.
    pub fn insert(&mut self, deadline: Timestamp, key: K, value: V) -> Option<V> {
        self.by_deadline.insert((deadline, key), value)
    }

    /// Removes `key` due at `deadline`; returns its value, if the pair was there.
    pub fn remove(&mut self, deadline: Timestamp, key: K) -> Option<V> {
        self.by_deadline.remove(&(deadline, key))
    }

    /// Moves `key` from its `old` deadline to its `new` one (either may be `None`: no
    /// deadline), with `value`. Nothing changes when both are equal.
    pub fn replace(&mut self, key: K, old: Option<Timestamp>, new: Option<Timestamp>, value: V)
    where
        K: Clone,
    {
        if old == new {
            return;
        }
        if let Some(d) = old {
            self.by_deadline.remove(&(d, key.clone()));
        }
        if let Some(d) = new {
            self.by_deadline.insert((d, key), value);
        }
    }

    /// The value of `key` due at `deadline`, if the pair is there.
    pub fn get(&self, deadline: Timestamp, key: K) -> Option<&V> {
        self.by_deadline.get(&(deadline, key))
    }

    /// The earliest deadline.
    #[must_use]
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.by_deadline.first_key_value().map(|((d, _), _)| *d)
    }

    /// Removes and returns the earliest key if it is due at `now` (its deadline is at or before
    /// `now`, the contract's meaning of expired).
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(Timestamp, K, V)> {
        let due = self
            .by_deadline
            .first_key_value()
            .is_some_and(|((d, _), _)| *d <= now);
        if !due {
            return None;
        }
        self.by_deadline.pop_first().map(|((d, k), v)| (d, k, v))
    }

    /// The keys due at `now`, earliest first, without removing them.
    pub fn due(&self, now: Timestamp) -> impl Iterator<Item = (Timestamp, &K, &V)> {
        self.iter().take_while(move |(d, _, _)| *d <= now)
    }

    /// Every entry, earliest first.
    pub fn iter(&self) -> impl Iterator<Item = (Timestamp, &K, &V)> {
        self.by_deadline.iter().map(|((d, k), v)| (*d, k, v))
    }

    /// How many keys have a deadline.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_deadline.len()
    }

    /// True when no key has a deadline.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_deadline.is_empty()
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.by_deadline.clear();
    }
}

impl<K: Ord, V> FromIterator<(Timestamp, K, V)> for ExpiryIndex<K, V> {
    fn from_iter<I: IntoIterator<Item = (Timestamp, K, V)>>(iter: I) -> Self {
        ExpiryIndex {
            by_deadline: iter.into_iter().map(|(d, k, v)| ((d, k), v)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_unix_millis(ms)
    }

    #[test]
    fn replace_moves_a_key_and_pop_due_stops_at_now() {
        let mut i: ExpiryIndex<&str, u8> = ExpiryIndex::new();
        i.replace("a", None, Some(t(10)), 1);
        i.replace("b", None, Some(t(10)), 2);
        i.replace("a", Some(t(10)), Some(t(20)), 1);
        i.replace("b", Some(t(10)), None, 2);
        i.replace("c", Some(t(30)), Some(t(30)), 3); // unchanged: not added
        assert_eq!(i.len(), 1);
        assert_eq!(i.get(t(20), "a"), Some(&1));
        assert_eq!(i.next_expiry(), Some(t(20)));
        assert_eq!(i.due(t(19)).count(), 0);
        assert_eq!(i.pop_due(t(19)), None);
        // A deadline exactly at `now` is due.
        assert_eq!(i.pop_due(t(20)), Some((t(20), "a", 1)));
        assert!(i.is_empty());
        assert_eq!(i.next_expiry(), None);
    }

    #[test]
    fn remove_and_clear() {
        let mut i: ExpiryIndex<String> = [(t(1), "x".to_owned(), ()), (t(2), "y".to_owned(), ())]
            .into_iter()
            .collect();
        assert_eq!(i.remove(t(1), "x".into()), Some(()));
        assert_eq!(i.remove(t(1), "x".into()), None);
        assert_eq!(
            i.iter().map(|(d, k, _)| (d, k.clone())).collect::<Vec<_>>(),
            vec![(t(2), "y".to_owned())]
        );
        i.clear();
        assert!(i.is_empty());
    }
}
