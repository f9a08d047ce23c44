//! Checks of the redb backend on damaged files: whole files from fuzz input, valid braincache
//! files patched by it, and braincache files whose rows were planted with redb's own API.

use braincache_core::{Backend, Error, Record, Timestamp};
use braincache_redb::RedbBackend;
use redb::{ReadableTableMetadata, TableDefinition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// braincache's tables, as `crates/braincache-redb/src/format.rs` documents them (format
/// version 1).
const ENTRIES: TableDefinition<&str, &[u8]> = TableDefinition::new("entries");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// The keys the base files hold; the checks read them back.
pub const SEED_KEYS: [&str; 6] = ["a", "b", "", "ключ", "big", "k07"];

/// A deadline far in the future, fixed so base files are the same in every process.
const LATER: Timestamp = Timestamp::from_unix_nanos(4_000_000_000_000_000_000);
/// A deadline in the past.
const EARLIER: Timestamp = Timestamp::from_unix_nanos(1_000_000_000_000_000_000);

fn rec(v: &[u8], d: Option<Timestamp>) -> Record {
    Record::new(v.to_vec(), d)
}

fn stamp_file(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".seq");
    s.into()
}

/// Valid files to damage, made once per process in the scratch folder:
/// 0. an empty braincache file;
/// 1. a braincache file with [`SEED_KEYS`] and 40 more (a 5 kB value, deadlines past and
///    future, an empty value): branch and overflow pages;
/// 2. a redb file of another program (table `users`);
/// 3. a braincache file copied while its backend had it open (redb's "needs recovery" state).
pub fn bases() -> &'static [Vec<u8>] {
    static BASES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    BASES.get_or_init(|| {
        let dir = crate::scratch_dir().join("bases");
        std::fs::create_dir_all(&dir).expect("bases folder");
        let fresh = |name: &str| {
            let p = dir.join(name);
            crate::remove(&p);
            crate::remove(&stamp_file(&p));
            p
        };
        let empty = fresh("empty.redb");
        drop(
            RedbBackend::builder(&empty)
                .single_process()
                .build()
                .expect("create"),
        );

        let full = fresh("full.redb");
        let fill = |b: &RedbBackend| {
            let mut entries = vec![
                ("a".to_owned(), rec(b"1", None)),
                ("b".to_owned(), rec(b"xyz", Some(LATER))),
                (String::new(), rec(b"", None)),
                ("ключ".to_owned(), rec(b"\"v\"", Some(EARLIER))),
                ("big".to_owned(), rec(&[7; 5000], Some(LATER))),
            ];
            for i in 0..40u8 {
                let d = (i % 3 != 0).then(|| Timestamp::from_unix_nanos(u64::from(i) << 50));
                entries.push((format!("k{i:02}"), rec(&[i; 20], d)));
            }
            b.set_many(entries).expect("fill");
            b.delete("k05").expect("delete");
        };
        let b = RedbBackend::builder(&full)
            .single_process()
            .build()
            .expect("create");
        fill(&b);
        drop(b);

        let foreign = fresh("foreign.redb");
        {
            const USERS: TableDefinition<&str, u64> = TableDefinition::new("users");
            let db = redb::Database::create(&foreign).expect("create");
            let txn = db.begin_write().expect("write");
            txn.open_table(USERS)
                .expect("table")
                .insert("ann", 1)
                .expect("insert");
            txn.commit().expect("commit");
        }

        let live = fresh("live.redb");
        let b = RedbBackend::builder(&live)
            .single_process()
            .build()
            .expect("create");
        fill(&b);
        let live_bytes = std::fs::read(&live).expect("read");
        drop(b);

        let read = |p: &Path| std::fs::read(p).expect("read a base");
        vec![read(&empty), read(&full), read(&foreign), live_bytes]
    })
}

