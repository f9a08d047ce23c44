//! Checks of a size bound, for backends that evict (`max_entries`): run by hand, on a backend
//! built with the bound each check names.

use crate::{Backend, Record, Timestamp};

/// On a backend bounded to 1,000 entries: 100 hot keys read every round while 20,000 one-time
/// keys are written; at least 90 of the hot keys are kept, and the bound holds. FIFO would keep
/// none of them (each round writes 100 new keys, so after 10 rounds every hot key is older than
/// 1,000 writes). `value(n)` makes the stored values (a backend may need a format, such as JSON).
///
/// # Panics
/// When a call fails or the check does not hold.
pub fn hot_keys_survive_a_flood_of_one_time_writes<B: Backend>(
    b: &B,
    value: impl Fn(u64) -> Record,
) {
    for h in 0..100 {
        b.set(&format!("hot{h}"), value(h)).unwrap();
    }
    for round in 0..200 {
        for h in 0..100 {
            // A hot key that was evicted is stored again, as a cache user would.
            if b.get(&format!("hot{h}")).unwrap().is_none() {
                b.set(&format!("hot{h}"), value(h)).unwrap();
            }
        }
        b.set_many(
            (0..100)
                .map(|i| (format!("once{round}-{i}"), value(i)))
                .collect(),
        )
        .unwrap();
    }
    let kept = (0..100)
        .filter(|h| b.get(&format!("hot{h}")).unwrap().is_some())
        .count();
    assert!(kept >= 90, "only {kept} of 100 hot keys kept");
    assert!(b.len().unwrap() <= 1_000);
}

/// On a backend bounded to `max_entries` entries: `max_entries / 2` expired records, then
/// `max_entries` live ones. The expired ones make room (they are dropped, not evicted): every
/// live record is kept, `len` is `max_entries`, and no eviction is counted.
///
/// # Panics
/// When a call fails or the check does not hold.
pub fn expired_entries_are_evicted_first<B: Backend>(
    b: &B,
    max_entries: u64,
    value: impl Fn(u64) -> Record,
) {
    let past = Some(Timestamp::from_unix_nanos(1_000_000_000));
    for i in 0..max_entries / 2 {
        let mut r = value(i);
        r.expires_at = past;
        b.set(&format!("expired{i}"), r).unwrap();
    }
    for i in 0..max_entries {
        b.set(&format!("live{i}"), value(i)).unwrap();
    }
    for i in 0..max_entries {
        assert!(b.get(&format!("live{i}")).unwrap().is_some(), "live{i}");
    }
    assert_eq!(b.len().unwrap() as u64, max_entries);
    assert_eq!(b.evictions(), 0, "expired entries are not evictions");
}
