#![cfg(feature = "redb")]
//! The redb backend through the facade: typed values, TTL on a manual clock, the cleaner,
//! persistence across opens, and a second process sharing the file.

mod support;

use braincache::backend::RedbBackend;
use braincache::base::ManualClock;
use braincache::{BrainCache, CacheCleaner, Error};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{User, ann};

fn cache_with_clock(path: &Path) -> (BrainCache<RedbBackend>, ManualClock) {
    support::with_manual_clock(RedbBackend::open(path).unwrap())
}

#[test]
fn typed_and_falsy_values_round_trip_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    {
        let cache = BrainCache::new(RedbBackend::open(&path).unwrap());
        cache
            .set("user", &ann(), Duration::from_secs(3600))
            .unwrap();
        cache.set("zero", &0u32, None).unwrap();
        cache.set("none", &None::<String>, None).unwrap();
        cache.set("empty", &"", None).unwrap();
        cache.set("unit", &(), None).unwrap();
        assert_eq!(cache.get::<User>("user").unwrap(), Some(ann()));
    }
    let cache = BrainCache::new(RedbBackend::open(&path).unwrap());
    assert_eq!(cache.get::<User>("user").unwrap(), Some(ann()));
    assert_eq!(cache.get::<u32>("zero").unwrap(), Some(0));
    assert_eq!(cache.get::<Option<String>>("none").unwrap(), Some(None));
    assert!(cache.has("none").unwrap());
    assert_eq!(cache.get::<String>("empty").unwrap(), Some(String::new()));
    assert_eq!(cache.get::<()>("unit").unwrap(), Some(()));
    assert_eq!(cache.len().unwrap(), 5);
    // Wrong type: an error, not a panic and not None; the entry stays.
    let e = cache.get::<Vec<u64>>("user").unwrap_err();
    assert!(e.is_decode(), "{e}");
    assert_eq!(cache.get::<User>("user").unwrap(), Some(ann()));
}

#[test]
fn ttl_follows_the_manual_clock_and_purge_uses_the_expiry_index() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, clock) = cache_with_clock(&dir.path().join("cache.redb"));
    cache.set("short", &1u8, Duration::from_secs(10)).unwrap();
    cache.set("long", &2u8, Duration::from_secs(100)).unwrap();
    cache.set("forever", &3u8, None).unwrap();
    cache.set("zero", &4u8, Duration::ZERO).unwrap();
    assert_eq!(
        cache.get::<u8>("zero").unwrap(),
        None,
        "a zero TTL is already expired"
    );
    clock.advance(Duration::from_secs(9));
    assert_eq!(cache.get::<u8>("short").unwrap(), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        cache.get::<u8>("short").unwrap(),
        None,
        "expired at its deadline"
    );
    // Expired entries stay stored until purged.
    assert_eq!(cache.len().unwrap(), 4);
    assert_eq!(cache.purge_expired().unwrap(), 2);
    assert_eq!(cache.len().unwrap(), 2);
    assert_eq!(cache.stats().expired, 2);
    assert_eq!(
        cache.next_expiry().unwrap(),
        Some(clock_now(&cache) + Duration::from_secs(90))
    );
    clock.advance(Duration::from_secs(90));
    assert_eq!(cache.purge_expired().unwrap(), 1);
    assert_eq!(cache.get::<u8>("forever").unwrap(), Some(3));
    assert_eq!(cache.next_expiry().unwrap(), None);
}

fn clock_now(cache: &BrainCache<RedbBackend>) -> braincache::Timestamp {
    cache.clock().now()
}

