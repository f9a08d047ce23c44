//! Leases (`Backend::try_lease`) on a Redis Cluster, as `lease.rs` takes them on one server:
//! `SET <lease key> <token> NX PX <ms>` on the master that owns the lease key's slot, and a
//! script that deletes it only while it still holds the releasing token (one key, so one slot:
//! the cluster client routes `EVAL` by it).
//!
//! The lease key is the byte `0xFF`, `lease:`, the key prefix, then the cache key: outside the
//! prefix's `SCAN` pattern, so `len` and `clear` never see it. Its slot is its own (not the
//! entry's): the lease and the entry need not live on one master, since no command touches both.

use crate::cluster::RedisClusterBackend;
use crate::reply_error;
use braincache_core::{Lease, LeaseToken, Operation, Result};
use redis::Value;
use std::time::Duration;

/// Deletes the lease only while the releasing token holds it (the same script as one server's).
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

fn lease_key(prefix: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(7 + prefix.len() + key.len());
    k.push(0xFF);
    k.extend_from_slice(b"lease:");
    k.extend_from_slice(prefix.as_bytes());
    k.extend_from_slice(key.as_bytes());
    k
}

pub(crate) fn try_lease(
    b: &RedisClusterBackend,
    key: &str,
    token: LeaseToken,
    ttl: Duration,
) -> Result<Lease> {
    let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    let mut cmd = redis::cmd("SET");
    cmd.arg(lease_key(b.key_prefix(), key))
        .arg(token.0)
        .arg("NX")
        .arg("PX")
        .arg(ms);
    match b.query(Operation::Lease, Some(key), &cmd)? {
        Value::Okay => Ok(Lease::Acquired),
        Value::Nil => Ok(Lease::Held { until: None }),
        other => Err(reply_error(Operation::Lease, Some(key), "SET NX", other)),
    }
}

pub(crate) fn release_lease(b: &RedisClusterBackend, key: &str, token: LeaseToken) -> Result<()> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(RELEASE)
        .arg(1)
        .arg(lease_key(b.key_prefix(), key))
        .arg(token.0);
    match b.query(Operation::Lease, Some(key), &cmd)? {
        Value::Int(_) => Ok(()),
        other => Err(reply_error(Operation::Lease, Some(key), "EVAL", other)),
    }
}
