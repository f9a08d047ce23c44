//! The commit-stamp file `<db>.seq`, shared by every process through a memory map.
//!
//! The stamp is three little-endian 64-bit words at the start of the file: a process nonce, that
//! process's commit counter and a check word (see [`crate::reader`] for what they guarantee).
//! Readers used to `pread` them, one system call per `get` (about 0.3 µs, a quarter of a get);
//! here every process maps the first page of the file shared (`MAP_SHARED`) and reads and writes
//! the words with atomic loads and stores, which cost a few nanoseconds. Processes on one machine
//! share the file's page-cache page, so a store made by one is seen by the loads of the others,
//! and by `pread` (the byte layout is the one the `pread` version wrote, so both can share a file).
//!
//! This is the only module of the crate that uses `unsafe`: turning a pointer into the map into
//! an `&AtomicU64` needs it (memmap2 maps the file without `unsafe` through `MmapRaw`, but hands
//! out only a raw pointer). Each block says why it is sound.
//!
//! # What the file must not do
//! Once mapped, the file's first 24 bytes are read on every `get`. The file is never truncated by
//! this crate (it is created, or extended to 24 bytes when shorter, never shortened). If another
//! program truncates it to zero bytes while a process has the cache open, that process's next
//! read of the map gets `SIGBUS` from the kernel, as with any memory map; deleting it or renaming
//! another file over it is harmless to processes that have it open (they keep the old file), but,
//! as before, processes opened later would not see their stamps. The crate docs say the file may
//! only be deleted when no process has the cache open.
#![allow(unsafe_code)]

use memmap2::{MmapOptions, MmapRaw};
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of the stamp at the start of the file.
pub(crate) const LEN: usize = 24;

/// The first 24 bytes of the stamp file, mapped shared.
pub(crate) struct SharedStamp {
    map: MmapRaw,
}

impl SharedStamp {
    /// Opens (or creates) the stamp file at `path`, extends it to [`LEN`] bytes when it is
    /// shorter (with zeros, which no check word accepts), and maps them.
    pub(crate) fn open(path: &Path) -> io::Result<SharedStamp> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        extend(&file)?;
        let map = MmapOptions::new().len(LEN).map_raw(&file)?;
        // The file may have been truncated between `extend` and the map by another program:
        // mapped bytes past the end of the file would fault when touched, so check again, now
        // that the map exists.
        if file.metadata()?.len() < LEN as u64 {
            extend(&file)?;
        }
        Ok(SharedStamp { map })
    }

    /// The word at `index` (0, 1 or 2) of the map.
    fn word(&self, index: usize) -> &AtomicU64 {
        assert!(index < LEN / 8, "stamp word {index} out of range");
        // SAFETY:
        // - the pointer is in bounds and aligned: the map is at least `LEN` bytes long (checked by
        //   memmap2 against `len`), starts on a page boundary, and `index * 8 + 8 <= LEN`;
        // - it stays valid for the returned borrow: `self.map` is unmapped only when `self`
        //   drops, and the borrow cannot outlive `self`;
        // - every access to these bytes made by this process goes through `AtomicU64` (there is
        //   no `&[u8]` over the map anywhere), so there is no mixed atomic/non-atomic access in
        //   the sense of Rust's memory model. Other processes (and `pread`/`pwrite` from older
        //   versions) write the same bytes from outside that model; an aligned 8-byte access is
        //   single-copy atomic on every platform redb's multi-process mode supports, and a read
        //   that mixes two writers' words is rejected by the stamp's check word.
        // The bytes stay mapped while `self` lives. The one way to make them fault is a
        // truncation of the file by another program (see the module docs).
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(index * 8).cast::<u64>()) }
    }

    /// The three words of the stamp as they are now (each loaded atomically; together they may
    /// mix two stores, which the stamp's check word catches).
    pub(crate) fn load(&self) -> [u64; 3] {
        // Acquire: a reader that sees a stamp sees what its writer did before storing it.
        [0, 1, 2].map(|i| u64::from_le(self.word(i).load(Ordering::Acquire)))
    }

    /// Stores the three words of a stamp, check word last.
    pub(crate) fn store(&self, words: [u64; 3]) {
        for (i, w) in words.into_iter().enumerate() {
            self.word(i).store(w.to_le(), Ordering::Release);
        }
    }
}

