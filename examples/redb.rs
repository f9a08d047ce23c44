//! Two processes sharing one redb cache file.
//!
//! ```sh
//! cargo run --example redb --features redb
//! ```
//!
//! The example runs as a parent, which opens a cache file in a temporary folder and starts a
//! second copy of itself (the child) on the same file. Both keep the file open and write at the
//! same time; each sees the other's writes as soon as they are acknowledged, and every write is
//! durable when `set` returns.

use braincache::backend::RedbBackend;
use braincache::{BrainCache, CacheCleaner};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("child"), Some(path)) => child(Path::new(&path)),
        _ => parent(),
    }
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cache.redb");
    // Several processes may open the file at once (redb's multi-writer mode); the file is
    // created when missing.
    let cache = BrainCache::new(RedbBackend::open(&path)?);
    let cleaner = CacheCleaner::start(&cache, Duration::from_secs(60));
    cache.set(
        "greeting",
        &"hello from the parent",
        Duration::from_secs(3600),
    )?;

    let mut child = Command::new(std::env::current_exe()?)
        .arg("child")
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut to_child = child.stdin.take().ok_or("no stdin")?;
    let mut from_child = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();

    // Both processes write 100 keys at the same time.
    for i in 0..100u32 {
        cache.set(&format!("parent:{i}"), &i, None)?;
    }

    // The child says when its writes are acknowledged; they are then visible here at once.
    from_child.read_line(&mut line)?;
    println!("child says: {}", line.trim());
    let reply: Option<String> = cache.get("reply")?;
    println!("parent reads the child's reply: {reply:?}");
    let child_key: Option<u32> = cache.get("child:99")?;
    assert_eq!(child_key, Some(99));

    // And the other way round: the child, still open, reads what the parent just wrote.
    cache.set("question", &"how many keys do you see?", None)?;
    writeln!(to_child, "read")?;
    line.clear();
    from_child.read_line(&mut line)?;
    println!("child says: {}", line.trim());

    drop(to_child);
    let status = child.wait()?;
    assert!(status.success());
    println!("{} entries in {}", cache.len()?, path.display());
    cleaner.stop();
    Ok(())
}

fn child(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let cache = BrainCache::new(RedbBackend::open(path)?);
    for i in 0..100u32 {
        cache.set(&format!("child:{i}"), &i, None)?;
    }
    let greeting: Option<String> = cache.get("greeting")?;
    cache.set("reply", &format!("the child read {greeting:?}"), None)?;
    println!("my 100 keys and my reply are written");

    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let question: Option<String> = cache.get("question")?;
    println!(
        "I read {question:?} and see {} entries (parent's and mine)",
        cache.len()?
    );
    Ok(())
}
