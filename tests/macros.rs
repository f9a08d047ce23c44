//! `#[cache]` behaviour: keys, TTL, return types, concurrency, cache errors, backends.
//!
//! The behaviour suite (`behaviour_suite!`) runs once per backend: memory, and redb when the
//! `redb` feature is on. Each test memoizes its own functions (keys include the function's path)
//! in its own cache, never the process-wide default one unless that is what it tests, so tests
//! running in parallel never share entries.

#![cfg(feature = "macros")]

use braincache::backend::MemoryBackend;
use braincache::base::ManualClock;
use braincache::cache;
use braincache::{BrainCache, Error, Operation, Result};
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A counter per memoized function, bumped by its body.
macro_rules! counter {
    ($($name:ident),* $(,)?) => {
        $(static $name: AtomicUsize = AtomicUsize::new(0);)*
    };
}

fn runs(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

/// The same tests on every backend. `$make(name)` opens a new backend.
macro_rules! behaviour_suite {
    ($backend:ty, $make:expr) => {
        use super::*;
        use std::sync::Barrier;
        use std::time::Duration;

        /// This module's cache.
        static CACHE: LazyLock<BrainCache<$backend>> =
            LazyLock::new(|| BrainCache::new(($make)("suite")));

        /// `cache = test_cache()`: a function returning `&'static BrainCache<_>`.
        fn test_cache() -> &'static BrainCache<$backend> {
            &CACHE
        }

        /// The TTL test's cache, with a manual clock so it never sleeps.
        static TTL_CACHE: LazyLock<(BrainCache<$backend>, ManualClock)> = LazyLock::new(|| {
            let clock = ManualClock::starting_now();
            let cache = BrainCache::builder(($make)("ttl"))
                .clock(clock.clone())
                .build();
            (cache, clock)
        });

        /// The key of a function of this module.
        fn key(function_and_args: &str) -> String {
            format!("fn:v1:{}::{function_and_args}", module_path!())
        }

        // ----- memoization, TTL -----

        counter!(HEAVY, TTL_SECS, TTL_MS, TTL_NONE);

        #[cache(ttl = 60, cache = test_cache())]
        fn heavy(x: u64, y: u64) -> u64 {
            HEAVY.fetch_add(1, Ordering::SeqCst);
            x * y
        }

        #[test]
        fn memoizes() {
            assert_eq!(heavy(6, 7), 42);
            assert_eq!(heavy(6, 7), 42);
            assert_eq!(runs(&HEAVY), 1, "the second call is served from the cache");
            assert_eq!(heavy(7, 6), 42);
            assert_eq!(runs(&HEAVY), 2, "other arguments, other entry");
            assert_eq!(
                test_cache().get::<u64>(&key("heavy:0607")).unwrap(),
                Some(42)
            );
        }

        const TEN: u64 = 10;

        #[cache(ttl = TEN, cache = TTL_CACHE.0)]
        fn ttl_secs(x: u8) -> u8 {
            TTL_SECS.fetch_add(1, Ordering::SeqCst);
            x
        }

        #[cache(ttl_ms = 1500, cache = TTL_CACHE.0)]
        fn ttl_millis(x: u8) -> u8 {
            TTL_MS.fetch_add(1, Ordering::SeqCst);
            x
        }

        #[cache(cache = TTL_CACHE.0)]
        fn no_ttl(x: u8) -> u8 {
            TTL_NONE.fetch_add(1, Ordering::SeqCst);
            x
        }

        /// `ttl` is seconds (any `u64` expression), `ttl_ms` milliseconds, and no `ttl` never
        /// expires.
        #[test]
        fn ttl_seconds_milliseconds_and_forever() {
            let clock = &TTL_CACHE.1;
            for _ in 0..2 {
                ttl_secs(1);
                ttl_millis(1);
                no_ttl(1);
            }
            assert_eq!((runs(&TTL_SECS), runs(&TTL_MS), runs(&TTL_NONE)), (1, 1, 1));

            clock.advance(Duration::from_millis(1499));
            ttl_millis(1);
            assert_eq!(runs(&TTL_MS), 1, "still fresh 1 ms before its deadline");
            clock.advance(Duration::from_millis(1));
            ttl_millis(1);
            assert_eq!(runs(&TTL_MS), 2, "expired at its deadline");

            clock.advance(Duration::from_millis(8499)); // 9.999 s after the first call
            ttl_secs(1);
            assert_eq!(runs(&TTL_SECS), 1);
            clock.advance(Duration::from_millis(1));
            ttl_secs(1);
            assert_eq!(runs(&TTL_SECS), 2);

            clock.advance(Duration::from_secs(100 * 365 * 24 * 3600));
            no_ttl(1);
            assert_eq!(runs(&TTL_NONE), 1, "no ttl: never expires");
        }

        // ----- keys -----

        counter!(CONCAT, IGNORED);

        #[cache(cache = test_cache())]
        fn concat(a: &str, b: &str) -> String {
            CONCAT.fetch_add(1, Ordering::SeqCst);
            format!("{a}{b}")
        }

        #[cache(cache = test_cache())]
        fn pair(t: (u8, u8)) -> String {
            format!("tuple {t:?}")
        }

        #[cache(cache = test_cache())]
        fn list(v: Vec<u8>) -> String {
            format!("list {v:?}")
        }

        mod first {
            use super::*;
            #[cache(cache = test_cache())]
            pub fn same_name(x: u32) -> String {
                format!("first {x}")
            }
        }

        mod second {
            use super::*;
            #[cache(cache = test_cache())]
            pub fn same_name(x: u32) -> String {
                format!("second {x}")
            }
        }

        struct TypeA;
        struct TypeB;

        impl TypeA {
            #[cache(cache = test_cache())]
            fn new_label(x: u32) -> String {
                format!("A {x}")
            }
        }

        impl TypeB {
            #[cache(cache = test_cache())]
            fn new_label(x: u32) -> String {
                format!("B {x}")
            }
        }

        trait Labeled {
            fn label(x: u32) -> String;
        }

        impl Labeled for TypeA {
            // A trait impl may hold only the trait's items: no companions.
            #[cache(cache = test_cache(), no_companions)]
            fn label(x: u32) -> String {
                format!("trait A {x}")
            }
        }

        impl Labeled for TypeB {
            // A trait impl may hold only the trait's items: no companions.
            #[cache(cache = test_cache(), no_companions)]
            fn label(x: u32) -> String {
                format!("trait B {x}")
            }
        }

        fn outer_one(x: u32) -> String {
            #[cache(cache = test_cache())]
            fn inner(x: u32) -> String {
                format!("one {x}")
            }
            inner(x)
        }

        fn outer_two(x: u32) -> String {
            #[cache(cache = test_cache())]
            fn inner(x: u32) -> String {
                format!("two {x}")
            }
            inner(x)
        }

        /// The Python original's `f"{name}:{args}:{kwargs}"` keys mixed these up.
        #[test]
        fn different_calls_never_share_a_key() {
            // Argument boundaries.
            assert_eq!(concat("ab", "c"), "abc");
            assert_eq!(concat("a", "bc"), "abc");
            assert_eq!(concat("", "abc"), "abc");
            assert_eq!(runs(&CONCAT), 3, "three argument tuples, three entries");
            assert_eq!(concat("ab", "c"), "abc");
            assert_eq!(runs(&CONCAT), 3);
            assert!(test_cache().has(&key("concat:0261620163")).unwrap());
            assert!(test_cache().has(&key("concat:0161026263")).unwrap());
            // `(1, 2)` and `[1, 2]`: different types, so different functions and entries.
            assert_eq!(pair((1, 2)), "tuple (1, 2)");
            assert_eq!(list(vec![1, 2]), "list [1, 2]");
            // Same name, different modules.
            assert_eq!(first::same_name(1), "first 1");
            assert_eq!(second::same_name(1), "second 1");
            assert_eq!(first::same_name(1), "first 1");
            // Same associated function name on two types in one module, and in two trait impls.
            assert_eq!(TypeA::new_label(1), "A 1");
            assert_eq!(TypeB::new_label(1), "B 1");
            assert_eq!(<TypeA as Labeled>::label(1), "trait A 1");
            assert_eq!(<TypeB as Labeled>::label(1), "trait B 1");
            // Same name, nested in two functions of one module.
            assert_eq!(outer_one(1), "one 1");
            assert_eq!(outer_two(1), "two 1");
            assert_eq!(outer_one(1), "one 1");

            let m = module_path!();
            for key in [
                format!("fn:v1:{m}::first::same_name:01"),
                format!("fn:v1:{m}::second::same_name:01"),
                format!("fn:v1:{m}::TypeA::new_label:01"),
                format!("fn:v1:{m}::TypeB::new_label:01"),
                format!("fn:v1:<{m}::TypeA as {m}::Labeled>::label:01"),
                format!("fn:v1:<{m}::TypeB as {m}::Labeled>::label:01"),
                format!("fn:v1:{m}::outer_one::inner:01"),
                format!("fn:v1:{m}::outer_two::inner:01"),
            ] {
                assert!(test_cache().has(&key).unwrap(), "missing {key}");
            }
        }

        #[derive(Debug)]
        struct Client; // not Serialize: it must be ignored

        #[cache(cache = test_cache(), name = "users::fetch", ignore = [client, trace_id])]
        fn fetch_user(client: &Client, id: u32, trace_id: String) -> String {
            let _ = (client, trace_id);
            IGNORED.fetch_add(1, Ordering::SeqCst);
            format!("user {id}")
        }

        /// `name` replaces the path (so a refactor keeps the keys), `ignore` leaves arguments
        /// out of the key.
        #[test]
        fn name_and_ignore() {
            assert_eq!(fetch_user(&Client, 7, "t1".into()), "user 7");
            assert_eq!(fetch_user(&Client, 7, "t2".into()), "user 7");
            assert_eq!(runs(&IGNORED), 1, "ignored arguments do not change the key");
            assert_eq!(
                test_cache()
                    .get::<String>("fn:v1:users::fetch:07")
                    .unwrap()
                    .as_deref(),
                Some("user 7")
            );
        }

        // ----- return types -----

        counter!(
            ZERO,
            EMPTY,
            FALSE,
            NONE,
            UNIT_STRUCT,
            SKIP,
            FALLIBLE,
            ALIASED,
            PARSED
        );

        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Nothing;

        #[cache(ttl = 60, cache = test_cache())]
        fn zero() -> u32 {
            ZERO.fetch_add(1, Ordering::SeqCst);
            0
        }

        #[cache(ttl = 60, cache = test_cache())]
        fn empty() -> String {
            EMPTY.fetch_add(1, Ordering::SeqCst);
            String::new()
        }

        #[cache(ttl = 60, cache = test_cache())]
        fn falsity() -> bool {
            FALSE.fetch_add(1, Ordering::SeqCst);
            false
        }

        #[cache(ttl = 60, cache = test_cache())]
        fn none() -> Option<u32> {
            NONE.fetch_add(1, Ordering::SeqCst);
            None
        }

        #[cache(ttl = 60, cache = test_cache())]
        fn nothing() -> Nothing {
            UNIT_STRUCT.fetch_add(1, Ordering::SeqCst);
            Nothing
        }

        /// The Python original recomputed every falsy result (`if value:`) and every `None`.
        #[test]
        fn falsy_results_are_computed_once() {
            for _ in 0..3 {
                assert_eq!(zero(), 0);
                assert_eq!(empty(), "");
                assert!(!falsity());
                assert_eq!(none(), None);
                assert_eq!(nothing(), Nothing);
            }
            assert_eq!(
                [&ZERO, &EMPTY, &FALSE, &NONE, &UNIT_STRUCT].map(runs),
                [1; 5]
            );
            assert_eq!(test_cache().get::<u32>(&key("zero:")).unwrap(), Some(0));
        }

        #[cache(cache = test_cache(), skip_none)]
        fn lookup_skip_none(x: u32) -> Option<String> {
            SKIP.fetch_add(1, Ordering::SeqCst);
            (x % 2 == 0).then(|| format!("even {x}"))
        }

        #[test]
        fn skip_none_stores_only_some() {
            assert_eq!(lookup_skip_none(1), None);
            assert_eq!(lookup_skip_none(1), None);
            assert_eq!(runs(&SKIP), 2, "None is not stored");
            assert_eq!(lookup_skip_none(2).as_deref(), Some("even 2"));
            assert_eq!(lookup_skip_none(2).as_deref(), Some("even 2"));
            assert_eq!(runs(&SKIP), 3, "Some is stored");
            // Stored as an `Option`: the same bytes as without `skip_none`.
            assert_eq!(
                test_cache()
                    .get::<Option<String>>(&key("lookup_skip_none:02"))
                    .unwrap(),
                Some(Some("even 2".to_string()))
            );
            assert!(!test_cache().has(&key("lookup_skip_none:01")).unwrap());
        }

        #[derive(Debug, PartialEq)]
        struct Offline; // errors need not be Serialize: they are never stored

        #[cache(cache = test_cache())]
        fn fallible(x: u32) -> std::result::Result<u32, Offline> {
            FALLIBLE.fetch_add(1, Ordering::SeqCst);
            if x == 0 { Err(Offline) } else { Ok(x * 2) }
        }

        type Outcome = std::result::Result<u32, String>;

        /// An alias whose name is not `Result`: the `result` flag says it is one.
        #[cache(cache = test_cache(), result)]
        fn aliased(x: u32) -> Outcome {
            ALIASED.fetch_add(1, Ordering::SeqCst);
            if x == 0 { Err("zero".into()) } else { Ok(x) }
        }

        #[cache(cache = test_cache())]
        fn parse_number(s: &str) -> std::result::Result<i64, std::num::ParseIntError> {
            PARSED.fetch_add(1, Ordering::SeqCst);
            let n: i64 = s.trim().parse()?; // `?` and `return` keep working in the body
            if n < 0 {
                return Ok(0);
            }
            Ok(n)
        }

        #[test]
        fn result_caches_only_ok() {
            assert_eq!(fallible(0), Err(Offline));
            assert_eq!(fallible(0), Err(Offline));
            assert_eq!(runs(&FALLIBLE), 2, "Err is not stored");
            assert_eq!(fallible(2), Ok(4));
            assert_eq!(fallible(2), Ok(4));
            assert_eq!(runs(&FALLIBLE), 3, "Ok is stored");
            assert_eq!(
                test_cache().get::<u32>(&key("fallible:02")).unwrap(),
                Some(4),
                "the Ok value is stored, not the Result"
            );

            assert_eq!(aliased(0), Err("zero".into()));
            assert_eq!(aliased(0), Err("zero".into()));
            assert_eq!(aliased(3), Ok(3));
            assert_eq!(aliased(3), Ok(3));
            assert_eq!(runs(&ALIASED), 3);

            assert!(parse_number("x").is_err());
            assert_eq!(parse_number("-5"), Ok(0));
            assert_eq!(parse_number("-5"), Ok(0));
            assert_eq!(parse_number("12"), Ok(12));
            assert_eq!(runs(&PARSED), 3);
        }

        // ----- concurrency -----

        counter!(SLOW);

        #[cache(cache = test_cache(), ttl = 60)]
        fn slow(x: u32) -> u32 {
            SLOW.fetch_add(1, Ordering::SeqCst);
            // Long enough that every thread calls while the first is still computing.
            std::thread::sleep(Duration::from_millis(200));
            x + 1
        }

        #[test]
        fn concurrent_calls_compute_once() {
            const THREADS: usize = 8;
            let barrier = Barrier::new(THREADS);
            let results: Vec<u32> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            slow(41)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(results, vec![42; THREADS]);
            assert_eq!(runs(&SLOW), 1);
        }

        // ----- a stored value of another type -----

        counter!(V2_RUNS);

        mod release_1 {
            use super::*;
            #[cache(cache = test_cache(), name = "report")]
            pub fn report(id: u32) -> String {
                format!("report {id}")
            }
        }

        mod release_2 {
            use super::*;
            /// The same function after its return type changed.
            #[cache(cache = test_cache(), name = "report")]
            pub fn report(id: u32) -> u64 {
                V2_RUNS.fetch_add(1, Ordering::SeqCst);
                u64::from(id) * 1000
            }
        }

        /// A value stored by an older release no longer decodes: the function runs (its result
        /// is right), the error is counted, and the fresh value replaces the stale one.
        ///
        /// (postcard is not self-describing: a `String` would decode as a `Vec<u64>` of its
        /// bytes. Only bytes that do not fit the new type are caught, so the docs tell users to
        /// change `name` when a return type changes.)
        #[test]
        fn a_stale_value_of_another_type_is_recomputed_and_replaced() {
            assert_eq!(release_1::report(9), "report 9");
            let errors = test_cache().stats().errors;
            assert_eq!(release_2::report(9), 9000);
            assert_eq!(runs(&V2_RUNS), 1);
            assert!(
                test_cache().stats().errors > errors,
                "the decode error is counted"
            );
            assert_eq!(release_2::report(9), 9000);
            assert_eq!(runs(&V2_RUNS), 1, "the stale entry was replaced");
        }
    };
}

