//! The companions `#[cache]` generates next to a memoized function `f` (issue 13, item 8):
//! `f_cache_key` (the key a call is stored under), `f_invalidate` (drop one call's entry) and
//! `f_refresh` (recompute one call and store it), on free functions, `&self` methods,
//! associated functions, `Result` and `skip_none` functions, with `ignore`, `name`, and a
//! renamed crate.

#![cfg(feature = "macros")]

use braincache::backend::MemoryBackend;
use braincache::{BrainCache, cache};
use serde::Serialize;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

fn runs(c: &AtomicUsize) -> usize {
    c.load(Ordering::SeqCst)
}

// ----- a free function: the `--refresh` flag of a CLI that caches fetched pages -----

static PAGES: LazyLock<BrainCache<MemoryBackend>> = LazyLock::new(BrainCache::default);
static FETCHES: AtomicUsize = AtomicUsize::new(0);

/// What the "server" answers; a test changes it to see a refresh pick up new content.
static VERSION: AtomicUsize = AtomicUsize::new(1);

#[cache(ttl = 3600, cache = PAGES)]
fn fetch(url: String) -> String {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    format!("{url} v{}", VERSION.load(Ordering::SeqCst))
}

#[test]
fn r13_free_function_key_invalidate_refresh() {
    let url = "https://example.com/".to_string();
    let other = "https://example.org/".to_string();
    assert_eq!(fetch(url.clone()), "https://example.com/ v1");
    assert_eq!(fetch(other.clone()), "https://example.org/ v1");
    assert_eq!(runs(&FETCHES), 2);

    // The key is the one the call used: postcard("https://example.com/") in hex.
    let key = fetch_cache_key(&url).unwrap();
    let hex: String = std::iter::once(20u8)
        .chain(url.bytes())
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(key, format!("fn:v1:macro_companions::fetch:{hex}"));
    assert_eq!(
        PAGES.get::<String>(&key).unwrap().as_deref(),
        Some("https://example.com/ v1")
    );

    // Invalidate drops this call's entry only; the next call computes again.
    VERSION.store(2, Ordering::SeqCst);
    assert!(fetch_invalidate(&url).unwrap());
    assert!(!fetch_invalidate(&url).unwrap(), "already gone");
    assert!(!PAGES.has(&key).unwrap());
    assert!(PAGES.has(&fetch_cache_key(&other).unwrap()).unwrap());
    assert_eq!(fetch(url.clone()), "https://example.com/ v2");
    assert_eq!(runs(&FETCHES), 3);
    assert_eq!(fetch(url.clone()), "https://example.com/ v2");
    assert_eq!(fetch(other.clone()), "https://example.org/ v1", "untouched");
    assert_eq!(runs(&FETCHES), 3);

    // Refresh recomputes although an entry is there, stores it, and returns it.
    VERSION.store(3, Ordering::SeqCst);
    assert_eq!(fetch_refresh(other.clone()), "https://example.org/ v3");
    assert_eq!(runs(&FETCHES), 4);
    assert_eq!(fetch(other.clone()), "https://example.org/ v3");
    assert_eq!(runs(&FETCHES), 4, "served the refreshed value");
    // With the function's TTL.
    let deadline = PAGES.next_expiry().unwrap().expect("a deadline");
    assert!(deadline > braincache::Timestamp::now());
}

// ----- a `Result` function with `ignore` and `name` -----

static RESULTS: LazyLock<BrainCache<MemoryBackend>> = LazyLock::new(BrainCache::default);
static LOADS: AtomicUsize = AtomicUsize::new(0);

struct Client; // not Serialize: ignored

#[derive(Debug, PartialEq)]
struct Offline;

#[cache(cache = RESULTS, name = "users::load", ignore = [client])]
fn load(client: &Client, id: u32) -> Result<String, Offline> {
    let _ = client;
    let n = LOADS.fetch_add(1, Ordering::SeqCst) + 1;
    if id == 0 {
        Err(Offline)
    } else {
        Ok(format!("user {id} #{n}"))
    }
}

#[test]
fn r13_result_function_with_ignore_and_name() {
    // `client` is ignored, so the key companions take `id` only.
    assert_eq!(load_cache_key(&7).unwrap(), "fn:v1:users::load:07");
    assert_eq!(load(&Client, 7), Ok("user 7 #1".into()));
    assert_eq!(load(&Client, 7), Ok("user 7 #1".into()));
    assert_eq!(load_refresh(&Client, 7), Ok("user 7 #2".into()));
    assert_eq!(load(&Client, 7), Ok("user 7 #2".into()));
    assert_eq!(runs(&LOADS), 2);
    // An `Err` from a refresh is returned and not stored: the old value stays.
    assert_eq!(load_refresh(&Client, 0), Err(Offline));
    assert!(!RESULTS.has(&load_cache_key(&0).unwrap()).unwrap());
    assert!(load_invalidate(&7).unwrap());
    assert_eq!(load(&Client, 7), Ok("user 7 #4".into()));
}

// ----- methods and associated functions -----

static METHODS: LazyLock<BrainCache<MemoryBackend>> = LazyLock::new(BrainCache::default);
static PRICES: AtomicUsize = AtomicUsize::new(0);
static PARSES: AtomicUsize = AtomicUsize::new(0);

