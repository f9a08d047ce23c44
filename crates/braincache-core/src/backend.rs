//! The storage contract every backend implements.

use crate::{Codec, Lease, LeaseToken, Record, RecordRef, Result, Timestamp};
use std::time::Duration;

/// A place to keep records: memory, a file, a database, a server.
///
/// Backends deal in bytes ([`Record`]) and never see the user's types; the front end
/// (`braincache::BrainCache`) encodes, decodes and decides expiry. Implement this trait to add a
/// backend; depend on `braincache-core` alone for that.
///
/// # Contract
/// - Every method is safe to call from many threads at once (`Send + Sync`).
/// - `set` replaces any record under the key. When `set` returns `Ok`, the record is stored as
///   durably as the backend promises (documented per backend), and a later `get` from any handle
///   of the same store — in this process or, for shared stores, in another — returns it.
/// - `get` may return an expired record that was not purged yet; it must return records exactly
///   as they were set (empty values included).
/// - `purge_expired(now)` removes every record whose deadline is at or before `now` and returns how
///   many it removed. Its cost should follow the number removed, not the store's size.
/// - `next_expiry` returns the earliest deadline of a stored record (expired or not), or `None`
///   when no record has one (or the store expires records by itself).
/// - `try_lease` and `release_lease` coordinate processes (see [`Lease`]); their defaults mean
///   "no coordination", which is right for a store that only one process uses.
/// - Records carry optional freshness fields (`fresh_until`, `computed_at`, `compute_time`):
///   store and return them as the value. Purge and native expiry follow `expires_at` only.
/// - No method panics on data read from disk or network: damaged data is
///   [`Error::Corrupt`](crate::Error::Corrupt).
pub trait Backend: Send + Sync + 'static {
    /// The codec values are encoded with unless the user picks another.
    type Codec: Codec + Default;

    /// Returns the record stored under `key`, expired or not.
    ///
    /// # Errors
    /// When the store cannot be read or holds damaged data.
    fn get(&self, key: &str) -> Result<Option<Record>>;

    /// Calls `f` once with the record stored under `key`, expired or not, borrowed where it
    /// lies; returns whether a record was found (`f` is not called when none was).
    ///
    /// The front end reads through this method: it decodes the value inside `f`, so a backend
    /// that can lend its bytes saves the copy [`get`](Self::get) makes. The default calls `get`
    /// and lends the owned record, so a backend that does not override it behaves exactly as
    /// its `get`. An override must see the same record `get` would (same visibility, same
    /// errors). It may call `f` while holding a lock or a read transaction: `f` should be short
    /// and must not call back into the same backend (the front end only decodes in it). The
    /// callback takes no type parameter, so the trait stays usable as a `dyn Backend`; `f`
    /// passes its result out through what it captures.
    ///
    /// ```
    /// use braincache_core::{Backend, Record};
    /// # use braincache_core::{Postcard, Result, Timestamp};
    /// # struct One;
    /// # impl Backend for One {
    /// #     type Codec = Postcard;
    /// #     fn get(&self, k: &str) -> Result<Option<Record>> {
    /// #         Ok((k == "k").then(|| Record::new(b"v".to_vec(), None)))
    /// #     }
    /// #     fn set(&self, _: &str, _: Record) -> Result<()> { Ok(()) }
    /// #     fn delete(&self, _: &str) -> Result<bool> { Ok(false) }
    /// #     fn clear(&self) -> Result<()> { Ok(()) }
    /// #     fn len(&self) -> Result<usize> { Ok(1) }
    /// #     fn purge_expired(&self, _: Timestamp) -> Result<usize> { Ok(0) }
    /// #     fn next_expiry(&self) -> Result<Option<Timestamp>> { Ok(None) }
    /// # }
    /// # let backend = One;
    /// let mut len = None;
    /// let found = backend.get_with("k", &mut |r| len = Some(r.value.len()))?;
    /// assert!(found);
    /// assert_eq!(len, Some(1));
    /// assert!(!backend.get_with("missing", &mut |_| unreachable!())?);
    /// # Ok::<(), braincache_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`get`](Self::get); a panic in `f` propagates to the caller.
    fn get_with(&self, key: &str, f: &mut dyn FnMut(RecordRef<'_>)) -> Result<bool> {
        match self.get(key)? {
            Some(record) => {
                f(RecordRef::from(&record));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Stores `record` under `key`, replacing what was there.
    ///
    /// # Errors
    /// When the store cannot be written or refuses the key.
    fn set(&self, key: &str, record: Record) -> Result<()>;

    /// [`set`](Self::set), with the time the caller considers current: the front end passes
    /// its [`Clock`](crate::Clock)'s `now`, as it does to
    /// [`purge_expired`](Self::purge_expired). A backend that turns a deadline into a time to
    /// live (Redis, memcached) computes it from `now`, not from the system clock, so a
    /// [`ManualClock`](crate::ManualClock) drives it too. The default ignores `now` and calls
    /// `set`: a backend that stores deadlines as they are needs nothing more. The front end
    /// calls `set_at` for a record with a deadline and [`set`](Self::set) for one without
    /// (there is nothing to compute from `now` then), so both must store the same thing.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    fn set_at(&self, key: &str, record: Record, now: Timestamp) -> Result<()> {
        let _ = now;
        self.set(key, record)
    }

    /// Removes `key`; returns whether a record was there (expired or not).
    ///
    /// # Errors
    /// When the store cannot be written.
    fn delete(&self, key: &str) -> Result<bool>;

    /// Removes every record of this cache.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn clear(&self) -> Result<()>;

    /// The number of stored records, expired-but-unpurged ones included.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn len(&self) -> Result<usize>;

    /// True when no record is stored.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Removes every record whose deadline is at or before `now`; returns how many.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn purge_expired(&self, now: Timestamp) -> Result<usize>;

    /// The earliest deadline among stored records, if any.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn next_expiry(&self) -> Result<Option<Timestamp>>;

    /// Writes out anything buffered (backends that batch writes). The default does nothing.
    ///
    /// # Errors
    /// When the pending writes cannot be made durable.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    /// True when the store deletes expired records by itself (Redis): `purge_expired` is then a
    /// no-op and `next_expiry` is `None`.
    ///
    /// Only the conformance suite asked this; it now takes the answer as a parameter
    /// (`testkit::Expiry`), and a backend's docs say how it expires records.
    #[deprecated(note = "pass `testkit::Expiry::Native` to `conformance_tests!` instead")]
    fn expires_natively(&self) -> bool {
        false
    }

    /// How many records the backend dropped to stay within a bound (not counting expiry).
    fn evictions(&self) -> u64 {
        0
    }

    /// Reads several keys; the default calls [`Backend::get`] for each.
    ///
    /// # Errors
    /// As [`Backend::get`].
    fn get_many(&self, keys: &[&str]) -> Result<Vec<Option<Record>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// Writes several records; the default calls [`Backend::set`] for each. Backends with
    /// transactions or pipelines override it to write them in one go.
    ///
    /// # Errors
    /// As [`Backend::set`]; records before the failing one may have been written.
    fn set_many(&self, entries: Vec<(String, Record)>) -> Result<()> {
        for (k, r) in entries {
            self.set(&k, r)?;
        }
        Ok(())
    }

    /// Removes several keys; returns how many were there. The default calls
    /// [`Backend::delete`] for each.
    ///
    /// # Errors
    /// As [`Backend::delete`].
    fn delete_many(&self, keys: &[&str]) -> Result<usize> {
        let mut n = 0;
        for k in keys {
            n += usize::from(self.delete(k)?);
        }
        Ok(n)
    }

    /// Tries to take the lease on `key` for `ttl`, as `token`, at `now` (the caller's clock).
    ///
    /// Returns [`Lease::Acquired`] when no unexpired lease of another token is stored (an
    /// expired one is replaced), [`Lease::Held`] when one is. The lease lives beside the
    /// entries: it is not a record, `get`/`len` do not see it, and `clear` may leave it. The
    /// default returns [`Lease::Uncoordinated`].
    ///
    /// # Errors
    /// When the store cannot be read or written.
    fn try_lease(
        &self,
        key: &str,
        token: LeaseToken,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<Lease> {
        let _ = (key, token, ttl, now);
        Ok(Lease::Uncoordinated)
    }

    /// Ends the lease on `key` if `token` still holds it; does nothing otherwise. The default
    /// does nothing.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn release_lease(&self, key: &str, token: LeaseToken) -> Result<()> {
        let _ = (key, token);
        Ok(())
    }
}
