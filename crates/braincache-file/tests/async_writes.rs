//! Durable `set_async` (feature `async`): queued to the writer thread, acknowledged once the
//! file holds the entry. Many tasks at once all land, and each is durable when its future
//! completes: a fresh handle (as another process would) reads it.

use braincache_core::{AsyncBackend, Backend, Record, Timestamp};
use braincache_file::FileBackend;
use std::sync::Arc;
use std::time::Duration;

fn rec(v: &str) -> Record {
    Record::new(v.as_bytes().to_vec(), None)
}

async fn many_tasks_all_land(dir: &tempfile::TempDir) {
    let path = dir.path().join("cache.json");
    let b = Arc::new(FileBackend::open(&path).unwrap());
    b.set("before", rec("\"sync\"")).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                b.set_async(&format!("k{i}"), rec(&format!("{i}")))
                    .await
                    .unwrap();
                // Acknowledged means on disk: a fresh handle reads it at once.
                let other = FileBackend::open(b.path()).unwrap();
                assert_eq!(
                    other.get(&format!("k{i}")).unwrap(),
                    Some(rec(&format!("{i}")))
                );
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // The sets went through the writer thread, not tokio's blocking pool.
    assert!(writer_thread_running(), "no file writer thread");
    // The same key set twice in a row: the later set wins.
    let deadline = Timestamp::now() + Duration::from_secs(60);
    b.set_async("k0", rec("\"first\"")).await.unwrap();
    b.set_async("k0", Record::new(b"\"last\"".to_vec(), Some(deadline)))
        .await
        .unwrap();
    drop(b);
    let reopened = FileBackend::open(&path).unwrap();
    assert_eq!(reopened.len().unwrap(), 65);
    assert_eq!(reopened.get("before").unwrap(), Some(rec("\"sync\"")));
    for i in 1..64 {
        assert_eq!(
            reopened.get(&format!("k{i}")).unwrap(),
            Some(rec(&format!("{i}")))
        );
    }
    let last = reopened.get("k0").unwrap().unwrap();
    assert_eq!(last.value, b"\"last\"");
    assert_eq!(last.expires_at, Some(deadline));
}

#[tokio::test(flavor = "current_thread")]
async fn durable_async_sets_land_current_thread() {
    let dir = tempfile::tempdir().unwrap();
    many_tasks_all_land(&dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_async_sets_land_multi_thread() {
    let dir = tempfile::tempdir().unwrap();
    many_tasks_all_land(&dir).await;
}

#[tokio::test(flavor = "current_thread")]
async fn batched_mode_async_sets_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batched.json");
    let b = Arc::new(
        FileBackend::builder(&path)
            .flush_every(Duration::from_secs(3600))
            .build()
            .unwrap(),
    );
    b.set_async("k", rec("1")).await.unwrap();
    assert_eq!(b.get_async("k").await.unwrap(), Some(rec("1")));
    b.flush_async().await.unwrap();
    assert_eq!(
        FileBackend::open(&path).unwrap().get("k").unwrap(),
        Some(rec("1"))
    );
}

/// Whether a thread of this process is the file backend's async writer (Linux: by name).
fn writer_thread_running() -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
        let comm = t.unwrap().path().join("comm");
        std::fs::read_to_string(comm).is_ok_and(|n| n.trim() == "bc-file-aiowr")
    })
}
