//! Arbitrary operation sequences on the redb backend agree with the model. One backend per mode
//! is opened per process and cleared at the start of each execution (opening one costs more than
//! a whole run); byte 0 picks the mode (bit 0: single-process, else multi-process) and whether
//! the backend is closed and reopened at the end (bit 1), which must then show exactly what it
//! answered before.
#![no_main]

use braincache_core::testkit::{MODEL_KEYS, Op, check_against_model};
use braincache_core::{Backend, Record, Timestamp};
use braincache_redb::RedbBackend;
use libfuzzer_sys::fuzz_target;
use std::sync::Mutex;
use std::time::Duration;

static BACKENDS: [Mutex<Option<RedbBackend>>; 2] = [Mutex::new(None), Mutex::new(None)];

fn open(single: bool) -> RedbBackend {
    let dir = braincache_fuzz::scratch_dir();
    let b = RedbBackend::builder(dir.join(if single { "single.redb" } else { "multi.redb" }))
        .group_commit_wait(Duration::ZERO);
    if single { b.single_process() } else { b }.build().expect("open")
}

type Seen = (Vec<Option<Record>>, usize, Option<Timestamp>);

fn seen(b: &RedbBackend) -> Seen {
    (
        b.get_many(&MODEL_KEYS).expect("get_many"),
        b.len().expect("len"),
        b.next_expiry().expect("next_expiry"),
    )
}

fuzz_target!(
    init: braincache_fuzz::quiet_panic_hook(),
    |bytes: &[u8]| {
        let Some((&mode, rest)) = bytes.split_first() else { return };
        let single = mode & 1 == 1;
        let mut slot = BACKENDS[usize::from(single)].lock().unwrap_or_else(|e| e.into_inner());
        let backend = slot.get_or_insert_with(|| open(single));
        backend.clear().expect("clear");
        assert_eq!(backend.len().expect("len"), 0, "clear left records");
        assert_eq!(backend.next_expiry().expect("next_expiry"), None, "clear left deadlines");
        let ops = Op::decode_all(rest);
        if let Err(e) = check_against_model(&*backend, &ops) {
            panic!("redb backend (single process: {single}) disagrees with the model: {e}");
        }
        if mode & 2 != 0 {
            let answered = seen(backend);
            *slot = None; // closes the file
            let again = slot.insert(open(single));
            assert_eq!(seen(again), answered, "a reopen sees other records");
        }
        assert_eq!(braincache_fuzz::panics_seen(), 0, "a panic inside redb was caught");
    }
);