/// Turns fuzz input into file bytes. Byte 0 picks the form: odd, the rest is the file as it
/// is; even, byte 1 picks a [base](bases) and the rest patches it, five bytes at a time: an
/// operation byte and a 24-bit offset (taken modulo the length), then
/// - op % 4 = 0: a length byte (mod 32) and that many bytes written at the offset;
/// - 1: one byte XORed into the byte at the offset;
/// - 2: the file truncated at the offset;
/// - 3: one of a few interesting `u64`s (picked by the next byte) written little-endian.
///
/// Also returns whether byte 0 asks for single-process mode (bit 1).
pub fn file_from_input(input: &[u8]) -> (Vec<u8>, bool) {
    let Some((&mode, rest)) = input.split_first() else {
        return (Vec::new(), false);
    };
    let single = mode & 2 != 0;
    if mode & 1 == 1 {
        return (rest.to_vec(), single);
    }
    let bases = bases();
    let Some((&which, mut rest)) = rest.split_first() else {
        return (bases[0].clone(), single);
    };
    let mut file = bases[usize::from(which) % bases.len()].clone();
    while let Some((head, tail)) = rest.split_first_chunk::<4>() {
        rest = tail;
        if file.is_empty() {
            break;
        }
        let offset =
            (usize::from(head[1]) | usize::from(head[2]) << 8 | usize::from(head[3]) << 16)
                % file.len();
        let Some((&arg, tail)) = rest.split_first() else {
            break;
        };
        match head[0] % 4 {
            0 => {
                let n = usize::from(arg % 32).min(tail.len());
                let end = (offset + n).min(file.len());
                file[offset..end].copy_from_slice(&tail[..end - offset]);
                rest = &tail[n..];
            }
            1 => {
                file[offset] ^= arg;
                rest = tail;
            }
            2 => file.truncate(offset),
            _ => {
                let v: u64 = match arg % 8 {
                    0 => 0,
                    1 => 1,
                    2 => u64::MAX,
                    3 => i64::MAX as u64,
                    4 => 4096,
                    5 => file.len() as u64,
                    6 => u64::from(u32::MAX),
                    _ => 0x8000_0000_0000_0000,
                };
                let b = v.to_le_bytes();
                let end = (offset + 8).min(file.len());
                file[offset..end].copy_from_slice(&b[..end - offset]);
                rest = tail;
            }
        }
    }
    (file, single)
}

/// Writes `bytes` as a redb cache file in `dir`, reads it with `RedbBackend::read_entries`, and
/// opens it. The rules:
/// - `read_entries` never panics, leaves the bytes as they were and creates no stamp file;
/// - opening never panics (a panic inside redb that braincache catches is counted by the panic
///   hook, not a failure); a refused file is a typed error naming the file, and its bytes are
///   unchanged;
/// - an opened file answers `len`, `get`, `next_expiry`, `purge_expired` with values or
///   errors, never a panic, and `len` and `get` agree with what `read_entries` listed; a `set`
///   that returned `Ok` reads back.
pub fn check_redb_file(dir: &Path, bytes: &[u8], single: bool) {
    let path = dir.join("cache.redb");
    // To turn a patched input into a file for a regression test.
    if let Some(dump) = std::env::var_os("BRAINCACHE_FUZZ_DUMP") {
        std::fs::write(dump, bytes).expect("dump the file");
    }
    std::fs::write(&path, bytes).expect("scratch write");
    crate::remove(&stamp_file(&path));

    // The tools' reader: never a panic, never a write, not even the stamp file.
    let listed = RedbBackend::read_entries(&path);
    assert!(
        std::fs::read(&path).expect("read back") == bytes,
        "read_entries changed the file ({:?})",
        listed.as_ref().err()
    );
    assert!(
        !stamp_file(&path).exists(),
        "read_entries created the stamp file"
    );
    if let Err(e) = &listed
        && matches!(e, Error::Corrupt { .. } | Error::Incompatible { .. })
    {
        assert_eq!(e.path(), Some(path.as_path()), "{e}");
    }

    let open = |p: &Path| {
        let b = RedbBackend::builder(p).group_commit_wait(Duration::ZERO);
        let b = if verify() {
            b.check_integrity_on_open()
        } else {
            b
        };
        if single { b.single_process() } else { b }.build()
    };
    let b = match open(&path) {
        Ok(b) => b,
        Err(e) => {
            if matches!(e, Error::Corrupt { .. } | Error::Incompatible { .. }) {
                assert_eq!(e.path(), Some(path.as_path()), "{e}");
            }
            let now = std::fs::read(&path).expect("read back");
            if now != bytes {
                // Known: redb repairs a file that needs crash recovery in place, and the repair
                // may write (the header's region count) before it fails. Reported; counted here
                // unless strict.
                if needs_recovery(bytes) && !crate::strict() {
                    crate::known_issue("a refused file that needed recovery was modified");
                } else if is_redb(bytes) && !opens_read_only(dir, bytes) && !crate::strict() {
                    crate::known_issue("a refused file redb could not open read-only was modified");
                } else if verify() && is_redb(bytes) && e.is_corrupt() && !crate::strict() {
                    // Known, and documented on `check_integrity_on_open`: redb's writable open marks the
                    // header (its recovery flag) before the integrity check that then refuses
                    // the damaged file. Files that are not braincache's are checked read-only
                    // first and must stay unchanged (`Incompatible`, or no redb magic).
                    crate::known_issue("a damaged file refused by the integrity check was marked");
                } else {
                    panic!("a refused file was modified ({e})");
                }
            }
            return;
        }
    };
    // The reader and the backend read the same file alike. A verifying open may repair the
    // file (going back to the previous commit when the last one is damaged), so then the file
    // is read again as the open left it (beside the backend: possible in multi-process mode).
    let listed = if verify() {
        RedbBackend::read_entries(&path)
    } else {
        listed
    };
    if let Ok(entries) = &listed {
        braincache_core::testkit::assert_agrees_with_listing(&b, entries);
    }
    let _ = b.len();
    let _ = b.next_expiry();
    for k in SEED_KEYS {
        let _ = b.get(k);
    }
    let _ = b.get_many(&SEED_KEYS);
    let _ = b.purge_expired(Timestamp::now());
    let _ = b.next_expiry();
    let new = rec(b"after", Some(LATER));
    let stored = b.set("\u{0}fuzz-new", new.clone()).is_ok();
    if stored {
        assert_eq!(
            b.get("\u{0}fuzz-new").ok().flatten(),
            Some(new.clone()),
            "an acknowledged set does not read back"
        );
    }
    let _ = b.delete("a");
    let _ = b.clear();
    let _ = b.set("a", rec(b"2", None));
    drop(b);
    if let Ok(again) = open(&path) {
        let _ = again.len();
        let _ = again.get("a");
    }
}

