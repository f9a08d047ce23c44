//! Arbitrary operation sequences on the JSON file backend, durable and batched, agree with the
//! model; afterwards another handle (as another process would) and a reopen see exactly what the
//! backend answered: nothing acknowledged is lost.
//!
//! Byte 0 picks the mode:
//! - bit 0 clear: durable. Bit 3 set: two handles on the file take the calls in turn, so each
//!   must see the other's writes at once.
//! - bit 0 set: batched. Bit 1 flushes before the second handle looks (else the drop's flush is
//!   relied on); bit 2 flushes every millisecond in the background during the run (else never).
#![no_main]

use braincache_core::testkit::{MODEL_KEYS, check_against_model};
use braincache_core::{Backend, Record, Timestamp};
use braincache_file::FileBackend;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Duration;

type Seen = (Vec<Option<Record>>, usize, Option<Timestamp>);

fn seen(b: &impl Backend) -> Seen {
    (
        b.get_many(&MODEL_KEYS).expect("get_many"),
        b.len().expect("len"),
        b.next_expiry().expect("next_expiry"),
    )
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&mode, rest)) = bytes.split_first() else {
        return;
    };
    let batched = mode & 1 == 1;
    let path = braincache_fuzz::scratch_dir().join(if batched {
        "batched.json"
    } else {
        "durable.json"
    });
    braincache_fuzz::remove(&path);
    let builder = FileBackend::builder(&path);
    let backend = if batched {
        let every = if mode & 4 != 0 {
            Duration::from_millis(1)
        } else {
            Duration::from_secs(3600)
        };
        builder.flush_every(every)
    } else {
        builder
    }
    .build()
    .expect("open a new file");
    let ops = braincache_fuzz::ops::decode(rest);
    if !batched && mode & 8 != 0 {
        let backend = Arc::new(backend);
        let other = Arc::new(FileBackend::open(&path).expect("a second handle"));
        let both = braincache_fuzz::Alternate::new(Arc::clone(&backend), other);
        if let Err(e) = check_against_model(&both, &ops) {
            panic!("two durable file handles in turn disagree with the model: {e}");
        }
        let answered = seen(&*backend);
        drop(both);
        drop(backend);
        let again = FileBackend::open(&path).expect("reopen");
        assert_eq!(seen(&again), answered, "a reopen sees other records");
        return;
    }
    if let Err(e) = check_against_model(&backend, &ops) {
        panic!("file backend (batched: {batched}) disagrees with the model: {e}");
    }
    let answered = seen(&backend);
    if !batched || mode & 2 != 0 {
        if batched {
            backend.flush().expect("flush");
        }
        let other = FileBackend::open(&path).expect("a second handle");
        assert_eq!(seen(&other), answered, "a second handle sees other records");
    }
    drop(backend);
    let again = FileBackend::open(&path).expect("reopen");
    assert_eq!(seen(&again), answered, "a reopen sees other records");
});
