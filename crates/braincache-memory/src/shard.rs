//! One shard: a map, an expiry index and, when bounded, the S3-FIFO queues.

use braincache_core::{CodecId, ExpiryIndex, Record, RecordRef, Timestamp};
use hashbrown::HashTable;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

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

/// A key and its entry, as the shard's table holds them: one 128-byte slot, aligned to 128 so
/// that it is exactly one pair of adjacent cache lines (which CPUs fetch together), that also
/// holds the key's and the value's bytes when together they fit ([`INLINE`] bytes). A hit in a
/// table larger than the CPU caches then waits for one miss instead of three: the slot, a
/// separately allocated key and a separately allocated value.
///
/// `id` tells entries of the same key apart: it is unique in the shard (never reused), so a
/// queue slot or an expiry index entry of a deleted and re-inserted key, which holds the old
/// id, never acts on the new entry.
#[repr(align(128))]
struct Stored {
    data: Data,
    /// The entry's number in its shard ([`Inner::next_id`]).
    id: u64,
    /// The deadline in nanoseconds since the Unix epoch, when `expires`.
    deadline: u64,
    /// The backend's hash of the key: the table's hash, kept for rehashing and the ghost list.
    hash: u64,
    /// Accesses since the entry was queued (S3-FIFO); bumped under the read lock.
    freq: AtomicU8,
    queue: Queue,
    expires: bool,
    /// The record's codec id, 0 when it states none.
    codec: u8,
    /// True when the record has freshness fields (`fresh_until`, `computed_at`,
    /// `compute_time`): the value then holds the whole record framed by
    /// [`braincache_core::wire`], so that plain entries pay nothing for them.
    framed: bool,
}

const _: () = assert!(std::mem::size_of::<Stored>() == 128);

/// Where [`Shard::get_into`] copied a value.
pub(crate) enum Copied {
    /// Into the caller's slot-sized array, at this range.
    Small(std::ops::Range<usize>),
    /// Into the thread's kept buffer, taken from the thread: to be given back.
    Kept(Vec<u8>),
    /// Into a buffer of its own (larger than the kept buffer may grow).
    Own(Vec<u8>),
}

/// The key and value bytes an entry fits in its slot: the 12-byte keys and 67-byte values of
/// the harness's get benchmark (a 64-character string, framed by MessagePack) fit.
pub(crate) const INLINE: usize = 93;

/// An entry's key and value bytes, the key first.
enum Data {
    /// In the slot: key and value together take at most [`INLINE`] bytes.
    Inline {
        klen: u8,
        vlen: u8,
        bytes: [u8; INLINE],
    },
    /// Beside the slot: the key copied, the value moved in from the record (a large value is
    /// never copied on its way in).
    Heap { key: Box<[u8]>, value: Vec<u8> },
}

const _: () = assert!(std::mem::size_of::<Data>() <= 96);

impl Data {
    fn new(key: &[u8], value: Vec<u8>) -> Data {
        let len = key.len() + value.len();
        if len <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            bytes[key.len()..len].copy_from_slice(&value);
            // Both fit in a `u8`: their sum is at most INLINE.
            Data::Inline {
                klen: key.len() as u8,
                vlen: value.len() as u8,
                bytes,
            }
        } else {
            Data::Heap {
                key: key.into(),
                value,
            }
        }
    }

    fn key(&self) -> &[u8] {
        match self {
            Data::Inline { klen, bytes, .. } => &bytes[..usize::from(*klen)],
            Data::Heap { key, .. } => key,
        }
    }

    /// What an entry holding these bytes counts for against `max_bytes`
    /// ([`crate::MemoryBackend::entry_size`]).
    fn size(&self) -> usize {
        self.key().len() + self.value().len() + crate::ENTRY_OVERHEAD
    }

    fn value(&self) -> &[u8] {
        match self {
            Data::Inline { klen, vlen, bytes } => {
                &bytes[usize::from(*klen)..usize::from(*klen) + usize::from(*vlen)]
            }
            Data::Heap { value, .. } => value,
        }
    }
}

/// An entry built from a record before the shard's lock is taken, so that framing, copying and
/// allocating wait for no lock; the shard gives it an id and a queue.
struct Fresh {
    data: Data,
    expires_at: Option<Timestamp>,
    codec: u8,
    framed: bool,
}

impl Fresh {
    fn new(key: &str, record: Record) -> Fresh {
        let framed = is_framed(&record);
        let (expires_at, codec) = (record.expires_at, record.codec.map_or(0, CodecId::get));
        let value = if framed {
            braincache_core::wire::encode(&record)
        } else {
            record.value
        };
        Fresh {
            data: Data::new(key.as_bytes(), value),
            expires_at,
            codec,
            framed,
        }
    }

    /// The deadline as [`Stored`] keeps it: nanoseconds, and whether there is one.
    fn deadline(&self) -> (u64, bool) {
        (
            self.expires_at.map_or(0, Timestamp::as_unix_nanos),
            self.expires_at.is_some(),
        )
    }
}

impl Stored {
    fn new(fresh: Fresh, id: u64, hash: u64, queue: Queue) -> Stored {
        let (deadline, expires) = fresh.deadline();
        Stored {
            data: fresh.data,
            id,
            deadline,
            hash,
            freq: AtomicU8::new(0),
            queue,
            expires,
            codec: fresh.codec,
            framed: fresh.framed,
        }
    }

