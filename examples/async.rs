//! The async front end on a durable redb cache: typed values, a memoized async loader shared by
//! many tasks, the cleaner as a task, `#[cache]` on an `async fn`, and the sync face of the same
//! store.
//!
//! ```sh
//! cargo run --example async --features async
//! ```

use braincache::backend::RedbBackend;
use braincache::future::BrainCache;
use braincache::{CacheCleaner, cache};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static LOADS: AtomicUsize = AtomicUsize::new(0);

/// Stands in for an HTTP call or a query.
async fn fetch_report(day: u32) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    format!("report of day {day}: 42 widgets")
}

static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| tempfile::tempdir().expect("temp dir"));
static DISK: LazyLock<BrainCache<RedbBackend>> = LazyLock::new(|| {
    BrainCache::new(RedbBackend::open(DIR.path().join("app.redb")).expect("open cache"))
});

#[cache(ttl = 3600, cache = DISK)] // results survive restarts; only `Ok` is stored
async fn lookup(user: u64) -> Result<String, std::io::Error> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(format!("user {user}"))
}

#[tokio::main]
async fn main() -> braincache::Result<()> {
    let cache = DISK.clone();
    let cleaner = CacheCleaner::spawn(&cache, Duration::from_secs(60));

    // Writes await the durable commit without holding a runtime thread.
    cache
        .set("user_id", &1234u32, Duration::from_secs(3600))
        .await?;
    assert_eq!(cache.get::<u32>("user_id").await?, Some(1234));

    // 32 tasks ask for one missing key: the loader runs once.
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("report:7", Duration::from_secs(60), async || {
                        fetch_report(7).await
                    })
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task")?, "report of day 7: 42 widgets");
    }
    assert_eq!(LOADS.load(Ordering::SeqCst), 1);

    assert_eq!(lookup(7).await.ok().as_deref(), Some("user 7")); // computed
    assert_eq!(lookup(7).await.ok().as_deref(), Some("user 7")); // from the cache

    // The sync face: same store, counters and in-flight loads.
    let sync = cache.to_sync();
    assert_eq!(sync.get::<u32>("user_id")?, Some(1234));
    println!("{:?}", cache.stats());
    cleaner.stop();
    Ok(())
}
