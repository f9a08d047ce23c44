//! MemcachedBackend against a real memcached: the conformance suite, memcached's key and value
//! limits, clear by generation, and a server killed, stopped and restarted.

mod support;

use braincache_core::testkit::{assert_each_cause_once, error_chain as chain};
use braincache_core::{Backend, Operation, Record, Timestamp};
use braincache_memcached::{MemcachedBackend, ValueTooLarge};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::{MemcachedServer, TEST_ITEM_LIMIT};

/// A fresh backend on its own prefix of a fresh server, or `None` (skip) without memcached.
fn fresh() -> Option<(MemcachedBackend, MemcachedServer)> {
    static N: AtomicU32 = AtomicU32::new(0);
    let server = MemcachedServer::start_or_skip()?;
    let backend = MemcachedBackend::builder(&server.url())
        .key_prefix(format!("t{}:", N.fetch_add(1, Ordering::Relaxed)))
        .item_limit(TEST_ITEM_LIMIT)
        .build()
        .unwrap();
    Some((backend, server))
}

// The factory is a block, not a closure: its `return` leaves the generated test function, so a
// missing memcached skips the test (with a printed notice) instead of failing it. The suite skips
// its `len`/`next_expiry` comparisons, which memcached declares unsupported.
braincache_core::conformance_tests!(
    {
        let Some((backend, server)) = fresh() else {
            return;
        };
        let mut slot = Some((backend, server));
        move || slot.take().unwrap()
    },
    braincache_core::testkit::Expiry::Native
);

#[test]
fn len_and_next_expiry_are_unsupported() {
    let Some((b, _s)) = fresh() else { return };
    let e = b.len().unwrap_err();
    assert!(e.is_unsupported(), "{e}");
    assert_eq!(e.operation(), Some(Operation::Len));
    assert!(b.next_expiry().unwrap_err().is_unsupported());
    assert!(b.is_empty().unwrap_err().is_unsupported());
    assert_eq!(b.purge_expired(Timestamp::MAX).unwrap(), 0);
    #[allow(deprecated)] // the trait method stays for compatibility; still true
    let native = b.expires_natively();
    assert!(native);
}

#[test]
fn long_spaced_and_non_ascii_keys_round_trip_and_stay_distinct() {
    let Some((b, server)) = fresh() else { return };
    let long = "x".repeat(10_000);
    let long2 = format!("{}y", "x".repeat(9_999));
    let keys = [
        long.as_str(),
        long2.as_str(),
        "with space",
        "with  space",
        "tab\tkey",
        "nul\0key",
        "ключ",
        "🔑",
        "plain-key",
    ];
    for (i, k) in keys.iter().enumerate() {
        b.set(k, Record::new(vec![u8::try_from(i).unwrap()], None))
            .unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        let want = Record::new(vec![u8::try_from(i).unwrap()], None);
        assert_eq!(b.get(k).unwrap(), Some(want), "{k:?}");
    }
    let got = b.get_many(&keys).unwrap();
    assert!(got.iter().all(Option::is_some));
    // The plain key is stored as it is (after prefix and generation), readable by any client.
    let stats = server.command("stats items");
    assert!(stats.contains("items:"), "{stats}");
    assert!(b.delete(&long).unwrap());
    assert_eq!(b.get(&long).unwrap(), None);
    assert!(b.get(&long2).unwrap().is_some());
}

#[test]
fn a_value_over_the_item_limit_is_a_typed_error_naming_the_limit() {
    let Some(server) = MemcachedServer::start_or_skip() else {
        return;
    };
    let b = MemcachedBackend::connect(&server.url()).unwrap(); // default limit: 1 MiB
    let e = b
        .set("big", Record::new(vec![7; 1 << 20], None))
        .unwrap_err();
    let too_large = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<ValueTooLarge>())
        .unwrap_or_else(|| panic!("not ValueTooLarge: {e}"));
    assert_eq!(too_large.limit(), Some(1 << 20));
    assert!(chain(&e).contains("1048576"), "{e}");
    assert_eq!(e.key(), Some("big"));
    // Just under the limit is stored.
    b.set("fits", Record::new(vec![7; (1 << 20) - 100_000], None))
        .unwrap();
    assert!(b.get("fits").unwrap().is_some());

    // A limit configured above the server's: the server refuses, with the same typed error.
    let b = MemcachedBackend::builder(&server.url())
        .item_limit(8 << 20)
        .build()
        .unwrap();
    let e = b
        .set("bigger", Record::new(vec![7; 3 << 20], None))
        .unwrap_err();
    let too_large = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<ValueTooLarge>())
        .unwrap_or_else(|| panic!("not ValueTooLarge: {e}"));
    assert_eq!(too_large.limit(), None);
    // And the connection is still usable.
    b.set("small", Record::new(b"v".to_vec(), None)).unwrap();
    assert!(b.get("small").unwrap().is_some());
}