/// `BRAINCACHE_FUZZ_REDB_VERIFY=1` opens with `check_integrity_on_open()` (redb's integrity check
/// on open). redb trusts a cleanly closed file, and on some damaged ones a plain open aborts the
/// process later (a panic inside a destructor while unwinding: `damaged-freed-pages.bin` in
/// `tests/fuzz_corpus/open_redb_file/`), which ends any long run of this target; with the check,
/// such files must be refused, unchanged.
fn verify() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("BRAINCACHE_FUZZ_REDB_VERIFY").is_some())
}

/// True when `bytes` start like a redb file whose header asks for crash recovery (the god
/// byte's recovery-required bit: the file was not closed cleanly).
pub fn needs_recovery(bytes: &[u8]) -> bool {
    is_redb(bytes) && bytes.get(9).is_some_and(|g| g & 2 != 0)
}

/// Whether redb opens `bytes` without writing (checked on a copy). When it cannot (crash
/// recovery needed, or damage), whose file it is and whether it is whole are only known after
/// redb's writable open, which may write first: then a refused file may have changed (known,
/// documented).
fn opens_read_only(dir: &Path, bytes: &[u8]) -> bool {
    let copy = dir.join("read-only-check.redb");
    std::fs::write(&copy, bytes).expect("scratch write");
    std::panic::catch_unwind(|| {
        redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .open_read_only(&copy)
            .is_ok()
    })
    .unwrap_or(false)
}

/// True when `bytes` start with redb's magic number.
fn is_redb(bytes: &[u8]) -> bool {
    const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    bytes.starts_with(&MAGIC)
}

/// Rows to plant in a braincache file, read from fuzz input (see [`plan`]).
#[derive(Debug, Default)]
pub struct Plan {
    /// `entries` rows: key → raw entry bytes (header + value).
    pub entries: Vec<(String, Vec<u8>)>,
    /// `expiry` rows.
    pub expiry: Vec<(u64, String)>,
    /// The time to purge at.
    pub now: u64,
}