/// Extends `file` to [`LEN`] bytes when it is shorter. Never shortens it: another process may
/// have written a stamp since the length was read, and `set_len` to the same length keeps it.
fn extend(file: &File) -> io::Result<()> {
    if file.metadata()?.len() < LEN as u64 {
        file.set_len(LEN as u64)?;
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_store_is_seen_by_another_map_and_by_pread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.seq");
        let a = SharedStamp::open(&path).unwrap();
        let b = SharedStamp::open(&path).unwrap();
        assert_eq!(b.load(), [0, 0, 0]);
        a.store([1, 2, 0x0102_0304_0506_0708]);
        assert_eq!(b.load(), [1, 2, 0x0102_0304_0506_0708]);
        // The byte layout is the one the pread version used: little-endian words.
        let mut bytes = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len(), LEN);
        assert_eq!(&bytes[..8], &1u64.to_le_bytes());
        assert_eq!(&bytes[16..], &0x0102_0304_0506_0708u64.to_le_bytes());
        // A pwrite (an older process) is seen through the map.
        let f = File::options().write(true).open(&path).unwrap();
        f.write_all_at(&9u64.to_le_bytes(), 8).unwrap();
        assert_eq!(b.load()[1], 9);
    }

    #[test]
    fn a_short_or_empty_file_is_extended_never_shortened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.seq");
        std::fs::write(&path, b"short").unwrap();
        let s = SharedStamp::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), LEN as u64);
        assert_eq!(s.load()[0], u64::from_le_bytes(*b"short\0\0\0"));
        drop(s);
        let long = vec![7u8; 100];
        std::fs::write(&path, &long).unwrap();
        let s = SharedStamp::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 100);
        assert_eq!(s.load(), [u64::from_le_bytes([7; 8]); 3]);
    }

    #[test]
    fn a_replaced_file_leaves_the_old_map_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.seq");
        let s = SharedStamp::open(&path).unwrap();
        s.store([1, 1, 1]);
        let other = dir.path().join("other");
        std::fs::write(&other, [0u8; 3]).unwrap();
        std::fs::rename(&other, &path).unwrap();
        // The map still holds the old file: no fault, and stores keep working on it.
        assert_eq!(s.load(), [1, 1, 1]);
        s.store([2, 2, 2]);
        assert_eq!(s.load(), [2, 2, 2]);
        // A process opening now gets the new file, extended.
        let fresh = SharedStamp::open(&path).unwrap();
        assert_eq!(fresh.load(), [0, 0, 0]);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(s.load(), [2, 2, 2]);
    }

    #[test]
    fn a_stamp_stored_while_read_is_read_whole_or_mixed_never_out_of_thin_air() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.seq");
        let w = SharedStamp::open(&path).unwrap();
        let r = SharedStamp::open(&path).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for n in 1..=200_000u64 {
                    w.store([n, n, n]);
                }
                stop.store(true, Ordering::Release);
            });
            let mut reads = 0u64;
            let mut last = 0;
            while !stop.load(Ordering::Acquire) && reads < 50_000_000 {
                let [a, b, c] = r.load();
                // Words are stored in order 0, 1, 2 and loaded in the same order: a load never
                // sees a word older than one it loaded before it, nor a value never stored.
                assert!(a <= 200_000 && b <= 200_000 && c <= 200_000);
                assert!(c >= last, "went back from {last} to {c}");
                last = c;
                reads += 1;
            }
        });
        assert_eq!(r.load(), [200_000; 3]);
    }
}
