//! A cache shared through a local Redis server: typed values with TTLs that Redis expires by
//! itself, a key prefix that keeps this cache apart from other data, and what happens when the
//! server is not there.
//!
//! Start a throwaway server (no persistence, loopback only), then run the example:
//!
//! ```sh
//! redis-server --port 6379 --bind 127.0.0.1 --save "" --appendonly no &
//! cargo run --example redis --features redis
//! ```
//!
//! `REDIS_URL` picks another server (default `redis://127.0.0.1:6379/0`).

use braincache::BrainCache;
use braincache::backend::RedisBackend;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Session {
    user_id: u32,
    roles: Vec<String>,
}

fn main() -> braincache::Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let backend = match RedisBackend::builder(&url)
        .key_prefix("example:") // every key of this cache is `example:<key>` in Redis
        .connect_timeout(Duration::from_millis(500))
        .build()
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot reach Redis at {url}: {e}");
            eprintln!(
                "start a local server with: redis-server --port 6379 --bind 127.0.0.1 --save \"\" \
                 --appendonly no"
            );
            std::process::exit(1);
        }
    };
    let cache = BrainCache::new(backend);
    println!("connected: {:?}", cache.backend());

    // Typed values; Redis stores them with `SET example:<key> <bytes> PX <ttl>`.
    let session = Session {
        user_id: 1234,
        roles: vec!["admin".into()],
    };
    cache.set("session:abc", &session, Duration::from_secs(3600))?;
    cache.set("counter", &0u64, None)?; // no TTL: kept until deleted or cleared
    println!("session     -> {:?}", cache.get::<Session>("session:abc")?);
    println!("counter     -> {:?}", cache.get::<u64>("counter")?);

    // Redis expires entries by itself: no cleaner needed.
    cache.set("flash", &"gone soon", Duration::from_millis(200))?;
    println!("flash       -> {:?}", cache.get::<String>("flash")?);
    std::thread::sleep(Duration::from_millis(300));
    println!("after 300ms -> {:?}", cache.get::<String>("flash")?);

    // Memoize an expensive call; another process using the same prefix would see the result too.
    let report: String = cache.get_or_insert_with("report", Duration::from_secs(60), || {
        println!("  computing the report...");
        "42 widgets".to_string()
    })?;
    println!("report      -> {report}");

    // `len` and `clear` only look at this prefix's keys (SCAN + UNLINK, never FLUSHDB).
    println!("len         -> {}", cache.len()?);
    cache.clear()?;
    println!("after clear -> {}", cache.len()?);
    Ok(())
}