#[test]
fn deadlines_become_whole_second_ttls_that_memcached_enforces() {
    let Some((b, _s)) = fresh() else { return };
    // A deadline already passed removes the key.
    b.set("k", Record::new(b"v".to_vec(), None)).unwrap();
    b.set("k", Record::new(b"v".to_vec(), Some(Timestamp::now())))
        .unwrap();
    assert_eq!(b.get("k").unwrap(), None);
    // A deadline 60 days out (an absolute time to memcached) is kept, exactly.
    let far = Timestamp::now() + Duration::from_secs(60 * 24 * 3600);
    b.set("far", Record::new(b"v".to_vec(), Some(far))).unwrap();
    assert_eq!(
        b.get("far").unwrap(),
        Some(Record::new(b"v".to_vec(), Some(far)))
    );
    // A 1 ms TTL is rounded up to 1 s: memcached drops it within about 2 s (bounded wait).
    let soon = Timestamp::now() + Duration::from_millis(1);
    b.set("soon", Record::new(b"v".to_vec(), Some(soon)))
        .unwrap();
    let start = Instant::now();
    while b.get("soon").unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "memcached kept a 1 s item for 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clear_hides_this_prefix_only_and_old_generations_stay_unreadable() {
    let Some(server) = MemcachedServer::start_or_skip() else {
        return;
    };
    let mine = MemcachedBackend::builder(&server.url())
        .key_prefix("mine:")
        .build()
        .unwrap();
    let other = MemcachedBackend::builder(&server.url())
        .key_prefix("other:")
        .build()
        .unwrap();
    // A second handle on the same prefix that re-reads the generation on every call.
    let peer = MemcachedBackend::builder(&server.url())
        .key_prefix("mine:")
        .generation_refresh(Duration::ZERO)
        .build()
        .unwrap();
    for i in 0..20 {
        let k = format!("k{i}");
        mine.set(&k, Record::new(b"mine".to_vec(), None)).unwrap();
        other.set(&k, Record::new(b"other".to_vec(), None)).unwrap();
    }
    mine.set("a long key with spaces", Record::new(b"x".to_vec(), None))
        .unwrap();
    let before = server.command("get mine:gen");
    mine.clear().unwrap();
    let after = server.command("get mine:gen");
    assert_ne!(before, after, "the generation in the server changed");
    for i in 0..20 {
        let k = format!("k{i}");
        assert_eq!(mine.get(&k).unwrap(), None);
        assert_eq!(peer.get(&k).unwrap(), None);
        assert_eq!(
            other.get(&k).unwrap().map(|r| r.value),
            Some(b"other".to_vec())
        );
    }
    assert_eq!(mine.get("a long key with spaces").unwrap(), None);
    // Never flush_all: the old generation's items are still in the server, just unreadable.
    let stats = server.command("stats");
    let items = stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT curr_items "))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .unwrap();
    assert!(items >= 41, "curr_items {items}");
    // New writes after clear are read by both handles.
    mine.set("k0", Record::new(b"new".to_vec(), None)).unwrap();
    assert_eq!(
        peer.get("k0").unwrap().map(|r| r.value),
        Some(b"new".to_vec())
    );
    // A generation lost (deleted, as after a restart) is replaced by a new random one, which
    // does not bring old entries back.
    server.command("delete mine:gen");
    assert_eq!(peer.get("k0").unwrap(), None);
    assert_eq!(peer.get("k1").unwrap(), None);
}

