//! What the fuzz targets share: fuzz input decoded as model operations ([`ops`]), scratch
//! folders on tmpfs, the checks run on a cache file opened from arbitrary bytes, and the panic
//! hook of the redb targets.
//!
//! Every check panics on a violation: libFuzzer then saves the input as a crash.

pub mod json;
pub mod ops;
pub mod redb_files;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The folder this process writes its scratch files in, created on first use:
/// `$BRAINCACHE_FUZZ_TMP` (or `/dev/shm`, or the system temp folder) + `/<target>-<pid>`. One
/// folder per process, reused by every execution, so no execution pays for creating one.
///
/// The folder is not removed at exit (libFuzzer exits with `_exit`); `fuzz/ci-smoke.sh` points
/// `BRAINCACHE_FUZZ_TMP` at a folder it removes afterwards.
pub fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::env::var_os("BRAINCACHE_FUZZ_TMP")
            .map(PathBuf::from)
            .or_else(|| {
                let shm = Path::new("/dev/shm");
                shm.is_dir().then(|| shm.to_path_buf())
            })
            .unwrap_or_else(std::env::temp_dir);
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "fuzz".to_owned());
        let dir = root.join(format!("braincache-{exe}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch folder");
        dir
    })
}

/// Removes `path` if it exists (a scratch file of the previous execution).
pub fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("scratch: cannot remove {}: {e}", path.display()),
    }
}

/// Splits `bytes` at every `sep` byte (a cheap way to read several fields from fuzz input).
pub fn fields(bytes: &[u8], sep: u8) -> Vec<&[u8]> {
    bytes.split(|&b| b == sep).collect()
}

/// Panics counted by [`quiet_panic_hook`], by location.
static PANICS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

/// Replaces libfuzzer-sys's panic hook (which aborts on every panic, even one that is caught)
/// with one that counts panics by location and prints the first few of each, so that a panic
/// inside redb that braincache catches and turns into an error does not end the run. A panic
/// that reaches the fuzz target still aborts: libfuzzer-sys's `catch_unwind` around the target
/// aborts when the target unwinds.
///
/// With `BRAINCACHE_FUZZ_STRICT_PANICS=1` every panic aborts, caught or not (to collect the
/// inputs that make redb panic).
pub fn quiet_panic_hook() {
    if std::env::var_os("BRAINCACHE_FUZZ_STRICT_PANICS").is_some() {
        return;
    }
    // The first `take_hook` removes libfuzzer-sys's hook (and puts std's back); the second
    // takes std's, which prints the message (and a backtrace with `RUST_BACKTRACE`).
    drop(std::panic::take_hook());
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let at = info
            .location()
            .map_or_else(|| "?".to_owned(), |l| format!("{}:{}", l.file(), l.line()));
        let n = {
            let mut seen = PANICS
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = seen.entry(at.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if n <= 3 {
            eprintln!("braincache-fuzz: panic #{n} at {at} (aborts only if not caught):");
            default_hook(info);
        } else if n.is_power_of_two() {
            eprintln!("braincache-fuzz: panic #{n} at {at}");
        }
    }));
}

/// True when `BRAINCACHE_FUZZ_STRICT=1`: known, reported issues fail the run too.
pub fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("BRAINCACHE_FUZZ_STRICT").is_some())
}

/// Known issues met, by description.
static KNOWN: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Counts a known, reported issue instead of failing; prints the first few and then every
/// power of two.
pub fn known_issue(what: &'static str) {
    let n = {
        let mut known = KNOWN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = known.entry(what).or_insert(0);
        *n += 1;
        *n
    };
    if n <= 3 || n.is_power_of_two() {
        eprintln!("braincache-fuzz: known issue #{n}: {what}");
    }
}

/// How many panics [`quiet_panic_hook`] has seen so far.
pub fn panics_seen() -> u64 {
    PANICS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .values()
        .sum()
}

/// Two handles on one store, used in turn: each call goes to the next handle. A model check run
/// through it checks that every handle sees what the other acknowledged, at once (as another
/// process would).
pub struct Alternate<B> {
    handles: [std::sync::Arc<B>; 2],
    turn: std::sync::atomic::AtomicUsize,
}

impl<B> Alternate<B> {
    /// Alternates between `a` and `b`, starting with `a`.
    pub fn new(a: std::sync::Arc<B>, b: std::sync::Arc<B>) -> Self {
        Alternate {
            handles: [a, b],
            turn: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn next(&self) -> &B {
        let i = self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        &self.handles[i % 2]
    }
}

impl<B: braincache_core::Backend> braincache_core::Backend for Alternate<B> {
    type Codec = B::Codec;

    fn get(&self, key: &str) -> braincache_core::Result<Option<braincache_core::Record>> {
        self.next().get(key)
    }
    fn set(&self, key: &str, record: braincache_core::Record) -> braincache_core::Result<()> {
        self.next().set(key, record)
    }
    fn delete(&self, key: &str) -> braincache_core::Result<bool> {
        self.next().delete(key)
    }
    fn clear(&self) -> braincache_core::Result<()> {
        self.next().clear()
    }
    fn len(&self) -> braincache_core::Result<usize> {
        self.next().len()
    }
    fn purge_expired(&self, now: braincache_core::Timestamp) -> braincache_core::Result<usize> {
        self.next().purge_expired(now)
    }
    fn next_expiry(&self) -> braincache_core::Result<Option<braincache_core::Timestamp>> {
        self.next().next_expiry()
    }
    fn flush(&self) -> braincache_core::Result<()> {
        self.next().flush()
    }
    fn get_many(
        &self,
        keys: &[&str],
    ) -> braincache_core::Result<Vec<Option<braincache_core::Record>>> {
        self.next().get_many(keys)
    }
    fn set_many(
        &self,
        entries: Vec<(String, braincache_core::Record)>,
    ) -> braincache_core::Result<()> {
        self.next().set_many(entries)
    }
    fn delete_many(&self, keys: &[&str]) -> braincache_core::Result<usize> {
        self.next().delete_many(keys)
    }
}