    fn expires_at(&self) -> Option<Timestamp> {
        self.expires
            .then(|| Timestamp::from_unix_nanos(self.deadline))
    }

    fn record(&self) -> Record {
        let value = self.data.value();
        if self.framed {
            // Framed by `Fresh::new` from a record, so it parses; keep the bytes if it ever did
            // not.
            if let Ok(p) = braincache_core::wire::parse(value) {
                return p.record(value[p.len..].to_vec());
            }
        }
        Record::new(value.to_vec(), self.expires_at()).with_codec(CodecId::new(self.codec))
    }

    /// Replaces the record, keeping the entry's id and place in the policy; returns the old
    /// bytes, for the caller to free once it has released the shard's lock.
    fn replace(&mut self, fresh: Fresh) -> Data {
        (self.deadline, self.expires) = fresh.deadline();
        self.codec = fresh.codec;
        self.framed = fresh.framed;
        std::mem::replace(&mut self.data, fresh.data)
    }

    /// What the entry counts for against `max_bytes` ([`crate::MemoryBackend::entry_size`]).
    fn size(&self) -> usize {
        self.data.size()
    }
}

/// True when `record` has freshness fields, kept by framing the value (see [`Stored`]).
pub(crate) fn is_framed(record: &Record) -> bool {
    record.fresh_until.is_some() || record.computed_at.is_some() || record.compute_time.is_some()
}

/// What [`Shard::get_into`] tells about a record besides the bytes it copied.
pub(crate) struct Meta {
    expires_at: Option<Timestamp>,
    codec: Option<CodecId>,
    /// The bytes are the whole record framed by [`braincache_core::wire`] (see [`Stored`]).
    framed: bool,
}

impl Meta {
    /// The record whose stored bytes [`Shard::get_into`] copied into `bytes`.
    pub(crate) fn view(self, bytes: &[u8]) -> RecordRef<'_> {
        if self.framed {
            // Framed by `Fresh::new` from a record, so it parses; as `Stored::record`, keep
            // the bytes if it ever did not.
            if let Ok(p) = braincache_core::wire::parse(bytes) {
                return RecordRef::new(&bytes[p.len..], p.expires_at)
                    .with_codec(p.codec)
                    .with_fresh_until(p.fresh_until)
                    .with_computed(p.computed_at, p.compute_time);
            }
        }
        RecordRef::new(bytes, self.expires_at).with_codec(self.codec)
    }
}

/// A queue slot: the entry's id (see [`Stored`]) and its hash, to find it without the key.
struct Queued {
    id: u64,
    hash: u64,
}

/// S3-FIFO state: new keys enter `small`; keys read while there move to `main` when they reach
/// its tail, the rest are evicted and remembered in `ghost`; a key re-inserted while in `ghost`
/// goes straight to `main`. `main` is a FIFO with second chances (CLOCK-like). In front of it,
/// TinyLFU admission ([`Sketch`]): a new key enters a full shard only when it was seen more
/// often than the entry it would displace, which keeps a loop over more keys than fit from
/// flushing the cache.
#[derive(Default)]
struct Policy {
    small: VecDeque<Queued>,
    main: VecDeque<Queued>,
    small_live: usize,
    main_live: usize,
    ghost: VecDeque<u64>,
    ghost_set: HashSet<u64>,
}

/// TinyLFU's frequency sketch: a count-min sketch of recent accesses (4 rows, counters
/// saturating at 15, 8 columns per entry of capacity: 32 bytes per entry), halved every
/// `20 x capacity` accesses so old popularity fades. Measured on the harness's hit-ratio
/// traces (`braincache-bench --only hitratio`), 8 columns and 20x beat 2, 4, 16 columns and
/// 10x on every trace.
/// Counters are atomics bumped under the read lock; a lost increment between racing readers
/// only makes an estimate one lower.
struct Sketch {
    counters: Box<[AtomicU8]>,
    mask: usize,
    accesses: AtomicUsize,
    reset_at: usize,
}

impl Sketch {
    const ROWS: usize = 4;
    const MAX: u8 = 15;

    fn new(capacity: usize) -> Sketch {
        let width = (capacity.max(16) * 8).next_power_of_two();
        Sketch {
            counters: (0..width * Self::ROWS).map(|_| AtomicU8::new(0)).collect(),
            mask: width - 1,
            accesses: AtomicUsize::new(0),
            reset_at: capacity.max(16) * 20,
        }
    }

    fn index(&self, hash: u64, row: usize) -> usize {
        // A different odd multiplier per row spreads one 64-bit hash over four columns.
        const SEEDS: [u64; 4] = [
            0x9E37_79B9_7F4A_7C15,
            0xC2B2_AE3D_27D4_EB4F,
            0x1656_67B1_9E37_79F9,
            0x27D4_EB2F_1656_67C5,
        ];
        let h = hash.wrapping_mul(SEEDS[row]);
        row * (self.mask + 1) + ((h >> 32) as usize & self.mask)
    }

    fn record(&self, hash: u64) {
        for row in 0..Self::ROWS {
            let c = &self.counters[self.index(hash, row)];
            let v = c.load(Ordering::Relaxed);
            if v < Self::MAX {
                c.store(v + 1, Ordering::Relaxed);
            }
        }
        // A plain load and store, not `fetch_add`: readers on several cores would otherwise
        // contend on this line; a lost count only delays the next halving a little.
        let n = self.accesses.load(Ordering::Relaxed);
        self.accesses.store(n + 1, Ordering::Relaxed);
    }

