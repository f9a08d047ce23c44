//! `BrainCache` over `RedisBackend`, end to end against a real `redis-server`: typed values,
//! TTLs, the key prefix, two processes sharing one server, errors while the server is down, and
//! (ignored, run by hand in release) throughput next to `redis-benchmark`.
//!
//! Run with `cargo test --features redis --test redis`. Without `redis-server` installed each test
//! prints a `skipped:` line, or fails when `BRAINCACHE_REQUIRE_REDIS=1` (as in CI).
#![cfg(feature = "redis")]

#[path = "../crates/braincache-redis/tests/support/mod.rs"]
mod redis_support;
mod support;

use braincache::backend::RedisBackend;
use braincache::{BrainCache, CacheCleaner, Error, Operation};
use redis_support::RedisServer;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::{User, ann};

const HOUR: Duration = Duration::from_secs(3600);

macro_rules! server {
    () => {
        match RedisServer::start_or_skip() {
            Some(s) => s,
            None => return,
        }
    };
}

fn cache(server: &RedisServer, prefix: &str) -> BrainCache<RedisBackend> {
    BrainCache::new(
        RedisBackend::builder(&server.url())
            .key_prefix(prefix)
            .build()
            .unwrap(),
    )
}

#[test]
fn typed_values_round_trip_falsy_ones_included() {
    let server = server!();
    let cache = BrainCache::new(RedisBackend::connect(&server.url()).unwrap());
    cache.set("user", &ann(), HOUR).unwrap();
    cache.set("zero", &0u32, None).unwrap();
    cache.set("empty", "", None).unwrap();
    cache.set("none", &None::<u32>, None).unwrap();
    cache.set("false", &false, HOUR).unwrap();
    cache.set("list", &Vec::<u8>::new(), None).unwrap();

    assert_eq!(cache.get::<User>("user").unwrap(), Some(ann()));
    assert_eq!(cache.get::<u32>("zero").unwrap(), Some(0));
    assert_eq!(cache.get::<String>("empty").unwrap(), Some(String::new()));
    assert_eq!(cache.get::<Option<u32>>("none").unwrap(), Some(None));
    assert!(cache.has("none").unwrap());
    assert_eq!(cache.get::<bool>("false").unwrap(), Some(false));
    assert_eq!(cache.get::<Vec<u8>>("list").unwrap(), Some(vec![]));
    assert_eq!(cache.get::<u32>("missing").unwrap(), None);
    assert_eq!(cache.len().unwrap(), 6);

    // Wrong type: a decode error, not None and not a panic.
    let e = cache.get::<User>("zero").unwrap_err();
    assert!(e.is_decode(), "{e}");

    assert!(cache.delete("user").unwrap());
    assert!(!cache.has("user").unwrap());
    let s = cache.stats();
    assert_eq!(s.sets, 6);
    assert!(s.hits >= 7 && s.misses >= 2, "{s:?}");
}

#[test]
fn zero_ttl_is_already_expired_and_removes_the_entry() {
    let server = server!();
    let cache = cache(&server, "zero:");
    cache.set("k", &1u8, None).unwrap();
    cache.set("k", &2u8, Duration::ZERO).unwrap();
    assert_eq!(cache.get::<u8>("k").unwrap(), None);
    assert!(!cache.has("k").unwrap());
    assert_eq!(cache.len().unwrap(), 0, "Redis holds nothing for it");
}

#[test]
fn redis_expires_entries_and_the_cleaner_has_nothing_to_do() {
    let server = server!();
    let cache = cache(&server, "ttl:");
    let cleaner = CacheCleaner::start(&cache, Duration::from_millis(20));
    cache
        .set("short", &"v", Duration::from_millis(100))
        .unwrap();
    cache.set("long", &"v", HOUR).unwrap();
    assert_eq!(cache.next_expiry().unwrap(), None);
    let start = Instant::now();
    // Bounded in time and count: Redis expires it within ms of the deadline.
    for _ in 0..500 {
        if cache.len().unwrap() == 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "not expired");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cache.len().unwrap(), 1);
    assert_eq!(cache.get::<String>("short").unwrap(), None);
    assert_eq!(cache.get::<String>("long").unwrap().as_deref(), Some("v"));
    assert_eq!(cache.purge_expired().unwrap(), 0);
    assert_eq!(cache.stats().expired, 0);
    cleaner.stop();
}

#[test]
fn get_or_insert_with_computes_once_across_threads() {
    let server = server!();
    let cache = cache(&server, "memo:");
    let calls = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let v: u64 = cache
                    .get_or_insert_with("answer", HOUR, || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        42
                    })
                    .unwrap();
                assert_eq!(v, 42);
            });
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Another handle on the same prefix reads the stored value.
    let other = self::cache(&server, "memo:");
    assert_eq!(other.get::<u64>("answer").unwrap(), Some(42));
}

