//! The read path of `BrainCache::get` and `has`: values decoded where the backend keeps them
//! (`Backend::get_with`), the clock read only for records with a deadline, and the same
//! answers whether a backend lends its bytes (memory, redb) or relies on the default over `get`.

use braincache::backend::{Backend, MemoryBackend, Record, RecordRef, RedbBackend};
use braincache::base::{Clock, Codec, CodecId, ManualClock, MsgPack, Postcard};
use braincache::{BrainCache, Result, Timestamp};
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

/// A manual clock that counts how often it is read.
#[derive(Debug, Clone)]
struct CountingClock {
    clock: ManualClock,
    reads: Arc<AtomicUsize>,
}

impl CountingClock {
    fn new() -> Self {
        CountingClock {
            clock: ManualClock::starting_now(),
            reads: Arc::default(),
        }
    }

    /// Reads since the last call.
    fn take(&self) -> usize {
        self.reads.swap(0, Ordering::SeqCst)
    }
}

impl Clock for CountingClock {
    fn now(&self) -> Timestamp {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.clock.now()
    }
}

/// A third-party backend that implements only `get`: `BrainCache` reads it through the
/// default `get_with`.
#[derive(Default)]
struct MapBackend(Mutex<HashMap<String, Record>>);

impl Backend for MapBackend {
    type Codec = MsgPack;
    fn get(&self, key: &str) -> Result<Option<Record>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    fn set(&self, key: &str, record: Record) -> Result<()> {
        self.0.lock().unwrap().insert(key.to_owned(), record);
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.0.lock().unwrap().remove(key).is_some())
    }
    fn clear(&self) -> Result<()> {
        self.0.lock().unwrap().clear();
        Ok(())
    }
    fn len(&self) -> Result<usize> {
        Ok(self.0.lock().unwrap().len())
    }
    fn purge_expired(&self, _: Timestamp) -> Result<usize> {
        Ok(0)
    }
    fn next_expiry(&self) -> Result<Option<Timestamp>> {
        Ok(None)
    }
}

/// The same script on any backend: hits, misses, expiry at the deadline, stale records, typed
/// decode errors naming the key, codec mismatches, and the counters.
fn same_answers<B: Backend>(backend: B) {
    let clock = ManualClock::starting_now();
    let cache = BrainCache::builder(backend).clock(clock.clone()).build();
    cache.set("forever", &vec![1u8, 2, 3], None).unwrap();
    cache.set("hour", &"text", HOUR).unwrap();
    cache.set("empty", &"", None).unwrap();
    let now = clock.now();
    cache
        .backend()
        .set(
            "stale",
            Record::new(MsgPack.encode(&5u8).unwrap(), Some(now + HOUR))
                .with_codec(Some(MsgPack::ID))
                .with_fresh_until(Some(now)),
        )
        .unwrap();
    cache
        .backend()
        .set(
            "postcard",
            Record::new(Postcard.encode(&5u8).unwrap(), None).with_codec(Some(Postcard::ID)),
        )
        .unwrap();

    assert_eq!(
        cache.get::<Vec<u8>>("forever").unwrap(),
        Some(vec![1, 2, 3])
    );
    assert_eq!(
        cache.get::<String>("hour").unwrap().as_deref(),
        Some("text")
    );
    assert_eq!(cache.get::<String>("empty").unwrap().as_deref(), Some(""));
    assert_eq!(cache.get::<u8>("missing").unwrap(), None);
    assert_eq!(
        cache.get::<u8>("stale").unwrap(),
        None,
        "a stale record is a miss"
    );
    assert!(cache.has("hour").unwrap());
    assert!(!cache.has("stale").unwrap());
    assert!(!cache.has("missing").unwrap());

    let e = cache.get::<u32>("hour").unwrap_err();
    assert!(e.is_decode(), "{e}");
    assert_eq!(e.key(), Some("hour"));
    assert!(e.to_string().contains("u32"), "{e}");
    let e = cache.get::<u8>("postcard").unwrap_err();
    assert!(e.is_codec_mismatch(), "{e}");
    assert_eq!(e.key(), Some("postcard"));
    // A failed decode leaves the entry and the backend usable (no lock left held).
    cache.set("hour", &"again", HOUR).unwrap();
    assert_eq!(
        cache.get::<String>("hour").unwrap().as_deref(),
        Some("again")
    );

    clock.advance(HOUR);
    assert_eq!(
        cache.get::<String>("hour").unwrap(),
        None,
        "expired at its deadline"
    );
    assert!(!cache.has("hour").unwrap());
    assert_eq!(
        cache.get::<Vec<u8>>("forever").unwrap(),
        Some(vec![1, 2, 3])
    );

    let s = cache.stats();
    // Hits: forever, hour, empty, has(hour), the two decode errors (the records were live),
    // again, forever. Misses: missing, stale, has(stale), has(missing), hour, has(hour).
    assert_eq!((s.hits, s.misses, s.errors), (8, 6, 2), "{s:?}");
}