    fn estimate(&self, hash: u64) -> u8 {
        (0..Self::ROWS)
            .map(|row| self.counters[self.index(hash, row)].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter once enough accesses were recorded (called under the write lock).
    fn age(&self) {
        if self.accesses.load(Ordering::Relaxed) < self.reset_at {
            return;
        }
        self.accesses.store(0, Ordering::Relaxed);
        for c in &*self.counters {
            c.store(c.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
        }
    }
}

/// Expired entries a purge looks up together before removing them.
const PURGE_BATCH: usize = 32;

#[derive(Default)]
struct Inner {
    /// Keyed by the backend's hash of the key, computed once per call (it also picks the
    /// shard), so nothing hashes a key twice and a purge finds entries by the hash it kept.
    map: HashTable<Stored>,
    /// The id of every entry with a deadline, with the entry's hash.
    expiry: ExpiryIndex<u64, u64>,
    bytes: usize,
    policy: Option<Policy>,
    /// The id the next new entry gets: ids are never reused, even across a `clear`.
    next_id: u64,
}

pub(crate) struct Shard {
    inner: RwLock<Inner>,
    limits: Limits,
    /// Access frequencies for admission, when bounded.
    sketch: Option<Sketch>,
}

impl Shard {
    pub(crate) fn new(limits: Limits) -> Shard {
        Shard {
            inner: RwLock::new(Inner {
                policy: limits.is_bounded().then(Policy::default),
                ..Inner::default()
            }),
            limits,
            sketch: limits.is_bounded().then(|| {
                // Entries the shard may hold; bounded by bytes only, a guess of 1 KiB each.
                let cap = limits
                    .max_entries
                    .or(limits.max_bytes.map(|b| b / 1024))
                    .unwrap_or(1024);
                Sketch::new(cap)
            }),
        }
    }

    // A panic while holding the lock cannot leave the shard inconsistent in a way that matters
    // more than losing the cache, so poisoning is ignored rather than turned into panics.
    #[inline]
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn get(&self, key: &str, hash: u64) -> Option<Record> {
        let inner = self.read();
        Some(self.hit(&inner, key, hash)?.record())
    }

    /// Copies the value stored under `key` out of the shard and returns what the record says
    /// besides its value, so that the caller can look at it after the lock is released without
    /// allocating.
    ///
    /// A value held in its slot is copied, with the rest of the slot's bytes, into `small` (a
    /// fixed-size copy: no call, no buffer); one on the heap of at most
    /// [`KEPT_BUFFER`](crate::KEPT_BUFFER) bytes into the thread's kept buffer, grown to
    /// exactly its size if it must grow (so it never outgrows that bound and the thread can keep
    /// it); a larger one into a buffer of its own.
    #[inline]
    pub(crate) fn get_into(
        &self,
        key: &str,
        hash: u64,
        small: &mut [u8; INLINE],
    ) -> Option<(Meta, Copied)> {
        let inner = self.read();
        let entry = self.hit(&inner, key, hash)?;
        let copied = match &entry.data {
            Data::Inline { klen, vlen, bytes } => {
                *small = *bytes;
                let start = usize::from(*klen);
                Copied::Small(start..start + usize::from(*vlen))
            }
            Data::Heap { value, .. } if value.len() > crate::KEPT_BUFFER => {
                Copied::Own(value.clone())
            }
            Data::Heap { value, .. } => {
                let mut kept = crate::take_kept_buffer();
                kept.clear();
                kept.reserve_exact(value.len());
                kept.extend_from_slice(value);
                Copied::Kept(kept)
            }
        };
        let meta = Meta {
            expires_at: entry.expires_at(),
            codec: CodecId::new(entry.codec),
            framed: entry.framed,
        };
        Some((meta, copied))
    }

    /// The entry under `key`, counting the request in the sketch and the hit in its frequency.
    #[inline]
    fn hit<'a>(&self, inner: &'a Inner, key: &str, hash: u64) -> Option<&'a Stored> {
        if let Some(sketch) = &self.sketch {
            sketch.record(hash);
        }
        let entry = inner.find(hash, key)?;
        if inner.policy.is_some() {
            let f = entry.freq.load(Ordering::Relaxed);
            if f < MAX_FREQ {
                entry.freq.store(f + 1, Ordering::Relaxed);
            }
        }
        Some(entry)
    }

    pub(crate) fn len(&self) -> usize {
        self.read().map.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.read().bytes
    }

    pub(crate) fn next_expiry(&self) -> Option<Timestamp> {
        self.read().expiry.next_expiry()
    }

    /// Stores the record; returns how many entries were evicted to make room.
    pub(crate) fn set(&self, key: &str, hash: u64, record: Record) -> u64 {
        // Framing and copying the record happen before the lock is taken, and the bytes a
        // replaced entry held (or a refused new one) are freed here, after it is released: a
        // `free` is not work other threads should wait for.
        let fresh = Fresh::new(key, record);
        let (evicted, _freed) = self.set_locked(key, hash, fresh);
        evicted
    }

    /// [`set`](Self::set) under the write lock; returns the bytes it replaced or did not keep.
    fn set_locked(&self, key: &str, hash: u64, fresh: Fresh) -> (u64, Option<Data>) {
        let limits = &self.limits;
        let size = fresh.data.size();
        let mut inner = self.write();
        // An entry evicted by admission to make room for this one.
        let mut admitted_over = 0;
        if limits.max_bytes.is_some_and(|max| size > max) {
            // Too big to keep: drop it, and the stale value under the same key with it.
            let old = inner.remove(hash, |s| s.data.key() == key.as_bytes());
            drop(inner);
            drop(old);
            return (1, Some(fresh.data));
        }
        let replaced;
        if let Some(slot) = inner.map.find_mut(hash, |s| s.data.key() == key.as_bytes()) {
            let old_deadline = slot.expires_at();
            let old_size = slot.size();
            let new_deadline = fresh.expires_at;
            let id = slot.id;
            replaced = Some(slot.replace(fresh));
            inner.expiry.replace(id, old_deadline, new_deadline, hash);
            inner.bytes = inner.bytes - old_size + size;
        } else {
            if let Some(sketch) = &self.sketch {
                sketch.record(hash);
                sketch.age();
                let full = limits.max_entries.is_some_and(|m| inner.map.len() >= m)
                    || limits.max_bytes.is_some_and(|m| inner.bytes + size > m);
                if full {
                    if !inner.admit(sketch, hash) {
                        // TinyLFU: the newcomer is no more popular than the entry it would
                        // displace, so it is not kept.
                        return (1, Some(fresh.data));
                    }
                    admitted_over = 1;
                }
            }
            let id = inner.next_id;
            inner.next_id += 1;
            let queue = match &mut inner.policy {
                Some(p) => {
                    let queued = Queued { id, hash };
                    if p.ghost_set.remove(&hash) {
                        p.main.push_back(queued);
                        p.main_live += 1;
                        Queue::Main
                    } else {
                        p.small.push_back(queued);
                        p.small_live += 1;
                        Queue::Small
                    }
                }
                None => Queue::Small,
            };
            if let Some(d) = fresh.expires_at {
                inner.expiry.insert(d, id, hash);
            }
            inner.bytes += size;
            let stored = Stored::new(fresh, id, hash, queue);
            inner.map.insert_unique(hash, stored, |s| s.hash);
            replaced = None;
        }
        let mut evicted = admitted_over;
        while limits.max_entries.is_some_and(|m| inner.map.len() > m)
            || limits.max_bytes.is_some_and(|m| inner.bytes > m)
        {
            if !inner.evict_one() {
                break;
            }
            evicted += 1;
        }
        inner.compact_queues();
        (evicted, replaced)
    }

    pub(crate) fn delete(&self, key: &str, hash: u64) -> bool {
        let removed = self
            .write()
            .remove(hash, |s| s.data.key() == key.as_bytes());
        removed.is_some()
    }

    pub(crate) fn clear(&self) {
        let mut inner = self.write();
        let fresh = Inner {
            policy: inner.policy.is_some().then(Policy::default),
            next_id: inner.next_id,
            ..Inner::default()
        };
        let old = std::mem::replace(&mut *inner, fresh);
        drop(inner);
        drop(old);
    }

    /// Removes every entry due at `now`, found through the expiry index: the cost follows the
    /// number of expired entries, not the number held.
    pub(crate) fn purge_expired(&self, now: Timestamp) -> usize {
        let mut inner = self.write();
        let mut n = 0;
        let mut batch: Vec<(u64, u64)> = Vec::with_capacity(PURGE_BATCH);
        loop {
            while batch.len() < PURGE_BATCH {
                let Some((_, id, hash)) = inner.expiry.pop_due(now) else {
                    break;
                };
                batch.push((id, hash));
            }
            if batch.is_empty() {
                return n;
            }
            // Expired entries sit at random places in the table; in a table larger than the
            // CPU caches each lookup misses. Reading the whole batch first, with no removal in
            // between, lets the CPU overlap those misses (the reads are independent), so the
            // removals that follow find everything in cache. The reads cover what a removal
            // touches: the slot and, for an entry too large for it, its bytes' allocation.
            // Without this a purge among 1M entries took 2-5x as long per entry as among 10k.
            let mut touched = 0u64;
            for &(id, hash) in &batch {
                if let Some(s) = inner.map.find(hash, |s| s.id == id) {
                    let value = s.data.value();
                    touched ^= s.hash
                        ^ value.len() as u64
                        ^ u64::from(value.first().copied().unwrap_or(0));
                }
            }
            std::hint::black_box(touched);
            for (id, hash) in batch.drain(..) {
                // The index entry is gone already: take the entry out of the map only.
                if let Some(slot) = inner.take(hash, |s| s.id == id) {
                    inner.forget(&slot);
                    n += 1;
                }
            }
        }
    }
}

/// The entry whose live slot in `queue` `q` is, if any: the entry with `q`'s id (a stale slot
/// of a deleted and re-inserted key holds an older one), still in `queue`.
fn live_entry<'a>(
    map: &'a mut HashTable<Stored>,
    q: &Queued,
    queue: Queue,
) -> Option<&'a mut Stored> {
    map.find_mut(q.hash, |s| s.id == q.id)
        .filter(|s| s.queue == queue)
}