/// Reads a [`Plan`] from fuzz input: a tag byte, then by `tag % 4`:
/// - 0: a raw entry: key length (mod 16), key (lossy UTF-8), value length, entry bytes;
/// - 1: an expiry row: 8 bytes of deadline, then a byte naming a planted key (or, past them, a
///   key no entry has);
/// - 2: a well-formed entry with its expiry row: key length, key, 8 bytes of deadline (all ones:
///   none), value length, value;
/// - 3: 8 bytes: the purge time.
pub fn plan(mut input: &[u8]) -> Plan {
    fn take<'a>(n: usize, input: &mut &'a [u8]) -> Option<&'a [u8]> {
        if input.len() < n {
            return None;
        }
        let (head, rest) = input.split_at(n);
        *input = rest;
        Some(head)
    }
    fn u64_of(b: &[u8]) -> u64 {
        let mut w = [0; 8];
        w.copy_from_slice(b);
        u64::from_le_bytes(w)
    }
    let mut p = Plan {
        now: 2_000_000_000_000_000_000,
        ..Plan::default()
    };
    while let Some(tag) = take(1, &mut input) {
        match tag[0] % 4 {
            0 => {
                let Some(n) = take(1, &mut input) else { break };
                let Some(k) = take(usize::from(n[0] % 16), &mut input) else {
                    break;
                };
                let Some(n) = take(1, &mut input) else { break };
                let Some(v) = take(usize::from(n[0]), &mut input) else {
                    break;
                };
                p.entries
                    .push((String::from_utf8_lossy(k).into_owned(), v.to_vec()));
            }
            1 => {
                let Some(d) = take(8, &mut input) else { break };
                let Some(i) = take(1, &mut input) else { break };
                let key = match p.entries.get(usize::from(i[0])) {
                    Some((k, _)) => k.clone(),
                    None => format!("orphan{}", i[0]),
                };
                p.expiry.push((u64_of(d), key));
            }
            2 => {
                let Some(n) = take(1, &mut input) else { break };
                let Some(k) = take(usize::from(n[0] % 16), &mut input) else {
                    break;
                };
                let Some(d) = take(8, &mut input) else { break };
                let Some(n) = take(1, &mut input) else { break };
                let Some(v) = take(usize::from(n[0]), &mut input) else {
                    break;
                };
                let key = String::from_utf8_lossy(k).into_owned();
                let d = u64_of(d);
                let mut bytes = Vec::new();
                if d == u64::MAX {
                    bytes.push(0);
                } else {
                    bytes.push(1);
                    bytes.extend_from_slice(&d.to_le_bytes());
                    p.expiry.push((d, key.clone()));
                }
                bytes.extend_from_slice(v);
                p.entries.push((key, bytes));
            }
            _ => {
                let Some(d) = take(8, &mut input) else { break };
                p.now = u64_of(d);
            }
        }
    }
    p
}

/// The record the entry format (`format.rs`: a tag byte, 0 = no deadline, 1 = an 8-byte
/// little-endian deadline follows, then the value) says `bytes` hold; `None` for damage.
fn expected_entry(bytes: &[u8]) -> Option<Record> {
    // Records of braincache 0.1 (tags 0 and 1) were postcard-encoded and read as such; every
    // other entry is in core's `wire` format (its own unit tests pin that format down).
    let legacy = |r: Record| Some(r.with_codec(Some(braincache_core::CodecId::POSTCARD)));
    match bytes {
        [0, value @ ..] => legacy(rec(value, None)),
        [1, d0, d1, d2, d3, d4, d5, d6, d7, value @ ..] => legacy(rec(
            value,
            Some(Timestamp::from_unix_nanos(u64::from_le_bytes([
                *d0, *d1, *d2, *d3, *d4, *d5, *d6, *d7,
            ]))),
        )),
        // Tag 1 with fewer than 8 deadline bytes: damage (tag 0 always matched above).
        [1, ..] => None,
        _ => braincache_core::wire::decode("planted", bytes).ok(),
    }
}

