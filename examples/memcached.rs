//! A cache shared through memcached: typed values with TTLs that memcached expires by itself,
//! keys spread over several servers, `clear` without `flush_all`, and what memcached cannot do.
//!
//! Start two throwaway servers (loopback only; add `-u root` when running as root), then run the
//! example:
//!
//! ```sh
//! memcached -l 127.0.0.1 -p 11211 -U 0 & memcached -l 127.0.0.1 -p 11212 -U 0 &
//! cargo run --example memcached --features memcached
//! ```
//!
//! `MEMCACHED_URLS` picks other servers (comma-separated; default the two above).

use braincache::BrainCache;
use braincache::backend::MemcachedBackend;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct Session {
    user_id: u32,
    roles: Vec<String>,
}

fn main() -> braincache::Result<()> {
    let urls = std::env::var("MEMCACHED_URLS")
        .unwrap_or_else(|_| "memcache://127.0.0.1:11211,memcache://127.0.0.1:11212".into());
    let mut urls = urls.split(',');
    let first = urls.next().unwrap_or("memcache://127.0.0.1:11211");
    let backend = match MemcachedBackend::builder(first)
        .servers(urls) // keys spread over all servers by consistent hashing
        .key_prefix("example:")
        .connect_timeout(Duration::from_millis(500))
        .build()
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot reach memcached: {e}");
            eprintln!("start local servers with: memcached -l 127.0.0.1 -p 11211 -U 0 &");
            std::process::exit(1);
        }
    };
    let cache = BrainCache::new(backend);
    println!("connected: {:?}", cache.backend());

    let session = Session {
        user_id: 1234,
        roles: vec!["admin".into()],
    };
    cache.set("session:abc", &session, Duration::from_secs(3600))?;
    println!(
        "session     -> {:?} (on {})",
        cache.get::<Session>("session:abc")?,
        cache.backend().server_for("session:abc")
    );

    // Keys memcached refuses (spaces, > 250 bytes, non-ASCII) are stored under a digest.
    let odd = "a key with spaces and ünïcödé";
    cache.set(odd, &"works", None)?;
    println!("odd key     -> {:?}", cache.get::<String>(odd)?);

    // Memcached keeps whole seconds (rounded up); the entry's own deadline still decides.
    cache.set("flash", &"gone soon", Duration::from_millis(200))?;
    std::thread::sleep(Duration::from_millis(300));
    println!("after 300ms -> {:?}", cache.get::<String>("flash")?);

    // `clear` bumps the namespace generation: this prefix only, never flush_all.
    cache.clear()?;
    println!("after clear -> {:?}", cache.get::<Session>("session:abc")?);

    // Memcached cannot count entries: a typed error, not a made-up number.
    match cache.len() {
        Ok(n) => println!("len         -> {n}"),
        Err(e) if e.is_unsupported() => println!("len         -> unsupported: {e}"),
        Err(e) => return Err(e),
    }
    Ok(())
}