mod memory {
    behaviour_suite!(MemoryBackend, |_| MemoryBackend::new());
}

#[cfg(feature = "redb")]
mod redb {
    behaviour_suite!(braincache::backend::RedbBackend, |name| {
        braincache::backend::RedbBackend::open(super::fresh_path(name, "redb")).unwrap()
    });
}

/// The file backend stores values as JSON (its default codec): the suite holds there too.
#[cfg(feature = "file")]
mod file {
    behaviour_suite!(braincache::backend::FileBackend, |name| {
        braincache::backend::FileBackend::open(super::fresh_path(name, "json")).unwrap()
    });
}

/// A new file path under cargo's per-target temp dir, unique to this process. Files of earlier
/// runs are removed first (a static cache is never dropped, so a `TempDir` would never be).
#[cfg(any(feature = "redb", feature = "file"))]
fn fresh_path(name: &str, extension: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("braincache-macros");
    std::fs::create_dir_all(&dir).unwrap();
    let pid = std::process::id();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if file.starts_with(&format!("{name}-")) && !file.contains(&format!("-{pid}.")) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let path = dir.join(format!("{name}-{pid}.{extension}"));
    let _ = std::fs::remove_file(&path);
    path
}

// ---------------------------------------------------------------------------------------------
// The default cache, the pinned key encoding

