//! A cache in one human-readable JSON file, shared with the Python original's format.
//!
//! ```sh
//! cargo run --example file --features file
//! ```
//!
//! Shows what the file looks like, reading a file the Python original wrote, expiry and the
//! cleaner, the batched mode for write-heavy use, and what a damaged file does.

use braincache::backend::FileBackend;
use braincache::{BrainCache, CacheCleaner};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Serialize, Deserialize)]
struct User {
    name: String,
    langs: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cache.json");

    // Durable by default: when `set` returns, the entry is on disk (written to a temp file,
    // fsynced, renamed over the old file). Values are stored as JSON.
    let cache = BrainCache::new(FileBackend::open(&path)?);
    let user = User {
        name: "Ada".into(),
        langs: vec!["en".into(), "fr".into()],
    };
    cache.set("user:1", &user, Duration::from_secs(3600))?;
    cache.set("visits", &42u32, None)?;
    println!("$ cat cache.json\n{}", std::fs::read_to_string(&path)?);

    // A file written by the Python original (or by hand) opens as it is.
    let py = dir.path().join("from-python.json");
    std::fs::write(
        &py,
        r#"{"greeting": {"value": "hello", "expire_at": null},
            "scores": {"value": [1, 2.5, null], "expire_at": 4102444800.0}}"#,
    )?;
    let from_python = BrainCache::new(FileBackend::open(&py)?);
    println!(
        "from the Python file: greeting = {:?}, scores = {:?}",
        from_python.get::<String>("greeting")?,
        from_python.get::<Vec<Option<f64>>>("scores")?
    );

    // Expiry: an entry is never returned past its deadline; the cleaner removes it from the file.
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(60));
    cache.set("session", &"token", Duration::from_millis(100))?;
    std::thread::sleep(Duration::from_millis(200));
    println!(
        "session after 200 ms: {:?}",
        cache.get::<String>("session")?
    );
    println!(
        "still in the file: {}",
        std::fs::read_to_string(&path)?.contains("session")
    );
    cleaner.stop();

    // Batched mode, for write-heavy use: sets stay in memory and are written at most every
    // 100 ms, on flush() and on drop. Faster, but a crash loses what was not flushed yet.
    let batched = dir.path().join("batched.json");
    let fast = BrainCache::new(
        FileBackend::builder(&batched)
            .flush_every(Duration::from_millis(100))
            .build()?,
    );
    let t = std::time::Instant::now();
    for i in 0..1000u32 {
        fast.set(&format!("k{i}"), &i, None)?;
    }
    println!("1,000 batched sets: {:?}", t.elapsed());
    fast.flush()?; // errors of the write surface here
    println!(
        "after flush(): {} bytes on disk",
        std::fs::metadata(&batched)?.len()
    );

    // Several processes may share the file: writers lock `cache.json.lock`, and a get sees what
    // another process wrote. A damaged file is refused, with where, and left untouched.
    std::fs::write(&py, "{\"greeting\": {\"value\": \"hello\"}}")?;
    match FileBackend::open(&py) {
        Ok(_) => println!("unexpected: the damaged file opened"),
        Err(e) => println!("damaged file: {e}"),
    }
    Ok(())
}