#[test]
fn clear_and_len_only_touch_their_own_prefix() {
    let server = server!();
    let app = cache(&server, "app:");
    let other = cache(&server, "other:");
    for i in 0..600u32 {
        app.set(&format!("k{i}"), &i, HOUR).unwrap();
    }
    other.set("k0", &"kept", None).unwrap();
    assert_eq!(app.len().unwrap(), 600);
    assert_eq!(other.len().unwrap(), 1);
    app.clear().unwrap();
    assert!(app.is_empty().unwrap());
    assert_eq!(other.get::<String>("k0").unwrap().as_deref(), Some("kept"));
    assert_eq!(other.len().unwrap(), 1);
}

#[test]
fn errors_while_the_server_is_down_are_typed_and_it_recovers() {
    let mut server = server!();
    let port = server.port();
    let cache = BrainCache::new(
        RedisBackend::builder(&server.url())
            .connect_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    cache.set("k", &1u8, None).unwrap();
    server.kill();
    let start = Instant::now();
    let e = cache.get::<u8>("k").unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(
            e,
            Error::Backend {
                backend: "redis",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.operation(), Some(Operation::Get));
    assert_eq!(e.key(), Some("k"));
    assert!(cache.set("k", &2u8, None).is_err());
    assert!(cache.stats().errors >= 2);

    let _server = RedisServer::start_on(port).expect("restart redis-server");
    cache.set("k", &3u8, None).unwrap();
    assert_eq!(cache.get::<u8>("k").unwrap(), Some(3));
}

const CHILD_URL: &str = "BRAINCACHE_REDIS_TEST_CHILD_URL";
const KEYS: u32 = 100;

/// Two processes on one server with the default prefix: each sees the other's writes while both
/// run.
#[test]
fn two_processes_share_one_redis() {
    let server = server!();
    let cache = BrainCache::new(RedisBackend::connect(&server.url()).unwrap());
    cache.set("from_parent", &ann(), HOUR).unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_processes_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, server.url())
        .spawn()
        .unwrap();
    // Written while the child runs; the child waits for the last one.
    for i in 0..KEYS {
        cache.set(&format!("p{i}"), &(i, "parent"), HOUR).unwrap();
    }
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("child did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "child failed: {status}");
    for i in 0..KEYS {
        assert_eq!(
            cache.get::<(u32, String)>(&format!("c{i}")).unwrap(),
            Some((i, "child".to_string()))
        );
    }
    assert_eq!(cache.len().unwrap(), 1 + 2 * KEYS as usize + 1);
}

/// The child side of [`two_processes_share_one_redis`]; does nothing in a normal test run.
#[test]
fn two_processes_child() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let cache = BrainCache::new(RedisBackend::connect(&url).unwrap());
    assert_eq!(cache.get::<User>("from_parent").unwrap(), Some(ann()));
    for i in 0..KEYS {
        cache.set(&format!("c{i}"), &(i, "child"), HOUR).unwrap();
    }
    cache.set("child_done", &true, HOUR).unwrap();
    // Wait (bounded) for the parent's concurrent writes, then check them all.
    let start = Instant::now();
    let last = format!("p{}", KEYS - 1);
    while !cache.has(&last).unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "parent's writes never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for i in 0..KEYS {
        assert_eq!(
            cache.get::<(u32, String)>(&format!("p{i}")).unwrap(),
            Some((i, "parent".to_string()))
        );
    }
}