counter!(DEFAULT_RUNS);

#[cache(ttl = 60)]
fn in_default_cache(x: u64, y: u64) -> u64 {
    DEFAULT_RUNS.fetch_add(1, Ordering::SeqCst);
    x * y
}

#[test]
fn no_cache_option_uses_the_process_wide_memory_cache() {
    assert_eq!(in_default_cache(6, 7), 42);
    assert_eq!(in_default_cache(6, 7), 42);
    assert_eq!(runs(&DEFAULT_RUNS), 1);
    assert_eq!(
        braincache::__private::default_cache()
            .get::<u64>("fn:v1:macros::in_default_cache:0607")
            .unwrap(),
        Some(42)
    );
}

static KEYS: LazyLock<BrainCache<MemoryBackend>> = LazyLock::new(BrainCache::default);

#[cache(cache = KEYS)]
fn pinned(name: &str, n: u32, flag: bool, items: Vec<i16>, maybe: Option<char>) -> String {
    format!("{name}{n}{flag}{items:?}{maybe:?}")
}

/// Keys live on disk across releases: this pins the encoding. If this test fails, the encoding
/// changed and every durable cache written by an older release goes cold: bump the version in
/// the prefix and document the change, rather than editing the expected string.
#[test]
fn key_encoding_is_pinned() {
    pinned("ab", 300, true, vec![-1, 2], Some('é'));
    // fn:v1: + path + : + hex(postcard(("ab", 300u32, true, vec![-1i16, 2], Some('é'))))
    //   "ab"       02 61 62      length, bytes
    //   300u32     ac 02         varint
    //   true       01
    //   [-1, 2]    02 01 04      length, zigzag varints
    //   Some('é')  01 02 c3 a9   Some, UTF-8 length, bytes
    let expected = "fn:v1:macros::pinned:026162ac02010201040102c3a9";
    assert_eq!(
        KEYS.get::<String>(expected).unwrap().as_deref(),
        Some("ab300true[-1, 2]Some('é')")
    );
    assert_eq!(KEYS.len().unwrap(), 1);
}

