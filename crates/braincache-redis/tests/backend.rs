//! `RedisBackend` against a real `redis-server`: the shared conformance suite, and what is
//! specific to Redis (key prefix, native TTL, the stored header, batches, the pool).
//!
//! Each test starts its own server (see `support`); without `redis-server` installed they are
//! skipped with a notice, or fail when `BRAINCACHE_REQUIRE_REDIS=1`.

mod support;

use braincache_core::{Backend, Operation, Record, Timestamp};
use braincache_redis::RedisBackend;
use redis::Commands;
use std::time::{Duration, Instant};
use support::{RedisServer, server};

const HOUR: Duration = Duration::from_secs(3600);

// The factory is a block, not a closure: its `return` leaves the generated test function, so a
// missing redis-server skips the test (with a printed notice) instead of failing it.
braincache_core::conformance_tests!(
    {
        let Some(server) = RedisServer::start_or_skip() else {
            return;
        };
        move || (RedisBackend::connect(&server.url()).unwrap(), server)
    },
    braincache_core::testkit::Expiry::Native
);

fn backend(server: &RedisServer, prefix: &str) -> RedisBackend {
    RedisBackend::builder(&server.url())
        .key_prefix(prefix)
        .build()
        .unwrap()
}

fn raw(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn rec(v: &[u8], d: Option<Timestamp>) -> Record {
    Record::new(v.to_vec(), d)
}

#[test]
fn clear_deletes_only_the_prefix_and_len_counts_only_it() {
    let server = server!();
    let a = backend(&server, "a:");
    let b = backend(&server, "b:");
    let mut con = raw(&server);
    let _: () = con.set("a", "not under a prefix").unwrap();
    let _: () = con.set("ab:1", "looks close to a: but is not").unwrap();
    // More keys than one SCAN step / UNLINK batch handles.
    let entries: Vec<(String, Record)> = (0..1500)
        .map(|i| (format!("k{i}"), rec(b"v", None)))
        .collect();
    a.set_many(entries).unwrap();
    for i in 0..700 {
        b.set(&format!("k{i}"), rec(b"w", Some(Timestamp::now() + HOUR)))
            .unwrap();
    }
    assert_eq!(a.len().unwrap(), 1500);
    assert_eq!(b.len().unwrap(), 700);

    a.clear().unwrap();
    assert_eq!(a.len().unwrap(), 0);
    assert!(a.is_empty().unwrap());
    assert_eq!(b.len().unwrap(), 700);
    assert_eq!(b.get("k699").unwrap().map(|r| r.value), Some(b"w".to_vec()));
    let outside: Option<String> = con.get("a").unwrap();
    assert_eq!(outside.as_deref(), Some("not under a prefix"));
    let close: Option<String> = con.get("ab:1").unwrap();
    assert!(close.is_some());
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(dbsize, 700 + 2);
}

#[test]
fn glob_characters_in_the_prefix_match_literally() {
    let server = server!();
    let weird = backend(&server, "w[ei]*?:");
    let plain = backend(&server, "we:"); // would match the glob `w[ei]*?:*` unescaped
    weird.set("x", rec(b"1", None)).unwrap();
    plain.set("y", rec(b"2", None)).unwrap();
    assert_eq!(weird.len().unwrap(), 1);
    weird.clear().unwrap();
    assert_eq!(plain.get("y").unwrap(), Some(rec(b"2", None)));
    assert_eq!(weird.get("x").unwrap(), None);
}

#[test]
fn empty_prefix_uses_the_whole_database() {
    let server = server!();
    let all = backend(&server, "");
    let mut con = raw(&server);
    let _: () = con.set("foreign", "x").unwrap();
    all.set("mine", rec(b"v", None)).unwrap();
    assert_eq!(all.len().unwrap(), 2);
    let stored: Vec<u8> = con.get("mine").unwrap();
    // The `wire` header (version 2, no codec stated, no flags, 4 bytes) + value.
    assert_eq!(stored, b"\x02\x00\x00\x04v");
}

#[test]
fn handles_with_the_same_prefix_share_entries() {
    let server = server!();
    let one = RedisBackend::connect(&server.url()).unwrap();
    let two = RedisBackend::connect(&server.url()).unwrap();
    assert_eq!(one.key_prefix(), braincache_redis::DEFAULT_KEY_PREFIX);
    let d = Some(Timestamp::now() + HOUR);
    one.set("shared", rec(b"hello", d)).unwrap();
    assert_eq!(two.get("shared").unwrap(), Some(rec(b"hello", d)));
    let mut con = raw(&server);
    let exists: bool = con.exists("braincache:shared").unwrap();
    assert!(exists);
    assert!(two.delete("shared").unwrap());
    assert_eq!(one.get("shared").unwrap(), None);
}

#[test]
fn ttl_goes_to_redis_and_a_deadline_at_or_before_now_deletes() {
    let server = server!();
    let b = backend(&server, "t:");
    let mut con = raw(&server);

    b.set("hour", rec(b"v", Some(Timestamp::now() + HOUR)))
        .unwrap();
    let pttl: i64 = con.pttl("t:hour").unwrap();
    assert!((3_590_000..=3_600_000).contains(&pttl), "PTTL {pttl}");
    b.set("forever", rec(b"v", None)).unwrap();
    let pttl: i64 = con.pttl("t:forever").unwrap();
    assert_eq!(pttl, -1, "no deadline: no TTL");

    // Zero TTL (deadline = now) and past deadlines delete what was there.
    b.set("k", rec(b"old", None)).unwrap();
    b.set("k", rec(b"new", Some(Timestamp::now()))).unwrap();
    assert_eq!(b.get("k").unwrap(), None);
    let exists: bool = con.exists("t:k").unwrap();
    assert!(!exists);
    b.set("k", rec(b"old", None)).unwrap();
    b.set("k", rec(b"new", Some(Timestamp::from_unix_millis(1))))
        .unwrap();
    assert_eq!(b.get("k").unwrap(), None);
    // ... in batches too.
    b.set("m", rec(b"old", None)).unwrap();
    b.set_many(vec![
        ("m".into(), rec(b"gone", Some(Timestamp::EPOCH))),
        ("n".into(), rec(b"kept", None)),
    ])
    .unwrap();
    assert_eq!(
        b.get_many(&["m", "n"]).unwrap(),
        vec![None, Some(rec(b"kept", None))]
    );

    assert_eq!(b.purge_expired(Timestamp::MAX).unwrap(), 0);
    assert_eq!(b.next_expiry().unwrap(), None);
    #[allow(deprecated)] // the trait method stays for compatibility; still true
    let native = b.expires_natively();
    assert!(native);
}

#[test]
fn redis_expires_entries_by_itself() {
    let server = server!();
    let b = backend(&server, "e:");
    b.set(
        "short",
        rec(b"v", Some(Timestamp::now() + Duration::from_millis(50))),
    )
    .unwrap();
    assert!(b.get("short").unwrap().is_some());
    let start = Instant::now();
    for _ in 0..300 {
        if b.get("short").unwrap().is_none() {
            assert_eq!(b.len().unwrap(), 0);
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("Redis did not expire the key");
}

#[test]
fn damaged_or_foreign_values_are_errors_not_panics() {
    let server = server!();
    let b = backend(&server, "c:");
    let mut con = raw(&server);
    let _: () = con.set("c:garbage", "plain text").unwrap();
    let _: () = con.set("c:empty", "").unwrap();
    let _: () = con.set("c:short", b"\x01\x01\x00".as_slice()).unwrap();
    let _: () = con.rpush("c:list", "x").unwrap();

    for key in ["garbage", "empty", "short"] {
        let e = b.get(key).unwrap_err();
        assert!(e.is_corrupt(), "{key}: {e}");
        assert_eq!(e.key(), Some(key));
    }
    assert!(b.get_many(&["garbage"]).unwrap_err().is_corrupt());
    // A list under the prefix: Redis says WRONGTYPE; a typed backend error.
    let e = b.get("list").unwrap_err();
    assert_eq!(e.operation(), Some(Operation::Get));
    assert!(e.to_string().contains("redis"), "{e}");
    // The backend keeps working, and damaged entries can be replaced or deleted.
    b.set("garbage", rec(b"fixed", None)).unwrap();
    assert_eq!(b.get("garbage").unwrap(), Some(rec(b"fixed", None)));
    assert!(b.delete("short").unwrap());
    assert_eq!(b.len().unwrap(), 3);
    b.clear().unwrap();
    assert_eq!(b.len().unwrap(), 0);
}

#[test]
fn batches_larger_than_one_round_trip() {
    let server = server!();
    let b = backend(&server, "batch:");
    let d = Some(Timestamp::now() + HOUR);
    let entries: Vec<(String, Record)> = (0..1300u32)
        .map(|i| {
            (
                format!("k{i}"),
                rec(&i.to_le_bytes(), (i % 2 == 0).then_some(d).flatten()),
            )
        })
        .collect();
    b.set_many(entries.clone()).unwrap();
    let mut keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    keys.push("absent");
    let got = b.get_many(&keys).unwrap();
    assert_eq!(got.len(), 1301);
    for ((_, r), g) in entries.iter().zip(&got) {
        assert_eq!(g.as_ref(), Some(r));
    }
    assert_eq!(got[1300], None);
    assert_eq!(b.delete_many(&keys).unwrap(), 1300);
    assert_eq!(b.len().unwrap(), 0);
    assert_eq!(b.get_many(&[]).unwrap(), vec![]);
    assert_eq!(b.delete_many(&[]).unwrap(), 0);
    b.set_many(Vec::new()).unwrap();
}

#[test]
fn many_threads_share_a_small_pool() {
    let server = server!();
    let b = RedisBackend::builder(&server.url())
        .pool_size(2)
        .build()
        .unwrap();
    assert_eq!(b.pool_size(), 2);
    std::thread::scope(|s| {
        for t in 0..8 {
            let b = &b;
            s.spawn(move || {
                for i in 0..200 {
                    let k = format!("t{t}-{i}");
                    b.set(&k, rec(k.as_bytes(), None)).unwrap();
                    assert_eq!(b.get(&k).unwrap().unwrap().value, k.as_bytes());
                }
            });
        }
    });
    assert_eq!(b.len().unwrap(), 1600);
    let debug = format!("{b:?}");
    assert!(debug.contains("open: 2"), "{debug}");
}

#[test]
fn database_number_in_the_url_is_used() {
    let server = server!();
    let db3 = RedisBackend::connect(&format!("redis://127.0.0.1:{}/3", server.port())).unwrap();
    let db0 = RedisBackend::connect(&server.url()).unwrap();
    db3.set("k", rec(b"v", None)).unwrap();
    assert_eq!(db0.get("k").unwrap(), None);
    assert_eq!(db3.get("k").unwrap(), Some(rec(b"v", None)));
    db0.clear().unwrap();
    assert_eq!(db3.len().unwrap(), 1);
}

#[test]
fn debug_output_hides_the_password() {
    let b = RedisBackend::builder("redis://user:secret@127.0.0.1:1/0").connect_lazily();
    let s = format!("{b:?}");
    assert!(!s.contains("secret"), "{s}");
    let b = b.build().unwrap();
    let s = format!("{b:?}");
    assert!(!s.contains("secret"), "{s}");
    assert!(s.contains("braincache:"), "{s}");
}
