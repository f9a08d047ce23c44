//! The memory backend against a model (a `HashMap` of records), step by random step: sets with
//! deadlines kept, changed, added and removed (framed records with freshness fields among
//! them, values up to 6 KB across the table slot's and the per-thread buffer's bounds, keys
//! short and long), deletes, a moving clock and purges. After every step `next_expiry` is the
//! model's earliest deadline; `purge_expired` removes exactly what is due; `get_with` lends what
//! `get` returns; unbounded, `len` and every value match the model (bounded, whatever is kept
//! matches it). Written in review of the change that made `set` update the expiry index only
//! when a deadline changes.

use braincache::backend::MemoryBackend;
use braincache_core::{Backend, CodecId, Record, Timestamp};
use std::collections::HashMap;

fn t(n: u64) -> Timestamp {
    Timestamp::from_unix_nanos(n)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn record(r: &mut Rng, deadline: Option<Timestamp>) -> Record {
    // A third under 120 bytes, so that values held in the table's slot (key and value at most
    // 93 bytes together), those just too large for it and the rest all occur.
    let len = match r.next() % 3 {
        0 => r.next() % 120,
        _ => r.next() % 6000,
    } as usize;
    let mut rec = Record::new(vec![(r.next() & 0xff) as u8; len], deadline)
        .with_codec(CodecId::new((r.next() % 3) as u8));
    if r.next().is_multiple_of(3) {
        rec = rec.with_fresh_until(Some(t(r.next() % 50))).with_computed(
            Some(t(r.next() % 50)),
            Some(std::time::Duration::from_nanos(r.next() % 9)),
        );
    }
    rec
}

fn run(b: &MemoryBackend, bounded: bool, seed: u64) {
    let mut r = Rng(seed);
    let mut model: HashMap<String, Record> = HashMap::new();
    let mut now = 0u64;
    for step in 0..20_000 {
        // Some keys too long for any value to sit in the slot beside them.
        let key = match r.next() % 5 {
            0 => format!("{}{}", "long".repeat(24), r.next() % 8),
            _ => format!("k{}", r.next() % 40),
        };
        match r.next() % 10 {
            0..=4 => {
                let d = match r.next() % 4 {
                    0 => None,
                    1 => Some(t(now + r.next() % 5)),
                    2 => model.get(&key).and_then(|x| x.expires_at),
                    _ => Some(t(now + r.next() % 100)),
                };
                let rec = record(&mut r, d);
                b.set(&key, rec.clone()).unwrap();
                model.insert(key, rec);
            }
            5 => {
                let had = b.delete(&key).unwrap();
                let m = model.remove(&key).is_some();
                if !bounded {
                    assert_eq!(had, m, "step {step}");
                }
            }
            6 => {
                now += r.next() % 10;
            }
            7 => {
                if bounded {
                    model.retain(|k, _| b.get(k).unwrap().is_some());
                }
                let expect = model
                    .values()
                    .filter(|x| x.expires_at.is_some_and(|d| d <= t(now)))
                    .count();
                let n = b.purge_expired(t(now)).unwrap();
                assert_eq!(n, expect, "purge at step {step}");
                model.retain(|_, x| x.expires_at.is_none_or(|d| d > t(now)));
            }
            _ => {
                let got = b.get(&key).unwrap();
                let mut lent = None;
                let found = b
                    .get_with(&key, &mut |rr| lent = Some(rr.to_record()))
                    .unwrap();
                assert_eq!(found, got.is_some());
                assert_eq!(lent, got, "get_with vs get step {step}");
                if !bounded {
                    assert_eq!(got.as_ref(), model.get(&key), "step {step}");
                } else if let Some(g) = &got {
                    assert_eq!(Some(g), model.get(&key));
                }
            }
        }
        if bounded {
            model.retain(|k, _| b.get(k).unwrap().is_some());
        }
        let expect = model.values().filter_map(|x| x.expires_at).min();
        assert_eq!(
            b.next_expiry().unwrap(),
            expect,
            "next_expiry at step {step}"
        );
        if !bounded {
            assert_eq!(b.len().unwrap(), model.len());
        }
    }
}

#[test]
fn matches_a_model_unbounded() {
    for s in 1..6 {
        run(&MemoryBackend::builder().shards(2).build(), false, s * 7919);
    }
}

#[test]
fn matches_a_model_bounded() {
    for s in 1..6 {
        run(
            &MemoryBackend::builder()
                .shards(1)
                .max_entries(20)
                .max_bytes(40_000)
                .build(),
            true,
            s * 104729,
        );
    }
}