#[derive(Serialize)]
struct Pricing {
    currency: String,
}

impl Pricing {
    #[cache(cache = METHODS)]
    fn price(&self, cents: u64) -> String {
        let n = PRICES.fetch_add(1, Ordering::SeqCst) + 1;
        format!("{} {cents} #{n}", self.currency)
    }

    #[cache(cache = METHODS, skip_none)]
    fn parse(s: &str) -> Option<u64> {
        PARSES.fetch_add(1, Ordering::SeqCst);
        s.parse().ok()
    }
}

#[test]
fn r13_methods_and_associated_functions() {
    let eur = Pricing {
        currency: "EUR".into(),
    };
    let usd = Pricing {
        currency: "USD".into(),
    };
    assert_eq!(eur.price(5), "EUR 5 #1");
    assert_eq!(usd.price(5), "USD 5 #2");
    // `self` is part of the key.
    let key = eur.price_cache_key(&5).unwrap();
    assert_eq!(key, "fn:v1:macro_companions::Pricing::price:0345555205");
    assert_ne!(key, usd.price_cache_key(&5).unwrap());
    assert!(METHODS.has(&key).unwrap());

    assert_eq!(eur.price_refresh(5), "EUR 5 #3");
    assert_eq!(eur.price(5), "EUR 5 #3");
    assert_eq!(usd.price(5), "USD 5 #2", "another receiver, untouched");
    assert!(eur.price_invalidate(&5).unwrap());
    assert_eq!(eur.price(5), "EUR 5 #4");
    assert_eq!(runs(&PRICES), 4);

    // An associated `skip_none` function: `Some` is stored, `None` is not.
    assert_eq!(Pricing::parse("12"), Some(12));
    assert_eq!(Pricing::parse("12"), Some(12));
    assert_eq!(runs(&PARSES), 1);
    let key = Pricing::parse_cache_key(&"12").unwrap();
    assert_eq!(METHODS.get::<Option<u64>>(&key).unwrap(), Some(Some(12)));
    assert_eq!(Pricing::parse_refresh("12"), Some(12));
    assert_eq!(runs(&PARSES), 2);
    assert_eq!(Pricing::parse_refresh("x"), None);
    assert!(
        !METHODS
            .has(&Pricing::parse_cache_key(&"x").unwrap())
            .unwrap()
    );
    assert!(Pricing::parse_invalidate(&"12").unwrap());
    assert_eq!(Pricing::parse("12"), Some(12));
    assert_eq!(runs(&PARSES), 4);
}

// ----- a renamed crate -----

extern crate braincache as renamed_braincache;

static RENAMED: LazyLock<renamed_braincache::BrainCache<MemoryBackend>> =
    LazyLock::new(renamed_braincache::BrainCache::default);
static RENAMED_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(crate = "renamed_braincache", cache = RENAMED)]
fn through_renamed(x: u8) -> u8 {
    RENAMED_RUNS.fetch_add(1, Ordering::SeqCst);
    x
}

#[test]
fn r13_renamed_crate() {
    assert_eq!(through_renamed(3), 3);
    assert_eq!(
        through_renamed_cache_key(&3).unwrap(),
        "fn:v1:macro_companions::through_renamed:03"
    );
    assert_eq!(through_renamed_refresh(3), 3);
    assert_eq!(runs(&RENAMED_RUNS), 2);
    assert!(through_renamed_invalidate(&3).unwrap());
    assert!(
        !RENAMED
            .has("fn:v1:macro_companions::through_renamed:03")
            .unwrap()
    );
}

// ----- the process-wide default cache, a nested function, no key arguments -----

static NOW_RUNS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn r13_default_cache_nested_function_without_arguments() {
    #[cache]
    fn answer() -> u64 {
        NOW_RUNS.fetch_add(1, Ordering::SeqCst);
        42
    }
    assert_eq!(answer(), 42);
    assert_eq!(answer(), 42);
    let key = answer_cache_key().unwrap();
    assert_eq!(
        key,
        "fn:v1:macro_companions::r13_default_cache_nested_function_without_arguments::answer:"
    );
    assert!(braincache::__private::default_cache().has(&key).unwrap());
    assert!(answer_invalidate().unwrap());
    assert_eq!(answer(), 42);
    assert_eq!(answer_refresh(), 42);
    assert_eq!(runs(&NOW_RUNS), 3);
}

// ----- arguments that cannot be encoded: the key companions say so -----

struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refused"))
    }
}

#[cache(cache = RESULTS)]
fn takes_unencodable(_x: Unencodable, y: u8) -> u8 {
    y
}

#[test]
fn r13_unencodable_arguments_are_an_invalid_key_error() {
    let e = takes_unencodable_cache_key(&Unencodable, &1).unwrap_err();
    assert!(matches!(e, braincache::Error::InvalidKey { .. }), "{e:?}");
    assert!(takes_unencodable_invalidate(&Unencodable, &1).is_err());
    assert_eq!(
        takes_unencodable_refresh(Unencodable, 1),
        1,
        "runs uncached"
    );
}