// ---------------------------------------------------------------------------------------------
// Methods

#[derive(Serialize)]
struct Pricing {
    currency: String,
}

static METHODS: LazyLock<BrainCache<MemoryBackend>> = LazyLock::new(BrainCache::default);
counter!(PRICE, SERVICE);

impl Pricing {
    /// `&self` is part of the key (here `Pricing: Serialize`).
    #[cache(cache = METHODS)]
    fn price(&self, cents: u64) -> String {
        PRICE.fetch_add(1, Ordering::SeqCst);
        format!("{} {}.{:02}", self.currency, cents / 100, cents % 100)
    }

    /// An associated function (no `self`).
    #[cache(cache = METHODS)]
    fn parse(s: String) -> Option<u64> {
        s.parse().ok()
    }
}

struct Service {
    calls: AtomicUsize, // not Serialize
}

impl Service {
    /// A receiver that cannot be serialized is left out with `ignore = [self]`.
    #[cache(cache = METHODS, ignore = [self])]
    fn double(&self, x: u64) -> u64 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        SERVICE.fetch_add(1, Ordering::SeqCst);
        x * 2
    }
}

#[test]
fn methods_and_associated_functions() {
    let eur = Pricing {
        currency: "EUR".into(),
    };
    let usd = Pricing {
        currency: "USD".into(),
    };
    assert_eq!(eur.price(1234), "EUR 12.34");
    assert_eq!(eur.price(1234), "EUR 12.34");
    assert_eq!(usd.price(1234), "USD 12.34", "self is part of the key");
    assert_eq!(runs(&PRICE), 2);
    assert!(
        METHODS
            .has("fn:v1:macros::Pricing::price:03455552d209")
            .unwrap()
    );
    assert_eq!(Pricing::parse("12".into()), Some(12));
    assert_eq!(Pricing::parse("x".into()), None);

    let a = Service {
        calls: AtomicUsize::new(0),
    };
    let b = Service {
        calls: AtomicUsize::new(0),
    };
    assert_eq!(a.double(4), 8);
    assert_eq!(b.double(4), 8);
    assert_eq!(runs(&SERVICE), 1, "self ignored: one entry for both");
    assert_eq!(runs(&a.calls) + runs(&b.calls), 1);
}