#[test]
fn memory_redb_and_a_get_only_backend_answer_alike() {
    same_answers(MemoryBackend::new());
    same_answers(MemoryBackend::builder().max_entries(1_000).build());
    same_answers(MapBackend::default());
    let dir = tempfile::tempdir().unwrap();
    same_answers(RedbBackend::open(dir.path().join("c.redb")).unwrap());
    let behind = RedbBackend::builder(dir.path().join("wb.redb"))
        .write_behind(HOUR)
        .build()
        .unwrap();
    same_answers(behind); // reads the queued writes
}

#[test]
fn the_clock_is_read_only_for_records_with_a_deadline() {
    let clock = CountingClock::new();
    let cache = BrainCache::builder(MemoryBackend::new())
        .clock(clock.clone())
        .build();
    clock.take();
    cache.set("forever", &1u8, None).unwrap();
    assert_eq!(clock.take(), 0, "a set without a deadline reads no clock");
    cache.set("hour", &2u8, HOUR).unwrap();
    assert_eq!(
        clock.take(),
        1,
        "a set with a deadline reads the clock once"
    );

    assert_eq!(cache.get::<u8>("forever").unwrap(), Some(1));
    assert!(cache.has("forever").unwrap());
    assert_eq!(cache.get::<u8>("missing").unwrap(), None);
    assert_eq!(clock.take(), 0, "no deadline, no clock read");

    assert_eq!(cache.get::<u8>("hour").unwrap(), Some(2));
    assert_eq!(clock.take(), 1);
    assert!(cache.has("hour").unwrap());
    assert_eq!(clock.take(), 1);

    clock.clock.advance(HOUR);
    assert_eq!(cache.get::<u8>("hour").unwrap(), None);
    assert_eq!(clock.take(), 1);
}

/// A value whose `Deserialize` panics (user code runs while the backend lends the bytes).
#[derive(Debug)]
struct Panics;

impl<'de> Deserialize<'de> for Panics {
    fn deserialize<D: Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
        panic!("user Deserialize panicked");
    }
}

fn panics_propagate_and_leave_the_backend_usable<B: Backend>(backend: B) {
    let cache = BrainCache::new(backend);
    cache.set("k", &1u8, None).unwrap();
    let p = catch_unwind(AssertUnwindSafe(|| cache.get::<Panics>("k"))).unwrap_err();
    let msg = p.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(msg, "user Deserialize panicked");
    // Writers and readers of the same key go on.
    cache.set("k", &2u8, None).unwrap();
    assert_eq!(cache.get::<u8>("k").unwrap(), Some(2));
}

#[test]
fn a_panicking_deserialize_propagates_as_a_panic_and_wedges_nothing() {
    panics_propagate_and_leave_the_backend_usable(MemoryBackend::new());
    let dir = tempfile::tempdir().unwrap();
    // redb turns its own panics (damaged pages) into errors; the user's stays a panic.
    panics_propagate_and_leave_the_backend_usable(
        RedbBackend::open(dir.path().join("c.redb")).unwrap(),
    );
}

