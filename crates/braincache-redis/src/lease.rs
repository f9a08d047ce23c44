//! Leases (`Backend::try_lease`) on the server: `SET <lease key> <token> NX PX <ms>` takes one
//! atomically, and a script deletes it only while it still holds the releasing token.
//!
//! The lease key is the byte `0xFF`, `lease:`, the backend's key prefix, then the cache key. A
//! prefix is UTF-8, which never holds `0xFF`, so lease keys never match the prefix's `SCAN`
//! pattern: `len`, `clear` and `get` never see them. (With an empty prefix, `len` counts every
//! key of the database, lease keys included while they live.) Redis expires them by itself, so a
//! holder that died holds its lease only for its duration.

use crate::{RedisBackend, reply_error, resp};
use braincache_core::{Lease, LeaseToken, Operation, Result};
use redis::Value;
use std::time::Duration;

/// Deletes the lease only while the releasing token holds it.
const RELEASE: &[u8] =
    b"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

impl RedisBackend {
    fn lease_key(&self, key: &str) -> Vec<u8> {
        let mut k = Vec::with_capacity(7 + self.key_prefix().len() + key.len());
        k.push(0xFF);
        k.extend_from_slice(b"lease:");
        k.extend_from_slice(self.key_prefix().as_bytes());
        k.extend_from_slice(key.as_bytes());
        k
    }

    pub(crate) fn lease(&self, key: &str, token: LeaseToken, ttl: Duration) -> Result<Lease> {
        let k = self.lease_key(key);
        let token = resp::Decimal::new(token.0);
        let ms = resp::Decimal::new(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        let reply = self.pool.run(Operation::Lease, Some(key), |c| {
            c.query(|buf| {
                resp::command(
                    buf,
                    &[
                        &[b"SET"],
                        &[&k],
                        &[token.as_bytes()],
                        &[b"NX"],
                        &[b"PX"],
                        &[ms.as_bytes()],
                    ],
                );
            })
        })?;
        match reply {
            Value::Okay => Ok(Lease::Acquired),
            Value::Nil => Ok(Lease::Held { until: None }),
            other => Err(reply_error(Operation::Lease, Some(key), "SET NX", other)),
        }
    }

    pub(crate) fn unlease(&self, key: &str, token: LeaseToken) -> Result<()> {
        let k = self.lease_key(key);
        let token = resp::Decimal::new(token.0);
        let reply = self.pool.run(Operation::Lease, Some(key), |c| {
            c.query(|buf| {
                resp::command(
                    buf,
                    &[&[b"EVAL"], &[RELEASE], &[b"1"], &[&k], &[token.as_bytes()]],
                );
            })
        })?;
        match reply {
            Value::Int(_) => Ok(()),
            other => Err(reply_error(Operation::Lease, Some(key), "EVAL", other)),
        }
    }
}
