use braincache::cache;
use braincache::future::BrainCache;
use std::sync::LazyLock;

static SYNC: LazyLock<braincache::BrainCache<braincache::backend::MemoryBackend>> =
    LazyLock::new(braincache::BrainCache::default);
static ASYNC: LazyLock<BrainCache<braincache::backend::MemoryBackend>> =
    LazyLock::new(BrainCache::default);

struct Counter(u32);

impl Counter {
    #[cache]
    async fn bump(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
}

#[cache]
async fn generic<T: serde::Serialize>(x: T) -> u32 {
    let _ = x;
    1
}

#[cache]
async fn no_value(x: u32) {
    let _ = x;
}

#[cache(cache = ASYNC)]
async fn stream(x: u32) -> impl std::future::Future<Output = u32> {
    async move { x }
}

// An `async fn` needs the async face of a cache (`SYNC.to_async()`).
#[cache(cache = SYNC)]
async fn through_sync_cache(x: u32) -> u32 {
    x
}

fn main() {}
