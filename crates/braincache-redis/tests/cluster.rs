//! `RedisBackend::connect_cluster` against a real 3-master Redis Cluster (see
//! `support/cluster.rs`): the conformance suite, keys spread over every master without hash
//! tags, a master killed, and `clear` of one prefix on every master.

mod support;

#[path = "support/cluster.rs"]
mod cluster;

use braincache_core::testkit::error_chain as chain;
use braincache_core::{Backend, Operation, Record};
use braincache_redis::{RedisBackend, RedisClusterBackend};
use cluster::RedisCluster;
use std::time::{Duration, Instant};

fn backend(c: &RedisCluster, prefix: &str) -> RedisClusterBackend {
    let urls = c.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    RedisBackend::cluster_builder(&urls)
        .key_prefix(prefix)
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

braincache_core::conformance_tests!(
    {
        let Some(cluster) = RedisCluster::start_or_skip() else {
            return;
        };
        move || (backend(&cluster, "conf:"), cluster)
    },
    braincache_core::testkit::Expiry::Native
);

#[test]
fn ten_thousand_keys_land_on_all_three_masters_and_clear_empties_only_this_prefix() {
    let Some(c) = RedisCluster::start_or_skip() else {
        return;
    };
    let b = backend(&c, "spread:");
    let other = backend(&c, "other:");
    let entries: Vec<(String, Record)> = (0..10_000)
        .map(|i| (format!("key-{i}"), Record::new(vec![1], None)))
        .collect();
    b.set_many(entries).unwrap();
    for i in 0..100 {
        other
            .set(&format!("o-{i}"), Record::new(vec![2], None))
            .unwrap();
    }
    let sizes: Vec<usize> = c.nodes.iter().map(|n| c.dbsize(n.port())).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 10_100, "{sizes:?}");
    for s in &sizes {
        // A third each, give or take: slots are split evenly and keys hash uniformly.
        assert!((2_800..=4_000).contains(s), "DBSIZE per node {sizes:?}");
    }
    assert_eq!(b.len().unwrap(), 10_000);
    assert_eq!(b.masters().unwrap().len(), 3);
    // Single-key reads go to the right master (MOVED would be an error after the retries).
    for i in (0..10_000).step_by(97) {
        assert_eq!(
            b.get(&format!("key-{i}")).unwrap(),
            Some(Record::new(vec![1], None))
        );
    }
    let keys: Vec<String> = (0..1000).map(|i| format!("key-{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert!(b.get_many(&refs).unwrap().iter().all(Option::is_some));

    b.clear().unwrap();
    let sizes: Vec<usize> = c.nodes.iter().map(|n| c.dbsize(n.port())).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 100, "{sizes:?}");
    assert_eq!(b.len().unwrap(), 0);
    assert_eq!(other.len().unwrap(), 100);
    assert_eq!(other.get("o-7").unwrap(), Some(Record::new(vec![2], None)));
}

#[test]
fn a_killed_master_fails_its_keys_and_the_others_keep_working() {
    let Some(mut c) = RedisCluster::start_or_skip() else {
        return;
    };
    let b = backend(&c, "down:");
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    for k in &keys {
        b.set(k, Record::new(k.as_bytes().to_vec(), None)).unwrap();
    }
    // Which master holds each key: ask the cluster.
    let victim = c.nodes[1].port();
    let on_victim: Vec<&String> = keys
        .iter()
        // Without `-c`, redis-cli answers MOVED for keys the node does not own.
        .filter(|k| c.cli(victim, &["EXISTS", &format!("down:{k}")]).trim() == "1")
        .collect();
    assert!(!on_victim.is_empty() && on_victim.len() < keys.len());
    c.nodes[1].kill();

    let start = Instant::now();
    let e = b.get(on_victim[0]).unwrap_err();
    assert_eq!(e.operation(), Some(Operation::Get));
    assert_eq!(e.key(), Some(on_victim[0].as_str()));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let check_others = |b: &RedisClusterBackend| {
        for k in keys.iter().filter(|k| !on_victim.contains(k)) {
            assert_eq!(
                b.get(k).unwrap().map(|r| r.value),
                Some(k.as_bytes().to_vec()),
                "{k}"
            );
        }
    };
    check_others(&b);
    // Still so once the others have marked it failed (the servers run with
    // `cluster-require-full-coverage no`; bounded wait).
    let live = c.nodes[0].port();
    let start = Instant::now();
    while !c
        .cli(live, &["CLUSTER", "NODES"])
        .lines()
        .any(|l| l.contains(&format!(":{victim}@")) && l.contains("fail"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never marked failed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    check_others(&b);
    assert!(b.get(on_victim[0]).is_err());
    // A new backend, started while the master is down, works too (through the other nodes).
    let fresh = backend(&c, "down:");
    check_others(&fresh);
    // clear walks every master: the down one is reported, the others are cleared.
    let e = b.clear().unwrap_err();
    assert!(chain(&e).contains(&victim.to_string()), "{e}");
    for k in keys.iter().filter(|k| !on_victim.contains(k)).take(20) {
        assert_eq!(b.get(k).unwrap(), None);
    }
}

#[test]
fn ask_and_moved_redirections_are_followed_while_a_slot_migrates() {
    let Some(c) = RedisCluster::start_or_skip() else {
        return;
    };
    let b = backend(&c, "mig:");
    b.set("k", Record::new(b"v".to_vec(), None)).unwrap();
    assert!(b.get("k").unwrap().is_some()); // the slot map is now cached
    let port_of = |key: &str| {
        c.nodes
            .iter()
            .map(|n| n.port())
            .find(|&p| c.cli(p, &["EXISTS", key]).trim() == "1")
            .unwrap()
    };
    let src = port_of("mig:k");
    let dst = c
        .nodes
        .iter()
        .map(|n| n.port())
        .find(|&p| p != src)
        .unwrap();
    let id = |p: u16| c.cli(p, &["CLUSTER", "MYID"]).trim().to_owned();
    let (src_id, dst_id) = (id(src), id(dst));
    let slot = c
        .cli(src, &["CLUSTER", "KEYSLOT", "mig:k"])
        .trim()
        .to_owned();
    let ok = |out: String| assert!(out.trim() == "OK", "{out}");
    ok(c.cli(dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]));
    ok(c.cli(src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id]));
    let dst_s = dst.to_string();
    ok(c.cli(
        src,
        &[
            "MIGRATE",
            "127.0.0.1",
            &dst_s,
            "",
            "0",
            "5000",
            "KEYS",
            "mig:k",
        ],
    ));
    // Mid-migration: the source answers ASK for the moved key; the client asks the target.
    assert_eq!(b.get("k").unwrap(), Some(Record::new(b"v".to_vec(), None)));
    for n in &c.nodes {
        ok(c.cli(n.port(), &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]));
    }
    // Done: the source answers MOVED; the client refreshes its slot map and follows.
    assert_eq!(b.get("k").unwrap(), Some(Record::new(b"v".to_vec(), None)));
    b.set("k", Record::new(b"w".to_vec(), None)).unwrap();
    assert_eq!(port_of("mig:k"), dst);
    assert_eq!(b.get("k").unwrap(), Some(Record::new(b"w".to_vec(), None)));
}
