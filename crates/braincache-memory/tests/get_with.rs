//! `MemoryBackend::get_with` lends a copy of the record made in a buffer the thread reuses:
//! a value's `Deserialize` that reads the same cache in the middle of its value must still read
//! its own bytes afterwards.

use braincache::BrainCache;
use braincache::backend::MemoryBackend;
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::sync::OnceLock;

/// The cache the `Deserialize` below reads from.
static CACHE: OnceLock<BrainCache<MemoryBackend>> = OnceLock::new();

/// A pair of strings (stored as a tuple) whose `Deserialize` reads another key of [`CACHE`]
/// between its two elements, and keeps what it read.
#[derive(Debug, PartialEq)]
struct Pair(String, String, Option<String>);

impl<'de> Deserialize<'de> for Pair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pair;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pair")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pair, A::Error> {
                let first: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                // A nested read of the same cache, on this thread, while the outer value is
                // half read.
                let other: Option<String> = CACHE
                    .get()
                    .expect("cache set up")
                    .get("other")
                    .map_err(de::Error::custom)?;
                let second: String = seq
                    .next_element()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                Ok(Pair(first, second, other))
            }
        }
        d.deserialize_seq(V)
    }
}

#[test]
fn a_deserialize_that_reads_the_same_cache_mid_value_still_reads_its_own_bytes() {
    let cache = CACHE.get_or_init(|| BrainCache::new(MemoryBackend::new()));
    let other = "o".repeat(3_000);
    cache.set("other", &other, None).unwrap();
    for len in [0, 10, 200, 5_000] {
        let (a, b) = ("a".repeat(len), "b".repeat(len + 1));
        cache.set("pair", &(&a, &b), None).unwrap();
        let got: Pair = cache.get("pair").unwrap().unwrap();
        assert_eq!(got, Pair(a, b, Some(other.clone())), "len {len}");
    }
}

/// A thread-local's destructor that reads the cache after the backend's own per-thread buffer
/// was torn down gets its answer, not a panic (which aborts the process in a destructor).
#[test]
fn a_read_from_a_thread_local_destructor_answers() {
    use braincache::backend::{Backend, Record};
    use std::cell::RefCell;
    use std::sync::{Arc, Mutex};

    static ANSWERS: Mutex<Vec<Option<usize>>> = Mutex::new(Vec::new());
    struct ReadsOnDrop(Arc<MemoryBackend>);
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut n = 0;
                self.0.get_with("k", &mut |r| n = r.value.len()).unwrap();
                n
            }));
            ANSWERS.lock().unwrap().push(answer.ok());
        }
    }
    thread_local! {
        static GUARD: RefCell<Option<ReadsOnDrop>> = const { RefCell::new(None) };
    }

    let b = Arc::new(MemoryBackend::new());
    // Larger than a table slot holds, so the read goes through the per-thread buffer (a value
    // held in its slot is copied onto the stack and never touches it).
    b.set("k", Record::new(vec![1; 200], None)).unwrap();
    // Registered before the buffer (the first `get_with` after it): thread-locals are torn
    // down in reverse order of registration, so the buffer goes first and the guard's read
    // finds it gone.
    let backend = Arc::clone(&b);
    std::thread::spawn(move || {
        GUARD.with(|g| *g.borrow_mut() = Some(ReadsOnDrop(Arc::clone(&backend))));
        backend.get_with("k", &mut |_| {}).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(*ANSWERS.lock().unwrap(), [Some(200)]);
}
