//! Leases (`Backend::try_lease`): a `leases` table, read and written in one write transaction,
//! so that of the processes racing for a key exactly one takes it.
//!
//! `leases`: key (`&str`) → (token, end of the lease in nanoseconds since the Unix epoch). The
//! table is created by the first lease taken; files without it are unchanged. A row whose end has
//! passed is free and is replaced by the next taker; a release removes the row only when the
//! token still matches, so a holder whose lease expired never removes its successor's.

use crate::errors;
use crate::writer::Engine;
use braincache_core::{Lease, LeaseToken, Operation, Result, Timestamp};
use redb::{Durability, ReadableTable, TableDefinition};
use std::time::Duration;

/// The table's name.
pub(crate) const TABLE: &str = "leases";
/// key → (token, end of the lease, nanoseconds since the Unix epoch).
pub(crate) const LEASES: TableDefinition<&str, (u64, u64)> = TableDefinition::new(TABLE);

/// Takes the lease on `key` unless another token holds one that ends after `now`.
pub(crate) fn try_lease(
    shared: &Engine,
    key: &str,
    token: LeaseToken,
    ttl: Duration,
    now: Timestamp,
) -> Result<Lease> {
    let fail = |e: redb::Error| {
        shared.db.note(&e);
        errors::map(Operation::Lease, &shared.path, Some(key), e)
    };
    let Some((db, _)) = shared.db.current() else {
        // The database is being reopened after an I/O error: do not coordinate this once.
        return Ok(Lease::Uncoordinated);
    };
    let mut txn = db.begin_write().map_err(|e| fail(e.into()))?;
    // Durable, like every other commit: other processes must see the lease.
    txn.set_durability(Durability::Immediate)
        .map_err(|e| fail(e.into()))?;
    let answer = {
        let mut table = txn.open_table(LEASES).map_err(|e| fail(e.into()))?;
        let held = table
            .get(key)
            .map_err(|e| fail(e.into()))?
            .map(|g| g.value())
            .filter(|&(holder, until)| holder != token.0 && until > now.as_unix_nanos());
        match held {
            Some((_, until)) => Lease::Held {
                until: Some(Timestamp::from_unix_nanos(until)),
            },
            None => {
                let until = now.saturating_add(ttl).as_unix_nanos();
                table
                    .insert(key, (token.0, until))
                    .map_err(|e| fail(e.into()))?;
                Lease::Acquired
            }
        }
    };
    if answer == Lease::Acquired {
        txn.commit().map_err(|e| fail(e.into()))?;
    } else {
        txn.abort().map_err(|e| fail(e.into()))?;
    }
    Ok(answer)
}

/// Removes the lease on `key` if `token` holds it.
pub(crate) fn release(shared: &Engine, key: &str, token: LeaseToken) -> Result<()> {
    let fail = |e: redb::Error| {
        shared.db.note(&e);
        errors::map(Operation::Lease, &shared.path, Some(key), e)
    };
    let Some((db, _)) = shared.db.current() else {
        return Ok(()); // it ends by itself
    };
    let mut txn = db.begin_write().map_err(|e| fail(e.into()))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| fail(e.into()))?;
    let removed = {
        let mut table = txn.open_table(LEASES).map_err(|e| fail(e.into()))?;
        let mine = table
            .get(key)
            .map_err(|e| fail(e.into()))?
            .is_some_and(|g| g.value().0 == token.0);
        if mine {
            table.remove(key).map_err(|e| fail(e.into()))?;
        }
        mine
    };
    if removed {
        txn.commit().map_err(|e| fail(e.into()))?;
    } else {
        txn.abort().map_err(|e| fail(e.into()))?;
    }
    Ok(())
}