impl Inner {
    fn find(&self, hash: u64, key: &str) -> Option<&Stored> {
        self.map.find(hash, |s| s.data.key() == key.as_bytes())
    }

    /// Takes the slot `eq` picks out of the table.
    fn take(&mut self, hash: u64, eq: impl Fn(&Stored) -> bool) -> Option<Stored> {
        let found = self.map.find_entry(hash, eq).ok()?;
        Some(found.remove().0)
    }

    /// Removes the entry `eq` picks from the map, the expiry index and the live counts. Its
    /// queue slot goes stale and is skipped when reached.
    fn remove(&mut self, hash: u64, eq: impl Fn(&Stored) -> bool) -> Option<Stored> {
        let slot = self.take(hash, eq)?;
        if let Some(d) = slot.expires_at() {
            self.expiry.remove(d, slot.id);
        }
        self.forget(&slot);
        Some(slot)
    }

    /// Updates the byte count and the queue counts for an entry leaving the map.
    fn forget(&mut self, slot: &Stored) {
        self.bytes -= slot.size();
        if let Some(p) = &mut self.policy {
            match slot.queue {
                Queue::Small => p.small_live -= 1,
                Queue::Main => p.main_live -= 1,
            }
        }
    }

    fn is_live(&self, q: &Queued, queue: Queue) -> bool {
        self.map
            .find(q.hash, |s| s.id == q.id)
            .is_some_and(|s| s.queue == queue)
    }

