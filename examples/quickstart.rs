//! The Python original's whole workflow in one screen: set with a TTL, get, has, expiry, delete,
//! clear, memoization with `get_or_insert_with`, and the background cleaner — on the redb
//! backend, so the cache is a file that survives restarts and several processes can share.
//!
//! Run it with `cargo run --example quickstart`.

use braincache::backend::RedbBackend;
use braincache::{BrainCache, CacheCleaner};
use std::time::Duration;

fn main() -> braincache::Result<()> {
    // The cache file is created when missing. (`BrainCache::default()` gives a memory cache.)
    let path = std::env::temp_dir().join("braincache-quickstart.redb");
    let cache = BrainCache::new(RedbBackend::open(&path)?);
    println!("cache file       -> {}", path.display());
    cache.clear()?; // start from empty on every run
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(60));

    // set with a TTL, get, has
    cache.set("user_id", &1234u32, Duration::from_secs(3600))?;
    cache.set("flags", &(true, 0u8, ""), None)?; // falsy values are values
    println!("get user_id      -> {:?}", cache.get::<u32>("user_id")?);
    println!(
        "get flags        -> {:?}",
        cache.get::<(bool, u8, String)>("flags")?
    );
    println!("has user_id      -> {}", cache.has("user_id")?);

    // expiry: an entry is gone at its deadline, and the cleaner removes it from the store
    cache.set("session", &"token-abc", Duration::from_millis(200))?;
    println!("get session      -> {:?}", cache.get::<String>("session")?);
    std::thread::sleep(Duration::from_millis(300));
    println!(
        "after 300 ms     -> {:?} (expired)",
        cache.get::<String>("session")?
    );

    // memoize: the closure runs once per key, later calls are served from the cache
    for round in 1..=2 {
        let report: String = cache.get_or_insert_with("report", Duration::from_secs(60), || {
            println!("  computing the report (round {round})...");
            "42 widgets".to_string()
        })?;
        println!("report (round {round}) -> {report}");
    }

    // delete and clear
    println!("delete user_id   -> {}", cache.delete("user_id")?);
    println!("has user_id      -> {}", cache.has("user_id")?);
    cache.clear()?;
    println!("len after clear  -> {}", cache.len()?);

    let s = cache.stats();
    println!(
        "stats            -> hits {}, misses {}, sets {}, expired {}",
        s.hits, s.misses, s.sets, s.expired
    );
    cleaner.stop(); // returns at once, whatever the interval
    Ok(())
}