// ---------------------------------------------------------------------------------------------
// Cache errors never change results

/// A backend that fails every operation while `down` is set.
#[derive(Default)]
struct Flaky {
    inner: MemoryBackend,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self, op: Operation) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::backend(op, "flaky", None, "backend down (test)"))
        } else {
            Ok(())
        }
    }
}

impl braincache::backend::Backend for Flaky {
    type Codec = braincache::base::Postcard;
    fn get(&self, key: &str) -> Result<Option<braincache::backend::Record>> {
        self.check(Operation::Get)?;
        self.inner.get(key)
    }
    fn set(&self, key: &str, record: braincache::backend::Record) -> Result<()> {
        self.check(Operation::Set)?;
        self.inner.set(key, record)
    }
    fn delete(&self, key: &str) -> Result<bool> {
        self.check(Operation::Delete)?;
        self.inner.delete(key)
    }
    fn clear(&self) -> Result<()> {
        self.check(Operation::Clear)?;
        self.inner.clear()
    }
    fn len(&self) -> Result<usize> {
        self.check(Operation::Len)?;
        self.inner.len()
    }
    fn purge_expired(&self, now: braincache::Timestamp) -> Result<usize> {
        self.check(Operation::Purge)?;
        self.inner.purge_expired(now)
    }
    fn next_expiry(&self) -> Result<Option<braincache::Timestamp>> {
        self.check(Operation::NextExpiry)?;
        self.inner.next_expiry()
    }
}

