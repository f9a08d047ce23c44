//! One shard: a map, an expiry index and, when bounded, the S3-FIFO queues.

use crate::MemoryBackend;
use braincache_core::{Record, Timestamp};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Per-shard bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_entries: Option<usize>,
    pub(crate) max_bytes: Option<usize>,
}

impl Limits {
    pub(crate) fn is_bounded(&self) -> bool {
        self.max_entries.is_some() || self.max_bytes.is_some()
    }
}

/// S3-FIFO's access counter saturates here.
const MAX_FREQ: u8 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Small,
    Main,
}

struct Entry {
    record: Record,
    /// Accesses since the entry was queued (S3-FIFO); bumped under the read lock.
    freq: AtomicU8,
    /// Tells this entry's queue slot from stale slots of a deleted entry of the same key.
    id: u64,
    queue: Queue,
    size: usize,
    hash: u64,
}

/// S3-FIFO state: new keys enter `small`; keys read while there move to `main` when they reach
/// its tail, the rest are evicted and remembered in `ghost`; a key re-inserted while in `ghost`
/// goes straight to `main`. `main` is a FIFO with second chances (CLOCK-like).
#[derive(Default)]
struct Policy {
    small: VecDeque<(Arc<str>, u64)>,
    main: VecDeque<(Arc<str>, u64)>,
    small_live: usize,
    main_live: usize,
    ghost: VecDeque<u64>,
    ghost_set: HashSet<u64>,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Arc<str>, Entry>,
    expiry: BTreeSet<(Timestamp, Arc<str>)>,
    bytes: usize,
    policy: Option<Policy>,
    next_id: u64,
}

pub(crate) struct Shard {
    inner: RwLock<Inner>,
    limits: Limits,
}

impl Shard {
    pub(crate) fn new(limits: Limits) -> Shard {
        Shard {
            inner: RwLock::new(Inner {
                policy: limits.is_bounded().then(Policy::default),
                ..Inner::default()
            }),
            limits,
        }
    }

    // A panic while holding the lock cannot leave the shard inconsistent in a way that matters
    // more than losing the cache, so poisoning is ignored rather than turned into panics.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &str) -> Option<Record> {
        let inner = self.read();
        let entry = inner.map.get(key)?;
        if inner.policy.is_some() {
            let f = entry.freq.load(Ordering::Relaxed);
            if f < MAX_FREQ {
                entry.freq.store(f + 1, Ordering::Relaxed);
            }
        }
        Some(entry.record.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.read().map.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.read().bytes
    }

    pub(crate) fn next_expiry(&self) -> Option<Timestamp> {
        self.read().expiry.first().map(|(t, _)| *t)
    }

    /// Stores the record; returns how many entries were evicted to make room.
    pub(crate) fn set(&self, key: &str, hash: u64, record: Record) -> u64 {
        let limits = &self.limits;
        let size = MemoryBackend::entry_size(key, &record);
        let mut inner = self.write();
        if limits.max_bytes.is_some_and(|max| size > max) {
            // Too big to keep: drop it, and the stale value under the same key with it.
            inner.remove(key);
            return 1;
        }
        if let Some(entry) = inner.map.get_mut(key) {
            let old_deadline = entry.record.expires_at;
            let old_size = entry.size;
            let new_deadline = record.expires_at;
            entry.record = record;
            entry.size = size;
            let k = inner.map.get_key_value(key).map(|(k, _)| Arc::clone(k));
            if let Some(k) = k
                && old_deadline != new_deadline
            {
                if let Some(d) = old_deadline {
                    inner.expiry.remove(&(d, Arc::clone(&k)));
                }
                if let Some(d) = new_deadline {
                    inner.expiry.insert((d, k));
                }
            }
            inner.bytes = inner.bytes - old_size + size;
        } else {
            let k: Arc<str> = Arc::from(key);
            let id = inner.next_id;
            inner.next_id += 1;
            let queue = match &mut inner.policy {
                Some(p) => {
                    if p.ghost_set.remove(&hash) {
                        p.main.push_back((Arc::clone(&k), id));
                        p.main_live += 1;
                        Queue::Main
                    } else {
                        p.small.push_back((Arc::clone(&k), id));
                        p.small_live += 1;
                        Queue::Small
                    }
                }
                None => Queue::Small,
            };
            if let Some(d) = record.expires_at {
                inner.expiry.insert((d, Arc::clone(&k)));
            }
            inner.bytes += size;
            inner.map.insert(
                k,
                Entry {
                    record,
                    freq: AtomicU8::new(0),
                    id,
                    queue,
                    size,
                    hash,
                },
            );
        }
        let mut evicted = 0;
        while limits.max_entries.is_some_and(|m| inner.map.len() > m)
            || limits.max_bytes.is_some_and(|m| inner.bytes > m)
        {
            if !inner.evict_one() {
                break;
            }
            evicted += 1;
        }
        inner.compact_queues();
        evicted
    }