/// Throughput over one connection, next to `redis-benchmark -c 1 -n 100000 -t get,set` on the
/// same server in the same run. Rounds alternate the peer and ours, so load from other processes
/// hits both; medians and the per-round ratios are printed. Run in release:
///
/// `cargo test --release --features redis --test redis -- --ignored --nocapture throughput`
///
/// `BRAINCACHE_BENCH_ROUNDS` sets the number of rounds (default 3).
#[test]
#[ignore = "measurement; run by hand in release"]
fn throughput_against_redis_benchmark() {
    use braincache::Timestamp;
    use braincache::backend::{Backend, Record};

    const N: usize = 100_000;
    let rounds: usize = std::env::var("BRAINCACHE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let server = server!();
    let port = server.port().to_string();
    // (SET, GET) requests per second from redis-benchmark.
    let peer = |extra: &[&str]| -> (f64, f64) {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &port, "-c", "1", "-n", "100000"])
            .args(["-t", "get,set", "-q"])
            .args(extra)
            .output()
            .expect("redis-benchmark (Debian package redis-tools) must be installed");
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
        let rate = |name: &str| -> f64 {
            text.lines()
                .rfind(|l| l.starts_with(&format!("{name}: ")) && l.contains("requests per second"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} rate in redis-benchmark output: {text}"))
        };
        (rate("SET"), rate("GET"))
    };

    let cache = BrainCache::new(
        RedisBackend::builder(&server.url())
            .key_prefix("bench:")
            .pool_size(1) // one connection, like `-c 1`
            .build()
            .unwrap(),
    );
    let b = cache.backend();
    let keys: Vec<String> = (0..N).map(|i| format!("key:{i:06}")).collect();
    let value = vec![0xabu8; 64];
    let record = Record::new(value.clone(), None);
    let rate = |f: &mut dyn FnMut(usize)| {
        let start = Instant::now();
        for i in 0..N {
            f(i);
        }
        N as f64 / start.elapsed().as_secs_f64()
    };
    // Warm-up: connection, allocator, the server's dictionary.
    for k in &keys {
        b.set(k, record.clone()).unwrap();
    }

    const NAMES: [&str; 7] = [
        "RedisBackend::set",
        "RedisBackend::set (PX ttl)",
        "RedisBackend::get",
        "BrainCache::set",
        "BrainCache::set (ttl)",
        "BrainCache::get",
        "RedisBackend::get_many (512)",
    ];
    let mut ours: Vec<Vec<f64>> = vec![Vec::new(); NAMES.len()];
    let (mut peer_set, mut peer_get, mut peer_set64, mut peer_get64) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (s, g) = peer(&[]);
        peer_set.push(s);
        peer_get.push(g);
        let results = [
            rate(&mut |i| b.set(&keys[i], record.clone()).unwrap()),
            rate(&mut |i| {
                let r = Record::new(value.clone(), Some(Timestamp::now() + HOUR));
                b.set(&keys[i], r).unwrap();
            }),
            rate(&mut |i| assert!(b.get(&keys[i]).unwrap().is_some())),
            rate(&mut |i| cache.set(&keys[i], &value, None).unwrap()),
            rate(&mut |i| cache.set(&keys[i], &value, HOUR).unwrap()),
            rate(&mut |i| assert!(cache.get::<Vec<u8>>(&keys[i]).unwrap().is_some())),
            {
                let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
                let start = Instant::now();
                for chunk in refs.chunks(512) {
                    assert_eq!(b.get_many(chunk).unwrap().len(), chunk.len());
                }
                N as f64 / start.elapsed().as_secs_f64()
            },
        ];
        for (v, r) in ours.iter_mut().zip(results) {
            v.push(r);
        }
        let (s, g) = peer(&["-d", "64"]);
        peer_set64.push(s);
        peer_get64.push(g);
        println!(
            "round {}: redis-benchmark SET {:.0} GET {:.0} (-d 64: SET {:.0} GET {:.0}); ours {}",
            round + 1,
            peer_set[round],
            peer_get[round],
            peer_set64[round],
            peer_get64[round],
            results.map(|r| format!("{r:.0}")).join(" / ")
        );
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (ps, pg, ps64, pg64) = (
        median(&peer_set),
        median(&peer_get),
        median(&peer_set64),
        median(&peer_get64),
    );
    println!(
        "\nmedians of {rounds} rounds, {N} sequential ops each, one connection, 64-byte values"
    );
    println!(
        "  redis-benchmark -c 1 -n 100000 -t get,set          SET {ps:>7.0}/s  GET {pg:>7.0}/s"
    );
    println!(
        "  redis-benchmark -c 1 -n 100000 -t get,set -d 64    SET {ps64:>7.0}/s  GET {pg64:>7.0}/s"
    );
    for (name, v) in NAMES.iter().zip(&ours) {
        let m = median(v);
        let (p, p64) = if name.contains("get") {
            (pg, pg64)
        } else {
            (ps, ps64)
        };
        println!(
            "  {name:<30} {m:>9.0} ops/s  {:.2}x redis-benchmark  {:.2}x with -d 64",
            m / p,
            m / p64
        );
    }
    // Load from other processes only ever slows a run down: the best rounds are the least noisy.
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    println!("best of {rounds} rounds (ours / redis-benchmark's best)");
    for (name, v) in NAMES.iter().zip(&ours) {
        let p = if name.contains("get") {
            best(&peer_get)
        } else {
            best(&peer_set)
        };
        println!("  {name:<30} {:>9.0} ops/s  {:.2}x", best(v), best(v) / p);
    }
}

/// The front end passes its clock's time to the backend (`Backend::set_at`), so Redis's time to
/// live is the TTL given, whatever the clock says: a manual clock set years in the past used to
/// give a deadline already passed by the system clock (the entry was deleted at once), and one
/// set in the future a TTL years long.
#[test]
fn the_ttl_sent_to_redis_follows_the_cache_clock_not_the_system_clock() {
    let server = server!();
    for start in [
        braincache::Timestamp::from_unix_millis(1_000_000),
        braincache::Timestamp::now() + Duration::from_secs(10 * 365 * 24 * 3600),
    ] {
        let clock = braincache::base::ManualClock::new(start);
        let cache = BrainCache::builder(
            RedisBackend::builder(&server.url())
                .key_prefix("clock:")
                .build()
                .unwrap(),
        )
        .clock(clock)
        .build();
        cache.set("k", &1u32, Duration::from_secs(60)).unwrap();
        assert_eq!(
            cache.get::<u32>("k").unwrap(),
            Some(1),
            "clock at {start:?}"
        );
        let out = Command::new("redis-cli")
            .args(["-p", &server.port().to_string(), "PTTL", "clock:k"])
            .output()
            .unwrap();
        let pttl: i64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        assert!(
            (1..=60_000).contains(&pttl),
            "PTTL {pttl} with the clock at {start:?}"
        );
        cache.clear().unwrap();
    }
}