static FLAKY: LazyLock<BrainCache<Flaky>> = LazyLock::new(|| BrainCache::new(Flaky::default()));
counter!(FLAKY_RUNS);

#[cache(cache = FLAKY)]
fn through_flaky(x: u32) -> u32 {
    FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    x + 100
}

#[cache(cache = FLAKY)]
fn through_flaky_result(x: u32) -> std::result::Result<u32, String> {
    FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(x + 200)
}

#[cache(cache = FLAKY, skip_none)]
fn through_flaky_option(x: u32) -> Option<u32> {
    FLAKY_RUNS.fetch_add(1, Ordering::SeqCst);
    Some(x + 300)
}

#[test]
fn a_failing_backend_never_changes_the_result() {
    FLAKY.backend().down.store(true, Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(through_flaky(1), 101);
        assert_eq!(through_flaky_result(1), Ok(201));
        assert_eq!(through_flaky_option(1), Some(301));
    }
    assert_eq!(runs(&FLAKY_RUNS), 6, "uncached while the backend is down");
    assert_eq!(FLAKY.stats().errors, 6, "each failed read is counted");

    FLAKY.backend().down.store(false, Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(through_flaky(1), 101);
        assert_eq!(through_flaky_result(1), Ok(201));
        assert_eq!(through_flaky_option(1), Some(301));
    }
    assert_eq!(runs(&FLAKY_RUNS), 9, "cached again once it is back");
    assert_eq!(FLAKY.stats().errors, 6);
}

