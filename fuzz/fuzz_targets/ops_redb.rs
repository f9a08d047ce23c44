//! Arbitrary operation sequences on the redb backend agree with the model. The backends are
//! opened once per process and cleared at the start of each execution (opening one costs more
//! than a whole run). Byte 0 picks:
//! - bits 0-1: the backend: 0 multi-process, 1 single-process, 2 and 3 two multi-process handles
//!   on one file taking the calls in turn (each must see the other's writes at once);
//! - bit 2: close and reopen at the end, which must then show exactly what was answered before.
#![no_main]

use braincache_core::testkit::{MODEL_KEYS, Op, check_against_model};
use braincache_core::{Backend, Record, Timestamp};
use braincache_redb::RedbBackend;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, Mutex};
use std::time::Duration;

static SINGLE: Mutex<Option<RedbBackend>> = Mutex::new(None);
static MULTI: Mutex<Option<RedbBackend>> = Mutex::new(None);
static SHARED: Mutex<Option<(Arc<RedbBackend>, Arc<RedbBackend>)>> = Mutex::new(None);

fn open(name: &str, single: bool) -> RedbBackend {
    let b = RedbBackend::builder(braincache_fuzz::scratch_dir().join(name))
        .group_commit_wait(Duration::ZERO);
    if single { b.single_process() } else { b }
        .build()
        .expect("open")
}

fn open_shared() -> (Arc<RedbBackend>, Arc<RedbBackend>) {
    (
        Arc::new(open("shared.redb", false)),
        Arc::new(open("shared.redb", false)),
    )
}

type Seen = (Vec<Option<Record>>, usize, Option<Timestamp>);

fn seen(b: &impl Backend) -> Seen {
    (
        b.get_many(&MODEL_KEYS).expect("get_many"),
        b.len().expect("len"),
        b.next_expiry().expect("next_expiry"),
    )
}

fn run(b: &impl Backend, ops: &[Op], what: &str) {
    b.clear().expect("clear");
    assert_eq!(b.len().expect("len"), 0, "clear left records");
    assert_eq!(
        b.next_expiry().expect("next_expiry"),
        None,
        "clear left deadlines"
    );
    if let Err(e) = check_against_model(b, ops) {
        panic!("redb backend ({what}) disagrees with the model: {e}");
    }
}

fuzz_target!(
    init: braincache_fuzz::quiet_panic_hook(),
    |bytes: &[u8]| {
        let Some((&mode, rest)) = bytes.split_first() else { return };
        let ops = braincache_fuzz::ops::decode(rest);
        let reopen = mode & 4 != 0;
        match mode & 3 {
            0 | 1 => {
                let single = mode & 1 == 1;
                let (slot, name) = if single { (&SINGLE, "single.redb") } else { (&MULTI, "multi.redb") };
                let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
                let backend = slot.get_or_insert_with(|| open(name, single));
                run(&*backend, &ops, if single { "single process" } else { "multi-process" });
                if reopen {
                    let answered = seen(backend);
                    *slot = None; // closes the file
                    let again = slot.insert(open(name, single));
                    assert_eq!(seen(again), answered, "a reopen sees other records");
                }
            }
            _ => {
                let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
                let (a, b) = slot.get_or_insert_with(open_shared).clone();
                let both = braincache_fuzz::Alternate::new(Arc::clone(&a), Arc::clone(&b));
                run(&both, &ops, "two multi-process handles in turn");
                let answered = seen(&*a);
                assert_eq!(seen(&*b), answered, "the two handles disagree");
                if reopen {
                    drop((both, a, b));
                    *slot = None;
                    let (a, _) = slot.insert(open_shared());
                    assert_eq!(seen(&**a), answered, "a reopen sees other records");
                }
            }
        }
        assert_eq!(braincache_fuzz::panics_seen(), 0, "a panic inside redb was caught");
    }
);
