//! The async side (feature `async`) on a real redis-server: the same bytes as the blocking
//! side, and a hung server (`SIGSTOP`) makes every async call end by its deadline with a
//! timeout, a write saying its outcome is unknown, without breaking the shared connection.

mod support;

use braincache_core::testkit::error_chain as chain;
use braincache_core::{AsyncBackend, Backend, Error, Operation, Record, Timestamp};
use braincache_redis::RedisBackend;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{RedisServer, assert_timeout, server};

/// With 300 ms timeouts (a 600 ms deadline), a failing call must return well within this
/// (generous for loaded CI).
const BOUND: Duration = Duration::from_secs(5);
const TIMEOUT: Duration = Duration::from_millis(300);

fn backend(server: &RedisServer, prefix: &str) -> Arc<RedisBackend> {
    Arc::new(
        RedisBackend::builder(&server.url())
            .key_prefix(prefix)
            .connect_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .build()
            .unwrap(),
    )
}

fn rec(v: &[u8]) -> Record {
    Record::new(v.to_vec(), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_blocking_sides_share_bytes_ttl_and_prefix() {
    let server = server!();
    let b = backend(&server, "aio:");
    let other = backend(&server, "other:");
    let deadline = Timestamp::now() + Duration::from_secs(60);
    let r = Record::new(b"v".to_vec(), Some(deadline));

    b.set_async("k", r.clone()).await.unwrap();
    assert_eq!(
        b.get("k").unwrap(),
        Some(r.clone()),
        "sync reads the async write"
    );
    b.set("s", rec(b"sync")).unwrap();
    assert_eq!(b.get_async("s").await.unwrap(), Some(rec(b"sync")));
    assert_eq!(
        other.get_async("k").await.unwrap(),
        None,
        "prefixes are separate"
    );
    other.set_async("k", rec(b"o")).await.unwrap();

    // The TTL reached Redis as PX, rounded up: at most 60 s, more than 59 s.
    let ttl = support_pttl(&server, "aio:k");
    assert!((59_000..=60_000).contains(&ttl), "PTTL {ttl}");

    // A deadline in the past deletes.
    let past = Record::new(b"x".to_vec(), Some(Timestamp::from_unix_millis(1_000)));
    b.set_async("k", past).await.unwrap();
    assert_eq!(b.get_async("k").await.unwrap(), None);

    assert!(b.delete_async("s").await.unwrap());
    assert!(!b.delete_async("s").await.unwrap());

    for i in 0..1100 {
        b.set_async(&format!("many{i}"), rec(b"m")).await.unwrap();
    }
    assert_eq!(b.len_async().await.unwrap(), 1100);
    b.clear_async().await.unwrap();
    assert!(b.is_empty_async().await.unwrap());
    assert_eq!(
        other.len_async().await.unwrap(),
        1,
        "clear keeps other prefixes"
    );
    assert_eq!(other.get_async("k").await.unwrap(), Some(rec(b"o")));
}

/// `PTTL` of a raw Redis key, through redis-cli.
fn support_pttl(server: &RedisServer, key: &str) -> i64 {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "PTTL", key])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_calls_on_a_stopped_server_end_by_the_deadline() {
    let server = server!();
    let b = backend(&server, "hung:");
    b.set_async("k", rec(b"old")).await.unwrap(); // the connection is open

    server.signal("STOP");
    let start = Instant::now();
    // Many at once, on the one shared connection: each ends by its own deadline.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                let t = Instant::now();
                let e = if i % 2 == 0 {
                    b.set_async("k", rec(b"new")).await.unwrap_err()
                } else {
                    b.get_async("k").await.unwrap_err()
                };
                (i, e, t.elapsed())
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let len = b.len_async().await.unwrap_err();
    let clear = b.clear_async().await.unwrap_err();
    let took = start.elapsed();
    server.signal("CONT");

    for (i, e, t) in &results {
        assert!(*t < BOUND, "call {i} took {t:?}");
        if i % 2 == 0 {
            assert_timeout(e, Operation::Set);
            assert_eq!(e.key(), Some("k"));
            assert!(chain(e).contains("outcome unknown"), "{e}");
        } else {
            assert_timeout(e, Operation::Get);
            assert!(!chain(e).contains("outcome unknown"), "{e}");
        }
    }
    assert_timeout(&len, Operation::Len);
    assert_timeout(&clear, Operation::Clear);
    assert!(took < BOUND * 2, "the stopped-server phase took {took:?}");

    // The queued SETs were applied when the server woke up, and late replies answer nothing
    // else: the same connection serves later calls correctly.
    let mut applied = false;
    for _ in 0..50 {
        if b.get_async("k").await.unwrap() == Some(rec(b"new")) {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(applied, "the timed-out SET was never applied");
    b.set_async("k2", rec(b"w")).await.unwrap();
    assert_eq!(b.get_async("k2").await.unwrap(), Some(rec(b"w")));
    assert_eq!(b.get_async("k").await.unwrap(), Some(rec(b"new")));
}

#[tokio::test(flavor = "current_thread")]
async fn a_first_async_call_to_a_stopped_server_times_out() {
    let server = server!();
    let b = Arc::new(
        RedisBackend::builder(&server.url())
            .connect_timeout(TIMEOUT)
            .response_timeout(TIMEOUT)
            .connect_lazily()
            .build()
            .unwrap(),
    );
    server.signal("STOP");
    let start = Instant::now();
    let e = b.set_async("k", rec(b"v")).await.unwrap_err();
    let took = start.elapsed();
    server.signal("CONT");
    assert!(took < BOUND, "took {took:?}");
    assert_timeout(&e, Operation::Set);
    // The kernel accepts the TCP connection of a stopped server and, with no setup commands to
    // wait for, the SET goes out: the server may apply it when it wakes up, and the error says
    // so.
    assert!(chain(&e).contains("outcome unknown"), "{e}");
    // Once the server answers, the next call opens the connection and works.
    b.set_async("k", rec(b"v")).await.unwrap();
    assert_eq!(b.get_async("k").await.unwrap(), Some(rec(b"v")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_reconnected_by_the_next_call() {
    let mut server = server!();
    let port = server.port();
    let b = backend(&server, "restart:");
    b.set_async("k", rec(b"v")).await.unwrap();
    server.kill();
    let e = b.get_async("k").await.unwrap_err();
    assert_eq!(e.operation(), Some(Operation::Get), "{e}");
    let _server = RedisServer::start_on(port).unwrap();
    // The old connection is gone: the first call after the restart succeeds on a new one.
    b.set_async("k", rec(b"w")).await.unwrap();
    assert_eq!(b.get_async("k").await.unwrap(), Some(rec(b"w")));
}

#[test]
fn an_async_call_outside_a_runtime_is_a_task_error() {
    let b = Arc::new(
        RedisBackend::builder("redis://127.0.0.1:1/0")
            .connect_lazily()
            .build()
            .unwrap(),
    );
    let e = futures_lite_block_on(b.get_async("k")).unwrap_err();
    assert!(matches!(e, Error::Task { .. }), "{e:?}");
}

/// Polls `f` to completion on this thread, outside any tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
    panic!("the future did not complete outside a runtime");
}