/// postcard refuses sequences of unknown length.
struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        s.serialize_seq(None)?.end()
    }
}

static UNENCODABLE: LazyLock<BrainCache<MemoryBackend>> = LazyLock::new(BrainCache::default);
counter!(UNENCODABLE_RUNS);

#[cache(cache = UNENCODABLE)]
fn takes_unencodable(x: Unencodable, y: u8) -> u8 {
    let _ = x;
    UNENCODABLE_RUNS.fetch_add(1, Ordering::SeqCst);
    y
}

#[test]
fn arguments_that_cannot_be_encoded_run_uncached() {
    assert_eq!(takes_unencodable(Unencodable, 1), 1);
    assert_eq!(takes_unencodable(Unencodable, 1), 1);
    assert_eq!(runs(&UNENCODABLE_RUNS), 2);
    assert_eq!(UNENCODABLE.stats().errors, 2);
    assert_eq!(UNENCODABLE.len().unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// The `crate` override, for a renamed dependency

extern crate braincache as renamed_braincache;

static RENAMED: LazyLock<renamed_braincache::BrainCache<MemoryBackend>> =
    LazyLock::new(renamed_braincache::BrainCache::default);

#[cache(crate = "renamed_braincache", cache = RENAMED)]
fn through_renamed(x: u8) -> u8 {
    x
}

#[test]
fn crate_override() {
    assert_eq!(through_renamed(3), 3);
    assert!(RENAMED.has("fn:v1:macros::through_renamed:03").unwrap());
}

// ---------------------------------------------------------------------------------------------
// Results survive restarts and are shared across processes (redb)

#[cfg(feature = "redb")]
mod across_processes {
    use super::*;
    use braincache::backend::RedbBackend;
    use std::path::Path;
    use std::process::Command;
    use std::sync::OnceLock;

    /// Set in a child process: the redb file its memoized function uses.
    const CHILD_FILE: &str = "BRAINCACHE_MACROS_CHILD_REDB";

    fn child_cache() -> &'static BrainCache<RedbBackend> {
        static CACHE: OnceLock<BrainCache<RedbBackend>> = OnceLock::new();
        CACHE.get_or_init(|| {
            let path = std::env::var_os(CHILD_FILE).expect("only child processes use it");
            BrainCache::new(RedbBackend::open(path).unwrap())
        })
    }

    counter!(SQUARES);

    #[cache(ttl = 3600, cache = child_cache())]
    fn squares(n: u64) -> Vec<u64> {
        SQUARES.fetch_add(1, Ordering::SeqCst);
        (0..n).map(|i| i * i).collect()
    }

    /// The child role (a no-op in a normal run): calls `squares(5)` twice and prints how many
    /// times its body ran in this process.
    #[test]
    fn child_role() {
        if std::env::var_os(CHILD_FILE).is_none() {
            return;
        }
        assert_eq!(squares(5), vec![0, 1, 4, 9, 16]);
        assert_eq!(squares(5), vec![0, 1, 4, 9, 16]);
        println!("BODY_RUNS={}", runs(&SQUARES));
    }

    /// Runs `child_role` in a new process of this test binary; returns its `BODY_RUNS`.
    fn run_child(file: &Path) -> usize {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "across_processes::child_role",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_FILE, file)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.split_once("BODY_RUNS=").map(|(_, n)| n))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no BODY_RUNS line in the child's output: {stdout}"))
    }

    #[test]
    fn results_survive_restarts_and_are_shared_across_processes() {
        let file = super::fresh_path("processes", "redb");
        assert_eq!(run_child(&file), 1, "the first process computes once");
        // This process holds the file open while the next one runs: two processes share it.
        let cache = BrainCache::new(RedbBackend::open(&file).unwrap());
        let key = "fn:v1:macros::across_processes::squares:05";
        assert_eq!(
            cache.get::<Vec<u64>>(key).unwrap(),
            Some(vec![0, 1, 4, 9, 16])
        );
        assert_eq!(
            run_child(&file),
            0,
            "a restarted process reads the stored result instead of computing"
        );
        drop(cache);
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_file(file.with_extension("redb.seq"));
    }
}

