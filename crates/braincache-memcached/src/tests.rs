//! Unit tests that need the crate's test-only hooks (the digest), against a real memcached.

use super::*;

#[path = "../tests/support/mod.rs"]
mod support;

#[test]
fn exptime_rounds_up_and_switches_to_absolute_past_30_days() {
    let now = Timestamp::from_unix_millis(1_700_000_000_000);
    let after = |ms: u64| Some(Timestamp::from_unix_millis(1_700_000_000_000 + ms));
    assert_eq!(exptime(None, now), Some(0));
    assert_eq!(exptime(Some(now), now), None);
    assert_eq!(exptime(Some(Timestamp::EPOCH), now), None);
    assert_eq!(exptime(after(1), now), Some(1));
    assert_eq!(exptime(after(1000), now), Some(1));
    assert_eq!(exptime(after(1001), now), Some(2));
    let thirty_days = RELATIVE_TTL_MAX * 1000;
    assert_eq!(exptime(after(thirty_days), now), Some(2_592_000));
    // One millisecond more: an absolute time, the deadline's Unix second rounded up.
    assert_eq!(
        exptime(after(thirty_days + 1), now),
        Some(1_700_000_000 + 2_592_001)
    );
    // memcached reads exptime as an i32: past 2038-01-19 it would read as already expired, so
    // such deadlines go without a memcached expiry (the record's own deadline still decides).
    let at = |secs: u64| Some(Timestamp::from_unix_millis(secs * 1000));
    assert_eq!(exptime(at(i32::MAX as u64), now), Some(i32::MAX as u32));
    assert_eq!(exptime(at(i32::MAX as u64 + 1), now), Some(0));
    assert_eq!(exptime(at(4_102_444_800), now), Some(0));
    assert_eq!(exptime(Some(Timestamp::MAX), now), Some(0));
}

#[test]
fn plain_and_digested_keys() {
    let b = MemcachedBackend::builder("memcache://127.0.0.1:1")
        .key_prefix("p:")
        .connect_lazily()
        .build()
        .unwrap();
    assert_eq!(b.store_key(7, "abc"), ("p:7=abc".to_owned(), false));
    for k in ["a b", "line\nbreak", "ключ", &"k".repeat(247)] {
        let (s, digested) = b.store_key(7, k);
        assert!(digested, "{k:?}");
        assert!(s.starts_with("p:7#") && s.len() == 4 + 32, "{s}");
    }
    // 250 bytes exactly stays plain.
    let (s, digested) = b.store_key(7, &"k".repeat(246));
    assert!(!digested && s.len() == 250);
}

#[test]
fn invalid_prefixes_and_urls_are_open_errors() {
    for prefix in ["has space", "ключ", &"p".repeat(MAX_PREFIX + 1)] {
        let e = MemcachedBackend::builder("memcache://127.0.0.1:1")
            .key_prefix(prefix)
            .connect_lazily()
            .build()
            .unwrap_err();
        assert_eq!(e.operation(), Some(Operation::Open), "{e}");
    }
    for url in ["http://x:1", "not a url", "memcache://127.0.0.1:1"] {
        let b = MemcachedBackend::builder(url).server("memcache://127.0.0.1:1");
        let e = b.connect_lazily().build().unwrap_err();
        assert_eq!(e.operation(), Some(Operation::Open), "{e}");
    }
}

fn collide(_: &str) -> u128 {
    42
}

#[test]
fn a_forced_digest_collision_reads_as_a_miss() {
    let Some(server) = support::MemcachedServer::start_or_skip() else {
        return;
    };
    let b = MemcachedBackend::builder(&server.url())
        .key_prefix("coll:")
        .digest(collide)
        .build()
        .unwrap();
    let first = "a key with spaces";
    let second = "another key, same digest";
    b.set(first, Record::new(b"first".to_vec(), None)).unwrap();
    assert_eq!(
        b.get(first).unwrap(),
        Some(Record::new(b"first".to_vec(), None))
    );
    // Same stored key, different full key: a miss, never the other key's value.
    assert_eq!(b.get(second).unwrap(), None);
    assert_eq!(b.get_many(&[second, first]).unwrap()[0], None);
    // And delete of the colliding key leaves the stored one alone.
    assert!(!b.delete(second).unwrap());
    assert!(b.get(first).unwrap().is_some());
    // The last write owns the slot; the other key then misses.
    b.set(second, Record::new(b"second".to_vec(), None))
        .unwrap();
    assert_eq!(b.get(first).unwrap(), None);
    assert_eq!(
        b.get(second).unwrap(),
        Some(Record::new(b"second".to_vec(), None))
    );
    assert!(b.delete(second).unwrap());
    assert_eq!(b.get(second).unwrap(), None);
}
