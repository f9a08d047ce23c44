//! What the Memcached backend's tests share (its `tests/*.rs`, and its unit tests through
//! `#[path]`): the test kit's throwaway `memcached` (`braincache_core::testkit::servers`).

#![allow(unused_imports)] // each test file uses a different part

pub use braincache_core::testkit::servers::{
    MEMCACHED_ITEM_LIMIT as TEST_ITEM_LIMIT, MemcachedServer, free_port,
};
