//! Leases on a real 3-master Redis Cluster (see `support/cluster.rs`): `SET NX PX` takes one
//! lease per key across clients, a release by another token does nothing, the holder's release
//! frees it, a lease ends by itself after its duration, and lease keys stay out of `len`.

mod support;

#[path = "support/cluster.rs"]
mod cluster;

use braincache_core::{Backend, Lease, LeaseToken, Record, Timestamp};
use braincache_redis::{RedisBackend, RedisClusterBackend};
use cluster::RedisCluster;
use std::time::{Duration, Instant};

fn backend(c: &RedisCluster) -> RedisClusterBackend {
    let urls = c.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisBackend::cluster_builder(&urls)
        .key_prefix("lease-test:")
        .build()
        .unwrap()
}

#[test]
fn one_lease_per_key_across_clients_released_by_its_token_only() {
    let Some(c) = RedisCluster::start_or_skip() else {
        return;
    };
    let (a, b) = (backend(&c), backend(&c));
    let (ta, tb) = (LeaseToken(1), LeaseToken(2));
    let long = Duration::from_secs(30);
    // Keys over many slots, so every master takes some leases.
    for i in 0..30 {
        let key = format!("hot-{i}");
        let now = Timestamp::now();
        assert!(matches!(
            a.try_lease(&key, ta, long, now).unwrap(),
            Lease::Acquired
        ));
        assert!(matches!(
            b.try_lease(&key, tb, long, now).unwrap(),
            Lease::Held { .. }
        ));
        b.release_lease(&key, tb).unwrap(); // not its lease: nothing happens
        assert!(matches!(
            b.try_lease(&key, tb, long, now).unwrap(),
            Lease::Held { .. }
        ));
        a.release_lease(&key, ta).unwrap();
        assert!(matches!(
            b.try_lease(&key, tb, long, now).unwrap(),
            Lease::Acquired
        ));
    }
    // Leases are not entries.
    a.set("entry", Record::new(vec![1], None)).unwrap();
    assert_eq!(a.len().unwrap(), 1);
    a.clear().unwrap();
    assert!(matches!(
        a.try_lease("hot-0", ta, long, Timestamp::now()).unwrap(),
        Lease::Held { .. }
    ));

    // A lease whose holder never releases it ends by itself.
    let short = Duration::from_millis(200);
    assert!(matches!(
        a.try_lease("short", ta, short, Timestamp::now()).unwrap(),
        Lease::Acquired
    ));
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match b.try_lease("short", tb, short, Timestamp::now()).unwrap() {
            Lease::Acquired => break,
            _ => {
                assert!(Instant::now() < end, "the lease never ended");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
