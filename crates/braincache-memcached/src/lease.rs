//! Leases (`Backend::try_lease`): `add` of a lease key holding the taker's token, which stores
//! for one process only while the key is absent (the key is read back: see `lease`), with the lease's duration as its expiry (whole seconds, rounded up:
//! memcached's resolution).
//!
//! The lease key is the store key with `~` instead of `=` after the generation (`#` keys: `~#`),
//! so it never names an entry, and `clear` (a new generation) leaves old leases to expire. A
//! release reads the key and deletes it when it still holds the releasing token; memcached has no
//! compare-and-delete, so a lease that expired and was taken by another process between the two
//! steps can be removed (the cost: one more computation).

use crate::MemcachedBackend;
use braincache_core::{Lease, LeaseToken, Operation, Result};
use memcache::{CommandError, MemcacheError};
use std::time::Duration;

impl MemcachedBackend {
    fn lease_key(&self, generation: u64, key: &str) -> String {
        let (skey, _) = self.store_key(generation, key);
        let at = self.key_prefix().len() + generation.to_string().len();
        let mut k = skey;
        k.replace_range(at..=at, if k.as_bytes()[at] == b'#' { "~#" } else { "~" });
        k
    }

    pub(crate) fn lease(&self, key: &str, token: LeaseToken, ttl: Duration) -> Result<Lease> {
        let generation = self.generation(Operation::Lease)?;
        let lkey = self.lease_key(generation, key);
        let secs = u32::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1);
        let server = self.server_of(key);
        let token = token.0.to_string();
        // memcache 0.21's ASCII `add` answers `Ok` for NOT_STORED too, so whether this `add`
        // stored is read back: the lease is ours when the key holds our token.
        server.run(Self::call(Operation::Lease, key, true, 0), |c| {
            match c.add(&lkey, token.as_str(), secs) {
                Ok(())
                | Err(MemcacheError::CommandError(
                    CommandError::KeyExists | CommandError::KeyNotFound,
                )) => Ok(()),
                Err(e) => Err(e),
            }
        })?;
        let holder: Option<String> = server
            .run(Self::call(Operation::Lease, key, false, 0), |c| {
                c.get(&lkey)
            })?;
        Ok(if holder.as_deref() == Some(token.as_str()) {
            Lease::Acquired
        } else {
            Lease::Held { until: None }
        })
    }

    pub(crate) fn unlease(&self, key: &str, token: LeaseToken) -> Result<()> {
        let generation = self.generation(Operation::Lease)?;
        let lkey = self.lease_key(generation, key);
        let server = self.server_of(key);
        let held: Option<String> = server
            .run(Self::call(Operation::Lease, key, false, 0), |c| {
                c.get(&lkey)
            })?;
        if held.is_some_and(|h| h == token.0.to_string()) {
            server.run(Self::call(Operation::Lease, key, true, 0), |c| {
                c.delete(&lkey)
            })?;
        }
        Ok(())
    }
}