// ---------------------------------------------------------------------------------------------
// Cache errors are logged through `tracing`

#[cfg(feature = "tracing")]
mod logging {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    /// Collects the messages of WARN events.
    struct Warnings(Arc<Mutex<Vec<String>>>);

    struct Message<'a>(&'a mut String);

    impl Visit for Message<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                *self.0 = format!("{value:?}");
            }
        }
    }

    impl Subscriber for Warnings {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            if *event.metadata().level() == Level::WARN {
                let mut message = String::new();
                event.record(&mut Message(&mut message));
                self.0.lock().unwrap().push(message);
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    static DOWN: LazyLock<BrainCache<Flaky>> = LazyLock::new(|| {
        let backend = Flaky::default();
        backend.down.store(true, Ordering::SeqCst);
        BrainCache::new(backend)
    });

    #[cache(cache = DOWN)]
    fn logged(x: u32) -> u32 {
        x + 1
    }

    #[cache(cache = DOWN)]
    fn logged_key(x: Unencodable) -> u32 {
        let _ = x;
        7
    }

    #[test]
    fn cache_errors_are_logged() {
        let warnings = Arc::new(Mutex::new(Vec::new()));
        tracing::subscriber::with_default(Warnings(Arc::clone(&warnings)), || {
            assert_eq!(logged(1), 2);
            assert_eq!(logged_key(Unencodable), 7);
        });
        let warnings = warnings.lock().unwrap();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("backend down (test)"), "{warnings:?}");
        assert!(
            warnings[1].contains("macros::logging::logged_key")
                && warnings[1].contains("cannot be encoded as a key"),
            "{warnings:?}"
        );
        assert_eq!(DOWN.stats().errors, 2);
    }
}