#[test]
fn several_servers_share_the_keys_and_one_down_leaves_the_others_working() {
    let (Some(a), Some(mut b)) = (
        MemcachedServer::start_or_skip(),
        MemcachedServer::start_or_skip(),
    ) else {
        return;
    };
    let cache = MemcachedBackend::builder(&a.url())
        .server(&b.url())
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let keys: Vec<String> = (0..400).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        cache
            .set(k, Record::new(k.as_bytes().to_vec(), None))
            .unwrap();
    }
    let on_a = keys
        .iter()
        .filter(|k| cache.server_for(k) == format!("127.0.0.1:{}", a.port()))
        .count();
    assert!(
        (100..300).contains(&on_a),
        "{on_a} of 400 keys on the first server"
    );
    let items = |s: &MemcachedServer| {
        s.command("stats")
            .lines()
            .find_map(|l| l.strip_prefix("STAT curr_items "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .unwrap()
    };
    // 400 keys + one generation key, on one of the two.
    assert_eq!(items(&a) + items(&b), 401);
    assert!(items(&a) >= on_a && items(&a) <= on_a + 1);

    b.kill();
    let b_addr = format!("127.0.0.1:{}", b.port());
    for k in &keys {
        let got = cache.get(k);
        if cache.server_for(k) == b_addr {
            let e = got.unwrap_err();
            assert!(chain(&e).contains(&b_addr), "{e}");
            assert_eq!(e.key(), Some(k.as_str()));
        } else {
            assert_eq!(got.unwrap().map(|r| r.value), Some(k.as_bytes().to_vec()));
        }
        if cache.server_for(k) == b_addr {
            break; // one failure of b is enough; each costs up to the connect timeout
        }
    }
    for k in keys
        .iter()
        .filter(|k| cache.server_for(k) != b_addr)
        .take(50)
    {
        assert!(cache.get(k).unwrap().is_some());
    }
}

#[test]
fn server_killed_stopped_and_restarted() {
    let Some(mut server) = MemcachedServer::start_or_skip() else {
        return;
    };
    let port = server.port();
    let timeout = Duration::from_millis(300);
    let b = MemcachedBackend::builder(&server.url())
        .connect_timeout(timeout)
        .response_timeout(timeout)
        .build()
        .unwrap();
    b.set("k", Record::new(b"v".to_vec(), None)).unwrap();

    // Stopped (SIGSTOP): calls fail with a timeout, within a bound, and writes say the outcome
    // is unknown.
    server.signal("STOP");
    let start = Instant::now();
    let e = b.get("k").unwrap_err();
    assert!(e.is_timeout(), "{e}");
    let e = b.set("k", Record::new(b"w".to_vec(), None)).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(chain(&e).contains("outcome unknown"), "{e}");
    assert_each_cause_once(&e);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // Resumed: the same backend works again, and no late reply is mistaken for a new one.
    server.signal("CONT");
    let start = Instant::now();
    loop {
        match b.get("k") {
            Ok(Some(r)) => {
                assert!(r.value == b"v" || r.value == b"w", "{:?}", r.value);
                break;
            }
            other => assert!(
                start.elapsed() < Duration::from_secs(10),
                "no recovery after SIGCONT: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..50 {
        let k = format!("after-{i}");
        b.set(&k, Record::new(k.as_bytes().to_vec(), None)).unwrap();
        assert_eq!(b.get(&k).unwrap().map(|r| r.value), Some(k.into_bytes()));
    }

    // Killed: typed errors naming the operation and the server, within the connect timeout.
    server.kill();
    let start = Instant::now();
    let e = b.get("k").unwrap_err();
    assert_eq!(e.operation(), Some(Operation::Get));
    assert!(chain(&e).contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(b.set("k", Record::new(b"v".to_vec(), None)).is_err());

    // Restarted on the same port: the same backend recovers (an empty cache: memcached keeps
    // nothing across restarts).
    let _server = MemcachedServer::start_on(port).unwrap();
    let start = Instant::now();
    loop {
        match b.set("k2", Record::new(b"v2".to_vec(), None)) {
            Ok(()) => break,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(10),
                "no recovery after restart: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(b.get("k2").unwrap().map(|r| r.value), Some(b"v2".to_vec()));
    assert_eq!(b.get("k").unwrap(), None);
}

#[test]
fn connect_to_nothing_is_an_open_error() {
    let port = support::free_port();
    let e = MemcachedBackend::builder(&format!("memcache://127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(200))
        .build()
        .unwrap_err();
    assert_eq!(e.operation(), Some(Operation::Open));
    assert!(chain(&e).contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// Leases (`try_lease`): `add` of a lease key, one holder at a time across handles; released by
/// its holder only; a lease key is not an entry.
#[test]
fn leases_have_one_holder_until_released() {
    use braincache_core::{Lease, LeaseToken};
    let Some((a, server)) = fresh() else {
        return;
    };
    let b = MemcachedBackend::builder(&server.url())
        .key_prefix(a.key_prefix())
        .build()
        .unwrap();
    let now = braincache_core::Timestamp::now();
    let ttl = std::time::Duration::from_secs(30);
    for key in ["k", "a key with spaces"] {
        assert_eq!(
            a.try_lease(key, LeaseToken(1), ttl, now).unwrap(),
            Lease::Acquired
        );
        assert_eq!(
            b.try_lease(key, LeaseToken(2), ttl, now).unwrap(),
            Lease::Held { until: None }
        );
        assert_eq!(a.get(key).unwrap(), None, "a lease is not an entry");
        b.release_lease(key, LeaseToken(2)).unwrap(); // not its lease: nothing happens
        assert!(matches!(
            b.try_lease(key, LeaseToken(2), ttl, now).unwrap(),
            Lease::Held { .. }
        ));
        a.release_lease(key, LeaseToken(1)).unwrap();
        assert_eq!(
            b.try_lease(key, LeaseToken(2), ttl, now).unwrap(),
            Lease::Acquired
        );
    }
}

/// A port that another memcached already holds is not taken for a new one: the start fails
/// instead of handing back the other server (whose pid is not the one a test would signal).
#[test]
fn starting_on_a_port_another_server_holds_fails() {
    let Some(server) = MemcachedServer::start_or_skip() else {
        return;
    };
    let e = MemcachedServer::start_on(server.port()).unwrap_err();
    // Whichever it sees first: the other server's pid, or its own process exiting (it cannot
    // bind the port).
    assert!(
        e.contains("taken by another") || e.contains("exited"),
        "{e}"
    );
}