#[test]
fn the_cleaner_purges_without_any_get() {
    let dir = tempfile::tempdir().unwrap();
    let cache = BrainCache::new(RedbBackend::open(dir.path().join("cache.redb")).unwrap());
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
    cache.set("keep", &"v", None).unwrap();
    for i in 0..5 {
        cache
            .set(&format!("short-{i}"), &i, Duration::from_millis(20))
            .unwrap();
    }
    let start = Instant::now();
    // The cleaner counts what it purged just after its commit: wait for both.
    while (cache.len().unwrap() > 1 || cache.stats().expired < 5)
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(cache.len().unwrap(), 1, "the cleaner did not purge");
    assert_eq!(cache.stats().expired, 5);
    assert_eq!(
        cache.stats().hits + cache.stats().misses,
        0,
        "no get was needed"
    );
    cleaner.stop();
}

/// After a restart no `set` wakes the cleaner: it must sleep until the file's earliest
/// deadline, which it learns from `next_expiry` (the first row of the expiry table).
#[test]
fn a_cleaner_on_a_reopened_file_sleeps_until_the_stored_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    {
        let cache = BrainCache::new(RedbBackend::open(&path).unwrap());
        cache.set("keep", &1u8, None).unwrap();
        cache.set("soon", &2u8, Duration::from_millis(150)).unwrap();
        cache.set("later", &3u8, Duration::from_secs(3600)).unwrap();
    }
    let cache = BrainCache::new(RedbBackend::open(&path).unwrap());
    let deadline = cache.next_expiry().unwrap().unwrap();
    assert!(deadline <= braincache::Timestamp::now() + Duration::from_millis(150));
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(3600));
    let start = Instant::now();
    while (cache.len().unwrap() > 2 || cache.stats().expired < 1)
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        cache.len().unwrap(),
        2,
        "the cleaner did not wake for the stored deadline"
    );
    assert_eq!(cache.stats().expired, 1);
    assert!(
        cache.next_expiry().unwrap().unwrap() > braincache::Timestamp::now(),
        "only the one-hour entry keeps a deadline"
    );
    cleaner.stop();
}

#[test]
fn get_or_insert_with_computes_once_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.redb");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let compute = || {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        "expensive".to_string()
    };
    {
        let cache = BrainCache::new(RedbBackend::open(&path).unwrap());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let v: String = cache.get_or_insert_with("k", None, compute).unwrap();
                    assert_eq!(v, "expensive");
                });
            }
        });
    }
    let cache = BrainCache::new(RedbBackend::open(&path).unwrap());
    let v: String = cache.get_or_insert_with("k", None, compute).unwrap();
    assert_eq!(v, "expensive");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn bad_files_are_typed_errors_through_the_facade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-redb.json");
    std::fs::write(&path, br#"{"k": {"value": 1, "expire_at": null}}"#).unwrap();
    let e = RedbBackend::open(&path).map(BrainCache::new).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_eq!(e.path(), Some(path.as_path()));
}

const CHILD: &str = "BRAINCACHE_REDB_FACADE_CHILD";

/// A second process writes typed values through its own `BrainCache`; this process, open all
/// along and reading before and after, sees them as soon as the child has exited.
#[test]
fn a_second_process_shares_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.redb");
    let cache = BrainCache::new(RedbBackend::open(&path).unwrap());
    cache.set("from_parent", &ann(), None).unwrap();
    assert_eq!(cache.get::<User>("from_child").unwrap(), None);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writes_through_the_facade",
            "--test-threads=1",
            "-q",
        ])
        .env(CHILD, &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut expected = ann();
    expected.id = 8;
    assert_eq!(cache.get::<User>("from_child").unwrap(), Some(expected));
    assert_eq!(
        cache.get::<String>("child_saw_parent").unwrap().as_deref(),
        Some("Ann")
    );
}

#[test]
fn child_writes_through_the_facade() {
    let Some(path) = std::env::var_os(CHILD) else {
        return;
    };
    let cache = BrainCache::new(RedbBackend::open(path).unwrap());
    let parent: User = cache.get("from_parent").unwrap().unwrap();
    cache.set("child_saw_parent", &parent.name, None).unwrap();
    let mut mine = ann();
    mine.id = 8;
    cache
        .set("from_child", &mine, Duration::from_secs(60))
        .unwrap();
}
