//! The size bound of the JSON file: eviction inside the write that needs the room.
//!
//! The file keeps the Python original's format, so it has no room for bookkeeping: usage is
//! computed from the document itself at each write (which rewrites the whole document anyway,
//! so the extra pass costs little), and the eviction order is this process's own knowledge.
//!
//! **Policy.** Expired entries go first (earliest deadline first). Then the entry with the
//! lowest (frequency, last use) goes: each read hit of this handle raises the key's frequency
//! (at most 3) and its last use; a set marks the key used with frequency 0; a key this handle
//! has not seen yet (written by another process) counts as used when this handle first meets it.
//! Frequencies halve each time as many entries have been evicted as the cache holds, so keys
//! that were hot once do not stay forever. One-time writes therefore leave before anything that
//! was read since the last halving: a flood of new keys does not flush the keys in use.

use crate::format::{Entry, StoredValue};
use crate::store::{Change, View};
use braincache_core::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Bytes an entry counts for beyond its key and value: the JSON around them
/// (`"key": {"value": …, "expire_at": …},` and a line break) and a deadline.
pub const ENTRY_OVERHEAD: usize = 48;

/// The record bytes a stored value stands for.
fn value_len(v: &StoredValue) -> usize {
    match v {
        StoredValue::Json(s) | StoredValue::Escaped(s) => s.len(),
        StoredValue::Bytes(b) | StoredValue::Coded(b, _) => b.len(),
    }
}

/// What one entry counts for: key, value and [`ENTRY_OVERHEAD`].
pub(crate) fn entry_size(key: &str, entry: &Entry) -> u64 {
    (key.len() + value_len(&entry.value) + ENTRY_OVERHEAD) as u64
}

const MAX_FREQ: u8 = 3;

/// This process's knowledge of how keys are used.
#[derive(Debug, Default)]
struct Policy {
    tick: u64,
    /// key → (frequency, last use).
    used: HashMap<String, (u8, u64)>,
    evicted_since_halving: u64,
}

/// The bound of one handle.
#[derive(Debug)]
pub(crate) struct Bound {
    max_bytes: Option<u64>,
    max_entries: Option<u64>,
    policy: Mutex<Policy>,
    evictions: AtomicU64,
}

impl Bound {
    pub(crate) fn new(max_bytes: Option<u64>, max_entries: Option<u64>) -> Bound {
        Bound {
            max_bytes,
            max_entries,
            policy: Mutex::new(Policy::default()),
            evictions: AtomicU64::new(0),
        }
    }

    pub(crate) fn is_bounded(&self) -> bool {
        self.max_bytes.is_some() || self.max_entries.is_some()
    }

    pub(crate) fn max_bytes(&self) -> Option<u64> {
        self.max_bytes
    }

    pub(crate) fn max_entries(&self) -> Option<u64> {
        self.max_entries
    }

    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    fn over(&self, bytes: u64, entries: u64) -> bool {
        self.max_bytes.is_some_and(|m| bytes > m) || self.max_entries.is_some_and(|m| entries > m)
    }

    fn policy(&self) -> std::sync::MutexGuard<'_, Policy> {
        self.policy.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read hit of `key`.
    pub(crate) fn read(&self, key: &str) {
        if !self.is_bounded() {
            return;
        }
        let mut p = self.policy();
        p.tick += 1;
        let tick = p.tick;
        match p.used.get_mut(key) {
            Some((f, t)) => {
                *f = (*f + 1).min(MAX_FREQ);
                *t = tick;
            }
            None => {
                p.used.insert(key.to_owned(), (1, tick));
            }
        }
    }

    /// A set of `key` by this handle.
    pub(crate) fn set(&self, key: &str) {
        if !self.is_bounded() {
            return;
        }
        let mut p = self.policy();
        p.tick += 1;
        let tick = p.tick;
        let e = p.used.entry(key.to_owned()).or_insert((0, tick));
        e.1 = tick;
    }

    /// Adds to `change` the removals that bring the document (`view` with `change` applied)
    /// within the bound; returns how many live entries it evicted.
    pub(crate) fn evict(&self, view: &View, change: &mut Change, now: Timestamp) -> u64 {
        if !self.is_bounded() {
            return 0;
        }
        let (mut bytes, mut entries) = (0u64, 0u64);
        let mut expired: Vec<(Timestamp, &str, u64)> = Vec::new();
        let mut live: Vec<(&str, u64)> = Vec::new();
        for (key, entry) in view.merged(change) {
            let size = entry_size(key, entry);
            bytes += size;
            entries += 1;
            match entry.expires_at {
                Some(d) if d <= now => expired.push((d, key, size)),
                _ => live.push((key, size)),
            }
        }
        if !self.over(bytes, entries) {
            return 0;
        }
        let mut victims: Vec<String> = Vec::new();
        expired.sort_unstable();
        for (_, key, size) in expired {
            if !self.over(bytes, entries) {
                break;
            }
            bytes -= size;
            entries -= 1;
            victims.push(key.to_owned());
        }
        let mut p = self.policy();
        let evicted_before = victims.len();
        if self.over(bytes, entries) {
            p.tick += 1;
            let tick = p.tick;
            let mut ranked: Vec<((u8, u64), &str, u64)> = live
                .iter()
                .map(|&(key, size)| {
                    let rank = *p.used.entry(key.to_owned()).or_insert((0, tick));
                    (rank, key, size)
                })
                .collect();
            ranked.sort_unstable();
            for (_, key, size) in ranked {
                if !self.over(bytes, entries) {
                    break;
                }
                bytes -= size;
                entries -= 1;
                victims.push(key.to_owned());
            }
        }
        let evicted = (victims.len() - evicted_before) as u64;
        for key in &victims {
            p.used.remove(key);
            change.delete(view, key);
        }
        p.evicted_since_halving += evicted;
        if p.evicted_since_halving >= entries.max(1) {
            p.evicted_since_halving = 0;
            for (f, _) in p.used.values_mut() {
                *f /= 2;
            }
        }
        // Forget keys that left the file some other way (bounded by twice the document).
        if p.used.len() as u64 > 2 * entries + 64 {
            let keep: std::collections::HashSet<&str> =
                view.merged(change).map(|(k, _)| k).collect();
            p.used.retain(|k, _| keep.contains(k.as_str()));
        }
        evicted
    }

    /// Counts evictions that reached the file.
    pub(crate) fn committed(&self, evicted: u64) {
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
    }
}

/// The bytes and entries of a document, as the bound counts them.
pub(crate) fn usage(view: &View) -> (u64, u64) {
    view.merged(&Change::default())
        .fold((0, 0), |(b, n), (k, e)| (b + entry_size(k, e), n + 1))
}
