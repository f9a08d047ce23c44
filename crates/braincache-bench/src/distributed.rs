//! Memcached and Redis Cluster: `MemcachedBackend` against the `memcache` client crate it is
//! built on (used directly, same server, same run) and against `RedisBackend`; a Redis Cluster
//! of 3 masters against one Redis server, 8 threads each.
//!
//! Servers are started on free loopback ports by the test helpers of the backend crates and
//! killed by pid when the run ends.

use crate::Config;
use crate::report::{Better, Row};
use crate::stats::{paired, throughput};
use crate::support as redis_support;
use crate::{mc_support, redis_cluster};
use braincache::BrainCache;
use braincache::backend::{MemcachedBackend, RedisBackend};

const VALUE: usize = 64;

fn skipped(workload: &str, peer: &str, why: &str) -> Row {
    Row::new(
        workload,
        f64::NAN,
        peer,
        f64::NAN,
        "ops/s",
        None,
        Better::Higher,
    )
    .note(format!("skipped: {why}"))
}

/// The `memcache` crate's client on one connection, set up as MemcachedBackend sets it up (text
/// protocol, no `version` round trip per checkout), so the ratio is the cost of braincache alone.
fn raw_client(port: u16) -> memcache::Client {
    let url = memcache::Url::parse(&format!(
        "memcache://127.0.0.1:{port}?protocol=ascii&timeout=1"
    ))
    .expect("valid url");
    let pool = r2d2::Pool::builder()
        .max_size(1)
        .test_on_check_out(false)
        .build(memcache::ConnectionManager::new(url))
        .expect("connect to memcached");
    memcache::Client::with_pool(pool).expect("client")
}

pub fn run(cfg: &Config, rows: &mut Vec<Row>) {
    memcached(cfg, rows);
    cluster(cfg, rows);
}

fn memcached(cfg: &Config, rows: &mut Vec<Row>) {
    let n = if cfg.quick { 10_000 } else { 50_000 };
    let Some(mc) = mc_support::MemcachedServer::start_or_skip() else {
        rows.push(skipped(
            "memcached GET/SET",
            "memcache crate",
            "memcached not installed",
        ));
        return;
    };
    let Some(rs) = redis_support::RedisServer::start_or_skip() else {
        rows.push(skipped(
            "memcached GET/SET",
            "RedisBackend",
            "redis-server not installed",
        ));
        return;
    };
    let ours = BrainCache::new(
        MemcachedBackend::builder(&mc.url())
            .pool_size(1)
            .build()
            .expect("connect to memcached"),
    );
    let redis = BrainCache::new(
        RedisBackend::builder(&rs.url())
            .pool_size(1)
            .build()
            .expect("connect to redis"),
    );
    let raw = raw_client(mc.port());
    let value = vec![7u8; VALUE];
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let set_ours = || {
        throughput(1, n, |_| {
            for k in &keys {
                ours.set(k, &value, None).expect("memcached set");
            }
        })
    };
    let get_ours = || {
        throughput(1, n, |_| {
            for k in &keys {
                std::hint::black_box(ours.get::<Vec<u8>>(k).expect("memcached get"));
            }
        })
    };
    let (set_b, set_raw) = paired(cfg.reps, set_ours, || {
        throughput(1, n, |_| {
            for k in &keys {
                raw.set(k, value.as_slice(), 0).expect("raw set");
            }
        })
    });
    let (get_b, get_raw) = paired(cfg.reps, get_ours, || {
        throughput(1, n, |_| {
            for k in &keys {
                std::hint::black_box(raw.get::<Vec<u8>>(k).expect("raw get"));
            }
        })
    });
    // Time ≤ 1.15× the client's own: throughput ≥ 1/1.15 ≈ 0.87.
    let goal = Some(0.87);
    rows.push(Row::new(
        "memcached SET, 1 connection, 64 B",
        set_b,
        "memcache crate direct",
        set_raw,
        "ops/s",
        goal,
        Better::Higher,
    ));
    rows.push(Row::new(
        "memcached GET, 1 connection, 64 B",
        get_b,
        "memcache crate direct",
        get_raw,
        "ops/s",
        goal,
        Better::Higher,
    ));
    let (set_m, set_r) = paired(cfg.reps, set_ours, || {
        throughput(1, n, |_| {
            for k in &keys {
                redis.set(k, &value, None).expect("redis set");
            }
        })
    });
    let (get_m, get_r) = paired(cfg.reps, get_ours, || {
        throughput(1, n, |_| {
            for k in &keys {
                std::hint::black_box(redis.get::<Vec<u8>>(k).expect("redis get"));
            }
        })
    });
    rows.push(
        Row::new(
            "memcached SET vs RedisBackend, 1 conn",
            set_m,
            "RedisBackend",
            set_r,
            "ops/s",
            None,
            Better::Higher,
        )
        .note("same machine, same run; no goal"),
    );
    rows.push(
        Row::new(
            "memcached GET vs RedisBackend, 1 conn",
            get_m,
            "RedisBackend",
            get_r,
            "ops/s",
            None,
            Better::Higher,
        )
        .note("same machine, same run; no goal"),
    );
}

fn cluster(cfg: &Config, rows: &mut Vec<Row>) {
    const THREADS: usize = 8;
    let n = if cfg.quick { 16_000 } else { 80_000 };
    let workload = "redis cluster 3 masters, 8 threads, SET+GET";
    let Some(c) = redis_cluster::RedisCluster::start_or_skip() else {
        rows.push(skipped(
            workload,
            "one redis-server",
            "redis-server not installed",
        ));
        return;
    };
    let Some(single) = redis_support::RedisServer::start_or_skip() else {
        rows.push(skipped(
            workload,
            "one redis-server",
            "redis-server not installed",
        ));
        return;
    };
    let urls = c.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let clustered = BrainCache::new(
        RedisBackend::cluster_builder(&urls)
            .pool_size(THREADS)
            .build()
            .expect("connect to the cluster"),
    );
    let one = BrainCache::new(
        RedisBackend::builder(&single.url())
            .pool_size(THREADS)
            .build()
            .expect("connect to redis"),
    );
    let value = vec![7u8; VALUE];
    let per = n / THREADS;
    let keys: Vec<Vec<String>> = (0..THREADS)
        .map(|t| (0..per / 2).map(|i| format!("t{t}-k{i}")).collect())
        .collect();
    let (ours, peer) = paired(
        cfg.reps,
        || {
            throughput(THREADS, n, |t| {
                for k in &keys[t] {
                    clustered.set(k, &value, None).expect("cluster set");
                    std::hint::black_box(clustered.get::<Vec<u8>>(k).expect("cluster get"));
                }
            })
        },
        || {
            throughput(THREADS, n, |t| {
                for k in &keys[t] {
                    one.set(k, &value, None).expect("redis set");
                    std::hint::black_box(one.get::<Vec<u8>>(k).expect("redis get"));
                }
            })
        },
    );
    rows.push(
        Row::new(
            workload,
            ours,
            "RedisBackend, one server",
            peer,
            "ops/s",
            None,
            Better::Higher,
        )
        .note("all servers on this machine: shows routing overhead, not scale-out"),
    );
}
