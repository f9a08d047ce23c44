//! Leases (`Backend::try_lease`) inside the locked document, where the Python original does not
//! look: the `braincache` member of the key's entry holds `"lease": {"token": <u64>, "until":
//! <Unix seconds>}`.
//!
//! - A key with a live or stale entry keeps its entry; the lease is added beside it.
//! - A key with no entry, or an expired one, gets a *placeholder*: `{"value": null, "expire_at":
//!   <end of the lease>, "braincache": {"lease": …, "placeholder": true}}`. `get` does not see
//!   it; the Python original reads it as a `None` value until the lease ends (its `get` returns
//!   `None` for a miss too), then as expired; `purge_expired` removes it once the lease ended.
//! - Storing the value (`set`) replaces the entry, lease included; releasing removes the lease
//!   (and a placeholder) only while the releasing token holds it.

use crate::format::{Entry, Fresh, StoredValue};
use crate::store::{Change, View};
use braincache_core::{Lease, LeaseToken, Timestamp};
use std::time::Duration;

pub(crate) fn take(
    view: &View,
    change: &mut Change,
    key: &str,
    token: LeaseToken,
    ttl: Duration,
    now: Timestamp,
) -> Lease {
    let current = view.get(key);
    if let Some((holder, until)) = current.and_then(|e| e.fresh.as_ref()).and_then(|f| f.lease)
        && holder != token.0
        && until > now
    {
        return Lease::Held { until: Some(until) };
    }
    let until = now.saturating_add(ttl);
    let entry = match current {
        Some(e) if !e.is_placeholder() && e.expires_at.is_none_or(|d| d > now) => {
            let mut fresh = e.fresh.as_deref().copied().unwrap_or_default();
            fresh.lease = Some((token.0, until));
            Entry {
                value: e.value.clone(),
                expires_at: e.expires_at,
                fresh: Some(Box::new(fresh)),
            }
        }
        _ => Entry {
            value: StoredValue::Json("null".into()),
            expires_at: Some(until),
            fresh: Some(Box::new(Fresh {
                lease: Some((token.0, until)),
                placeholder: true,
                ..Fresh::default()
            })),
        },
    };
    change.set(key.to_owned(), entry);
    Lease::Acquired
}

pub(crate) fn release(view: &View, change: &mut Change, key: &str, token: LeaseToken) {
    let Some(e) = view.get(key) else { return };
    let Some(fresh) = e.fresh.as_deref() else {
        return;
    };
    if fresh.lease.is_none_or(|(holder, _)| holder != token.0) {
        return;
    }
    if fresh.placeholder {
        change.delete(view, key);
        return;
    }
    let mut kept = *fresh;
    kept.lease = None;
    let entry = Entry {
        value: e.value.clone(),
        expires_at: e.expires_at,
        fresh: (kept != Fresh::default()).then(|| Box::new(kept)),
    };
    change.set(key.to_owned(), entry);
}