    pub(crate) fn delete(&self, key: &str) -> bool {
        self.write().remove(key).is_some()
    }

    pub(crate) fn clear(&self) {
        let mut inner = self.write();
        let bounded = inner.policy.is_some();
        *inner = Inner {
            policy: bounded.then(Policy::default),
            next_id: inner.next_id,
            ..Inner::default()
        };
    }

    pub(crate) fn purge_expired(&self, now: Timestamp) -> usize {
        let mut inner = self.write();
        let mut n = 0;
        while inner
            .expiry
            .first()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            let Some((_, key)) = inner.expiry.pop_first() else {
                break;
            };
            // The index entry is gone already: take the entry out of the map only.
            inner.remove_indexed(&key);
            n += 1;
        }
        n
    }
}

impl Inner {
    /// Removes `key` from the map, the expiry index and the live counts. Its queue slot goes
    /// stale and is skipped when reached.
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let (k, entry) = self.map.remove_entry(key)?;
        if let Some(d) = entry.record.expires_at {
            self.expiry.remove(&(d, k));
        }
        self.forget(&entry);
        Some(entry)
    }

    /// Removes `key` from the map and the live counts, its expiry index entry being gone already.
    fn remove_indexed(&mut self, key: &str) {
        if let Some(entry) = self.map.remove(key) {
            self.forget(&entry);
        }
    }

    /// Updates the byte count and the queue counts for an entry leaving the map.
    fn forget(&mut self, entry: &Entry) {
        self.bytes -= entry.size;
        if let Some(p) = &mut self.policy {
            match entry.queue {
                Queue::Small => p.small_live -= 1,
                Queue::Main => p.main_live -= 1,
            }
        }
    }

    fn is_live(&self, key: &str, id: u64, queue: Queue) -> bool {
        self.map
            .get(key)
            .is_some_and(|e| e.id == id && e.queue == queue)
    }

    /// Evicts one entry by S3-FIFO; false when there is nothing to evict.
    fn evict_one(&mut self) -> bool {
        loop {
            let Some(p) = &mut self.policy else {
                return false;
            };
            // Evict from the small queue while it holds 10 % or more of the entries.
            let from_small =
                p.small_live > 0 && (p.small_live * 10 >= self.map.len() || p.main_live == 0);
            if from_small {
                let Some((key, id)) = p.small.pop_front() else {
                    return false;
                };
                if !self.is_live(&key, id, Queue::Small) {
                    continue;
                }
                let Some(entry) = self.map.get_mut(&key) else {
                    continue;
                };
                let p = self.policy.as_mut().expect("checked above");
                if entry.freq.load(Ordering::Relaxed) > 0 {
                    entry.freq.store(0, Ordering::Relaxed);
                    entry.queue = Queue::Main;
                    p.small_live -= 1;
                    p.main_live += 1;
                    p.main.push_back((key, id));
                    continue;
                }
                let hash = entry.hash;
                self.remove(&key);
                self.remember(hash);
                return true;
            }
            let Some((key, id)) = p.main.pop_front() else {
                return false;
            };
            if !self.is_live(&key, id, Queue::Main) {
                continue;
            }
            let Some(entry) = self.map.get_mut(&key) else {
                continue;
            };
            let f = entry.freq.load(Ordering::Relaxed);
            if f > 0 {
                entry.freq.store(f - 1, Ordering::Relaxed);
                if let Some(p) = &mut self.policy {
                    p.main.push_back((key, id));
                }
                continue;
            }
            self.remove(&key);
            return true;
        }
    }

    /// Adds an evicted key's hash to the ghost list, which is as long as the shard holds entries.
    fn remember(&mut self, hash: u64) {
        let cap = self.map.len().max(16);
        if let Some(p) = &mut self.policy {
            if p.ghost_set.insert(hash) {
                p.ghost.push_back(hash);
            }
            while p.ghost.len() > cap {
                if let Some(old) = p.ghost.pop_front() {
                    p.ghost_set.remove(&old);
                }
            }
        }
    }

    /// Drops stale queue slots once they outnumber live ones, so deletes cannot grow the queues
    /// without bound.
    fn compact_queues(&mut self) {
        let Some(p) = &self.policy else { return };
        if p.small.len() + p.main.len() <= 2 * self.map.len() + 64 {
            return;
        }
        let map = &self.map;
        let Some(p) = &mut self.policy else { return };
        p.small.retain(|(k, id)| {
            map.get(k)
                .is_some_and(|e| e.id == *id && e.queue == Queue::Small)
        });
        p.main.retain(|(k, id)| {
            map.get(k)
                .is_some_and(|e| e.id == *id && e.queue == Queue::Main)
        });
    }
}
