//! What the Redis backend's tests share: the test kit's throwaway `redis-server`
//! (`braincache_core::testkit::servers`), a macro that starts one or skips the test, and the
//! check of a failed call's error.

#![allow(dead_code, unused_imports, unused_macros)] // each test file uses a different part

pub use braincache_core::testkit::servers::{RedisServer, free_port, redis_ping};
use braincache_core::{Error, Operation};

/// Starts a server, or returns from the calling test (skipped) when `redis-server` is missing.
macro_rules! server {
    () => {
        match $crate::support::RedisServer::start_or_skip() {
            Some(s) => s,
            None => return,
        }
    };
}
pub(crate) use server;

/// Asserts `e` is the typed error of a failed Redis call for `op`.
pub fn assert_redis_error(e: &Error, op: Operation) {
    assert!(
        matches!(
            e,
            Error::Backend {
                backend: "redis",
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.operation(), Some(op), "{e}");
}

/// Asserts `e` is a timeout of a Redis call for `op`.
pub fn assert_timeout(e: &Error, op: Operation) {
    assert_redis_error(e, op);
    assert!(e.is_timeout(), "not a timeout: {e}");
}