    /// Evicts one entry by S3-FIFO; false when there is nothing to evict.
    fn evict_one(&mut self) -> bool {
        let Some((q, queue)) = self.next_victim() else {
            return false;
        };
        self.remove(q.hash, |s| s.id == q.id);
        if queue == Queue::Small {
            self.remember(q.hash);
        }
        true
    }

    /// Whether a new key with `hash` may displace the entry S3-FIFO would evict next: only
    /// when the sketch saw it more often (TinyLFU admission). When it may, that entry is evicted
    /// here, making room; when not, it goes back to the head of its queue.
    fn admit(&mut self, sketch: &Sketch, hash: u64) -> bool {
        let Some((q, queue)) = self.next_victim() else {
            return true;
        };
        if sketch.estimate(hash) > sketch.estimate(q.hash) {
            self.remove(q.hash, |s| s.id == q.id);
            if queue == Queue::Small {
                self.remember(q.hash);
            }
            return true;
        }
        if let Some(p) = &mut self.policy {
            match queue {
                Queue::Small => p.small.push_front(q),
                Queue::Main => p.main.push_front(q),
            }
        }
        false
    }

    /// Pops the entry S3-FIFO evicts next off its queue (giving second chances on the way) and
    /// returns it with its queue, still in the map.
    fn next_victim(&mut self) -> Option<(Queued, Queue)> {
        loop {
            let p = self.policy.as_mut()?;
            // Evict from the small queue while it holds 1 % or more of the entries. With TinyLFU
            // admission in front (see `admit`), a larger probation queue only costs hits: 10 %
            // (S3-FIFO's paper value) lost 0.03-0.1 of hit ratio on the harness's loop traces.
            let from_small =
                p.small_live > 0 && (p.small_live * 100 >= self.map.len() || p.main_live == 0);
            if from_small {
                let q = p.small.pop_front()?;
                let Some(entry) = live_entry(&mut self.map, &q, Queue::Small) else {
                    continue;
                };
                let p = self.policy.as_mut().expect("checked above");
                if entry.freq.load(Ordering::Relaxed) > 0 {
                    entry.freq.store(0, Ordering::Relaxed);
                    entry.queue = Queue::Main;
                    p.small_live -= 1;
                    p.main_live += 1;
                    p.main.push_back(q);
                    continue;
                }
                return Some((q, Queue::Small));
            }
            let q = p.main.pop_front()?;
            let Some(entry) = live_entry(&mut self.map, &q, Queue::Main) else {
                continue;
            };
            let f = entry.freq.load(Ordering::Relaxed);
            if f > 0 {
                entry.freq.store(f - 1, Ordering::Relaxed);
                if let Some(p) = &mut self.policy {
                    p.main.push_back(q);
                }
                continue;
            }
            return Some((q, Queue::Main));
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
        let Some(mut p) = self.policy.take() else {
            return;
        };
        p.small.retain(|q| self.is_live(q, Queue::Small));
        p.main.retain(|q| self.is_live(q, Queue::Main));
        self.policy = Some(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Shard {
        /// Checks that the table, the expiry index, the byte count and the queue counts agree.
        pub(super) fn check(&self) {
            let inner = self.read();
            let mut bytes = 0;
            let mut deadlines = 0;
            let (mut small, mut main) = (0, 0);
            for slot in inner.map.iter() {
                bytes += slot.size();
                if let Some(d) = slot.expires_at() {
                    deadlines += 1;
                    assert_eq!(inner.expiry.get(d, slot.id), Some(&slot.hash));
                }
                match slot.queue {
                    Queue::Small => small += 1,
                    Queue::Main => main += 1,
                }
            }
            assert_eq!(inner.bytes, bytes, "byte count");
            assert_eq!(inner.expiry.len(), deadlines, "expiry index");
            if let Some(p) = &inner.policy {
                assert_eq!((p.small_live, p.main_live), (small, main), "queue counts");
                // Every entry has exactly one live queue slot, in its own queue.
                let live = |q: &VecDeque<Queued>, queue| {
                    q.iter().filter(|q| inner.is_live(q, queue)).count()
                };
                assert_eq!(live(&p.small, Queue::Small), small, "live small slots");
                assert_eq!(live(&p.main, Queue::Main), main, "live main slots");
                // Stale slots are compacted away by sets: however many deletes and re-inserts,
                // the queues stay within twice the bound plus a constant.
                if let Some(max) = self.limits.max_entries {
                    assert!(
                        p.small.len() + p.main.len() <= 2 * max + 64 + 1,
                        "queues grow: {} + {} slots for at most {max} entries",
                        p.small.len(),
                        p.main.len(),
                    );
                }
            }
        }
    }

    impl Shard {
        /// Checks the table, the byte count and the queues, but not that the expiry index holds
        /// nothing more than the table's deadlines.
        fn check_table(&self) {
            let inner = self.read();
            let bytes: usize = inner.map.iter().map(Stored::size).sum();
            assert_eq!(inner.bytes, bytes, "byte count");
        }
    }

    /// A shard bounded at 8 entries, and a function hashing keys for it.
    fn bounded_shard() -> (Shard, impl Fn(&str) -> u64) {
        let shard = Shard::new(Limits {
            max_entries: Some(8),
            max_bytes: None,
        });
        let hasher = std::hash::RandomState::new();
        (shard, move |k: &str| {
            std::hash::BuildHasher::hash_one(&hasher, k)
        })
    }

    /// A key deleted and re-inserted many times leaves many stale queue slots under the key
    /// string of a live entry; compaction must drop them all, not keep those whose key is live.
    #[test]
    fn compaction_drops_stale_slots_of_a_live_key() {
        let (shard, hash) = bounded_shard();
        for _ in 0..500 {
            shard.set("k", hash("k"), Record::new(vec![1], None));
            shard.delete("k", hash("k"));
        }
        shard.set("k", hash("k"), Record::new(vec![1], None));
        shard.set("other", hash("other"), Record::new(vec![1], None));
        shard.check();
        let inner = shard.read();
        let p = inner.policy.as_ref().unwrap();
        assert!(p.small.len() + p.main.len() <= 2 * 2 + 64 + 1);
    }

    /// Deleting and re-inserting keys leaves stale queue slots for the same key strings; they
    /// must never count as the new entries' slots (which would evict the wrong entry or
    /// underflow the queue counts).
    #[test]
    fn queues_and_counts_stay_consistent_under_churn() {
        let (shard, hash_of) = bounded_shard();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = format!("k{}", x % 24);
            let hash = hash_of(&key);
            match x >> 60 {
                0..=5 => {
                    let d = (x & 1 == 0).then(|| Timestamp::from_unix_nanos(x % 1000));
                    shard.set(&key, hash, Record::new(vec![1; (x % 5) as usize], d));
                }
                6..=9 => {
                    shard.get(&key, hash);
                }
                10..=13 => {
                    shard.delete(&key, hash);
                }
                _ => {
                    shard.purge_expired(Timestamp::from_unix_nanos(step % 1000));
                }
            }
            shard.check();
            assert!(shard.len() <= 8);
        }
    }

    /// The slot holding `key`: its id, whether its bytes are inline, and its value.
    fn slot(shard: &Shard, key: &str, hash: u64) -> Option<(u64, bool, Vec<u8>)> {
        let inner = shard.read();
        let s = inner.find(hash, key)?;
        let inline = matches!(s.data, Data::Inline { .. });
        Some((s.id, inline, s.data.value().to_vec()))
    }

    /// The value `get_into` copies out for `key`, and the record `get` returns.
    fn read_back(shard: &Shard, key: &str, hash: u64) -> Option<(Vec<u8>, Record)> {
        let (_, copied) = copy_out(shard, key, hash)?;
        Some((copied, shard.get(key, hash)?))
    }

    /// What `get_into` copies out for `key`: the record's meta and the value's bytes, from
    /// wherever it put them.
    fn copy_out(shard: &Shard, key: &str, hash: u64) -> Option<(Meta, Vec<u8>)> {
        let mut small = [0; INLINE];
        let (meta, copied) = shard.get_into(key, hash, &mut small)?;
        let bytes = match copied {
            Copied::Small(range) => small[range].to_vec(),
            Copied::Kept(bytes) | Copied::Own(bytes) => bytes,
        };
        Some((meta, bytes))
    }

    fn unbounded() -> Shard {
        Shard::new(Limits {
            max_entries: None,
            max_bytes: None,
        })
    }

    /// Keys and values at and around the inline capacity: those that fit together in `INLINE`
    /// bytes sit in the slot, the rest in one allocation, and both read back whole.
    #[test]
    fn keys_and_values_around_the_inline_capacity_read_back() {
        let long_key = "k".repeat(INLINE + 5);
        let mut cases: Vec<(String, usize)> = Vec::new();
        for klen in [0, 1, 12, INLINE - 1, INLINE] {
            for total in [INLINE - 1, INLINE, INLINE + 1] {
                if klen <= total {
                    cases.push(("k".repeat(klen), total - klen));
                }
            }
        }
        cases.push((String::new(), 0)); // empty key, empty value
        cases.push(("k".repeat(12), 0)); // empty value
        cases.push((String::new(), 67)); // empty key
        cases.push((long_key.clone(), 0)); // a key alone longer than the capacity
        cases.push((long_key, 3));
        for (i, (key, vlen)) in cases.iter().enumerate() {
            // Next to a neighbour under the same hash: colliding keys are told apart by their
            // bytes, whatever the layout.
            let shard = unbounded();
            let neighbour = Record::new(vec![9; 50], None);
            shard.set("neighbour", 7, neighbour.clone());
            let value: Vec<u8> = (0..*vlen).map(|b| (b * 31 + i) as u8).collect();
            let d = Some(Timestamp::from_unix_nanos(1_000));
            let record = Record::new(value.clone(), d).with_codec(CodecId::new(2));
            shard.set(key, 7, record.clone());
            let (_, inline, stored) = slot(&shard, key, 7).unwrap();
            let fits = key.len() + vlen <= INLINE;
            assert_eq!(inline, fits, "key {} + value {vlen}", key.len());
            assert_eq!(stored, value);
            let (copied, got) = read_back(&shard, key, 7).unwrap();
            assert_eq!(copied, value, "get_into copies the value only");
            assert_eq!(got, record);
            assert_eq!(shard.get("neighbour", 7), Some(neighbour));
            assert_eq!(
                shard.bytes(),
                9 + 50 + key.len() + vlen + 2 * crate::ENTRY_OVERHEAD
            );
            shard.check();
        }
    }

    /// A framed record (freshness fields) is stored whole, inline or not, and read back.
    #[test]
    fn framed_records_read_back_inline_and_on_the_heap() {
        let shard = unbounded();
        for vlen in [0, 10, INLINE, 1000] {
            let record = Record::new(vec![5; vlen], Some(Timestamp::from_unix_nanos(9)))
                .with_fresh_until(Some(Timestamp::from_unix_nanos(7)));
            assert!(is_framed(&record));
            shard.set("f", 1, record.clone());
            assert_eq!(shard.get("f", 1), Some(record));
            shard.check();
        }
    }

    /// A value replaced so that its entry moves inline -> heap -> inline keeps its id, its
    /// deadline in the index and the byte count right.
    #[test]
    fn a_replaced_value_moves_between_slot_and_heap() {
        let (shard, hash_of) = bounded_shard();
        let h = hash_of("key");
        let mut id = None;
        for (step, vlen) in [10, INLINE, INLINE + 100, 4000, 0, 20]
            .into_iter()
            .enumerate()
        {
            let value = vec![step as u8; vlen];
            let d = Timestamp::from_unix_nanos(100 + step as u64);
            shard.set("key", h, Record::new(value.clone(), Some(d)));
            let (slot_id, inline, stored) = slot(&shard, "key", h).unwrap();
            assert_eq!(inline, 3 + vlen <= INLINE, "step {step}");
            assert_eq!(stored, value);
            assert_eq!(
                *id.get_or_insert(slot_id),
                slot_id,
                "a replace keeps the id"
            );
            assert_eq!(read_back(&shard, "key", h).unwrap().0, value);
            assert_eq!(shard.next_expiry(), Some(d));
            assert_eq!(shard.bytes(), 3 + vlen + crate::ENTRY_OVERHEAD);
            shard.check();
        }
    }

    /// A deleted and re-inserted key gets a new id; the old entry's queue slot, left at the
    /// head of the probation queue, must not make the new entry the next victim.
    #[test]
    fn a_stale_queue_slot_does_not_evict_the_reinserted_entry() {
        let (shard, hash_of) = bounded_shard();
        let one = || Record::new(vec![1], None);
        let k = hash_of("k");
        shard.set("k", k, one());
        let (old_id, ..) = slot(&shard, "k", k).unwrap();
        shard.delete("k", k);
        for name in ["a", "b", "c", "d", "e", "f", "g"] {
            shard.set(name, hash_of(name), one());
        }
        shard.set("k", k, one());
        let (new_id, ..) = slot(&shard, "k", k).unwrap();
        assert_ne!(old_id, new_id);
        assert_eq!(shard.len(), 8);
        shard.check();
        // "h" was asked for (misses count), so admission lets it displace the next victim:
        // "a", the oldest live entry, not the re-inserted "k".
        let h = hash_of("h");
        for _ in 0..3 {
            assert!(shard.get("h", h).is_none());
        }
        assert_eq!(shard.set("h", h, one()), 1);
        assert!(
            shard.get("a", hash_of("a")).is_none(),
            "the oldest entry is evicted"
        );
        assert!(shard.get("k", k).is_some(), "the re-inserted entry is kept");
        assert!(shard.get("h", h).is_some());
        shard.check();
    }

    /// Eviction removes its victim by id, not another entry sharing the victim's hash (here one
    /// inserted before it, so found first among the two).
    #[test]
    fn eviction_removes_the_victim_not_a_key_sharing_its_hash() {
        let (shard, hash_of) = bounded_shard();
        let one = || Record::new(vec![1], None);
        shard.set("z", 5, one());
        shard.set("a", 5, one());
        assert!(shard.get("z", 5).is_some()); // a second chance: "z" moves on to main
        for name in ["b", "c", "d", "e", "f", "g"] {
            shard.set(name, hash_of(name), one());
        }
        let h = hash_of("h");
        for _ in 0..5 {
            assert!(shard.get("h", h).is_none());
        }
        assert_eq!(shard.set("h", h, one()), 1);
        assert!(shard.get("a", 5).is_none(), "the victim is evicted");
        assert!(
            shard.get("z", 5).is_some(),
            "its hash's other entry is kept"
        );
        shard.check();
    }

    /// The expiry index entry of a key's old entry, had its removal left it there, names the
    /// old id: a purge at its deadline leaves the re-inserted key's new entry alone.
    #[test]
    fn a_stale_expiry_entry_does_not_purge_the_reinserted_entry() {
        let (shard, hash_of) = bounded_shard();
        let t = Timestamp::from_unix_nanos;
        let h = hash_of("k");
        shard.set("k", h, Record::new(vec![1; 200], Some(t(10))));
        // Out of the table and the counts, its index entry left behind.
        {
            let mut inner = shard.write();
            let old = inner.take(h, |s| s.data.key() == b"k").unwrap();
            inner.forget(&old);
        }
        shard.set("k", h, Record::new(vec![2; 20], Some(t(50))));
        assert_eq!(shard.purge_expired(t(10)), 0);
        assert_eq!(shard.get("k", h).unwrap().value, vec![2; 20]);
        shard.check();
        assert_eq!(shard.purge_expired(t(50)), 1);
        assert_eq!(shard.len(), 0);
        shard.check();
    }

    /// A purge removes the entries whose deadline passed, found by id: not an entry sharing
    /// their hash, not a re-inserted key's new entry, and not for an index entry whose id is
    /// gone.
    #[test]
    fn purge_removes_exactly_the_expired_entries_by_id() {
        let shard = unbounded();
        let t = Timestamp::from_unix_nanos;
        // Twenty keys under one hash, every other one expired at 10.
        let keys: Vec<String> = (0..20).map(|i| format!("key{i}")).collect();
        for (i, key) in keys.iter().enumerate() {
            let d = if i % 2 == 0 { t(10) } else { t(50) };
            shard.set(key, 3, Record::new(vec![i as u8; i * 9], Some(d)));
        }
        // "key1" deleted and re-inserted due at 5; "key2" re-inserted with no deadline.
        shard.delete("key1", 3);
        shard.set("key1", 3, Record::new(vec![1], Some(t(5))));
        shard.delete("key2", 3);
        shard.set("key2", 3, Record::new(vec![2], None));
        // An index entry for an id nothing holds (as a removal that missed it would leave)
        // under the same hash and an earlier deadline.
        shard.write().expiry.insert(t(1), 1_000_000, 3);
        shard.check_table();
        assert_eq!(
            shard.purge_expired(t(9)),
            1,
            "key1 at 5; the orphan removes nothing"
        );
        assert_eq!(shard.purge_expired(t(10)), 9, "key0, key4, ..., key18");
        for (i, key) in keys.iter().enumerate() {
            let kept = i == 2 || (i % 2 == 1 && i != 1);
            assert_eq!(shard.get(key, 3).is_some(), kept, "{key}");
        }
        assert_eq!(shard.len(), 10);
        shard.check();
        assert_eq!(shard.purge_expired(t(50)), 9);
        assert_eq!(shard.len(), 1);
        shard.check();
    }

    /// A shard bounded at 1000 bytes.
    fn bytes_bounded() -> Shard {
        Shard::new(Limits {
            max_entries: None,
            max_bytes: Some(1000),
        })
    }

    /// An entry that grows past the byte bound makes room by evicting the small queue's unread
    /// head, found by its id: `z` and `a` share a hash, and removing by hash alone would take
    /// `z` (read, so moved to the main queue) instead of `a`.
    #[test]
    fn growing_past_the_bound_evicts_the_victim_by_id() {
        let shard = bytes_bounded();
        shard.set("z", 5, Record::new(vec![1], None));
        shard.set("a", 5, Record::new(vec![1], None));
        assert!(shard.get("z", 5).is_some());
        shard.set("c", 9, Record::new(vec![1], None));
        shard.set("c", 9, Record::new(vec![2; 850], None));
        assert!(
            shard.get("a", 5).is_none(),
            "the unread entry is the victim"
        );
        assert_eq!(shard.get("z", 5).map(|r| r.value), Some(vec![1]));
        assert_eq!(shard.get("c", 9).map(|r| r.value.len()), Some(850));
        assert!(shard.bytes() <= 1000);
        shard.check();
    }

    /// A value too large for the bound replaces nothing and leaves the old entry gone, its
    /// bytes uncounted.
    #[test]
    fn a_too_large_value_drops_the_old_one_and_its_bytes() {
        let shard = bytes_bounded();
        shard.set("k", 1, Record::new(vec![1; 10], None));
        assert_eq!(shard.bytes(), 1 + 10 + crate::ENTRY_OVERHEAD);
        assert_eq!(shard.set("k", 1, Record::new(vec![1; 2000], None)), 1);
        assert!(shard.get("k", 1).is_none());
        assert_eq!(shard.bytes(), 0);
        shard.check();
    }

    /// A key switching between plain and framed records (freshness fields) reads back each
    /// one whole, through `get` and through `get_into`'s view, inline and on the heap.
    #[test]
    fn a_key_switches_between_plain_and_framed_records() {
        let shard = unbounded();
        let d = Some(Timestamp::from_unix_nanos(90));
        for vlen in [4, INLINE - 20, 500] {
            let plain = Record::new(vec![3; vlen], d);
            let framed = plain
                .clone()
                .with_fresh_until(Some(Timestamp::from_unix_nanos(50)));
            for record in [plain.clone(), framed.clone(), plain, framed] {
                shard.set("k", 1, record.clone());
                assert_eq!(shard.get("k", 1).as_ref(), Some(&record), "{vlen}");
                let (meta, bytes) = copy_out(&shard, "k", 1).unwrap();
                assert_eq!(meta.view(&bytes).to_record(), record, "{vlen}");
                shard.check();
            }
        }
    }
}