#[test]
fn get_with_lends_what_get_returns() {
    let now = Timestamp::now();
    let records = [
        Record::new(b"v".to_vec(), None),
        Record::new(vec![], Some(now + HOUR)).with_codec(Some(CodecId::JSON)),
        Record::new(b"old".to_vec(), Some(Timestamp::from_unix_millis(1))),
        Record::new(b"f".to_vec(), Some(now + HOUR))
            .with_fresh_until(Some(now))
            .with_computed(Some(now), Some(Duration::from_millis(3))),
    ];
    let dir = tempfile::tempdir().unwrap();
    let memory = MemoryBackend::new();
    let redb = RedbBackend::open(dir.path().join("c.redb")).unwrap();
    let map = MapBackend::default();
    type Check<'a> = &'a dyn Fn(&str, Record) -> Vec<Record>;
    let backends: [Check<'_>; 3] = [
        &|k, r| lent_and_got(&memory, k, r),
        &|k, r| lent_and_got(&redb, k, r),
        &|k, r| lent_and_got(&map, k, r),
    ];
    for (i, r) in records.iter().enumerate() {
        for each in &backends {
            assert_eq!(
                each(&format!("k{i}"), r.clone()),
                vec![r.clone(), r.clone()]
            );
        }
    }
}

/// Sets `record`, then returns what `get_with` lent and what `get` returned.
fn lent_and_got<B: Backend>(b: &B, key: &str, record: Record) -> Vec<Record> {
    b.set(key, record).unwrap();
    let mut out = Vec::new();
    assert!(
        b.get_with(key, &mut |r: RecordRef<'_>| out.push(r.to_record()))
            .unwrap()
    );
    out.push(b.get(key).unwrap().unwrap());
    out
}

#[cfg(feature = "async")]
#[tokio::test(flavor = "current_thread")]
async fn the_async_face_reads_the_clock_by_the_same_rule() {
    let clock = CountingClock::new();
    let sync = BrainCache::builder(MemoryBackend::new())
        .clock(clock.clone())
        .build();
    sync.set("forever", &1u8, None).unwrap();
    sync.set("hour", &2u8, HOUR).unwrap();
    let cache = sync.to_async();
    clock.take();
    assert_eq!(cache.get::<u8>("forever").await.unwrap(), Some(1));
    assert!(cache.has("forever").await.unwrap());
    assert_eq!(clock.take(), 0, "no deadline, no clock read");
    assert_eq!(cache.get::<u8>("hour").await.unwrap(), Some(2));
    assert_eq!(clock.take(), 1);
    clock.clock.advance(HOUR);
    assert_eq!(cache.get::<u8>("hour").await.unwrap(), None);
    assert!(!cache.has("hour").await.unwrap());
}

/// The cache a re-entrant `Deserialize` below reaches for (a process-wide cache, as a
/// `#[cache]` function's is).
static REENTRANT: std::sync::OnceLock<BrainCache<MemoryBackend>> = std::sync::OnceLock::new();

/// A value whose `Deserialize` writes to the same cache (say, to note when it was last read)
/// and reads another of its keys (say, to resolve a reference).
struct Noting(u32);

impl<'de> Deserialize<'de> for Noting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = u32::deserialize(d)?;
        let cache = REENTRANT.get().expect("cache set up");
        cache
            .set("last-read", &v, None)
            .expect("write from Deserialize");
        let other: Option<u32> = cache.get("other").expect("read from Deserialize");
        Ok(Noting(v + other.unwrap_or(0)))
    }
}

/// A `Deserialize` that touches the same memory cache must not deadlock it: no user code runs
/// under a shard lock (one shard, so every key shares it; a writer thread keeps a write queued
/// on that lock meanwhile).
#[test]
fn a_deserialize_that_uses_the_same_memory_cache_does_not_deadlock() {
    let cache =
        REENTRANT.get_or_init(|| BrainCache::new(MemoryBackend::builder().shards(1).build()));
    cache.set("value", &7u32, None).unwrap();
    cache.set("other", &1u32, None).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let cache = REENTRANT.get().unwrap();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) && n < 1_000_000 {
                cache.set("busy", &n, None).unwrap();
                n += 1;
            }
        })
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cache = REENTRANT.get().unwrap();
        for _ in 0..2_000 {
            let v: Option<Noting> = cache.get("value").unwrap();
            assert_eq!(v.map(|n| n.0), Some(8));
        }
        let _ = tx.send(cache.get::<u32>("last-read").unwrap());
    });
    let got = rx.recv_timeout(Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    // Fail before joining: a deadlocked reader would hold the writer too.
    let last =
        got.expect("2,000 gets with a re-entrant Deserialize did not finish in 60 s: deadlock");
    writer.join().unwrap();
    assert_eq!(last, Some(7));
}
