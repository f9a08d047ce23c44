//! Property test: random operation sequences against each backend agree with a model (an
//! ordered map with deadlines). The same model backs the fuzz targets in `fuzz/`; this runs in
//! the ordinary test suite so every CI run checks it without nightly.
//!
//! The memory backend always runs; the JSON file backend (durable and batched) with the `file`
//! feature, the redb backend (multi-process and single-process) with `redb`. The persistent
//! backends are also closed and reopened after each sequence: the reopened store must answer
//! exactly what the backend answered before (nothing acknowledged is lost). Their files live on
//! tmpfs (`/dev/shm`) where there is one, so the fsyncs of durable writes cost little.

use braincache::backend::MemoryBackend;
use braincache_core::testkit::{Op, check_against_model, strategy};
use proptest::prelude::*;

fn ops() -> impl Strategy<Value = Vec<Op>> {
    strategy::ops(strategy::op(), 60)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memory_unbounded_agrees_with_the_model(ops in ops()) {
        check_against_model(&MemoryBackend::new(), &ops).map_err(TestCaseError::fail)?;
    }
}

/// What a backend answers for every model key, its length and its next deadline.
#[cfg(any(feature = "file", feature = "redb"))]
type Answers = (
    Vec<Option<braincache::backend::Record>>,
    usize,
    Option<braincache::Timestamp>,
);

#[cfg(any(feature = "file", feature = "redb"))]
fn answers<B: braincache::backend::Backend>(b: &B) -> Result<Answers, TestCaseError> {
    let fail = |e: braincache::Error| TestCaseError::fail(e.to_string());
    Ok((
        b.get_many(&braincache_core::testkit::MODEL_KEYS)
            .map_err(fail)?,
        b.len().map_err(fail)?,
        b.next_expiry().map_err(fail)?,
    ))
}

/// A fresh folder, on tmpfs when the machine has one.
#[cfg(any(feature = "file", feature = "redb"))]
fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("braincache-model")
            .tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

#[cfg(feature = "file")]
mod file {
    use super::*;
    use braincache::backend::{Backend, FileBackend};
    use std::time::Duration;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Durable: another handle (as another process would) sees every acknowledged change,
        /// and so does a reopen.
        #[test]
        fn durable_agrees_with_the_model_and_loses_nothing(ops in ops()) {
            let dir = scratch();
            let path = dir.path().join("cache.json");
            let b = FileBackend::open(&path).unwrap();
            check_against_model(&b, &ops).map_err(TestCaseError::fail)?;
            let answered = answers(&b)?;
            prop_assert_eq!(&answers(&FileBackend::open(&path).unwrap())?, &answered);
            drop(b);
            prop_assert_eq!(answers(&FileBackend::open(&path).unwrap())?, answered);
        }

        /// Batched (no background flush during the run): an explicit flush, or the drop's,
        /// writes exactly what the backend answered.
        #[test]
        fn batched_agrees_with_the_model_and_flushes_everything(
            ops in ops(),
            flush_first in any::<bool>(),
        ) {
            let dir = scratch();
            let path = dir.path().join("cache.json");
            let b = FileBackend::builder(&path)
                .flush_every(Duration::from_secs(3600))
                .build()
                .unwrap();
            check_against_model(&b, &ops).map_err(TestCaseError::fail)?;
            let answered = answers(&b)?;
            if flush_first {
                b.flush().unwrap();
                prop_assert_eq!(&answers(&FileBackend::open(&path).unwrap())?, &answered);
            }
            drop(b);
            prop_assert_eq!(answers(&FileBackend::open(&path).unwrap())?, answered);
        }
    }
}

#[cfg(feature = "redb")]
mod redb {
    use super::*;
    use braincache::backend::RedbBackend;
    use std::path::Path;
    use std::time::Duration;

    fn open(path: &Path, single: bool) -> RedbBackend {
        let b = RedbBackend::builder(path).group_commit_wait(Duration::ZERO);
        if single { b.single_process() } else { b }.build().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Both concurrency modes; a reopen sees exactly what the backend answered.
        #[test]
        fn redb_agrees_with_the_model_and_loses_nothing(ops in ops(), single in any::<bool>()) {
            let dir = scratch();
            let path = dir.path().join("cache.redb");
            let b = open(&path, single);
            check_against_model(&b, &ops).map_err(TestCaseError::fail)?;
            let answered = answers(&b)?;
            drop(b);
            prop_assert_eq!(answers(&open(&path, single))?, answered);
        }
    }
}
