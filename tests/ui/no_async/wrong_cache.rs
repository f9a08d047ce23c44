// `cache = …` that is not a cache. The one misuse whose message depends on the features: without
// `async` rustc names `BrainCache` alone, so this file is in both folders; the other misuses are
// in `tests/ui/type_errors.rs`.
use braincache::cache;

static NOT_A_CACHE: u32 = 5;

#[cache(cache = NOT_A_CACHE)]
fn wrong_cache(x: u32) -> u32 {
    x
}

fn main() {}