/// Writes the empty base file, plants `plan`'s rows with redb, opens it with the backend, and
/// checks: every key reads as the entry format says (damage is `Error::Corrupt` naming the
/// key); `len` counts the entries; a purge removes only records that are due, and leaves no due
/// deadline behind; damaged entries can be overwritten and deleted; a purge at the end of time
/// empties the expiry index.
pub fn check_planted(dir: &Path, plan: &Plan, single: bool) {
    let path = dir.join("planted.redb");
    std::fs::write(&path, &bases()[0]).expect("scratch write");
    {
        let db = redb::Database::builder()
            .set_cache_size(1 << 20)
            .create(&path)
            .expect("open the base with redb");
        let txn = db.begin_write().expect("begin_write");
        {
            let mut entries = txn.open_table(ENTRIES).expect("entries");
            for (k, v) in &plan.entries {
                entries.insert(k.as_str(), v.as_slice()).expect("insert");
            }
            let mut expiry = txn.open_table(EXPIRY).expect("expiry");
            for (d, k) in &plan.expiry {
                expiry.insert((*d, k.as_str()), ()).expect("insert");
            }
            let meta = txn.open_table(META).expect("meta");
            assert_eq!(meta.len().expect("meta len"), 1);
        }
        txn.commit().expect("commit");
    }
    let builder = RedbBackend::builder(&path).group_commit_wait(Duration::ZERO);
    let b = if single {
        builder.single_process()
    } else {
        builder
    }
    .build()
    .expect("open a planted file");

    // The last planted row of a key wins, as in the table.
    let want: BTreeMap<&str, &[u8]> = plan
        .entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    let read = |b: &RedbBackend| -> BTreeMap<&str, Option<Record>> {
        want.iter()
            .map(|(k, bytes)| {
                let got = b.get(k);
                let expected = expected_entry(bytes);
                match (&got, &expected) {
                    (Ok(Some(r)), Some(e)) => assert_eq!(r, e, "{k:?}"),
                    (Err(e), None) => {
                        assert!(e.is_corrupt(), "{k:?}: {e:?}");
                        assert_eq!(e.key(), Some(*k), "{e}");
                    }
                    _ => panic!("{k:?} holds {bytes:?}: got {got:?}, the format says {expected:?}"),
                }
                (*k, expected)
            })
            .collect()
    };
    let before = read(&b);
    assert_eq!(b.len().expect("len"), want.len(), "len");
    let first_row = plan.expiry.iter().map(|(d, _)| *d).min();
    assert_eq!(
        b.next_expiry()
            .expect("next_expiry")
            .map(Timestamp::as_unix_nanos),
        first_row,
        "next_expiry is the first expiry row"
    );

    // Purge: only due records go, every due deadline goes.
    let now = Timestamp::from_unix_nanos(plan.now);
    let removed = b.purge_expired(now).expect("purge");
    let mut gone = 0;
    for (k, was) in &before {
        let still = b.get(k);
        let here = match &still {
            Ok(Some(_)) => true,
            Ok(None) => false,
            Err(e) => {
                assert!(e.is_corrupt(), "{e}");
                true
            }
        };
        if !here {
            gone += 1;
            let due = was
                .as_ref()
                .and_then(|r| r.expires_at)
                .is_some_and(|d| d <= now);
            assert!(due, "purge at {now:?} removed {k:?}, which was {was:?}");
        } else if let Some(r) = was
            && let Some(d) = r.expires_at
            && d <= now
            && plan
                .expiry
                .iter()
                .any(|(rd, rk)| *rd == d.as_unix_nanos() && rk == k)
        {
            panic!("{k:?} was due at {d:?} with its expiry row, and survived a purge at {now:?}");
        }
    }
    assert_eq!(removed, gone, "purge count");
    if let Some(d) = b.next_expiry().expect("next_expiry") {
        assert!(d > now, "next_expiry {d:?} after a purge at {now:?}");
    }

    // Damaged or not, every key can be overwritten and deleted.
    let fresh: Vec<(String, Record)> = want
        .keys()
        .map(|k| ((*k).to_owned(), rec(k.as_bytes(), Some(LATER))))
        .collect();
    b.set_many(fresh.clone()).expect("overwrite");
    for (k, r) in &fresh {
        assert_eq!(b.get(k).expect("get").as_ref(), Some(r), "{k:?}");
    }
    let keys: Vec<&str> = want.keys().copied().collect();
    assert_eq!(b.delete_many(&keys).expect("delete_many"), keys.len());
    assert_eq!(b.len().expect("len"), 0);
    b.purge_expired(Timestamp::MAX).expect("purge all");
    assert_eq!(
        b.next_expiry().expect("next_expiry"),
        None,
        "stale expiry rows remain"
    );
}
