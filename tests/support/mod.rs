//! Fixtures and helpers shared by the facade's integration tests (`mod support;` in each test
//! file that needs them). Each test binary uses only some of them.
#![allow(dead_code)]

pub mod procs;

use serde::{Deserialize, Serialize};

/// A nested value with falsy parts (an empty string, an empty list, a `None`), for round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: u64,
    pub name: String,
    pub tags: Vec<String>,
    pub manager: Option<Box<User>>,
}

/// Ann, an admin whose manager is Bo.
pub fn ann() -> User {
    User {
        id: 7,
        name: "Ann".into(),
        tags: vec!["admin".into(), String::new()],
        manager: Some(Box::new(User {
            id: 1,
            name: "Bo".into(),
            tags: vec![],
            manager: None,
        })),
    }
}

/// Runs `call` on `n` threads released together by a barrier; each thread's result, a panic
/// included.
pub fn together_results<R: Send>(
    n: usize,
    call: impl Fn() -> R + Sync,
) -> Vec<std::thread::Result<R>> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    call()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    })
}

/// [`together_results`], passing a thread's panic on.
pub fn together<R: Send>(n: usize, call: impl Fn() -> R + Sync) -> Vec<R> {
    together_results(n, call)
        .into_iter()
        .map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        .collect()
}

/// A loader that counts its runs in `calls` and takes `pause_ms` to return `value`: long enough
/// that concurrent callers arrive while it runs.
pub fn slow<T>(
    calls: &std::sync::atomic::AtomicUsize,
    pause_ms: u64,
    value: T,
) -> impl FnOnce() -> T + '_
where
    T: 'static,
{
    move || {
        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        value
    }
}

/// A cache over `backend` whose clock only moves when the returned handle is advanced.
pub fn with_manual_clock<B: braincache::backend::Backend>(
    backend: B,
) -> (braincache::BrainCache<B>, braincache::base::ManualClock) {
    let clock = braincache::base::ManualClock::starting_now();
    let cache = braincache::BrainCache::builder(backend)
        .clock(clock.clone())
        .build();
    (cache, clock)
}
